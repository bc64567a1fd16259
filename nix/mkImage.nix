# mkImage: assemble prebuilt layers into an OCI image layout.
#
# `ocipack build --nix-attrs` writes the layout to $out with the layer blobs
# symlinked to the layer derivations, so no whole-image tarball ever lands in
# the store and the image derivation itself is small.
{ ocipack, system }:
{
  name,
  # Layer derivations (mkLayer outputs), bottom first.
  layers,
  # The base layer (mkBaseLayer), put below `layers`; null: ocipack
  # generates it inside this derivation instead.
  baseLayer ? null,
  tags ? [ "latest" ],
  # The plan's `config` object (entrypoint, env, healthcheck, ...).
  config ? { },
  annotations ? { },
  # OCI architecture; defaults from `system`.
  architecture ? null,
  # Any other top-level plan fields (user, allowRoot, created, ...).
  planExtra ? { },
  extraAttrs ? { },
}:
let
  archOf = {
    x86_64-linux = "amd64";
    aarch64-linux = "arm64";
  };
  arch =
    if architecture != null then
      architecture
    else
      archOf.${system}
        or (throw "mkImage ${name}: no OCI architecture known for system ${system}; pass `architecture` explicitly");
  plan = {
    version = 1;
    inherit
      name
      tags
      config
      annotations
      ;
    architecture = arch;
    os = "linux";
    layers = map (l: {
      kind = "prebuilt";
      path = "${l}";
    }) allLayers;
  }
  // planExtra
  // (if baseLayer == null then { } else { generateBase = false; });
  allLayers = (if baseLayer == null then [ ] else [ baseLayer ]) ++ layers;
in
builtins.derivation (
  {
    name = "image-${name}";
    inherit system plan;
    builder = "${ocipack}/bin/ocipack";
    args = [
      "build"
      "--nix-attrs"
    ];
    __structuredAttrs = true;
  }
  // extraAttrs
)
// {
  # Kept for tests and apps: the layer derivations of this image, bottom
  # first (the base layer included when given).
  imageLayers = allLayers;
  imageName = name;
  inherit plan;
}
