# checkReproducible: compare two independently built layouts of one image.
#
# `a` and `b` must come from separate derivations (buildImage with different
# `rebuildTag`s), so every layer and the assembly ran twice. index.json holds
# the manifest digests and tags, so equal index.json files mean equal
# manifest digests. This is a check, not part of the image build, so a
# busybox shell is fine here.
{ system, busybox }:
{
  name,
  a,
  b,
}:
builtins.derivation {
  name = "reproducible-${name}";
  inherit system a b;
  builder = "${busybox}/bin/busybox";
  args = [
    "sh"
    "-c"
    ''
      set -eu
      bb=${busybox}/bin/busybox
      if ! $bb cmp "$a/index.json" "$b/index.json"; then
        echo "image ${name} is not reproducible: the two builds differ" >&2
        echo "first:  $a/index.json" >&2; $bb cat "$a/index.json" >&2
        echo "second: $b/index.json" >&2; $bb cat "$b/index.json" >&2
        exit 1
      fi
      $bb cp "$a/index.json" "$out"
    ''
  ];
}
