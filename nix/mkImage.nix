# mkImage: assemble prebuilt layers into an OCI image layout.
#
# `ocipack build` writes the layout to $out with the layer blobs symlinked
# to the layer derivations, so no whole-image tarball ever lands in the
# store and the image derivation itself is small. With layer derivations
# only, ocipack is the builder (`--nix-attrs`, no shell). A closure split at
# build time (closureLayers) has a number of layers known only while
# building: its place in `layers` is given by two markers,
# `{ closureLower = drv; }` (every group but the top one) and
# `{ closureTop = drv; }`, and a busybox shell writes the plan's layer list.
{
  ocipack,
  busybox,
  system,
}:
{
  name,
  # Bottom first: layer derivations (mkLayer outputs) and closure markers.
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
  allLayers = (if baseLayer == null then [ ] else [ baseLayer ]) ++ layers;
  isMarker = l: builtins.isAttrs l && (l ? closureLower || l ? closureTop);
  hasClosure = builtins.any isMarker allLayers;
  prebuilt = l: {
    kind = "prebuilt";
    path = "${l}";
  };
  planWith =
    layerList:
    {
      version = 1;
      inherit
        name
        tags
        config
        annotations
        ;
      architecture = arch;
      os = "linux";
      layers = layerList;
    }
    // planExtra
    // (if baseLayer == null then { } else { generateBase = false; });
  # Shell lines appending one layer directory each to $layers.
  addLayer =
    l:
    if l ? closureLower then
      ''
        n=$($bb cat ${l.closureLower}/count)
        i=0
        while [ "$i" -lt $((n - 1)) ]; do add "${l.closureLower}/$i"; i=$((i + 1)); done
      ''
    else if l ? closureTop then
      ''
        n=$($bb cat ${l.closureTop}/count)
        add "${l.closureTop}/$((n - 1))"
      ''
    else
      ''
        add "${l}"
      '';
in
if !hasClosure then
  builtins.derivation (
    {
      name = "image-${name}";
      inherit system;
      plan = planWith (map prebuilt allLayers);
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
    plan = planWith (map prebuilt allLayers);
  }
else
  builtins.derivation (
    {
      name = "image-${name}";
      inherit system;
      # The plan with a placeholder for the layer list.
      planJson = builtins.toJSON (planWith "@AURUM_LAYERS@");
      builder = "${busybox}/bin/busybox";
      args = [
        "sh"
        "-euc"
        ''
          bb=${busybox}/bin/busybox
          layers=""
          add() { layers="$layers''${layers:+,}{\"kind\":\"prebuilt\",\"path\":\"$1\"}"; }
          ${builtins.concatStringsSep "" (map addLayer allLayers)}
          printf '%s' "$planJson" | $bb sed "s|\"@AURUM_LAYERS@\"|[$layers]|" >plan.json
          # No layer cache in a Nix build (nothing of $HOME belongs to it).
          ${ocipack}/bin/ocipack build plan.json -o "$out" --link-blobs --no-cache >/dev/null
        ''
      ];
    }
    // extraAttrs
  )
  // {
    imageLayers = allLayers;
    imageName = name;
    plan = planWith "@AURUM_LAYERS@";
  }
