//! The data sets of the masking bench.
#![allow(dead_code)]

const ROWS: usize = 20_000;

/// A deterministic pseudo-random generator (no dependency, same data every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

const WORDS: [&str; 16] = [
    "order", "shipped", "customer", "asked", "for", "refund", "delivery", "late", "again",
    "please", "call", "back", "invoice", "attached", "thanks", "priority",
];

pub fn mixed() -> Vec<Vec<u8>> {
    let mut rng = Lcg(42);
    let mut values = Vec::with_capacity(ROWS * 6);
    for i in 0..ROWS {
        values.push(format!("{}", 100_000 + i).into_bytes());
        values.push(format!("Customer {} {}", WORDS[i % 16], rng.next() % 10_000).into_bytes());
        values.push(format!("user{}@example.com", rng.next() % 100_000).into_bytes());
        values.push(
            format!(
                "2026-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00",
                1 + rng.next() % 12,
                1 + rng.next() % 28,
                rng.next() % 24,
                rng.next() % 60,
                rng.next() % 60,
                rng.next() % 1_000_000
            )
            .into_bytes(),
        );
        values.push(format!("{}.{:02}", rng.next() % 100_000, rng.next() % 100).into_bytes());
        let mut note = String::with_capacity(100);
        while note.len() < 100 {
            note.push_str(WORDS[(rng.next() % 16) as usize]);
            note.push(' ');
        }
        note.truncate(100);
        values.push(note.into_bytes());
        if i % 20 == 0 {
            values.push(b"4111 1111 1111 1111".to_vec());
        }
    }
    values
}

pub fn sensitive() -> Vec<Vec<u8>> {
    (0..ROWS)
        .flat_map(|i| {
            [
                format!("person{i}@example.org").into_bytes(),
                b"4111-1111-1111-1111".to_vec(),
                format!("ghp_{:036}", i).into_bytes(),
                b"postgres://app:hunter2@db.internal:5432/app".to_vec(),
            ]
        })
        .collect()
}

pub fn numbers() -> Vec<Vec<u8>> {
    (0..ROWS * 6).map(|i| format!("{}", i * 7919).into_bytes()).collect()
}

