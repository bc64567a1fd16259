//! Reading an OCI image layout: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//!
//! Only the fields the pusher needs are modelled; manifests are kept as the
//! exact bytes on disk, because their digest is what gets pushed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The annotation that carries the tag of a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor as found in `index.json` and in manifests.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// `sha256:<hex>` of the referenced content.
    pub digest: String,
    /// Byte size of the referenced content.
    pub size: u64,
    /// Optional annotations (the tag lives here in `index.json`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The parts of a manifest or index that reference other content.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestRefs {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

/// A manifest read from the layout, with what it references.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The descriptor that points at it.
    pub descriptor: Descriptor,
    /// Its exact bytes.
    pub bytes: Vec<u8>,
    /// Blobs (config and layers) it references directly.
    pub blobs: Vec<Descriptor>,
    /// Child manifests, for an image index.
    pub children: Vec<Manifest>,
}

impl Manifest {
    /// The media type to send as Content-Type: the descriptor's, else the manifest's own.
    pub fn media_type(&self) -> &str {
        &self.descriptor.media_type
    }

    /// Every blob referenced by this manifest and its children, each once,
    /// smallest first so that an interrupted push leaves the most blobs done.
    pub fn all_blobs(&self) -> Vec<Descriptor> {
        let mut out: Vec<Descriptor> = Vec::new();
        let mut stack = vec![self];
        while let Some(m) = stack.pop() {
            for b in &m.blobs {
                if !out.iter().any(|o| o.digest == b.digest) {
                    out.push(b.clone());
                }
            }
            stack.extend(m.children.iter());
        }
        out.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.digest.cmp(&b.digest)));
        out
    }
}

/// An opened OCI image layout directory.
#[derive(Debug)]
pub struct Layout {
    root: PathBuf,
    index: Vec<Descriptor>,
}

impl Layout {
    /// Opens the layout at `root`, reading `oci-layout` and `index.json`.
    ///
    /// # Errors
    /// [`Error::Layout`] when either file is missing or malformed.
    pub fn open(root: &Path) -> Result<Self> {
        let marker = root.join("oci-layout");
        let text = fs::read_to_string(&marker).map_err(|e| Error::Layout {
            path: marker.clone(),
            reason: format!("cannot read the oci-layout marker ({e})"),
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Layout {
            path: marker.clone(),
            reason: format!("invalid JSON ({e})"),
        })?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(Error::Layout {
                path: marker,
                reason: "imageLayoutVersion is not \"1.0.0\"".into(),
            });
        }
        let index_path = root.join("index.json");
        let bytes = fs::read(&index_path).map_err(|e| Error::io(&index_path, e))?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| Error::Layout {
            path: index_path.clone(),
            reason: format!("invalid index ({e})"),
        })?;
        if index.manifests.is_empty() {
            return Err(Error::Layout {
                path: index_path,
                reason: "the index lists no manifests".into(),
            });
        }
        Ok(Layout {
            root: root.to_path_buf(),
            index: index.manifests,
        })
    }

    /// The path of a blob file, after checking the digest's form.
    ///
    /// # Errors
    /// [`Error::Layout`] for a digest that is not `sha256:` + 64 lowercase hex digits.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = sha256_hex(digest).ok_or_else(|| Error::Layout {
            path: self.root.clone(),
            reason: format!(
                "unsupported or malformed digest {digest:?} (only sha256 is supported)"
            ),
        })?;
        Ok(self.root.join("blobs").join("sha256").join(hex))
    }

    /// Chooses the manifests to push and the tags for each.
    ///
    /// With a tag: the index entry whose ref name is that tag, or the only
    /// entry when the index has exactly one. Without: every entry with a ref
    /// name, pushed under it.
    ///
    /// # Errors
    /// [`Error::Layout`] when nothing matches, naming the tags that exist.
    pub fn select(&self, tag: Option<&str>) -> Result<Vec<(Descriptor, Vec<String>)>> {
        let names: Vec<&str> = self
            .index
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
            .collect();
        let mut out: Vec<(Descriptor, Vec<String>)> = Vec::new();
        match tag {
            Some(tag) => {
                let found = self
                    .index
                    .iter()
                    .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag));
                let d = match (found, self.index.as_slice()) {
                    (Some(d), _) => d,
                    (None, [only]) => only,
                    (None, _) => {
                        return Err(Error::Layout {
                            path: self.root.join("index.json"),
                            reason: format!(
                                "no manifest is named {tag:?}; the layout has {names:?}, pick one of those tags"
                            ),
                        })
                    }
                };
                out.push((d.clone(), vec![tag.to_string()]));
            }
            None => {
                for d in &self.index {
                    let Some(name) = d.annotations.get(REF_NAME) else {
                        continue;
                    };
                    match out.iter_mut().find(|(o, _)| o.digest == d.digest) {
                        Some((_, tags)) => tags.push(name.clone()),
                        None => out.push((d.clone(), vec![name.clone()])),
                    }
                }
                if out.is_empty() {
                    return Err(Error::Layout {
                        path: self.root.join("index.json"),
                        reason: format!(
                            "no manifest carries a {REF_NAME} annotation; give the tag explicitly (REPO:TAG)"
                        ),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Reads a manifest (and, for an index, its children) and verifies its digest.
    ///
    /// # Errors
    /// [`Error::DigestMismatch`] for a manifest whose bytes do not match,
    /// [`Error::Layout`] for one that is not JSON or nests too deep.
    pub fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest> {
        self.manifest_at(descriptor, 0)
    }

    fn manifest_at(&self, descriptor: &Descriptor, depth: u32) -> Result<Manifest> {
        let path = self.blob_path(&descriptor.digest)?;
        if depth > 4 {
            return Err(Error::Layout {
                path,
                reason: "image indexes nest more than 4 levels deep".into(),
            });
        }
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let actual = crate::digest::sha256_of(&bytes);
        if actual != descriptor.digest {
            return Err(Error::DigestMismatch {
                path,
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        let refs: ManifestRefs = serde_json::from_slice(&bytes).map_err(|e| Error::Layout {
            path: path.clone(),
            reason: format!("manifest is not valid JSON ({e})"),
        })?;
        let mut descriptor = descriptor.clone();
        if descriptor.media_type.is_empty() {
            descriptor.media_type = refs.media_type.clone().unwrap_or_default();
        }
        let mut children = Vec::new();
        for child in &refs.manifests {
            children.push(self.manifest_at(child, depth + 1)?);
        }
        let mut blobs: Vec<Descriptor> = refs.config.into_iter().collect();
        blobs.extend(refs.layers);
        Ok(Manifest {
            descriptor,
            bytes,
            blobs,
            children,
        })
    }
}

/// The hex part of a well-formed `sha256:<64 hex>` digest.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(hex)
}
