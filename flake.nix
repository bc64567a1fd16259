{
  description = "Aurum Circle: Rust services, the ocipack image packer and reproducible OCI images";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    crane.url = "github:ipetkov/crane/v0.23.4";
  };

  # Model layers are content-addressed derivations.
  nixConfig.extra-experimental-features = [ "ca-derivations" ];

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
      # `nix build .#images.scoring` resolves here; flake check accepts
      # legacyPackages holding a nested attrset.
      legacyPackages = perSystem (p: { inherit (p) images; });
      images = perSystem (p: p.images);
      checks = perSystem (p: p.checks);
      apps = perSystem (p: p.apps);
      devShells = perSystem (p: { default = p.devShell; });
      formatter = perSystem (p: p.formatter);
    };
}
