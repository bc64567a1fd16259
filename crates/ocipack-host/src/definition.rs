//! Image definitions (`images/<name>.toml`) and the asset manifest (`models.toml`).
//!
//! Definitions are data only: the Nix flake reads the same files with
//! `builtins.fromTOML`, so they use nothing Nix cannot express (no dates, no
//! mixed arrays). Unknown fields are refused so a typo cannot silently drop a
//! setting. See docs/image-definitions.md for every field.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::error::{io, Error, Result};

/// One image definition, as written in `images/<name>.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The file this definition was read from (not a TOML field).
    #[serde(skip)]
    pub path: PathBuf,
    /// Image name; must equal the file stem.
    pub name: String,
    /// One line about the image; becomes `org.opencontainers.image.description`.
    #[serde(default)]
    pub description: String,
    /// Tags written to the layout's index.
    #[serde(default = "default_tags")]
    pub tags: Vec<String>,
    /// Model names from models.toml `[models]`, placed at `/models/<name>/<file>`.
    #[serde(default)]
    pub models: Vec<String>,
    /// Runtime names from models.toml `[runtimes]`, placed at `/usr/lib/<name>/`.
    #[serde(default)]
    pub runtimes: Vec<String>,
    /// Whether to include `/usr/local/bin/http-probe`.
    #[serde(default)]
    pub probe: bool,
    /// Where the image's program comes from.
    pub source: Source,
    /// The runtime configuration.
    pub config: Config,
    /// The Docker healthcheck, if any.
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// Extra files: image target path = source path relative to the repo root.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Writable directories owned by the app user.
    #[serde(default)]
    pub directories: Directories,
    /// Image labels (also written as manifest annotations).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Layering limits.
    #[serde(default)]
    pub layers: Layers,
}

/// Where the image's program comes from: a workspace crate, or a nixpkgs package.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Cargo package building the binary (service images).
    #[serde(default, rename = "crate")]
    pub krate: Option<String>,
    /// Binary name; installed at `/app/bin/<binary>`.
    #[serde(default)]
    pub binary: Option<String>,
    /// nixpkgs attribute the Nix flake takes the program from (supporting images).
    #[serde(default)]
    pub nixpkgs: Option<String>,
    /// Host programs the host builder installs at the same paths.
    #[serde(default)]
    pub host_binaries: Vec<String>,
    /// Why the host builder cannot build this image (it then refuses it).
    #[serde(default)]
    pub host_unsupported: Option<String>,
    /// Binaries of this workspace added at `/usr/local/bin/<name>` (a cargo
    /// package whose binary has its name), for supporting images.
    #[serde(default)]
    pub workspace_binaries: Vec<String>,
}

/// The runtime configuration of the image.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `Env`, written sorted by key.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `WorkingDir`; the user's home when absent.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `ExposedPorts`, e.g. `"3000/tcp"`.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// `Volumes`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `StopSignal`.
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// The Docker healthcheck extension.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// e.g. `["CMD", "/app/bin/x", "--healthcheck"]`.
    pub test: Vec<String>,
    /// Seconds between checks.
    #[serde(default)]
    pub interval_seconds: Option<u64>,
    /// Seconds before one check counts as failed.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Failures before the container is unhealthy.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Grace period after start, in seconds.
    #[serde(default)]
    pub start_period_seconds: Option<u64>,
}

/// Writable directories.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Directories {
    /// Absolute paths, created empty and owned by the app user.
    #[serde(default)]
    pub paths: Vec<String>,
}

/// Layering limits.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Layers {
    /// Most layers the image may have (without the base layer).
    #[serde(default = "default_max_layers")]
    pub max: u32,
}

impl Default for Layers {
    fn default() -> Self {
        Self {
            max: default_max_layers(),
        }
    }
}

fn default_tags() -> Vec<String> {
    vec!["latest".to_owned()]
}

fn default_max_layers() -> u32 {
    20
}

/// What a definition's `[source]` resolves to, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program<'a> {
    /// A cargo package's release binary, installed at `/app/bin/<binary>`.
    Crate {
        /// The cargo package.
        package: &'a str,
        /// The binary name.
        binary: &'a str,
    },
    /// Host programs installed at their own paths.
    Host(&'a [String]),
    /// The host builder cannot build this image.
    Unsupported(&'a str),
}

impl Definition {
    /// The program source, or `None` if `[source]` is inconsistent (checked by [`load_definition`]).
    pub fn program(&self) -> Option<Program<'_>> {
        let s = &self.source;
        match (&s.krate, &s.binary, &s.nixpkgs, &s.host_unsupported) {
            (Some(package), Some(binary), None, None) if s.host_binaries.is_empty() => {
                Some(Program::Crate { package, binary })
            }
            (None, None, Some(_), Some(reason)) if s.host_binaries.is_empty() => {
                Some(Program::Unsupported(reason))
            }
            (None, None, Some(_), None) if !s.host_binaries.is_empty() => {
                Some(Program::Host(&s.host_binaries))
            }
            _ => None,
        }
    }
}

/// Reads and checks one image definition.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read, [`Error::Toml`] for syntax errors
/// and unknown fields, [`Error::Definition`] when fields contradict each other
/// (name differs from the file stem, a bad `[source]`, relative target paths,
/// malformed ports or env keys).
pub fn load_definition(path: &Path) -> Result<Definition> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut def: Definition = toml::from_str(&text).map_err(|e| Error::Toml {
        path: path.to_owned(),
        message: format!(
            "{}; every field is described in docs/image-definitions.md",
            e.to_string().trim_end()
        ),
    })?;
    def.path = path.to_owned();
    check(&def, path)?;
    Ok(def)
}

fn check(def: &Definition, path: &Path) -> Result<()> {
    let bad = |message: String| Error::Definition {
        path: path.to_owned(),
        message,
    };
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if def.name != stem {
        return Err(bad(format!(
            "name `{}` differs from the file name `{stem}`; rename one so they match",
            def.name
        )));
    }
    if def.program().is_none() {
        return Err(bad(
            "[source] must hold either `crate` and `binary`, or `nixpkgs` with either \
             `host_binaries` or `host_unsupported`"
                .to_owned(),
        ));
    }
    if def.tags.is_empty() {
        return Err(bad("tags is empty; give at least one tag".to_owned()));
    }
    for b in &def.source.workspace_binaries {
        if b.is_empty() || b.contains('/') {
            return Err(bad(format!(
                "workspace_binaries entry `{b}` is not a binary name; give the cargo package's name"
            )));
        }
    }
    if def.config.entrypoint.is_empty() && def.config.cmd.is_empty() {
        return Err(bad(
            "[config] has neither entrypoint nor cmd; the image would not run anything".to_owned(),
        ));
    }
    let targets = def
        .source
        .host_binaries
        .iter()
        .chain(def.files.keys())
        .chain(&def.directories.paths)
        .chain(&def.config.volumes);
    for target in targets {
        if !is_normal_absolute(target) {
            return Err(bad(format!(
                "`{target}` is not a normalised absolute path; write it as /a/b"
            )));
        }
    }
    if let Some(dir) = &def.config.working_dir {
        if !is_normal_absolute(dir) {
            return Err(bad(format!("working_dir `{dir}` is not absolute")));
        }
    }
    for source in def.files.values() {
        let p = Path::new(source);
        if p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
            return Err(bad(format!(
                "[files] source `{source}` must be relative to the repo root and stay inside it"
            )));
        }
    }
    for key in def.config.env.keys() {
        if key.is_empty() || key.contains('=') {
            return Err(bad(format!(
                "env key `{key}` is empty or holds `=`; use a plain variable name"
            )));
        }
    }
    for port in &def.config.exposed_ports {
        let ok = port
            .split_once('/')
            .is_some_and(|(n, proto)| n.parse::<u16>().is_ok() && matches!(proto, "tcp" | "udp"));
        if !ok {
            return Err(bad(format!(
                "exposed port `{port}` is not of the form 3000/tcp or 53/udp"
            )));
        }
    }
    if let Some(hc) = &def.healthcheck {
        if hc.test.is_empty() {
            return Err(bad("[healthcheck] test is empty".to_owned()));
        }
    }
    Ok(())
}

/// True for `/a/b`: absolute, no `.`, `..`, `//` or trailing `/`.
pub(crate) fn is_normal_absolute(p: &str) -> bool {
    p.starts_with('/')
        && p.len() > 1
        && !p.ends_with('/')
        && p[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The asset manifest, `models.toml`; only the fields the host builder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// Models by name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelAsset>,
    /// Runtime libraries by name.
    #[serde(default)]
    pub runtimes: BTreeMap<String, RuntimeAsset>,
}

/// One `[models.<name>]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelAsset {
    /// File name under `models/<name>/`.
    pub file: String,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// SPDX expression or LicenseRef.
    pub license: String,
}

/// One `[runtimes.<name>]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeAsset {
    /// File name under `runtimes/<name>/`.
    pub file: String,
    /// The library's SONAME, installed as a symlink to `file`.
    pub soname: String,
    /// The environment variable that gets the library's path in the image
    /// (`ORT_DYLIB_PATH` for ONNX Runtime: ort's `load-dynamic` dlopens it).
    #[serde(default)]
    pub library_env: Option<String>,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// SPDX expression.
    pub license: String,
}

/// Reads models.toml.
///
/// # Errors
///
/// [`Error::Io`] or [`Error::Toml`].
pub fn load_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    toml::from_str(&text).map_err(|e| Error::Toml {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Every `*.toml` in `dir`, sorted by name.
///
/// # Errors
///
/// [`Error::Io`] if the directory cannot be listed.
pub fn definition_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
