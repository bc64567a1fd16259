//! Each fuzz target for a bounded few seconds with a fixed seed, in the
//! ordinary test run (`.ci/run`). `FUZZ_SECONDS` overrides the budget;
//! `scripts/fuzz.sh` runs them for longer with fresh seeds.

use std::time::Duration;

fn budget() -> Duration {
    Duration::from_secs(
        std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    )
}

fn check(target: &str) {
    let r = ocipack_fuzz::run(target, budget(), 0x5eed_0c1a);
    eprintln!(
        "fuzz {target}: {} inputs, slowest {:?}",
        r.iterations, r.slowest
    );
    assert!(r.iterations > 0);
    assert!(r.panics.is_empty(), "fuzz {target} found: {:?}", r.panics);
}

#[test]
fn fuzz_plan() {
    check("plan");
}

#[test]
fn fuzz_layout() {
    check("layout");
}

#[test]
fn fuzz_tar() {
    check("tar");
}

#[test]
fn fuzz_image_header() {
    check("image");
}
