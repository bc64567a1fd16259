//! `ocipack host`: plans and layouts from images/*.toml with host binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../ocipack-host/tests/common/plannable_repo.rs"]
mod plannable;
use plannable::plannable_repo;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ocipack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocipack"))
        .args(args)
        .current_dir(repo())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap()
}

#[test]
fn plan_only_prints_the_plan() {
    let out = ocipack(&["host", "images/redis.toml", "--plan-only"]);
    assert!(out.status.success(), "{out:?}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["name"], "redis");
    assert_eq!(plan["layers"][0]["comment"], "system libraries");
}

#[test]
fn builds_a_verified_layout_and_writes_the_plan_beside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("redis");
    let out = ocipack(&[
        "host",
        "images/redis.toml",
        "-o",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["images"][0]["report"]["manifestDigest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(tmp.path().join("redis.plan.json").is_file());
    let verify = ocipack(&["verify", out_dir.to_str().unwrap()]);
    assert!(verify.status.success(), "{verify:?}");
}

#[test]
fn all_plans_every_definition() {
    let bin = tempfile::tempdir().unwrap();
    for b in [
        "scoring-service",
        "face-detection-service",
        "face-embedding-service",
        "http-probe",
    ] {
        std::fs::copy("/usr/bin/true", bin.path().join(b)).unwrap();
    }
    let root = plannable_repo();
    let out = ocipack(&[
        "host",
        "--all",
        "--plan-only",
        "--repo-root",
        root.path().to_str().unwrap(),
        "--bin-dir",
        bin.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in [
        "scoring",
        "face-detection",
        "face-embedding",
        "redis",
        "nginx",
        // The server scripts/setup.sh installs at /usr/local/bin/qdrant.
        "qdrant",
        "frontend",
    ] {
        assert_eq!(plans[name]["name"], name);
    }
}

#[test]
fn bad_definition_fails_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let def = tmp.path().join("bad.toml");
    std::fs::write(&def, "name = \"bad\"\ncolour = 1\n").unwrap();
    let out_dir = tmp.path().join("out");
    let out = ocipack(&[
        "host",
        def.to_str().unwrap(),
        "--repo-root",
        repo().to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"));
    assert!(!out_dir.exists() && !tmp.path().join("out.plan.json").exists());
}
