//! `ocipack sbom --nix-attrs`: the builder of `nix/sbom.nix`. Reads the
//! image layout (`image`), its closure graph (`graph`, from
//! `exportReferencesGraph`), the package metadata nixpkgs gave (`packages`)
//! and optionally the image's models.toml entries (`models`, or a whole
//! `modelsToml` file) from the structured attrs, and
//! writes `$out/sbom.spdx.json`, `$out/sbom.cdx.json` and `$out/oci/` (the
//! artifacts, as in `LAYOUT.attest/`): the same documents
//! `ocipack sbom` writes for host images, from the same code
//! (`ocipack_attest::sbom`), with every store path of the closure a
//! `pkg:nix` component (`ocipack_attest::nix`). No network, no cache: the
//! derivation is the cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ocipack::layout::Layout;
use ocipack_attest::dpkg::Dpkg;
use ocipack_attest::inputs::{Models, SourceMap};
use ocipack_attest::nix::{self, PackageMeta};
use ocipack_attest::sbom;
use serde::Deserialize;

use crate::nix_attrs::Attrs;

pub fn run(json: bool) -> Result<()> {
    let attrs = Attrs::load()?;
    let out = attrs.out()?;
    let origin = attrs.origin.clone();
    let image_dir = PathBuf::from(attrs.get("image")?.as_str().with_context(|| {
        format!("{origin}: attribute \"image\" must be a path (the image layout)")
    })?);
    let name = attrs
        .get("imageName")?
        .as_str()
        .with_context(|| format!("{origin}: attribute \"imageName\" must be a string"))?
        .to_owned();
    let graph = nix::parse_graph(attrs.get("graph")?, &format!("{origin}: graph"))?;
    let packages: Vec<PackageMeta> = match attrs.value.get("packages") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).with_context(|| {
            format!(
                "{origin}: attribute \"packages\" must be a list of {{path, license?, homepage?}}"
            )
        })?,
    };
    // `models`: the image's own entries of models.toml, as parsed by Nix
    // (so a models.toml edit rebuilds only the SBOMs of the images it
    // touches); `modelsToml`: a whole models.toml file.
    let models = match (
        attrs.value.get("models"),
        attrs.value.get("modelsToml").and_then(|v| v.as_str()),
    ) {
        (Some(m), _) if !m.is_null() => Models::deserialize(m).with_context(|| {
            format!("{origin}: attribute \"models\" must have models.toml's shape ({{models = {{NAME = {{sha256, ...}}}}}})")
        })?,
        (_, Some(p)) => Models::load(Path::new(p))?,
        _ => Models::default(),
    };
    let layout = Layout::open(&image_dir)
        .with_context(|| format!("{}: not an image layout", image_dir.display()))?;
    let image = ocipack_attest::inputs::read_image(&layout, None)
        .with_context(|| format!("reading the image in {}", image_dir.display()))?;
    let created = crate::cmd_sbom::created(image.created.as_deref())?;
    let mut s = sbom::build(sbom::Inputs {
        name: &name,
        image,
        created,
        sources: &SourceMap::default(),
        dpkg: &Dpkg::default(),
        models: &models,
        binaries: &BTreeMap::new(),
        npm_lock: None,
    });
    nix::add_closure(&mut s, &graph, &packages)?;
    // $out is an attestation directory like LAYOUT.attest: both documents
    // and the OCI layout of the two SBOM artifacts whose subject is the image.
    let written = crate::cmd_sbom::write_into(&out, &s, true)?;
    crate::cmd_sbom::report(&s, &written, json)
}
