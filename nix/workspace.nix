# workspace: the cargo workspace built with crane: one dependency build for
# the whole workspace, each package reusing its artifacts, and the checks
# (clippy, rustfmt, rustdoc, nextest).
{
  pkgs,
  craneLib,
  # The repository root (a path).
  root,
}:
let
  fs = pkgs.lib.fileset;
  # Only what cargo reads, so a README or Nix edit rebuilds nothing.
  src = craneLib.cleanCargoSource root;
  # The tests also read fixtures and the definitions they check.
  testSrc = fs.toSource {
    inherit root;
    fileset = fs.unions [
      (craneLib.fileset.commonCargoSources root)
      (fs.maybeMissing (root + "/tests/data"))
      (fs.maybeMissing (root + "/docs/plan.schema.json"))
      (fs.maybeMissing (root + "/images"))
      (fs.maybeMissing (root + "/models.toml"))
    ];
  };
  commonArgs = {
    inherit src;
    # The workspace root has no [package]; name the shared derivations.
    pname = "aurum-circle";
    version = "0.1.0";
    strictDeps = true;
  };
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
  crate =
    pname: cargoPackage: binary:
    craneLib.buildPackage (
      commonArgs
      // {
        inherit pname cargoArtifacts;
        cargoExtraArgs = "--locked -p ${cargoPackage}";
        # The workspace tests run once, in checks.nextest.
        doCheck = false;
        meta.mainProgram = binary;
      }
    );
  packages = {
    scoring-service = crate "scoring-service" "scoring-service" "scoring-service";
    face-detection-service = crate "face-detection-service" "face-detection-service" "face-detection-service";
    face-embedding-service = crate "face-embedding-service" "face-embedding-service" "face-embedding-service";
    http-probe = crate "http-probe" "http-probe" "http-probe";
    # Content-addressed: editing a service crate changes the workspace
    # source and so rebuilds this derivation, but the binary comes out
    # byte-identical, so its store path stays the same and no layer
    # derivation (each runs ocipack) has to be rebuilt.
    ocipack = (crate "ocipack" "ocipack-cli" "ocipack").overrideAttrs (_: {
      __contentAddressed = true;
      outputHashMode = "recursive";
      outputHashAlgo = "sha256";
    });
  };
in
{
  inherit packages craneLib;
  checks = {
    clippy = craneLib.cargoClippy (
      commonArgs
      // {
        inherit cargoArtifacts;
        cargoClippyExtraArgs = "--all-targets -- --deny warnings";
      }
    );
    fmt = craneLib.cargoFmt { inherit src; };
    doc = craneLib.cargoDoc (
      commonArgs
      // {
        inherit cargoArtifacts;
        env.RUSTDOCFLAGS = "--deny warnings";
      }
    );
    nextest = craneLib.cargoNextest (
      commonArgs
      // {
        inherit cargoArtifacts;
        src = testSrc;
        partitions = 1;
        partitionType = "count";
        cargoNextestPartitionsExtraArgs = "--no-tests=pass";
        # Tests that start real components find them on PATH.
        nativeBuildInputs = with pkgs; [
          skopeo
          umoci
          redis
        ];
      }
    );
  };
}
