//! Reading a layer blob back: decompress, hash the tar (diff_id) and list its entries.

use std::collections::BTreeSet;
use std::io::{self, Read};

use crate::digest::format_digest;
use crate::error::Result;
use crate::layout::Layout;

/// One tar entry, as far as the policy cares.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    /// Absolute path in the image.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Tar entry type.
    pub kind: tar::EntryType,
}

/// What a layer blob holds.
#[derive(Debug, Clone)]
pub struct LayerScan {
    /// sha256 of the uncompressed stream.
    pub diff_id: String,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// Entries in tar order.
    pub entries: Vec<EntryInfo>,
}

impl LayerScan {
    /// First-level directories (or files) of the layer, for a short "holds" summary.
    pub fn top_level(&self) -> Vec<String> {
        let set: BTreeSet<String> = self
            .entries
            .iter()
            .filter_map(|e| {
                e.path
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .map(|s| format!("/{s}"))
            })
            .filter(|s| s != "/")
            .collect();
        set.into_iter().collect()
    }
}

struct HashReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Decompresses and scans a layer blob of `media_type`.
///
/// # Errors
/// Unknown media type, unreadable blob, corrupt compression or tar.
pub fn scan_layer(layout: &Layout, digest: &str, media_type: &str) -> Result<LayerScan> {
    let path = layout.blob_path(digest)?;
    let f = std::fs::File::open(&path)
        .map_err(|e| layout.err(format!("layer {digest} cannot be read: {e}")))?;
    let f = io::BufReader::with_capacity(1 << 20, f);
    let base = media_type
        .trim_start_matches("application/vnd.oci.image.layer.v1.")
        .trim_start_matches("application/vnd.docker.image.rootfs.diff.");
    let reader: Box<dyn Read> = match base {
        "tar" => Box::new(f),
        "tar+gzip" | "tar.gzip" => Box::new(flate2::read::MultiGzDecoder::new(f)),
        "tar+zstd" => Box::new(
            zstd::stream::read::Decoder::new(f)
                .map_err(|e| layout.err(format!("layer {digest}: {e}")))?,
        ),
        _ => {
            return Err(layout.err(format!(
                "layer {digest} has unsupported media type {media_type}"
            )))
        }
    };
    let mut hr = HashReader {
        inner: reader,
        hasher: sha2::Digest::new(),
        count: 0,
    };
    let mut entries = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut hr);
        let iter = archive
            .entries()
            .map_err(|e| layout.err(format!("layer {digest} is not a tar: {e}")))?;
        for entry in iter {
            let entry =
                entry.map_err(|e| layout.err(format!("layer {digest}: corrupt tar entry: {e}")))?;
            let h = entry.header();
            let p = entry
                .path()
                .map_err(|e| layout.err(format!("layer {digest}: bad path: {e}")))?;
            let p = p.to_string_lossy();
            let p = p.trim_start_matches("./").trim_end_matches('/');
            entries.push(EntryInfo {
                path: format!("/{}", p.trim_start_matches('/')),
                mode: h.mode().unwrap_or(0),
                uid: h.uid().unwrap_or(u64::MAX),
                gid: h.gid().unwrap_or(u64::MAX),
                kind: h.entry_type(),
            });
        }
    }
    // The diff_id covers the whole stream, padding after the end blocks included.
    io::copy(&mut hr, &mut io::sink()).map_err(|e| layout.err(format!("layer {digest}: {e}")))?;
    use sha2::Digest;
    Ok(LayerScan {
        diff_id: format_digest(hr.hasher.finalize().as_slice()),
        uncompressed_size: hr.count,
        entries,
    })
}
