//! Helpers shared by the CLI tests: run the real binary, read layouts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A fixture plan under tests/data/plans.
pub fn plan(name: &str) -> PathBuf {
    repo().join("tests/data/plans").join(name)
}

/// The ocipack binary under test, with a clean, fixed environment.
pub fn ocipack() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ocipack"));
    c.env_remove("SOURCE_DATE_EPOCH");
    // The layer cache is on by default; tests use it, but never the user's.
    c.env(
        "OCIPACK_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("ocipack-cli-cache"),
    );
    c
}

/// Runs and returns the output, panicking with stderr if `ok` differs from success.
pub fn run(cmd: &mut Command, ok: bool) -> Output {
    let out = cmd.output().expect("spawn");
    assert_eq!(
        out.status.success(),
        ok,
        "{cmd:?} exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ocipack build PLAN -o OUT --json`: the parsed report.
pub fn build(plan: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let o = run(
        ocipack()
            .args(["build", "--json"])
            .arg(plan)
            .arg("-o")
            .arg(out)
            .args(extra),
        true,
    );
    serde_json::from_slice(&o.stdout).expect("json report")
}

/// The manifest digest named by index.json.
pub fn manifest_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

/// Fails loudly when an external tool is missing: these tests must not skip.
pub fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(found, "{name} is not installed: run .ci/run (it installs skopeo, umoci, oci-image-tool) or apt-get install it");
    Command::new(name)
}

/// Sorted list of every entry in `dir` (excluded), for "nothing left behind" checks.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
