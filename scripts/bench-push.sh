#!/usr/bin/env bash
# Benchmark: `ocipack push` against `skopeo copy`, both pushing the same OCI
# layouts to a loopback docker-registry. Not a test; prints a table.
#
#   scripts/bench-push.sh                 # uses the ocipack-push example binary
#   OCIPACK=target/release/ocipack scripts/bench-push.sh   # uses the CLI: $OCIPACK push ...
#   MODEL_MB=200 APP_MB=4 REPEAT=3 scripts/bench-push.sh   # the defaults
#
# Scenarios: (a) first push of image A, (b) the same push again, (c) image C
# that shares A's model layer, pushed to another repository; then (issue 14)
# (d) a MANY-layer image (default 100) pushed again unchanged and (e) a cold
# push of a COLD-layer image (default 20 layers of COLD_MB MiB each).
#
#   MANY=100 MANY_KB=256 COLD=20 COLD_MB=8 scripts/bench-push.sh   # the defaults
#   SCENARIOS=de scripts/bench-push.sh     # only the issue-14 scenarios
#   JOBS=1 scripts/bench-push.sh           # ocipack one blob at a time (default 4)
#
# Bytes sent are measured, for both tools alike, by an nginx reverse proxy in
# front of the registry that logs $request_length (request line + headers +
# body) of every request; the table shows their sum per scenario. Registry
# storage growth is not used: it cannot tell an upload that deduplicated from
# a mount.
#
# Needs: docker-registry, skopeo, nginx (nginx-light), jq, pigz, python3, cargo.
set -euo pipefail

MODEL_MB=${MODEL_MB:-200}
APP_MB=${APP_MB:-4}
REPEAT=${REPEAT:-3}
MANY=${MANY:-100}
MANY_KB=${MANY_KB:-256}
COLD=${COLD:-20}
COLD_MB=${COLD_MB:-8}
SCENARIOS=${SCENARIOS:-abcde}
JOBS=${JOBS:-4}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/bench-push.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in docker-registry skopeo nginx jq pigz python3 openssl bc; do
    command -v "$tool" >/dev/null || { echo "bench-push: $tool is missing (apt-get install docker-registry skopeo nginx-light jq pigz)" >&2; exit 1; }
done

if [[ -n "${OCIPACK:-}" ]]; then
    ocipack_push() { "$OCIPACK" push --insecure --jobs "$JOBS" "$@" >/dev/null; }
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    (cd "$ROOT" && cargo build --quiet --release -p ocipack-push --example push)
    BIN=$CARGO_TARGET_DIR/release/examples/push
    # The example takes DIR REF; mount candidates come before them.
    ocipack_push() { "$BIN" --insecure --jobs "$JOBS" "$@" >/dev/null; }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- layouts: gzip layers so that skopeo keeps them as they are -------------
blob() { # FILE -> moves it into the layout's blob store, prints the digest
    local dir=$1 file=$2 hex
    hex=$(sha256sum "$file" | cut -d' ' -f1)
    mv "$file" "$dir/blobs/sha256/$hex"
    echo "sha256:$hex"
}
make_layout() { # DIR TAG LAYER.tar.gz...
    local dir=$1 tag=$2; shift 2
    mkdir -p "$dir/blobs/sha256"
    echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
    local layers="[]" diffs="[]" f d size
    for f in "$@"; do
        size=$(stat -c %s "$f")
        cp "$f" "$dir/layer.tmp"
        d=$(blob "$dir" "$dir/layer.tmp")
        layers=$(jq -c --arg d "$d" --argjson s "$size" '. + [{mediaType:"application/vnd.oci.image.layer.v1.tar+gzip",digest:$d,size:$s}]' <<<"$layers")
        diffs=$(jq -c --arg d "sha256:$(pigz -dc "$f" | sha256sum | cut -d' ' -f1)" '. + [$d]' <<<"$diffs")
    done
    jq -cn --argjson diffs "$diffs" '{architecture:"amd64",os:"linux",config:{},rootfs:{type:"layers",diff_ids:$diffs}}' >"$dir/config.tmp"
    local csize cdig
    csize=$(stat -c %s "$dir/config.tmp"); cdig=$(blob "$dir" "$dir/config.tmp")
    jq -cn --arg c "$cdig" --argjson cs "$csize" --argjson l "$layers" \
        '{schemaVersion:2,mediaType:"application/vnd.oci.image.manifest.v1+json",config:{mediaType:"application/vnd.oci.image.config.v1+json",digest:$c,size:$cs},layers:$l}' >"$dir/manifest.tmp"
    local msize mdig
    msize=$(stat -c %s "$dir/manifest.tmp"); mdig=$(blob "$dir" "$dir/manifest.tmp")
    jq -cn --arg d "$mdig" --argjson s "$msize" --arg t "$tag" \
        '{schemaVersion:2,manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$d,size:$s,annotations:{"org.opencontainers.image.ref.name":$t}}]}' >"$dir/index.json"
}
tarball() { # NAME MB -> $WORK/NAME.tar.gz of random content
    mkdir -p "$WORK/src/$1"
    head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$WORK/src/$1/data.bin"
    tar -C "$WORK/src/$1" -c data.bin | pigz -1 >"$WORK/$1.tar.gz"
}
tarball_kb() { # NAME KB -> $WORK/NAME.tar.gz of random content
    mkdir -p "$WORK/src/$1"
    head -c "$(($2 * 1024))" /dev/urandom >"$WORK/src/$1/data.bin"
    tar -C "$WORK/src/$1" -c data.bin | pigz -1 >"$WORK/$1.tar.gz"
}
if [[ $SCENARIOS == *[abc]* ]]; then
    echo "bench-push: making layouts (model ${MODEL_MB} MiB, app ${APP_MB} MiB)" >&2
    tarball model "$MODEL_MB"; tarball app-a "$APP_MB"; tarball app-c "$APP_MB"
    make_layout "$WORK/A" 1 "$WORK/model.tar.gz" "$WORK/app-a.tar.gz"
    make_layout "$WORK/C" 1 "$WORK/model.tar.gz" "$WORK/app-c.tar.gz"
fi
if [[ $SCENARIOS == *d* ]]; then
    echo "bench-push: making a ${MANY}-layer layout (${MANY_KB} KiB per layer)" >&2
    many=()
    for i in $(seq "$MANY"); do tarball_kb "many-$i" "$MANY_KB"; many+=("$WORK/many-$i.tar.gz"); done
    make_layout "$WORK/M" 1 "${many[@]}"
fi
if [[ $SCENARIOS == *e* ]]; then
    echo "bench-push: making a ${COLD}-layer layout (${COLD_MB} MiB per layer)" >&2
    cold=()
    for i in $(seq "$COLD"); do tarball "cold-$i" "$COLD_MB"; cold+=("$WORK/cold-$i.tar.gz"); done
    make_layout "$WORK/L" 1 "${cold[@]}"
fi

# --- a registry behind a counting nginx, per tool -----------------------------
start_registry() { # NAME -> sets PROXY_PORT, LOG
    local rport pport dir=$WORK/reg-$1
    rport=$(free_port); pport=$(free_port)
    mkdir -p "$dir/nginx"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/data}}
http: {addr: 127.0.0.1:$rport}
EOF
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 256; }
http {
    client_body_temp_path $dir/nginx/body; proxy_temp_path $dir/nginx/proxy;
    fastcgi_temp_path $dir/nginx/fcgi; uwsgi_temp_path $dir/nginx/uwsgi; scgi_temp_path $dir/nginx/scgi;
    log_format bytes '\$request_length \$request_method \$status';
    access_log $dir/nginx/access.log bytes;
    server {
        listen 127.0.0.1:$pport;
        client_max_body_size 0;
        location / {
            proxy_pass http://127.0.0.1:$rport;
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_set_header Host \$http_host;
            proxy_read_timeout 600s;
        }
    }
}
EOF
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 & PIDS+=($!)
    nginx -c "$dir/nginx.conf" -p "$dir/nginx" -g 'daemon off;' 2>>"$dir/nginx/error.log" & PIDS+=($!)
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$pport/v2/" 2>/dev/null && break
        sleep 0.1
    done
    PROXY_PORT=$pport; LOG=$dir/nginx/access.log
}

bytes_since() { # LOG LINE -> sum of request_length from line LINE+1 on
    tail -n +"$(($2 + 1))" "$1" | awk '{s += $1} END {print s + 0}'
}
run() { # TOOL LOG -- command...; prints "seconds bytes"
    local log=$2; shift 3
    local before t0 t1
    before=$(wc -l <"$log" 2>/dev/null || echo 0)
    t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
    sleep 0.2 # nginx writes the log line after the response
    echo "$(echo "$t1 - $t0" | bc -l) $(bytes_since "$log" "$before")"
}

stop_registry() { # kills the last registry + nginx pair
    local n=${#PIDS[@]}
    kill "${PIDS[n - 1]}" "${PIDS[n - 2]}" 2>/dev/null || true
    wait "${PIDS[n - 1]}" "${PIDS[n - 2]}" 2>/dev/null || true
    PIDS=("${PIDS[@]:0:n-2}")
}
sk() { skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$1:1" "docker://$2"; }
push_with() { # TOOL DIR REF
    if [[ $1 == ocipack ]]; then ocipack_push "$2" "$3"; else sk "$2" "$3"; fi
}
bench_issue14() { # TOOL REP: (d) and (e), each on a fresh registry
    local tool=$1 rep=$2 H r
    if [[ $SCENARIOS == *d* ]]; then
        start_registry "$tool-$rep-d"; H=127.0.0.1:$PROXY_PORT
        push_with "$tool" "$WORK/M" "$H/bench/many:1" # not timed: the first push
        r=$(run "$tool" "$LOG" -- push_with "$tool" "$WORK/M" "$H/bench/many:1"); T[${tool}d]+=" ${r% *}"; B[${tool}d]=${r#* }
        stop_registry
    fi
    if [[ $SCENARIOS == *e* ]]; then
        start_registry "$tool-$rep-e"; H=127.0.0.1:$PROXY_PORT
        r=$(run "$tool" "$LOG" -- push_with "$tool" "$WORK/L" "$H/bench/cold:1"); T[${tool}e]+=" ${r% *}"; B[${tool}e]=${r#* }
        stop_registry
    fi
}
bench_tool() { # TOOL REP: the three scenarios on a fresh registry; appends to T_*/B_*
    local tool=$1 rep=$2 H r
    bench_issue14 "$tool" "$rep"
    [[ $SCENARIOS == *[abc]* ]] || return 0
    start_registry "$tool-$rep"
    H=127.0.0.1:$PROXY_PORT
    if [[ $tool == ocipack ]]; then
        r=$(run "$tool" "$LOG" -- ocipack_push "$WORK/A" "$H/bench/a:1"); T[${tool}a]+=" ${r% *}"; B[${tool}a]=${r#* }
        r=$(run "$tool" "$LOG" -- ocipack_push "$WORK/A" "$H/bench/a:1"); T[${tool}b]+=" ${r% *}"; B[${tool}b]=${r#* }
        r=$(run "$tool" "$LOG" -- ocipack_push --mount-from bench/a "$WORK/C" "$H/bench/c:1"); T[${tool}c]+=" ${r% *}"; B[${tool}c]=${r#* }
    else
        r=$(run "$tool" "$LOG" -- sk "$WORK/A" "$H/bench/a:1"); T[${tool}a]+=" ${r% *}"; B[${tool}a]=${r#* }
        r=$(run "$tool" "$LOG" -- sk "$WORK/A" "$H/bench/a:1"); T[${tool}b]+=" ${r% *}"; B[${tool}b]=${r#* }
        r=$(run "$tool" "$LOG" -- sk "$WORK/C" "$H/bench/c:1"); T[${tool}c]+=" ${r% *}"; B[${tool}c]=${r#* }
    fi
    stop_registry
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Fresh registries for every repetition; the order alternates so that
# neither tool always runs on a warmer page cache or a quieter machine.
declare -A T B
for rep in $(seq "$REPEAT"); do
    if ((rep % 2)); then bench_tool ocipack "$rep"; bench_tool skopeo "$rep"
    else bench_tool skopeo "$rep"; bench_tool ocipack "$rep"; fi
    echo "bench-push: repetition $rep of $REPEAT done" >&2
done

printf '\nmachine: %s, %s cores, %s; ocipack --jobs %s; %s\n' "$(uname -sr)" "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" "$JOBS" "$(skopeo --version)"
if [[ $SCENARIOS == *[abc]* ]]; then
    printf 'model layer: %s bytes; app layer: %s bytes\n' "$(stat -c %s "$WORK/model.tar.gz")" "$(stat -c %s "$WORK/app-a.tar.gz")"
fi
[[ $SCENARIOS == *d* ]] && printf '(d): %s layers of %s KiB random data (gzip)\n' "$MANY" "$MANY_KB"
[[ $SCENARIOS == *e* ]] && printf '(e): %s layers of %s MiB random data (gzip), %s bytes in all\n' "$COLD" "$COLD_MB" \
    "$(cat "$WORK"/cold-*.tar.gz | wc -c)"
printf 'median wall time of %s runs; bytes are request bytes (line, headers, body) seen by the proxy\n' "$REPEAT"
printf '%-34s | %10s %14s | %10s %14s | %8s\n' scenario "ocipack s" "ocipack bytes" "skopeo s" "skopeo bytes" "speed-up"
printf -- '-----------------------------------+---------------------------+---------------------------+---------\n'
for s in a:"(a) first push" b:"(b) second push, same image" c:"(c) shares the model layer" \
    d:"(d) ${MANY} layers, pushed again" e:"(e) ${COLD} layers, cold push"; do
    k=${s%%:*}; label=${s#*:}
    [[ $SCENARIOS == *$k* ]] || continue
    to=$(median "${T[ocipack$k]}"); ts=$(median "${T[skopeo$k]}")
    printf '%-34s | %10.2f %14s | %10.2f %14s | %7.1fx\n' "$label" \
        "$to" "${B[ocipack$k]}" "$ts" "${B[skopeo$k]}" "$(echo "$ts / $to" | bc -l)"
done
[[ $SCENARIOS == *[abc]* ]] || exit 0

# What ocipack's verification before sending costs (docs/push.md, step 5):
# one extra sha256 pass over each blob above the chunk size (here the model
# layer), before its upload starts. Timed alone, page cache warm as in the
# push; openssl uses SHA-NI like the sha2 crate.
median_hash() {
    local ts="" t0 t1
    for _ in 1 2 3; do
        t0=$(date +%s.%N); openssl dgst -sha256 "$WORK/model.tar.gz" >/dev/null; t1=$(date +%s.%N)
        ts+=" $(echo "$t1 - $t0" | bc -l)"
    done
    median "$ts"
}
printf '\nverification pass over the model layer (sha256, warm cache, median of 3): %.2f s\n' "$(median_hash)"
