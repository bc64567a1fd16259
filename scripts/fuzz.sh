#!/usr/bin/env bash
# Runs every fuzz target (crates/ocipack-fuzz/src/lib.rs) for longer than CI does, with a
# fresh seed each run. Findings (panics, inputs slower than 2 s) are saved
# under crates/ocipack-fuzz/artifacts/<target>/ and make the script exit 1.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 600 tar    # 10 minutes of the tar target only
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(plan layout tar image)
cargo build --quiet --release -p ocipack-fuzz
status=0
for t in "${targets[@]}"; do
  target/release/ocipack-fuzz "$t" "$secs" || status=1
done
exit $status
