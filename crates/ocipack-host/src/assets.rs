//! A definition's models and runtimes, resolved against models.toml and
//! verified on disk, so a stale or truncated download never ships.

use std::path::{Path, PathBuf};

use crate::definition::{load_manifest, Definition};
use crate::error::{io, Error, Result};
use crate::plan::Planning;

/// One model or runtime file, found in models.toml and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedAsset {
    /// Its name in models.toml.
    pub name: String,
    /// Its file name.
    pub file: String,
    /// The SONAME of a runtime library (empty for models).
    pub soname: String,
    /// The variable a runtime library's path goes to, if any (models.toml
    /// `library_env`).
    pub library_env: Option<String>,
    /// Where it is on disk.
    pub source: PathBuf,
}

/// The checked models and runtimes of one definition, in definition order.
#[derive(Debug, Default)]
pub(crate) struct Assets {
    pub models: Vec<CheckedAsset>,
    pub runtimes: Vec<CheckedAsset>,
}

/// Resolves the definition's models and runtimes against models.toml
/// (read only if the definition names any) and verifies the files.
pub(crate) fn check_assets(p: &Planning<'_>) -> Result<Assets> {
    let (def, ctx) = (p.def, p.host);
    if def.models.is_empty() && def.runtimes.is_empty() {
        return Ok(Assets::default());
    }
    let manifest = load_manifest(&ctx.manifest)?;
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
    let mut out = Assets::default();
    for name in &def.models {
        let m = manifest
            .models
            .get(name)
            .ok_or_else(|| unknown("model", name, manifest.models.keys().collect()))?;
        check_licence(def, name, &m.license)?;
        let source = ctx.assets_dir.join("models").join(name).join(&m.file);
        verify(&source, m.size, &m.sha256)?;
        out.models.push(CheckedAsset {
            name: name.clone(),
            file: m.file.clone(),
            soname: String::new(),
            library_env: None,
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
            library_env: r.library_env.clone(),
            source,
        });
    }
    Ok(out)
}

/// A model's licence must be named in the image's licences label.
fn check_licence(def: &Definition, model: &str, licence: &str) -> Result<()> {
    let labelled = def
        .labels
        .get("org.opencontainers.image.licenses")
        .map(String::as_str)
        .unwrap_or_default();
    if labelled.contains(licence) {
        return Ok(());
    }
    Err(Error::Definition {
        path: def.path.clone(),
        message: format!(
            "model `{model}` is licensed {licence} but label org.opencontainers.image.licenses \
             (`{labelled}`) does not say so; add it"
        ),
    })
}

/// The file at `path` has `size` bytes and this sha256 (lowercase hex).
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
    // Hashed once per process: the packer hashes the same file again for
    // the layer cache's key and is served from the memo.
    let (digest, _) = ocipack::digest::file_sha256(path, &mut vec![0u8; ocipack::digest::BLOCK])
        .map_err(io(path))?;
    let got = ocipack::digest::hex_of(&digest).unwrap_or_default();
    if got != sha256 {
        return Err(asset(format!(
            "sha256 {got} differs from {sha256} in models.toml"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_checks_size_then_digest() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("m.onnx");
        std::fs::write(&f, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        verify(&f, 3, abc).unwrap();
        let size = verify(&f, 4, abc).unwrap_err().to_string();
        assert!(size.contains("size 3 differs from 4"), "{size}");
        let digest = verify(&f, 3, &"0".repeat(64)).unwrap_err().to_string();
        assert!(
            digest.contains(&format!("sha256 {abc} differs")),
            "{digest}"
        );
        let missing = verify(&t.path().join("none"), 3, abc).unwrap_err();
        assert!(matches!(missing, Error::Asset { .. }), "{missing:?}");
    }
}
