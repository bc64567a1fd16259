//! The layer cache (issue 14): a hit never changes the output, a changed
//! input is never a hit, a damaged entry or blob is found and rebuilt,
//! concurrent builds may share the cache, and prune bounds its size.
//! Every test has its own cache directory in a tempdir.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{manifest_digest, ocipack, plan, run};
use serde_json::{json, Value};

/// `ocipack build PLAN -o OUT --json` with `cache` (or `--no-cache`): the report and stderr.
fn build(plan: &Path, out: &Path, cache: Option<&Path>) -> (Value, String) {
    let mut c = ocipack();
    c.args(["build", "--json"]).arg(plan).arg("-o").arg(out);
    match cache {
        Some(d) => c.arg("--cache").arg(d),
        None => c.arg("--no-cache"),
    };
    let o = run(&mut c, true);
    (
        serde_json::from_slice(&o.stdout).expect("json report"),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn counts(report: &Value) -> (u64, u64) {
    (
        report["cache"]["hits"].as_u64().unwrap(),
        report["cache"]["misses"].as_u64().unwrap(),
    )
}

fn layer_digests(report: &Value) -> Vec<String> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

fn verify(layout: &Path) {
    run(ocipack().arg("verify").arg(layout), true);
}

/// A plan with the base layer, one files layer (app: binary, config, a
/// few MB of compressible data) and one model layer, in `dir`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("app")).unwrap();
        fs::write(src.join("app/bin"), b"#!/bin/sh\necho one\n").unwrap();
        fs::set_permissions(src.join("app/bin"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(src.join("app/config.toml"), b"port = 3000\n").unwrap();
        let data: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 97) as u8).collect();
        fs::write(src.join("app/data"), data).unwrap();
        fs::write(src.join("model.onnx"), vec![42u8; 1 << 20]).unwrap();
        let f = Fixture { dir };
        f.write_plan(json!({"target": "/app", "source": "src/app"}));
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn plan(&self) -> PathBuf {
        self.path("plan.json")
    }

    /// Writes the plan with `app` as the files layer's first entry.
    fn write_plan(&self, app: Value) {
        let plan = json!({"version": 1, "name": "cachetest", "sourceDateEpoch": 1_700_000_000u64, "layers": [
            {"kind": "files", "comment": "app", "uid": 65532, "gid": 65532, "entries": [app,
                {"target": "/etc/app.conf", "source": "src/app/config.toml", "mode": "0644"}]},
            {"kind": "model", "name": "m", "source": "src/model.onnx", "target": "/models/m.onnx"}]});
        fs::write(self.plan(), serde_json::to_vec_pretty(&plan).unwrap()).unwrap();
    }
}

/// The uncached build of the fixture as it is now: what every cached build must equal.
fn reference(f: &Fixture, name: &str) -> Value {
    let (r, _) = build(&f.plan(), &f.path(name), None);
    r
}

#[test]
fn a_rerun_hits_every_layer_and_gives_the_no_cache_bytes() {
    let f = Fixture::new();
    let cache = f.path("cache");
    let (cold, _) = build(&f.plan(), &f.path("out"), Some(&cache));
    assert_eq!(counts(&cold), (0, 3), "base, app and model are packed");
    let (warm, _) = build(&f.plan(), &f.path("out2"), Some(&cache));
    assert_eq!(
        counts(&warm),
        (3, 0),
        "nothing changed: every layer from the cache"
    );
    let plain = reference(&f, "plain");
    for r in [&cold, &warm] {
        assert_eq!(r["manifestDigest"], plain["manifestDigest"]);
        assert_eq!(r["layers"], plain["layers"]);
    }
    verify(&f.path("out2"));
    // Same output directory again: the replaced layout is rewritten identically.
    let (again, _) = build(&f.plan(), &f.path("out2"), Some(&cache));
    assert_eq!(again["manifestDigest"], plain["manifestDigest"]);
    verify(&f.path("out2"));
}

#[test]
fn fixture_plans_give_the_same_digests_with_and_without_the_cache() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    for name in ["golden.json", "gzip-only.json", "minimal.json"] {
        let p = plan(name);
        let (plain, _) = build(&p, &t.path().join(format!("{name}.plain")), None);
        let (cold, _) = build(&p, &t.path().join(format!("{name}.cold")), Some(&cache));
        let (warm, _) = build(&p, &t.path().join(format!("{name}.warm")), Some(&cache));
        assert_eq!(counts(&warm).1, 0, "{name}: a rerun packs nothing");
        for r in [&cold, &warm] {
            assert_eq!(r["manifestDigest"], plain["manifestDigest"], "{name}");
        }
    }
}

/// Regression guard for the key: a cache keyed by size and mtime would hand
/// back the old blob here.
#[test]
fn changed_content_with_the_same_size_and_mtime_is_rebuilt() {
    let f = Fixture::new();
    let cache = f.path("cache");
    let (before, _) = build(&f.plan(), &f.path("out"), Some(&cache));
    let bin = f.path("src/app/bin");
    let mtime = fs::metadata(&bin).unwrap().modified().unwrap();
    fs::write(&bin, b"#!/bin/sh\necho two\n").unwrap();
    fs::File::options()
        .write(true)
        .open(&bin)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(fs::metadata(&bin).unwrap().modified().unwrap(), mtime);
    let (after, _) = build(&f.plan(), &f.path("out2"), Some(&cache));
    assert_eq!(counts(&after), (2, 1), "only the app layer is packed again");
    assert_ne!(layer_digests(&after)[1], layer_digests(&before)[1]);
    assert_eq!(
        after["manifestDigest"],
        reference(&f, "plain")["manifestDigest"]
    );
}

#[test]
fn changed_mode_or_owner_is_rebuilt() {
    let f = Fixture::new();
    let cache = f.path("cache");
    let (first, _) = build(&f.plan(), &f.path("out"), Some(&cache));
    let app_digest = |r: &Value| layer_digests(r)[1].clone();
    let mut seen = vec![app_digest(&first)];

    // The source loses its exec bit: the packed mode changes from 0755 to 0644.
    fs::set_permissions(f.path("src/app/bin"), fs::Permissions::from_mode(0o644)).unwrap();
    // A mode set by the plan, an owner set by the plan.
    let changes = [
        None,
        Some(json!({"target": "/app", "source": "src/app", "uid": 1000})),
        Some(json!({"target": "/app", "source": "src/app", "gid": 1000})),
        Some(json!({"target": "/app/bin", "source": "src/app/bin", "mode": "0700"})),
        Some(json!({"target": "/app/bin", "source": "src/app/bin", "mode": "0750"})),
    ];
    for (i, change) in changes.into_iter().enumerate() {
        if let Some(app) = change {
            f.write_plan(app);
        }
        let (r, _) = build(&f.plan(), &f.path(&format!("out{i}")), Some(&cache));
        assert_eq!(counts(&r).1, 1, "change {i}: the app layer is packed again");
        let d = app_digest(&r);
        assert!(!seen.contains(&d), "change {i}: a new app layer");
        seen.push(d);
        assert_eq!(
            r["manifestDigest"],
            reference(&f, &format!("plain{i}"))["manifestDigest"],
            "change {i}"
        );
    }
}

fn cache_blobs(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(cache.join("v1/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn cache_entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(cache.join("v1/entries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Flips one byte in the middle of `p`, keeping its size.
fn corrupt(p: &Path) {
    let mut b = fs::read(p).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0xff;
    fs::write(p, b).unwrap();
}

#[test]
fn a_corrupted_cached_blob_is_detected_removed_and_rebuilt() {
    let f = Fixture::new();
    let cache = f.path("cache");
    build(&f.plan(), &f.path("out"), Some(&cache));
    let blobs = cache_blobs(&cache);
    assert_eq!(blobs.len(), 3);
    for b in &blobs {
        corrupt(b);
    }
    // A new output: no replaced layout to fall back on, so every layer is packed again.
    let (r, stderr) = build(&f.plan(), &f.path("fresh"), Some(&cache));
    assert_eq!(counts(&r), (0, 3), "{stderr}");
    assert!(
        stderr.contains("is damaged"),
        "the damage is reported: {stderr}"
    );
    verify(&f.path("fresh"));
    assert_eq!(
        r["manifestDigest"],
        reference(&f, "plain")["manifestDigest"]
    );
    // The cache holds good blobs again: the next build hits.
    let (r2, _) = build(&f.plan(), &f.path("fresh2"), Some(&cache));
    assert_eq!(counts(&r2), (3, 0));
    verify(&f.path("fresh2"));

    // Damaged again, but now the layout being replaced holds good copies:
    // those are used (after their own check) and nothing damaged ships.
    for b in &cache_blobs(&cache) {
        corrupt(b);
    }
    let (r3, stderr) = build(&f.plan(), &f.path("fresh2"), Some(&cache));
    assert_eq!(counts(&r3), (3, 0), "{stderr}");
    verify(&f.path("fresh2"));
    assert_eq!(r3["manifestDigest"], r["manifestDigest"]);
    // A new output again: the damaged cache blobs are found now.
    let (r4, stderr) = build(&f.plan(), &f.path("fresh3"), Some(&cache));
    assert_eq!(counts(&r4), (0, 3), "{stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    verify(&f.path("fresh3"));
    assert_eq!(r4["manifestDigest"], r["manifestDigest"]);
    // A damaged blob in the layout being replaced is not used either.
    for e in fs::read_dir(f.path("fresh3/blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let mut b = fs::read(&p).unwrap();
        b[0] ^= 0xff;
        fs::remove_file(&p).unwrap(); // may be read-only or linked; replace it
        fs::write(&p, b).unwrap();
    }
    let (r5, stderr) = build(&f.plan(), &f.path("fresh3"), Some(&cache));
    assert_eq!(counts(&r5), (3, 0), "the cache's good copies: {stderr}");
    assert!(
        stderr.contains("layout being replaced is damaged"),
        "{stderr}"
    );
    verify(&f.path("fresh3"));
    assert_eq!(r5["manifestDigest"], r["manifestDigest"]);
}

#[test]
fn a_damaged_or_truncated_entry_is_detected_and_rebuilt() {
    let f = Fixture::new();
    let cache = f.path("cache");
    let (first, _) = build(&f.plan(), &f.path("out"), Some(&cache));
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 3);
    // One entry points at another blob (its self-check no longer holds),
    // one is cut short, one is a truncated blob.
    let text = fs::read_to_string(&entries[0]).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["size"] = json!(v["size"].as_u64().unwrap() + 1);
    fs::write(&entries[0], serde_json::to_vec(&v).unwrap()).unwrap();
    fs::write(&entries[1], &text.as_bytes()[..text.len() / 2]).unwrap();
    let blob = &cache_blobs(&cache)[0];
    let len = fs::metadata(blob).unwrap().len();
    fs::File::options()
        .write(true)
        .open(blob)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let (r, stderr) = build(&f.plan(), &f.path("fresh"), Some(&cache));
    assert!(counts(&r).1 >= 2, "{stderr}");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert_eq!(r["manifestDigest"], first["manifestDigest"]);
    verify(&f.path("fresh"));
    let (r2, _) = build(&f.plan(), &f.path("fresh2"), Some(&cache));
    assert_eq!(counts(&r2), (3, 0), "rebuilt entries are good");
}

#[test]
fn two_concurrent_builds_sharing_a_cache_both_produce_verified_layouts() {
    let f = Fixture::new();
    let cache = f.path("cache");
    let plain = reference(&f, "plain");
    let spawn = |out: &str| {
        let mut c: Command = ocipack();
        c.args(["build", "--json"])
            .arg(f.plan())
            .arg("-o")
            .arg(f.path(out))
            .arg("--threads")
            .arg("1")
            .arg("--cache")
            .arg(&cache);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Round 1: both start cold and race to add the same entries; round 2:
    // both read while (round 3) a prune removes everything under them.
    for round in 0..3 {
        let a = spawn(&format!("a{round}"));
        let b = spawn(&format!("b{round}"));
        if round == 2 {
            run(
                ocipack()
                    .args(["cache", "prune", "--max-size", "0", "--cache"])
                    .arg(&cache),
                true,
            );
        }
        for (name, child) in [("a", a), ("b", b)] {
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round} {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let r: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(
                r["manifestDigest"], plain["manifestDigest"],
                "round {round} {name}"
            );
            let out = f.path(&format!("{name}{round}"));
            verify(&out);
            assert_eq!(
                manifest_digest(&out),
                plain["manifestDigest"].as_str().unwrap()
            );
        }
    }
    // Nothing half-written is left behind in the cache's tmp directory.
    let left: Vec<_> = fs::read_dir(cache.join("v1/tmp")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn prune_bounds_the_size_and_evicts_the_least_recently_used() {
    let f = Fixture::new();
    let cache = f.path("cache");
    // Three versions of the app layer: three app entries plus base and model.
    for i in 0..3 {
        fs::write(f.path("src/app/config.toml"), format!("port = {i}\n")).unwrap();
        build(&f.plan(), &f.path(&format!("out{i}")), Some(&cache));
    }
    let info = |c: &Path| -> Value {
        let o = run(
            ocipack()
                .args(["cache", "info", "--json", "--cache"])
                .arg(c),
            true,
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let before = info(&cache);
    assert_eq!(before["entries"], 5);
    let size = before["size"].as_u64().unwrap();
    // Age every entry, then use the current version (port = 2) again.
    let past = SystemTime::now() - Duration::from_secs(600);
    for e in cache_entries(&cache) {
        fs::File::options()
            .write(true)
            .open(&e)
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
    let (r, _) = build(&f.plan(), &f.path("again"), Some(&cache));
    assert_eq!(counts(&r), (3, 0));
    // Room for a bit more than the three layers just used, not for all five.
    let app_blob = r["layers"][1]["size"].as_u64().unwrap();
    let max = size - 2 * app_blob + 600;
    let o = run(
        ocipack()
            .args(["cache", "prune", "--json", "--max-size"])
            .arg(max.to_string())
            .arg("--cache")
            .arg(&cache),
        true,
    );
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(p["sizeAfter"].as_u64().unwrap() <= max, "{p}");
    let after = info(&cache);
    assert_eq!(after["size"], p["sizeAfter"], "{p}");
    assert!(after["size"].as_u64().unwrap() <= max);
    assert_eq!(after["entries"], 3, "the two unused app versions went: {p}");
    let (r, _) = build(&f.plan(), &f.path("again2"), Some(&cache));
    assert_eq!(counts(&r), (3, 0), "what was used last is still there");
    // --max-size 0 empties it; a bad size is refused with its reason.
    run(
        ocipack()
            .args(["cache", "prune", "--max-size", "0", "--cache"])
            .arg(&cache),
        true,
    );
    assert_eq!(info(&cache)["size"], 0);
    let o = run(
        ocipack()
            .args(["cache", "prune", "--max-size", "5X", "--cache"])
            .arg(&cache),
        false,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("5X"));
}

#[test]
fn an_unusable_cache_dir_is_refused_by_name_and_no_cache_needs_none() {
    let f = Fixture::new();
    let file = f.path("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let o = run(
        ocipack()
            .arg("build")
            .arg(f.plan())
            .arg("-o")
            .arg(f.path("out"))
            .arg("--cache")
            .arg(&file),
        false,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not-a-dir") && err.contains("--no-cache"),
        "{err}"
    );
    assert!(!f.path("out").exists(), "no partial output");
    // The default cache comes from OCIPACK_CACHE_DIR; --no-cache never touches it.
    let dir = f.path("default-cache");
    run(
        ocipack()
            .env("OCIPACK_CACHE_DIR", &dir)
            .arg("build")
            .arg(f.plan())
            .arg("-o")
            .arg(f.path("out"))
            .arg("--no-cache"),
        true,
    );
    assert!(!dir.exists());
    run(
        ocipack()
            .env("OCIPACK_CACHE_DIR", &dir)
            .arg("build")
            .arg(f.plan())
            .arg("-o")
            .arg(f.path("out")),
        true,
    );
    assert_eq!(cache_entries(&dir).len(), 3);
    // Inside a Nix build no default cache is used (only an explicit --cache).
    let nix = f.path("nix-cache");
    run(
        ocipack()
            .env("OCIPACK_CACHE_DIR", &nix)
            .env("NIX_BUILD_TOP", f.path("."))
            .arg("build")
            .arg(f.plan())
            .arg("-o")
            .arg(f.path("out")),
        true,
    );
    assert!(!nix.exists(), "a Nix build touches no cache by default");
}

/// `ocipack layer SPEC -o OUT --json` with `cache` (or `--no-cache`): the descriptor and stderr.
fn layer(spec: &Path, out: &Path, cache: Option<&Path>) -> (Value, String) {
    let mut c = ocipack();
    c.args(["layer", "--json"]).arg(spec).arg("-o").arg(out);
    match cache {
        Some(d) => c.arg("--cache").arg(d),
        None => c.arg("--no-cache"),
    };
    let o = run(&mut c, true);
    (
        serde_json::from_slice(&o.stdout).expect("json descriptor"),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn ocipack_layer_takes_an_unchanged_layer_from_the_cache_and_checks_it() {
    let f = Fixture::new();
    let cache = f.path("cache");
    let spec = f.path("spec.json");
    fs::write(
        &spec,
        serde_json::to_vec(&json!({"version": 1, "sourceDateEpoch": 1_700_000_000u64, "layer":
            {"kind": "files", "comment": "app", "entries": [{"target": "/app", "source": "src/app"}]}}))
        .unwrap(),
    )
    .unwrap();
    let (plain, _) = layer(&spec, &f.path("plain"), None);
    assert!(
        !cache.exists(),
        "--no-cache neither reads nor writes the cache"
    );
    let (cold, _) = layer(&spec, &f.path("cold"), Some(&cache));
    assert_eq!(cache_entries(&cache).len(), 1, "the layer was added");
    let (warm, _) = layer(&spec, &f.path("warm"), Some(&cache));
    let no_json = run(
        ocipack()
            .arg("layer")
            .arg(&spec)
            .arg("-o")
            .arg(f.path("warm"))
            .arg("--cache")
            .arg(&cache),
        true,
    );
    assert!(
        String::from_utf8_lossy(&no_json.stderr).contains("from the cache"),
        "a hit is said"
    );
    for (d, dir) in [(&cold, "cold"), (&warm, "warm")] {
        assert_eq!(d, &plain, "{dir}: the same descriptor as --no-cache");
        for file in ["blob", "descriptor.json"] {
            assert_eq!(
                fs::read(f.path(dir).join(file)).unwrap(),
                fs::read(f.path("plain").join(file)).unwrap(),
                "{dir}/{file}: the --no-cache bytes"
            );
        }
    }
    // A damaged cached blob is found while copied, removed, and the layer packed again.
    let blobs = cache_blobs(&cache);
    assert_eq!(blobs.len(), 1);
    corrupt(&blobs[0]);
    let (again, err) = layer(&spec, &f.path("again"), Some(&cache));
    assert_eq!(again, plain);
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(
        fs::read(f.path("again/blob")).unwrap(),
        fs::read(f.path("plain/blob")).unwrap()
    );
    // A changed input is not a hit.
    fs::write(f.path("src/app/config.toml"), b"port = 3001\n").unwrap();
    let (changed, _) = layer(&spec, &f.path("changed"), Some(&cache));
    assert_ne!(changed["digest"], plain["digest"]);
    let (changed_plain, _) = layer(&spec, &f.path("changed-plain"), None);
    assert_eq!(changed, changed_plain);
}

#[test]
fn prune_bounds_the_sbom_cache_with_the_layers_least_recently_used_first() {
    use ocipack_attest::cache::SbomCache;
    let f = Fixture::new();
    let cache = f.path("cache");
    build(&f.plan(), &f.path("out"), Some(&cache));
    // The SBOM cache's entries as `ocipack host` makes them: one file list per layer.
    let layout = ocipack::layout::Layout::open(&f.path("out")).unwrap();
    let sbom = SbomCache::open(&cache).unwrap();
    ocipack_attest::inputs::read_image_with(&layout, None, |d| sbom.layer_entries(&layout, d))
        .unwrap();
    let sbom_entries = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(cache.join("sbom/v1/layers"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    assert_eq!(sbom_entries().len(), 3, "base, app and model");
    let info = || -> Value {
        let o = run(
            ocipack()
                .args(["cache", "info", "--json", "--cache"])
                .arg(&cache),
            true,
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let before = info();
    assert_eq!(before["extraEntries"], 3, "{before}");
    let layer_bytes: u64 = cache_entries(&cache)
        .iter()
        .chain(&cache_blobs(&cache))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    let sbom_bytes: u64 = sbom_entries()
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(before["size"], layer_bytes + sbom_bytes, "{before}");
    // A dead run's file in the SBOM cache's tmp/.
    let stale = cache.join("sbom/v1/tmp/1-0-dead");
    fs::write(&stale, b"half").unwrap();
    // Everything used long ago; then the layers and one SBOM entry used again.
    let past = SystemTime::now() - Duration::from_secs(7200);
    for p in cache_entries(&cache)
        .into_iter()
        .chain(sbom_entries())
        .chain([stale.clone()])
    {
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
    let (r, _) = build(&f.plan(), &f.path("out2"), Some(&cache));
    assert_eq!(counts(&r), (3, 0));
    let d = ocipack::layout::Descriptor {
        media_type: r["layers"][1]["mediaType"].as_str().unwrap().to_owned(),
        digest: r["layers"][1]["digest"].as_str().unwrap().to_owned(),
        size: r["layers"][1]["size"].as_u64().unwrap(),
        annotations: Default::default(),
    };
    let used = sbom.layer_entries(&layout, &d).unwrap();
    assert!(!used.is_empty());
    let recent: Vec<PathBuf> = sbom_entries()
        .into_iter()
        .filter(|p| fs::metadata(p).unwrap().modified().unwrap() > past)
        .collect();
    assert_eq!(recent.len(), 1, "a hit stamps the SBOM entry it read");
    // One byte too many: the least recently used entry goes, an SBOM one.
    let size = info()["size"].as_u64().unwrap();
    let o = run(
        ocipack()
            .args(["cache", "prune", "--json", "--max-size"])
            .arg((size - 1).to_string())
            .arg("--cache")
            .arg(&cache),
        true,
    );
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["extraEntriesBefore"], 3, "{p}");
    assert_eq!(p["extraEntriesAfter"], 2, "{p}");
    assert_eq!(p["entriesAfter"], 3, "the layers used just now stay: {p}");
    assert!(!stale.exists(), "a dead run's file is removed");
    assert!(
        recent[0].exists(),
        "the SBOM entry used just now stays: {p}"
    );
    // --max-size 0 empties both parts.
    let o = run(
        ocipack()
            .args(["cache", "prune", "--json", "--max-size", "0", "--cache"])
            .arg(&cache),
        true,
    );
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (p["sizeAfter"].as_u64(), p["extraEntriesAfter"].as_u64()),
        (Some(0), Some(0)),
        "{p}"
    );
    assert!(sbom_entries().is_empty());
}
