//! `export`: a `docker load` / `skopeo docker-archive:` tarball from a layout.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use serde_json::json;

use crate::error::{Error, IoContext, Result};
use crate::layout::Layout;

/// Writes the image `tag` (or the only image) of `dir` as a docker-archive to `out`,
/// tagged `repo_tag` (e.g. `scoring:latest`). The tar is deterministic: sorted
/// members, mtime 1, root-owned.
///
/// # Errors
/// A malformed layout, or write errors.
pub fn export_docker_archive(
    dir: &Path,
    tag: Option<&str>,
    repo_tag: &str,
    out: &mut dyn Write,
) -> Result<()> {
    let layout = Layout::open(dir)?;
    let image = layout.find(tag)?;
    let (manifest, _) = layout.manifest(&image)?;
    let config = manifest.config();
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
    let mut members: Vec<(String, std::path::PathBuf)> = Vec::new();
    members.push((
        format!("blobs/sha256/{config_hex}"),
        layout.blob_path(config.digest().as_ref())?,
    ));
    for l in manifest.layers() {
        members.push((
            format!("blobs/sha256/{}", l.digest().digest()),
            layout.blob_path(l.digest().as_ref())?,
        ));
    }
    members.sort();
    members.dedup();
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
    for (name, path) in &members {
        let f = File::open(path).at(path)?;
        let size = f.metadata().at(path)?.len();
        tar.append_data(&mut header(size, tar::EntryType::Regular), name, f)
            .map_err(write_err)?;
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
