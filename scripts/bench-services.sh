#!/bin/sh
# Benchmark the two ML services over loopback with wrk, next to the raw
# model inference time measured by the same binaries (--bench-inference).
#
# Usage: scripts/bench-services.sh [seconds-per-level]   (default 10)
# Needs: wrk (apt-get install wrk), python3, assets from scripts/fetch-assets.sh.
# Env: ASSETS_DIR (default .cache/assets), CARGO_TARGET_DIR, LEVELS ("1 4 16").
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
assets=${ASSETS_DIR:-$repo/.cache/assets}
secs=${1:-10}
levels=${LEVELS:-"1 4 16"}
target=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || { echo "bench: wrk not found; apt-get install wrk" >&2; exit 1; }
[ -f "$assets/models/scrfd_500m_bnkps/scrfd_500m_bnkps.onnx" ] ||
  { echo "bench: assets missing under $assets; run scripts/fetch-assets.sh" >&2; exit 1; }
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$assets/runtimes/onnxruntime/libonnxruntime.so.1}
export DETECTION_MODEL_PATH=$assets/models/scrfd_500m_bnkps/scrfd_500m_bnkps.onnx
export EMBEDDING_MODEL_PATH=$assets/models/w600k_mbf/w600k_mbf.onnx
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

bench() { # name binary path content-type body raw-inference-args...
  name=$1 bin=$target/release/$2 path=$3 ctype=$4 body=$5
  shift 5
  raw=$("$bin" "$@")
  echo "== $name: raw inference (model run only, 2 intra-op threads): $raw"
  port=$(free_port)
  PORT=$port "$bin" >/dev/null 2>&1 &
  pid=$!
  i=0
  until PORT=$port "$bin" --healthcheck 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "bench: $name did not start" >&2; exit 1; }
    sleep 0.1
  done
  # warm-up
  BENCH_TYPE=$ctype BENCH_BODY=$body wrk -t1 -c1 -d2s -s "$work/post.lua" "http://127.0.0.1:$port$path" >/dev/null
  printf '| %s | clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors |\n' "$name"
  for c in $levels; do
    t=$(( c < 2 ? c : 2 ))
    line=$(BENCH_TYPE=$ctype BENCH_BODY=$body wrk -t$t -c$c -d${secs}s --timeout 30s -s "$work/post.lua" \
      "http://127.0.0.1:$port$path" | grep '^RESULT')
    set -- $line
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$c" "$2" "$4" "$5" "$6" "$7" "$(( $8 + $9 ))"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

bench face-detection face-detection-service /api/v1/detect image/jpeg "$assets/photos/yaoming.jpg" \
  --bench-inference 50 --bench-image "$assets/photos/yaoming.jpg"
bench face-embedding face-embedding-service /api/v1/embed image/png "$work/face112.png" \
  --bench-inference 100
