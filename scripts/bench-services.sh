#!/bin/sh
# Benchmark the two ML services over loopback against raw model inference
# of the same inputs (session runs only, on the ready input tensor, the same
# sessions and threads as the service), in the same run:
#
# - one client: the binary's --bench-paired, which alternates one raw run
#   and one HTTP request to the running service, pair by pair, in one
#   process (so both see the same machine; the request's own model time
#   splits it into model and everything else), PAIRS pairs, REPS times;
# - C > 1 clients: --bench-inference with C threads sharing the runs, then
#   wrk with C connections, REPS times.
#
# Detection also prints its per-stage profile (--bench-stages).
#
# Usage: scripts/bench-services.sh [seconds-per-level]   (default 10)
# Needs: wrk (apt-get install wrk), python3, assets from scripts/fetch-assets.sh.
# Env: ASSETS_DIR (default .cache/assets), CARGO_TARGET_DIR, LEVELS ("1 2 4"),
#      REPS (3), PAIRS (one-client pairs per repetition; default 25 x the
#      seconds), ORT_SESSIONS / ORT_INTRA_THREADS (passed to both sides).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
assets=${ASSETS_DIR:-$repo/.cache/assets}
secs=${1:-10}
levels=${LEVELS:-"1 2 4"}
reps=${REPS:-3}
pairs=${PAIRS:-$((secs * 25))}
summary=""
target=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || { echo "bench: wrk not found; apt-get install wrk" >&2; exit 1; }
[ -f "$assets/models/scrfd_500m_bnkps/scrfd_500m_bnkps.onnx" ] ||
  { echo "bench: assets missing under $assets; run scripts/fetch-assets.sh" >&2; exit 1; }
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$assets/runtimes/onnxruntime/libonnxruntime.so.1}"
export DETECTION_MODEL_PATH="$assets/models/scrfd_500m_bnkps/scrfd_500m_bnkps.onnx"
export EMBEDDING_MODEL_PATH="$assets/models/w600k_mbf/w600k_mbf.onnx"
export HOSTNAME=127.0.0.1 RUST_LOG=warn

(cd "$repo" && cargo build --release -q -p face-detection-service -p face-embedding-service)

# A mid-grey 112x112 PNG: the pre-aligned crop for the embedding service
# (the same input its --bench-inference uses; run time does not depend on pixels).
python3 - "$work/face112.png" <<'PY'
import struct, sys, zlib
w = h = 112
raw = b"".join(b"\0" + bytes([128, 128, 128]) * w for _ in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
    + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE")
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
done = function(s, latency, requests)
  local secs = s.duration / 1e6
  local errors = s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout
  io.write(string.format("RESULT %d %.1f %.2f %.2f %.2f %.2f %d %d\n", s.requests, secs,
    s.requests / secs, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, errors, s.errors.status))
end
LUA

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -sr)"
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# raw inference: --bench-inference N --bench-clients C; its JSON has p50_ms,
# p99_ms, runs_per_s, sessions and intra_threads
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

bench() { # name binary path content-type body runs-per-second-guess raw-args...
  name=$1 bin=$target/release/$2 path=$3 ctype=$4 body=$5 rate=$6
  shift 6
  port=$(free_port)
  PORT=$port "$bin" >/dev/null 2>&1 &
  pid=$!
  i=0
  until PORT=$port "$bin" --healthcheck 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "bench: $name did not start" >&2; exit 1; }
    sleep 0.1
  done
  # warm-up, both sides
  BENCH_TYPE=$ctype BENCH_BODY=$body wrk -t1 -c1 -d2s -s "$work/post.lua" "http://127.0.0.1:$port$path" >/dev/null
  warm=$("$bin" "$@" --bench-inference 10 | tail -n1)  # (stdout also carries JSON logs)
  echo
  echo "$name: $(field "$warm" sessions) sessions x $(field "$warm" intra_threads) intra-op threads (both sides)"
  echo "| $name | clients | rep | raw p50 ms | raw p99 ms | raw runs/s | HTTP p50 ms | HTTP p99 ms | HTTP req/s | errors | p50 overhead |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  for c in $levels; do
    r=1 raws="" https=""
    while [ $r -le "$reps" ]; do
      if [ "$c" = 1 ]; then
        # one client: raw runs and requests alternated pair by pair
        j=$("$bin" "$@" --bench-paired "$pairs" --bench-url "http://127.0.0.1:$port$path" | tail -n1)
        rp50=$(field "$j" raw_p50_ms) rp99=$(field "$j" raw_p99_ms) hp50=$(field "$j" http_p50_ms)
        printf '| %s | 1 (paired) | %s | %.1f | %.1f | | %.2f | %.2f | | 0 | %+.0f %% (outside the model %.2f ms; pair median %+.0f %%) |\n' \
          "$name" "$r" "$rp50" "$rp99" "$hp50" "$(field "$j" http_p99_ms)" "$(field "$j" p50_overhead_pct)" \
          "$(field "$j" outside_model_p50_ms)" "$(field "$j" pair_overhead_median_pct)"
        raws="$raws $rp50" https="$https $hp50"
        r=$((r + 1))
        continue
      fi
      raw=$("$bin" "$@" --bench-inference $((secs * rate)) --bench-clients "$c" | tail -n1)
      t=$(( c < 2 ? c : 2 ))
      line=$(BENCH_TYPE=$ctype BENCH_BODY=$body wrk -t"$t" -c"$c" -d"${secs}s" --timeout 30s -s "$work/post.lua" \
        "http://127.0.0.1:$port$path" | grep '^RESULT')
      col() { echo "$line" | cut -d' ' -f"$1"; }
      rp50=$(field "$raw" p50_ms) rp99=$(field "$raw" p99_ms) rrate=$(field "$raw" runs_per_s)
      printf '| %s | %s | %s | %.1f | %.1f | %.1f | %s | %s | %s | %s | %s |\n' "$name" "$c" "$r" \
        "$rp50" "$rp99" "$rrate" "$(col 5)" "$(col 7)" "$(col 4)" "$(( $(col 8) + $(col 9) ))" \
        "$(python3 -c 'import sys; print(f"{(float(sys.argv[1]) / float(sys.argv[2]) - 1) * 100:+.0f} %")' "$(col 5)" "$rp50")"
      raws="$raws $rp50" https="$https $(col 5)"
      r=$((r + 1))
    done
    # the median of the repetitions' own overheads (a ratio of medians
    # taken from different repetitions would mix their conditions)
    summary="$summary$(python3 -c 'import statistics as s, sys
raws = list(map(float, sys.argv[3].split())); https = list(map(float, sys.argv[4].split()))
over = [(h / r - 1) * 100 for r, h in zip(raws, https)]
print(f"| {sys.argv[1]} | {sys.argv[2]} | {s.median(raws):.2f} | {s.median(https):.2f} | {s.median(over):+.1f} % ({min(over):+.0f} to {max(over):+.0f} %) |")' "$name" "$c" "$raws" "$https")
"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

bench face-detection face-detection-service /api/v1/detect image/jpeg "$assets/photos/yaoming.jpg" 25 \
  --bench-image "$assets/photos/yaoming.jpg"
echo
echo "face-detection stages (median of 100 whole detections, one at a time):"
"$target/release/face-detection-service" --bench-stages 100 --bench-image "$assets/photos/yaoming.jpg" | tail -n1
bench face-embedding face-embedding-service /api/v1/embed image/png "$work/face112.png" 40 \
  --bench-image "$work/face112.png"
echo
echo "Medians over the $reps repetitions (p50 of each, raw vs HTTP; overhead: the median of the repetitions' own, and their range):"
echo "| service | clients | raw p50 ms | HTTP p50 ms | overhead |"
echo "| --- | --- | --- | --- | --- |"
printf '%s' "$summary"
echo
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
