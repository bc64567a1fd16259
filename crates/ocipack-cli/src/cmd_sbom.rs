//! `ocipack sbom`: the SBOM of an image layout from its exact inputs, in
//! SPDX 2.3 and CycloneDX 1.6 JSON, written to `OUT.attest/sbom.spdx.json`
//! and `OUT.attest/sbom.cdx.json` beside the layout `OUT`, and attached as
//! OCI artifacts whose subject is the image manifest in `OUT.attest/oci/`
//! (docs/supply-chain.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;
use ocipack::layout::Layout;
use ocipack_attest::artifact::{self, AttestLayout};
use ocipack_attest::cache::SbomCache;
use ocipack_attest::inputs::{Models, SourceMap};
use ocipack_attest::sbom::{self, Sbom};
use ocipack_attest::{cargo, dpkg::Dpkg};
use serde_json::json;

/// Arguments of `ocipack sbom`.
#[derive(Args)]
#[command(after_help = "Examples:
  ocipack sbom out/images/redis                 # out/images/redis.attest/{sbom.spdx.json,sbom.cdx.json,oci/}
  ocipack sbom out/images/frontend --npm-lock web/package-lock.json
  SOURCE_DATE_EPOCH=0 ocipack sbom out/images/scoring --no-attach")]
pub struct SbomArgs {
    /// The image's OCI layout (as `ocipack host` wrote it).
    #[arg(required_unless_present = "nix_attrs")]
    layout: Option<PathBuf>,
    /// The image's tag in the layout [default: the only image].
    #[arg(long)]
    tag: Option<String>,
    /// The plan the image was built from [default: LAYOUT.plan.json].
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Repository root (models.toml, Cargo.lock) [default: nearest ancestor of the current directory with models.toml].
    #[arg(long)]
    repo_root: Option<PathBuf>,
    /// Root of the file system whose dpkg database owns the plan's sources.
    #[arg(long, default_value = "/")]
    dpkg_root: PathBuf,
    /// package-lock.json for npm integrity hashes [default: REPO/web/package-lock.json when present].
    #[arg(long)]
    npm_lock: Option<PathBuf>,
    /// Write the two files only, no artifacts in LAYOUT.attest/oci.
    #[arg(long)]
    no_attach: bool,
    /// Nix builder mode (nix/sbom.nix): the image, its closure graph and
    /// package metadata from the structured attrs, both SBOMs to `$out`.
    #[arg(long, conflicts_with_all = ["layout", "tag", "plan", "repo_root", "npm_lock", "no_attach"])]
    nix_attrs: bool,
}

/// What an SBOM is made from, besides the layout.
pub struct SbomSources {
    /// The image's tag.
    pub tag: Option<String>,
    /// The plan file.
    pub plan: Option<PathBuf>,
    /// The repository root.
    pub repo: PathBuf,
    /// The dpkg root.
    pub dpkg_root: PathBuf,
    /// The npm lock file.
    pub npm_lock: Option<PathBuf>,
}

pub fn run(a: SbomArgs, json: bool) -> Result<()> {
    let Some(layout) = a.layout.filter(|_| !a.nix_attrs) else {
        return crate::sbom_nix::run(json);
    };
    let repo = match a.repo_root {
        Some(r) => r,
        None => find_repo()?,
    };
    let src = SbomSources {
        tag: a.tag,
        plan: a.plan,
        repo,
        dpkg_root: a.dpkg_root,
        npm_lock: a.npm_lock,
    };
    let s = make(&layout, &src)?;
    let written = write(&layout, &s, !a.no_attach)?;
    report(&s, &written, json)
}

/// What `ocipack host` writes for each image it builds: both SBOMs,
/// attached. `OUT.attest/` then holds exactly this build's SBOMs: it is
/// written afresh in a staging sibling and swapped into place (an earlier
/// one is removed only after), so artifacts of earlier builds do not pile
/// up. `cache_dir` is the layer cache directory (`None` with `--no-cache`);
/// its `sbom/` subdirectory keeps the crate lists (ocipack_attest::cache).
/// `dpkg_root` is the root whose dpkg database owns the plan's sources: `/`,
/// or a cross build's sysroot (scripts/setup-cross.sh records its database).
pub fn for_host(
    layout_dir: &Path,
    plan: &Path,
    repo: &Path,
    cache_dir: Option<&Path>,
    dpkg_root: &Path,
) -> Result<Written> {
    let src = SbomSources {
        tag: None,
        plan: Some(plan.to_owned()),
        repo: repo.to_owned(),
        dpkg_root: dpkg_root.to_owned(),
        npm_lock: None,
    };
    let cache = cache_dir.and_then(|d| match SbomCache::open(d) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("ocipack: warning: SBOM cache unusable ({e}); running cargo tree");
            None
        }
    });
    let s = make_with(layout_dir, &src, cache.as_ref())?;
    let root = artifact::attest_dir(layout_dir);
    // Refuses a foreign OUT.attest before anything is written.
    check_attest_replaceable(&root)?;
    let staged = sibling(
        &root.with_file_name(format!(
            ".{}",
            root.file_name().unwrap_or_default().to_string_lossy()
        )),
        &format!(".ocipack-tmp-{}", std::process::id()),
    );
    if staged.exists() {
        std::fs::remove_dir_all(&staged)
            .with_context(|| format!("cannot remove {}", staged.display()))?;
    }
    let written = write_into(&staged, &s, true);
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(e);
        }
    };
    swap_into_place(&staged, &root)?;
    let moved = |p: PathBuf| root.join(p.strip_prefix(&staged).unwrap_or(&p));
    Ok(Written {
        spdx: moved(written.spdx),
        cyclonedx: moved(written.cyclonedx),
        attest: written.attest.map(moved),
    })
}

/// `root` may be replaced: absent, empty, or an attestation directory
/// ocipack wrote (it holds the marker).
fn check_attest_replaceable(root: &Path) -> Result<()> {
    if std::fs::symlink_metadata(root).is_err() {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(root)?;
    let empty = meta.is_dir()
        && std::fs::read_dir(root)
            .with_context(|| format!("cannot read {}", root.display()))?
            .next()
            .is_none();
    if !meta.is_dir() || (!empty && !root.join(artifact::MARKER).exists()) {
        anyhow::bail!(
            "{} exists and is not an attestation directory ocipack wrote (no {}); remove it or move the image layout",
            root.display(),
            artifact::MARKER
        );
    }
    Ok(())
}

/// Renames `staged` to `root`; an existing `root` is moved aside first and
/// removed only after the rename (put back if the rename fails).
fn swap_into_place(staged: &Path, root: &Path) -> Result<()> {
    check_attest_replaceable(root)?;
    let old = staged.with_file_name(format!(
        ".{}.ocipack-old-{}",
        root.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    if std::fs::symlink_metadata(&old).is_ok() {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove {}", old.display()))?;
    }
    let had_old = std::fs::symlink_metadata(root).is_ok();
    if had_old {
        std::fs::rename(root, &old).with_context(|| format!("cannot move {}", root.display()))?;
    }
    if let Err(e) = std::fs::rename(staged, root) {
        if had_old {
            let _ = std::fs::rename(&old, root);
        }
        let _ = std::fs::remove_dir_all(staged);
        return Err(e).with_context(|| format!("cannot write {}", root.display()));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// Prints what was written.
pub fn report(s: &Sbom, written: &Written, json: bool) -> Result<()> {
    if json {
        crate::exit::print_json(&json!({
            "image": s.name, "manifest": s.image.manifest.digest,
            "files": s.image.files.len(), "components": s.components.len(),
            "unclaimedFiles": s.unclaimed.len(),
            "spdx": written.spdx, "cyclonedx": written.cyclonedx, "attest": written.attest,
        }))?;
    } else {
        eprintln!(
            "sbom {} {}: {} files, {} components, {} files of no package -> {}, {}{}",
            s.name,
            s.image.manifest.digest,
            s.image.files.len(),
            s.components.len(),
            s.unclaimed.len(),
            written.spdx.display(),
            written.cyclonedx.display(),
            written
                .attest
                .as_ref()
                .map(|p| format!(", {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// The nearest ancestor of the current directory holding models.toml.
pub fn find_repo() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    cwd.ancestors()
        .find(|d| d.join("models.toml").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "no models.toml in {} or any parent; run from the repository or pass --repo-root",
                cwd.display()
            )
        })
}

/// `dir/name` -> `dir/name<suffix>`.
pub fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    out.with_file_name(name)
}

/// The SBOM creation time: `SOURCE_DATE_EPOCH`, else the image config's
/// `created` (the plan's time), else the epoch. Never the clock.
pub fn created(image_created: Option<&str>) -> Result<String> {
    if let Some(secs) = ocipack::plan::env_source_date_epoch()? {
        return Ok(ocipack::plan::rfc3339(secs));
    }
    Ok(image_created
        .map(str::to_owned)
        .unwrap_or_else(|| ocipack::plan::rfc3339(0)))
}

/// Builds the SBOM model of the image in `layout_dir`.
pub fn make(layout_dir: &Path, src: &SbomSources) -> Result<Sbom> {
    make_with(layout_dir, src, None)
}

/// The dpkg database of `root`, read once per process (`host --all` asks
/// for it once per image; the database does not change during one run).
fn dpkg_of(root: &Path) -> Result<Arc<Dpkg>> {
    static DBS: Mutex<BTreeMap<PathBuf, Arc<Dpkg>>> = Mutex::new(BTreeMap::new());
    let mut dbs = DBS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(d) = dbs.get(root) {
        return Ok(d.clone());
    }
    let d = Arc::new(Dpkg::load(root)?);
    dbs.insert(root.to_owned(), d.clone());
    Ok(d)
}

/// The workspace's binaries (`cargo metadata`), once per process.
fn binaries_of(repo: &Path) -> std::result::Result<BTreeMap<String, String>, String> {
    type Memo = BTreeMap<PathBuf, std::result::Result<BTreeMap<String, String>, String>>;
    static BINS: Mutex<Memo> = Mutex::new(BTreeMap::new());
    let mut m = BINS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    m.entry(repo.to_owned())
        .or_insert_with(|| cargo::workspace_binaries(repo).map_err(|e| e.to_string()))
        .clone()
}

/// [`make`], with the crate lists from `cache` when it is given. The SBOM
/// is the same either way; what could not be written to the cache (which
/// only costs the next run time) is printed as warnings.
pub fn make_with(layout_dir: &Path, src: &SbomSources, cache: Option<&SbomCache>) -> Result<Sbom> {
    let s = build(layout_dir, src, cache);
    for w in cache.into_iter().flat_map(SbomCache::take_warnings) {
        eprintln!("ocipack: warning: {w}");
    }
    s
}

fn build(layout_dir: &Path, src: &SbomSources, cache: Option<&SbomCache>) -> Result<Sbom> {
    let layout = Layout::open(layout_dir)?;
    let image = match cache {
        Some(c) => ocipack_attest::inputs::read_image_with(&layout, src.tag.as_deref(), |d| {
            c.layer_entries(&layout, d)
        }),
        None => ocipack_attest::inputs::read_image(&layout, src.tag.as_deref()),
    }
    .with_context(|| format!("reading the image in {}", layout_dir.display()))?;
    let plan_path = src
        .plan
        .clone()
        .unwrap_or_else(|| sibling(layout_dir, ".plan.json"));
    let (sources, plan_name) = if plan_path.exists() {
        let text = std::fs::read_to_string(&plan_path)
            .with_context(|| format!("cannot read the plan {}", plan_path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a plan (JSON)", plan_path.display()))?;
        let base = plan_path.parent().unwrap_or(Path::new("."));
        (
            SourceMap::from_plan_json(&v, base),
            v["name"].as_str().map(str::to_owned),
        )
    } else if src.plan.is_some() {
        anyhow::bail!("the plan {} does not exist", plan_path.display());
    } else {
        // Without a plan no file can be traced to a Debian package; every
        // file is still listed.
        eprintln!(
            "note: no plan at {}; files cannot be traced to Debian packages",
            plan_path.display()
        );
        (SourceMap::default(), None)
    };
    let name = plan_name.unwrap_or_else(|| {
        layout_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into())
    });
    let models = Models::load(&src.repo.join("models.toml"))?;
    let dpkg = dpkg_of(&src.dpkg_root)?;
    // Our binaries: only those the image holds are asked about.
    let mut binaries = BTreeMap::new();
    let has_elf_named = |b: &str| {
        image
            .files
            .values()
            .any(|f| f.elf && f.path.rsplit('/').next() == Some(b))
    };
    // Without cargo (or outside a workspace) the binaries are still listed,
    // as files with their hashes, only their crates are not: said, not hidden.
    let bins = binaries_of(&src.repo).unwrap_or_else(|e| {
        eprintln!("warning: {e}; binaries are listed as files without their crates");
        BTreeMap::new()
    });
    let triple = cargo::target_triple(&image.architecture);
    for (bin, pkg) in &bins {
        if !has_elf_named(bin) {
            continue;
        }
        let Some(triple) = triple else {
            eprintln!(
                "warning: no Rust target for architecture {}; {bin} is listed without its crates",
                image.architecture
            );
            continue;
        };
        let crates = match cache {
            Some(c) => c.linked_crates(&src.repo, pkg, triple).map(|(c, _hit)| c),
            None => cargo::linked_crates(&src.repo, pkg, triple),
        };
        match crates {
            Ok(crates) => {
                binaries.insert(bin.clone(), (pkg.clone(), crates));
            }
            Err(e) => eprintln!("warning: {e}; {bin} is listed without its crates"),
        }
    }
    let lock_path = src
        .npm_lock
        .clone()
        .unwrap_or_else(|| src.repo.join("web/package-lock.json"));
    let npm_lock = if image.files.values().any(|f| f.package_json.is_some()) && lock_path.exists() {
        let t = std::fs::read_to_string(&lock_path)
            .with_context(|| format!("cannot read {}", lock_path.display()))?;
        Some(
            serde_json::from_str::<serde_json::Value>(&t)
                .with_context(|| format!("{} is not JSON", lock_path.display()))?,
        )
    } else {
        None
    };
    let created = created(image.created.as_deref())?;
    Ok(sbom::build(sbom::Inputs {
        name: &name,
        image,
        created,
        sources: &sources,
        dpkg: dpkg.as_ref(),
        models: &models,
        binaries: &binaries,
        npm_lock: npm_lock.as_ref(),
    }))
}

/// Where the SBOM went.
pub struct Written {
    /// The SPDX file.
    pub spdx: PathBuf,
    /// The CycloneDX file.
    pub cyclonedx: PathBuf,
    /// The attestation layout, if attached.
    pub attest: Option<PathBuf>,
}

/// Writes `OUT.spdx.json`, `OUT.cdx.json` and (with `attach`) the two
/// artifacts into `OUT.attest/`.
pub fn write(layout_dir: &Path, s: &Sbom, attach: bool) -> Result<Written> {
    write_into(&artifact::attest_dir(layout_dir), s, attach)
}

/// [`write`] into the attestation directory `root` (also `$out` of nix/sbom.nix).
pub fn write_into(root: &Path, s: &Sbom, attach: bool) -> Result<Written> {
    let spdx = ocipack_attest::canonical_json(&s.spdx());
    let cdx = ocipack_attest::canonical_json(&s.cyclonedx());
    let root = root.to_owned();
    artifact::prepare(&root)?;
    let spdx_path = root.join("sbom.spdx.json");
    let cdx_path = root.join("sbom.cdx.json");
    for (p, b) in [(&spdx_path, &spdx), (&cdx_path, &cdx)] {
        let tmp = sibling(p, ".tmp");
        std::fs::write(&tmp, b).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, p).with_context(|| format!("cannot write {}", p.display()))?;
    }
    let mut attest = None;
    if attach {
        let mut l = AttestLayout::open(&root)?;
        let hex = s.image.manifest.digest.replace(':', "-");
        let ann = |t: &str| {
            BTreeMap::from([
                (
                    "org.opencontainers.image.created".to_owned(),
                    s.created.clone(),
                ),
                (
                    "org.opencontainers.image.title".to_owned(),
                    format!("{}{t}", s.name),
                ),
            ])
        };
        let d = l.blob(artifact::SPDX_MEDIA_TYPE, &spdx)?;
        l.artifact(
            &s.image.manifest,
            artifact::SPDX_MEDIA_TYPE,
            vec![d],
            ann(".spdx.json"),
            &format!("{hex}.spdx"),
        )?;
        let d = l.blob(artifact::CYCLONEDX_MEDIA_TYPE, &cdx)?;
        l.artifact(
            &s.image.manifest,
            artifact::CYCLONEDX_MEDIA_TYPE,
            vec![d],
            ann(".cdx.json"),
            &format!("{hex}.cdx"),
        )?;
        l.finish()?;
        attest = Some(root.join(artifact::LAYOUT_DIR));
    }
    Ok(Written {
        spdx: spdx_path,
        cyclonedx: cdx_path,
        attest,
    })
}
