# A stand-in for `nixpkgs.legacyPackages.<system>`: every attribute the
# repository's flake (and crane v0.23.4) touches, with the real names and
# output layouts, each a small derivation a static busybox builds offline.
#
# What is real: `lib` (nixpkgs' own, 25.11). What is not: the packages
# (files with the real names, not the programs), stdenv.mkDerivation (a
# derivation with the same attributes whose builder runs `buildCommand`
# only: crane's cargo derivations evaluate to a drvPath but do not build
# here) and the toolchain.
{
  lib,
  system,
  # A static busybox (a path); every stub is built by it.
  busyboxFile,
}:
let
  bb = busyboxFile;
  platform = {
    inherit system;
    config = if system == "x86_64-linux" then "x86_64-unknown-linux-gnu" else "aarch64-unknown-linux-gnu";
    isLinux = true;
    isDarwin = false;
    isMinGW = false;
    isWindows = false;
    isStatic = false;
    rust = {
      rustcTarget = platform.config;
      cargoEnvVarTarget = lib.toUpper (builtins.replaceStrings [ "-" ] [ "_" ] platform.config);
    };
    canExecute = other: other.system == system;
    emulatorAvailable = _: false;
  };
  binPath = inputs: lib.concatMapStringsSep ":" (p: "${p}/bin") (lib.filter (p: p != null) inputs);

  # A derivation built by busybox sh from `script`, with `env` as its
  # attributes (environment), busybox's applets and the inputs' bin/ on PATH.
  run =
    name: env: script:
    let
      inputs = (env.nativeBuildInputs or [ ]) ++ (env.buildInputs or [ ]) ++ (env.depsBuildBuild or [ ]);
      passthru = env.passthru or { };
      meta = env.meta or { };
      drvEnv =
        removeAttrs env [
          "passthru"
          "meta"
          "env"
        ]
        // (env.env or { });
      drv = derivation (
        drvEnv
        // {
          inherit name system;
          builder = bb;
          args = [
            "sh"
            "-euc"
            ''
              ${bb} mkdir -p "$NIX_BUILD_TOP/.stub-bin"
              for a in $(${bb} --list); do ${bb} ln -sf ${bb} "$NIX_BUILD_TOP/.stub-bin/$a"; done
              export PATH="${binPath inputs}:$NIX_BUILD_TOP/.stub-bin"
              ${script}
            ''
          ];
        }
      );
    in
    drv // passthru // { inherit meta; };

  # A stand-in package: `files` (relative paths; bin/* executable), each
  # naming the package and referencing glibc, so closures have depth.
  stubPackage =
    {
      pname,
      version,
      files,
      mainProgram ? null,
      license ? null,
      deps ? [ glibc ],
      passthru ? { },
    }:
    run "${pname}-${version}"
      {
        inherit pname version;
        passthru = passthru;
        meta = {
          description = "stub of nixpkgs' ${pname} (tests/nix-flake)";
        }
        // lib.optionalAttrs (mainProgram != null) { inherit mainProgram; }
        // lib.optionalAttrs (license != null) { inherit license; };
      }
      (
        lib.concatMapStrings (f: ''
          mkdir -p "$out/$(dirname ${f})"
          echo "stub ${pname} ${f}; needs ${lib.concatMapStringsSep " " toString deps}" >"$out/${f}"
          chmod 0755 "$out/${f}"
        '') files
      );
  glibc = stubPackage {
    pname = "glibc";
    version = "2.40-66";
    files = [ "lib/libc.so.6" ];
    deps = [ ];
  };
  packageFiles = import ./package-files.nix;
  fromTable =
    pname: version: extra:
    stubPackage (
      {
        inherit pname version;
        files = packageFiles.${pname};
      }
      // extra
    );
  bins =
    pname: version: names:
    stubPackage {
      inherit pname version;
      files = map (n: "bin/${n}") names;
      mainProgram = builtins.head names;
    };

  # stdenv.mkDerivation with the real calling convention (an attrset or a
  # function of finalAttrs); builds only `buildCommand` derivations.
  mkDerivation =
    argsOrFun:
    let
      args = if builtins.isFunction argsOrFun then argsOrFun final else argsOrFun;
      final = args // {
        name = args.name or "${args.pname}-${args.version}";
      };
      script =
        args.buildCommand or ''
          echo "stub stdenv: ${final.name} is evaluated, not built, offline (cargo and rustc are stubs)" >&2
          exit 1
        '';
    in
    run final.name (removeAttrs final [ "buildCommand" ]) script // { inherit (final) name; };

  self = {
    inherit lib system;
    pkgs = self;
    stdenv = {
      inherit mkDerivation;
      buildPlatform = platform;
      hostPlatform = platform;
      targetPlatform = platform;
      cc = {
        targetPrefix = "";
      };
      isLinux = true;
      isDarwin = false;
    };
    stdenvNoCC = self.stdenv;
    callPackage = lib.callPackageWith self;
    newScope = extra: lib.callPackageWith (self // extra);
    # Cross-compilation splicing collapses to one package set here.
    makeScopeWithSplicing' = { f, ... }: lib.makeScope self.newScope f;
    splicePackages = splices: splices.pkgsHostTarget or { };
    pkgsBuildBuild = self;
    pkgsBuildHost = self;
    pkgsBuildTarget = self;
    pkgsHostHost = self;
    pkgsHostTarget = self;
    pkgsTargetTarget = self;
    buildPackages = self;

    # Trivial builders, with the real signatures and output layouts.
    runCommand = name: env: buildCommand: run name env buildCommand;
    runCommandLocal = self.runCommand;
    runCommandNoCC = self.runCommand;
    writeText =
      name: text:
      run name {
        inherit text;
        passAsFile = [ "text" ];
      } ''cp "$textPath" "$out"'';
    writeTextFile =
      {
        name,
        text,
        executable ? false,
        destination ? "",
        ...
      }:
      run name {
        inherit text;
        passAsFile = [ "text" ];
      } ''
        mkdir -p "$(dirname "$out${destination}")"
        cp "$textPath" "$out${destination}"
        ${lib.optionalString executable "chmod +x \"$out${destination}\""}
      '';
    writeShellScriptBin =
      name: text:
      self.writeTextFile {
        inherit name;
        executable = true;
        destination = "/bin/${name}";
        text = "#!/bin/sh\n" + text;
      }
      // {
        meta.mainProgram = name;
      };
    writeShellApplication =
      {
        name,
        text,
        runtimeInputs ? [ ],
        meta ? { },
        ...
      }:
      run name
        {
          inherit text;
          passAsFile = [ "text" ];
          meta = meta // {
            mainProgram = name;
          };
        }
        ''
          mkdir -p "$out/bin"
          {
            echo "#!/bin/sh"
            echo "set -eu"
            echo 'export PATH="${binPath runtimeInputs}:$PATH"'
            cat "$textPath"
          } >"$out/bin/${name}"
          chmod +x "$out/bin/${name}"
        '';
    linkFarm =
      name: entries:
      let
        list = if builtins.isList entries then entries else lib.mapAttrsToList (n: p: { name = n; path = p; }) entries;
      in
      run name { } (
        "mkdir -p $out\n"
        + lib.concatMapStrings (e: ''
          mkdir -p "$out/$(dirname ${e.name})"
          ln -s ${e.path} "$out/${e.name}"
        '') list
      );
    symlinkJoin =
      { name, paths, ... }:
      run name { } (
        "mkdir -p $out\n" + lib.concatMapStrings (p: "cp -rs ${p}/. $out/ || true\n") paths
      );
    makeSetupHook =
      {
        name,
        propagatedBuildInputs ? [ ],
        substitutions ? { },
        ...
      }:
      script:
      run name { inherit propagatedBuildInputs; } ''
        mkdir -p $out/nix-support
        cp ${script} $out/nix-support/setup-hook
      '';
    mkShell =
      {
        name ? "nix-shell",
        packages ? [ ],
        inputsFrom ? [ ],
        ...
      }@args:
      run name (
        removeAttrs args [
          "packages"
          "inputsFrom"
        ]
        // {
          nativeBuildInputs =
            packages ++ lib.concatMap (d: (d.nativeBuildInputs or [ ]) ++ (d.buildInputs or [ ])) inputsFrom;
        }
      ) "echo shell >$out";
    fetchurl =
      {
        url ? builtins.head urls,
        urls ? [ ],
        name ? baseNameOf url,
        sha256 ? null,
        hash ? null,
        ...
      }:
      derivation {
        inherit name url;
        urls = if urls == [ ] then [ url ] else urls;
        system = "builtin";
        builder = "builtin:fetchurl";
        outputHashMode = "flat";
        outputHashAlgo = if hash != null then null else "sha256";
        outputHash = if hash != null then hash else sha256;
        unpack = false;
        executable = false;
        preferLocalBuild = true;
      };

    # The Rust toolchain and its tools (crane's inputs).
    rustc = bins "rustc" "1.91.1" [ "rustc" ];
    cargo = bins "cargo" "1.91.1" [ "cargo" ];
    clippy = bins "clippy" "1.91.1" [
      "cargo-clippy"
      "clippy-driver"
    ];
    rustfmt = bins "rustfmt" "1.91.1" [
      "rustfmt"
      "cargo-fmt"
    ];
    cargo-nextest = bins "cargo-nextest" "0.9.111" [ "cargo-nextest" ];
    cargo-llvm-cov = bins "cargo-llvm-cov" "0.6.21" [ "cargo-llvm-cov" ];
    rustPlatform.buildRustPackage =
      args:
      bins args.pname args.version [ (if args.pname == "crane-utils" then "crane-json2toml" else args.pname) ];
    writableTmpDirAsHomeHook = self.makeSetupHook { name = "writable-tmpdir-as-home-hook"; } (
      self.writeText "hook.sh" "export HOME=$(mktemp -d)"
    );
    rsync = bins "rsync" "3.4.1" [ "rsync" ];
    zstd = bins "zstd" "1.5.7" [
      "zstd"
      "zstdcat"
    ];
    jq = bins "jq" "1.8.1" [ "jq" ];
    git = bins "git" "2.51.0" [ "git" ];
    gnutar = bins "gnutar" "1.35" [ "tar" ];
    remarshal = bins "remarshal" "0.20.0" [ "remarshal" ];
    taplo = bins "taplo" "0.10.0" [ "taplo" ];

    # What the images, the apps and the dev shell use.
    busybox = run "busybox-1.36.1" { meta.mainProgram = "busybox"; } ''
      mkdir -p $out/bin
      cp ${bb} $out/bin/busybox
      for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox $out/bin/$a; done
    '';
    # nixpkgs 25.11's Redis 8 is AGPL-3.0-only (Debian 12's Redis 7 is
    # BSD-3-Clause): the image's licence label must follow the package.
    redis = fromTable "redis" "8.2.1" {
      mainProgram = "redis-server";
      license = lib.licenses.agpl3Only;
    };
    nginx = fromTable "nginx" "1.28.0" { mainProgram = "nginx"; };
    qdrant = fromTable "qdrant" "1.15.4" { mainProgram = "qdrant"; };
    onnxruntime = fromTable "onnxruntime" "1.22.2" { };
    nodejs = fromTable "nodejs" "22.21.1" { mainProgram = "node"; };
    # nix/webApp.nix: buildNpmPackage + importNpmLock. The stub web package
    # has the files images/frontend.toml packs; the real one runs `next build`.
    importNpmLock = {
      __functor = _: { npmRoot, ... }: run "npm-deps" { } "mkdir -p $out";
      npmConfigHook = run "npm-config-hook" { } "mkdir -p $out";
    };
    buildNpmPackage =
      args:
      run "${args.pname}-${args.version}" { inherit (args) npmDeps npmConfigHook; } ''
        mkdir -p $out/.next/standalone $out/.next/static/chunks
        echo stub > $out/.next/standalone/server.js
        echo stub > $out/.next/static/chunks/app.js
      '';
    cacert = fromTable "nss-cacert" "3.117" { files = packageFiles.cacert; };
    docker-client = bins "docker" "28.5.1" [ "docker" ];
    docker = bins "docker" "28.5.1" [
      "docker"
      "dockerd"
    ];
    skopeo = bins "skopeo" "1.20.0" [ "skopeo" ];
    umoci = bins "umoci" "0.5.0" [ "umoci" ];
    runc = bins "runc" "1.3.2" [ "runc" ];
    curl = bins "curl" "8.16.0" [ "curl" ];
    pigz = bins "pigz" "2.8" [ "pigz" ];
    shellcheck = bins "shellcheck" "0.11.0" [ "shellcheck" ];
    util-linux = bins "util-linux" "2.41.2" [
      "unshare"
      "mount"
    ];
    iproute2 = bins "iproute2" "6.16.0" [ "ip" ];
    openssl = bins "openssl" "3.5.4" [ "openssl" ];
    distribution = bins "distribution" "3.0.0" [ "registry" ];
    apacheHttpd = bins "apache-httpd" "2.4.65" [ "htpasswd" ];
    nixfmt = bins "nixfmt" "1.1.0" [ "nixfmt" ];
    nixfmt-tree = bins "nixfmt-tree" "1.1.0" [ "treefmt" ];
    python3 =
      let
        python = bins "python3" "3.13.9" [ "python3" ];
        pythonPackages = {
          numpy = bins "python3.13-numpy" "2.3.4" [ "f2py" ];
          onnxruntime = bins "python3.13-onnxruntime" "1.22.2" [ "onnxruntime_test" ];
        };
      in
      python
      // {
        pkgs = pythonPackages;
        withPackages =
          f:
          self.symlinkJoin {
            name = "python3-3.13.9-env";
            paths = [ python ] ++ f pythonPackages;
          };
      };
  };
in
self
