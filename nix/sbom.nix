# sbom: the SBOMs of a Nix-built image, SPDX 2.3 and CycloneDX 1.6, as a
# derivation (cached like the layers: same image and closure, same store
# path, nothing rebuilt).
#
# Runs `ocipack sbom --nix-attrs` (no shell) over the image layout and the
# `exportReferencesGraph` of its contents: every regular file of the image
# with its hashes, every store path of the closure a `pkg:nix` component
# (name and version parsed from the store path's name, its references as
# dependencies), models matched by sha256 against models.toml when given,
# and, for the packages the caller names (by default the image's own
# `contents`, the derivations it was built from), nixpkgs' `meta.license`
# (SPDX ids; `LicenseRef-nixpkgs-<shortName>` for licences without one) and
# `meta.homepage`. Output: $out/sbom.spdx.json and $out/sbom.cdx.json, the
# same documents `ocipack sbom` writes for host images, and $out/oci, the two
# as OCI artifacts whose subject is the image: $out is shaped like
# LAYOUT.attest/, which `ocipack push` attaches (docs/supply-chain.md).
{ ocipack, system }:
{
  # An image from buildImage / imageFromDefinition (a layout; its `contents`
  # attribute is the closure's roots).
  image,
  name ? image.imageName or image.name,
  # Store paths (or derivations) whose closure the image holds.
  contents ? image.contents or (throw "sbom ${name}: the image has no `contents`; pass them"),
  # Derivations whose nixpkgs `meta` goes into the SBOM; each must be in the
  # closure.
  packages ? builtins.filter (p: builtins.isAttrs p && p ? meta) contents,
  # models.toml (path), so model files get their `pkg:pypi` wheel and licence.
  modelsToml ? null,
  # Or only the image's own entries, as parsed by builtins.fromTOML
  # ({ models = { NAME = { ... }; }; }), so that editing another model's entry
  # does not rebuild this SBOM.
  models ? null,
  extraAttrs ? { },
}:
let
  spdxOf =
    l:
    if builtins.isList l then
      let
        ids = map spdxOf l;
      in
      if builtins.length ids == 1 then
        builtins.head ids
      else
        "(${builtins.concatStringsSep " AND " ids})"
    else if builtins.isAttrs l && l ? spdxId then
      l.spdxId
    else if builtins.isAttrs l && l ? shortName then
      "LicenseRef-nixpkgs-${l.shortName}"
    else if builtins.isString l then
      l
    else
      null;
  metaOf =
    p:
    {
      path = "${p}";
    }
    // (if p.meta ? license then { license = spdxOf p.meta.license; } else { })
    // (if builtins.isString (p.meta.homepage or null) then { inherit (p.meta) homepage; } else { });
in
builtins.derivation (
  {
    name = "${name}-sbom";
    inherit system;
    builder = "${ocipack}/bin/ocipack";
    args = [
      "sbom"
      "--nix-attrs"
    ];
    __structuredAttrs = true;
    exportReferencesGraph.graph = contents;
    image = "${image}";
    imageName = name;
    packages = map metaOf packages;
  }
  // (if modelsToml == null then { } else { modelsToml = "${modelsToml}"; })
  // (if models == null then { } else { inherit models; })
  // extraAttrs
)
