#!/usr/bin/env bash
# Packing benchmark: ocipack against GNU tar | gzip -6, tar | pigz and sha256sum,
# on the same generated corpus, in the same run. Prints a table with ratios.
#
#   scripts/bench-pack.sh [CORPUS_MB] [MODEL_MB]     (defaults: 300 1024)
#
# Needs: cargo, GNU tar, gzip, pigz, python3. Writes only under a temp dir.
set -euo pipefail
corpus_mb=${1:-300}
model_mb=${2:-1024}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p ocipack-cli --manifest-path "$repo/Cargo.toml"
ocipack=${CARGO_TARGET_DIR:-$repo/target}/release/ocipack

echo "generating a ${corpus_mb} MB corpus (half host binaries, half text) and a ${model_mb} MB model..." >&2
python3 - "$work/corpus" "$corpus_mb" <<'PY'
import os, random, sys
root, mb = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{root}/bin"); os.makedirs(f"{root}/text")
budget = mb * 2**20 // 2
n = 0
for d in ("/usr/bin", "/usr/lib/x86_64-linux-gnu"):
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if n >= budget or not os.path.isfile(p) or os.path.islink(p):
            continue
        data = open(p, "rb").read()
        open(f"{root}/bin/{len(os.listdir(root + '/bin')):05d}-{name}", "wb").write(data)
        n += len(data)
rng = random.Random(42)
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(5000)]
i = 0
while n < 2 * budget:
    text = " ".join(rng.choice(words) for _ in range(200_000)).encode()
    open(f"{root}/text/{i:04d}.txt", "wb").write(text)
    n += len(text); i += 1
PY
head -c "$((model_mb * 1024 * 1024))" /dev/urandom > "$work/model.onnx"
cat "$work/corpus"/*/* "$work/model.onnx" > /dev/null   # warm the page cache for everyone

cat > "$work/files.json" <<JSON
{"version": 1, "sourceDateEpoch": 1, "layer": {"kind": "files", "entries": [{"source": "$work/corpus", "target": "/corpus"}]}}
JSON
cat > "$work/model.json" <<JSON
{"version": 1, "layer": {"kind": "model", "name": "m", "source": "$work/model.onnx", "target": "/models/m/model.onnx"}}
JSON

now() { date +%s.%N; }
declare -A secs size
measure() { # name, output file, command...
  local name=$1 out=$2; shift 2
  local t0; t0=$(now)
  "$@"
  secs[$name]=$(echo "$(now) - $t0" | bc)
  size[$name]=$(stat -c %s "$out")
}
tarc() { tar --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner -cf - -C "$work/corpus" .; }
measure "tar|gzip -6" "$work/gz.tar.gz" bash -c "$(declare -f tarc); work=$work; tarc | gzip -6 > $work/gz.tar.gz"
measure "tar|pigz -6" "$work/pigz.tar.gz" bash -c "$(declare -f tarc); work=$work; tarc | pigz -6 > $work/pigz.tar.gz"
measure "ocipack gzip" "$work/ocipack-files/blob" "$ocipack" layer "$work/files.json" -o "$work/ocipack-files"
measure "sha256sum model" "$work/model.onnx" bash -c "sha256sum $work/model.onnx > /dev/null"
measure "ocipack model" "$work/ocipack-model/blob" "$ocipack" layer "$work/model.json" -o "$work/ocipack-model"

corpus_bytes=$(du -sb "$work/corpus" | cut -f1)
model_bytes=$(stat -c %s "$work/model.onnx")
printf '\nmachine: %s, %s cores; corpus %s bytes, model %s bytes\n\n' "$(uname -srm)" "$(nproc)" "$corpus_bytes" "$model_bytes"
printf '%-16s %9s %12s %10s\n' "tool" "seconds" "output" "MB/s in"
for k in "tar|gzip -6" "tar|pigz -6" "ocipack gzip"; do
  printf '%-16s %9.2f %12s %10.1f\n' "$k" "${secs[$k]}" "${size[$k]}" "$(echo "$corpus_bytes / ${secs[$k]} / 1048576" | bc -l)"
done
for k in "sha256sum model" "ocipack model"; do
  printf '%-16s %9.2f %12s %10.1f\n' "$k" "${secs[$k]}" "${size[$k]}" "$(echo "$model_bytes / ${secs[$k]} / 1048576" | bc -l)"
done
printf '\nocipack gzip vs tar|gzip -6: %.2fx faster, output %+.2f%%\n' \
  "$(echo "${secs["tar|gzip -6"]} / ${secs["ocipack gzip"]}" | bc -l)" \
  "$(echo "(${size["ocipack gzip"]} - ${size["tar|gzip -6"]}) * 100 / ${size["tar|gzip -6"]}" | bc -l)"
printf 'ocipack gzip vs tar|pigz -6: %.2fx, output %+.2f%%\n' \
  "$(echo "${secs["tar|pigz -6"]} / ${secs["ocipack gzip"]}" | bc -l)" \
  "$(echo "(${size["ocipack gzip"]} - ${size["tar|pigz -6"]}) * 100 / ${size["tar|pigz -6"]}" | bc -l)"
printf 'ocipack model layer throughput: %.0f%% of sha256sum\n' \
  "$(echo "${secs["sha256sum model"]} * 100 / ${secs["ocipack model"]}" | bc -l)"
