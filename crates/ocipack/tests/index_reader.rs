//! Reading image indexes (issue 16, contract 2): an `index.json` entry with
//! the image index media type, its children with `platform`.

use std::path::Path;

use ocipack::layout::{Descriptor, Layout, Platform};

mod common;
use common::{put, INDEX, MANIFEST};

fn image(dir: &Path, arch: &str) -> Descriptor {
    let layer = put(
        dir,
        "application/vnd.oci.image.layer.v1.tar",
        arch.as_bytes(),
    );
    let cfg = serde_json::json!({"os": "linux", "architecture": arch, "rootfs": {"type": "layers", "diff_ids": []}});
    let config = put(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&cfg).unwrap(),
    );
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": [layer]});
    put(dir, MANIFEST, &serde_json::to_vec(&m).unwrap())
}

fn layout_with(entries: serde_json::Value) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        t.path().join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": entries})).unwrap(),
    )
    .unwrap();
    t
}

#[test]
fn an_index_entry_resolves_to_its_platform_children() {
    let t = layout_with(serde_json::json!([]));
    let amd = image(t.path(), "amd64");
    let arm = image(t.path(), "arm64");
    let child = |d: &Descriptor, arch: &str, v: Option<&str>| {
        let mut j = serde_json::to_value(d).unwrap();
        j["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = v {
            j["platform"]["variant"] = v.into();
        }
        j
    };
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": INDEX,
        "manifests": [child(&amd, "amd64", None), child(&arm, "arm64", Some("v8"))]});
    let mut root = put(t.path(), INDEX, &serde_json::to_vec(&idx).unwrap());
    root.annotations
        .insert("org.opencontainers.image.ref.name".into(), "scoring".into());
    std::fs::write(
        t.path().join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [root]})).unwrap(),
    )
    .unwrap();

    let layout = Layout::open(t.path()).unwrap();
    let entry = layout.find_entry(Some("scoring")).unwrap();
    assert!(entry.is_index());
    let doc = layout.read_index(&entry).unwrap();
    assert_eq!(doc.children.len(), 2);
    assert_eq!(
        doc.children[1].platform.as_ref().unwrap().to_string(),
        "linux/arm64/v8"
    );
    let pairs = layout.platform_images(&entry).unwrap();
    assert_eq!(pairs[0].0, Some(Platform::parse("linux/amd64").unwrap()));
    assert_eq!(pairs[0].1.digest, amd.digest);
    assert_eq!(pairs[1].1.digest, arm.digest);
    assert_eq!(pairs[1].1.tag.as_deref(), Some("scoring"));
    // The children are ordinary images of the layout.
    let (m, _) = layout.manifest(&pairs[1].1).unwrap();
    let (_, cfg, _) = layout.config(&m).unwrap();
    let p = Platform::from_config(&cfg).unwrap();
    assert!(p.matches(pairs[1].0.as_ref().unwrap()), "arm64 == arm64/v8");
    // The graph (what push walks) has the children before the index.
    let g = layout.graph(std::slice::from_ref(&entry)).unwrap();
    let order: Vec<&str> = g
        .children_first(&entry.digest)
        .iter()
        .map(|m| m.descriptor.digest.as_str())
        .collect();
    assert_eq!(
        order,
        [
            amd.digest.as_str(),
            arm.digest.as_str(),
            entry.digest.as_str()
        ]
    );
    // A plain image entry is one image with no platform.
    let plain = layout.platform_images(&amd).unwrap();
    assert_eq!(plain.len(), 1);
    assert!(plain[0].0.is_none());
}

#[test]
fn nested_and_mislabelled_indexes_are_refused() {
    let t = layout_with(serde_json::json!([]));
    let amd = image(t.path(), "amd64");
    let inner = put(
        t.path(),
        INDEX,
        &serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [amd]}),
        )
        .unwrap(),
    );
    let outer = put(
        t.path(),
        INDEX,
        &serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [inner]}),
        )
        .unwrap(),
    );
    let layout = Layout::open(t.path()).unwrap();
    let e = layout.read_index(&outer).unwrap_err().to_string();
    assert!(e.contains("lists another index"), "{e}");
    // A manifest named as an index is not read as one.
    let mut fake = amd.clone();
    fake.media_type = INDEX.into();
    let e = layout.read_index(&fake).unwrap_err().to_string();
    assert!(e.contains("not an image index"), "{e}");
}

#[test]
fn platforms_parse_and_come_from_configs() {
    assert_eq!(
        Platform::parse("linux/arm64").unwrap().architecture,
        "arm64"
    );
    assert_eq!(
        Platform::parse("linux/arm/v7").unwrap().variant.as_deref(),
        Some("v7")
    );
    for bad in ["linux", "linux/", "Linux/amd64", "linux/amd64/v1/x", ""] {
        assert!(Platform::parse(bad).is_err(), "{bad}");
    }
    assert!(Platform::from_config(&serde_json::json!({"os": "linux"})).is_none());
    assert!(
        Platform::from_config(&serde_json::json!({"os": "linux", "architecture": ""})).is_none()
    );
    let mut v: Vec<Platform> = ["linux/arm64", "linux/amd64", "linux/arm/v7"]
        .iter()
        .map(|s| Platform::parse(s).unwrap())
        .collect();
    v.sort();
    let s: Vec<String> = v.iter().map(ToString::to_string).collect();
    assert_eq!(s, ["linux/amd64", "linux/arm/v7", "linux/arm64"]);
}
