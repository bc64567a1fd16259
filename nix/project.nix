# project: everything the flake exposes for one system, wired from nixpkgs,
# crane and the library in this directory. Evaluated offline by
# tests/nix-flake (real crane, real nixpkgs lib, stub packages); the image
# library itself is built offline by tests/nix.
{
  nixpkgs,
  crane,
  system,
  # The repository root (a path).
  root,
}:
let
  pkgs = nixpkgs.legacyPackages.${system};
  workspace = import ./workspace.nix {
    inherit pkgs root;
    craneLib = crane.mkLib pkgs;
    testRuntime = {
      assets = assets.dir;
      inherit ortDylib;
    };
  };
  inherit (workspace) packages;
  lib = import ./. {
    inherit system;
    inherit (packages) ocipack;
    inherit (pkgs) busybox;
  };
  manifest = builtins.fromTOML (builtins.readFile (root + "/models.toml"));
  # Models and test photos from models.toml, as fixed-output derivations.
  assets = lib.fetchAssets { list = manifest; };
  inherit (assets) models;
  # nixos-25.11 ships ONNX Runtime 1.22.x; the services need API 17 or newer
  # (ort's `load-dynamic` without the default api features).
  ortDylib = "${pkgs.onnxruntime}/lib/libonnxruntime.so";
  libraryEnv =
    name: path:
    let
      r = manifest.runtimes.${name};
    in
    if r ? library_env then { ${r.library_env} = path; } else { };
  pick =
    kind: set: name:
    set.${name}
      or (throw "images: unknown ${kind} ${name}; known: ${builtins.concatStringsSep ", " (builtins.attrNames set)} (add it to nix/project.nix or fix the definition)");
  resolve = {
    crate = pick "crate" {
      scoring-service = packages.scoring-service;
      face-detection-service = packages.face-detection-service;
      face-embedding-service = packages.face-embedding-service;
      http-probe = packages.http-probe;
    };
    nixpkgs = name: pkgs.${name} or (throw "images: nixpkgs has no attribute ${name}; fix [source] nixpkgs");
    model =
      name:
      let
        model = pick "model" models name;
      in
      {
        inherit model;
        inherit (model) file;
      };
    # The images use nixpkgs' ONNX Runtime, not the wheel's copy that the
    # host builder ships: it is built against the same glibc as the services.
    # The variable that carries the library's path is models.toml's
    # `library_env`, as for the host builder.
    runtime = pick "runtime" {
      onnxruntime = {
        package = pkgs.onnxruntime;
        env = libraryEnv "onnxruntime" ortDylib;
      };
    };
    probe = packages.http-probe;
    cacert = pkgs.cacert;
    inherit root;
    # images/frontend.toml packs `next build` output (web/.next/...): in host
    # mode what the build left in the checkout, here the web package.
    file =
      p:
      if pkgs.lib.hasPrefix "web/.next/" p then
        "${webApp}/${pkgs.lib.removePrefix "web/" p}"
      else
        root + "/${p}";
  };
  webApp = import ./webApp.nix { inherit (pkgs) buildNpmPackage importNpmLock nodejs; } {
    src = root + "/web";
  };
  load =
    rebuildTag:
    lib.loadImages {
      dir = root + "/images";
      inherit resolve rebuildTag;
    };
  images = load null;
  rebuilt = load "second-build";
  # One directory of links, name -> layout, for the apps.
  allImages = pkgs.linkFarm "aurum-images" (
    map (n: {
      name = n;
      path = images.${n};
    }) (builtins.attrNames images)
  );
in
{
  # The crates, plus the models (fixed-output derivations checked against
  # models.toml) and the ONNX Runtime the ML images use.
  packages =
    packages
    // pkgs.lib.mapAttrs' (name: model: pkgs.lib.nameValuePair "model-${name}" model) models
    // {
      inherit (pkgs) onnxruntime;
      inherit webApp;
      test-assets = assets.dir;
    };
  inherit images lib;
  # sboms.<name>: the image's SPDX 2.3 and CycloneDX 1.6 SBOMs from its
  # closure graph (nix/sbom.nix; licence and home page from the meta of the
  # packages the definition names): `nix build .#sboms.scoring`.
  sboms = builtins.mapAttrs (
    _: image:
    lib.sbom {
      inherit image;
      # Only the models this image holds (its model layers are named
      # layer-model-<name>): a models.toml edit rebuilds only their SBOMs.
      models.models = pkgs.lib.filterAttrs (
        n: _: builtins.elem "layer-model-${n}" (map (l: l.name) image.modelLayers)
      ) manifest.models;
    }
  ) images;
  checks =
    workspace.checks
    // builtins.listToAttrs (
      map (n: {
        name = "image-${n}";
        value = lib.verifyImage images.${n};
      }) (builtins.attrNames images)
    )
    // {
      image-scoring-reproducible = lib.checkReproducible {
        name = "scoring";
        a = images.scoring;
        b = rebuilt.scoring;
      };
    };
  # `nix run .#push` / `.#load` (legacyPackages, see flake.nix): packages
  # with a main program, not `apps`, so nothing but running them evaluates
  # the images.
  push = pkgs.writeShellApplication {
    name = "push-images";
    meta.description = "Push every image to a registry with ocipack push (one session)";
    runtimeInputs = [ packages.ocipack ];
    text = ''
      if [ $# -lt 1 ]; then
        echo "usage: nix run .#push -- REGISTRY/PREFIX [ocipack push options]" >&2
        exit 2
      fi
      registry=$1; shift
      exec ocipack push --all ${allImages} "$registry" "$@"
    '';
  };
  load = pkgs.writeShellApplication {
    name = "load-images";
    meta.description = "Load every image into the local Docker daemon (docker-archive stream)";
    runtimeInputs = [
      packages.ocipack
      pkgs.docker-client
    ];
    text = ''
      for layout in ${allImages}/*; do
        name=''${layout##*/}
        echo "loading $name:latest" >&2
        ocipack export "$layout" --docker-archive - --tag "$name:latest" | docker load
      done
    '';
  };
  # The toolchain (from the checks' inputs) and what the tests and scripts
  # call. Inside it the services and tests use nixpkgs' runtime and the
  # Nix-fetched assets; scripts/test.sh remains the Debian host's entry point.
  devShell = workspace.craneLib.devShell {
    checks = workspace.checks;
    ASSETS_DIR = "${assets.dir}";
    ORT_DYLIB_PATH = ortDylib;
    packages = with pkgs; [
      cargo-nextest
      skopeo
      umoci
      runc
      redis
      nginx
      jq
      curl
      zstd
      pigz
      shellcheck
      util-linux
      iproute2
      openssl
      docker
      # the parity tests compare with Python's onnxruntime (same library)
      (python3.withPackages (ps: [
        ps.numpy
        ps.onnxruntime
      ]))
      # the OCI registry (binary `registry`), htpasswd for its tests
      distribution
      apacheHttpd
      # busybox's bin/ would shadow coreutils & co. in the shell: only the
      # one binary the Nix library's tests use.
      (runCommand "busybox-bin" { } "mkdir -p $out/bin; ln -s ${busybox}/bin/busybox $out/bin/")
      nixfmt
    ];
  };
  # nixfmt on the whole tree (`nix fmt`); plain nixfmt takes files only.
  formatter = pkgs.nixfmt-tree;
}
