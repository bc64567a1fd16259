//! `ocipack cache` and the `--cache DIR` / `--no-cache` flags of `build` and
//! `host` (the layer cache) and of `attest` and `push --sign` (its SBOM cache).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ocipack::cache::{parse_size, Cache};
use ocipack_attest::cache::SbomCache;

/// The layer cache flags shared by `ocipack build` and `ocipack host`.
#[derive(Args, Debug, Clone)]
pub struct CacheFlags {
    /// Layer cache directory [default: $OCIPACK_CACHE_DIR, else $XDG_CACHE_HOME/ocipack, else ~/.cache/ocipack].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache: Option<PathBuf>,
    /// Pack every layer, neither reading nor writing the layer cache. The output is the same.
    #[arg(long)]
    no_cache: bool,
}

impl CacheFlags {
    /// The cache to use. `default_on` is false where no user cache belongs
    /// (`--nix-attrs`), and any build under Nix (`NIX_BUILD_TOP` set) is
    /// treated the same: there only an explicit `--cache DIR` turns it on. An
    /// explicit directory that cannot be created is an error; an unusable
    /// default only a warning, and the build packs every layer.
    pub fn open(&self, default_on: bool) -> Result<Option<Cache>> {
        let dir = match chosen(self.cache.as_ref(), self.no_cache, default_on, "layer cache") {
            Chosen::None => return Ok(None),
            Chosen::Explicit(dir) => {
                return Cache::open(dir).map(Some).with_context(|| {
                    format!(
                        "--cache {}: cannot use it as the layer cache; give a writable directory or --no-cache",
                        dir.display()
                    )
                })
            }
            Chosen::Default(dir) => dir,
        };
        match Cache::open(&dir) {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                eprintln!(
                    "ocipack: warning: layer cache {} is unusable ({e}); packing every layer",
                    dir.display()
                );
                Ok(None)
            }
        }
    }
}

/// The `--cache DIR` / `--no-cache` flags of `ocipack attest` and `ocipack
/// push --sign`: the SBOM cache (`DIR/sbom/`) that `ocipack host` fills,
/// read and written by the SBOM model the provenance is made from. The same
/// directory and the same rules as [`CacheFlags`].
#[derive(Args, Debug, Clone)]
pub struct SbomCacheFlags {
    /// Cache directory whose SBOM entries (DIR/sbom/, as `ocipack host` leaves them) the provenance's SBOM model reuses [default: as for `ocipack host`].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache: Option<PathBuf>,
    /// Read every layer and run `cargo tree` again, neither reading nor writing the SBOM cache. The provenance is the same.
    #[arg(long)]
    no_cache: bool,
}

impl SbomCacheFlags {
    /// The SBOM cache to use, as [`CacheFlags::open`] chooses the layer
    /// cache (on by default, off inside a Nix build unless `--cache DIR` is
    /// given): an explicit directory that cannot be created is an error, an
    /// unusable default only a warning, and the SBOM is then made without it.
    pub fn open(&self) -> Result<Option<SbomCache>> {
        match chosen(self.cache.as_ref(), self.no_cache, true, "SBOM cache") {
            Chosen::None => Ok(None),
            Chosen::Explicit(dir) => SbomCache::open(dir).map(Some).with_context(|| {
                format!(
                    "--cache {}: cannot use it as the SBOM cache; give a writable directory or --no-cache",
                    dir.display()
                )
            }),
            Chosen::Default(dir) => match SbomCache::open(&dir) {
                Ok(c) => Ok(Some(c)),
                Err(e) => {
                    eprintln!(
                        "ocipack: warning: SBOM cache {} is unusable ({e}); reading every layer and running cargo tree",
                        dir.display()
                    );
                    Ok(None)
                }
            },
        }
    }
}

/// Which cache directory the flags choose.
enum Chosen<'a> {
    /// None: `--no-cache`, no default there, or no default directory.
    None,
    /// `--cache DIR`.
    Explicit(&'a PathBuf),
    /// The default directory (`Cache::default_dir`).
    Default(PathBuf),
}

/// The one rule of both flag sets: `--no-cache` wins, then `--cache DIR`;
/// the default directory only where `default_on` and outside a Nix build.
fn chosen<'a>(
    cache: Option<&'a PathBuf>,
    no_cache: bool,
    default_on: bool,
    what: &str,
) -> Chosen<'a> {
    if no_cache {
        return Chosen::None;
    }
    if let Some(dir) = cache {
        return Chosen::Explicit(dir);
    }
    // Inside a Nix build (`NIX_BUILD_TOP` is set) there is no user cache
    // to use, and writing outside the build directory would be impure.
    if !default_on || std::env::var_os("NIX_BUILD_TOP").is_some() {
        return Chosen::None;
    }
    match Cache::default_dir() {
        Some(dir) => Chosen::Default(dir),
        None => {
            eprintln!("ocipack: warning: no {what} (set OCIPACK_CACHE_DIR, XDG_CACHE_HOME or HOME, or pass --cache DIR)");
            Chosen::None
        }
    }
}

/// Arguments of `ocipack cache`.
#[derive(Args)]
#[command(after_help = "Examples:
  ocipack cache info
  ocipack cache prune --max-size 2G
  OCIPACK_CACHE_DIR=/tmp/c ocipack cache prune --max-size 0 --json")]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
    /// The cache directory [default: as for `ocipack build`].
    #[arg(long, value_name = "DIR", global = true)]
    cache: Option<PathBuf>,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Show where the layer cache is and how big (SBOM entries included).
    Info,
    /// Remove least recently used layers and SBOM entries until the cache fits in --max-size.
    Prune {
        /// Upper bound on entries, blobs and SBOM entries, in bytes or with K, M, G, T (powers of 1024).
        #[arg(long, default_value = "5G", value_parser = parse_size)]
        max_size: u64,
    },
}

pub fn run(a: CacheArgs, json: bool) -> Result<()> {
    let dir = match a.cache {
        Some(d) => d,
        None => Cache::default_dir().context(
            "no layer cache directory: set OCIPACK_CACHE_DIR, XDG_CACHE_HOME or HOME, or pass --cache DIR",
        )?,
    };
    let cache = Cache::open(&dir)
        .with_context(|| format!("{}: cannot open the layer cache", dir.display()))?;
    // The SBOM cache (`ocipack host`) shares the directory and the bound.
    let sbom = SbomCache::extra(&dir);
    match a.command {
        CacheCommand::Info => {
            let info = cache.info(&sbom)?;
            if json {
                crate::exit::print_json(&info)?;
            } else {
                eprintln!(
                    "{}: {} entries, {} blobs, {} SBOM entries, {} bytes",
                    info.dir.display(),
                    info.entries,
                    info.blobs,
                    info.extra_entries,
                    info.size
                );
            }
        }
        CacheCommand::Prune { max_size } => {
            let r = cache.prune(max_size, &sbom)?;
            if json {
                crate::exit::print_json(&r)?;
            } else {
                eprintln!(
                    "{}: {} -> {} bytes (max {}), {} -> {} entries, {} blobs removed, {} -> {} SBOM entries",
                    r.dir.display(),
                    r.size_before,
                    r.size_after,
                    r.max_size,
                    r.entries_before,
                    r.entries_after,
                    r.blobs_removed,
                    r.extra_entries_before,
                    r.extra_entries_after
                );
            }
        }
    }
    Ok(())
}
