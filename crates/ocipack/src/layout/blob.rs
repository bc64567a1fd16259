//! Opening one blob of an untrusted layout, and reading it verified.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::format_digest;

/// Which symlinked blobs a reader follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Symlinks {
    /// Follow a symlinked blob wherever it points, provided the target is a
    /// regular file (`ocipack build --link-blobs` layouts point anywhere).
    /// Its bytes are still verified against the digest before use.
    #[default]
    Follow,
    /// Follow a symlinked blob only when its target resolves inside the
    /// layout or inside `/nix/store` (where Nix-built layouts point).
    Confined,
}

/// The size and digest a blob was expected to have, and what it had.
///
/// Carried inside the `io::Error` a [`VerifiedReader`] returns at end of
/// stream (get it with `err.get_ref().and_then(|e| e.downcast_ref::<BlobMismatch>())`),
/// and inside [`crate::Error::Blob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMismatch {
    /// The digest the descriptor names.
    pub expected_digest: String,
    /// The digest of the bytes read (`None` when reading stopped early
    /// because there were more bytes than `expected_size`).
    pub actual_digest: Option<String>,
    /// The size the descriptor names, if any.
    pub expected_size: Option<u64>,
    /// Bytes read.
    pub actual_size: u64,
}

impl std::fmt::Display for BlobMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.actual_digest, self.expected_size) {
            (None, Some(s)) => write!(
                f,
                "blob {} is longer than the {s} bytes its descriptor says",
                self.expected_digest
            ),
            (Some(d), Some(s)) if s != self.actual_size => write!(
                f,
                "blob {} is {} bytes (digest {d}), but its descriptor says {s}",
                self.expected_digest, self.actual_size
            ),
            (Some(d), _) => write!(
                f,
                "blob {} hashes to {d}; the layout is corrupt",
                self.expected_digest
            ),
            (None, None) => write!(f, "blob {} could not be verified", self.expected_digest),
        }
    }
}

impl std::error::Error for BlobMismatch {}

/// A reader over a blob that hashes and counts while streaming, never yields
/// more than the expected size, and reports end of stream only after the
/// digest (and size) matched: on a mismatch the final `read` returns an
/// `io::Error` of kind `InvalidData` carrying a [`BlobMismatch`], so a caller
/// that forwards a chunk only once the next `read` succeeded forwards nothing
/// unverified.
#[derive(Debug)]
pub struct VerifiedReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    expected_digest: String,
    expected_size: Option<u64>,
    verified: bool,
}

impl<R: Read> VerifiedReader<R> {
    /// Wraps `inner`, expecting `digest` (`sha256:<hex>`) and, if given, `size` bytes.
    pub fn new(inner: R, digest: &str, size: Option<u64>) -> Self {
        VerifiedReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            expected_digest: digest.to_owned(),
            expected_size: size,
            verified: false,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True once the end was reached and the digest matched.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// Reads (and discards) the rest, then returns the byte count.
    ///
    /// # Errors
    /// Read errors, or `InvalidData` with a [`BlobMismatch`].
    pub fn verify_to_end(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())?;
        Ok(self.count)
    }

    fn mismatch(&self, actual: Option<String>) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            BlobMismatch {
                expected_digest: self.expected_digest.clone(),
                actual_digest: actual,
                expected_size: self.expected_size,
                actual_size: self.count,
            },
        )
    }
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Read at most one byte past the expected size: enough to notice a
        // longer file without handing any of the excess on.
        let room = match self.expected_size {
            Some(s) => (s - self.count.min(s)).saturating_add(1),
            None => u64::MAX,
        };
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            if self.verified {
                return Ok(0);
            }
            let actual = format_digest(self.hasher.clone().finalize().as_slice());
            let size_ok = self.expected_size.is_none_or(|s| s == self.count);
            if actual != self.expected_digest || !size_ok {
                return Err(self.mismatch(Some(actual)));
            }
            self.verified = true;
            return Ok(0);
        }
        if self
            .expected_size
            .is_some_and(|s| self.count + n as u64 > s)
        {
            self.count += n as u64;
            return Err(self.mismatch(None));
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Opens `path` for reading without blocking on a FIFO and without making a
/// terminal ours, then insists on a regular file (checked on the open file,
/// so a swap after the check cannot matter). Returns the file and its size.
pub(crate) fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is {}, not a regular file", kind_name(&meta)),
        ));
    }
    Ok((f, meta.len()))
}

/// A short name of a file's type, for messages.
pub(crate) fn kind_name(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "a regular file"
    }
}

/// Where a symlinked blob may point under [`Symlinks::Confined`].
pub(crate) fn confined_target(layout_dir: &Path, path: &Path) -> io::Result<Option<PathBuf>> {
    let target = std::fs::canonicalize(path)?;
    let root = std::fs::canonicalize(layout_dir)?;
    if target.starts_with(&root) || target.starts_with("/nix/store/") {
        Ok(None)
    } else {
        Ok(Some(target))
    }
}
