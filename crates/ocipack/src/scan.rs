//! Reading a layer blob back: verify its digest, decompress, hash the tar
//! (diff_id) and hand each entry, name normalised, to a callback.
//!
//! Entries stream past one at a time (memory does not grow with the entry
//! count) and at most [`Limits::max_tar_entries`](crate::layout::Limits) are read.

use std::collections::BTreeSet;
use std::io::{self, Read};

use crate::digest::format_digest;
use crate::error::Result;
use crate::layout::{Descriptor, Layout};

/// One tar entry, as far as the policy cares.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    /// Absolute, normalised path in the image (`bin//x/../sh` is `/bin/sh`).
    pub path: String,
    /// The name exactly as the tar has it.
    pub raw_path: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Tar entry type.
    pub kind: tar::EntryType,
    /// The target of a symlink or hard link.
    pub link: Option<String>,
    /// What is wrong with `raw_path`, if anything.
    pub name_problem: Option<NameProblem>,
}

/// A name that a careful extractor would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// The name starts with `/`.
    Absolute,
    /// A `..` component climbs above the root.
    Escapes,
    /// A `..` component that stays inside the root (still never written by ocipack).
    DotDot,
}

/// Normalises a tar entry name to an absolute path inside the image:
/// empty and `.` components dropped, `..` applied (never above the root).
/// Returns the path and what was wrong with the name, if anything.
pub fn normalize_name(raw: &str) -> (String, Option<NameProblem>) {
    let mut parts: Vec<&str> = Vec::new();
    let mut problem = raw.starts_with('/').then_some(NameProblem::Absolute);
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    problem = Some(NameProblem::Escapes);
                } else if problem.is_none() {
                    problem = Some(NameProblem::DotDot);
                }
            }
            c => parts.push(c),
        }
    }
    (format!("/{}", parts.join("/")), problem)
}

/// Whether a symlink at `entry` (normalised) with relative `target` climbs
/// above the root. Absolute targets resolve inside the image's root.
pub fn link_escapes(entry: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    // Start from the link's directory.
    let mut depth = entry
        .trim_matches('/')
        .split('/')
        .filter(|c| !c.is_empty())
        .count() as i64
        - 1;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// What a layer blob holds.
#[derive(Debug, Clone)]
pub struct LayerScan {
    /// sha256 of the uncompressed stream.
    pub diff_id: String,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// Number of tar entries.
    pub entries: u64,
    /// First-level paths (at most 64 kept).
    pub top: BTreeSet<String>,
}

impl LayerScan {
    /// First-level directories (or files) of the layer, for a short "holds" summary.
    pub fn top_level(&self) -> Vec<String> {
        self.top.iter().cloned().collect()
    }
}

const TOP_KEEP: usize = 64;

/// The largest GNU long name, long link or PAX header read: 64 KiB (paths
/// are at most 4 KiB on Linux).
pub const MAX_EXTENSION_BYTES: u64 = 64 << 10;

/// Name and link overrides carried by the headers before an entry.
#[derive(Default)]
struct Extensions {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
}

impl Extensions {
    /// Reads `path` and `linkpath` from PAX records (`LEN key=value\n`).
    fn pax(&mut self, data: &[u8]) {
        for rec in tar::PaxExtensions::new(data).flatten() {
            match rec.key() {
                Ok("path") => self.name = Some(rec.value_bytes().to_vec()),
                Ok("linkpath") => self.link = Some(rec.value_bytes().to_vec()),
                _ => {}
            }
        }
    }
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
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

/// The decompressor for a layer media type, or `None` when it is not a layer type we read.
pub fn decoder<'a, R: io::BufRead + 'a>(
    media_type: &str,
    r: R,
) -> Option<io::Result<Box<dyn Read + 'a>>> {
    let base = media_type
        .strip_prefix("application/vnd.oci.image.layer.v1.")
        .or_else(|| media_type.strip_prefix("application/vnd.docker.image.rootfs.diff."))?;
    Some(match base {
        "tar" => Ok(Box::new(r)),
        "tar+gzip" | "tar.gzip" => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r))),
        "tar+zstd" => {
            zstd::stream::read::Decoder::with_buffer(r).map(|d| Box::new(d) as Box<dyn Read>)
        }
        _ => return None,
    })
}

/// Scans the layer `desc` (verified against its digest and size while
/// streaming), calling `each` for every entry in tar order.
///
/// # Errors
/// Unknown media type, unreadable or corrupt blob, corrupt compression or
/// tar, or more than `max_tar_entries` entries.
pub fn scan_layer_with(
    layout: &Layout,
    desc: &Descriptor,
    mut each: impl FnMut(&EntryInfo),
) -> Result<LayerScan> {
    let digest = &desc.digest;
    let mut blob = layout.open_blob(desc)?;
    let scan = scan_stream(
        layout,
        desc,
        io::BufReader::with_capacity(1 << 20, &mut blob),
        &mut each,
    )?;
    // Whatever the decompressor left unread (trailing bytes) still counts.
    blob.verify_to_end()
        .map_err(|e| layout.read_err(digest, e))?;
    Ok(scan)
}

fn scan_stream(
    layout: &Layout,
    desc: &Descriptor,
    f: impl io::BufRead,
    each: &mut impl FnMut(&EntryInfo),
) -> Result<LayerScan> {
    let digest = &desc.digest;
    let reader = match decoder(&desc.media_type, f) {
        Some(r) => r.map_err(|e| layout.err(format!("layer {digest}: {e}")))?,
        None => {
            return Err(layout.err(format!(
                "layer {digest} has unsupported media type {:?}",
                desc.media_type
            )))
        }
    };
    let mut hr = HashReader {
        inner: reader,
        hasher: sha2::Digest::new(),
        count: 0,
    };
    let max = layout.limits().max_tar_entries;
    let mut n: u64 = 0;
    let mut top = BTreeSet::new();
    let corrupt = |e: io::Error| -> crate::Error {
        if e.get_ref()
            .is_some_and(|i| i.is::<crate::layout::BlobMismatch>())
        {
            return layout.read_err(digest, e);
        }
        layout.err(format!("layer {digest}: corrupt layer: {e}"))
    };
    {
        let mut archive = tar::Archive::new(&mut hr);
        // Raw entries: the tar crate would read a GNU long name or a PAX
        // header of any size into memory; here they are capped first.
        let iter = archive.entries().map_err(corrupt)?.raw(true);
        let mut ext = Extensions::default();
        for entry in iter {
            let mut entry = entry.map_err(corrupt)?;
            n += 1;
            if n > max {
                return Err(crate::Error::Limit {
                    layout: layout.dir.clone(),
                    limit: "max_tar_entries",
                    message: format!("layer {digest} has more than {max} tar entries"),
                });
            }
            let t = entry.header().entry_type();
            if t.is_gnu_longname() || t.is_gnu_longlink() || t.is_pax_local_extensions() {
                let size = entry.header().entry_size().map_err(corrupt)?;
                if size > MAX_EXTENSION_BYTES {
                    return Err(crate::Error::Limit {
                        layout: layout.dir.clone(),
                        limit: "MAX_EXTENSION_BYTES",
                        message: format!(
                            "layer {digest}: a long-name or PAX header of {size} bytes (at most {MAX_EXTENSION_BYTES} are read)"
                        ),
                    });
                }
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(corrupt)?;
                if t.is_gnu_longname() {
                    ext.name = Some(trim_nul(data));
                } else if t.is_gnu_longlink() {
                    ext.link = Some(trim_nul(data));
                } else {
                    ext.pax(&data);
                }
                continue;
            }
            if t.is_pax_global_extensions() {
                continue;
            }
            let ext = std::mem::take(&mut ext);
            let h = entry.header();
            let raw_bytes = ext.name.unwrap_or_else(|| h.path_bytes().into_owned());
            let raw = String::from_utf8_lossy(&raw_bytes).into_owned();
            let (path, name_problem) = normalize_name(&raw);
            if top.len() < TOP_KEEP {
                if let Some(first) = path.trim_start_matches('/').split('/').next() {
                    if !first.is_empty() {
                        top.insert(format!("/{first}"));
                    }
                }
            }
            let link = ext
                .link
                .or_else(|| h.link_name_bytes().map(|b| b.into_owned()))
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            each(&EntryInfo {
                path,
                raw_path: raw,
                mode: h.mode().unwrap_or(0),
                uid: h.uid().unwrap_or(u64::MAX),
                gid: h.gid().unwrap_or(u64::MAX),
                kind: t,
                link,
                name_problem,
            });
        }
    }
    // The diff_id covers the whole stream, padding after the end blocks included.
    io::copy(&mut hr, &mut io::sink()).map_err(corrupt)?;
    use sha2::Digest;
    Ok(LayerScan {
        diff_id: format_digest(hr.hasher.finalize().as_slice()),
        uncompressed_size: hr.count,
        entries: n,
        top,
    })
}

/// [`scan_layer_with`] without a callback.
///
/// # Errors
/// As [`scan_layer_with`].
pub fn scan_layer(layout: &Layout, desc: &Descriptor) -> Result<LayerScan> {
    scan_layer_with(layout, desc, |_| {})
}
