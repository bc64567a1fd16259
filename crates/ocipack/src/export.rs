//! `export`: a `docker load` / `skopeo docker-archive:` tarball from a layout.

use std::io::{self, Write};
use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};
use crate::layout::{Descriptor, Layout, Limits, Symlinks, CONFIG_MEDIA_TYPE};

/// Docker's image config media type, accepted for export.
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

fn descriptor(d: &oci_spec::image::Descriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type().to_string(),
        digest: d.digest().to_string(),
        size: d.size(),
        annotations: Default::default(),
    }
}

/// Writes the image `tag` (or the only image) of `dir` as a docker-archive to `out`,
/// tagged `repo_tag` (e.g. `scoring:latest`). The tar is deterministic: sorted
/// members, mtime 1, root-owned.
///
/// Nothing is written until the config and every layer have been checked
/// (digest, size, media type, diff_id); each blob is read again verified
/// while it is written. Symlinked blobs are followed only into the layout or
/// `/nix/store` ([`Symlinks::Confined`]).
///
/// # Errors
/// A malformed or corrupt layout, or write errors.
pub fn export_docker_archive(
    dir: &Path,
    tag: Option<&str>,
    repo_tag: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let layout = Layout::open_with(dir, Limits::default(), Symlinks::Confined)?;
    let image = layout.find(tag)?;
    // A multi-platform entry (an image index): the child of this machine's
    // platform, which is what `docker load` can run.
    let entry = layout.find_entry(tag)?;
    let image = if entry.is_index() {
        let host = crate::layout::Platform::host();
        let children = layout.platform_images(&entry)?;
        let names: Vec<String> = children
            .iter()
            .map(|(p, _)| p.as_ref().map_or("(none)".into(), ToString::to_string))
            .collect();
        children
            .into_iter()
            .find(|(p, _)| p.as_ref().is_some_and(|p| p.matches(&host)))
            .map(|(_, i)| i)
            .ok_or_else(|| {
                layout.err(format!(
                    "the image index {} has no child for this machine's platform {host} (it has {}); export a per-platform layout instead",
                    entry.digest,
                    names.join(", ")
                ))
            })?
    } else {
        image
    };
    let (manifest, _) = layout.manifest(&image)?;
    let config = manifest.config();
    let config_desc = descriptor(config);
    if config_desc.media_type != CONFIG_MEDIA_TYPE && config_desc.media_type != DOCKER_CONFIG {
        return Err(layout.err(format!(
            "config {} has media type {:?}; only {CONFIG_MEDIA_TYPE} can be exported",
            config_desc.digest, config_desc.media_type
        )));
    }
    // Everything is checked before the first byte is written: the config's
    // digest and size, each layer's digest, size, media type and diff_id.
    let (cfg, _, _) = layout.config(&manifest)?;
    let diff_ids = cfg.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(layout.err(format!(
            "image {}: {} layers but {} diff_ids in the config; the image is corrupt",
            image.digest,
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    let mut checked = std::collections::BTreeSet::new();
    for (i, l) in manifest.layers().iter().enumerate() {
        let d = descriptor(l);
        if !checked.insert((d.digest.clone(), diff_ids[i].clone())) {
            continue;
        }
        // The blob's own digest first, so corruption is named as such
        // rather than as whatever the decompressor trips over.
        layout
            .open_blob(&d)?
            .verify_to_end()
            .map_err(|e| layout.read_err(&d.digest, e))?;
        let scan = crate::scan::scan_layer(&layout, &d)?;
        if scan.diff_id != diff_ids[i] {
            return Err(layout.err(format!(
                "layer {} ({}): uncompressed content hashes to {}, the config says {}; the image is corrupt",
                i + 1,
                d.digest,
                scan.diff_id,
                diff_ids[i]
            )));
        }
    }
    let config_hex = config.digest().digest().to_owned();
    let mut layers = Vec::new();
    for l in manifest.layers() {
        layers.push(format!("blobs/sha256/{}", l.digest().digest()));
    }
    let docker_manifest = json!([{
        "Config": format!("blobs/sha256/{config_hex}"),
        "RepoTags": [repo_tag],
        "Layers": layers,
    }]);
    let mut members: Vec<(String, Descriptor)> = Vec::new();
    members.push((format!("blobs/sha256/{config_hex}"), config_desc));
    for l in manifest.layers() {
        members.push((
            format!("blobs/sha256/{}", l.digest().digest()),
            descriptor(l),
        ));
    }
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members.dedup_by(|a, b| a.0 == b.0);
    let mut tar = tar::Builder::new(out);
    let header = |size: u64, kind| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for d in ["blobs/", "blobs/sha256/"] {
        tar.append_data(&mut header(0, tar::EntryType::Directory), d, io::empty())
            .map_err(write_err)?;
    }
    for (name, d) in &members {
        // Read again verified: a blob changed since the check fails here.
        let r = layout.open_blob(d)?;
        tar.append_data(&mut header(d.size, tar::EntryType::Regular), name, r)
            .map_err(|e| {
                match e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<crate::layout::BlobMismatch>())
                {
                    Some(_) => layout.read_err(&d.digest, e),
                    None => write_err(e),
                }
            })?;
    }
    let bytes = crate::json::canonical(&docker_manifest);
    tar.append_data(
        &mut header(bytes.len() as u64, tar::EntryType::Regular),
        "manifest.json",
        &bytes[..],
    )
    .map_err(write_err)?;
    tar.into_inner()
        .map_err(write_err)?
        .flush()
        .map_err(write_err)?;
    Ok(())
}

fn write_err(e: io::Error) -> Error {
    Error::Io {
        path: "docker-archive output".into(),
        source: e,
    }
}
