//! Reading the declared inputs: models.toml, the plan's target -> source map,
//! and the files an image really holds (its layers, read back).

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::Digest as _;

use crate::error::{input, io, Result};
use ocipack::layout::{Descriptor, Layout};

/// One model or runtime of models.toml.
#[derive(Debug, Clone, Deserialize)]
pub struct Asset {
    /// File name.
    pub file: String,
    /// sha256 hex of the file.
    pub sha256: String,
    /// SPDX licence expression.
    pub license: String,
    /// Where it came from.
    pub source: AssetSource,
}

/// The wheel an asset is extracted from.
#[derive(Debug, Clone, Deserialize)]
pub struct AssetSource {
    /// PyPI project.
    pub pypi: String,
    /// Its version.
    pub version: String,
    /// The wheel's URL.
    pub wheel_url: String,
    /// The wheel's sha256.
    pub wheel_sha256: String,
    /// The member of the wheel.
    pub member: String,
}

/// models.toml, the parts that name assets.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Models {
    /// Models by name.
    #[serde(default)]
    pub models: BTreeMap<String, Asset>,
    /// Runtimes by name.
    #[serde(default)]
    pub runtimes: BTreeMap<String, Asset>,
}

impl Models {
    /// Reads models.toml.
    ///
    /// # Errors
    /// Unreadable or malformed file.
    pub fn load(path: &Path) -> Result<Models> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        toml::from_str(&text).map_err(|e| input(path.display().to_string(), e.to_string()))
    }

    /// Every asset, `(kind, name, asset)`, kind `model` or `runtime`.
    pub fn assets(&self) -> impl Iterator<Item = (&'static str, &String, &Asset)> {
        self.models
            .iter()
            .map(|(n, a)| ("model", n, a))
            .chain(self.runtimes.iter().map(|(n, a)| ("runtime", n, a)))
    }
}

/// Where each image path came from on the build machine, from a plan JSON
/// (`files` entries with a `source`, `model` layers). A directory entry maps
/// everything below it.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    map: BTreeMap<String, PathBuf>,
}

impl SourceMap {
    /// Reads the plan at `plan` (relative sources are relative to its directory).
    ///
    /// # Errors
    /// Unreadable or malformed plan.
    pub fn from_plan_file(plan: &Path) -> Result<SourceMap> {
        let text = std::fs::read_to_string(plan).map_err(io(plan))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| input(plan.display().to_string(), format!("not a plan: {e}")))?;
        let base = plan.parent().unwrap_or(Path::new("."));
        Ok(SourceMap::from_plan_json(&v, base))
    }

    /// As [`SourceMap::from_plan_file`], from the parsed JSON.
    pub fn from_plan_json(v: &serde_json::Value, base: &Path) -> SourceMap {
        let mut map = BTreeMap::new();
        for l in v["layers"].as_array().into_iter().flatten() {
            let mut add = |target: &str, source: &str| {
                map.insert(target.trim_end_matches('/').to_owned(), base.join(source));
            };
            match l["kind"].as_str() {
                Some("files") => {
                    for e in l["entries"].as_array().into_iter().flatten() {
                        if let (Some(t), Some(s)) = (e["target"].as_str(), e["source"].as_str()) {
                            add(t, s);
                        }
                    }
                }
                Some("model") => {
                    if let (Some(t), Some(s)) = (l["target"].as_str(), l["source"].as_str()) {
                        add(t, s);
                    }
                }
                _ => {}
            }
        }
        SourceMap { map }
    }

    /// The host file an image path came from, if the plan names one.
    pub fn source(&self, image_path: &str) -> Option<PathBuf> {
        if let Some(s) = self.map.get(image_path) {
            return Some(s.clone());
        }
        let mut p = image_path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if let Some(s) = self.map.get(parent) {
                let rest = &image_path[parent.len() + 1..];
                return Some(s.join(rest));
            }
            p = parent;
        }
        None
    }
}

/// One regular file of an image, as the layers hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFile {
    /// Absolute path in the image.
    pub path: String,
    /// sha1 hex (SPDX requires it).
    pub sha1: String,
    /// sha256 hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether it starts with the ELF magic.
    pub elf: bool,
    /// The bytes of a `package.json` (for npm packages).
    pub package_json: Option<Vec<u8>>,
}

/// The image an SBOM describes.
#[derive(Debug, Clone)]
pub struct Image {
    /// The manifest descriptor (digest, size, media type).
    pub manifest: Descriptor,
    /// `architecture` of the config.
    pub architecture: String,
    /// Every regular file, by path (a later layer's file replaces an earlier one's).
    pub files: BTreeMap<String, ImageFile>,
    /// Number of symlinks and directories (not SBOM files).
    pub other_entries: u64,
    /// The config's `created` (the plan's time), if any.
    pub created: Option<String>,
}

const MAX_PACKAGE_JSON: u64 = 1 << 20;

/// Reads the image tagged `tag` (or the only one) from `layout`: every layer
/// streamed through the layout's verified reader, every regular file hashed.
///
/// # Errors
/// Layout errors, unknown layer media types, corrupt layers.
pub fn read_image(layout: &Layout, tag: Option<&str>) -> Result<Image> {
    read_image_with(layout, tag, |d| read_layer(layout, d))
}

/// One tar entry of a layer, as the SBOM needs it: a regular file, hashed,
/// or the path of anything else (which hides an earlier layer's file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerEntry {
    /// A regular file.
    File(ImageFile),
    /// A directory, symlink or other non-file entry at this path.
    Other(String),
}

/// [`read_image`], with each layer's entries from `layer_entries` (which
/// must give what [`read_layer`] gives for that descriptor; a cache keyed
/// by the layer's digest does).
///
/// # Errors
/// As [`read_image`], and what `layer_entries` returns.
pub fn read_image_with(
    layout: &Layout,
    tag: Option<&str>,
    mut layer_entries: impl FnMut(&Descriptor) -> Result<Vec<LayerEntry>>,
) -> Result<Image> {
    let image = layout.find(tag)?;
    let bytes = layout.read_blob(&image.digest, Some(image.size))?;
    let m: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        input(
            format!("manifest {}", image.digest),
            format!("not JSON: {e}"),
        )
    })?;
    let media_type = m["mediaType"]
        .as_str()
        .unwrap_or(ocipack::layout::MANIFEST_MEDIA_TYPE)
        .to_owned();
    let config: Descriptor = serde_json::from_value(m["config"].clone())
        .map_err(|e| input(format!("manifest {}", image.digest), e.to_string()))?;
    let cfg: serde_json::Value =
        serde_json::from_slice(&layout.read_blob(&config.digest, Some(config.size))?)
            .map_err(|e| input(format!("config {}", config.digest), e.to_string()))?;
    let layers: Vec<Descriptor> = serde_json::from_value(m["layers"].clone())
        .map_err(|e| input(format!("manifest {}", image.digest), e.to_string()))?;
    let mut files = BTreeMap::new();
    let mut other = 0u64;
    for d in &layers {
        for e in layer_entries(d)? {
            match e {
                LayerEntry::File(f) => {
                    files.insert(f.path.clone(), f);
                }
                LayerEntry::Other(path) => {
                    other += 1;
                    files.remove(&path);
                }
            }
        }
    }
    Ok(Image {
        manifest: Descriptor {
            media_type,
            digest: image.digest,
            size: image.size,
            annotations: BTreeMap::new(),
        },
        architecture: cfg["architecture"].as_str().unwrap_or("amd64").to_owned(),
        files,
        other_entries: other,
        created: cfg["created"].as_str().map(str::to_owned),
    })
}

/// The entries of the layer `d` of `layout`, in tar order: the blob
/// streamed through the layout's verified reader, every regular file hashed.
///
/// # Errors
/// Layout errors, an unknown media type, a corrupt layer.
pub fn read_layer(layout: &Layout, d: &Descriptor) -> Result<Vec<LayerEntry>> {
    let mut entries = Vec::new();
    {
        let blob = layout.open_blob(d)?;
        let buf = BufReader::with_capacity(1 << 20, blob);
        let reader = match ocipack::scan::decoder(&d.media_type, buf) {
            Some(r) => r.map_err(io(layout.dir.join(&d.digest)))?,
            None => {
                return Err(input(
                    format!("layer {}", d.digest),
                    format!("unsupported media type {:?}", d.media_type),
                ))
            }
        };
        let mut ar = tar::Archive::new(reader);
        let corrupt = |e: std::io::Error| input(format!("layer {}", d.digest), e.to_string());
        for entry in ar.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let (path, _) = ocipack::scan::normalize_name(&raw);
            let kind = entry.header().entry_type();
            if !kind.is_file() {
                entries.push(LayerEntry::Other(path));
                continue;
            }
            let mut s1 = sha1::Sha1::new();
            let mut s256 = sha2::Sha256::new();
            let keep = path.ends_with("/package.json") && entry.size() <= MAX_PACKAGE_JSON;
            let mut kept = Vec::new();
            let mut head = [0u8; 4];
            let mut head_len = 0;
            let mut size = 0u64;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = entry.read(&mut buf).map_err(corrupt)?;
                if n == 0 {
                    break;
                }
                let chunk = &buf[..n];
                if size < 4 {
                    for &b in chunk.iter().take(4 - size as usize) {
                        head[head_len] = b;
                        head_len += 1;
                    }
                }
                s1.update(chunk);
                s256.update(chunk);
                if keep {
                    kept.extend_from_slice(chunk);
                }
                size += n as u64;
            }
            entries.push(LayerEntry::File(ImageFile {
                path,
                sha1: hex(&s1.finalize()),
                sha256: hex(&s256.finalize()),
                size,
                elf: head_len == 4 && head == *b"\x7fELF",
                package_json: keep.then_some(kept),
            }));
        }
    }
    Ok(entries)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
