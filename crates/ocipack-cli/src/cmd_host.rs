//! `ocipack host`: builds images from `images/<name>.toml` on a machine
//! without Nix, taking binaries from cargo's target directory and their
//! shared libraries from the host (see the ocipack-host crate).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ocipack::plan::Plan;
use ocipack::BuildOptions;
use ocipack_host::{definition_paths, load_definition, plan_for, Error, HostContext};
use serde_json::{json, Value};

use crate::progress::Bar;

/// Arguments of `ocipack host`.
#[derive(Args)]
#[command(after_help = "Examples:
  cargo build --release -p face-detection-service -p http-probe
  ocipack host images/face-detection.toml -o out/images/face-detection
  ocipack host --all -o out/images          # one layout per definition, Nix-only ones skipped
  ocipack host images/redis.toml --plan-only # print the plan, build nothing
  ocipack host --all --platform linux/amd64,linux/arm64 -o out/images   # an image index per image")]
#[derive(Clone)]
pub struct HostArgs {
    /// The image definition (images/NAME.toml).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    definition: Option<PathBuf>,
    /// Build every images/*.toml of the repository into OUTPUT/NAME.
    #[arg(long)]
    all: bool,
    /// The OCI layout to write (with --all: the directory holding one layout per image).
    #[arg(short, long, required_unless_present = "plan_only")]
    output: Option<PathBuf>,
    /// Print the plan (with --all: an object of plans by name) and build nothing.
    #[arg(long)]
    plan_only: bool,
    /// Where to write the plan (default: OUTPUT.plan.json beside the layout).
    #[arg(long, conflicts_with = "all")]
    plan_out: Option<PathBuf>,
    /// Directory holding the release binaries [default: TARGET_DIR/release].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Cargo target directory [default: $CARGO_TARGET_DIR, else REPO/target].
    #[arg(long, conflicts_with = "bin_dir")]
    target_dir: Option<PathBuf>,
    /// Repository root [default: the nearest ancestor holding models.toml].
    #[arg(long)]
    repo_root: Option<PathBuf>,
    /// Fetched assets (scripts/fetch-assets.sh) [default: REPO/.cache/assets].
    #[arg(long)]
    assets_dir: Option<PathBuf>,
    /// Compression threads (default: every core). Does not change the output.
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    cache: crate::cmd_cache::CacheFlags,
    /// Target platforms, comma separated (linux/amd64,linux/arm64) [default: this machine's].
    /// A foreign one takes binaries from TARGET_DIR/<rust target>/release and everything else
    /// from its sysroot. Several: each into OUTPUT-<os>-<arch>, then one image index per
    /// image into OUTPUT (docs/multi-arch.md).
    #[arg(long, value_delimiter = ',')]
    platform: Vec<String>,
    /// Sysroot of a foreign platform [default: REPO/.cache/sysroot-<arch>, made by scripts/setup-cross.sh].
    #[arg(long)]
    sysroot: Option<PathBuf>,
}

pub fn run(a: HostArgs, json: bool) -> Result<()> {
    if a.platform.len() > 1 {
        return crate::cmd_index::host_platforms(a, json);
    }
    let start = match &a.definition {
        Some(def) => def.parent().map(Path::to_path_buf).unwrap_or_default(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let repo = match &a.repo_root {
        Some(r) => r.clone(),
        None => find_repo(&start)?,
    };
    let target = match a.platform.first() {
        Some(p) => Some(crate::cmd_index::host_target(
            p,
            a.sysroot.as_deref(),
            &repo,
        )?),
        None => None,
    };
    // A cross build's binaries are in cargo's per-target directory.
    let release = match target.as_ref().filter(|t| t.sysroot.is_some()) {
        Some(t) => {
            PathBuf::from(t.triplet.replace("-linux-gnu", "-unknown-linux-gnu")).join("release")
        }
        None => PathBuf::from("release"),
    };
    let bin_dir = match (&a.bin_dir, &a.target_dir) {
        (Some(b), _) => b.clone(),
        (None, Some(t)) => t.join(&release),
        (None, None) => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) => PathBuf::from(t).join(&release),
            None => repo.join("target").join(&release),
        },
    };
    let mut ctx = HostContext::new(&repo, &bin_dir)?;
    if let Some(t) = target {
        ctx.search = t.search_path()?;
        ctx.target = t;
    }
    if let Some(assets) = &a.assets_dir {
        ctx.assets_dir = assets.clone();
    }

    let definitions = match &a.definition {
        Some(def) => vec![def.clone()],
        None => definition_paths(&repo.join("images"))?,
    };
    let mut plans: Vec<(String, Plan)> = Vec::new();
    let mut skipped: Vec<Value> = Vec::new();
    // Planned on every core (definitions, ELF headers, asset hashes), then
    // reported in definition order, the first error first.
    let planned = ocipack::par::map(
        &ocipack::par::in_order(definitions.len()),
        ocipack::compress::default_threads(),
        || (),
        |(), i| -> ocipack_host::Result<_> {
            let def = load_definition(&definitions[i])?;
            // With --all, an image whose host programs the foreign sysroot
            // lacks is skipped like a Nix-only one (named, with what to do).
            let missing = a
                .all
                .then(|| crate::cmd_index::missing_in_sysroot(&def, &ctx))
                .flatten();
            let plan = missing.is_none().then(|| plan_for(&def, &ctx));
            Ok((def, missing, plan))
        },
    );
    for (path, planned) in definitions.iter().zip(planned) {
        let (def, missing, plan) = planned?;
        let Some(plan) = plan else {
            let reason = missing.unwrap_or_default();
            eprintln!("skipping {}: {reason}", def.name);
            skipped.push(json!({"name": def.name, "reason": reason}));
            continue;
        };
        match plan {
            Ok(plan) => plans.push((def.name.clone(), plan)),
            // With --all a Nix-only image is expected, not a failure.
            Err(Error::HostUnsupported { name, reason }) if a.all => {
                eprintln!("skipping {name}: {reason}");
                skipped.push(json!({"name": name, "reason": reason}));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("planning {}", path.display()));
            }
        }
    }

    if a.plan_only {
        let out = if a.all {
            serde_json::to_value(plans.into_iter().collect::<BTreeMap<_, _>>())?
        } else {
            serde_json::to_value(plans.pop().map(|(_, p)| p))?
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    let output = a
        .output
        .clone()
        .context("--output is required unless --plan-only")?;
    let threads = match a.threads {
        Some(0) => bail!("--threads 0: give at least 1"),
        Some(n) => n,
        None => ocipack::compress::default_threads(),
    };
    let cache = a.cache.open(true)?;
    let mut cache_counts = ocipack::cache::CacheCounts::default();
    let mut reports = Vec::new();
    // Issue 15: both SBOMs of each image, in OUT.attest/ (cmd_sbom.rs),
    // written by a second thread while the next image is built (the
    // packer's rerun is mostly hashing on every core, the SBOM mostly one
    // core's JSON and file work); a failed SBOM stops the builds after it.
    // A cross build's files are owned by the sysroot's dpkg database.
    let dpkg_root = ctx.target.sysroot.as_deref().unwrap_or(Path::new("/"));
    let cache_dir = cache.as_ref().map(|c| c.dir());
    let sbom_failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(String, PathBuf, PathBuf)>();
    std::thread::scope(|s| -> Result<()> {
        let (repo, failed) = (&repo, &sbom_failed);
        let sboms = s.spawn(move || -> Result<()> {
            for (name, out, plan_path) in rx {
                crate::cmd_sbom::for_host(&out, &plan_path, repo, cache_dir, dpkg_root)
                    .with_context(|| format!("writing the SBOM of {name}"))
                    .inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
            }
            Ok(())
        });
        let built = (|| -> Result<()> {
            for (name, plan) in &plans {
                if sbom_failed.load(Ordering::Relaxed) {
                    break;
                }
                let out = if a.all {
                    output.join(name)
                } else {
                    output.clone()
                };
                let plan_path = match &a.plan_out {
                    Some(p) => p.clone(),
                    None => sibling(&out, ".plan.json")?,
                };
                if let Some(parent) = plan_path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                // Through a Value, so keys are sorted as they always were.
                let text = serde_json::to_string_pretty(&serde_json::to_value(plan)?)?;
                std::fs::write(&plan_path, format!("{text}\n"))
                    .with_context(|| format!("cannot write the plan to {}", plan_path.display()))?;
                let origin = plan_path.display().to_string();
                plan.validate(&origin)?;
                let bar = Bar::new(json);
                let opts = BuildOptions {
                    link_blobs: false,
                    threads,
                    progress: &bar,
                    cache: cache.as_ref(),
                };
                let report = ocipack::build(plan, &origin, &out, &opts);
                bar.finish();
                let report = report.with_context(|| {
                    format!(
                        "building {name} failed; nothing was written to {}",
                        out.display()
                    )
                })?;
                tx.send((name.clone(), out.clone(), plan_path.clone()))
                    .expect("the SBOM thread takes images until the sender is dropped");
                if !json {
                    eprintln!(
                        "built {name} -> {} ({} layers, {} bytes, plan {})\n{}",
                        out.display(),
                        report.layers.len(),
                        report.compressed_size,
                        plan_path.display(),
                        report.manifest_digest
                    );
                }
                cache_counts += report.cache;
                reports.push(json!({"plan": plan_path, "report": report}));
            }
            Ok(())
        })();
        drop(tx);
        let sbom = sboms.join().expect("the SBOM thread does not panic");
        built.and(sbom)
    })?;
    if json {
        crate::exit::print_json(
            &json!({"images": reports, "skipped": skipped, "cache": cache_counts}),
        )?;
    }
    Ok(())
}

impl HostArgs {
    /// Checks a several-platform run: `(platforms, output, all)`.
    pub fn multi_parts(&self) -> Result<(Vec<String>, PathBuf, bool)> {
        if self.plan_only || self.plan_out.is_some() || self.bin_dir.is_some() {
            bail!("--plan-only, --plan-out and --bin-dir take one --platform at a time");
        }
        let output = self
            .output
            .clone()
            .context("--output is required with several --platform")?;
        Ok((self.platform.clone(), output, self.all))
    }

    /// These arguments for one platform, written to `output`.
    pub fn for_platform(&self, platform: &str, output: &Path) -> HostArgs {
        let mut a = self.clone();
        a.platform = vec![platform.to_owned()];
        a.output = Some(output.to_owned());
        a
    }
}

/// The nearest ancestor of `start` (or `start` itself) holding models.toml.
fn find_repo(start: &Path) -> Result<PathBuf> {
    let start = std::path::absolute(start)
        .with_context(|| format!("cannot make {} absolute", start.display()))?;
    start
        .ancestors()
        .find(|d| d.join("models.toml").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "no models.toml in {} or any parent; run from the repository or pass --repo-root",
                start.display()
            )
        })
}

/// `dir/name` -> `dir/name<suffix>`.
pub(crate) fn sibling(out: &Path, suffix: &str) -> Result<PathBuf> {
    let name = out
        .file_name()
        .with_context(|| format!("output {} has no file name", out.display()))?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(out.with_file_name(name))
}
