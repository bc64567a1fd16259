//! Reading an OCI image layout: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//!
//! Only the fields the pusher needs are modelled; manifests are kept as the
//! exact bytes on disk, because their digest is what gets pushed.
//!
//! The layout is untrusted: every file is checked to be a regular file
//! (symlinks are followed, as Nix layouts link blobs into the store, but a
//! FIFO or device is refused) of a bounded size before it is read, a
//! manifest's size must match its descriptor, and the manifest graph is
//! walked once per distinct digest with bounded depth, fan-out and totals
//! (see the `MAX_*` constants), so the work is linear in the layout's size.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The annotation that carries the tag of a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Largest `index.json` read.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;
/// Most entries in `index.json`.
pub const MAX_INDEX_ENTRIES: usize = 100_000;
/// Largest manifest or image index blob (distribution's own default limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Deepest nesting of image indexes below the selected manifest.
pub const MAX_DEPTH: u32 = 4;
/// Most entries in one nested image index.
pub const MAX_FANOUT: usize = 1_000;
/// Most distinct manifests (images and indexes) one push reads.
pub const MAX_MANIFESTS: usize = 10_000;
/// Most manifest bytes one push holds in memory.
pub const MAX_MANIFEST_TOTAL_BYTES: u64 = 64 << 20;
/// Most manifest PUTs (by digest and by tag) one push makes.
pub const MAX_MANIFEST_PUTS: usize = 10_000;

/// Reads a whole file that must be a regular file of at most `max` bytes
/// (and of exactly `expect` bytes when given), without opening anything
/// else: a FIFO would block the open, a device would never end.
pub(crate) fn read_bounded(path: &Path, max: u64, expect: Option<u64>) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let f = open_regular(path, &meta)?;
    let len = meta.len();
    if let Some(want) = expect {
        if len != want {
            return Err(Error::Layout {
                path: path.to_path_buf(),
                reason: format!(
                    "the file has {len} bytes, but its descriptor says {want}; the layout is corrupt"
                ),
            });
        }
    }
    if len > max {
        return Err(Error::Layout {
            path: path.to_path_buf(),
            reason: format!("the file has {len} bytes, more than the {max} this reader accepts"),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 != len {
        return Err(Error::Layout {
            path: path.to_path_buf(),
            reason: format!(
                "the file changed while being read ({} bytes, {len} expected)",
                bytes.len()
            ),
        });
    }
    Ok(bytes)
}

/// Opens `path` after `meta` (from following its symlinks) said it is a
/// regular file, and checks the opened file again.
pub(crate) fn open_regular(path: &Path, meta: &fs::Metadata) -> Result<fs::File> {
    let not_regular = || Error::Layout {
        path: path.to_path_buf(),
        reason: "not a regular file (a FIFO, device, socket or directory, directly or \
                 through a symlink); layouts hold regular files only"
            .into(),
    };
    if !meta.is_file() {
        return Err(not_regular());
    }
    let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    if !f.metadata().map_err(|e| Error::io(path, e))?.is_file() {
        return Err(not_regular());
    }
    Ok(f)
}

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
    /// Child manifests, for an image index (each distinct child once;
    /// shared with other parents that list it).
    pub children: Vec<Arc<Manifest>>,
}

impl Manifest {
    /// The media type to send as Content-Type: the descriptor's, else the manifest's own.
    pub fn media_type(&self) -> &str {
        &self.descriptor.media_type
    }

    /// Distinct child manifests, deepest first: the order to PUT them in.
    pub fn children_in_push_order(&self) -> Vec<Arc<Manifest>> {
        fn walk(m: &Manifest, seen: &mut HashSet<String>, out: &mut Vec<Arc<Manifest>>) {
            for c in &m.children {
                if seen.insert(c.descriptor.digest.clone()) {
                    walk(c, seen, out);
                    out.push(c.clone());
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut HashSet::new(), &mut out);
        out
    }

    /// Every blob referenced by this manifest and its children, each once,
    /// smallest first so that an interrupted push leaves the most blobs done.
    pub fn all_blobs(&self) -> Vec<Descriptor> {
        let mut out: Vec<Descriptor> = Vec::new();
        let mut seen_blobs = HashSet::new();
        let mut seen_manifests = HashSet::new();
        let mut stack = vec![self];
        while let Some(m) = stack.pop() {
            for b in &m.blobs {
                if seen_blobs.insert(b.digest.as_str()) {
                    out.push(b.clone());
                }
            }
            for c in &m.children {
                if seen_manifests.insert(c.descriptor.digest.as_str()) {
                    stack.push(c);
                }
            }
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
        let text = read_bounded(&marker, 4096, None)
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| Error::Layout {
                    path: marker.clone(),
                    reason: "not UTF-8".into(),
                })
            })
            .map_err(|e| Error::Layout {
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
        let bytes = read_bounded(&index_path, MAX_INDEX_BYTES, None)?;
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
        if index.manifests.len() > MAX_INDEX_ENTRIES {
            return Err(Error::Layout {
                path: index_path,
                reason: format!(
                    "the index lists {} manifests, more than the {MAX_INDEX_ENTRIES} a push accepts",
                    index.manifests.len()
                ),
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
                let mut at: HashMap<&str, usize> = HashMap::new();
                for d in &self.index {
                    let Some(name) = d.annotations.get(REF_NAME) else {
                        continue;
                    };
                    match at.get(d.digest.as_str()) {
                        Some(&i) => out[i].1.push(name.clone()),
                        None => {
                            at.insert(&d.digest, out.len());
                            out.push((d.clone(), vec![name.clone()]));
                        }
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

    /// Reads a manifest (and, for an index, its children) and verifies its
    /// size and digest. `budget` carries the limits across every manifest of
    /// one push: each distinct digest is read once.
    ///
    /// # Errors
    /// [`Error::DigestMismatch`] for a manifest whose bytes do not match,
    /// [`Error::Layout`] for one that is not JSON, has another size than its
    /// descriptor, is not a regular file, or exceeds a limit.
    pub fn manifest(&self, descriptor: &Descriptor, budget: &mut Budget) -> Result<Arc<Manifest>> {
        self.manifest_at(descriptor, 0, budget)
    }

    fn manifest_at(
        &self,
        descriptor: &Descriptor,
        depth: u32,
        budget: &mut Budget,
    ) -> Result<Arc<Manifest>> {
        let path = self.blob_path(&descriptor.digest)?;
        if let Some(m) = budget.read.get(&descriptor.digest) {
            if m.descriptor.size != descriptor.size {
                return Err(Error::Layout {
                    path,
                    reason: format!(
                        "descriptors of this manifest disagree on its size ({} and {})",
                        m.descriptor.size, descriptor.size
                    ),
                });
            }
            return Ok(m.clone());
        }
        let limit = |reason: String| Error::Layout {
            path: path.clone(),
            reason,
        };
        if depth > MAX_DEPTH {
            return Err(limit(format!(
                "image indexes nest more than {MAX_DEPTH} levels deep"
            )));
        }
        if budget.read.len() >= MAX_MANIFESTS {
            return Err(limit(format!(
                "the push would read more than {MAX_MANIFESTS} distinct manifests"
            )));
        }
        if descriptor.size > MAX_MANIFEST_BYTES {
            return Err(limit(format!(
                "its descriptor says {} bytes; manifests of more than {MAX_MANIFEST_BYTES} bytes are refused",
                descriptor.size
            )));
        }
        budget.bytes += descriptor.size;
        if budget.bytes > MAX_MANIFEST_TOTAL_BYTES {
            return Err(limit(format!(
                "the push's manifests add up to more than {MAX_MANIFEST_TOTAL_BYTES} bytes"
            )));
        }
        let bytes = read_bounded(&path, MAX_MANIFEST_BYTES, Some(descriptor.size))?;
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
        if refs.manifests.len() > MAX_FANOUT {
            return Err(limit(format!(
                "the image index lists {} manifests, more than {MAX_FANOUT}",
                refs.manifests.len()
            )));
        }
        let mut descriptor = descriptor.clone();
        if descriptor.media_type.is_empty() {
            descriptor.media_type = refs.media_type.clone().unwrap_or_default();
        }
        let mut children: Vec<Arc<Manifest>> = Vec::new();
        let mut listed = HashSet::new();
        for child in &refs.manifests {
            if listed.insert(child.digest.as_str()) {
                children.push(self.manifest_at(child, depth + 1, budget)?);
            }
        }
        let mut blobs: Vec<Descriptor> = refs.config.into_iter().collect();
        blobs.extend(refs.layers);
        let m = Arc::new(Manifest {
            descriptor,
            bytes,
            blobs,
            children,
        });
        budget.read.insert(m.descriptor.digest.clone(), m.clone());
        Ok(m)
    }
}

/// What one push has read so far, to keep its work bounded.
#[derive(Debug, Default)]
pub struct Budget {
    read: HashMap<String, Arc<Manifest>>,
    bytes: u64,
}

/// The hex part of a well-formed `sha256:<64 hex>` digest.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(hex)
}
