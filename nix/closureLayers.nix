# closureLayers: one layer derivation per group of a closure.
#
# The grouping is only known after `ocipack layers` has seen the reference
# graph, so it is read back with import-from-derivation. Each path then gets
# its context rebuilt one by one (`unsafeDiscardStringContext` +
# `appendContext`): a layer derivation depends only on the store paths it
# packs, never on the whole application, so an unchanged group keeps its
# derivation and is not rebuilt. `builtins.storePath` would do the same but is
# refused in pure evaluation; `appendContext` is not.
{ mkLayer, layerAssignment }:
{
  name,
  contents,
  roots ? [ ],
  maxLayers ? 100,
  sourceDateEpoch ? 1,
  compression ? "gzip",
  # Plan entries added to the top layer (links to the roots, directories), so
  # everything that changes with the application sits in one layer.
  topEntries ? [ ],
  extraAttrs ? { },
}:
let
  assignment = layerAssignment {
    inherit
      name
      contents
      roots
      maxLayers
      extraAttrs
      ;
  };
  # The file holds store paths, so readFile returns a string with context;
  # fromJSON refuses that and the context would drag the whole closure into
  # every layer anyway.
  parsed = builtins.fromJSON (builtins.unsafeDiscardStringContext (builtins.readFile assignment));
  groups =
    if (parsed.version or null) == 1 && parsed ? layers then
      parsed.layers
    else
      throw "closureLayers ${name}: ${assignment} is not a version 1 layer assignment; rebuild ocipack or update nix/closureLayers.nix to its format";
  withContext =
    p:
    let
      plain = builtins.unsafeDiscardStringContext p;
    in
    builtins.appendContext plain { ${plain} = { path = true; }; };
  # "/nix/store/<32-char hash>-glibc-2.40" -> "glibc-2.40"
  pathName = p: builtins.substring 33 (-1) (baseNameOf p);
  names = paths: map pathName paths;
  # Named and commented by content only, never by image, so two images with
  # the same group share the derivation.
  layerName =
    paths:
    let
      n = builtins.length paths;
    in
    pathName (builtins.head paths) + (if n > 1 then "-and-${toString (n - 1)}-more" else "");
  comment =
    paths:
    let
      shown = names (if builtins.length paths > 8 then builtins.genList (builtins.elemAt paths) 8 else paths);
      more = builtins.length paths - builtins.length shown;
    in
    "store paths: "
    + builtins.concatStringsSep ", " shown
    + (if more > 0 then " and ${toString more} more" else "");
  count = builtins.length groups;
  mkGroup =
    index: group:
    let
      paths = builtins.sort builtins.lessThan group.paths;
      isTop = index == count - 1;
    in
    mkLayer {
      name = layerName paths;
      inherit sourceDateEpoch extraAttrs;
      layer = {
        kind = "files";
        comment = comment paths;
        inherit compression;
        entries =
          map (p: {
            source = withContext p;
            target = builtins.unsafeDiscardStringContext p;
          }) paths
          ++ (if isTop then topEntries else [ ]);
      };
    };
in
{
  inherit assignment;
  # Layer derivations, bottom first; the last one holds the roots.
  layers = builtins.genList (i: mkGroup i (builtins.elemAt groups i)) count;
}
