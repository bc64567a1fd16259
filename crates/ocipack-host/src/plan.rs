//! Turns a checked [`Definition`] into an image [`Plan`] (docs/plan-format.md).
//!
//! Layers go from least to most volatile so that a rebuild after a code
//! change only replaces the top layer: system libraries (glibc and the rest
//! of the ELF closure, CA certificates), runtime libraries (onnxruntime),
//! one layer per model, then the application.
//!
//! [`plan_for`] runs the steps in order, each a function of its own: the
//! program ([`program`]), the runtime libraries ([`runtimes`]), the ELF
//! closure ([`elf_libraries`]), extra files ([`files`]), the environment
//! ([`env`]), the layers ([`layers`]) and the runtime config ([`config`]).
//! Every step reads the same [`Planning`] context and adds to the same
//! [`Parts`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ocipack::plan::{FilesLayer, Healthcheck, Layer, ModelLayer, Plan, RunConfig, User};

use crate::assets::{check_assets, Assets, CheckedAsset};
use crate::definition::{Definition, Program};
use crate::elf::{elf_closure_for, FoundVia, Root, SearchPath, Target};
use crate::error::{io, Error, Result};
use crate::tree::Tree;

/// Where the probe binary goes in images with `probe = true`.
pub const PROBE_TARGET: &str = "/usr/local/bin/http-probe";

/// Where everything the host builder reads comes from.
#[derive(Debug, Clone)]
pub struct HostContext {
    /// The repository root; `[files]` sources are relative to it.
    pub repo_root: PathBuf,
    /// Where cargo put the release binaries (`target/release`).
    pub bin_dir: PathBuf,
    /// The fetched assets: `models/<name>/<file>`, `runtimes/<name>/<file>`.
    pub assets_dir: PathBuf,
    /// The asset manifest, models.toml.
    pub manifest: PathBuf,
    /// The loader search path used to resolve libraries.
    pub search: SearchPath,
    /// The CA bundle copied to the same path in the image, if any.
    pub ca_bundle: Option<PathBuf>,
    /// The machine the image is for (default: this one); a cross target
    /// reads host programs and libraries from its sysroot (issue 16).
    pub target: Target,
}

impl HostContext {
    /// The usual layout: `<repo>/models.toml`, `<repo>/.cache/assets`, the
    /// host's loader search path and `/etc/ssl/certs/ca-certificates.crt`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if /etc/ld.so.conf cannot be read.
    pub fn new(repo_root: &Path, bin_dir: &Path) -> Result<Self> {
        Ok(Self {
            repo_root: repo_root.to_owned(),
            bin_dir: bin_dir.to_owned(),
            assets_dir: repo_root.join(".cache/assets"),
            manifest: repo_root.join("models.toml"),
            search: SearchPath::from_host()?,
            ca_bundle: Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt")),
            target: Target::host(),
        })
    }
}

/// What every step of one plan reads. New inputs of all steps (a target
/// platform, say) are fields here, so no step's signature changes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planning<'a> {
    /// The checked definition.
    pub def: &'a Definition,
    /// Where binaries, assets and libraries come from.
    pub host: &'a HostContext,
}

impl Planning<'_> {
    fn definition_error(&self, message: String) -> Error {
        Error::Definition {
            path: self.def.path.clone(),
            message,
        }
    }
}

/// What the steps build up, in the order they run.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    /// The ELF closure and the CA bundle.
    pub system: Tree,
    /// The runtime libraries.
    pub runtime: Tree,
    /// The program, the probe, `[files]`, `[directories]`, `$ORIGIN` libraries.
    pub app: Tree,
    /// The ELF objects whose closure is packed (host path, image path).
    pub roots: Vec<Root>,
    /// Variables the builder sets, in the order it sets them; [`env`]
    /// merges them with the definition's `[config] env`.
    pub env: Vec<(String, String)>,
}

/// Builds the plan for one image.
///
/// # Errors
///
/// [`Error::HostUnsupported`] for Nix-only images; [`Error::UnknownAsset`],
/// [`Error::Asset`] for models and runtimes that are not in models.toml or
/// not fetched; [`Error::MissingBinary`], [`Error::NotElf`],
/// [`Error::MissingLibrary`] from the binaries; [`Error::Definition`],
/// [`Error::Conflict`], [`Error::TooManyLayers`], [`Error::Io`].
pub fn plan_for(def: &Definition, ctx: &HostContext) -> Result<Plan> {
    // A cross target takes `[runtimes.<name>-<arch>]` of models.toml in
    // place of `<name>` where there is one (ONNX Runtime's aarch64 build).
    let remapped;
    let def = if ctx.target.sysroot.is_some() && !def.runtimes.is_empty() {
        let manifest = crate::definition::load_manifest(&ctx.manifest)?;
        let mut d = def.clone();
        for r in &mut d.runtimes {
            let cross = format!("{r}-{}", ctx.target.architecture);
            if manifest.runtimes.contains_key(&cross) {
                *r = cross;
            }
        }
        remapped = d;
        &remapped
    } else {
        def
    };
    let p = Planning { def, host: ctx };
    let assets = check_assets(&p)?;
    let mut parts = Parts::default();
    program(&p, &mut parts)?;
    runtimes(&p, &assets.runtimes, &mut parts)?;
    elf_libraries(&p, &mut parts)?;
    files(&p, &mut parts)?;
    let env = env(&p, &parts.env)?;
    let layers = layers(&p, &assets, &parts)?;
    let labels = labels(def);
    let mut plan = Plan::new(def.name.clone(), layers);
    plan.tags = def.tags.clone();
    plan.architecture = ctx.target.architecture.clone();
    plan.config = config(&p, env, labels.clone());
    plan.annotations = labels;
    Ok(plan)
}

/// The program: a crate's release binary at `/app/bin/<binary>`, or the host
/// binaries at their own paths; plus the probe and the workspace binaries
/// (`/usr/local/bin/<name>`). Each is an ELF root.
pub(crate) fn program(p: &Planning<'_>, parts: &mut Parts) -> Result<()> {
    let (def, ctx) = (p.def, p.host);
    let program = def.program().ok_or_else(|| {
        p.definition_error("inconsistent [source]; load it with load_definition".to_owned())
    })?;
    match program {
        Program::Crate { package, binary } => {
            let target = PathBuf::from("/app/bin").join(binary);
            add_binary(ctx, parts, binary, package, &target)?;
        }
        Program::Host(paths) => {
            for path in paths {
                let path = PathBuf::from(path);
                match &ctx.target.sysroot {
                    None => parts.app.mirror(&path)?,
                    Some(root) => parts.app.mirror_in(root, &path)?,
                }
                parts.roots.push(Root {
                    host: ctx.target.host_path(&path),
                    target: path,
                });
            }
        }
        Program::Unsupported(reason) => {
            return Err(Error::HostUnsupported {
                name: def.name.clone(),
                reason: reason.to_owned(),
            })
        }
    }
    if def.probe {
        add_binary(
            ctx,
            parts,
            "http-probe",
            "http-probe",
            Path::new(PROBE_TARGET),
        )?;
    }
    for name in &def.source.workspace_binaries {
        let target = Path::new("/usr/local/bin").join(name);
        add_binary(ctx, parts, name, name, &target)?;
    }
    Ok(())
}

/// A workspace binary from `bin_dir`, at `target` in the application layer.
fn add_binary(
    ctx: &HostContext,
    parts: &mut Parts,
    binary: &str,
    package: &str,
    target: &Path,
) -> Result<()> {
    let host = ctx.bin_dir.join(binary);
    if !host.is_file() {
        return Err(Error::MissingBinary {
            path: host,
            package: package.to_owned(),
        });
    }
    parts.app.file(&host, target)?;
    parts.roots.push(Root {
        host,
        target: target.to_owned(),
    });
    Ok(())
}

/// The runtime libraries at `/usr/lib/<name>/<file>` with their soname
/// links; each is an ELF root, and the soname link's path goes to the
/// variable models.toml names in `library_env` (`ORT_DYLIB_PATH`).
pub(crate) fn runtimes(
    p: &Planning<'_>,
    runtimes: &[CheckedAsset],
    parts: &mut Parts,
) -> Result<()> {
    for rt in runtimes {
        // `onnxruntime-arm64` is installed where `onnxruntime` would be.
        let suffix = format!("-{}", p.host.target.architecture);
        let name = match &p.host.target.sysroot {
            Some(_) => rt.name.strip_suffix(&suffix).unwrap_or(&rt.name),
            None => &rt.name,
        };
        let dir = PathBuf::from("/usr/lib").join(name);
        let target = dir.join(&rt.file);
        parts.runtime.file(&rt.source, &target)?;
        parts.runtime.symlink(&dir.join(&rt.soname), &rt.file)?;
        parts.roots.push(Root {
            host: rt.source.clone(),
            target,
        });
        if let Some(key) = &rt.library_env {
            let value = dir.join(&rt.soname).display().to_string();
            parts.env.push((key.clone(), value));
        }
    }
    Ok(())
}

/// The ELF closure of every root, resolved as the host's loader would:
/// host paths into the system layer, libraries found through a moved
/// binary's `$ORIGIN` into the application layer, and the ld.so.conf-only
/// directories into `LD_LIBRARY_PATH` (the image has no ld.so.cache).
pub(crate) fn elf_libraries(p: &Planning<'_>, parts: &mut Parts) -> Result<()> {
    let search = &p.host.search;
    let target = &p.host.target;
    let closure = elf_closure_for(&parts.roots, search, target)?;
    let mut extra_dirs: Vec<PathBuf> = Vec::new();
    for lib in &closure {
        if lib.host == lib.target {
            parts.system.mirror(&lib.host)?;
        } else if let Some(root) = target
            .sysroot
            .as_ref()
            .filter(|_| lib.host == target.host_path(&lib.target))
        {
            parts.system.mirror_in(root, &lib.target)?;
        } else {
            // Found through $ORIGIN of the moved application binary: it
            // travels with the application.
            let real = lib.host.canonicalize().map_err(io(&lib.host))?;
            parts.app.file(&real, &lib.target)?;
        }
        if lib.found_via == FoundVia::Configured {
            let dir = lib
                .target
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            if !extra_dirs.contains(&dir) {
                extra_dirs.push(dir);
            }
        }
    }
    if !extra_dirs.is_empty() {
        // In the host's search order.
        extra_dirs.sort_by_key(|d| search.configured.iter().position(|c| c == d));
        let value = extra_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        parts.env.push(("LD_LIBRARY_PATH".to_owned(), value));
    }
    Ok(())
}

/// The CA bundle (system layer), `[files]` and `[directories]` (application
/// layer; directories owned by the image's user).
pub(crate) fn files(p: &Planning<'_>, parts: &mut Parts) -> Result<()> {
    let (def, ctx) = (p.def, p.host);
    if let Some(ca) = &ctx.ca_bundle {
        parts.system.mirror(ca)?;
    }
    for (target, source) in &def.files {
        let source = ctx.repo_root.join(source);
        if !source.exists() {
            return Err(p.definition_error(format!(
                "[files] source {} does not exist; create it or fix the path",
                source.display()
            )));
        }
        foreign_elf_in(p, target, &source)?;
        parts.app.file(&source, Path::new(target))?;
    }
    let user = User::default();
    for dir in &def.directories.paths {
        parts.app.dir(Path::new(dir), user.uid, user.gid)?;
    }
    Ok(())
}

/// Refuses an ELF object of another machine under a `[files]` source (a
/// file, or every regular file of a directory, links not followed): packed
/// as it is, a native addon built for this machine (an npm package's `.node`,
/// say) would fail only when the other platform's image loads it.
fn foreign_elf_in(p: &Planning<'_>, target: &str, source: &Path) -> Result<()> {
    let t = &p.host.target;
    let meta = std::fs::symlink_metadata(source).map_err(io(source))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(source)
            .map_err(io(source))?
            .map(|e| e.map(|e| e.path()).map_err(io(source)))
            .collect::<Result<_>>()?;
        entries.sort();
        for e in entries {
            foreign_elf_in(p, target, &e)?;
        }
    } else if meta.is_file() {
        if let Some(machine) = t.foreign_elf(source) {
            return Err(p.definition_error(format!(
                "[files] {target}: {} is an ELF object for {machine}, but the image is for linux/{} ({}); \
                 build or install that module for linux/{} (an npm package's native addon: its linux-{} build) or leave it out of [files]",
                source.display(),
                t.architecture,
                t.machine_label(),
                t.architecture,
                t.architecture,
            )));
        }
    }
    Ok(())
}

/// `[config] env` plus what the builder sets, as sorted `K=V` strings; a
/// definition value that contradicts the builder's is refused.
pub(crate) fn env(p: &Planning<'_>, builder: &[(String, String)]) -> Result<Vec<String>> {
    let mut env = p.def.config.env.clone();
    for (key, value) in builder {
        match env.get(key) {
            Some(old) if old != value => {
                return Err(p.definition_error(format!(
                    "env {key}={old} contradicts the builder's {key}={value}; remove it from [config] env"
                )))
            }
            _ => {
                env.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(env.iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// The plan's layers, least volatile first: system libraries, runtime
/// libraries (if any), one per model, the application; at most `[layers] max`.
pub(crate) fn layers(p: &Planning<'_>, assets: &Assets, parts: &Parts) -> Result<Vec<Layer>> {
    let def = p.def;
    let mut layers = vec![files_layer("system libraries".to_owned(), &parts.system)];
    if !parts.runtime.is_empty() {
        let names: Vec<&str> = assets.runtimes.iter().map(|r| r.name.as_str()).collect();
        layers.push(files_layer(
            format!("runtime libraries: {}", names.join(", ")),
            &parts.runtime,
        ));
    }
    for model in &assets.models {
        layers.push(Layer::Model(ModelLayer {
            name: model.name.clone(),
            source: model.source.clone(),
            target: format!("/models/{}/{}", model.name, model.file),
        }));
    }
    layers.push(files_layer(
        format!("application: {}", def.name),
        &parts.app,
    ));
    if layers.len() > def.layers.max as usize {
        return Err(Error::TooManyLayers {
            name: def.name.clone(),
            needed: layers.len(),
            max: def.layers.max,
        });
    }
    Ok(layers)
}

fn files_layer(comment: String, tree: &Tree) -> Layer {
    Layer::Files(FilesLayer {
        comment,
        compression: Default::default(),
        uid: 0,
        gid: 0,
        entries: tree.to_entries(),
    })
}

/// The runtime config: `[config]`, the merged env, the labels and the
/// healthcheck. `User` is left to the plan's default (the unprivileged user).
pub(crate) fn config(
    p: &Planning<'_>,
    env: Vec<String>,
    labels: BTreeMap<String, String>,
) -> RunConfig {
    let (def, c) = (p.def, &p.def.config);
    RunConfig {
        user: None,
        env,
        entrypoint: c.entrypoint.clone(),
        cmd: c.cmd.clone(),
        working_dir: c.working_dir.clone(),
        exposed_ports: c.exposed_ports.clone(),
        volumes: c.volumes.clone(),
        labels,
        stop_signal: c.stop_signal.clone(),
        healthcheck: def.healthcheck.as_ref().map(|hc| Healthcheck {
            test: hc.test.clone(),
            interval_seconds: hc.interval_seconds,
            timeout_seconds: hc.timeout_seconds,
            start_period_seconds: hc.start_period_seconds,
            retries: hc.retries,
        }),
    }
}

/// The definition's labels plus a title and description when it sets none.
pub(crate) fn labels(def: &Definition) -> BTreeMap<String, String> {
    let mut labels = def.labels.clone();
    labels
        .entry("org.opencontainers.image.title".into())
        .or_insert_with(|| def.name.clone());
    if !def.description.is_empty() {
        labels
            .entry("org.opencontainers.image.description".into())
            .or_insert_with(|| def.description.clone());
    }
    labels
}

#[cfg(test)]
mod tests;
