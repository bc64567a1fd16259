{
  description = "Offline tests of the nix/ image library: no nixpkgs, busybox fixtures";

  # Always overridden by tests/nix/run.sh with a directory holding the
  # host-built static bin/ocipack and bin/busybox.
  inputs.hostTools = {
    url = "path:/var/empty";
    flake = false;
  };

  outputs =
    { self, hostTools }:
    let
      system = "x86_64-linux";
      tests = import ./default.nix {
        inherit system;
        tools = hostTools;
      };
    in
    {
      legacyPackages.${system} = tests;
      checks.${system} = tests.checks;
    };
}
