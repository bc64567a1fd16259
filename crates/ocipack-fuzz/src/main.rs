//! `ocipack-fuzz TARGET SECONDS [SEED]`: runs one fuzz target (see the
//! library docs) and prints what it found; exit 1 on a finding.

use std::time::Duration;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ocipack-fuzz TARGET SECONDS [SEED]  (targets: plan layout tar image)";
    let (Some(target), Some(secs)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
    ) else {
        eprintln!("{usage}");
        return std::process::ExitCode::from(2);
    };
    if !ocipack_fuzz::TARGETS.contains(&target.as_str()) {
        eprintln!("unknown target {target:?}; {usage}");
        return std::process::ExitCode::from(2);
    }
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let r = ocipack_fuzz::run(target, Duration::from_secs(secs), seed);
    println!(
        "{target}: {} inputs in {secs} s (seed {seed}), slowest {:?}, {} finding(s)",
        r.iterations,
        r.slowest,
        r.panics.len()
    );
    for (msg, path) in &r.panics {
        println!("  {}: {msg}", path.display());
    }
    if r.panics.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
