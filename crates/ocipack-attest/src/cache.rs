//! The SBOM cache: what is expensive to learn for an SBOM (the crates
//! `cargo tree` lists for a package and target) kept between runs, in the
//! `sbom/` subdirectory of the layer cache directory (docs/cache.md).
//!
//! The files of a layer (path, size, sha1, sha256, ELF or not; what
//! `inputs::read_layer` gets by decompressing and hashing the whole layer)
//! are keyed by the layer's digest and media type, the ocipack version and
//! [`FORMAT`]: the digest names the exact bytes, so the same key means the
//! same files.
//!
//! A crate list is keyed by a sha256 over everything its value depends on: the
//! package, the target triple, the bytes of Cargo.lock, of every Cargo.toml
//! of the repository (outside `target/`, hidden and `node_modules`
//! directories) and of `.cargo/config.toml`, `cargo --version`, the
//! ocipack version and [`FORMAT`]. Any change to one of them is a new key, so
//! a stale entry is never read. Entries appear by `rename` from `tmp/`, so
//! two runs sharing the directory see a whole entry or none; an entry that
//! does not parse is a miss (and is written again).
//!
//! ```text
//! DIR/sbom/v1/crates/<key>.json   the crate list of one (package, target, inputs)
//! DIR/sbom/v1/layers/<key>.json   the file entries of one layer blob
//! DIR/sbom/v1/tmp/                files being written
//! ```
//!
//! A hit sets the entry's mtime, the access stamp by which `ocipack cache
//! prune` evicts these entries together with the layer cache's
//! ([`SbomCache::extra`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cargo::{self, Crate};
use crate::error::{io, Result};
use crate::inputs::{self, LayerEntry};
use ocipack::layout::{Descriptor, Layout};

/// Bumped when an entry's meaning or shape changes.
pub const FORMAT: u32 = 1;

/// The SBOM cache under a layer cache directory.
pub struct SbomCache {
    root: PathBuf,
    warnings: Mutex<Vec<String>>,
}

impl SbomCache {
    /// The SBOM cache in `layer_cache_dir/sbom/`, created when absent.
    ///
    /// # Errors
    /// The directories cannot be created.
    pub fn open(layer_cache_dir: &Path) -> Result<SbomCache> {
        let root = layer_cache_dir.join(format!("sbom/v{FORMAT}"));
        for d in [root.join("crates"), root.join("layers"), root.join("tmp")] {
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(SbomCache {
            root,
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// What `ocipack cache prune` and `cache info` count of the SBOM cache
    /// in `layer_cache_dir`: its entry directories (evicted with the layer
    /// entries, least recently used first) and its `tmp/`.
    pub fn extra(layer_cache_dir: &Path) -> ocipack::cache::Extra {
        let root = layer_cache_dir.join(format!("sbom/v{FORMAT}"));
        ocipack::cache::Extra {
            entries: vec![root.join("crates"), root.join("layers")],
            tmp: vec![root.join("tmp")],
        }
    }

    /// Entries that could not be written since the last call (the caller
    /// reports them; a library does not print).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .warnings
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn warn(&self, e: crate::Error) {
        self.warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(format!("SBOM cache: {e}"));
    }

    fn get<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let p = self.root.join(kind).join(format!("{key}.json"));
        let bytes = std::fs::read(&p).ok()?;
        let v = serde_json::from_slice(&bytes).ok()?;
        // The access stamp `ocipack cache prune` evicts by, as for layer entries.
        let _ = std::fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Some(v)
    }

    fn put<T: Serialize>(&self, kind: &str, key: &str, value: &T) -> Result<()> {
        static N: AtomicU64 = AtomicU64::new(0);
        let tmp = self.root.join("tmp").join(format!(
            "{}-{}-{key}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let bytes = serde_json::to_vec(value).expect("serializable");
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        let dest = self.root.join(kind).join(format!("{key}.json"));
        std::fs::rename(&tmp, &dest).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(&dest)(e)
        })
    }

    /// [`cargo::linked_crates`], from the cache when every input is
    /// unchanged; also whether it was a hit.
    ///
    /// # Errors
    /// As [`cargo::linked_crates`], or an unreadable manifest.
    pub fn linked_crates(
        &self,
        repo: &Path,
        package: &str,
        target: &str,
    ) -> Result<(Vec<Crate>, bool)> {
        let key = crates_key(repo, package, target)?;
        if let Some(c) = self.get::<Vec<Crate>>("crates", &key) {
            return Ok((c, true));
        }
        let c = cargo::linked_crates(repo, package, target)?;
        // A cache that cannot be written only costs the next run time.
        if let Err(e) = self.put("crates", &key, &c) {
            self.warn(e);
        }
        Ok((c, false))
    }
}

impl SbomCache {
    /// [`inputs::read_layer`], from the cache when this layer blob was read
    /// before.
    ///
    /// # Errors
    /// As [`inputs::read_layer`].
    pub fn layer_entries(&self, layout: &Layout, d: &Descriptor) -> Result<Vec<LayerEntry>> {
        let mut h = Sha256::new();
        for f in [
            format!("ocipack-sbom-layer/{FORMAT}"),
            env!("CARGO_PKG_VERSION").to_owned(),
            d.digest.clone(),
            d.media_type.clone(),
        ] {
            h.update((f.len() as u64).to_le_bytes());
            h.update(f.as_bytes());
        }
        let key = format!("{:x}", h.finalize());
        if let Some(e) = self.get::<Vec<LayerEntry>>("layers", &key) {
            return Ok(e);
        }
        let e = inputs::read_layer(layout, d)?;
        if let Err(err) = self.put("layers", &key, &e) {
            self.warn(err);
        }
        Ok(e)
    }
}

/// The key of the crate list of `package` for `target` in `repo`.
///
/// # Errors
/// An unreadable Cargo.lock or Cargo.toml.
pub fn crates_key(repo: &Path, package: &str, target: &str) -> Result<String> {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(format!("ocipack-sbom-crates/{FORMAT}").as_bytes());
    field(env!("CARGO_PKG_VERSION").as_bytes());
    field(cargo_version().as_bytes());
    field(package.as_bytes());
    field(target.as_bytes());
    let mut files = vec![repo.join("Cargo.lock")];
    for extra in [".cargo/config.toml", ".cargo/config", "rust-toolchain.toml"] {
        let p = repo.join(extra);
        if p.exists() {
            files.push(p);
        }
    }
    manifests(repo, &mut files)?;
    for f in &files {
        let bytes = std::fs::read(f).map_err(io(f))?;
        field(
            f.strip_prefix(repo)
                .unwrap_or(f)
                .as_os_str()
                .as_encoded_bytes(),
        );
        field(&Sha256::digest(&bytes));
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Every Cargo.toml under `dir`, sorted, outside build output, hidden and
/// npm directories.
fn manifests(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(std::result::Result::ok)
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            manifests(&e.path(), out)?;
        } else if name == "Cargo.toml" {
            out.push(e.path());
        }
    }
    Ok(())
}

/// `cargo --version` (the tool whose output is cached), once per process.
fn cargo_version() -> String {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        std::process::Command::new(&cargo)
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| format!("{cargo} {}", String::from_utf8_lossy(&o.stdout).trim()))
            .unwrap_or_else(|| format!("{cargo} (no version)"))
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Cargo.toml"),
            "[workspace]\nmembers = [\"crates/*\"]\n",
        )
        .unwrap();
        std::fs::write(d.path().join("Cargo.lock"), "version = 4\n").unwrap();
        std::fs::create_dir_all(d.path().join("crates/a")).unwrap();
        std::fs::create_dir_all(d.path().join("target/x")).unwrap();
        std::fs::write(
            d.path().join("crates/a/Cargo.toml"),
            "[package]\nname = \"a\"\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn the_key_changes_with_every_input_and_only_then() {
        let d = workspace();
        let r = d.path();
        let k = crates_key(r, "a", "x86_64-unknown-linux-gnu").unwrap();
        assert_eq!(k, crates_key(r, "a", "x86_64-unknown-linux-gnu").unwrap());
        assert_ne!(k, crates_key(r, "b", "x86_64-unknown-linux-gnu").unwrap());
        assert_ne!(k, crates_key(r, "a", "aarch64-unknown-linux-gnu").unwrap());
        // Build output is not an input.
        std::fs::write(r.join("target/x/Cargo.toml"), "junk").unwrap();
        assert_eq!(k, crates_key(r, "a", "x86_64-unknown-linux-gnu").unwrap());
        std::fs::write(r.join("Cargo.lock"), "version = 4\n\n").unwrap();
        let k2 = crates_key(r, "a", "x86_64-unknown-linux-gnu").unwrap();
        assert_ne!(k, k2, "a changed Cargo.lock must be a new key");
        std::fs::write(
            r.join("crates/a/Cargo.toml"),
            "[package]\nname = \"a\"\n[features]\nf = []\n",
        )
        .unwrap();
        let k3 = crates_key(r, "a", "x86_64-unknown-linux-gnu").unwrap();
        assert_ne!(k2, k3, "a changed member Cargo.toml must be a new key");
        std::fs::create_dir_all(r.join("crates/b")).unwrap();
        std::fs::write(r.join("crates/b/Cargo.toml"), "[package]\nname = \"b\"\n").unwrap();
        assert_ne!(
            k3,
            crates_key(r, "a", "x86_64-unknown-linux-gnu").unwrap(),
            "a new member"
        );
    }

    #[test]
    fn an_entry_is_read_back_and_a_damaged_one_is_a_miss() {
        let d = tempfile::tempdir().unwrap();
        let c = SbomCache::open(d.path()).unwrap();
        let v = vec![Crate {
            name: "serde".into(),
            version: "1.0.0".into(),
            checksum: Some("ab".into()),
            registry: true,
        }];
        c.put("crates", "k", &v).unwrap();
        assert_eq!(c.get::<Vec<Crate>>("crates", "k"), Some(v));
        std::fs::write(d.path().join("sbom/v1/crates/k.json"), "{trunc").unwrap();
        assert_eq!(c.get::<Vec<Crate>>("crates", "k"), None);
        assert!(std::fs::read_dir(d.path().join("sbom/v1/tmp"))
            .unwrap()
            .next()
            .is_none());
    }
}
