//! The image plan: what `ocipack build` packs (format: `docs/plan-format.md`).
//!
//! Every struct denies unknown fields, so a typo in a plan is an error and never
//! silently ignored. Maps are `BTreeMap`s so nothing depends on hash order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The only plan version this packer understands.
pub const PLAN_VERSION: u32 = 1;
/// The hard cap of layers in an image, the base layer included.
pub const MAX_LAYERS: usize = 127;
/// The default unprivileged uid and gid.
pub const DEFAULT_ID: u32 = 65532;

/// A whole image plan.
#[derive(Debug, Clone, Deserialize)]
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
    #[serde(default = "default_arch")]
    pub architecture: String,
    /// OCI platform OS.
    #[serde(default = "default_os")]
    pub os: String,
    /// RFC 3339 creation time; see [`Plan::created_time`].
    #[serde(default)]
    pub created: Option<String>,
    /// mtime of every entry of `files` layers; see [`Plan::mtime`].
    #[serde(default)]
    pub source_date_epoch: Option<u64>,
    /// The unprivileged user.
    #[serde(default)]
    pub user: User,
    /// Allow root, setuid/setgid and world-writable paths.
    #[serde(default)]
    pub allow_root: bool,
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
#[derive(Debug, Clone, Deserialize)]
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

/// The runtime configuration (the `config` object of the OCI image config).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunConfig {
    /// `User`; defaults to `uid:gid` of [`Plan::user`].
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
    pub stop_signal: Option<String>,
    /// Docker's `Healthcheck` extension.
    pub healthcheck: Option<Healthcheck>,
}

/// A container healthcheck (Docker extension to the image config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", ...]` or `["NONE"]`.
    pub test: Vec<String>,
    /// Seconds between checks.
    pub interval_seconds: Option<u64>,
    /// Seconds before a check counts as failed.
    pub timeout_seconds: Option<u64>,
    /// Grace period after start, in seconds.
    pub start_period_seconds: Option<u64>,
    /// Consecutive failures before unhealthy.
    pub retries: Option<u32>,
}

/// One layer of the plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Layer {
    /// A set of files, directories and symlinks.
    Files(FilesLayer),
    /// One model file, uncompressed and read-only.
    Model(ModelLayer),
    /// A blob already built by `ocipack layer`.
    Prebuilt(PrebuiltLayer),
}

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilesLayer {
    /// What the layer holds.
    #[serde(default)]
    pub comment: String,
    /// Blob compression.
    #[serde(default)]
    pub compression: Compression,
    /// Default owner uid.
    #[serde(default)]
    pub uid: u32,
    /// Default owner gid.
    #[serde(default)]
    pub gid: u32,
    /// The entries.
    pub entries: Vec<Entry>,
}

/// One entry of a files layer: a source on disk, an empty directory or a symlink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Entry {
    /// Path on disk (relative paths are relative to the plan's directory).
    pub source: Option<PathBuf>,
    /// Absolute path in the image.
    pub target: String,
    /// Create an empty directory at `target`.
    #[serde(default)]
    pub directory: bool,
    /// Create a symlink at `target` pointing here.
    pub symlink: Option<String>,
    /// Owner uid for everything the entry yields.
    pub uid: Option<u32>,
    /// Owner gid for everything the entry yields.
    pub gid: Option<u32>,
    /// Octal mode string, e.g. `"0755"`.
    pub mode: Option<String>,
}

/// A model layer.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrebuiltLayer {
    /// Directory holding `blob` and `descriptor.json`.
    pub path: PathBuf,
}

/// A standalone layer spec for `ocipack layer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LayerSpec {
    /// Must be [`PLAN_VERSION`].
    pub version: u32,
    /// A files or model layer.
    pub layer: Layer,
    /// mtime for files layers.
    pub source_date_epoch: Option<u64>,
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
        if self.layers.len() + 1 > MAX_LAYERS {
            return Err(err(format!(
                "{} layers plus the base layer exceed the limit of {MAX_LAYERS}; merge layers (see `ocipack layers --max`)",
                self.layers.len()
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
        check_target(&self.user.home).map_err(|m| err(format!("user.home: {m}")))?;
        if !self.allow_root {
            if self.user.uid == 0 || self.user.gid == 0 {
                return Err(err(format!(
                    "user {} has uid/gid {}:{}; root is refused, pick a non-zero id or set allowRoot",
                    self.user.name, self.user.uid, self.user.gid
                )));
            }
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
        Ok(match self.source_date_epoch {
            Some(t) => t,
            None => env_source_date_epoch()?.unwrap_or(1),
        })
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

/// Layer rules that need no file system access.
pub(crate) fn validate_layer(layer: &Layer, allow_root: bool) -> std::result::Result<(), String> {
    match layer {
        Layer::Files(f) => {
            for (j, e) in f.entries.iter().enumerate() {
                let at = |m: String| format!("entry {} ({}): {m}", j + 1, e.target);
                check_target(&e.target).map_err(at)?;
                let kinds = usize::from(e.source.is_some())
                    + usize::from(e.directory)
                    + usize::from(e.symlink.is_some());
                if kinds != 1 {
                    return Err(at(
                        "give exactly one of source, directory: true, or symlink".into(),
                    ));
                }
                if let Some(m) = &e.mode {
                    let mode = parse_mode(m).map_err(at)?;
                    check_mode(mode, &e.target, allow_root).map_err(at)?;
                }
                if e.symlink.as_deref() == Some("") {
                    return Err(at("symlink target is empty".into()));
                }
            }
            Ok(())
        }
        Layer::Model(m) => {
            check_target(&m.target).map_err(|e| format!("model {}: {e}", m.name))?;
            if m.target == "/" {
                return Err(format!("model {}: target must name a file", m.name));
            }
            Ok(())
        }
        Layer::Prebuilt(_) => Ok(()),
    }
}

/// Parses an octal mode string (`"0755"`, `"644"`).
pub(crate) fn parse_mode(m: &str) -> std::result::Result<u32, String> {
    if m.is_empty() || m.len() > 5 || !m.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("mode {m:?} is not an octal string like \"0755\""));
    }
    u32::from_str_radix(m, 8)
        .ok()
        .filter(|v| *v <= 0o7777)
        .ok_or_else(|| format!("mode {m:?} is out of range"))
}

/// The image policy on modes: no setuid/setgid, nothing world-writable outside /tmp.
pub(crate) fn check_mode(
    mode: u32,
    target: &str,
    allow_root: bool,
) -> std::result::Result<(), String> {
    if allow_root {
        return Ok(());
    }
    if mode & 0o6000 != 0 {
        return Err(format!(
            "mode {mode:04o} is setuid/setgid; refused (set allowRoot if you really need it)"
        ));
    }
    if mode & 0o002 != 0 && target != "/tmp" && !target.starts_with("/tmp/") {
        return Err(format!(
            "mode {mode:04o} is world-writable outside /tmp; refused (set allowRoot if you really need it)"
        ));
    }
    Ok(())
}

/// A target must be absolute and normalised.
pub(crate) fn check_target(t: &str) -> std::result::Result<(), String> {
    if !t.starts_with('/') {
        return Err(format!(
            "target {t:?} is relative; targets are absolute paths"
        ));
    }
    if t == "/" {
        return Ok(());
    }
    if t.ends_with('/') || t.contains("//") {
        return Err(format!(
            "target {t:?} is not normalised (no trailing or double /)"
        ));
    }
    if t.split('/').any(|c| c == "." || c == "..") {
        return Err(format!(
            "target {t:?} contains . or ..; give the normalised path"
        ));
    }
    if t.contains('\0') {
        return Err(format!("target {t:?} contains a NUL byte"));
    }
    Ok(())
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

fn valid_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':')
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(1), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn targets() {
        assert!(check_target("/a/b").is_ok());
        for bad in ["a/b", "/a/../b", "/a/./b", "/a//b", "/a/"] {
            assert!(check_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert!(parse_mode("0x55").is_err());
        assert!(check_mode(0o4755, "/a", false).is_err());
        assert!(check_mode(0o0777, "/a", false).is_err());
        assert!(check_mode(0o1777, "/tmp", false).is_ok());
        assert!(check_mode(0o4755, "/a", true).is_ok());
    }

    #[test]
    fn times() {
        assert!(valid_rfc3339("2024-01-02T03:04:05Z"));
        assert!(valid_rfc3339("2024-01-02T03:04:05.123+02:00"));
        assert!(!valid_rfc3339("2024-01-02 03:04:05Z"));
        assert!(!valid_rfc3339("yesterday"));
    }
}
