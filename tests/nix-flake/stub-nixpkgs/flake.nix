{
  description = "Stub nixpkgs for evaluating the repository's flake offline: the real nixpkgs lib, small stand-in packages";

  # tests/nix-flake/run.sh assembles this directory under .cache: this file,
  # pkgs.nix, package-files.nix (tests/nix), the real nixpkgs lib/ (from
  # ../shared/nix-offline) and a static busybox.
  outputs =
    { self }:
    let
      lib = import ./lib;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
        system:
        import ./pkgs.nix {
          inherit lib system;
          # Inside the flake source, so its name stays `busybox` (the applet name).
          busyboxFile = "${self}/busybox";
        }
      );
    };
}
