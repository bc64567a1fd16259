//! Turns a checked [`Definition`] into an image plan (docs/plan-format.md).
//!
//! Layers go from least to most volatile so that a rebuild after a code
//! change only replaces the top layer: system libraries (glibc and the rest
//! of the ELF closure, CA certificates), runtime libraries (onnxruntime),
//! one layer per model, then the application.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::definition::{load_manifest, Definition, Manifest, Program};
use crate::elf::{elf_closure, FoundVia, Root, SearchPath};
use crate::error::{io, Error, Result};
use crate::tree::Tree;

/// The uid and gid of the image's unprivileged user (the plan format's default).
pub const APP_UID: u32 = 65532;

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
        })
    }
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
pub fn plan_for(def: &Definition, ctx: &HostContext) -> Result<Value> {
    let program = def.program().ok_or_else(|| Error::Definition {
        path: def.path.clone(),
        message: "inconsistent [source]; load it with load_definition".to_owned(),
    })?;
    let manifest = if def.models.is_empty() && def.runtimes.is_empty() {
        None
    } else {
        Some(load_manifest(&ctx.manifest)?)
    };
    let assets = check_assets(def, ctx, manifest.as_ref())?;

    let mut app = Tree::default();
    let mut roots: Vec<Root> = Vec::new();
    match program {
        Program::Crate { package, binary } => {
            let host = ctx.bin_dir.join(binary);
            if !host.is_file() {
                return Err(Error::MissingBinary {
                    path: host,
                    package: package.to_owned(),
                });
            }
            let target = PathBuf::from("/app/bin").join(binary);
            app.file(&host, &target)?;
            roots.push(Root { host, target });
        }
        Program::Host(paths) => {
            for path in paths {
                let path = PathBuf::from(path);
                app.mirror(&path)?;
                roots.push(Root::same(path));
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
        let host = ctx.bin_dir.join("http-probe");
        if !host.is_file() {
            return Err(Error::MissingBinary {
                path: host,
                package: "http-probe".to_owned(),
            });
        }
        app.file(&host, Path::new(PROBE_TARGET))?;
        roots.push(Root {
            host,
            target: PROBE_TARGET.into(),
        });
    }

    let mut runtime = Tree::default();
    let mut env = def.config.env.clone();
    for rt in &assets.runtimes {
        let dir = PathBuf::from("/usr/lib").join(&rt.name);
        let target = dir.join(&rt.file);
        runtime.file(&rt.source, &target)?;
        runtime.symlink(&dir.join(&rt.soname), &rt.file)?;
        roots.push(Root {
            host: rt.source.clone(),
            target,
        });
        // ort's load-dynamic feature dlopens the runtime from this variable.
        if rt.name == "onnxruntime" {
            let value = dir.join(&rt.soname).display().to_string();
            set_env(def, &mut env, "ORT_DYLIB_PATH", value)?;
        }
    }

    let closure = elf_closure(&roots, &ctx.search)?;
    let mut system = Tree::default();
    let mut extra_dirs: Vec<PathBuf> = Vec::new();
    for lib in &closure {
        if lib.host == lib.target {
            system.mirror(&lib.host)?;
        } else {
            // Found through $ORIGIN of the moved application binary: it
            // travels with the application.
            let real = lib.host.canonicalize().map_err(io(&lib.host))?;
            app.file(&real, &lib.target)?;
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
        // The image has no ld.so.cache, so directories that only
        // ld.so.conf names must be given to the loader explicitly, in the
        // host's search order.
        extra_dirs.sort_by_key(|d| ctx.search.configured.iter().position(|c| c == d));
        let value = extra_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        set_env(def, &mut env, "LD_LIBRARY_PATH", value)?;
    }
    if let Some(ca) = &ctx.ca_bundle {
        system.mirror(ca)?;
    }

    for (target, source) in &def.files {
        let source = ctx.repo_root.join(source);
        if !source.exists() {
            return Err(Error::Definition {
                path: def.path.clone(),
                message: format!(
                    "[files] source {} does not exist; create it or fix the path",
                    source.display()
                ),
            });
        }
        app.file(&source, Path::new(target))?;
    }
    for dir in &def.directories.paths {
        app.dir(Path::new(dir), APP_UID, APP_UID)?;
    }

    let mut layers = vec![files_layer("system libraries", &system)];
    if !runtime.is_empty() {
        let names: Vec<&str> = assets.runtimes.iter().map(|r| r.name.as_str()).collect();
        layers.push(files_layer(
            &format!("runtime libraries: {}", names.join(", ")),
            &runtime,
        ));
    }
    for model in &assets.models {
        layers.push(json!({
            "kind": "model",
            "name": model.name,
            "source": model.source,
            "target": format!("/models/{}/{}", model.name, model.file),
        }));
    }
    layers.push(files_layer(&format!("application: {}", def.name), &app));
    if layers.len() > def.layers.max as usize {
        return Err(Error::TooManyLayers {
            name: def.name.clone(),
            needed: layers.len(),
            max: def.layers.max,
        });
    }

    let labels = labels(def);
    let mut config = Map::new();
    let c = &def.config;
    config.insert("entrypoint".into(), json!(c.entrypoint));
    config.insert("cmd".into(), json!(c.cmd));
    let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    config.insert("env".into(), json!(env));
    if let Some(dir) = &c.working_dir {
        config.insert("workingDir".into(), json!(dir));
    }
    config.insert("exposedPorts".into(), json!(c.exposed_ports));
    config.insert("volumes".into(), json!(c.volumes));
    config.insert("labels".into(), json!(labels));
    if let Some(signal) = &c.stop_signal {
        config.insert("stopSignal".into(), json!(signal));
    }
    if let Some(hc) = &def.healthcheck {
        let mut h = Map::new();
        h.insert("test".into(), json!(hc.test));
        let optional = [
            ("intervalSeconds", hc.interval_seconds),
            ("timeoutSeconds", hc.timeout_seconds),
            ("startPeriodSeconds", hc.start_period_seconds),
            ("retries", hc.retries),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                h.insert(key.into(), json!(v));
            }
        }
        config.insert("healthcheck".into(), Value::Object(h));
    }

    Ok(json!({
        "version": 1,
        "name": def.name,
        "tags": def.tags,
        "config": Value::Object(config),
        "annotations": labels,
        "layers": layers,
    }))
}

fn files_layer(comment: &str, tree: &Tree) -> Value {
    json!({"kind": "files", "comment": comment, "entries": tree.to_entries()})
}

/// The definition's labels plus a title and description when it sets none.
fn labels(def: &Definition) -> BTreeMap<String, String> {
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

fn set_env(
    def: &Definition,
    env: &mut BTreeMap<String, String>,
    key: &str,
    value: String,
) -> Result<()> {
    match env.get(key) {
        Some(old) if *old != value => Err(Error::Definition {
            path: def.path.clone(),
            message: format!(
                "env {key}={old} contradicts the builder's {key}={value}; remove it from [config] env"
            ),
        }),
        _ => {
            env.insert(key.to_owned(), value);
            Ok(())
        }
    }
}

struct CheckedAsset {
    name: String,
    file: String,
    soname: String,
    source: PathBuf,
}

#[derive(Default)]
struct Assets {
    models: Vec<CheckedAsset>,
    runtimes: Vec<CheckedAsset>,
}

/// Resolves the definition's models and runtimes against models.toml and
/// verifies the fetched files, so a stale or truncated download never ships.
fn check_assets(
    def: &Definition,
    ctx: &HostContext,
    manifest: Option<&Manifest>,
) -> Result<Assets> {
    let Some(manifest) = manifest else {
        return Ok(Assets::default());
    };
    let unknown = |kind, name: &str, known: Vec<&String>| Error::UnknownAsset {
        definition: def.path.clone(),
        kind,
        name: name.to_owned(),
        manifest: ctx.manifest.clone(),
        known: known
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let licences = def
        .labels
        .get("org.opencontainers.image.licenses")
        .cloned()
        .unwrap_or_default();
    let mut out = Assets::default();
    for name in &def.models {
        let m = manifest
            .models
            .get(name)
            .ok_or_else(|| unknown("model", name, manifest.models.keys().collect()))?;
        if !licences.contains(&m.license) {
            return Err(Error::Definition {
                path: def.path.clone(),
                message: format!(
                    "model `{name}` is licensed {} but label org.opencontainers.image.licenses \
                     (`{licences}`) does not say so; add it",
                    m.license
                ),
            });
        }
        let source = ctx.assets_dir.join("models").join(name).join(&m.file);
        verify(&source, m.size, &m.sha256)?;
        out.models.push(CheckedAsset {
            name: name.clone(),
            file: m.file.clone(),
            soname: String::new(),
            source,
        });
    }
    for name in &def.runtimes {
        let r = manifest
            .runtimes
            .get(name)
            .ok_or_else(|| unknown("runtime", name, manifest.runtimes.keys().collect()))?;
        let source = ctx.assets_dir.join("runtimes").join(name).join(&r.file);
        verify(&source, r.size, &r.sha256)?;
        out.runtimes.push(CheckedAsset {
            name: name.clone(),
            file: r.file.clone(),
            soname: r.soname.clone(),
            source,
        });
    }
    Ok(out)
}

fn verify(path: &Path, size: u64, sha256: &str) -> Result<()> {
    let asset = |message: String| Error::Asset {
        path: path.to_owned(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| asset(format!("cannot read it ({e})")))?;
    if meta.len() != size {
        return Err(asset(format!(
            "size {} differs from {size} in models.toml",
            meta.len()
        )));
    }
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let got: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got != sha256 {
        return Err(asset(format!(
            "sha256 {got} differs from {sha256} in models.toml"
        )));
    }
    Ok(())
}
