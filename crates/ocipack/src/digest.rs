//! sha256 digests computed while bytes stream past, and of files (with a
//! per-process memo, [`file_sha256`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

/// A `Write` adapter that hashes and counts everything written through it.
pub struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Returns the inner writer, the `sha256:<hex>` digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            format_digest(self.hasher.finalize().as_slice()),
            self.count,
        )
    }

    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `sha256:` followed by lowercase hex.
pub fn format_digest(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(7 + 2 * bytes.len());
    s.push_str("sha256:");
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// The digest of a byte slice.
pub fn sha256(bytes: &[u8]) -> String {
    format_digest(Sha256::digest(bytes).as_slice())
}

/// Hashes a reader to its end: `(digest, bytes read)`.
///
/// # Errors
/// Read errors.
pub fn sha256_reader(mut r: impl io::Read) -> io::Result<(String, u64)> {
    // Large blocks: a read per 8 KiB (`io::copy`) costs more than the hash.
    let mut buf = vec![0u8; BLOCK];
    hash_with(&mut r, &mut buf)
}

/// The block size files are hashed in.
pub const BLOCK: usize = 1 << 20;

fn hash_with(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut n = 0u64;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok((format_digest(h.finalize().as_slice()), n)),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// sha256 and length of the file at `path`, read in blocks of `buf`'s
/// size (give it [`BLOCK`] bytes and reuse it: a fresh megabyte per file
/// costs more than hashing a small one).
///
/// # Errors
/// The file cannot be opened or read.
pub fn sha256_file(path: &Path, buf: &mut [u8]) -> io::Result<(String, u64)> {
    hash_with(&mut File::open(path)?, buf)
}

/// A file's identity while it is unchanged: what `stat` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// How long before the hashing started a file's ctime must lie for its
/// digest to be remembered (see [`file_sha256`]).
const SETTLED: Duration = Duration::from_secs(2);

/// What this process has hashed: (device, inode) to the stamp it had and
/// its digest and length.
type Memo = HashMap<(u64, u64), (Stamp, String, u64)>;
static MEMO: Mutex<Option<Memo>> = Mutex::new(None);

/// [`sha256_file`], hashing each file at most once per process: several
/// layers, images and the planner's asset check read the same files in
/// one `ocipack host --all`.
///
/// The memo lives in this process only (it never reaches the layer cache's
/// key, which is the content hash itself) and is keyed by device and inode;
/// a remembered digest is used only while `stat` still gives the same size,
/// mtime and ctime. Writing a file always sets its ctime to the current
/// time, and nothing can set it back, so a file changed after it was hashed
/// no longer matches. A digest is remembered only when (a) `fstat` gave the
/// same answer before and after the hashing, so the file did not change
/// while it was read, and (b) its ctime was at least `SETTLED` (2 s) older than
/// the moment the hashing started, so a later write cannot land in the same
/// timestamp tick (the file system's clock is coarser than a nanosecond)
/// and leave the ctime unchanged.
///
/// # Errors
/// The file cannot be opened or read.
pub fn file_sha256(path: &Path, buf: &mut [u8]) -> io::Result<(String, u64)> {
    memoized(path, buf, SETTLED)
}

#[cfg(test)]
thread_local! {
    /// Files this thread really hashed in [`memoized`].
    static HASHED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn memoized(path: &Path, buf: &mut [u8], settle: Duration) -> io::Result<(String, u64)> {
    let lock = || {
        MEMO.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Ok(m) = std::fs::metadata(path) {
        let now = Stamp::of(&m);
        if let Some((stamp, digest, n)) = lock().as_ref().and_then(|t| t.get(&(now.dev, now.ino))) {
            if *stamp == now {
                return Ok((digest.clone(), *n));
            }
        }
    }
    let started = SystemTime::now();
    let mut f = File::open(path)?;
    let before = Stamp::of(&f.metadata()?);
    let (digest, n) = hash_with(&mut f, buf)?;
    #[cfg(test)]
    HASHED.with(|h| h.set(h.get() + 1));
    let after = Stamp::of(&f.metadata()?);
    let settled = u64::try_from(before.ctime.0)
        .ok()
        .zip(u32::try_from(before.ctime.1).ok())
        .and_then(|(s, ns)| SystemTime::UNIX_EPOCH.checked_add(Duration::new(s, ns)))
        .and_then(|ctime| started.duration_since(ctime).ok())
        .is_some_and(|age| age >= settle);
    if before == after && n == before.size && settled {
        lock()
            .get_or_insert_with(HashMap::new)
            .insert((before.dev, before.ino), (before, digest.clone(), n));
    }
    Ok((digest, n))
}

/// The hex part of a `sha256:<hex>` digest, if well formed.
pub fn hex_of(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// An incremental sha256 producing `sha256:<hex>`, so crates on top of
/// ocipack need no sha2 dependency of their own.
#[derive(Debug, Clone, Default)]
pub struct Sha256Hasher(Sha256);

impl Sha256Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Sha256Hasher(Sha256::new())
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The `sha256:<hex>` digest of everything fed.
    pub fn finish(self) -> String {
        format_digest(self.0.finalize().as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed() -> usize {
        HASHED.with(std::cell::Cell::get)
    }

    #[test]
    fn the_memo_serves_an_unchanged_file_and_never_a_changed_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"one").unwrap();
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let buf = &mut [0u8; 16];
        let n0 = hashed();
        // Settled at once (for the test): hashed, then served from the memo.
        let first = memoized(&p, buf, Duration::ZERO).unwrap();
        assert_eq!(first, (sha256(b"one"), 3));
        assert_eq!(memoized(&p, buf, Duration::ZERO).unwrap(), first);
        assert_eq!(hashed(), n0 + 1, "the second call was served from the memo");
        // Same size, mtime put back: the ctime moved, so it is hashed again
        // (after a pause longer than a timestamp tick, which the settling
        // time stands for outside this test).
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(&p, b"two").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(
            memoized(&p, buf, Duration::ZERO).unwrap(),
            (sha256(b"two"), 3)
        );
        assert_eq!(hashed(), n0 + 2);
        // A file changed within the settling time is not remembered at all:
        // a later write could land in the same timestamp tick.
        let q = d.path().join("g");
        std::fs::write(&q, b"new").unwrap();
        file_sha256(&q, buf).unwrap();
        file_sha256(&q, buf).unwrap();
        assert_eq!(hashed(), n0 + 4);
    }
}
