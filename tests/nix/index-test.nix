# nix/imageIndex.nix built over the offline fixtures (tests/nix/index.sh).
#
# The fixture image app-v1 for x86_64-linux (the very derivation run.sh
# built: `x86Tools` is run.sh's tools directory, taken into the store as the
# test flake takes its `hostTools` input) and the same definition for
# aarch64-linux, its fixture closure built by Debian's arm64 busybox-static
# (`armTools`) under qemu-user (binfmt_misc, F flag; Nix's
# `extra-platforms = aarch64-linux`). Both tools directories hold the same
# x86-64 static ocipack: it only packs files, so it is the builder of the
# aarch64-linux layer, image and index derivations here (under emulation on
# an x86-64 machine; a real aarch64 builder would need an aarch64 ocipack, as
# the flake's packages.aarch64-linux.ocipack is).
{
  x86Tools,
  armTools,
}:
let
  store =
    dir:
    builtins.path {
      path = dir;
      name = "source";
    };
  x86 = import ./default.nix {
    system = "x86_64-linux";
    tools = store x86Tools;
  };
  arm = import ./default.nix {
    system = "aarch64-linux";
    tools = store armTools;
  };
  imageIndex = import ../../nix/imageIndex.nix {
    system = "x86_64-linux";
    ocipack = x86.ocipackPkg;
  };
in
{
  x86Image = x86.images.app-v1;
  armImage = arm.images.app-v1;
  index = imageIndex {
    name = "app-v1";
    images = [
      x86.images.app-v1
      arm.images.app-v1
    ];
  };
  # Another derivation of the same index (the images in the other order):
  # the children are sorted by platform, so the same bytes.
  reversed = imageIndex {
    name = "app-v1";
    images = [
      arm.images.app-v1
      x86.images.app-v1
    ];
  };
  # What the arm64 busybox sees in the sandbox: `uname -m` under qemu-user.
  armUname = builtins.derivation {
    name = "fixture-uname";
    system = "aarch64-linux";
    builder = "${store armTools}/bin/busybox";
    args = [
      "sh"
      "-euc"
      "busybox uname -m > $out"
    ];
  };
}
