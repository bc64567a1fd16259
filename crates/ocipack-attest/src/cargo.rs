//! The Rust crates compiled into a binary of this workspace.
//!
//! Source of truth: `cargo tree -p PKG -e normal --target TRIPLE --offline
//! --locked`, run in the repository at SBOM time. It walks the package's
//! resolved graph from Cargo.lock with cargo's own feature resolver for that
//! package and target, following only normal edges: exactly the crates whose
//! code is linked into `cargo build -p PKG --target TRIPLE`. A plain walk of
//! Cargo.lock would also list dev-dependencies, build scripts' and proc
//! macros' dependencies and other platforms' crates, none of which are in
//! the binary. Checksums (sha256 of the `.crate`) come from Cargo.lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{input, io, Error, Result};

/// One crate linked into a binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Crate {
    /// Crate name.
    pub name: String,
    /// Version.
    pub version: String,
    /// crates.io checksum (sha256 hex) from Cargo.lock; `None` for path crates.
    pub checksum: Option<String>,
    /// Whether it comes from a registry (else a path in this repository).
    pub registry: bool,
}

impl Crate {
    /// `pkg:cargo/NAME@VERSION`.
    pub fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// Cargo.lock's checksums by `(name, version)`.
///
/// # Errors
/// An unreadable or malformed Cargo.lock.
pub fn lock_checksums(lock: &Path) -> Result<BTreeMap<(String, String), Option<String>>> {
    let text = std::fs::read_to_string(lock).map_err(io(lock))?;
    let l: Lock = toml::from_str(&text)
        .map_err(|e| input(lock.display().to_string(), format!("not a Cargo.lock: {e}")))?;
    Ok(l.package
        .into_iter()
        .map(|p| {
            let cs = p.checksum.filter(|_| p.source.is_some());
            ((p.name, p.version), cs)
        })
        .collect())
}

/// The binary targets of the workspace at `repo`, bin name -> package name
/// (`cargo metadata --no-deps --offline`).
///
/// # Errors
/// cargo missing or failing.
pub fn workspace_binaries(repo: &Path) -> Result<BTreeMap<String, String>> {
    let out = run(
        repo,
        &[
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ],
    )?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| Error::Tool {
        command: "cargo metadata".into(),
        message: format!("unexpected output: {e}"),
    })?;
    let mut bins = BTreeMap::new();
    for p in v["packages"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        for t in p["targets"].as_array().into_iter().flatten() {
            let is_bin = t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            if is_bin {
                if let Some(b) = t["name"].as_str() {
                    bins.insert(b.to_owned(), name.to_owned());
                }
            }
        }
    }
    Ok(bins)
}

/// The crates linked into package `package` built for `target` (see the
/// module doc), the package itself included, sorted.
///
/// # Errors
/// cargo missing or failing, or an unreadable Cargo.lock.
pub fn linked_crates(repo: &Path, package: &str, target: &str) -> Result<Vec<Crate>> {
    let out = run(
        repo,
        &[
            "tree",
            "-p",
            package,
            "-e",
            "normal",
            "--target",
            target,
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--offline",
            "--locked",
        ],
    )?;
    let sums = lock_checksums(&repo.join("Cargo.lock"))?;
    let mut set = BTreeSet::new();
    for line in out.lines() {
        let line = line.trim().trim_end_matches(" (*)");
        let mut parts = line.splitn(3, ' ');
        let (Some(name), Some(v)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(version) = v.strip_prefix('v') else {
            continue;
        };
        let registry = parts.next().is_none();
        let checksum = sums
            .get(&(name.to_owned(), version.to_owned()))
            .cloned()
            .flatten();
        set.insert(Crate {
            name: name.to_owned(),
            version: version.to_owned(),
            checksum,
            registry,
        });
    }
    if set.is_empty() {
        return Err(Error::Tool {
            command: format!("cargo tree -p {package}"),
            message: "listed no crate".into(),
        });
    }
    Ok(set.into_iter().collect())
}

fn run(repo: &Path, args: &[&str]) -> Result<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let command = format!("cargo {}", args.join(" "));
    let out = Command::new(cargo)
        .args(args)
        .current_dir(repo)
        .output()
        .map_err(|e| Error::Tool {
            command: command.clone(),
            message: format!("cannot run cargo: {e}"),
        })?;
    if !out.status.success() {
        return Err(Error::Tool {
            command,
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| Error::Tool {
        command,
        message: "output is not UTF-8".into(),
    })
}

/// The Rust target triple for an OCI architecture.
pub fn target_triple(oci_arch: &str) -> Option<&'static str> {
    match oci_arch {
        "amd64" => Some("x86_64-unknown-linux-gnu"),
        "arm64" => Some("aarch64-unknown-linux-gnu"),
        _ => None,
    }
}
