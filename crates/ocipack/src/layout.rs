//! The OCI image layout on disk, written by the packer and read back by the
//! verifier, `inspect`, `export` and the pusher (`ocipack-push`).
//!
//! Writing: [`write_file`], [`write_blob`]. Reading treats every layout as
//! untrusted:
//!
//! - every blob, `oci-layout` and `index.json` is opened without blocking and
//!   must be a regular file (a FIFO or a symlink to `/dev/zero` is refused at
//!   once); a symlinked blob is followed per [`Symlinks`];
//! - its size is checked against the descriptor before reading, and JSON
//!   documents against [`Limits::max_json_bytes`];
//! - blobs are read through a [`VerifiedReader`], which hashes while
//!   streaming and turns end of stream into an error when the digest or size
//!   differs, so nothing unverified is handed on;
//! - index depth, entries per index, manifests per walk and layers per
//!   manifest are bounded by [`Limits`], each with an error naming the limit.
//!
//! ```no_run
//! use ocipack::layout::Layout;
//! let layout = Layout::open(std::path::Path::new("out/scoring"))?;
//! let roots = layout.index_descriptors()?;
//! let graph = layout.graph(&roots)?;
//! for blob in graph.blobs(&roots[0].digest) {
//!     let mut r = layout.open_blob(&blob)?; // a VerifiedReader
//!     std::io::copy(&mut r, &mut std::io::sink()).map_err(|e| layout.read_err(&blob.digest, e))?;
//! }
//! # Ok::<(), ocipack::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use crate::digest::{hex_of, sha256};
use crate::error::{Error, IoContext, Result};

mod blob;
mod index;
mod limits;

pub use blob::{BlobMismatch, Symlinks, VerifiedReader};
pub use index::{ImageIndexDoc, IndexChild, Platform};
pub use limits::Limits;

/// OCI image index media type.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Docker manifest list media type (an index, for reading).
pub const DOCKER_MANIFEST_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The annotation that names a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Writes `bytes` to `path` (created or truncated) and syncs it.
///
/// # Errors
/// I/O errors on `path`.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).at(path)?;
    f.write_all(bytes).at(path)?;
    f.sync_all().at(path)
}

/// Writes a layout's top-level files into `dir`: `index.json` (the canonical
/// JSON of `index`) and `oci-layout`.
///
/// # Errors
/// I/O errors.
pub fn write_top(dir: &Path, index: &serde_json::Value) -> Result<()> {
    write_file(&dir.join("index.json"), &crate::json::canonical(index))?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
}

/// Writes a blob under `blobs` (the `blobs/sha256` directory): `(digest, size)`.
///
/// # Errors
/// I/O errors.
pub fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<(String, u64)> {
    let digest = sha256(bytes);
    let path = blobs.join(hex_of(&digest).expect("computed"));
    if !path.exists() {
        write_file(&path, bytes)?;
    }
    Ok((digest, bytes.len() as u64))
}

/// A content descriptor, as in `index.json` and in manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content (empty when absent).
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>` of the referenced content.
    pub digest: String,
    /// Byte size of the referenced content.
    pub size: u64,
    /// Annotations (the tag lives here in `index.json`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The tag ([`REF_NAME`] annotation), if any.
    pub fn tag(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }

    /// Whether this descriptor points at an index rather than an image manifest.
    pub fn is_index(&self) -> bool {
        self.media_type == INDEX_MEDIA_TYPE || self.media_type == DOCKER_MANIFEST_LIST_MEDIA_TYPE
    }
}

/// One manifest (or index) read from a layout, verified, with what it references.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The descriptor that first pointed at it; `media_type` filled from the
    /// document's own `mediaType` when the descriptor had none.
    pub descriptor: Descriptor,
    /// Its exact bytes (their digest is the descriptor's).
    pub bytes: Vec<u8>,
    /// The config, for an image manifest.
    pub config: Option<Descriptor>,
    /// The layers, for an image manifest.
    pub layers: Vec<Descriptor>,
    /// The entries, for an index.
    pub children: Vec<Descriptor>,
}

/// Every manifest reachable from some roots, each read and verified once.
#[derive(Debug, Clone, Default)]
pub struct ImageGraph {
    /// By digest.
    pub manifests: BTreeMap<String, Manifest>,
}

impl ImageGraph {
    /// A manifest by digest.
    pub fn get(&self, digest: &str) -> Option<&Manifest> {
        self.manifests.get(digest)
    }

    /// The manifests under `root` (itself included), each once, children
    /// before the indexes that list them: the order to upload them in.
    pub fn children_first(&self, root: &str) -> Vec<&Manifest> {
        let mut out = Vec::new();
        let mut done = BTreeSet::new();
        self.post_order(root, &mut done, &mut out);
        out
    }

    fn post_order<'a>(
        &'a self,
        digest: &str,
        done: &mut BTreeSet<String>,
        out: &mut Vec<&'a Manifest>,
    ) {
        if !done.insert(digest.to_owned()) {
            return;
        }
        let Some(m) = self.manifests.get(digest) else {
            return;
        };
        for c in &m.children {
            self.post_order(&c.digest, done, out);
        }
        out.push(m);
    }

    /// Every config and layer blob under `root`, each once, smallest first
    /// (so an interrupted push leaves the most blobs done).
    pub fn blobs(&self, root: &str) -> Vec<Descriptor> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for m in self.children_first(root) {
            for b in m.config.iter().chain(&m.layers) {
                if seen.insert(b.digest.clone()) {
                    out.push(b.clone());
                }
            }
        }
        out.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.digest.cmp(&b.digest)));
        out
    }
}

/// An image found in a layout: one tag (or untagged entry) of `index.json`.
#[derive(Debug, Clone)]
pub struct ImageRef {
    /// The tag, if the entry has one.
    pub tag: Option<String>,
    /// Manifest digest.
    pub digest: String,
    /// Manifest size per the index.
    pub size: u64,
}

/// A layout opened for reading.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Its directory.
    pub dir: PathBuf,
    limits: Limits,
    symlinks: Symlinks,
}

/// The parts of a manifest or index that reference other content.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refs {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct IndexRefs {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl Layout {
    /// Opens `dir` with the default [`Limits`], following symlinked blobs
    /// to regular files ([`Symlinks::Follow`]).
    ///
    /// # Errors
    /// A directory that is not an OCI layout ([`Error::Layout`]).
    pub fn open(dir: &Path) -> Result<Layout> {
        Layout::open_with(dir, Limits::default(), Symlinks::Follow)
    }

    /// Opens `dir` with explicit limits and symlink policy.
    ///
    /// # Errors
    /// As [`Layout::open`].
    pub fn open_with(dir: &Path, limits: Limits, symlinks: Symlinks) -> Result<Layout> {
        let layout = Layout {
            dir: dir.to_owned(),
            limits,
            symlinks,
        };
        let bytes = layout
            .read_small(&dir.join("oci-layout"), "oci-layout")
            .map_err(|e| layout.err(format!("{e}; is this an OCI image layout?")))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| layout.err(format!("oci-layout is not JSON: {e}")))?;
        if v.get("imageLayoutVersion").and_then(|x| x.as_str()) != Some("1.0.0") {
            return Err(layout.err(format!(
                "oci-layout has imageLayoutVersion {}, expected \"1.0.0\"",
                v.get("imageLayoutVersion")
                    .unwrap_or(&serde_json::Value::Null)
            )));
        }
        Ok(layout)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The limits it reads with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// An [`Error::Layout`] for this layout.
    pub fn err(&self, message: impl Into<String>) -> Error {
        Error::Layout {
            layout: self.dir.clone(),
            message: message.into(),
        }
    }

    /// An [`Error::Limit`] for this layout.
    fn limit(&self, limit: &'static str, message: String) -> Error {
        Error::Limit {
            layout: self.dir.clone(),
            limit,
            message,
        }
    }

    /// Turns an `io::Error` from reading blob `digest` (e.g. from a
    /// [`VerifiedReader`]) into [`Error::Blob`] when it carries a
    /// [`BlobMismatch`], else [`Error::Layout`].
    pub fn read_err(&self, digest: &str, e: std::io::Error) -> Error {
        match e.get_ref().and_then(|i| i.downcast_ref::<BlobMismatch>()) {
            Some(m) => Error::Blob {
                layout: self.dir.clone(),
                mismatch: m.clone(),
            },
            None => self.err(format!("blob {digest} cannot be read: {e}")),
        }
    }

    /// Path of a blob by digest (not opened, nothing checked but the digest's form).
    ///
    /// # Errors
    /// A digest that is not `sha256:<64 lowercase hex>`.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = hex_of(digest).ok_or_else(|| {
            self.err(format!(
                "digest {digest:?} is not sha256:<64 lowercase hex> (only sha256 is supported)"
            ))
        })?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    /// Opens a blob: a regular file (per the symlink policy), `size` bytes if
    /// given (checked before reading), read through a [`VerifiedReader`].
    ///
    /// # Errors
    /// Malformed digest, missing blob, not a regular file, a symlink the
    /// policy refuses, or a size mismatch ([`Error::Blob`]).
    pub fn open_blob_digest(
        &self,
        digest: &str,
        size: Option<u64>,
    ) -> Result<VerifiedReader<File>> {
        let path = self.blob_path(digest)?;
        let lmeta = fs::symlink_metadata(&path)
            .map_err(|e| self.err(format!("blob {digest} cannot be read: {e}")))?;
        if lmeta.file_type().is_symlink() && self.symlinks == Symlinks::Confined {
            match blob::confined_target(&self.dir, &path) {
                Ok(None) => {}
                Ok(Some(t)) => {
                    return Err(self.err(format!(
                        "blob {digest} is a symlink to {}, outside the layout; refusing to follow it (copy the blob into the layout if you trust it)",
                        t.display()
                    )))
                }
                Err(e) => return Err(self.err(format!("blob {digest} cannot be resolved: {e}"))),
            }
        }
        let (f, len) = blob::open_regular(&path)
            .map_err(|e| self.err(format!("blob {digest} cannot be read: {e}")))?;
        if let Some(s) = size {
            if len != s {
                return Err(Error::Blob {
                    layout: self.dir.clone(),
                    mismatch: BlobMismatch {
                        expected_digest: digest.to_owned(),
                        actual_digest: None,
                        expected_size: Some(s),
                        actual_size: len,
                    },
                });
            }
        }
        Ok(VerifiedReader::new(f, digest, size.or(Some(len))))
    }

    /// [`Layout::open_blob_digest`] for a descriptor (its digest and size).
    ///
    /// # Errors
    /// As [`Layout::open_blob_digest`].
    pub fn open_blob(&self, d: &Descriptor) -> Result<VerifiedReader<File>> {
        self.open_blob_digest(&d.digest, Some(d.size))
    }

    /// Reads a whole blob of at most [`Limits::max_json_bytes`], verified.
    ///
    /// # Errors
    /// As [`Layout::open_blob_digest`], a blob over the limit, or a digest mismatch.
    pub fn read_blob(&self, digest: &str, size: Option<u64>) -> Result<Vec<u8>> {
        let max = self.limits.max_json_bytes;
        if let Some(s) = size.filter(|&s| s > max) {
            return Err(self.limit(
                "max_json_bytes",
                format!(
                    "blob {digest} is {s} bytes; manifests and configs are read only up to {max}"
                ),
            ));
        }
        let mut r = self.open_blob_digest(digest, size)?;
        let mut bytes = Vec::new();
        (&mut r)
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_err(digest, e))?;
        if bytes.len() as u64 > max {
            return Err(self.limit(
                "max_json_bytes",
                format!("blob {digest} is over {max} bytes; manifests and configs are read only up to that"),
            ));
        }
        Ok(bytes)
    }

    /// Streams a whole blob through the hasher: `(digest, size)` as found.
    ///
    /// # Errors
    /// A blob that is missing or not a regular file.
    pub fn hash_blob(&self, digest: &str) -> Result<(String, u64)> {
        let path = self.blob_path(digest)?;
        let (f, _) = blob::open_regular(&path)
            .map_err(|e| self.err(format!("blob {digest} cannot be read: {e}")))?;
        crate::digest::sha256_reader(f).at(&path)
    }

    /// Reads a small file of the layout (not a blob) with the JSON size limit.
    fn read_small(&self, path: &Path, what: &str) -> Result<Vec<u8>> {
        let (f, len) = blob::open_regular(path)
            .map_err(|e| self.err(format!("{what} cannot be read: {e}")))?;
        let max = self.limits.max_json_bytes;
        if len > max {
            return Err(self.limit(
                "max_json_bytes",
                format!("{what} is {len} bytes; the limit is {max}"),
            ));
        }
        let mut bytes = Vec::new();
        f.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.err(format!("{what} cannot be read: {e}")))?;
        if bytes.len() as u64 > max {
            return Err(self.limit(
                "max_json_bytes",
                format!("{what} grew past {max} bytes while being read"),
            ));
        }
        Ok(bytes)
    }

    /// The entries of `index.json`, at most [`Limits::max_index_entries`].
    ///
    /// # Errors
    /// Missing, oversized or malformed `index.json`, or too many entries.
    pub fn index_descriptors(&self) -> Result<Vec<Descriptor>> {
        let bytes = self.read_small(&self.dir.join("index.json"), "index.json")?;
        let index: IndexRefs = serde_json::from_slice(&bytes)
            .map_err(|e| self.err(format!("index.json is not a valid OCI index: {e}")))?;
        self.check_entries("index.json", index.manifests.len())?;
        Ok(index.manifests)
    }

    fn check_entries(&self, what: &str, n: usize) -> Result<()> {
        let max = self.limits.max_index_entries;
        if n > max {
            return Err(self.limit(
                "max_index_entries",
                format!("{what} lists {n} manifests; at most {max} are read per index"),
            ));
        }
        Ok(())
    }

    /// The index, parsed (oci-spec types), within the limits.
    ///
    /// # Errors
    /// Missing, oversized or malformed `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        let bytes = self.read_small(&self.dir.join("index.json"), "index.json")?;
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| self.err(format!("index.json is not a valid OCI index: {e}")))?;
        self.check_entries("index.json", index.manifests().len())?;
        Ok(index)
    }

    /// Every image entry of the index.
    ///
    /// # Errors
    /// As [`Layout::index`].
    pub fn images(&self) -> Result<Vec<ImageRef>> {
        Ok(self
            .index_descriptors()?
            .into_iter()
            .map(|d| ImageRef {
                tag: d.tag().map(str::to_owned),
                digest: d.digest,
                size: d.size,
            })
            .collect())
    }

    /// Finds an image by tag, or the only one when `tag` is `None`.
    ///
    /// # Errors
    /// No such tag, or several images and no tag given.
    pub fn find(&self, tag: Option<&str>) -> Result<ImageRef> {
        let images = self.images()?;
        match tag {
            Some(t) => images
                .into_iter()
                .find(|i| i.tag.as_deref() == Some(t))
                .ok_or_else(|| self.err(format!("no image tagged {t:?}"))),
            None => {
                let digests: BTreeSet<&str> = images.iter().map(|i| i.digest.as_str()).collect();
                match digests.len() {
                    0 => Err(self.err("index.json lists no image")),
                    1 => Ok(images.into_iter().next().expect("one")),
                    _ => Err(self.err("the layout holds several images; name one with --tag")),
                }
            }
        }
    }

    /// Reads and parses an image manifest (oci-spec types).
    ///
    /// # Errors
    /// Corrupt, oversized or malformed manifest, or too many layers.
    pub fn manifest(&self, image: &ImageRef) -> Result<(ImageManifest, Vec<u8>)> {
        let bytes = self.read_blob(&image.digest, Some(image.size))?;
        let m: ImageManifest = serde_json::from_slice(&bytes).map_err(|e| {
            self.err(format!(
                "manifest {} is not a valid OCI manifest: {e}",
                image.digest
            ))
        })?;
        self.check_layers(&image.digest, m.layers().len())?;
        Ok((m, bytes))
    }

    fn check_layers(&self, digest: &str, n: usize) -> Result<()> {
        let max = self.limits.max_layers;
        if n > max {
            return Err(self.limit(
                "max_layers",
                format!("manifest {digest} lists {n} layers; at most {max} are read"),
            ));
        }
        Ok(())
    }

    /// Reads a config blob both as OCI config and as raw JSON (for Docker extensions).
    ///
    /// # Errors
    /// Corrupt, oversized or malformed config.
    pub fn config(
        &self,
        manifest: &ImageManifest,
    ) -> Result<(ImageConfiguration, serde_json::Value, Vec<u8>)> {
        let d = manifest.config();
        let bytes = self.read_blob(d.digest().as_ref(), Some(d.size()))?;
        let cfg = serde_json::from_slice(&bytes).map_err(|e| {
            self.err(format!(
                "config {} is not a valid OCI config: {e}",
                d.digest()
            ))
        })?;
        let raw = serde_json::from_slice(&bytes)
            .map_err(|e| self.err(format!("config {} is not JSON: {e}", d.digest())))?;
        Ok((cfg, raw, bytes))
    }

    /// Reads every manifest and index reachable from `roots` (each distinct
    /// digest once, verified against the first descriptor naming it), within
    /// [`Limits::max_index_depth`], [`Limits::max_index_entries`],
    /// [`Limits::max_manifests`] and [`Limits::max_layers`].
    ///
    /// # Errors
    /// Any unreadable, corrupt or malformed manifest, a size that differs
    /// between two descriptors of one digest, or a limit exceeded.
    pub fn graph(&self, roots: &[Descriptor]) -> Result<ImageGraph> {
        let mut g = ImageGraph::default();
        for r in roots {
            self.visit(r, 0, &mut g)?;
        }
        Ok(g)
    }

    fn visit(&self, d: &Descriptor, depth: usize, g: &mut ImageGraph) -> Result<()> {
        if let Some(m) = g.manifests.get(&d.digest) {
            if m.descriptor.size != d.size {
                return Err(self.err(format!(
                    "manifest {} is named with sizes {} and {}",
                    d.digest, m.descriptor.size, d.size
                )));
            }
            return Ok(());
        }
        if depth > self.limits.max_index_depth {
            return Err(self.limit(
                "max_index_depth",
                format!(
                    "indexes nest more than {} levels deep at {}",
                    self.limits.max_index_depth, d.digest
                ),
            ));
        }
        if g.manifests.len() >= self.limits.max_manifests {
            return Err(self.limit(
                "max_manifests",
                format!(
                    "more than {} distinct manifests are reachable from index.json",
                    self.limits.max_manifests
                ),
            ));
        }
        let bytes = self.read_blob(&d.digest, Some(d.size))?;
        let refs: Refs = serde_json::from_slice(&bytes).map_err(|e| {
            self.err(format!(
                "manifest {} is not a valid manifest or index: {e}",
                d.digest
            ))
        })?;
        self.check_entries(&format!("index {}", d.digest), refs.manifests.len())?;
        self.check_layers(&d.digest, refs.layers.len())?;
        let mut descriptor = d.clone();
        if descriptor.media_type.is_empty() {
            descriptor.media_type = refs.media_type.clone().unwrap_or_default();
        }
        let children = refs.manifests;
        g.manifests.insert(
            d.digest.clone(),
            Manifest {
                descriptor,
                bytes,
                config: refs.config,
                layers: refs.layers,
                children: children.clone(),
            },
        );
        for c in &children {
            self.visit(c, depth + 1, g)?;
        }
        Ok(())
    }
}
