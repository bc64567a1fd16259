# layerAssignment: split a closure into layer groups at build time.
#
# Runs `ocipack layers --nix-attrs` over the `exportReferencesGraph` of
# `contents`. The output is a JSON file {"version":1,"layers":[{"paths":[...]}]}
# listing the groups bottom first. buildImage does not use it (closureLayers
# splits at build time); it is there to inspect a closure's grouping:
# `nix build` it and read the file.
{ ocipack, system }:
{
  name,
  # Store paths (or derivations) whose closure goes into the image.
  contents,
  # Paths forming the top layer; ocipack's default (unreferenced paths) if empty.
  roots ? [ ],
  # Upper bound on the number of groups.
  maxLayers ? 100,
  extraAttrs ? { },
}:
builtins.derivation (
  {
    name = "${name}-layers.json";
    inherit system maxLayers;
    builder = "${ocipack}/bin/ocipack";
    args = [
      "layers"
      "--nix-attrs"
    ];
    __structuredAttrs = true;
    exportReferencesGraph.graph = contents;
  }
  // (if roots == [ ] then { } else { roots = map toString roots; })
  // extraAttrs
)
