//! Hand-made layouts for the hostile-input tests: raw tar entries with any
//! name, any link target, any blob contents.
#![allow(dead_code)]

use std::path::Path;

use ocipack::digest::sha256;

/// One raw tar entry.
pub struct Raw<'a> {
    pub name: &'a str,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub link: Option<&'a str>,
    pub data: &'a [u8],
}

pub fn file(name: &str, mode: u32) -> Raw<'_> {
    Raw {
        name,
        kind: tar::EntryType::Regular,
        mode,
        link: None,
        data: b"x",
    }
}
pub fn dir(name: &str, mode: u32) -> Raw<'_> {
    Raw {
        name,
        kind: tar::EntryType::Directory,
        mode,
        link: None,
        data: b"",
    }
}
pub fn symlink<'a>(name: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Symlink,
        mode: 0o777,
        link: Some(target),
        data: b"",
    }
}
pub fn hardlink<'a>(name: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Link,
        mode: 0o644,
        link: Some(target),
        data: b"",
    }
}

/// A tar of `entries`, names and link targets written byte for byte (the tar
/// crate's own setters refuse `..`, which is the point here).
pub fn tar_of(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_old();
        {
            let old = h.as_old_mut();
            old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            if let Some(l) = e.link {
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

/// The entries every good image has: /etc/passwd and /tmp 1777.
pub fn base() -> Vec<u8> {
    tar_of(&[
        dir("etc/", 0o755),
        file("etc/passwd", 0o644),
        dir("tmp/", 0o1777),
    ])
}

/// Writes a blob, returning its descriptor JSON.
pub fn blob(dir: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let d = sha256(bytes);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A manifest over uncompressed `layers`; returns its descriptor.
pub fn manifest(dir: &Path, layers: &[Vec<u8>]) -> serde_json::Value {
    let descs: Vec<_> = layers.iter().map(|l| blob(dir, TAR, l)).collect();
    let diff_ids: Vec<_> = layers.iter().map(|l| sha256(l)).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"User": "65532:65532"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let c = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": c, "layers": descs});
    blob(dir, MANIFEST, &serde_json::to_vec(&m).unwrap())
}

/// `oci-layout` and an `index.json` listing `entries` (tagged `latest`, `t1`, ...).
pub fn index(dir: &Path, entries: &[serde_json::Value]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let ms: Vec<_> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            let tag = if i == 0 {
                "latest".to_owned()
            } else {
                format!("t{i}")
            };
            e["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
            e
        })
        .collect();
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": ms});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
}

/// A one-image layout of `layers`.
pub fn layout(dir: &Path, layers: &[Vec<u8>]) {
    let m = manifest(dir, layers);
    index(dir, &[m]);
}
