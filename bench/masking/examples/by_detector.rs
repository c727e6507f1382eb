//! Throughput of the mixed result set per detector family (all, none, email, numeric,
//! literal triggers), to see where masking time goes: cargo run --release --example by_detector
use sluice_mask::{Detector, MaskConfig, MaskCounts, Masker};
use std::time::Instant;
#[path = "../benches/data.rs"]
mod data;
fn run(name: &str, cfg: MaskConfig, values: &[Vec<u8>]) {
    let m = match Masker::new(&cfg) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{name}: {e}");
            return;
        }
    };
    let bytes: usize = values.iter().map(Vec::len).sum();
    let mut best = f64::MAX;
    for _ in 0..15 {
        let mut v = values.to_vec();
        let t = Instant::now();
        let mut c = MaskCounts::default();
        for x in v.iter_mut() { m.mask(x, &mut c); }
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(c);
    }
    println!("{name:<12} {:>8.0} MB/s", bytes as f64 / best / 1e6);
}
fn main() {
    let v = data::mixed();
    let only = |d: Vec<Detector>| MaskConfig { detectors: Some(d), ..MaskConfig::default() };
    run("all", MaskConfig::default(), &v);
    run("none", only(vec![]), &v);
    run("email", only(vec![Detector::Email]), &v);
    run("numeric", only(vec![Detector::CardNumber, Detector::Phone, Detector::Iban, Detector::UsSsn]), &v);
    run("literals", only(vec![Detector::Jwt, Detector::AwsAccessKey, Detector::AwsSecretKey, Detector::GithubToken, Detector::GitlabToken, Detector::SlackToken, Detector::PrivateKey, Detector::BearerToken, Detector::Password]), &v);
}
