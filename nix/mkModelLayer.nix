# mkModelLayer: the layer holding one model file at /models/<name>/<file>.
#
# Its only inputs are the model file, the target path and the ocipack binary,
# so every image shipping the same model gets the same layer derivation. It is
# content-addressed by default, so even a new ocipack build that writes the
# same bytes keeps the same output path across revisions.
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
  contentAddressed ? true,
  extraAttrs ? { },
}:
mkLayer {
  name = "model-${name}";
  layer = {
    kind = "model";
    inherit name target;
    source = "${model}";
  };
  inherit contentAddressed extraAttrs;
}
