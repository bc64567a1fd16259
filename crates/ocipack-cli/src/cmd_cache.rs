//! `ocipack cache` and the `--cache DIR` / `--no-cache` flags of `build` and `host`.

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
        if self.no_cache {
            return Ok(None);
        }
        if let Some(dir) = &self.cache {
            return Cache::open(dir).map(Some).with_context(|| {
                format!(
                    "--cache {}: cannot use it as the layer cache; give a writable directory or --no-cache",
                    dir.display()
                )
            });
        }
        // Inside a Nix build (`NIX_BUILD_TOP` is set) there is no user cache
        // to use, and writing outside the build directory would be impure.
        if !default_on || std::env::var_os("NIX_BUILD_TOP").is_some() {
            return Ok(None);
        }
        let Some(dir) = Cache::default_dir() else {
            eprintln!("ocipack: warning: no layer cache (set OCIPACK_CACHE_DIR, XDG_CACHE_HOME or HOME, or pass --cache DIR)");
            return Ok(None);
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
