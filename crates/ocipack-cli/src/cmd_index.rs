//! `ocipack index`: combine per-platform layouts into one layout with an OCI
//! image index per tag (multi-architecture images).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::nix_attrs::Attrs;

/// Arguments of `ocipack index`.
#[derive(Args)]
#[command(after_help = "Examples:
  ocipack index out/amd64/scoring out/arm64/scoring -o out/multi/scoring
  ocipack index --all out/images/linux-amd64 out/images/linux-arm64 -o out/images/index

The children of each index are sorted by platform (os, architecture, variant),
read from each image's config, so the order of the inputs does not matter.")]
pub struct IndexArgs {
    /// One OCI layout per platform (with --all: directories of layouts, `<name>/`).
    #[arg(required_unless_present = "nix_attrs", num_args = 1..)]
    layouts: Vec<PathBuf>,
    /// Output: the combined layout (with --all: a directory of them, one per name).
    #[arg(short, long, required_unless_present = "nix_attrs")]
    output: Option<PathBuf>,
    /// Combine every `<name>/` layout found in any input directory.
    #[arg(long)]
    all: bool,
    /// Read `layouts` (a list of layout paths) from the Nix structured attrs; write to `outputs.out`.
    #[arg(long, conflicts_with_all = ["layouts", "output", "all"])]
    nix_attrs: bool,
}

pub fn run(a: IndexArgs, json: bool) -> Result<()> {
    if a.nix_attrs {
        let attrs = Attrs::load()?;
        let layouts: Vec<PathBuf> = serde_json::from_value(attrs.get("layouts")?.clone())
            .context("attribute layouts must be a list of paths")?;
        let out = attrs.out()?;
        let report = ocipack::index::index(&layouts, &out)?;
        return finish(&[report], json);
    }
    let out = a.output.expect("clap requires it");
    if !a.all {
        let report = ocipack::index::index(&a.layouts, &out)?;
        return finish(&[report], json);
    }
    // --all: every name found under any input directory.
    let mut names = BTreeSet::new();
    for dir in &a.layouts {
        let rd = std::fs::read_dir(dir).with_context(|| {
            format!(
                "{}: cannot list the layouts of one platform (ocipack host --all -o DIR writes them)",
                dir.display()
            )
        })?;
        for e in rd {
            let e = e.with_context(|| format!("{}: cannot list", dir.display()))?;
            if e.path().join("oci-layout").is_file() {
                names.insert(e.file_name());
            }
        }
    }
    if names.is_empty() {
        bail!("no layout (<name>/oci-layout) found in any of the input directories");
    }
    // Every combination is checked before the first is written.
    let mut jobs = Vec::new();
    for n in &names {
        let inputs: Vec<PathBuf> = a
            .layouts
            .iter()
            .map(|d| d.join(n))
            .filter(|p| p.join("oci-layout").is_file())
            .collect();
        let target = out.join(n);
        ocipack::output::check_replaceable(&target, ocipack::output::OutputKind::Layout)?;
        jobs.push((inputs, target));
    }
    let mut reports = Vec::new();
    for (inputs, target) in jobs {
        reports.push(ocipack::index::index(&inputs, &target)?);
    }
    finish(&reports, json)
}

fn finish(reports: &[ocipack::index::IndexReport], json: bool) -> Result<()> {
    if json {
        return crate::print_json(&reports);
    }
    for r in reports {
        for t in &r.tags {
            let plats: Vec<&str> = t.platforms.iter().map(|p| p.platform.as_str()).collect();
            eprintln!(
                "{}: {} {} [{}]",
                r.out.display(),
                t.tag,
                t.index_digest,
                plats.join(", ")
            );
        }
    }
    Ok(())
}
