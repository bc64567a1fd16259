# verifyImage: a check derivation running `ocipack verify` on an image layout.
#
# Succeeds (and writes ocipack's report to $out) only if the layout is valid:
# every blob matches its digest and size, configs and manifests parse.
{ ocipack, system }:
image:
builtins.derivation {
  name = "verify-${image.imageName or image.name}";
  inherit system;
  builder = "${ocipack}/bin/ocipack";
  args = [
    "verify"
    "--nix-attrs"
  ];
  __structuredAttrs = true;
  image = "${image}";
}
