//! sha256 digests computed while bytes stream past.

use std::io::{self, Write};

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
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
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
    let mut w = HashWriter::new(io::sink());
    io::copy(&mut r, &mut w)?;
    let (_, d, n) = w.finish();
    Ok((d, n))
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
