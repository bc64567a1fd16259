# imageIndex: one OCI layout holding an image index that combines the same
# image built for several systems (issue 16, docs/multi-arch.md).
#
#   imageIndex { name = "scoring"; images = [ x86_64Image aarch64Image ]; }
#
# `ocipack index --nix-attrs` reads `layouts` (the image layouts, one per
# platform) and writes the combined layout to $out: the platform of each
# child comes from its image config, children sorted by (os, architecture,
# variant), shared blobs (the models) stored once. The derivation runs on
# `system`; its inputs are the other systems' images, so building it needs
# those systems too (a remote builder, or binfmt emulation with
# `extra-platforms`); evaluating it needs nothing.
{ ocipack, system }:
{
  name,
  images,
}:
builtins.derivation {
  name = "image-index-${name}";
  inherit system;
  builder = "${ocipack}/bin/ocipack";
  args = [
    "index"
    "--nix-attrs"
  ];
  layouts = map (i: "${i}") images;
  __structuredAttrs = true;
}
// {
  inherit images;
}
