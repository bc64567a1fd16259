# workspace: the cargo workspace built with crane: one dependency build for
# the whole workspace, one build of every binary reusing its artifacts, one
# content-addressed package per binary, and the checks (clippy, rustfmt,
# rustdoc, nextest).
{
  pkgs,
  craneLib,
  # The repository root (a path).
  root,
  # What the tests find at run time: { assets = ASSETS_DIR; ortDylib = the
  # ONNX Runtime library to load; }.
  testRuntime,
}:
let
  fs = pkgs.lib.fileset;
  # Only what cargo reads: the root manifest and lock, and crates/ (nothing
  # but .rs and .toml files). Not cleanCargoSource on the root, which keeps
  # every .toml file: an edit to images/*.toml or models.toml would then
  # rebuild every crate and change every binary's store path.
  cargoFiles = fs.unions [
    (root + "/Cargo.toml")
    (root + "/Cargo.lock")
    (craneLib.fileset.commonCargoSources (root + "/crates"))
  ];
  src = fs.toSource {
    inherit root;
    fileset = cargoFiles;
  };
  # The tests also read the files listed in .config/nix-test-sources (the
  # same list tests/nix/nextest-sandbox.sh builds the tests from).
  testFiles =
    let
      lines = pkgs.lib.splitString "\n" (builtins.readFile (root + "/.config/nix-test-sources"));
      wanted = builtins.filter (l: l != "" && builtins.substring 0 1 l != "#") lines;
    in
    map (l: root + "/${l}") wanted;
  testSrc = fs.toSource {
    inherit root;
    fileset = fs.unions ([ cargoFiles ] ++ testFiles);
  };
  commonArgs = {
    inherit src;
    # The workspace root has no [package]; name the shared derivations.
    pname = "aurum-circle";
    version = "0.1.0";
    strictDeps = true;
  };
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
  # Every binary in one build, with the same workspace-wide feature
  # unification as the dependency build, so no dependency is compiled twice
  # (`-p one-crate` builds would unify features per crate and rebuild many).
  binaries = craneLib.buildPackage (
    commonArgs
    // {
      inherit cargoArtifacts;
      pname = "aurum-circle-binaries";
      cargoExtraArgs = "--locked --workspace";
      # The workspace tests run once, in checks.nextest.
      doCheck = false;
    }
  );
  # Each package is its binary copied out of that build, content-addressed:
  # an edit to one service rebuilds `binaries`, but every other binary comes
  # out byte-identical, so its store path, and so every layer and image
  # built from it, stays the same (nothing rebuilt, nothing re-pushed).
  crate =
    binary:
    pkgs.runCommand binary
      {
        __contentAddressed = true;
        meta.mainProgram = binary;
      }
      ''
        mkdir -p $out/bin
        cp ${binaries}/bin/${binary} $out/bin/${binary}
      '';
  packages = {
    scoring-service = crate "scoring-service";
    face-detection-service = crate "face-detection-service";
    face-embedding-service = crate "face-embedding-service";
    http-probe = crate "http-probe";
    ocipack = crate "ocipack";
  };
in
{
  inherit packages craneLib;
  checks = {
    clippy = craneLib.cargoClippy (
      commonArgs
      // {
        inherit cargoArtifacts;
        # A check: nothing chains on its target/, so do not store it.
        doInstallCargoArtifacts = false;
        cargoClippyExtraArgs = "--all-targets -- --deny warnings";
      }
    );
    fmt = craneLib.cargoFmt { inherit (commonArgs) src pname version; };
    doc = craneLib.cargoDoc (
      commonArgs
      // {
        inherit cargoArtifacts;
        doInstallCargoArtifacts = false;
        env.RUSTDOCFLAGS = "--deny warnings";
      }
    );
    # The `nix` nextest profile (.config/nextest.toml): every test that can
    # run in the build sandbox, with the real models (fixed-output
    # derivations), nixpkgs' ONNX Runtime and a real redis-server. The tests
    # that need root, the host's Debian tools or a registry run in .ci/run.
    # tests/nix/nextest-sandbox.sh runs this same profile on the host the way
    # the sandbox would.
    nextest = craneLib.cargoNextest (
      commonArgs
      // {
        inherit cargoArtifacts;
        src = testSrc;
        doInstallCargoArtifacts = false;
        cargoExtraArgs = "--locked";
        # An empty selection means a broken filter, not a pass.
        cargoNextestExtraArgs = "--profile nix --no-tests=fail";
        nativeBuildInputs = [ pkgs.redis ];
        env = {
          ASSETS_DIR = "${testRuntime.assets}";
          ORT_DYLIB_PATH = testRuntime.ortDylib;
        };
      }
    );
  };
}
