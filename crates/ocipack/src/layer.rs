//! Writing one layer blob: tar, compressed, hashed twice (diff_id and digest)
//! in the same single pass over the input files.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::compress::{media_type, Encoder};
use crate::digest::{HashWriter, Sha256Hasher};
use crate::error::{Error, IoContext, Result};
use crate::plan::Compression;
use crate::tree::{Kind, Tree};

/// What a written layer is: the OCI descriptor fields plus what `inspect` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LayerDescriptor {
    /// What the layer holds.
    #[serde(default)]
    pub comment: String,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// sha256 of the blob.
    pub digest: String,
    /// Number of tar entries.
    pub files: u64,
    /// OCI layer media type.
    pub media_type: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Uncompressed tar size in bytes.
    pub uncompressed_size: u64,
}

/// Progress of a long pack; every method has a do-nothing default.
pub trait Progress: Sync {
    /// A layer starts; `bytes` is the content it will read.
    fn layer_started(&self, _index: usize, _what: &str, _bytes: u64) {}
    /// `n` more content bytes were read.
    fn advance(&self, _n: u64) {}
    /// A layer is done.
    fn layer_done(&self, _index: usize, _desc: &LayerDescriptor) {}
    /// A layer was not packed: its blob came from the layer cache.
    fn layer_reused(&self, index: usize, desc: &LayerDescriptor) {
        self.layer_done(index, desc);
    }
    /// Something worth telling the user that does not stop the build
    /// (a corrupted cache entry that was removed and rebuilt).
    fn warning(&self, _message: &str) {}
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Options of one layer write.
pub struct LayerOptions<'a> {
    /// mtime of every entry.
    pub mtime: u64,
    /// Blob compression.
    pub compression: Compression,
    /// Compression threads.
    pub threads: usize,
    /// Comment for the descriptor.
    pub comment: String,
    /// Progress sink.
    pub progress: &'a dyn Progress,
    /// The content digests the caller keyed this layer by (target path to
    /// `sha256:<hex>`): each file is hashed again while it is packed, and a
    /// file whose bytes differ is an error, so a blob never disagrees with
    /// the key it is cached under.
    pub expect_content: Option<&'a BTreeMap<String, String>>,
}

/// Writes `tree` as a layer blob to `out` (created, truncated).
///
/// # Errors
/// Read errors on sources (a file that changed size while packing included), write errors on `out`.
pub fn write_layer(tree: &Tree, out: &Path, opts: &LayerOptions<'_>) -> Result<LayerDescriptor> {
    let file = File::create(out).at(out)?;
    let blob = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
    let enc = Encoder::new(blob, opts.compression, opts.threads).at(out)?;
    let mut tar = tar::Builder::new(HashWriter::new(enc));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut files = 0;
    for (path, node) in &tree.nodes {
        let name = &path[1..];
        let mut h = tar::Header::new_gnu();
        h.set_uid(u64::from(node.uid));
        h.set_gid(u64::from(node.gid));
        h.set_mode(node.mode);
        h.set_mtime(opts.mtime);
        match &node.kind {
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{name}/"), io::empty())
                    .at(out)?;
            }
            Kind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, name, target).at(out)?;
            }
            Kind::Data(bytes) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(bytes.len() as u64);
                tar.append_data(&mut h, name, &bytes[..]).at(out)?;
            }
            Kind::File { source, size } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                let f = File::open(source).map_err(|e| Error::Input {
                    location: opts.comment.clone(),
                    message: format!(
                        "{} cannot be opened: {e}; check its permissions",
                        source.display()
                    ),
                })?;
                let expect = opts.expect_content.and_then(|m| m.get(path));
                let mut r = Exact {
                    inner: f,
                    left: *size,
                    path: source,
                    progress: opts.progress,
                    hash: expect.map(|_| Sha256Hasher::new()),
                };
                tar.append_data(&mut h, name, &mut r)
                    .map_err(|e| Error::Input {
                        location: opts.comment.clone(),
                        message: format!("{}: {e}", source.display()),
                    })?;
                r.check_end()?;
                if let (Some(want), Some(h)) = (expect, r.hash.take()) {
                    let got = h.finish();
                    if &got != want {
                        return Err(Error::Input {
                            location: opts.comment.clone(),
                            message: format!(
                                "{} changed while being packed ({want} before, {got} while packing); pack from a stable source",
                                source.display()
                            ),
                        });
                    }
                }
            }
        }
        files += 1;
    }
    let tar_hash = tar.into_inner().at(out)?;
    let (enc, diff_id, uncompressed_size) = tar_hash.finish();
    let blob = enc.finish().at(out)?;
    let (mut buf, digest, size) = blob.finish();
    buf.flush().at(out)?;
    buf.into_inner()
        .map_err(|e| e.into_error())
        .at(out)?
        .sync_all()
        .at(out)?;
    Ok(LayerDescriptor {
        comment: opts.comment.clone(),
        diff_id,
        digest,
        files,
        media_type: media_type(opts.compression).to_owned(),
        size,
        uncompressed_size,
    })
}

/// Reads exactly `left` bytes; a file that shrank or grew since it was
/// collected is an error rather than a corrupt tar entry.
struct Exact<'a> {
    inner: File,
    left: u64,
    path: &'a Path,
    progress: &'a dyn Progress,
    hash: Option<Sha256Hasher>,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file shrank by {} bytes while being packed", self.left),
            ));
        }
        self.left -= n as u64;
        if let Some(h) = &mut self.hash {
            h.update(&buf[..n]);
        }
        self.progress.advance(n as u64);
        Ok(n)
    }
}

impl Exact<'_> {
    fn check_end(&mut self) -> Result<()> {
        let mut probe = [0u8; 1];
        match self.inner.read(&mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(Error::Input {
                location: self.path.display().to_string(),
                message: "file grew while being packed; pack from a stable source".into(),
            }),
            Err(e) => Err(Error::Io {
                path: self.path.to_owned(),
                source: e,
            }),
        }
    }
}

/// Moves a finished blob into `blobs/sha256/<hex>`; an identical blob already there is kept.
///
/// # Errors
/// Rename failures.
pub fn store_blob(tmp: &Path, blobs: &Path, digest: &str) -> Result<()> {
    let hex = crate::digest::hex_of(digest).expect("we computed it");
    let dest = blobs.join(hex);
    if dest.exists() {
        fs::remove_file(tmp).at(tmp)?;
    } else {
        fs::rename(tmp, &dest).at(&dest)?;
    }
    Ok(())
}
