#!/usr/bin/env bash
# The repository's own flake.nix, evaluated offline by Nix 2.26 against real
# crane v0.23.4 and the real nixpkgs 25.11 lib, with a stub package set
# (tests/nix-flake/stub-nixpkgs) standing in for nixpkgs' packages.
#
#   tests/nix-flake/run.sh        # enters Nix 2.26 itself (tests/nix/nix226.sh)
#
# Checks: `nix flake show`, `nix flake check --no-build --all-systems`, every
# output's drvPath on x86_64-linux and aarch64-linux, evaluation with
# import-from-derivation refused, a build of what the stubs can build, no
# unexplained warning, and the derivation-level stability table (a service
# edit, an image definition edit, a models.toml edit in scratch copies).
# Needs root (mount namespace), python3, the tarballs in ../shared/nix-offline.
# No network.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [ "${AURUM_NIX_VERSION:-}" != 2.26 ]; then
  exec "$repo/tests/nix/nix226.sh" run "$0" "$@"
fi

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*" >&2; }

offline=${AURUM_NIX_OFFLINE_DIR:-$repo/../shared/nix-offline}
cache=$repo/.cache/nix-flake
work=${TMPDIR:-/tmp}/aurum-nix-flake-$$
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache" "$work"

step "unpacking crane v0.23.4 and nixpkgs' lib (../shared/nix-offline, sha256 checked)"
unpack() { # tarball sha256 dir
  if [ ! -f "$cache/$3/.aurum-sha256" ] || [ "$(cat "$cache/$3/.aurum-sha256")" != "$2" ]; then
    [ -f "$offline/$1" ] || fail "$offline/$1 is missing (the offline Nix inputs, see ../shared/nix-offline/README.md)"
    echo "$2  $offline/$1" | sha256sum -c --quiet - || fail "$offline/$1 does not match its sha256"
    rm -rf "${cache:?}/$3" && mkdir -p "$cache/$3"
    tar -xzf "$offline/$1" -C "$cache/$3" --strip-components=1
    echo "$2" >"$cache/$3/.aurum-sha256"
  fi
}
unpack crane-v0.23.4.tar.gz 8b0ea14a1896a060e8bfa9d4886c2ec5b2e073fcea649fc36b68b8096f2f6c26 crane
unpack nixpkgs-lib-25.11-d7885204.tar.gz 58b6edbc586795681509091969742f5e7b2ba0b31b73bbbdf1f0cd0c4f02b195 nixpkgs-lib
# crane's own narHash is in flake.lock: the tree must be the locked one.
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes"]["crane"]["locked"]["narHash"])' "$repo/flake.lock")
# .aurum-sha256 is ours: hash a copy without it.
rm -rf "$work/crane" && cp -r "$cache/crane" "$work/crane" && rm "$work/crane/.aurum-sha256"
got=$(nix hash path "$work/crane")
[ "$got" = "$want" ] || fail "the unpacked crane hashes to $got, flake.lock locks $want"

# The stub nixpkgs flake: its files, the real lib/, a static busybox.
stub=$cache/stub-nixpkgs
rm -rf "$stub" && mkdir -p "$stub"
cp "$here/stub-nixpkgs/flake.nix" "$here/stub-nixpkgs/pkgs.nix" "$repo/tests/nix/package-files.nix" "$stub/"
cp -r "$cache/nixpkgs-lib/lib" "$stub/lib"
cp /bin/busybox "$stub/busybox"

# Every nix call: offline, no lock file written, the two inputs overridden,
# import-from-derivation refused (evaluation must build nothing).
flags=(
  --offline --no-write-lock-file
  --override-input nixpkgs "path:$stub"
  --override-input crane "path:$work/crane"
  --option allow-import-from-derivation false
)
flake="git+file://$repo"
# Warnings Nix prints that are understood (one pattern a line, with why):
#  - "not writing modified lock file": --no-write-lock-file with overrides.
#  - "Git tree ... is dirty": the working tree under test has edits.
#  - "unknown flake output 'lib'"/"unknown-flake-output": none expected.
explained='not writing modified lock file|Git tree .* is dirty|updating lock file|will not write lock file'
nixq() { # run nix, keep stderr, fail on an unexplained warning
  local err=$work/stderr rc=0
  nix "$@" 2>"$err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$err" >&2
    return "$rc"
  fi
  local unexplained
  unexplained=$(grep -i 'warning' "$err" | grep -Ev "$explained" || true)
  [ -z "$unexplained" ] || fail "unexplained warning from 'nix $1': $unexplained"
}

step "nix flake show (Nix $(nix --version | awk '{print $NF}'))"
nixq flake show "${flags[@]}" --all-systems "$flake" >"$work/show.txt"
cat "$work/show.txt" >&2

step "nix flake check --no-build --all-systems"
nixq flake check "${flags[@]}" --no-build --all-systems "$flake"

step "every output's drvPath, both systems"
# name -> drvPath of every derivation the flake exposes, and of each image's
# base, model and closure derivations.
drvs() { # flake-ref system -> JSON {name: drvPath}
  nixq eval "${flags[@]}" --json "$1#." --apply "f: let
      s = \"$2\";
      d = x: x.drvPath;
      m = p: a: builtins.listToAttrs (map (n: { name = p + n; value = d a.\${n}; }) (builtins.attrNames a));
      img = n: i: { \"images.\${n}\" = d i; \"images.\${n}.base\" = d i.baseLayer; }
        // (if i.closureLayers == null then { } else { \"images.\${n}.closure\" = d i.closureLayers; })
        // builtins.listToAttrs (map (l: { name = \"images.\${n}.\" + l.name; value = d l; }) i.modelLayers);
      lp = f.legacyPackages.\${s};
    in m \"packages.\" f.packages.\${s} // m \"checks.\" f.checks.\${s}
      // m \"devShells.\" f.devShells.\${s} // { formatter = d f.formatter.\${s}; push = d lp.push; load = d lp.load; }
      // m \"sboms.\" lp.sboms
      // builtins.foldl' (acc: n: acc // img n lp.images.\${n}) { } (builtins.attrNames lp.images)" >"$work/out.json"
  cat "$work/out.json"
}
for system in x86_64-linux aarch64-linux; do
  drvs "$flake" "$system" >"$work/drvs-$system.json"
  count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$work/drvs-$system.json")
  echo "$system: $count derivations evaluated" >&2
  [ "$count" -ge 40 ] || fail "$system: only $count derivations"
done
python3 - "$work/drvs-x86_64-linux.json" "$work/drvs-aarch64-linux.json" <<'PY' || fail "outputs are not per-system"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a.keys() == b.keys(), set(a) ^ set(b)
same = [k for k in a if a[k] == b[k]]
assert not same, f"same derivation on both systems: {same}"
PY

step "the documented attribute paths resolve (.#images.scoring, .#push, .#load: legacyPackages)"
for attr in images.scoring push load scoring-service ocipack; do
  nixq eval "${flags[@]}" --raw "$flake#$attr.drvPath" >/dev/null || fail ".#$attr does not resolve"
done
[ "$(nix eval "${flags[@]}" --raw "$flake#push.meta.mainProgram" 2>/dev/null)" = push-images ] ||
  fail ".#push has no main program push-images (nix run .#push)"

step "multi-architecture image indexes (issue 16): legacyPackages.<system>.imageIndexes.<name> over both systems' images"
# Appended by the multiarch helper: each index derivation runs `ocipack index`
# on this system over the x86_64-linux and aarch64-linux image derivations.
for system in x86_64-linux aarch64-linux; do
  nixq eval "${flags[@]}" --json "$flake#." --apply "f: let
      lp = f.legacyPackages;
      ix = lp.\"$system\".imageIndexes;
    in builtins.mapAttrs (n: i: {
      drv = i.drvPath;
      system = i.system;
      args = i.args;
      children = map (c: c.drvPath) i.images;
      want = [ lp.x86_64-linux.images.\${n}.drvPath lp.aarch64-linux.images.\${n}.drvPath ];
    }) ix" >"$work/indexes-$system.json" || fail "$system: imageIndexes do not evaluate"
  python3 - "$work/indexes-$system.json" "$work/drvs-$system.json" "$system" <<'PY' || fail "$system: imageIndexes are wrong"
import json, sys
ix, drvs, system = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
images = sorted(k.split(".")[1] for k in drvs if k.startswith("images.") and k.count(".") == 1)
assert sorted(ix) == images, (sorted(ix), images)
for n, i in ix.items():
    assert i["children"] == i["want"], (n, i["children"], i["want"])
    assert i["system"] == system and i["args"] == ["index", "--nix-attrs"], (n, i)
print(f"{system}: {len(ix)} image indexes, each over the x86_64-linux and aarch64-linux images")
PY
done

step "a nixpkgs program's image carries the package's licence (Redis 8: AGPL-3.0-only, not the host's BSD-3-Clause)"
for key in annotations config.labels; do
  lic=$(nix eval "${flags[@]}" --raw "$flake#images.redis.plan.$key.\"org.opencontainers.image.licenses\"" 2>/dev/null)
  [ "$lic" = AGPL-3.0-only ] || fail "images.redis plan.$key licence is '$lic', expected the stub package's AGPL-3.0-only"
done

step "building what the stubs can build (stub packages through the real flake wiring)"
nixq build "${flags[@]}" --no-link "$flake#packages.x86_64-linux.onnxruntime" "$flake#formatter.x86_64-linux"
so=$(nix eval "${flags[@]}" --raw "$flake#packages.x86_64-linux.onnxruntime.outPath" 2>/dev/null)
[ -f "$so/lib/libonnxruntime.so" ] || fail "the onnxruntime stub lacks lib/libonnxruntime.so"


step "derivation-level stability: a service edit, an image definition edit, a models.toml edit"
# Scratch copies of the tracked files (path: flakes, so all four are read
# alike), each with one edit; every derivation of the x86_64-linux outputs is
# compared with the unedited copy.
scratch() { # name -> a copy of the tracked tree at $work/$name
  mkdir -p "$work/$1"
  git -C "$repo" ls-files -z | (cd "$repo" && xargs -0 tar --no-recursion -cf - 2>/dev/null) |
    tar -xf - -C "$work/$1"
}
scratch base
scratch service
printf '\n// a comment: nothing else changes\n' >>"$work/service/crates/scoring-service/src/main.rs"
scratch tests
tests_rs=("$work/tests/crates/scoring-service/tests/"*.rs)
t=${tests_rs[0]}
printf '\n// a comment in a test\n' >>"$t"
scratch image
sed -i 's/RUST_LOG = "info"/RUST_LOG = "debug"/' "$work/image/images/scoring.toml"
scratch models
sed -i 's/^sha256 = "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f"/sha256 = "0000000000000000000000000000000000000000000000000000000000000000"/' \
  "$work/models/models.toml"
cmp -s "$work/base/images/scoring.toml" "$work/image/images/scoring.toml" && fail "the images/scoring.toml edit did not apply"
cmp -s "$work/base/models.toml" "$work/models/models.toml" && fail "the models.toml edit (w600k_mbf's sha256) did not apply"
for v in base service tests image models; do
  drvs "path:$work/$v" x86_64-linux >"$work/stab-$v.json"
done
python3 - "$work" <<'PY' || fail "a derivation changed that should not have (table above)"
import json, re, sys
w = sys.argv[1]
load = lambda v: json.load(open(f"{w}/stab-{v}.json"))
base = load("base")
# Per edit: what may change (regular expressions over the names) and what must.
# checks.nextest, devShells.default (its inputs are the checks), push and load
# (every image) follow from what they contain.
follow = r"|checks\.nextest|devShells\.default|push|load"
edits = {
    "service": ("scoring src/main.rs",
                r"packages\.scoring-service|images\.scoring(\.closure)?|sboms\.scoring|checks\.(clippy|fmt|doc|image-scoring|image-scoring-reproducible)" + follow,
                ["packages.scoring-service", "images.scoring", "images.scoring.closure", "sboms.scoring"]),
    "tests": ("scoring tests/*.rs",
              r"checks\.(clippy|fmt|doc)" + follow,
              ["checks.nextest"]),
    "image": ("images/scoring.toml",
              r"images\.scoring|sboms\.scoring|checks\.image-scoring(-reproducible)?" + follow,
              ["images.scoring", "sboms.scoring"]),
    "models": ("models.toml w600k",
               r"packages\.(model-w600k_mbf|test-assets)|images\.face-embedding(\.layer-model-w600k_mbf)?|sboms\.face-embedding|checks\.image-face-embedding" + follow,
               ["packages.model-w600k_mbf", "images.face-embedding.layer-model-w600k_mbf", "images.face-embedding", "sboms.face-embedding"]),
}
results = {v: load(v) for v in edits}
names = sorted(base)
width = max(map(len, names))
print(f"{'derivation':<{width}}  " + "  ".join(f"{edits[v][0]:<22}" for v in edits))
bad = []
for n in names:
    cells = []
    for v, (_, allowed, must) in edits.items():
        changed = results[v].get(n) != base[n]
        cells.append(f"{'CHANGED' if changed else 'same':<22}")
        if changed and not re.fullmatch(allowed, n):
            bad.append(f"{v}: {n} changed")
        if not changed and n in must:
            bad.append(f"{v}: {n} did not change")
    print(f"{n:<{width}}  " + "  ".join(cells))
for v, (what, _, _) in edits.items():
    c = sum(results[v].get(n) != base[n] for n in names)
    print(f"{what}: {c} of {len(names)} derivations changed")
if bad:
    sys.exit("unexpected: " + "; ".join(bad))
PY

echo "PASS: tests/nix-flake" >&2
