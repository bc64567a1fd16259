//! Reading OCI image indexes (multi-platform images) from a layout.
//!
//! An `index.json` entry whose descriptor has media type
//! [`INDEX_MEDIA_TYPE`](super::INDEX_MEDIA_TYPE) (or Docker's manifest list)
//! points at an image index blob; its `manifests[]` are the per-platform image
//! manifests, each with a `platform` object. [`Layout::read_index`] reads one
//! such blob, verified and within the limits, with the platforms parsed;
//! [`Layout::platform_images`] resolves any entry (plain image or index) to
//! its `(platform, image)` pairs.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Descriptor, ImageRef, Layout};
use crate::error::Result;

/// An OCI platform (`os`, `architecture`, optional `variant`), as in an
/// index entry's `platform` and an image config's top-level fields.
///
/// Ordered by `(os, architecture, variant)`: the order `ocipack index` lists
/// children in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v8` for arm64 when given; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]` (e.g. `linux/arm64`, `linux/arm64/v8`).
    ///
    /// # Errors
    /// Anything else, with a message naming the accepted form.
    pub fn parse(s: &str) -> std::result::Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*v).into()),
            }),
            _ => Err(format!(
                "platform {s:?} is not os/architecture[/variant] (e.g. linux/amd64, linux/arm64)"
            )),
        }
    }

    /// The platform an image config declares (`os`, `architecture`,
    /// `variant`), or `None` when `os` or `architecture` is missing or empty.
    pub fn from_config(config: &serde_json::Value) -> Option<Platform> {
        let s = |k: &str| {
            config
                .get(k)
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Some(Platform {
            os: s("os")?,
            architecture: s("architecture")?,
            variant: s("variant"),
        })
    }

    /// The platform of the running machine (`linux/amd64` on x86-64,
    /// `linux/arm64` on AArch64; other architectures keep Rust's name).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        Platform {
            os: std::env::consts::OS.into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Whether `other` names the same platform, treating arm64's default
    /// variant `v8` as equal to no variant (as registries and runtimes do).
    pub fn matches(&self, other: &Platform) -> bool {
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_owned),
        };
        self.os == other.os && self.architecture == other.architecture && norm(self) == norm(other)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One entry of an image index: the child's descriptor and its platform.
#[derive(Debug, Clone)]
pub struct IndexChild {
    /// The child manifest's descriptor (media type, digest, size, annotations).
    pub descriptor: Descriptor,
    /// Its `platform`, if the entry has one.
    pub platform: Option<Platform>,
}

/// An image index read from a layout's blobs, verified against its descriptor.
#[derive(Debug, Clone)]
pub struct ImageIndexDoc {
    /// The descriptor that named it (from `index.json`).
    pub descriptor: Descriptor,
    /// Its exact bytes.
    pub bytes: Vec<u8>,
    /// Its `manifests[]`, in document order.
    pub children: Vec<IndexChild>,
}

#[derive(Deserialize)]
struct ChildRaw {
    #[serde(flatten)]
    descriptor: Descriptor,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexRaw {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<ChildRaw>,
}

impl Layout {
    /// The entry of `index.json` tagged `tag` (or the only distinct one when
    /// `tag` is `None`), with its media type: [`Descriptor::is_index`] tells an
    /// image index from an image manifest.
    ///
    /// # Errors
    /// As [`Layout::find`].
    pub fn find_entry(&self, tag: Option<&str>) -> Result<Descriptor> {
        let found = self.find(tag)?;
        self.index_descriptors()?
            .into_iter()
            .find(|d| d.digest == found.digest && (tag.is_none() || d.tag() == tag))
            .ok_or_else(|| self.err("index.json changed while being read"))
    }

    /// Reads the image index `d` points at (a blob of this layout), verified,
    /// within [`Limits::max_json_bytes`](super::Limits) and
    /// [`Limits::max_index_entries`](super::Limits).
    ///
    /// # Errors
    /// A missing or corrupt blob, a document that is not an image index, or
    /// a child that is itself an index (nested indexes are not images of one
    /// platform).
    pub fn read_index(&self, d: &Descriptor) -> Result<ImageIndexDoc> {
        let bytes = self.read_blob(&d.digest, Some(d.size))?;
        let raw: IndexRaw = serde_json::from_slice(&bytes).map_err(|e| {
            self.err(format!(
                "index {} is not a valid OCI image index: {e}",
                d.digest
            ))
        })?;
        let mt = raw.media_type.as_deref().unwrap_or(d.media_type.as_str());
        if mt != super::INDEX_MEDIA_TYPE && mt != super::DOCKER_MANIFEST_LIST_MEDIA_TYPE {
            return Err(self.err(format!(
                "blob {} has mediaType {mt:?}, not an image index ({})",
                d.digest,
                super::INDEX_MEDIA_TYPE
            )));
        }
        self.check_entries(&format!("index {}", d.digest), raw.manifests.len())?;
        let mut descriptor = d.clone();
        if descriptor.media_type.is_empty() {
            descriptor.media_type = mt.to_owned();
        }
        let children: Vec<IndexChild> = raw
            .manifests
            .into_iter()
            .map(|c| IndexChild {
                descriptor: c.descriptor,
                platform: c.platform,
            })
            .collect();
        if let Some(c) = children.iter().find(|c| c.descriptor.is_index()) {
            return Err(self.err(format!(
                "index {} lists another index ({}); only one level (an index of image manifests) is supported",
                d.digest, c.descriptor.digest
            )));
        }
        Ok(ImageIndexDoc {
            descriptor,
            bytes,
            children,
        })
    }

    /// The images an `index.json` entry stands for: one `(None, image)` for
    /// an image manifest, or each child of an image index with its platform.
    ///
    /// # Errors
    /// As [`Layout::read_index`].
    pub fn platform_images(&self, entry: &Descriptor) -> Result<Vec<(Option<Platform>, ImageRef)>> {
        if !entry.is_index() {
            return Ok(vec![(
                None,
                ImageRef {
                    tag: entry.tag().map(str::to_owned),
                    digest: entry.digest.clone(),
                    size: entry.size,
                },
            )]);
        }
        let doc = self.read_index(entry)?;
        Ok(doc
            .children
            .into_iter()
            .map(|c| {
                (
                    c.platform,
                    ImageRef {
                        tag: entry.tag().map(str::to_owned),
                        digest: c.descriptor.digest,
                        size: c.descriptor.size,
                    },
                )
            })
            .collect())
    }
}
