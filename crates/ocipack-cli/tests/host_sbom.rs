//! `ocipack host`'s SBOMs in `OUT.attest/`: exactly what this build
//! produces (no artifacts of earlier builds left behind), and the same bytes
//! with the SBOM cache (`CACHE/sbom/`) as without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `ocipack host images/scoring.toml` with `bin` as the binary directory.
fn host(bin: &Path, out: &Path, cache: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ocipack"));
    c.args(["host", "images/scoring.toml", "--bin-dir"])
        .arg(bin)
        .arg("-o")
        .arg(out)
        .current_dir(repo())
        .env_remove("CARGO_TARGET_DIR")
        .env("SOURCE_DATE_EPOCH", "0");
    match cache {
        Some(d) => c.env("OCIPACK_CACHE_DIR", d),
        None => c.arg("--no-cache"),
    };
    let o = c.output().unwrap();
    assert!(o.status.success(), "{o:?}");
    o
}

/// Every file under `dir`, relative path -> bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, m: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, m);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                m.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(dir, dir, &mut m);
    m
}

/// A directory with an ELF named `scoring-service`, a copy of `src`.
fn bin_dir(src: &str) -> tempfile::TempDir {
    let bin = tempfile::tempdir().unwrap();
    std::fs::copy(src, bin.path().join("scoring-service")).unwrap();
    bin
}

fn attest(out: &Path) -> PathBuf {
    out.with_file_name(format!(
        "{}.attest",
        out.file_name().unwrap().to_string_lossy()
    ))
}

#[test]
fn rebuilding_into_the_same_output_leaves_only_this_builds_attestations() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let a = bin_dir("/usr/bin/true");
    let out = tmp.path().join("same/scoring");
    host(a.path(), &out, Some(&cache));
    // A different binary at the same path: a new image manifest, so new tags.
    std::fs::copy("/usr/bin/false", a.path().join("scoring-service")).unwrap();
    host(a.path(), &out, Some(&cache));
    let fresh = tmp.path().join("fresh/scoring");
    host(a.path(), &fresh, Some(&cache));
    let (old, new) = (files(&attest(&out)), files(&attest(&fresh)));
    assert_eq!(
        old.keys().collect::<Vec<_>>(),
        new.keys().collect::<Vec<_>>(),
        "the rebuilt OUT.attest holds other files than a fresh one"
    );
    assert!(
        old == new,
        "the rebuilt OUT.attest differs from a fresh one"
    );
    let index: serde_json::Value = serde_json::from_slice(&old["oci/index.json"]).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    // Nothing staged is left beside the output.
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("same"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn cached_and_uncached_sboms_are_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let bin = bin_dir("/usr/bin/true");
    let uncached = tmp.path().join("nocache/scoring");
    host(bin.path(), &uncached, None);
    assert!(
        !cache.exists(),
        "--no-cache must neither read nor write the cache"
    );
    let cold = tmp.path().join("cold/scoring");
    host(bin.path(), &cold, Some(&cache));
    let entries: Vec<_> = std::fs::read_dir(cache.join("sbom/v1/crates"))
        .unwrap()
        .collect();
    assert_eq!(entries.len(), 1, "one crate list for scoring-service");
    let layers = std::fs::read_dir(cache.join("sbom/v1/layers"))
        .unwrap()
        .count();
    assert!(layers > 0, "the layers' file lists are cached");
    let warm = tmp.path().join("warm/scoring");
    host(bin.path(), &warm, Some(&cache));
    let want = files(&attest(&uncached));
    assert!(want["sbom.spdx.json"]
        .windows(b"pkg:cargo/serde@".len())
        .any(|w| w == b"pkg:cargo/serde@"));
    assert!(files(&attest(&cold)) == want, "cold cached SBOM differs");
    assert!(files(&attest(&warm)) == want, "warm cached SBOM differs");
}
