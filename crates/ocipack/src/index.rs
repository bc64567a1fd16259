//! `ocipack index`: combine per-platform layouts into one layout holding an
//! OCI image index per tag.
//!
//! Every input is an OCI layout (e.g. `out/amd64/scoring`,
//! `out/arm64/scoring`); each of its tagged images (or each child of an index
//! it holds) contributes one platform, read from the image's **config**
//! (`os`, `architecture`, `variant`) — never from a descriptor, which an
//! input could get wrong. For each tag the output's `index.json` has one
//! entry (media type [`INDEX_MEDIA_TYPE`]) pointing at an index blob that
//! lists that tag's manifests sorted by `(os, architecture, variant)`, each
//! with its `platform`, in canonical JSON. The output therefore depends only
//! on the inputs' images, not on the order the inputs are given in.
//!
//! Blobs are copied through the verifying reader, each digest once: a model
//! layer both platforms share is stored once.
//!
//! Refused before anything is written: a missing or malformed input, an
//! image whose config declares no `os`/`architecture`, two images of one tag
//! with the same platform, an untagged image, no input. The output follows
//! the rules of [`crate::output`] (staged, renamed into place, only empty or
//! ocipack-written directories replaced).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, IoContext, Result};
use crate::layout::{
    self, Descriptor, Layout, Platform, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME,
};
use crate::output::{OutputKind, Staging};

/// One platform's image in a written index.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexedPlatform {
    /// `linux/arm64`.
    pub platform: String,
    /// The image manifest digest.
    pub manifest_digest: String,
    /// The layout it came from.
    pub source: PathBuf,
}

/// One tag's image index.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexedTag {
    /// The tag.
    pub tag: String,
    /// The index blob's digest (what a deployment pins).
    pub index_digest: String,
    /// Its size.
    pub index_size: u64,
    /// Its children, in index order.
    pub platforms: Vec<IndexedPlatform>,
}

/// What `ocipack index` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexReport {
    /// The output layout.
    pub out: PathBuf,
    /// One per tag, sorted by tag.
    pub tags: Vec<IndexedTag>,
    /// Distinct blobs in the output (manifests, configs, layers, indexes).
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
}

struct Child {
    descriptor: Descriptor,
    blobs: Vec<Descriptor>,
    source: usize,
}

/// Writes to `out` one layout with an image index per tag found in `inputs`.
///
/// # Errors
/// See the module documentation; every error names the input or output.
pub fn index(inputs: &[PathBuf], out: &Path) -> Result<IndexReport> {
    let refuse = |m: String| Error::Output {
        path: out.to_owned(),
        message: m,
    };
    if inputs.is_empty() {
        return Err(refuse(
            "no input layout given; name one layout per platform (e.g. out/amd64/scoring out/arm64/scoring)"
                .into(),
        ));
    }
    crate::output::check_replaceable(out, OutputKind::Layout)?;
    let srcs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    crate::output::check_not_overlapping(out, &srcs)?;

    // Read and check everything first: nothing is written for bad input.
    let mut layouts = Vec::new();
    for dir in inputs {
        let l = Layout::open(dir)?;
        l.index_descriptors()?;
        layouts.push(l);
    }
    let mut by_tag: BTreeMap<String, BTreeMap<Platform, Child>> = BTreeMap::new();
    for (i, l) in layouts.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for entry in l.index_descriptors()? {
            let tag = entry.tag().map(str::to_owned).ok_or_else(|| {
                l.err(format!(
                    "index.json entry {} has no tag ({REF_NAME}); ocipack index combines images by tag",
                    entry.digest
                ))
            })?;
            for (_, image) in l.platform_images(&entry)? {
                if !seen.insert((tag.clone(), image.digest.clone())) {
                    continue;
                }
                let (manifest, _) = l.manifest(&image)?;
                // Raw JSON: the typed config would refuse a missing
                // architecture before the message below could name it.
                let cd = manifest.config();
                let config: Value =
                    serde_json::from_slice(&l.read_blob(cd.digest().as_ref(), Some(cd.size()))?)
                        .map_err(|e| l.err(format!("config {} is not JSON: {e}", cd.digest())))?;
                let platform = Platform::from_config(&config).ok_or_else(|| {
                    l.err(format!(
                        "image {tag:?} ({}) has no platform: its config {} lacks \"os\" or \"architecture\"; rebuild it with a plan that sets them",
                        image.digest,
                        manifest.config().digest()
                    ))
                })?;
                let mut blobs = vec![Descriptor {
                    media_type: manifest.config().media_type().to_string(),
                    digest: manifest.config().digest().to_string(),
                    size: manifest.config().size(),
                    annotations: Default::default(),
                }];
                for d in manifest.layers() {
                    blobs.push(Descriptor {
                        media_type: d.media_type().to_string(),
                        digest: d.digest().to_string(),
                        size: d.size(),
                        annotations: Default::default(),
                    });
                }
                let child = Child {
                    descriptor: Descriptor {
                        media_type: MANIFEST_MEDIA_TYPE.into(),
                        digest: image.digest.clone(),
                        size: image.size,
                        annotations: Default::default(),
                    },
                    blobs,
                    source: i,
                };
                let slot = by_tag.entry(tag.clone()).or_default();
                if let Some(prev) = slot.get(&platform) {
                    return Err(refuse(format!(
                        "tag {tag:?} has two images for {platform}: {} in {} and {} in {}; give one layout per platform",
                        prev.descriptor.digest,
                        inputs[prev.source].display(),
                        image.digest,
                        dir_of(l).display()
                    )));
                }
                slot.insert(platform, child);
            }
        }
    }
    if by_tag.is_empty() {
        return Err(refuse("the input layouts hold no image".into()));
    }

    let staging = Staging::new(out, OutputKind::Layout)?;
    let blobs_dir = staging.path.join("blobs/sha256");
    fs::create_dir_all(&blobs_dir).at(&blobs_dir)?;
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    let mut entries = Vec::new();
    let mut tags = Vec::new();
    for (tag, children) in &by_tag {
        let mut manifests = Vec::new();
        let mut platforms = Vec::new();
        for (platform, c) in children {
            let l = &layouts[c.source];
            for b in c.blobs.iter().chain(std::iter::once(&c.descriptor)) {
                if !written.contains_key(&b.digest) {
                    copy_blob(l, b, &blobs_dir)?;
                    written.insert(b.digest.clone(), b.size);
                }
            }
            let mut p = json!({"os": platform.os, "architecture": platform.architecture});
            if let Some(v) = &platform.variant {
                p["variant"] = json!(v);
            }
            manifests.push(json!({
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": c.descriptor.digest,
                "size": c.descriptor.size,
                "platform": p,
            }));
            platforms.push(IndexedPlatform {
                platform: platform.to_string(),
                manifest_digest: c.descriptor.digest.clone(),
                source: inputs[c.source].clone(),
            });
        }
        let doc =
            json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests});
        let (digest, size) = layout::write_blob(&blobs_dir, &crate::json::canonical(&doc))?;
        written.insert(digest.clone(), size);
        entries.push(json!({
            "mediaType": INDEX_MEDIA_TYPE,
            "digest": digest,
            "size": size,
            "annotations": {REF_NAME: tag},
        }));
        tags.push(IndexedTag {
            tag: tag.clone(),
            index_digest: digest,
            index_size: size,
            platforms,
        });
    }
    let top: Value =
        json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": entries});
    layout::write_top(&staging.path, &top)?;
    staging.commit()?;
    Ok(IndexReport {
        out: out.to_owned(),
        tags,
        blobs: written.len(),
        bytes: written.values().sum(),
    })
}

fn dir_of(l: &Layout) -> &Path {
    l.dir()
}

/// Copies one blob of `l` into `blobs_dir`, verified while streaming; the
/// file appears under its name only once complete and verified.
fn copy_blob(l: &Layout, d: &Descriptor, blobs_dir: &Path) -> Result<()> {
    let hex = crate::digest::hex_of(&d.digest).ok_or_else(|| {
        l.err(format!(
            "digest {:?} is not sha256:<64 lowercase hex>",
            d.digest
        ))
    })?;
    let dest = blobs_dir.join(hex);
    let tmp = blobs_dir.join(format!(".{hex}.part"));
    let mut r = l.open_blob(d)?;
    let mut f = fs::File::create(&tmp).at(&tmp)?;
    std::io::copy(&mut r, &mut f).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        match e
            .get_ref()
            .and_then(|i| i.downcast_ref::<layout::BlobMismatch>())
        {
            Some(_) => l.read_err(&d.digest, e),
            None => Error::Io {
                path: tmp.clone(),
                source: e,
            },
        }
    })?;
    f.sync_all().at(&tmp)?;
    fs::rename(&tmp, &dest).at(&dest)
}
