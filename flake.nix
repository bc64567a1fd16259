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
      # Multi-architecture images (issue 16): for each image, one OCI image
      # index over its x86_64-linux and aarch64-linux builds, made by this
      # system's ocipack. Building one needs both systems' images (a remote
      # builder or emulation, docs/multi-arch.md); evaluating needs neither.
      imageIndexes =
        system:
        builtins.mapAttrs (
          name: _:
          import ./nix/imageIndex.nix {
            inherit system;
            inherit (projects.${system}.packages) ocipack;
          } {
            inherit name;
            images = map (s: projects.${s}.images.${name}) systems;
          }
        ) projects.${system}.images;
    in
    {
      packages = perSystem (p: p.packages);
      # `nix build .#images.scoring` and `nix run .#push` resolve here.
      # legacyPackages is neither evaluated by `nix flake show` nor checked
      # by `nix flake check`: the images split their closure with
      # import-from-derivation (nix/closureLayers.nix), which only building
      # or checking an image may trigger (docs/using-the-flake.md).
      # imageIndexes.<name>: `nix build .#imageIndexes.scoring`;
      # sboms.<name>: `nix build .#sboms.scoring` (nix/sbom.nix).
      legacyPackages = builtins.mapAttrs (system: p: {
        inherit (p) images push load sboms;
        imageIndexes = imageIndexes system;
      }) projects;
      checks = perSystem (p: p.checks);
      devShells = perSystem (p: { default = p.devShell; });
      formatter = perSystem (p: p.formatter);
    };
}
