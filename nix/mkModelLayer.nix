# mkModelLayer: the layer holding one model file at /models/<name>/<file>.
#
# Its derivation's only inputs are the ocipack package, the model's
# fixed-output derivation and the target path (plus `extraAttrs`), so every
# image shipping the same model shares one layer derivation, and an edit to
# a service's source changes none of them: packages.ocipack is built from the
# ocipack crates alone (nix/workspace.nix). A new ocipack build (an edit to
# the packer, a new Cargo.lock) does give every model layer a new derivation.
{ mkLayer }:
{
  # Model name (models.toml key), used in the layer name and by `ocipack inspect`.
  name,
  # The model file: a store path, typically from fetchModel.
  model,
  # File name inside the image.
  file,
  # Absolute target path inside the image.
  target ? "/models/${name}/${file}",
  extraAttrs ? { },
}:
mkLayer {
  name = "model-${name}";
  layer = {
    kind = "model";
    inherit name target;
    source = "${model}";
  };
  inherit extraAttrs;
}
