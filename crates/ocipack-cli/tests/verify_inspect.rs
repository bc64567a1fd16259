//! `verify` finds problems in layouts it did not write; `inspect` describes;
//! prebuilt layers assemble into the same image as inline ones.

mod common;
use common::*;
use std::path::Path;

fn rewrite_blob_json(
    layout: &Path,
    digest: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let hex = digest.trim_start_matches("sha256:");
    let path = layout.join("blobs/sha256").join(hex);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    let bytes = serde_json::to_vec(&v).unwrap();
    let new = ocipack::digest::sha256(&bytes);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(new.trim_start_matches("sha256:")),
        &bytes,
    )
    .unwrap();
    std::fs::remove_file(path).unwrap();
    new
}

#[test]
fn verify_accepts_good_and_names_each_problem() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("img");
    let report = build(&plan("gzip-only.json"), &out, &[]);
    run(ocipack().arg("verify").arg(&out), true);

    // A config that runs as root: rewrite config, manifest and index consistently.
    let manifest = manifest_digest(&out);
    let config = report["configDigest"].as_str().unwrap().to_owned();
    let new_config = rewrite_blob_json(&out, &config, |c| c["config"]["User"] = "0".into());
    let config_size = std::fs::metadata(
        out.join("blobs/sha256")
            .join(new_config.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len();
    let new_manifest = rewrite_blob_json(&out, &manifest, |m| {
        m["config"]["digest"] = new_config.clone().into();
        m["config"]["size"] = config_size.into();
    });
    let msize = std::fs::metadata(
        out.join("blobs/sha256")
            .join(new_manifest.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len();
    let idx_path = out.join("index.json");
    let mut idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&idx_path).unwrap()).unwrap();
    idx["manifests"][0]["digest"] = new_manifest.into();
    idx["manifests"][0]["size"] = msize.into();
    std::fs::write(&idx_path, serde_json::to_vec(&idx).unwrap()).unwrap();

    // And a corrupted layer blob.
    let layer = report["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let lpath = out.join("blobs/sha256").join(&layer);
    let mut bytes = std::fs::read(&lpath).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&lpath, bytes).unwrap();

    let o = ocipack().arg("verify").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("config User \"0\" is root"), "{err}");
    assert!(
        err.contains(&format!("blob sha256:{layer} hashes to")),
        "{err}"
    );
    // --allow-root silences the policy but not corruption.
    let o = ocipack()
        .args(["verify", "--allow-root"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("is root"), "{err}");
    assert!(err.contains("hashes to"), "{err}");
}

#[test]
fn verify_flags_setuid_shells_and_world_writable_paths_from_allow_root_plans() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("sh"), "#!/fake\n").unwrap();
    let p = t.path().join("plan.json");
    let plan = serde_json::json!({"version": 1, "name": "lax", "allowRoot": true, "layers": [{"kind": "files", "entries": [
        {"source": t.path().join("sh"), "target": "/bin/sh", "mode": "4755"},
        {"target": "/srv", "directory": true, "mode": "0777"}]}]});
    std::fs::write(&p, serde_json::to_vec(&plan).unwrap()).unwrap();
    let out = t.path().join("img");
    build(&p, &out, &[]);
    let o = ocipack().arg("verify").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3));
    for want in [
        "/bin/sh is setuid/setgid",
        "/srv is world-writable",
        "/bin/sh is a shell",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    run(
        ocipack()
            .args(["verify", "--allow-root", "--allow-shell"])
            .arg(&out),
        true,
    );
}

#[test]
fn inspect_lists_layers_with_sizes_and_contents() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("img");
    build(&plan("golden.json"), &out, &[]);
    let o = run(ocipack().args(["inspect", "--json"]).arg(&out), true);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let img = &v[0];
    assert_eq!(img["tags"], serde_json::json!(["latest", "1.0.0"]));
    assert_eq!(
        img["manifestDigest"].as_str().unwrap(),
        manifest_digest(&out)
    );
    let layers = img["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 5);
    assert_eq!(layers[2]["holds"], "model fixture");
    assert!(layers[3]["mediaType"]
        .as_str()
        .unwrap()
        .ends_with("tar+zstd"));
    assert!(layers[4]["mediaType"].as_str().unwrap().ends_with(".tar"));
    assert_eq!(layers[1]["files"], 11);
    let text = run(ocipack().arg("inspect").arg(&out), true);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("model fixture") && text.contains("Healthcheck"),
        "{text}"
    );
}

#[test]
fn prebuilt_layers_assemble_into_the_same_image() {
    let t = tempfile::tempdir().unwrap();
    let fixture = repo().join("tests/data/fixture");
    let spec = |layer: serde_json::Value| serde_json::json!({"version": 1, "layer": layer, "sourceDateEpoch": 5});
    let files = serde_json::json!({"kind": "files", "comment": "app", "entries": [{"source": fixture.join("app"), "target": "/app"}]});
    let model = serde_json::json!({"kind": "model", "name": "fixture", "source": fixture.join("model.onnx"), "target": "/models/fixture/model.onnx"});
    for (name, layer) in [("files", &files), ("model", &model)] {
        let p = t.path().join(format!("{name}.json"));
        std::fs::write(&p, serde_json::to_vec(&spec(layer.clone())).unwrap()).unwrap();
        run(
            ocipack()
                .arg("layer")
                .arg(&p)
                .arg("-o")
                .arg(t.path().join(format!("{name}-layer"))),
            true,
        );
    }
    let inline = serde_json::json!({"version": 1, "name": "x", "sourceDateEpoch": 5, "layers": [files, model]});
    let pre = serde_json::json!({"version": 1, "name": "x", "sourceDateEpoch": 5, "layers": [
        {"kind": "prebuilt", "path": t.path().join("files-layer")}, {"kind": "prebuilt", "path": t.path().join("model-layer")}]});
    let (pi, pp) = (t.path().join("inline.json"), t.path().join("pre.json"));
    std::fs::write(&pi, serde_json::to_vec(&inline).unwrap()).unwrap();
    std::fs::write(&pp, serde_json::to_vec(&pre).unwrap()).unwrap();
    build(&pi, &t.path().join("a"), &[]);
    build(&pp, &t.path().join("b"), &["--link-blobs"]);
    assert_eq!(
        manifest_digest(&t.path().join("a")),
        manifest_digest(&t.path().join("b"))
    );
    let model_desc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(t.path().join("model-layer/descriptor.json")).unwrap(),
    )
    .unwrap();
    let linked = t.path().join("b/blobs/sha256").join(
        model_desc["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    assert!(std::fs::symlink_metadata(&linked)
        .unwrap()
        .file_type()
        .is_symlink());
    run(ocipack().arg("verify").arg(t.path().join("b")), true);

    // A prebuilt blob that does not match its descriptor is refused.
    std::fs::write(t.path().join("files-layer/blob"), b"tampered").unwrap();
    let o = ocipack()
        .arg("build")
        .arg(&pp)
        .arg("-o")
        .arg(t.path().join("c"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("rebuild the layer"));
    assert!(!t.path().join("c").exists());
}
