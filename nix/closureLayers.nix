# closureLayers: a closure split into layers at build time, in one
# derivation.
#
# The grouping is only known after `ocipack layers` has seen the reference
# graph (`exportReferencesGraph`), so the split, and the layers, are made
# while building, the way nix2container does it, never at evaluation time:
# no import-from-derivation, so `nix flake show`, `nix flake check
# --no-build` and `allow-import-from-derivation = false` evaluate every
# image without building anything. The output holds one `ocipack layer`
# directory per group, bottom first (`$out/0`, `$out/1`, ..., the last one
# the top group with `topEntries`), `$out/count` and the assignment
# (`$out/layers.json`). mkImage takes it as a `closureLower`/`closureTop`
# pair of layer markers.
#
# The trade-off (docs/using-the-flake.md): an application change rebuilds
# this one derivation, so every closure group is packed again (the blobs
# come out byte-identical, so a registry still receives only the top
# layer); the base and model layers stay derivations of their own.
{
  ocipack,
  busybox,
  system,
}:
{
  name,
  # Store paths (or derivations) whose closure is packed.
  contents,
  # Paths forming the top layer; ocipack's default (unreferenced paths) if empty.
  roots ? [ ],
  # Upper bound on the number of groups.
  maxLayers ? 100,
  sourceDateEpoch ? 1,
  compression ? "gzip",
  # Plan entries added to the top layer (links to the roots, directories), so
  # everything that changes with the application sits in one layer.
  topEntries ? [ ],
  extraAttrs ? { },
}:
let
  rootArgs = builtins.concatStringsSep " " (map (r: "'${toString r}'") roots);
  # The top layer's extra entries, as JSON array members.
  topJson =
    let
      j = builtins.toJSON topEntries;
    in
    builtins.substring 1 (builtins.stringLength j - 2) j;
in
builtins.derivation (
  {
    name = "closure-${name}";
    inherit system;
    builder = "${busybox}/bin/busybox";
    __structuredAttrs = true;
    exportReferencesGraph.graph = contents;
    args = [
      "sh"
      "-euc"
      ''
        bb=${busybox}/bin/busybox
        attrs=''${NIX_ATTRS_JSON_FILE:-.attrs.json}
        [ -f "$attrs" ] || attrs=.attrs.json
        out=$($bb grep -o '"outputs":{"out":"[^"]*"' "$attrs" | $bb cut -d'"' -f6)
        $bb cat >top.json <<'AURUM_TOP_ENTRIES'
        ${topJson}
        AURUM_TOP_ENTRIES
        TOP_JSON=$($bb cat top.json)
        ${ocipack}/bin/ocipack layers "$attrs" --key graph --max ${toString maxLayers} \
          ${if roots == [ ] then "" else "--roots ${rootArgs}"} --json >layers.json
        $bb grep -q '"version":1' layers.json || {
          echo "closureLayers ${name}: ocipack layers wrote no version 1 assignment; update nix/closureLayers.nix to its format" >&2
          exit 1
        }
        $bb mkdir -p "$out"
        $bb cp layers.json "$out/layers.json"
        # One line per group: its store paths, space-separated, sorted.
        $bb grep -o '"paths":\[[^]]*\]' layers.json |
          $bb sed -e 's/^"paths":\[//' -e 's/\]$//' -e 's/"//g' -e 's/,/ /g' >groups.txt
        n=$($bb wc -l <groups.txt)
        [ "$n" -ge 1 ] || { echo "closureLayers ${name}: empty assignment" >&2; exit 1; }
        i=0
        while read -r paths; do
          set -- $(for p in $paths; do echo "$p"; done | $bb sort)
          entries=""
          names=""
          k=0
          for p in "$@"; do
            entries="$entries''${entries:+,}{\"source\":\"$p\",\"target\":\"$p\"}"
            k=$((k + 1))
            if [ "$k" -le 8 ]; then
              names="$names''${names:+, }''${p#/nix/store/????????????????????????????????-}"
            fi
          done
          if [ "$k" -gt 8 ]; then names="$names and $((k - 8)) more"; fi
          if [ "$i" -eq $((n - 1)) ] && [ -n "$TOP_JSON" ]; then
            entries="$entries,$TOP_JSON"
          fi
          printf '{"version":1,"sourceDateEpoch":%s,"layer":{"kind":"files","comment":"store paths: %s","compression":"%s","entries":[%s]}}\n' \
            ${toString sourceDateEpoch} "$names" ${compression} "$entries" >spec.json
          ${ocipack}/bin/ocipack layer spec.json -o "$out/$i" >/dev/null
          i=$((i + 1))
        done <groups.txt
        echo "$n" >"$out/count"
      ''
    ];
  }
  // extraAttrs
)
