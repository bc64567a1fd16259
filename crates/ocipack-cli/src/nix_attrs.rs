//! Nix builder mode: read inputs from the structured-attrs file.
//!
//! A derivation made with `builtins.derivation { __structuredAttrs = true; ... }`
//! has no shell to unpack its attributes; Nix writes them as JSON to
//! `$NIX_ATTRS_JSON_FILE` (newer Nix) or `.attrs.json` in the build directory
//! (Nix 2.8), and `outputs.out` names the output path.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

/// The parsed attrs and where they came from.
pub struct Attrs {
    /// The whole attrs object.
    pub value: Value,
    /// Its file, for messages.
    pub origin: String,
}

impl Attrs {
    /// Loads the attrs file.
    pub fn load() -> Result<Attrs> {
        // Nix 2.8 in a sandbox sets NIX_ATTRS_JSON_FILE to the path outside
        // the sandbox; the file is then only reachable as ./.attrs.json.
        let path = std::env::var_os("NIX_ATTRS_JSON_FILE")
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from(".attrs.json"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read the structured attrs; --nix-attrs only works inside a derivation with __structuredAttrs = true", path.display()))?;
        let value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        Ok(Attrs {
            value,
            origin: path.display().to_string(),
        })
    }

    /// A required attribute.
    pub fn get(&self, key: &str) -> Result<&Value> {
        self.value.get(key).ok_or_else(|| {
            anyhow!(
                "{}: attribute {key:?} is missing; set it in the derivation",
                self.origin
            )
        })
    }

    /// The `out` output path.
    pub fn out(&self) -> Result<PathBuf> {
        self.value
            .pointer("/outputs/out")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("{}: outputs.out is missing", self.origin))
    }
}
