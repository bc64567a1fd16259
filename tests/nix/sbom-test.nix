# nix/sbom.nix over the offline fixtures (tests/nix/sbom.sh builds it).
#
# `toolsDir` is run.sh's tools directory; taken into the store as the test
# flake takes its `hostTools` input (a path named "source"), so the fixture
# images here are the very derivations run.sh built: nothing is rebuilt but
# the SBOMs.
{
  toolsDir,
  system ? "x86_64-linux",
}:
let
  tools = builtins.path {
    path = toolsDir;
    name = "source";
  };
  tests = import ./default.nix { inherit system tools; };
  lib = import ../../nix {
    inherit system;
    ocipack = tests.ocipackPkg;
    busybox = tools;
  };
  inherit (tests) fixtures;
  image = tests.images.app-v1;
  # nixpkgs-style metadata on two packages of the closure: the application
  # (an SPDX id and a home page) and a library (a list of licences, one of
  # them without an SPDX id).
  packages = [
    (
      fixtures.appV1
      // {
        meta = {
          license = {
            spdxId = "MIT";
            shortName = "mit";
          };
          homepage = "https://example.org/fixture-app";
        };
      }
    )
    (
      fixtures.libB
      // {
        meta.license = [
          { spdxId = "Apache-2.0"; }
          { shortName = "fixture-unfree"; }
        ];
      }
    )
  ];
  sbomWith =
    extraAttrs:
    lib.sbom {
      inherit image packages extraAttrs;
      modelsToml = ../../models.toml;
    };
in
{
  inherit image;
  sbom = sbomWith { };
  # The same SBOM from another derivation (salted, and given models.toml's
  # entries parsed by Nix instead of the file): must be the same bytes.
  again = lib.sbom {
    inherit image packages;
    extraAttrs.rebuildTag = "sbom-second-build";
    models.models = (builtins.fromTOML (builtins.readFile ../../models.toml)).models;
  };
  # The closure's roots, for the test to list the closure itself.
  roots = map toString image.contents;
  # A package that is not in the image: refused, naming it.
  stray = lib.sbom {
    inherit image;
    packages = [ (fixtures.other // { meta.license.spdxId = "MIT"; }) ];
  };
}
