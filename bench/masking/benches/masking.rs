//! Throughput of the masking engine on a realistic mixed result set, every default detector
//! on: the values of 20,000 rows of a customer table (id, name, email, created_at, amount,
//! a 100-byte note, and a card number in one row of 20), masked value by value as the
//! PostgreSQL adapter does for each DataRow. Also the worst case, every value sensitive, and
//! the best, a numbers-only result.
//!
//! Target (issue #4): ≥ 500 MB/s per core with all default detectors on, mixed set.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_mask::{MaskConfig, MaskCounts, Masker};

mod data;

use data::{mixed, numbers, sensitive};

fn bench_set(c: &mut Criterion, name: &str, values: Vec<Vec<u8>>) {
    let masker = match Masker::new(&MaskConfig::default()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("the default masking config does not compile: {e}");
            return;
        }
    };
    let bytes: usize = values.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("masking");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(name, |b| {
        b.iter_batched_ref(
            || values.clone(),
            |vals| {
                let mut counts = MaskCounts::default();
                for v in vals.iter_mut() {
                    masker.mask(v, &mut counts);
                }
                counts
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn masking(c: &mut Criterion) {
    bench_set(c, "mixed_result_set", mixed());
    bench_set(c, "all_sensitive", sensitive());
    bench_set(c, "numbers_only", numbers());
}

criterion_group!(benches, masking);
criterion_main!(benches);
