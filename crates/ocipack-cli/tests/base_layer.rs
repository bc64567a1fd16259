//! The base layer built on its own (`ocipack layer` with a `base` spec) is
//! the generated one byte for byte, so an image assembled from it with
//! `generateBase: false` is the same image; and its bad inputs are refused.

mod common;
use common::*;

use std::path::Path;

fn write_json(path: &Path, value: &serde_json::Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

/// `ocipack layer SPEC -o OUT`, expected to succeed or fail as `ok` says.
fn ocipack_layer(spec: &Path, out: &Path, ok: bool) -> std::process::Output {
    run(ocipack().arg("layer").arg(spec).arg("-o").arg(out), ok)
}

fn layer_spec(dir: &Path, name: &str, layer: serde_json::Value) -> std::path::PathBuf {
    let spec = dir.join(format!("{name}.json"));
    write_json(&spec, &serde_json::json!({"version": 1, "layer": layer}));
    spec
}

#[test]
fn prebuilt_base_layer_gives_the_same_image() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("hello"), b"#!hello\n").unwrap();
    let user = serde_json::json!({"name": "svc", "uid": 1234, "gid": 4321, "home": "/var/lib/svc"});
    let files = serde_json::json!({"kind": "files", "comment": "app", "entries": [
        {"source": t.path().join("hello"), "target": "/app/hello", "mode": "0755"}]});

    // The image as a plan generates it.
    let generated = t.path().join("generated.json");
    write_json(
        &generated,
        &serde_json::json!({"version": 1, "name": "b", "user": user, "layers": [files]}),
    );
    build(&generated, &t.path().join("out-generated"), &[]);

    // The base and the files layer built on their own, then assembled.
    let base_spec = layer_spec(
        t.path(),
        "base",
        serde_json::json!({"kind": "base", "user": user}),
    );
    ocipack_layer(&base_spec, &t.path().join("base"), true);
    let files_spec = layer_spec(t.path(), "files", files.clone());
    ocipack_layer(&files_spec, &t.path().join("files"), true);
    let assembled = t.path().join("assembled.json");
    write_json(
        &assembled,
        &serde_json::json!({"version": 1, "name": "b", "user": user, "generateBase": false, "layers": [
            {"kind": "prebuilt", "path": t.path().join("base")},
            {"kind": "prebuilt", "path": t.path().join("files")}]}),
    );
    build(&assembled, &t.path().join("out-assembled"), &[]);

    assert_eq!(
        manifest_digest(&t.path().join("out-generated")),
        manifest_digest(&t.path().join("out-assembled"))
    );
    run(
        ocipack().arg("verify").arg(t.path().join("out-assembled")),
        true,
    );

    // The default user's base layer differs from this one.
    let default_spec = layer_spec(t.path(), "default", serde_json::json!({"kind": "base"}));
    ocipack_layer(&default_spec, &t.path().join("default"), true);
    assert_ne!(
        std::fs::read(t.path().join("default/blob")).unwrap(),
        std::fs::read(t.path().join("base/blob")).unwrap()
    );
}

#[test]
fn bad_base_layers_are_refused_with_their_reason() {
    let t = tempfile::tempdir().unwrap();
    for (name, layer, needle) in [
        (
            "root",
            serde_json::json!({"kind": "base", "user": {"uid": 0}}),
            "root is refused",
        ),
        (
            "colon",
            serde_json::json!({"kind": "base", "user": {"name": "a:b"}}),
            "is not a login name",
        ),
        (
            "home",
            serde_json::json!({"kind": "base", "user": {"home": "relative"}}),
            "user.home",
        ),
        (
            "unknown",
            serde_json::json!({"kind": "base", "shell": "/bin/sh"}),
            "unknown field",
        ),
    ] {
        let spec = layer_spec(t.path(), name, layer);
        let out_dir = t.path().join(format!("out-{name}"));
        let out = ocipack_layer(&spec, &out_dir, false);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert!(
            stderr.contains(&spec.display().to_string()),
            "{name}: {stderr}"
        );
        assert!(!out_dir.exists(), "{name}: output left behind");
    }

    // A plan cannot hold a base layer: it generates its own.
    let plan = t.path().join("plan.json");
    write_json(
        &plan,
        &serde_json::json!({"version": 1, "name": "x", "layers": [{"kind": "base"}]}),
    );
    let out = run(
        ocipack()
            .arg("build")
            .arg(&plan)
            .arg("-o")
            .arg(t.path().join("out")),
        false,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("generateBase: false"), "{stderr}");
    assert!(!t.path().join("out").exists());
}
