//! The layer cache: a layer whose inputs are unchanged is copied from an
//! earlier build instead of being packed again (docs/cache.md).
//!
//! A layer is keyed by a sha256 over everything its bytes depend on: every
//! entry's target path, kind, owner, mode and, for files, size and the sha256
//! of the content (hashed anew on every build; a file's mtime is never
//! trusted), the entry mtime, the compression with its parameters and a
//! probe of what the compressor produces, the packer version and
//! [`CACHE_FORMAT`]. The directory holds
//!
//! ```text
//! DIR/v1/entries/<key>.json     digest, diff_id, sizes, file count, media type, self-check
//! DIR/v1/blobs/sha256/<hex>     the compressed blobs
//! DIR/v1/tmp/                   files being written; renamed into place when complete
//! ```
//!
//! Entries and blobs are immutable and appear by `rename`, so a reader sees
//! a whole file or none, and two builds sharing the directory need no lock.
//! A hit is never trusted: the blob is re-hashed while it is copied into the
//! output, and an entry or blob that does not check out is removed and the
//! layer packed again. The cache can make a build faster, never different.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::build::LayerRecipe;
use crate::compress::{default_threads, Encoder, GZIP_CHUNK, GZIP_LEVEL, ZSTD_LEVEL};
use crate::digest::{hex_of, sha256_file, Sha256Hasher, BLOCK};
use crate::error::{Error, IoContext, Result};
use crate::layer::LayerDescriptor;
use crate::plan::Compression;
use crate::tree::Kind;

/// Version of the key and entry format; part of every key and of the
/// directory name, so a packer with another format never reads these entries.
pub const CACHE_FORMAT: u32 = 1;

/// Files in `tmp/` older than this belong to a build that died; prune removes them.
const STALE: Duration = Duration::from_secs(3600);

/// How the cache served one build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheCounts {
    /// Layers copied from the cache (or the replaced layout), not packed.
    pub hits: u64,
    /// Layers packed (and added to the cache).
    pub misses: u64,
}

impl std::ops::AddAssign for CacheCounts {
    fn add_assign(&mut self, o: CacheCounts) {
        self.hits += o.hits;
        self.misses += o.misses;
    }
}

/// The key of one layer recipe, and the content digests it was made from.
#[derive(Debug)]
pub struct LayerKey {
    hex: String,
    content: BTreeMap<String, String>,
}

impl LayerKey {
    /// Hashes everything `recipe`'s bytes depend on, reading every file.
    ///
    /// # Errors
    /// A source that cannot be read or changed size since it was collected.
    pub fn of(recipe: &LayerRecipe) -> Result<LayerKey> {
        LayerKey::of_all(&[recipe])
            .pop()
            .expect("one key per recipe")
    }

    /// [`LayerKey::of`] for several recipes at once: the files of all of
    /// them are hashed by one pool of threads (a layer of one big file no
    /// longer leaves the other cores idle), each file once per process.
    /// One result per recipe, in order.
    pub fn of_all(recipes: &[&LayerRecipe]) -> Vec<Result<LayerKey>> {
        let per_recipe: Vec<Vec<(&Path, u64)>> = recipes
            .iter()
            .map(|r| {
                r.tree
                    .nodes
                    .values()
                    .filter_map(|n| match &n.kind {
                        Kind::File { source, size } => Some((source.as_path(), *size)),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let all: Vec<(&Path, u64)> = per_recipe.iter().flatten().copied().collect();
        let mut hashed = hash_files(&all).into_iter();
        recipes
            .iter()
            .zip(&per_recipe)
            .map(|(r, files)| {
                let mine: Vec<_> = hashed.by_ref().take(files.len()).collect();
                LayerKey::from_hashed(r, mine)
            })
            .collect()
    }

    /// The key of `recipe` given the sha256 and length of each of its files
    /// in tree order.
    fn from_hashed(
        recipe: &LayerRecipe,
        hashed: Vec<io::Result<(String, u64)>>,
    ) -> Result<LayerKey> {
        let mut h = Keyer(Sha256Hasher::new());
        h.field(b"ocipack layer cache");
        h.num(u64::from(CACHE_FORMAT));
        h.field(env!("CARGO_PKG_VERSION").as_bytes());
        h.field(compression_identity(recipe.compression).as_bytes());
        h.num(recipe.mtime);
        let mut hashed = hashed.into_iter();
        let mut content = BTreeMap::new();
        for (path, node) in &recipe.tree.nodes {
            h.field(path.as_bytes());
            h.num(u64::from(node.uid));
            h.num(u64::from(node.gid));
            h.num(u64::from(node.mode));
            match &node.kind {
                Kind::Dir => h.field(b"dir"),
                Kind::Symlink(t) => {
                    h.field(b"symlink");
                    h.field(t.as_bytes());
                }
                Kind::Data(bytes) => {
                    h.field(b"data");
                    h.num(bytes.len() as u64);
                    h.field(crate::digest::sha256(bytes).as_bytes());
                }
                Kind::File { source, size } => {
                    let read = hashed.next().expect("one result per file");
                    let (digest, n) = read.map_err(|e| Error::Input {
                        location: recipe.comment.clone(),
                        message: format!(
                            "{} cannot be read: {e}; check its permissions",
                            source.display()
                        ),
                    })?;
                    if n != *size {
                        return Err(Error::Input {
                            location: recipe.comment.clone(),
                            message: format!(
                                "{} changed size while being read ({size} then {n} bytes); pack from a stable source",
                                source.display()
                            ),
                        });
                    }
                    h.field(b"file");
                    h.num(n);
                    h.field(digest.as_bytes());
                    content.insert(path.clone(), digest);
                }
            }
        }
        let hex = h.0.finish()["sha256:".len()..].to_owned();
        Ok(LayerKey { hex, content })
    }

    /// The key as 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Target path to `sha256:<hex>` of every file entry.
    pub fn content(&self) -> &BTreeMap<String, String> {
        &self.content
    }
}

/// sha256 and length of each file, hashed by up to [`default_threads`]
/// threads taking files in turn, largest first (so one big file does not
/// run alone at the end), each file at most once per process
/// ([`crate::digest::file_sha256`]); results in input order.
fn hash_files(files: &[(&Path, u64)]) -> Vec<io::Result<(String, u64)>> {
    let mut order = crate::par::in_order(files.len());
    order.sort_by_key(|&i| std::cmp::Reverse(files[i].1));
    crate::par::map(
        &order,
        default_threads(),
        || vec![0u8; BLOCK],
        |buf, i| crate::digest::file_sha256(files[i].0, buf),
    )
}

/// Length-prefixed fields, so no two different recipes feed the same bytes.
struct Keyer(Sha256Hasher);

impl Keyer {
    fn field(&mut self, b: &[u8]) {
        self.num(b.len() as u64);
        self.0.update(b);
    }
    fn num(&mut self, n: u64) {
        self.0.update(&n.to_le_bytes());
    }
}

/// The compression, its parameters, and the digest of what the compressor
/// makes of a fixed probe: a compression library that changes its output
/// changes every key, even with the same packer version.
fn compression_identity(c: Compression) -> String {
    static GZIP: OnceLock<String> = OnceLock::new();
    static ZSTD: OnceLock<String> = OnceLock::new();
    let probe = |c: Compression| {
        // 256 KiB of text and noise, so both the matcher and the entropy coder are exercised.
        let mut data = Vec::with_capacity(256 << 10);
        let mut x: u32 = 0x9e37_79b9;
        while data.len() < 256 << 10 {
            data.extend_from_slice(b"ocipack probe: the quick brown fox jumps over the lazy dog\n");
            for _ in 0..64 {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                data.push((x >> 24) as u8);
            }
        }
        let mut e = Encoder::new(Vec::new(), c, 1).expect("in-memory encoder");
        e.write_all(&data).expect("in-memory write");
        crate::digest::sha256(&e.finish().expect("in-memory finish"))
    };
    match c {
        Compression::None => "none".to_owned(),
        Compression::Gzip => GZIP
            .get_or_init(|| {
                format!(
                    "gzip level={GZIP_LEVEL} chunk={GZIP_CHUNK} probe={}",
                    probe(c)
                )
            })
            .clone(),
        Compression::Zstd => ZSTD
            .get_or_init(|| format!("zstd level={ZSTD_LEVEL} probe={}", probe(c)))
            .clone(),
    }
}

/// What the cache knows of a packed layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CachedLayer {
    /// [`CACHE_FORMAT`].
    pub format: u32,
    /// The key, as in the file name.
    pub key: String,
    /// sha256 of the blob.
    pub digest: String,
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Blob size.
    pub size: u64,
    /// Uncompressed tar size.
    pub uncompressed_size: u64,
    /// Number of tar entries.
    pub files: u64,
    /// OCI media type.
    pub media_type: String,
    /// sha256 over the fields above: a damaged entry is refused, not used.
    pub check: String,
}

impl CachedLayer {
    fn new(key: &LayerKey, d: &LayerDescriptor) -> CachedLayer {
        let mut e = CachedLayer {
            format: CACHE_FORMAT,
            key: key.hex.clone(),
            digest: d.digest.clone(),
            diff_id: d.diff_id.clone(),
            size: d.size,
            uncompressed_size: d.uncompressed_size,
            files: d.files,
            media_type: d.media_type.clone(),
            check: String::new(),
        };
        e.check = e.self_check();
        e
    }

    fn self_check(&self) -> String {
        let mut h = Keyer(Sha256Hasher::new());
        h.num(u64::from(self.format));
        for f in [&self.key, &self.digest, &self.diff_id, &self.media_type] {
            h.field(f.as_bytes());
        }
        h.num(self.size);
        h.num(self.uncompressed_size);
        h.num(self.files);
        h.0.finish()
    }

    /// The layer's descriptor, with this build's history comment.
    pub fn descriptor(&self, comment: &str) -> LayerDescriptor {
        LayerDescriptor {
            comment: comment.to_owned(),
            diff_id: self.diff_id.clone(),
            digest: self.digest.clone(),
            files: self.files,
            media_type: self.media_type.clone(),
            size: self.size,
            uncompressed_size: self.uncompressed_size,
        }
    }
}

/// The result of [`Cache::fetch`].
#[derive(Debug, Default)]
pub struct Lookup {
    /// The entry, when its blob was copied to the destination and checked.
    pub hit: Option<CachedLayer>,
    /// Damaged entries or blobs found (and removed) on the way.
    pub warnings: Vec<String>,
}

/// A layer cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    root: PathBuf,
}

/// What [`Cache::prune`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// The cache directory.
    pub dir: PathBuf,
    /// The bound asked for, in bytes.
    pub max_size: u64,
    /// Bytes before pruning.
    pub size_before: u64,
    /// Bytes after pruning.
    pub size_after: u64,
    /// Entries before pruning.
    pub entries_before: u64,
    /// Entries left.
    pub entries_after: u64,
    /// Blobs removed.
    pub blobs_removed: u64,
    /// Entries of the other caches in the directory ([`Extra`]) before pruning.
    pub extra_entries_before: u64,
    /// Those left.
    pub extra_entries_after: u64,
}

/// Entries of other caches kept in the same directory (the SBOM cache's,
/// `ocipack_attest::cache`): files that name no blob, evicted with the
/// layer entries in one least-recently-used order by their mtime (which
/// their owner sets on every hit), and `tmp` directories whose files older
/// than an hour belong to dead runs.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Directories of entries.
    pub entries: Vec<PathBuf>,
    /// Directories of files being written.
    pub tmp: Vec<PathBuf>,
}

/// Size and count of a cache.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheInfo {
    /// The cache directory.
    pub dir: PathBuf,
    /// Bytes of entries and blobs, with those of [`Extra`] entries.
    pub size: u64,
    /// Entries.
    pub entries: u64,
    /// Blobs.
    pub blobs: u64,
    /// Entries of the other caches in the directory ([`Extra`]).
    pub extra_entries: u64,
}

impl Cache {
    /// The default cache directory: `$OCIPACK_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/ocipack`, else `$HOME/.cache/ocipack`; `None` when
    /// none of them is set.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(d) = var("OCIPACK_CACHE_DIR") {
            return Some(d);
        }
        if let Some(d) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
            return Some(d.join("ocipack"));
        }
        var("HOME")
            .filter(|d| d.is_absolute())
            .map(|h| h.join(".cache/ocipack"))
    }

    /// Opens (creating) the cache at `dir`.
    ///
    /// # Errors
    /// The directories cannot be created.
    pub fn open(dir: &Path) -> Result<Cache> {
        let root = dir.join(format!("v{CACHE_FORMAT}"));
        let c = Cache {
            dir: dir.to_owned(),
            root,
        };
        for d in [c.entries(), c.blobs(), c.tmp()] {
            fs::create_dir_all(&d).at(&d)?;
        }
        Ok(c)
    }

    /// The directory given to [`Cache::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entries(&self) -> PathBuf {
        self.root.join("entries")
    }
    fn blobs(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    fn entry_path(&self, key: &str) -> PathBuf {
        self.entries().join(format!("{key}.json"))
    }

    /// A fresh name in `tmp/`, unique across processes and threads.
    fn tmp_path(&self) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.tmp().join(format!(
            "{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Looks `key` up; on a hit puts the blob at `dest`, checking its
    /// digest and size on the way. The blob is hard-linked from any of
    /// `replaced` (blob directories of the layout this build replaces),
    /// else copied from the cache. A damaged entry or cache blob is removed and reported in
    /// [`Lookup::warnings`]; the caller then packs the layer.
    ///
    /// # Errors
    /// Only writing `dest` fails the lookup; a cache that cannot be read is a miss.
    pub fn fetch(&self, key: &LayerKey, dest: &Path, replaced: &[&Path]) -> Result<Lookup> {
        let mut out = Lookup::default();
        let path = self.entry_path(&key.hex);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                out.warnings.push(format!(
                    "cache entry {} cannot be read: {e}",
                    path.display()
                ));
                return Ok(out);
            }
        };
        let entry = match serde_json::from_slice::<CachedLayer>(&text) {
            Ok(e)
                if e.check == e.self_check() && e.key == key.hex && hex_of(&e.digest).is_some() =>
            {
                e
            }
            _ => {
                let _ = fs::remove_file(&path);
                out.warnings.push(format!(
                    "cache entry {} is damaged; removed it and packing the layer again",
                    path.display()
                ));
                return Ok(out);
            }
        };
        let hex = hex_of(&entry.digest).expect("checked above");
        let own = self.blobs().join(hex);
        // The layout being replaced first: its blobs are hard-linked (they
        // go away with it, so nothing else shares them), then the cache's,
        // copied, so no output ever shares a file with the cache.
        let mut candidates: Vec<(PathBuf, bool)> =
            replaced.iter().map(|d| (d.join(hex), true)).collect();
        candidates.push((own.clone(), false));
        for (cand, link) in &candidates {
            match transfer_verified(cand, dest, &entry, *link)? {
                Copy::Verified => {
                    // The access stamp that `prune` evicts by (atime is often off).
                    let _ = File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_modified(SystemTime::now()));
                    if *link && !own.is_file() {
                        // Heal the cache from the replaced layout.
                        let _ = self.put_blob(dest, hex);
                    }
                    out.hit = Some(entry);
                    return Ok(out);
                }
                Copy::Absent => {}
                Copy::Mismatch(what) if *cand == own => {
                    let _ = fs::remove_file(cand);
                    out.warnings.push(format!(
                        "cached blob {} is damaged ({what}); removed it",
                        cand.display()
                    ));
                }
                Copy::Mismatch(what) => out.warnings.push(format!(
                    "{} in the layout being replaced is damaged ({what}); not used",
                    cand.display()
                )),
            }
        }
        Ok(out)
    }

    /// Adds a packed layer: its blob (copied from `blob`), then its entry,
    /// each written to `tmp/` and renamed into place.
    ///
    /// # Errors
    /// I/O errors on the cache directory.
    pub fn store(&self, key: &LayerKey, desc: &LayerDescriptor, blob: &Path) -> Result<()> {
        let hex = hex_of(&desc.digest).ok_or_else(|| Error::Input {
            location: "layer cache".into(),
            message: format!("digest {} is not sha256:<hex>", desc.digest),
        })?;
        self.put_blob(blob, hex)?;
        let entry = CachedLayer::new(key, desc);
        let text = serde_json::to_vec(&entry).expect("entry serialises");
        let tmp = self.tmp_path();
        fs::write(&tmp, text).at(&tmp)?;
        let dest = self.entry_path(&key.hex);
        fs::rename(&tmp, &dest)
            .inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
            .at(&dest)
    }

    fn put_blob(&self, src: &Path, hex: &str) -> Result<()> {
        // Replaced even when present: a blob already there may be a damaged
        // one whose entry was found broken first. The rename is atomic, so a
        // reader has the old file or the new one, whole.
        let dest = self.blobs().join(hex);
        let tmp = self.tmp_path();
        let r = fs::copy(src, &tmp)
            .at(&tmp)
            .and_then(|_| fs::rename(&tmp, &dest).at(&dest));
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    /// Size and counts.
    ///
    /// # Errors
    /// The directories cannot be listed.
    pub fn info(&self, extra: &Extra) -> Result<CacheInfo> {
        let entries = list(&self.entries())?;
        let blobs = list(&self.blobs())?;
        let others = list_all(&extra.entries)?;
        Ok(CacheInfo {
            dir: self.dir.clone(),
            size: entries
                .iter()
                .chain(&blobs)
                .chain(&others)
                .map(|f| f.size)
                .sum(),
            entries: entries.len() as u64,
            blobs: blobs.len() as u64,
            extra_entries: others.len() as u64,
        })
    }

    /// Removes least recently used entries (by their access stamp, the
    /// entry file's mtime, set on every hit) and the blobs no remaining
    /// entry names, until entries and blobs, and the `extra` entries, take
    /// at most `max_size` bytes. Damaged entries, and files of dead builds
    /// in `tmp/` (and `extra.tmp`) and blobs without an entry older than an
    /// hour, go first. Safe while builds run: a build that loses an entry
    /// or blob packs the layer again.
    ///
    /// # Errors
    /// The directories cannot be listed or a file cannot be removed.
    pub fn prune(&self, max_size: u64, extra: &Extra) -> Result<PruneReport> {
        let now = SystemTime::now();
        let old = |f: &Listed| now.duration_since(f.mtime).is_ok_and(|d| d > STALE);
        let mut tmp_dirs = vec![self.tmp()];
        tmp_dirs.extend(extra.tmp.iter().cloned());
        for f in list_all(&tmp_dirs)? {
            if old(&f) {
                remove(&f.path)?;
            }
        }
        // The blob an entry names; none for the extra entries.
        let mut entries: Vec<(Listed, Option<String>)> = Vec::new();
        for f in list(&self.entries())? {
            let parsed = fs::read(&f.path)
                .ok()
                .and_then(|t| serde_json::from_slice::<CachedLayer>(&t).ok())
                .filter(|e| e.check == e.self_check() && hex_of(&e.digest).is_some());
            match parsed {
                Some(e) => {
                    let hex = hex_of(&e.digest).expect("filtered").to_owned();
                    entries.push((f, Some(hex)));
                }
                None => remove(&f.path)?,
            }
        }
        let extra_before = entries.len();
        entries.extend(list_all(&extra.entries)?.into_iter().map(|f| (f, None)));
        let extra_before = (entries.len() - extra_before) as u64;
        let mut blobs: BTreeMap<String, Listed> = list(&self.blobs())?
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect();
        let size_before: u64 = entries.iter().map(|(f, _)| f.size).sum::<u64>()
            + blobs.values().map(|f| f.size).sum::<u64>();
        let entries_before = entries.len() as u64 - extra_before;
        let mut blobs_removed = 0;
        let named: BTreeSet<&String> = entries.iter().filter_map(|(_, h)| h.as_ref()).collect();
        let orphans: Vec<String> = blobs
            .iter()
            .filter(|(h, f)| !named.contains(h) && old(f))
            .map(|(h, _)| h.clone())
            .collect();
        for h in orphans {
            remove(&blobs[&h].path)?;
            blobs.remove(&h);
            blobs_removed += 1;
        }
        let mut size: u64 = entries.iter().map(|(f, _)| f.size).sum::<u64>()
            + blobs.values().map(|f| f.size).sum::<u64>();
        // Oldest stamp first; the name breaks ties so the order is stable.
        entries.sort_by(|(a, _), (b, _)| (a.mtime, &a.name).cmp(&(b.mtime, &b.name)));
        let mut refs: BTreeMap<String, usize> = BTreeMap::new();
        for h in entries.iter().filter_map(|(_, h)| h.as_ref()) {
            *refs.entry(h.clone()).or_default() += 1;
        }
        let (mut kept, mut extra_kept) = (entries_before, extra_before);
        for (f, h) in &entries {
            if size <= max_size {
                break;
            }
            remove(&f.path)?;
            size -= f.size;
            let Some(h) = h else {
                extra_kept -= 1;
                continue;
            };
            kept -= 1;
            let r = refs.get_mut(h).expect("counted");
            *r -= 1;
            if *r == 0 {
                if let Some(b) = blobs.remove(h) {
                    remove(&b.path)?;
                    size -= b.size;
                    blobs_removed += 1;
                }
            }
        }
        Ok(PruneReport {
            dir: self.dir.clone(),
            max_size,
            size_before,
            size_after: size,
            entries_before,
            entries_after: kept,
            blobs_removed,
            extra_entries_before: extra_before,
            extra_entries_after: extra_kept,
        })
    }
}

enum Copy {
    Verified,
    Absent,
    Mismatch(String),
}

/// Puts `src` at `dest` (a hard link when `link` and the file system
/// allows, else a copy) and hashes what is at `dest`; anything but a
/// regular file of the entry's size and digest leaves no `dest` behind.
fn transfer_verified(src: &Path, dest: &Path, entry: &CachedLayer, link: bool) -> Result<Copy> {
    if link && fs::symlink_metadata(src).is_ok_and(|m| m.file_type().is_file()) {
        let _ = fs::remove_file(dest);
        if fs::hard_link(src, dest).is_ok() {
            // Hashed in full, never from the per-process memo: what was
            // linked is checked, whatever this process saw before.
            let verdict = match sha256_file(dest, &mut vec![0u8; BLOCK]) {
                Ok((d, n)) if d == entry.digest && n == entry.size => return Ok(Copy::Verified),
                Ok((d, n)) => Copy::Mismatch(format!(
                    "{n} bytes with digest {d}, the entry says {} bytes, {}",
                    entry.size, entry.digest
                )),
                Err(e) => Copy::Mismatch(format!("read error: {e}")),
            };
            let _ = fs::remove_file(dest);
            return Ok(verdict);
        }
    }
    copy_verified(src, dest, entry)
}

/// Copies `src` to `dest` while hashing it; anything but a regular file of
/// the entry's size and digest leaves no `dest` behind.
fn copy_verified(src: &Path, dest: &Path, entry: &CachedLayer) -> Result<Copy> {
    let meta = match fs::symlink_metadata(src) {
        Ok(m) if m.file_type().is_file() => m,
        _ => return Ok(Copy::Absent),
    };
    if meta.len() != entry.size {
        return Ok(Copy::Mismatch(format!(
            "{} bytes, the entry says {}",
            meta.len(),
            entry.size
        )));
    }
    let Ok(mut r) = File::open(src) else {
        return Ok(Copy::Absent);
    };
    let mut w = File::create(dest).at(dest)?;
    let mut h = Sha256Hasher::new();
    let mut buf = vec![0u8; BLOCK];
    let mut n_total = 0u64;
    let result = loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(Copy::Mismatch(format!("read error: {e}"))),
        };
        h.update(&buf[..n]);
        n_total += n as u64;
        if let Err(e) = w.write_all(&buf[..n]) {
            drop(w);
            let _ = fs::remove_file(dest);
            return Err(e).at(dest);
        }
    };
    drop(w);
    let verdict = match result {
        Err(m) => m,
        Ok(()) => {
            let digest = h.finish();
            if digest == entry.digest && n_total == entry.size {
                return Ok(Copy::Verified);
            }
            Copy::Mismatch(format!(
                "{n_total} bytes with digest {digest}, the entry says {} bytes, {}",
                entry.size, entry.digest
            ))
        }
    };
    let _ = fs::remove_file(dest);
    Ok(verdict)
}

struct Listed {
    path: PathBuf,
    name: String,
    size: u64,
    mtime: SystemTime,
}

fn list(dir: &Path) -> Result<Vec<Listed>> {
    let mut v = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e).at(dir),
    };
    for ent in rd {
        let ent = ent.at(dir)?;
        let Ok(meta) = ent.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        v.push(Listed {
            path: ent.path(),
            name: ent.file_name().to_string_lossy().into_owned(),
            size: meta.len(),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    Ok(v)
}

/// [`list`] of each directory, together.
fn list_all(dirs: &[PathBuf]) -> Result<Vec<Listed>> {
    let mut v = Vec::new();
    for d in dirs {
        v.extend(list(d)?);
    }
    Ok(v)
}

/// Removes a file; one already gone (a concurrent prune) is fine.
fn remove(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at(p),
        _ => Ok(()),
    }
}

/// `5G`, `500M`, `64K`, `1024`: a size in bytes (powers of 1024).
///
/// # Errors
/// Anything else, with a message saying what is expected.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => 0,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|_| mult != 0)
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("size {s:?} is not a number of bytes with an optional K, M, G or T suffix (e.g. 5G)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("5G"), Ok(5 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert!(parse_size("5X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
    }

    #[test]
    fn media_types_are_keyed() {
        // Different compressions give different identities (and so keys).
        let ids: BTreeSet<String> = [Compression::Gzip, Compression::Zstd, Compression::None]
            .into_iter()
            .map(compression_identity)
            .collect();
        assert_eq!(ids.len(), 3);
    }
}
