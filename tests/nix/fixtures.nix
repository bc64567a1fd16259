# Fixture closures for the offline tests, built with busybox only: store
# paths that reference each other, an application in two versions that differ
# only in their top path, and a 32 MiB file standing in for a model.
#
# `salt` goes into every fixture, so a new salt rebuilds everything from
# scratch: tests/nix/run.sh passes a fresh one per run, so the run proves
# what a cold build does, not what the store happened to hold.
{
  system,
  busybox,
  salt ? "",
}:
let
  bb = "${busybox}/bin/busybox";
  run =
    name: script: attrs:
    builtins.derivation (
      {
        inherit name system;
        builder = bb;
        args = [
          "sh"
          "-euc"
          script
        ];
        PATH = "${busybox}/bin";
        testSalt = salt;
      }
      // attrs
    );
  libA = run "fixture-lib-a-1.0" ''
    busybox mkdir -p $out/lib
    echo "lib a" > $out/lib/liba.txt
  '' { };
  libB = run "fixture-lib-b-2.0" ''
    busybox mkdir -p $out/lib
    echo "lib b, needs ${libA}/lib/liba.txt" > $out/lib/libb.txt
  '' { };
  runtime = run "fixture-runtime-1.31" ''
    busybox mkdir -p $out/lib
    echo "runtime, needs ${libA}" > $out/lib/libruntime.so
  '' { };
  app =
    version:
    run "fixture-app-${version}" ''
      busybox mkdir -p $out/bin $out/share
      echo "app ${version}: ${libB}/lib/libb.txt" > $out/bin/app
      busybox chmod 0755 $out/bin/app
      busybox ln -s ../bin/app $out/share/app-link
    '' { };
  # A stand-in package with exactly the given files (`bin/<name>` executable),
  # each referencing libA: an image linking a file the real package does not
  # have gets a dangling link, which tests/nix/run.sh refuses.
  package =
    name: files:
    run "fixture-pkg-${name}" (
      builtins.concatStringsSep "\n" (
        map (f: ''
          busybox mkdir -p "$out/$(busybox dirname ${f})"
          echo "${name} ${f}: ${libA}" > "$out/${f}"
          busybox chmod 0755 "$out/${f}"
        '') files
      )
    ) { };
  # The ocipack binary as a package (a derivation, like packages.ocipack in
  # the flake), so every layer derivation has it as an input derivation.
  ocipack =
    tools:
    run "fixture-ocipack" ''
      busybox mkdir -p $out/bin
      busybox cp ${tools}/bin/ocipack $out/bin/ocipack
    '' { };
in
{
  inherit libA libB runtime package ocipack;
  appV1 = app "1";
  appV2 = app "2";
  other = run "fixture-other-1" ''
    busybox mkdir -p $out/bin
    echo "other: ${libA}" > $out/bin/other
  '' { };
  # Something to run: the static busybox as a package, so an image built
  # through nix/ can be run under runc (tests/nix/run.sh).
  hello = run "fixture-hello-1" ''
    busybox mkdir -p $out/bin
    busybox cp ${bb} $out/bin/busybox
  '' { };
  # Zeros: deterministic and cheap; model layers are stored uncompressed, so
  # the layer is still a 32 MiB blob.
  bigModel = run "big-model.onnx" ''
    busybox head -c 33554432 /dev/zero > $out
  '' { };
}
