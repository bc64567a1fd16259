//! `inspect`: what an image in a layout is made of.

use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::layout::Layout;
use crate::scan::scan_layer;

/// One layer as `inspect` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    /// Blob digest.
    pub digest: String,
    /// Uncompressed digest.
    pub diff_id: String,
    /// Media type.
    pub media_type: String,
    /// Blob size.
    pub size: u64,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// Tar entries.
    pub files: usize,
    /// The history comment, else the top-level paths.
    pub holds: String,
}

/// One image as `inspect` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    /// Tags pointing at this manifest.
    pub tags: Vec<String>,
    /// Manifest digest.
    pub manifest_digest: String,
    /// Config digest.
    pub config_digest: String,
    /// The image config JSON.
    pub config: serde_json::Value,
    /// Layers, bottom first.
    pub layers: Vec<LayerInfo>,
    /// Sum of blob sizes (config and manifest included).
    pub total_size: u64,
    /// The platform (`linux/arm64`), for a child of an image index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The image index listing it, for a child of an image index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<String>,
}

/// Describes every image of the layout at `dir`.
///
/// # Errors
/// A malformed layout.
pub fn inspect(dir: &Path) -> Result<Vec<ImageInfo>> {
    let layout = Layout::open(dir)?;
    let mut out: Vec<ImageInfo> = Vec::new();
    let mut images = Vec::new();
    for entry in layout.index_descriptors()? {
        let index = entry.is_index().then(|| entry.digest.clone());
        for (platform, image) in layout.platform_images(&entry)? {
            images.push((platform.map(|p| p.to_string()), index.clone(), image));
        }
    }
    for (platform, index_digest, image) in images {
        if let Some(existing) = out.iter_mut().find(|i| i.manifest_digest == image.digest) {
            existing.tags.extend(image.tag);
            continue;
        }
        let (manifest, _) = layout.manifest(&image)?;
        let (_, config, config_bytes) = layout.config(&manifest)?;
        let comments: Vec<String> = config["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .filter(|e| !e["empty_layer"].as_bool().unwrap_or(false))
                    .map(|e| e["comment"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut layers = Vec::new();
        for (i, l) in manifest.layers().iter().enumerate() {
            let digest = l.digest().to_string();
            let scan = scan_layer(
                &layout,
                &crate::layout::Descriptor {
                    media_type: l.media_type().to_string(),
                    digest: digest.clone(),
                    size: l.size(),
                    annotations: Default::default(),
                },
            )?;
            let holds = comments
                .get(i)
                .filter(|c| !c.is_empty())
                .cloned()
                .unwrap_or_else(|| scan.top_level().join(" "));
            layers.push(LayerInfo {
                digest,
                diff_id: scan.diff_id,
                media_type: l.media_type().to_string(),
                size: l.size(),
                uncompressed_size: scan.uncompressed_size,
                files: scan.entries as usize,
                holds,
            });
        }
        out.push(ImageInfo {
            tags: image.tag.into_iter().collect(),
            manifest_digest: image.digest.clone(),
            config_digest: manifest.config().digest().to_string(),
            total_size: layers.iter().map(|l| l.size).sum::<u64>()
                + config_bytes.len() as u64
                + image.size,
            config,
            layers,
            platform,
            index_digest,
        });
    }
    Ok(out)
}
