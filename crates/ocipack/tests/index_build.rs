//! `ocipack index` (issue 16): per-platform layouts built by the real packer
//! combined into one layout with an image index; bad input refused with
//! nothing written; the result independent of the inputs' order.

use std::path::{Path, PathBuf};

use ocipack::layout::{Layout, Platform};
use ocipack::plan::Plan;

/// Builds a one-binary image for `arch` with a model layer shared across arches.
fn build(root: &Path, name: &str, arch: &str, tags: &[&str]) -> PathBuf {
    let src = root.join(format!("src-{arch}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("app"), format!("binary for {arch}")).unwrap();
    std::fs::write(
        root.join("model.onnx"),
        b"the same model bytes on every platform",
    )
    .unwrap();
    let plan = serde_json::json!({
        "version": 1, "name": name, "tags": tags, "architecture": arch,
        "config": {"entrypoint": ["/app/bin/app"]},
        "layers": [
            {"kind": "model", "name": "m", "source": root.join("model.onnx"), "target": "/models/m/model.onnx"},
            {"kind": "files", "entries": [{"source": src.join("app"), "target": "/app/bin/app", "mode": "0755"}]}
        ]
    });
    let plan = Plan::from_json(&plan.to_string(), "test plan", Some(root)).unwrap();
    let out = root.join(format!("out-{arch}-{name}"));
    ocipack::build(&plan, "test plan", &out, &Default::default()).unwrap();
    out
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walk(dir).into_iter().collect();
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path().display().to_string());
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

#[test]
fn combines_platforms_into_one_verified_index_in_platform_order() {
    let t = tempfile::tempdir().unwrap();
    let amd = build(t.path(), "svc", "amd64", &["latest"]);
    let arm = build(t.path(), "svc", "arm64", &["latest"]);
    let out = t.path().join("multi");
    let r = ocipack::index::index(&[arm.clone(), amd.clone()], &out).unwrap();
    assert_eq!(r.tags.len(), 1);
    let plats: Vec<&str> = r.tags[0]
        .platforms
        .iter()
        .map(|p| p.platform.as_str())
        .collect();
    assert_eq!(
        plats,
        ["linux/amd64", "linux/arm64"],
        "sorted by platform, not by argument order"
    );

    // Argument order does not change a byte.
    let out2 = t.path().join("multi2");
    let r2 = ocipack::index::index(&[amd.clone(), arm.clone()], &out2).unwrap();
    assert_eq!(r.tags[0].index_digest, r2.tags[0].index_digest);
    for f in ["index.json", "oci-layout"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(out2.join(f)).unwrap()
        );
    }

    // The layout reads back as an index whose children match their configs.
    let l = Layout::open(&out).unwrap();
    let entry = l.find_entry(Some("latest")).unwrap();
    assert!(entry.is_index());
    assert_eq!(entry.digest, r.tags[0].index_digest);
    let pairs = l.platform_images(&entry).unwrap();
    let mut model_layers = Vec::new();
    for (p, img) in &pairs {
        let (m, _) = l.manifest(img).unwrap();
        let (_, cfg, _) = l.config(&m).unwrap();
        assert!(Platform::from_config(&cfg)
            .unwrap()
            .matches(p.as_ref().unwrap()));
        model_layers.push(m.layers()[1].digest().to_string());
    }
    // The model layer is architecture-independent: one digest, stored once.
    assert_eq!(model_layers[0], model_layers[1]);
    let blobs = std::fs::read_dir(out.join("blobs/sha256")).unwrap().count();
    assert_eq!(blobs, r.blobs);
    // 2 manifests + 2 configs + 2 app layers + 2 base layers? The base layer is
    // the same bytes on both platforms too; plus the shared model and the index.
    let distinct: std::collections::BTreeSet<String> = pairs
        .iter()
        .flat_map(|(_, img)| {
            let (m, _) = l.manifest(img).unwrap();
            let mut v: Vec<String> = m.layers().iter().map(|d| d.digest().to_string()).collect();
            v.push(m.config().digest().to_string());
            v.push(img.digest.clone());
            v
        })
        .collect();
    assert_eq!(blobs, distinct.len() + 1);

    // verify accepts it and counts the index; inspect shows the platforms.
    let v = ocipack::verify::verify(&out, Default::default()).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!((v.indexes, v.images), (1, 2));
    let info = ocipack::inspect::inspect(&out).unwrap();
    let p: Vec<_> = info.iter().map(|i| i.platform.clone().unwrap()).collect();
    assert_eq!(p, ["linux/amd64", "linux/arm64"]);
    assert!(info
        .iter()
        .all(|i| i.index_digest.as_deref() == Some(entry.digest.as_str())));

    // Rewriting an existing index output (ours) is allowed and byte-identical.
    let r3 = ocipack::index::index(&[amd, arm], &out).unwrap();
    assert_eq!(r3.tags[0].index_digest, r.tags[0].index_digest);
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let t = tempfile::tempdir().unwrap();
    let amd = build(t.path(), "svc", "amd64", &["latest"]);
    let other = build(t.path().join("b").as_path(), "svc", "amd64", &["latest"]);
    let out = t.path().join("multi");
    let before = listing(t.path());

    // Two images of the same platform for one tag.
    let e = ocipack::index::index(&[amd.clone(), other.clone()], &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("two images for linux/amd64"), "{e}");
    assert!(
        e.contains(&amd.display().to_string()) && e.contains(&other.display().to_string()),
        "{e}"
    );

    // A missing layout.
    let missing = t.path().join("no-such-layout");
    let e = ocipack::index::index(&[amd.clone(), missing.clone()], &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("OCI image layout"),
        "{e}"
    );

    // A config with no platform (os/architecture): a layout written by another tool.
    let noplat = t.path().join("noplat");
    copy_dir(&amd, &noplat);
    strip_platform(&noplat);
    let e = ocipack::index::index(std::slice::from_ref(&noplat), &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has no platform") && e.contains("\"os\" or \"architecture\""),
        "{e}"
    );
    assert!(e.contains(&noplat.display().to_string()), "{e}");

    // No input.
    let e = ocipack::index::index(&[], &out).unwrap_err().to_string();
    assert!(e.contains("no input layout"), "{e}");

    // Nothing written: no output, no staging directory left behind.
    let mut after = listing(t.path());
    after.retain(|p| !p.starts_with(&noplat.display().to_string()));
    assert_eq!(before, after);

    // A directory ocipack did not write is never replaced.
    let mine = t.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"keep me").unwrap();
    let arm = build(t.path(), "svc", "arm64", &["latest"]);
    let e = ocipack::index::index(&[amd, arm], &mine)
        .unwrap_err()
        .to_string();
    assert!(e.contains("did not write"), "{e}");
    assert_eq!(std::fs::read(mine.join("notes.txt")).unwrap(), b"keep me");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Rewrites the (only) image's config without os/architecture, re-linking
/// manifest and index.json so the layout stays internally consistent.
fn strip_platform(dir: &Path) {
    use ocipack::digest::sha256;
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(dir.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
        d
    };
    let l = Layout::open(dir).unwrap();
    let img = l.find(None).unwrap();
    let (_, raw) = l.manifest(&img).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let cfg_digest = m["config"]["digest"].as_str().unwrap().to_owned();
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&l.read_blob(&cfg_digest, None).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("architecture");
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    m["config"]["digest"] = put(&cfg_bytes).into();
    m["config"]["size"] = cfg_bytes.len().into();
    let m_bytes = serde_json::to_vec(&m).unwrap();
    let md = put(&m_bytes);
    let mut idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    for e in idx["manifests"].as_array_mut().unwrap() {
        e["digest"] = md.clone().into();
        e["size"] = m_bytes.len().into();
    }
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
}
