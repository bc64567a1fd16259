//! Supply-chain evidence for the images ocipack builds: SBOMs from the exact
//! inputs (SPDX 2.3 and CycloneDX 1.6), cosign-compatible signatures, SLSA
//! v1 provenance in a DSSE envelope, and the OCI artifacts that carry them
//! (`docs/supply-chain.md`).
//!
//! Depends on `ocipack` (the one layout reader) and on no CLI or HTTP crate:
//! nothing here talks to a registry.

pub mod artifact;
pub mod cache;
pub mod cargo;
pub mod dpkg;
pub mod error;
pub mod inputs;
pub mod nix;
pub mod provenance;
pub mod sbom;
pub mod sign;

pub use error::{Error, Result};

/// Canonical bytes of a JSON document (sorted keys, compact), plus a newline
/// for the SBOM files: the same value always gives the same bytes.
pub fn canonical_json(v: &serde_json::Value) -> Vec<u8> {
    ocipack::json::canonical(v)
}
