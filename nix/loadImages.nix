# loadImages: every images/*.toml of a directory, as an attrset of images
# keyed by file name (scoring.toml -> scoring).
{ imageFromDefinition }:
{
  # Directory holding the definitions.
  dir,
  # Passed to imageFromDefinition.
  resolve,
  rebuildTag ? null,
}:
let
  files = builtins.filter (f: builtins.match ".*\\.toml" f != null) (
    builtins.attrNames (builtins.readDir dir)
  );
  load =
    f:
    let
      key = builtins.substring 0 (builtins.stringLength f - 5) f;
    in
    {
      name = key;
      value = imageFromDefinition {
        definition = builtins.fromTOML (builtins.readFile (dir + "/${f}"));
        file = "images/${f}";
        inherit resolve rebuildTag;
      };
    };
in
builtins.listToAttrs (map load files)
