# mkLayer: one image layer as one derivation.
#
# The output is what `ocipack layer --nix-attrs` writes: `$out/blob` (the
# final, compressed layer) and `$out/descriptor.json`. Because a layer is its
# own derivation, a binary cache can substitute it and an unchanged layer is
# never rebuilt. Only `builtins.derivation` and the ocipack binary are used:
# no shell, no stdenv.
{ ocipack, system }:
{
  # Store-path-safe name; becomes `layer-<name>`.
  name,
  # A `files`, `model` or `base` layer object of the layer spec format
  # (docs/plan-format.md).
  layer,
  # mtime of every entry of a `files` layer.
  sourceDateEpoch ? 1,
  # Extra derivation attributes, e.g. a salt for independent rebuilds.
  extraAttrs ? { },
}:
builtins.derivation (
  {
    name = "layer-${name}";
    inherit system;
    builder = "${ocipack}/bin/ocipack";
    args = [
      "layer"
      "--nix-attrs"
    ];
    __structuredAttrs = true;
    layerSpec = {
      version = 1;
      inherit layer sourceDateEpoch;
    };
  }
  // extraAttrs
)
