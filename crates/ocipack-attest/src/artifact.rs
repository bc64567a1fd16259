//! The attestation directory `OUT.attest/` beside the image layout `OUT/`:
//! the SBOM and provenance files, and `OUT.attest/oci/`, an OCI image layout
//! holding OCI 1.1 artifact manifests
//! whose `subject` is the image manifest, and the cosign signature in the
//! `sha256-<hex>.sig` tag shape. Shape: `/work/notes/attest-layout.md`,
//! `docs/supply-chain.md`.
//!
//! It is a separate layout, not extra entries of the image layout's
//! `index.json`, so readers that take "the only image" of a layout (deploy,
//! export, verify) keep seeing exactly one image; and it is one level down,
//! so `ocipack push --all OUTDIR` (which takes every child of OUTDIR holding
//! an `oci-layout`) does not take it for an image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{input, io, Result};
use crate::sign;
use ocipack::layout::{Descriptor, MANIFEST_MEDIA_TYPE, REF_NAME};

/// The OCI empty descriptor's media type (config of artifact manifests).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// SPDX JSON.
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
/// CycloneDX JSON.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";
/// A DSSE envelope holding an in-toto statement.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// artifactType of the signature referrer.
pub const SIG_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// artifactType of the provenance referrer.
pub const PROVENANCE_ARTIFACT_TYPE: &str = "application/vnd.in-toto+json";
/// Marks a directory ocipack wrote as an attestation layout.
pub const MARKER: &str = ".ocipack-attest";

/// Creates the attestation directory `root` if absent; an existing one must
/// be ocipack's (it holds [`MARKER`]) or empty.
///
/// # Errors
/// A foreign directory, or I/O.
pub fn prepare(root: &Path) -> Result<()> {
    if root.exists() && !root.join(MARKER).exists() {
        let empty = std::fs::read_dir(root).map_err(io(root))?.next().is_none();
        if !empty {
            return Err(input(
                root.display().to_string(),
                "exists and is not an attestation directory ocipack wrote (no .ocipack-attest); remove it or move the image layout",
            ));
        }
    }
    std::fs::create_dir_all(root).map_err(io(root))?;
    std::fs::write(root.join(MARKER), b"").map_err(io(root.join(MARKER)))?;
    Ok(())
}

/// `OUT` -> `OUT.attest`.
pub fn attest_dir(layout: &Path) -> PathBuf {
    let mut name = layout
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".attest");
    layout.with_file_name(name)
}

/// The OCI layout inside an attestation directory.
pub const LAYOUT_DIR: &str = "oci";

/// An attestation layout being written.
pub struct AttestLayout {
    dir: PathBuf,
    entries: Vec<Descriptor>,
    artifact_types: BTreeMap<String, String>,
}

impl AttestLayout {
    /// Opens `dir`, creating it when absent. An existing directory must be
    /// one ocipack wrote (it holds [`MARKER`]).
    ///
    /// # Errors
    /// A foreign directory, or I/O.
    pub fn open(root: &Path) -> Result<AttestLayout> {
        prepare(root)?;
        let dir = root.join(LAYOUT_DIR);
        let dir = dir.as_path();
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(io(&blobs))?;
        std::fs::write(
            dir.join("oci-layout"),
            b"{\"imageLayoutVersion\":\"1.0.0\"}",
        )
        .map_err(io(dir.join("oci-layout")))?;
        let mut entries = Vec::new();
        let mut artifact_types = BTreeMap::new();
        let index = dir.join("index.json");
        if index.exists() {
            let v: Value = serde_json::from_slice(&std::fs::read(&index).map_err(io(&index))?)
                .map_err(|e| input(index.display().to_string(), e.to_string()))?;
            for m in v["manifests"].as_array().into_iter().flatten() {
                let d: Descriptor = serde_json::from_value(m.clone())
                    .map_err(|e| input(index.display().to_string(), e.to_string()))?;
                if let Some(t) = m["artifactType"].as_str() {
                    artifact_types.insert(d.digest.clone(), t.to_owned());
                }
                entries.push(d);
            }
        }
        Ok(AttestLayout {
            dir: dir.to_owned(),
            entries,
            artifact_types,
        })
    }

    /// Writes a blob; returns its descriptor.
    ///
    /// # Errors
    /// I/O.
    pub fn blob(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let (digest, size) = ocipack::layout::write_blob(&self.dir.join("blobs/sha256"), bytes)?;
        Ok(Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            annotations: BTreeMap::new(),
        })
    }

    fn tag(&mut self, manifest: Descriptor, tag: &str, artifact_type: Option<&str>) {
        self.entries.retain(|d| d.tag() != Some(tag));
        let mut d = manifest;
        d.annotations.insert(REF_NAME.to_owned(), tag.to_owned());
        if let Some(t) = artifact_type {
            self.artifact_types.insert(d.digest.clone(), t.to_owned());
        }
        self.entries.push(d);
    }

    /// Writes an OCI 1.1 artifact manifest: empty config, `layers`, `subject`,
    /// `artifactType`; tags it `tag` in index.json. Returns its descriptor.
    ///
    /// # Errors
    /// I/O.
    pub fn artifact(
        &mut self,
        subject: &Descriptor,
        artifact_type: &str,
        layers: Vec<Descriptor>,
        annotations: BTreeMap<String, String>,
        tag: &str,
    ) -> Result<Descriptor> {
        let empty = self.blob(EMPTY_MEDIA_TYPE, b"{}")?;
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": artifact_type,
            "config": empty,
            "layers": layers,
            "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        });
        if !annotations.is_empty() {
            m["annotations"] = json!(annotations);
        }
        let d = self.blob(MANIFEST_MEDIA_TYPE, &ocipack::json::canonical(&m))?;
        self.tag(d.clone(), tag, Some(artifact_type));
        Ok(d)
    }

    /// Writes the cosign signature of `subject`: the `sha256-<hex>.sig` tag
    /// (cosign's own manifest shape, as skopeo/podman/cosign read it) and an
    /// OCI 1.1 referrer (`sha256-<hex>.sig.referrer`) with the same layer.
    ///
    /// # Errors
    /// I/O.
    pub fn cosign_signature(
        &mut self,
        subject: &Descriptor,
        payload: &[u8],
        signature_der: &[u8],
    ) -> Result<(Descriptor, Descriptor)> {
        let mut layer = self.blob(sign::SIMPLESIGNING_MEDIA_TYPE, payload)?;
        layer.annotations.insert(
            sign::SIGNATURE_ANNOTATION.to_owned(),
            sign::b64(signature_der),
        );
        let config = json!({
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        });
        let config = self.blob(
            ocipack::layout::CONFIG_MEDIA_TYPE,
            &ocipack::json::canonical(&config),
        )?;
        let m = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config,
            "layers": [layer],
        });
        let d = self.blob(MANIFEST_MEDIA_TYPE, &ocipack::json::canonical(&m))?;
        let hex = subject.digest.replace(':', "-");
        self.tag(d.clone(), &format!("{hex}.sig"), None);
        let r = self.artifact(
            subject,
            SIG_ARTIFACT_TYPE,
            vec![layer],
            BTreeMap::new(),
            &format!("{hex}.sig.referrer"),
        )?;
        Ok((d, r))
    }

    /// The manifest tagged `tag`, if any.
    pub fn find(&self, tag: &str) -> Option<&Descriptor> {
        self.entries.iter().find(|d| d.tag() == Some(tag))
    }

    /// Reads a blob by digest.
    ///
    /// # Errors
    /// I/O or a missing blob.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let hex = ocipack::digest::hex_of(digest)
            .ok_or_else(|| input(digest, "is not a sha256 digest"))?;
        let p = self.dir.join("blobs/sha256").join(hex);
        let bytes = std::fs::read(&p).map_err(io(&p))?;
        if ocipack::digest::sha256(&bytes) != digest {
            return Err(input(p.display().to_string(), "does not match its digest"));
        }
        Ok(bytes)
    }

    /// Writes index.json (entries sorted by tag: same content, same bytes).
    ///
    /// # Errors
    /// I/O.
    pub fn finish(mut self) -> Result<()> {
        self.entries
            .sort_by(|a, b| a.tag().cmp(&b.tag()).then(a.digest.cmp(&b.digest)));
        let manifests: Vec<Value> = self
            .entries
            .iter()
            .map(|d| {
                let mut v = json!(d);
                if let Some(t) = self.artifact_types.get(&d.digest) {
                    v["artifactType"] = json!(t);
                }
                v
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": ocipack::layout::INDEX_MEDIA_TYPE,
            "manifests": manifests,
        });
        let tmp = self.dir.join("index.json.tmp");
        std::fs::write(&tmp, ocipack::json::canonical(&index)).map_err(io(&tmp))?;
        std::fs::rename(&tmp, self.dir.join("index.json"))
            .map_err(io(self.dir.join("index.json")))?;
        Ok(())
    }
}
