//! SLSA v1 provenance as an in-toto v1 statement, signed in a DSSE envelope.
//!
//! No clock: the statement records no start or finish time (SLSA makes them
//! optional), so the same inputs and key give the same bytes.

use serde_json::{json, Value};

use crate::inputs::Models;
use crate::sbom::{Kind, Sbom};

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance predicate type.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Our build type.
pub const BUILD_TYPE: &str = "https://aurum-circle.invalid/ocipack/host-build/v1";

/// What the provenance names besides the SBOM.
pub struct BuildInfo<'a> {
    /// Git commit of the repository (`None` outside git).
    pub git_revision: Option<&'a str>,
    /// Whether the work tree had uncommitted changes.
    pub git_dirty: bool,
    /// sha256 hex of Cargo.lock.
    pub cargo_lock_sha256: &'a str,
    /// sha256 hex of flake.lock, when the build used Nix.
    pub flake_lock_sha256: Option<&'a str>,
    /// models.toml.
    pub models: &'a Models,
    /// The image definition (repository-relative path).
    pub definition: &'a str,
    /// The command that built the image.
    pub command: &'a [String],
}

/// The in-toto statement for `sbom`'s image.
pub fn statement(sbom: &Sbom, b: &BuildInfo<'_>) -> Value {
    let hex = sbom
        .image
        .manifest
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(&sbom.image.manifest.digest);
    let mut deps = Vec::new();
    if let Some(rev) = b.git_revision {
        deps.push(json!({"uri": "git+https://example.invalid/aurum-circle/images", "digest": {"gitCommit": rev},
                         "annotations": {"dirty": b.git_dirty}}));
    }
    deps.push(json!({"name": "Cargo.lock", "digest": {"sha256": b.cargo_lock_sha256}}));
    if let Some(f) = b.flake_lock_sha256 {
        deps.push(json!({"name": "flake.lock", "digest": {"sha256": f}}));
    }
    for (kind, name, a) in b.models.assets() {
        // Only what this image holds.
        if !sbom
            .components
            .values()
            .any(|c| c.kind == Kind::Pypi && &c.name == name)
        {
            continue;
        }
        deps.push(
            json!({"name": format!("{kind}:{name}"), "uri": a.source.wheel_url,
                         "digest": {"sha256": a.source.wheel_sha256},
                         "annotations": {"member": a.source.member, "memberSha256": a.sha256}}),
        );
    }
    for c in sbom.components.values().filter(|c| c.kind == Kind::Deb) {
        deps.push(json!({"name": c.name, "uri": c.purl}));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": sbom.name, "digest": {"sha256": hex}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"definition": b.definition, "command": b.command},
                "internalParameters": {"created": sbom.created},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": format!("https://aurum-circle.invalid/{}", crate::sbom::TOOL)},
                "metadata": {"invocationId": format!("{}@{}", sbom.name, sbom.image.manifest.digest)},
            },
        },
    })
}
