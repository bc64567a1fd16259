# The Nix library of the image pipeline: one public function per file.
#
# Dependencies first: `ocipack` is a package (or directory) with
# bin/ocipack, `busybox` one with bin/busybox (the shell of fetchModel,
# fetchAssets, checkReproducible, and of the closure split and the image
# assembly of buildImage; mkLayer, mkBaseLayer and mkModelLayer run ocipack
# alone). No nixpkgs needed, so the offline tests in tests/nix use exactly
# this code.
{
  ocipack,
  system,
  busybox ? null,
}:
let
  needBusybox =
    what:
    if busybox == null then
      throw "nix library: ${what} needs `busybox` (a package with bin/busybox); pass it to nix/default.nix"
    else
      busybox;
  lib = {
    mkLayer = import ./mkLayer.nix { inherit ocipack system; };
    mkModelLayer = import ./mkModelLayer.nix { inherit (lib) mkLayer; };
    mkBaseLayer = import ./mkBaseLayer.nix { inherit (lib) mkLayer; };
    layerAssignment = import ./layerAssignment.nix { inherit ocipack system; };
    closureLayers = import ./closureLayers.nix {
      inherit ocipack system;
      busybox = needBusybox "closureLayers";
    };
    mkImage = import ./mkImage.nix {
      inherit ocipack system;
      busybox = needBusybox "mkImage with a closure";
    };
    buildImage = import ./buildImage.nix {
      inherit (lib)
        mkImage
        mkLayer
        mkModelLayer
        mkBaseLayer
        closureLayers
        ;
    };
    imageFromDefinition = import ./imageFromDefinition.nix { inherit (lib) buildImage; };
    loadImages = import ./loadImages.nix { inherit (lib) imageFromDefinition; };
    verifyImage = import ./verifyImage.nix { inherit ocipack system; };
    sbom = import ./sbom.nix { inherit ocipack system; };
    checkReproducible = import ./checkReproducible.nix {
      inherit system;
      busybox = needBusybox "checkReproducible";
    };
    fetchModel = import ./fetchModel.nix {
      inherit system;
      busybox = needBusybox "fetchModel";
    };
    fetchAssets = import ./fetchAssets.nix {
      inherit system;
      inherit (lib) fetchModel;
      busybox = needBusybox "fetchAssets";
    };
  };
in
lib
