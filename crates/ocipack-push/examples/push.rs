//! Minimal driver for benchmarks and manual runs, independent of the CLI:
//!
//! ```text
//! cargo run --release -p ocipack-push --example push -- [--insecure] \
//!     [--chunk-size BYTES] [--jobs N] [--mount-from REPO]... DIR REGISTRY/REPO[:TAG] [DIR REF]...
//! ```
//!
//! Several DIR REF pairs are pushed in one session. Prints the JSON report.

use std::path::PathBuf;
use std::process::ExitCode;

use ocipack_push::{push_all, Credentials, NoProgress, PushOptions, Target};

fn main() -> ExitCode {
    let mut opts = PushOptions::default();
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--insecure" => opts.insecure = true,
            "--chunk-size" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => opts.chunk_size = n,
                None => return usage("--chunk-size takes a byte count"),
            },
            "--jobs" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => opts.jobs = n,
                None => return usage("--jobs takes a count"),
            },
            "--mount-from" => match args.next() {
                Some(r) => opts.mount_from.push(r),
                None => return usage("--mount-from takes a repository"),
            },
            _ => positional.push(a),
        }
    }
    if positional.is_empty() || positional.len() % 2 != 0 {
        return usage("expected DIR REF pairs");
    }
    let mut items = Vec::new();
    for pair in positional.chunks(2) {
        match Target::parse(&pair[1]) {
            Ok(t) => items.push((PathBuf::from(&pair[0]), t)),
            Err(e) => return usage(&e.to_string()),
        }
    }
    match Credentials::lookup(&items[0].1.registry) {
        Ok(c) => opts.credentials = c,
        Err(e) => return usage(&e.to_string()),
    }
    match push_all(&items, opts, &NoProgress) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serialises")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_auth() { 3 } else { 1 })
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\nusage: push [--insecure] [--chunk-size BYTES] [--jobs N] [--mount-from REPO]... DIR REGISTRY/REPO[:TAG] [DIR REF]...");
    ExitCode::from(2)
}
