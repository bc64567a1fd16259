{
  description = "Aurum Circle: Rust services, the ocipack image packer and reproducible OCI images";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    crane.url = "github:ipetkov/crane/v0.23.4";
  };

  outputs =
    {
      self,
      nixpkgs,
      crane,
    }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      # Each system's project is evaluated once and shared by every output.
      projects = nixpkgs.lib.genAttrs systems (
        system:
        import ./nix/project.nix {
          inherit nixpkgs crane system;
          root = ./.;
        }
      );
      perSystem = f: builtins.mapAttrs (_: f) projects;
    in
    {
      packages = perSystem (p: p.packages);
      # `nix build .#images.scoring` and `nix run .#push` resolve here.
      # legacyPackages is neither evaluated by `nix flake show` nor checked
      # by `nix flake check`: the images split their closure with
      # import-from-derivation (nix/closureLayers.nix), which only building
      # or checking an image may trigger (docs/using-the-flake.md).
      legacyPackages = perSystem (p: { inherit (p) images push load; });
      checks = perSystem (p: p.checks);
      devShells = perSystem (p: { default = p.devShell; });
      formatter = perSystem (p: p.formatter);
    };
}
