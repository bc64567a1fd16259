# buildImage: a whole image from a closure, models and a few extra entries.
#
# Layer order, least volatile first: the closure's lower groups (system and
# runtime libraries), one layer per model, then the closure's top group (the
# application) together with `entries` (symlinks into the store, writable
# directories, extra files), so a new application build changes exactly one
# layer's bytes. Below all of them, the base layer for the plan's user
# (mkBaseLayer). Base and model layers are derivations of their own, shared
# by every image with that user or model; the closure is split and packed at
# build time in one derivation (closureLayers), with no
# import-from-derivation.
{
  mkImage,
  mkLayer,
  mkModelLayer,
  mkBaseLayer,
  closureLayers,
}:
{
  name,
  # Store paths (or derivations) whose closure is packed, split into layers.
  contents ? [ ],
  # Paths forming the top closure layer; ocipack's default if empty.
  roots ? [ ],
  # [ { name, model, file, target? } ]: one layer derivation each.
  models ? [ ],
  # Plan `files` entries ({target, symlink} etc.), packed with the top
  # closure group (or as a layer of their own without `contents`).
  entries ? [ ],
  tags ? [ "latest" ],
  config ? { },
  annotations ? { },
  planExtra ? { },
  # Upper bound on closure layers; lowered so the image stays within 127.
  maxLayers ? 100,
  sourceDateEpoch ? 1,
  # Any string: a salt that makes every derivation of this image distinct,
  # for checks that must rebuild from scratch.
  rebuildTag ? null,
}:
let
  extraAttrs = if rebuildTag == null then { } else { inherit rebuildTag; };
  modelLayers = map (m: mkModelLayer (m // { inherit extraAttrs; })) models;
  baseLayer = mkBaseLayer {
    user = planExtra.user or { };
    allowRoot = planExtra.allowRoot or false;
    inherit extraAttrs;
  };
  entriesLayers =
    if entries == [ ] || contents != [ ] then
      [ ]
    else
      [
        (mkLayer {
          name = "${name}-entries";
          inherit sourceDateEpoch extraAttrs;
          layer = {
            kind = "files";
            comment = "${name}: links, directories and extra files";
            inherit entries;
          };
        })
      ];
  # 127 layers at most, the base layer included.
  budget = 126 - builtins.length modelLayers - builtins.length entriesLayers;
  closureMax =
    if budget < 1 then
      throw "buildImage ${name}: ${toString (builtins.length models)} models leave no room for the closure within 127 layers; ship fewer models per image"
    else if maxLayers < budget then
      maxLayers
    else
      budget;
  closure =
    if contents == [ ] then
      null
    else
      closureLayers {
        inherit
          name
          contents
          roots
          sourceDateEpoch
          extraAttrs
          ;
        topEntries = entries;
        maxLayers = closureMax;
      };
  lower = if closure == null then [ ] else [ { closureLower = closure; } ];
  top = if closure == null then [ ] else [ { closureTop = closure; } ];
in
mkImage {
  inherit
    name
    tags
    config
    annotations
    planExtra
    extraAttrs
    baseLayer
    ;
  layers = lower ++ modelLayers ++ top ++ entriesLayers;
}
// {
  inherit modelLayers baseLayer;
  # The closure's roots, for nix/sbom.nix.
  inherit contents;
  # The closure derivation ($out/<i>/blob, $out/count, $out/layers.json), or null.
  closureLayers = closure;
}
