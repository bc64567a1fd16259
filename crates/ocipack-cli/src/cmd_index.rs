//! `ocipack index`: combine per-platform layouts into one layout with an OCI
//! image index per tag (multi-architecture images).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
    let reports = index_all(&a.layouts, &out)?;
    finish(&reports, json)
}

/// An index for every `<name>/` layout found in any of `dirs` (one directory
/// of layouts per platform), into `out/<name>`. Every output is checked before
/// the first is written.
fn index_all(dirs: &[PathBuf], out: &Path) -> Result<Vec<ocipack::index::IndexReport>> {
    let mut names = BTreeSet::new();
    for dir in dirs {
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
    let mut jobs = Vec::new();
    for n in &names {
        let inputs: Vec<PathBuf> = dirs
            .iter()
            .map(|d| d.join(n))
            .filter(|p| p.join("oci-layout").is_file())
            .collect();
        let target = out.join(n);
        ocipack::output::check_replaceable(&target, ocipack::output::OutputKind::Layout)?;
        jobs.push((inputs, target));
    }
    jobs.into_iter()
        .map(|(inputs, target)| Ok(ocipack::index::index(&inputs, &target)?))
        .collect()
}

fn finish(reports: &[ocipack::index::IndexReport], json: bool) -> Result<()> {
    if json {
        return crate::exit::print_json(&reports);
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

/// The build target for `--platform P` of `ocipack host`.
pub fn host_target(
    platform: &str,
    sysroot: Option<&std::path::Path>,
    repo: &std::path::Path,
) -> Result<ocipack_host::Target> {
    let p = ocipack::layout::Platform::parse(platform)
        .map_err(|e| anyhow::anyhow!("--platform: {e}"))?;
    if p.os != "linux" || p.variant.as_deref().is_some_and(|v| v != "v8") {
        bail!("--platform {platform}: the host builder builds linux/amd64 and linux/arm64 images");
    }
    let sysroot = sysroot
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| repo.join(format!(".cache/sysroot-{}", p.architecture)));
    Ok(ocipack_host::Target::for_architecture(
        &p.architecture,
        &sysroot,
    )?)
}

/// Why a definition's host programs cannot be taken from a foreign sysroot, if so.
pub fn missing_in_sysroot(
    def: &ocipack_host::Definition,
    ctx: &ocipack_host::HostContext,
) -> Option<String> {
    ctx.target.sysroot.as_ref()?;
    let Some(ocipack_host::Program::Host(paths)) = def.program() else {
        return None;
    };
    let missing: Vec<&str> = paths
        .iter()
        .map(String::as_str)
        .filter(|p| !ctx.target.host_path(std::path::Path::new(p)).exists())
        .collect();
    (!missing.is_empty()).then(|| {
        // /usr/local is never a Debian package's (Qdrant's server there is
        // built from source, docs/multi-arch.md).
        let what = if missing.iter().all(|p| p.starts_with("/usr/local/")) {
            format!(
                "no Debian package provides it: place a linux/{} build of it at that path in the sysroot (docs/multi-arch.md)",
                ctx.target.architecture
            )
        } else {
            format!(
                "scripts/setup-cross.sh puts Debian's {} packages and Node.js there (add the package to its list; its output says what it could not fetch)",
                ctx.target.architecture
            )
        };
        format!(
            "{} not in the linux/{} sysroot {}; {what}",
            missing.join(", "),
            ctx.target.architecture,
            ctx.target.sysroot.as_ref().expect("checked").display()
        )
    })
}

/// `ocipack host --platform A,B`: each platform into OUTPUT-<os>-<arch>, then
/// an image index per image into OUTPUT.
pub fn host_platforms(a: crate::cmd_host::HostArgs, json: bool) -> Result<()> {
    let (platforms, output, all) = a.multi_parts()?;
    let mut dirs = Vec::new();
    for p in &platforms {
        let plat =
            ocipack::layout::Platform::parse(p).map_err(|e| anyhow::anyhow!("--platform: {e}"))?;
        let dir =
            crate::cmd_host::sibling(&output, &format!("-{}-{}", plat.os, plat.architecture))?;
        crate::cmd_host::run(a.for_platform(p, &dir), json)?;
        dirs.push(dir);
    }
    let reports = if all {
        index_all(&dirs, &output)?
    } else {
        vec![ocipack::index::index(&dirs, &output)?]
    };
    finish(&reports, json)
}
