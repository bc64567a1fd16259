//! Layer blob compression with output that depends only on the input bytes.
//!
//! gzip is written as a sequence of gzip members, one per fixed-size chunk of
//! input, compressed on all cores and emitted in input order. Chunk boundaries
//! depend only on the byte offset, so the output is the same whatever the
//! number of threads; every gzip reader (Go's, zlib's, Python's, `gzip -d`)
//! reads multi-member files as one stream. The header carries no name, mtime 0
//! and OS byte 255 ("unknown"), so nothing of the host leaks in.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::plan::Compression;

/// Bytes of input per gzip member. Large enough that restarting the window
/// costs well under 1% of ratio, small enough to keep two cores busy on a
/// 10 MB layer.
pub const GZIP_CHUNK: usize = 2 << 20;
/// gzip level: the usual speed/size balance (what `gzip -6` does).
pub const GZIP_LEVEL: u32 = 6;
/// zstd level.
pub const ZSTD_LEVEL: i32 = 3;

/// The OCI media type of a layer with this compression.
pub fn media_type(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
    }
}

/// A compressing writer; call [`Encoder::finish`] to flush the trailer.
pub enum Encoder<W: Write> {
    /// Pass-through.
    None(W),
    /// Parallel multi-member gzip.
    Gzip(ParallelGzip<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Starts an encoder writing to `inner`.
    ///
    /// # Errors
    /// zstd context creation failures.
    pub fn new(inner: W, c: Compression, threads: usize) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Encoder::None(inner),
            Compression::Gzip => Encoder::Gzip(ParallelGzip::new(inner, threads)),
            Compression::Zstd => {
                let mut z = zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL)?;
                z.include_checksum(false)?;
                z.include_contentsize(false)?;
                z.include_dictid(false)?;
                Encoder::Zstd(z)
            }
        })
    }

    /// Writes the trailer and returns the inner writer.
    ///
    /// # Errors
    /// Write errors of the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(g) => g.finish(),
            Encoder::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

type Job = (u64, Vec<u8>);
type Done = (u64, io::Result<Vec<u8>>);

/// gzip, one member per [`GZIP_CHUNK`] of input, compressed by a worker pool.
pub struct ParallelGzip<W: Write> {
    inner: W,
    chunk: Vec<u8>,
    next_seq: u64,
    next_out: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    workers: Option<Pool>,
    wrote_any: bool,
}

struct Pool {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    handles: Vec<JoinHandle<()>>,
    in_flight: usize,
    max_in_flight: usize,
}

fn gzip_member(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(
            Vec::with_capacity(data.len() / 2 + 64),
            flate2::Compression::new(GZIP_LEVEL),
        );
    enc.write_all(data)?;
    enc.finish()
}

impl<W: Write> ParallelGzip<W> {
    fn new(inner: W, threads: usize) -> Self {
        let workers = (threads > 1).then(|| {
            let (jobs, job_rx) = mpsc::sync_channel::<Job>(threads);
            let (done_tx, done) = mpsc::channel::<Done>();
            let job_rx = Arc::new(Mutex::new(job_rx));
            let handles = (0..threads)
                .map(|_| {
                    let rx = Arc::clone(&job_rx);
                    let tx = done_tx.clone();
                    std::thread::spawn(move || loop {
                        let job = rx.lock().map(|r| r.recv());
                        let Ok(Ok((seq, data))) = job else { return };
                        if tx.send((seq, gzip_member(&data))).is_err() {
                            return;
                        }
                    })
                })
                .collect();
            Pool {
                jobs: Some(jobs),
                done,
                handles,
                in_flight: 0,
                max_in_flight: threads * 2,
            }
        });
        ParallelGzip {
            inner,
            chunk: Vec::with_capacity(GZIP_CHUNK),
            next_seq: 0,
            next_out: 0,
            pending: BTreeMap::new(),
            workers,
            wrote_any: false,
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(GZIP_CHUNK));
        let seq = self.next_seq;
        self.next_seq += 1;
        self.wrote_any = true;
        if self.workers.is_none() {
            let member = gzip_member(&data)?;
            self.inner.write_all(&member)?;
            self.next_out += 1;
            return Ok(());
        }
        while self
            .workers
            .as_ref()
            .is_some_and(|p| p.in_flight >= p.max_in_flight)
        {
            self.collect_one()?;
        }
        let pool = self.workers.as_mut().expect("pool exists");
        pool.jobs
            .as_ref()
            .expect("pool open")
            .send((seq, data))
            .map_err(|_| io::Error::other("gzip worker pool stopped"))?;
        pool.in_flight += 1;
        Ok(())
    }

    /// Waits for one finished member and writes every member now in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let pool = self.workers.as_mut().expect("pool exists");
        let (seq, res) = pool
            .done
            .recv()
            .map_err(|_| io::Error::other("gzip worker pool stopped"))?;
        pool.in_flight -= 1;
        self.pending.insert(seq, res?);
        while let Some(member) = self.pending.remove(&self.next_out) {
            self.inner.write_all(&member)?;
            self.next_out += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        if !self.chunk.is_empty() || !self.wrote_any {
            self.submit()?;
        }
        while self.workers.as_ref().is_some_and(|p| p.in_flight > 0) {
            self.collect_one()?;
        }
        if let Some(mut pool) = self.workers.take() {
            pool.jobs = None;
            for h in pool.handles.drain(..) {
                let _ = h.join();
            }
        }
        Ok(self.inner)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = GZIP_CHUNK - self.chunk.len();
        let n = room.min(buf.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == GZIP_CHUNK {
            self.submit()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The number of compression threads to use by default: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(data: &[u8], threads: usize) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new(), Compression::Gzip, threads).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn same_bytes_whatever_the_thread_count() {
        let data: Vec<u8> = (0..(GZIP_CHUNK * 3 + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let one = compress(&data, 1);
        assert_eq!(one, compress(&data, 2));
        assert_eq!(one, compress(&data, 5));
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn empty_input_is_a_valid_gzip() {
        let z = compress(&[], 2);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&z[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
        assert_eq!(&z[..4], &[0x1f, 0x8b, 8, 0]);
    }
}
