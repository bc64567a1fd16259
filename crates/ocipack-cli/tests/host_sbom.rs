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

/// `ocipack attest` (and so `push --sign`, the same `signed_provenance`)
/// makes the provenance's SBOM model with the SBOM cache `ocipack host`
/// filled: the same bytes as `--no-cache`, and none of the SBOM work done
/// again. No layer is read (the layout's layer blobs are replaced by other
/// bytes of the same size first, which `--no-cache` then refuses) and
/// `cargo tree` is not run (a `cargo` that logs its arguments).
#[test]
fn cached_and_uncached_provenance_are_identical_and_the_cache_is_not_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let bin = bin_dir("/usr/bin/true");
    let out = tmp.path().join("images/scoring");
    // The crate lists' key names the cargo ($CARGO): every run uses this one.
    let log = tmp.path().join("cargo.log");
    let cargo = tmp.path().join("cargo");
    let real = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{real}' \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&cargo).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&cargo, perms).unwrap();
    let ocipack = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ocipack"));
        c.current_dir(repo())
            .env_remove("CARGO_TARGET_DIR")
            .env("SOURCE_DATE_EPOCH", "0")
            .env("CARGO", &cargo)
            .env("OCIPACK_CACHE_DIR", &cache);
        c
    };
    let ok = |c: &mut Command| {
        let o = c.output().unwrap();
        assert!(o.status.success(), "{o:?}");
        o
    };
    let trees = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("tree "))
            .count()
    };
    ok(ocipack()
        .args(["host", "images/scoring.toml", "--bin-dir"])
        .arg(bin.path())
        .arg("-o")
        .arg(&out));
    assert_eq!(
        trees(),
        1,
        "host (cold) runs cargo tree for scoring-service"
    );
    let prefix = tmp.path().join("release");
    ok(ocipack().args(["sign", "--generate-key"]).arg(&prefix));
    let attest_cmd = |extra: &[&str]| {
        let mut c = ocipack();
        c.arg("attest")
            .arg(&out)
            .arg("--key")
            .arg(prefix.with_extension("key"))
            .arg("--repo-root")
            .arg(repo())
            .args(extra);
        c
    };
    let provenance = attest(&out).join("provenance.dsse.json");

    ok(&mut attest_cmd(&["--no-cache"]));
    let uncached = std::fs::read(&provenance).unwrap();
    assert_eq!(trees(), 2, "--no-cache runs cargo tree again");

    // Other bytes of the same size in every layer blob of the layout (a new
    // file: the blob may be a hard link into the layer cache).
    let blob = |d: &serde_json::Value| {
        out.join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index = json(out.join("index.json"));
    let manifest = json(blob(&index["manifests"][0]["digest"]));
    let layers = manifest["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    for l in layers {
        let p = blob(&l["digest"]);
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, vec![b'x'; usize::try_from(len).unwrap()]).unwrap();
    }

    let warm = ok(&mut attest_cmd(&[]));
    assert_eq!(
        trees(),
        2,
        "the cached provenance ran cargo tree: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    let stderr = String::from_utf8_lossy(&warm.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(
        std::fs::read(&provenance).unwrap() == uncached,
        "the provenance made with the SBOM cache differs from --no-cache's"
    );
    // Without the cache the layers are read, and their bytes are wrong now.
    let cold = attest_cmd(&["--no-cache"]).output().unwrap();
    assert!(!cold.status.success(), "{cold:?}");
}
