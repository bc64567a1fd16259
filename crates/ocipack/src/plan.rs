//! The image plan: what `ocipack build` packs (format: `docs/plan-format.md`).
//!
//! Every struct denies unknown fields, so a typo in a plan is an error and never
//! silently ignored. Maps are `BTreeMap`s so nothing depends on hash order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::rules::rfc3339;
use crate::rules::{valid_rfc3339, valid_tag};
use validate::check_user;
pub(crate) use validate::validate_layer;

mod validate;

/// The only plan version this packer understands.
pub const PLAN_VERSION: u32 = 1;
/// The hard cap of layers in an image, the base layer included.
pub const MAX_LAYERS: usize = 127;
/// The default unprivileged uid and gid.
pub const DEFAULT_ID: u32 = 65532;

/// A whole image plan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Plan {
    /// Must be [`PLAN_VERSION`].
    pub version: u32,
    /// Image name, for messages and default repository names.
    pub name: String,
    /// Tags written to `index.json`.
    #[serde(default = "default_tags")]
    pub tags: Vec<String>,
    /// OCI platform architecture.
    #[serde(default = "default_arch", skip_serializing_if = "is_default_arch")]
    pub architecture: String,
    /// OCI platform OS.
    #[serde(default = "default_os", skip_serializing_if = "is_default_os")]
    pub os: String,
    /// RFC 3339 creation time; see [`Plan::created_time`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// mtime of every entry of `files` layers; see [`Plan::mtime`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
    /// The unprivileged user.
    #[serde(default, skip_serializing_if = "User::is_default")]
    pub user: User,
    /// Allow root, setuid/setgid and world-writable paths.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_root: bool,
    /// Generate the base layer (users, groups, /tmp, home) below `layers`.
    /// `false` when the first layer already is one, prebuilt by `ocipack
    /// layer` from a `base` spec (the Nix library builds it once per user,
    /// as a derivation of its own).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub generate_base: bool,
    /// Runtime configuration.
    #[serde(default)]
    pub config: RunConfig,
    /// Manifest annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The layers, bottom first (the generated base layer comes before them).
    pub layers: Vec<Layer>,
}

/// The image's unprivileged user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct User {
    /// Login name.
    #[serde(default = "default_user_name")]
    pub name: String,
    /// Numeric user id.
    #[serde(default = "default_id")]
    pub uid: u32,
    /// Numeric group id.
    #[serde(default = "default_id")]
    pub gid: u32,
    /// Home directory, created owned by the user.
    #[serde(default = "default_home")]
    pub home: String,
}

impl Default for User {
    fn default() -> Self {
        User {
            name: default_user_name(),
            uid: DEFAULT_ID,
            gid: DEFAULT_ID,
            home: default_home(),
        }
    }
}

impl User {
    /// True for the default user (`app`, 65532:65532, `/home/app`).
    pub fn is_default(&self) -> bool {
        *self == User::default()
    }
}

/// The runtime configuration (the `config` object of the OCI image config).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunConfig {
    /// `User`; defaults to `uid:gid` of [`Plan::user`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `Env` as `K=V` strings.
    #[serde(default)]
    pub env: Vec<String>,
    /// `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `WorkingDir`; defaults to the user's home.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `ExposedPorts` as `port/proto`.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// `Volumes`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `Labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `StopSignal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker's `Healthcheck` extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
}

/// A container healthcheck (Docker extension to the image config).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", ...]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Seconds between checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// Seconds before a check counts as failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Grace period after start, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period_seconds: Option<u64>,
    /// Consecutive failures before unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// One layer of the plan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Layer {
    /// A set of files, directories and symlinks.
    Files(FilesLayer),
    /// One model file, uncompressed and read-only.
    Model(ModelLayer),
    /// A blob already built by `ocipack layer`.
    Prebuilt(PrebuiltLayer),
    /// The base layer for `user`, as a plan generates it; only in layer
    /// specs (`ocipack layer`), never in a plan's `layers`.
    Base(BaseLayer),
}

/// The base layer of a layer spec: the same bytes a plan with this `user`
/// generates.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BaseLayer {
    /// The image's unprivileged user.
    #[serde(default, skip_serializing_if = "User::is_default")]
    pub user: User,
    /// Allow a root user (as a plan's `allowRoot`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_root: bool,
}

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (multi-member, fixed header, level 6).
    #[default]
    Gzip,
    /// zstd (level 3, no checksum, single-threaded).
    Zstd,
    /// Plain tar.
    None,
}

/// A layer made of entries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilesLayer {
    /// What the layer holds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// Blob compression.
    #[serde(default, skip_serializing_if = "is_default")]
    pub compression: Compression,
    /// Default owner uid.
    #[serde(default, skip_serializing_if = "is_default")]
    pub uid: u32,
    /// Default owner gid.
    #[serde(default, skip_serializing_if = "is_default")]
    pub gid: u32,
    /// The entries.
    pub entries: Vec<Entry>,
}

/// One entry of a files layer: a source on disk, an empty directory or a symlink.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Entry {
    /// Path on disk (relative paths are relative to the plan's directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// Absolute path in the image.
    pub target: String,
    /// Create an empty directory at `target`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub directory: bool,
    /// Create a symlink at `target` pointing here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink: Option<String>,
    /// Owner uid for everything the entry yields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Owner gid for everything the entry yields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Octal mode string, e.g. `"0755"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// A model layer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelLayer {
    /// The model's name.
    pub name: String,
    /// The model file on disk.
    pub source: PathBuf,
    /// Its absolute path in the image.
    pub target: String,
}

/// A layer built earlier by `ocipack layer`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrebuiltLayer {
    /// Directory holding `blob` and `descriptor.json`.
    pub path: PathBuf,
}

/// A standalone layer spec for `ocipack layer`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LayerSpec {
    /// Must be [`PLAN_VERSION`].
    pub version: u32,
    /// A files or model layer.
    pub layer: Layer,
    /// mtime for files layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_date_epoch: Option<u64>,
}

impl LayerSpec {
    /// mtime of a `files` layer's entries, by the rule of [`Plan::mtime`].
    ///
    /// # Errors
    /// A malformed `SOURCE_DATE_EPOCH`.
    pub fn mtime(&self) -> Result<u64> {
        mtime_rule(self.source_date_epoch)
    }
}

/// The one mtime rule: the given epoch, else `SOURCE_DATE_EPOCH`, else 1.
fn mtime_rule(source_date_epoch: Option<u64>) -> Result<u64> {
    Ok(match source_date_epoch {
        Some(t) => t,
        None => env_source_date_epoch()?.unwrap_or(1),
    })
}

fn default_true() -> bool {
    true
}
// Serialization leaves out what a reader fills in anyway (absent options,
// false flags, the default platform, user, compression and owner), so a
// plan written from these types says what its author chose; lists and maps
// are always written.
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn is_false(v: &bool) -> bool {
    !*v
}
fn is_true(v: &bool) -> bool {
    *v
}
fn is_default_arch(v: &str) -> bool {
    v == default_arch()
}
fn is_default_os(v: &str) -> bool {
    v == default_os()
}
fn default_tags() -> Vec<String> {
    vec!["latest".to_owned()]
}
fn default_arch() -> String {
    "amd64".to_owned()
}
fn default_os() -> String {
    "linux".to_owned()
}
fn default_user_name() -> String {
    "app".to_owned()
}
fn default_id() -> u32 {
    DEFAULT_ID
}
fn default_home() -> String {
    "/home/app".to_owned()
}

/// Reads `SOURCE_DATE_EPOCH`, the one environment variable the packer honours.
pub fn env_source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| Error::Plan {
            origin: "environment".into(),
            message: format!(
                "SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds; unset it or fix it"
            ),
        }),
        Err(_) => Ok(None),
    }
}

/// Parses a JSON document into `T`, naming `origin` and the JSON position on error.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Plan {
        origin: format!("{origin}:{}:{}", e.line(), e.column()),
        message: e.to_string(),
    })
}

impl Plan {
    /// A plan of `layers` with every other field at its default, as a plan
    /// file that names only `version`, `name` and `layers` reads.
    pub fn new(name: impl Into<String>, layers: Vec<Layer>) -> Plan {
        Plan {
            version: PLAN_VERSION,
            name: name.into(),
            tags: default_tags(),
            architecture: default_arch(),
            os: default_os(),
            created: None,
            source_date_epoch: None,
            user: User::default(),
            allow_root: false,
            generate_base: true,
            config: RunConfig::default(),
            annotations: BTreeMap::new(),
            layers,
        }
    }

    /// Reads and validates a plan file; relative sources become relative to its directory.
    ///
    /// # Errors
    /// Unreadable file, malformed JSON, unknown fields, or any rule of [`Plan::validate`].
    pub fn load(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Plan::from_json(&text, &path.display().to_string(), Some(base))
    }

    /// Parses and validates a plan from text. `base` resolves relative sources;
    /// without it relative sources are refused.
    ///
    /// # Errors
    /// As [`Plan::load`].
    pub fn from_json(text: &str, origin: &str, base: Option<&Path>) -> Result<Plan> {
        let mut plan: Plan = parse_json(text, origin)?;
        plan.resolve_sources(origin, base)?;
        plan.validate(origin)?;
        Ok(plan)
    }

    fn resolve_sources(&mut self, origin: &str, base: Option<&Path>) -> Result<()> {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let loc = |what: &str| Error::Plan {
                origin: format!("{origin}: layer {}", i + 1),
                message: format!("relative {what} path is not allowed here; give an absolute path"),
            };
            match layer {
                Layer::Files(f) => {
                    for e in &mut f.entries {
                        if let Some(s) = &mut e.source {
                            if s.is_relative() {
                                *s = base.ok_or_else(|| loc("source"))?.join(&*s);
                            }
                        }
                    }
                }
                Layer::Model(m) => {
                    if m.source.is_relative() {
                        m.source = base.ok_or_else(|| loc("source"))?.join(&m.source);
                    }
                }
                Layer::Prebuilt(p) => {
                    if p.path.is_relative() {
                        p.path = base.ok_or_else(|| loc("prebuilt"))?.join(&p.path);
                    }
                }
                Layer::Base(_) => {}
            }
        }
        Ok(())
    }

    /// Checks the rules that do not need the file system.
    ///
    /// # Errors
    /// Wrong version, too many layers, bad target paths or modes, root without `allowRoot`.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let err = |message: String| Error::Plan {
            origin: origin.to_owned(),
            message,
        };
        if self.version != PLAN_VERSION {
            return Err(err(format!(
                "plan version {} is not supported; this ocipack reads version {PLAN_VERSION}",
                self.version
            )));
        }
        if self.layers.len() + usize::from(self.generate_base) > MAX_LAYERS {
            return Err(err(format!(
                "{} layers{} exceed the limit of {MAX_LAYERS}; merge layers (see `ocipack layers --max`)",
                self.layers.len(),
                if self.generate_base { " plus the base layer" } else { "" }
            )));
        }
        if self.tags.is_empty() {
            return Err(err("tags is empty; give at least one tag".into()));
        }
        for t in &self.tags {
            if !valid_tag(t) {
                return Err(err(format!(
                    "tag {t:?} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"
                )));
            }
        }
        check_user(&self.user, self.allow_root).map_err(err)?;
        if !self.allow_root {
            if let Some(u) = &self.config.user {
                if u.split(':').next().is_some_and(|x| x == "0" || x == "root") {
                    return Err(err(format!(
                        "config.user {u:?} runs as root; remove it (the default is {}:{}) or set allowRoot",
                        self.user.uid, self.user.gid
                    )));
                }
            }
        }
        if let Some(u) = &self.config.user {
            if !u
                .split(':')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(err(format!(
                    "config.user {u:?} must be numeric uid or uid:gid, so runtimes can check non-root without /etc/passwd"
                )));
            }
        }
        if let Some(c) = &self.created {
            if !valid_rfc3339(c) {
                return Err(err(format!(
                    "created {c:?} is not an RFC 3339 time like 2024-01-02T03:04:05Z"
                )));
            }
        }
        for (i, layer) in self.layers.iter().enumerate() {
            if matches!(layer, Layer::Base(_)) {
                return Err(err(format!(
                    "layer {}: a base layer cannot be built inside a plan; a plan generates its own from `user`, or takes one prebuilt by `ocipack layer` with generateBase: false",
                    i + 1
                )));
            }
            validate_layer(layer, self.allow_root)
                .map_err(|m| err(format!("layer {}: {m}", i + 1)))?;
        }
        Ok(())
    }

    /// mtime of `files` layer entries: the plan's, else `SOURCE_DATE_EPOCH`, else 1.
    ///
    /// # Errors
    /// A malformed `SOURCE_DATE_EPOCH`.
    pub fn mtime(&self) -> Result<u64> {
        mtime_rule(self.source_date_epoch)
    }

    /// The config's creation time as RFC 3339.
    ///
    /// # Errors
    /// A malformed `SOURCE_DATE_EPOCH`.
    pub fn created_time(&self) -> Result<String> {
        Ok(match &self.created {
            Some(c) => c.clone(),
            None => rfc3339(env_source_date_epoch()?.unwrap_or(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression for issue 12: plans are written from these types (the host
    /// builder), so what they write must read back as the same plan.
    #[test]
    fn a_serialized_plan_reads_back_the_same() {
        let text = r#"{"version":1,"name":"x","tags":["a"],"architecture":"arm64",
            "created":"2024-01-02T03:04:05Z","sourceDateEpoch":7,
            "user":{"name":"u","uid":10,"gid":11,"home":"/home/u"},"allowRoot":true,
            "generateBase":false,"annotations":{"k":"v"},
            "config":{"user":"10","env":["A=1"],"entrypoint":["/e"],"cmd":[],"workingDir":"/w",
              "exposedPorts":["1/tcp"],"volumes":[],"labels":{},"stopSignal":"SIGINT",
              "healthcheck":{"test":["NONE"],"retries":2}},
            "layers":[{"kind":"files","comment":"c","compression":"zstd","uid":1,"entries":[
                {"source":"/s","target":"/t","mode":"0644"},
                {"target":"/d","directory":true,"uid":3,"gid":4},
                {"target":"/l","symlink":"t"}]},
              {"kind":"model","name":"m","source":"/m","target":"/models/m"},
              {"kind":"prebuilt","path":"/p"}]}"#;
        let plan = Plan::from_json(text, "t", None).unwrap();
        let once = serde_json::to_value(&plan).unwrap();
        let again = Plan::from_json(&once.to_string(), "t", None).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), once);
        let input: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(once, input, "every field given is written back as given");
    }

    #[test]
    fn a_default_plan_writes_only_what_it_must() {
        let v = serde_json::to_value(Plan::new("x", vec![])).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["annotations", "config", "layers", "name", "tags", "version"]
        );
        Plan::from_json(&v.to_string(), "t", None).unwrap();
    }
}
