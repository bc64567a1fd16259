//! `ocipack build` and `ocipack layer`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use ocipack::plan::{LayerSpec, Plan};
use ocipack::BuildOptions;

use crate::cmd_cache::CacheFlags;
use crate::nix_attrs::Attrs;
use crate::progress::Bar;

/// Arguments of `ocipack build`.
#[derive(Args)]
#[command(after_help = "Examples:
  ocipack build images/plan.json -o out/image
  SOURCE_DATE_EPOCH=1700000000 ocipack build plan.json -o out/image --json")]
pub struct BuildArgs {
    /// The plan file (docs/plan-format.md).
    #[arg(required_unless_present = "nix_attrs")]
    plan: Option<PathBuf>,
    /// Output directory: the OCI image layout (replaced atomically).
    #[arg(short, long, required_unless_present = "nix_attrs")]
    output: Option<PathBuf>,
    /// Symlink prebuilt layer blobs into the layout instead of copying them.
    #[arg(long)]
    link_blobs: bool,
    /// Compression threads (default: every core). Does not change the output.
    #[arg(long)]
    threads: Option<usize>,
    /// Read the plan from the Nix structured attrs (`plan`) and write to `outputs.out`
    /// (no layer cache unless --cache is given).
    #[arg(long, conflicts_with_all = ["plan", "output"])]
    nix_attrs: bool,
    #[command(flatten)]
    cache: CacheFlags,
}

/// Arguments of `ocipack layer`.
#[derive(Args)]
#[command(after_help = "Example:
  ocipack layer spec.json -o out/layer   # writes out/layer/blob and out/layer/descriptor.json
  ocipack layer spec.json -o out/layer --no-cache")]
pub struct LayerArgs {
    /// The layer spec: {\"version\": 1, \"layer\": {...}}.
    #[arg(required_unless_present = "nix_attrs")]
    spec: Option<PathBuf>,
    /// Output directory for `blob` and `descriptor.json`.
    #[arg(short, long, required_unless_present = "nix_attrs")]
    output: Option<PathBuf>,
    /// Compression threads (default: every core). Does not change the output.
    #[arg(long)]
    threads: Option<usize>,
    /// Read the spec from the Nix structured attrs (`layerSpec`) and write to `outputs.out`
    /// (no layer cache unless --cache is given).
    #[arg(long, conflicts_with_all = ["spec", "output"])]
    nix_attrs: bool,
    #[command(flatten)]
    cache: CacheFlags,
}

pub fn build(a: BuildArgs, json: bool) -> Result<()> {
    let (plan, origin, out, link) = if a.nix_attrs {
        let attrs = Attrs::load()?;
        let text = serde_json::to_string(attrs.get("plan")?)?;
        let origin = format!("{} (attribute plan)", attrs.origin);
        (
            Plan::from_json(&text, &origin, None)?,
            origin,
            attrs.out()?,
            true,
        )
    } else {
        let path = a.plan.expect("clap requires it");
        (
            Plan::load(&path)?,
            path.display().to_string(),
            a.output.expect("clap requires it"),
            a.link_blobs,
        )
    };
    let cache = a.cache.open(!a.nix_attrs)?;
    let bar = Bar::new(json);
    let opts = BuildOptions {
        link_blobs: link,
        threads: threads(a.threads)?,
        progress: &bar,
        cache: cache.as_ref(),
    };
    let report = ocipack::build(&plan, &origin, &out, &opts);
    bar.finish();
    let report = report.with_context(|| {
        format!(
            "building {} failed; nothing was written to {}",
            plan.name,
            out.display()
        )
    })?;
    if json {
        crate::exit::print_json(&report)?;
    } else {
        eprintln!(
            "built {} -> {} ({} layers, {} bytes, {} from the cache)\n{}",
            report.name,
            out.display(),
            report.layers.len(),
            report.compressed_size,
            report.cache.hits,
            report.manifest_digest
        );
    }
    Ok(())
}

pub fn layer(a: LayerArgs, json: bool) -> Result<()> {
    let (spec, origin, out): (LayerSpec, String, PathBuf) = if a.nix_attrs {
        let attrs = Attrs::load()?;
        let origin = format!("{} (attribute layerSpec)", attrs.origin);
        let spec = serde_json::from_value(attrs.get("layerSpec")?.clone())
            .with_context(|| origin.clone())?;
        (spec, origin, attrs.out()?)
    } else {
        let path = a.spec.expect("clap requires it");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read the layer spec", path.display()))?;
        let mut spec: LayerSpec = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid layer spec", path.display()))?;
        let base = path.parent().map(PathBuf::from).unwrap_or_default();
        resolve_relative(&mut spec, &base);
        (
            spec,
            path.display().to_string(),
            a.output.expect("clap requires it"),
        )
    };
    let cache = a.cache.open(!a.nix_attrs)?;
    let bar = Bar::new(json);
    let opts = BuildOptions {
        link_blobs: false,
        threads: threads(a.threads)?,
        progress: &bar,
        cache: cache.as_ref(),
    };
    let built = ocipack::build_layer(&spec, &origin, &out, &opts);
    bar.finish();
    let (desc, counts) = built?;
    if json {
        crate::exit::print_json(&desc)?;
    } else {
        eprintln!(
            "layer {} ({} bytes, {} files{}) -> {}",
            desc.digest,
            desc.size,
            desc.files,
            if counts.hits > 0 {
                ", from the cache"
            } else {
                ""
            },
            out.display()
        );
    }
    Ok(())
}

fn resolve_relative(spec: &mut LayerSpec, base: &std::path::Path) {
    use ocipack::plan::Layer;
    match &mut spec.layer {
        Layer::Files(f) => {
            for e in &mut f.entries {
                if let Some(s) = &mut e.source {
                    if s.is_relative() {
                        *s = base.join(&*s);
                    }
                }
            }
        }
        Layer::Model(m) if m.source.is_relative() => m.source = base.join(&m.source),
        _ => {}
    }
}

fn threads(t: Option<usize>) -> Result<usize> {
    match t {
        Some(0) => bail!("--threads 0: give at least 1"),
        Some(n) => Ok(n),
        None => Ok(ocipack::compress::default_threads()),
    }
}
