# workspace: the cargo workspace built with crane: one dependency build for
# the whole workspace, one crane package per binary built from its own crate
# and path dependencies (reusing that dependency build), and the checks
# (clippy, rustfmt, rustdoc, nextest).
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
  # One dependency build for every package and check. crane builds it from a
  # dummy source made of the manifests and Cargo.lock only (mkDummySrc), so
  # an edit to any .rs file leaves its derivation unchanged.
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
  cargoVendorDir = craneLib.vendorCargoDeps { inherit src; };
  # The same dummy source: stand-ins for the members a package does not use.
  dummySrc = craneLib.mkDummySrc { inherit src; };
  cargoToml = dir: builtins.fromTOML (builtins.readFile (root + "/crates/${dir}/Cargo.toml"));
  # A crate's directory plus those of its path dependencies, recursively
  # ([dependencies] and [build-dependencies]; dev-dependencies are only
  # needed by the tests, which build from the whole workspace).
  pathDeps =
    dir:
    let
      toml = cargoToml dir;
      deps = (toml.dependencies or { }) // (toml.build-dependencies or { });
      direct = map (d: baseNameOf d.path) (
        builtins.filter (d: builtins.isAttrs d && d ? path) (builtins.attrValues deps)
      );
    in
    pkgs.lib.unique ([ dir ] ++ pkgs.lib.concatMap pathDeps direct);
  # One binary as its own crane package. Its source holds every manifest
  # and Cargo.lock (cargo loads the whole workspace), the sources of the
  # crate and its path dependencies, and nothing else: the other members get
  # crane's dummy sources at build time. So an edit to one service changes
  # neither ocipack's derivation nor any other binary's, nor any layer built
  # with ocipack. Built with `--workspace --bin <binary>`: cargo compiles only
  # that binary and what it depends on, but unifies dependency features over
  # the whole workspace like the dependency build, so no dependency is
  # compiled again (`-p <crate>` would recompile 25 of scoring-service's;
  # docs/using-the-flake.md).
  crate =
    {
      dir,
      binary ? dir,
    }:
    let
      dirs = pathDeps dir;
      crateSrc = fs.toSource {
        inherit root;
        fileset = fs.unions (
          [
            (root + "/Cargo.toml")
            (root + "/Cargo.lock")
            (craneLib.fileset.cargoTomlAndLock (root + "/crates"))
          ]
          # Tests, benches and examples are not part of a binary.
          ++ map (
            d:
            fs.difference (craneLib.fileset.commonCargoSources (root + "/crates/${d}")) (
              fs.unions (
                map (sub: fs.maybeMissing (root + "/crates/${d}/${sub}")) [
                  "tests"
                  "benches"
                  "examples"
                ]
              )
            )
          ) dirs
        );
      };
    in
    craneLib.buildPackage {
      src = crateSrc;
      pname = binary;
      version =
        let
          v = (cargoToml dir).package.version or null;
        in
        if builtins.isString v then v else "0.1.0";
      inherit cargoArtifacts cargoVendorDir;
      strictDeps = true;
      cargoExtraArgs = "--locked --workspace --bin ${binary}";
      # Stand-ins for the members this package does not use (their
      # manifests are real, so Cargo.lock stays valid under --locked). A
      # member whose src/ is here is real (tests/ and examples/ are left
      # out: cargo then finds no such targets).
      postPatch = ''
        for member in ${dummySrc}/crates/*/; do
          name=$(basename "$member")
          [ -d "crates/$name/src" ] && continue
          (cd "$member" && find . -type f ! -name Cargo.toml) | while read -r f; do
            install -D -m 0644 "$member/$f" "crates/$name/$f"
          done
        done
      '';
      # The workspace tests run once, in checks.nextest.
      doCheck = false;
      meta.mainProgram = binary;
    };
  packages = {
    scoring-service = crate { dir = "scoring-service"; };
    face-detection-service = crate { dir = "face-detection-service"; };
    face-embedding-service = crate { dir = "face-embedding-service"; };
    http-probe = crate { dir = "http-probe"; };
    ocipack = crate {
      dir = "ocipack-cli";
      binary = "ocipack";
    };
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
