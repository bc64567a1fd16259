//! The OCI image layout on disk: writing blobs, reading index, manifests and configs.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::{hex_of, sha256, sha256_reader};
use crate::error::{Error, IoContext, Result};

/// OCI image index media type.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
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
#[derive(Debug)]
pub struct Layout {
    /// Its directory.
    pub dir: PathBuf,
}

impl Layout {
    /// Opens `dir`, checking `oci-layout` is there.
    ///
    /// # Errors
    /// A directory that is not an OCI layout.
    pub fn open(dir: &Path) -> Result<Layout> {
        let marker = dir.join("oci-layout");
        let text = fs::read_to_string(&marker).map_err(|e| Error::Layout {
            layout: dir.to_owned(),
            message: format!("no readable oci-layout file ({e}); is this an OCI image layout?"),
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Layout {
            layout: dir.to_owned(),
            message: format!("oci-layout is not JSON: {e}"),
        })?;
        if v.get("imageLayoutVersion").and_then(|x| x.as_str()) != Some("1.0.0") {
            return Err(Error::Layout {
                layout: dir.to_owned(),
                message: format!(
                    "oci-layout has imageLayoutVersion {}, expected \"1.0.0\"",
                    v["imageLayoutVersion"]
                ),
            });
        }
        Ok(Layout {
            dir: dir.to_owned(),
        })
    }

    /// The error for this layout.
    pub fn err(&self, message: impl Into<String>) -> Error {
        Error::Layout {
            layout: self.dir.clone(),
            message: message.into(),
        }
    }

    /// Path of a blob by digest.
    ///
    /// # Errors
    /// A malformed digest.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = hex_of(digest).ok_or_else(|| {
            self.err(format!(
                "digest {digest:?} is not sha256:<64 lowercase hex>"
            ))
        })?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }

    /// Reads a (small, JSON) blob and checks its digest and size.
    ///
    /// # Errors
    /// Missing blob, digest or size mismatch.
    pub fn read_blob(&self, digest: &str, size: Option<u64>) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let mut bytes = Vec::new();
        fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| self.err(format!("blob {digest} cannot be read: {e}")))?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(self.err(format!(
                "blob {digest} has digest {actual}; the layout is corrupt"
            )));
        }
        if let Some(s) = size {
            if s != bytes.len() as u64 {
                return Err(self.err(format!(
                    "blob {digest} is {} bytes, but its descriptor says {s}",
                    bytes.len()
                )));
            }
        }
        Ok(bytes)
    }

    /// Streams a blob and checks digest and size: `(digest, size)` as found.
    ///
    /// # Errors
    /// Missing or unreadable blob.
    pub fn hash_blob(&self, digest: &str) -> Result<(String, u64)> {
        let path = self.blob_path(digest)?;
        let f = fs::File::open(&path)
            .map_err(|e| self.err(format!("blob {digest} cannot be read: {e}")))?;
        sha256_reader(f).at(&path)
    }

    /// The index, parsed.
    ///
    /// # Errors
    /// Missing or malformed index.json.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.dir.join("index.json");
        let text = fs::read_to_string(&path)
            .map_err(|e| self.err(format!("index.json cannot be read: {e}")))?;
        serde_json::from_str(&text)
            .map_err(|e| self.err(format!("index.json is not a valid OCI index: {e}")))
    }

    /// Every image entry of the index.
    ///
    /// # Errors
    /// As [`Layout::index`].
    pub fn images(&self) -> Result<Vec<ImageRef>> {
        let index = self.index()?;
        Ok(index
            .manifests()
            .iter()
            .map(|d| ImageRef {
                tag: d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .cloned(),
                digest: d.digest().to_string(),
                size: d.size(),
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
                let mut digests: Vec<&str> = images.iter().map(|i| i.digest.as_str()).collect();
                digests.dedup();
                match digests.len() {
                    0 => Err(self.err("index.json lists no image")),
                    1 => Ok(images.into_iter().next().expect("one")),
                    _ => Err(self.err("the layout holds several images; name one with --tag")),
                }
            }
        }
    }

    /// Reads and parses a manifest.
    ///
    /// # Errors
    /// Corrupt or malformed manifest.
    pub fn manifest(&self, image: &ImageRef) -> Result<(ImageManifest, Vec<u8>)> {
        let bytes = self.read_blob(&image.digest, Some(image.size))?;
        let m = serde_json::from_slice(&bytes).map_err(|e| {
            self.err(format!(
                "manifest {} is not a valid OCI manifest: {e}",
                image.digest
            ))
        })?;
        Ok((m, bytes))
    }

    /// Reads a config blob both as OCI config and as raw JSON (for Docker extensions).
    ///
    /// # Errors
    /// Corrupt or malformed config.
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
}
