#!/usr/bin/env bash
# The whole test suite (what CI runs): static checks, the Rust tests with the
# real models and real Redis, the deployment checks, the offline Nix tests and
# the end-to-end runs under runc and a real Docker engine.
#
#   scripts/test.sh            everything
#   scripts/test.sh STEP...    only these steps (names below)
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
"$repo/scripts/setup.sh" || exit 1
export ASSETS_DIR=${ASSETS_DIR:-$repo/.cache/assets}
export CARGO_TERM_COLOR=never
# One toolchain (1.91.1, the MSRV) and one debug-info level for every cargo
# step, so clippy, docs, cargo-test and nix-nextest share build scripts,
# proc-macros and test binaries instead of compiling them again. Line
# tables keep backtraces' file:line and make the many test binaries link
# faster than full debug info.
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}

steps=(fmt clippy deny docs assets cargo-test deploy nix nix-flake nix-nextest web e2e-runc e2e-arm64 supply-chain e2e-browser e2e-docker)
[ $# -gt 0 ] && steps=("$@")

# ci_step NAME: runs the command of CI step NAME. (Not tests/e2e/lib.sh's
# run_step, which runs a function as one step of an end-to-end script.)
ci_step() {
  case "$1" in
    fmt) cargo fmt --all -- --check ;;
    clippy) cargo +1.91.1 clippy --workspace --all-targets --locked -- -D warnings ;;
    deny) cargo deny check licenses bans ;;
    docs) RUSTDOCFLAGS="-D warnings" cargo +1.91.1 doc --workspace --no-deps --locked ;;
    assets) scripts/fetch-assets.sh --dest "$ASSETS_DIR" ;;
    # The tests build with Rust 1.91.1, the workspace's rust-version (the Rust of
    # the pinned nixpkgs), so this step is also the MSRV check.
    cargo-test) cargo +1.91.1 test --workspace --locked --no-fail-fast ;;
    deploy) tests/deploy/validate.sh && tests/deploy/lint.sh && tests/deploy/redis-backup-test.sh && tests/deploy/redis-health-test.sh && tests/deploy/qdrant-backup-test.sh && tests/nix/check-static.sh ;;
    nix) tests/nix/run.sh && tests/nix/nix226.sh run tests/nix/run.sh ;;  # Nix 2.8, then 2.26
    nix-flake) tests/nix-flake/run.sh ;;
    nix-nextest) tests/nix/nextest-sandbox.sh ;;
    e2e-runc) tests/e2e/host-images.sh ;;
    e2e-docker) tests/e2e/docker-stack.sh ;;
    e2e-arm64) tests/e2e/arm64.sh ;;  # linux/arm64 images under qemu (issue 16, docs/multi-arch.md)
    web) (. tests/e2e/lib.sh && npm_ci web) && (cd web && npm run --silent typecheck && npm test) ;;
    e2e-browser) tests/e2e/browser.sh ;;
    supply-chain) tests/supply-chain/run.sh ;;
    *) echo "unknown step $1 (known: fmt clippy deny docs assets cargo-test deploy nix nix-flake nix-nextest web e2e-runc e2e-arm64 supply-chain e2e-browser e2e-docker)" >&2; return 2 ;;
  esac
}

passed=0 failed=0 failures=()
for s in "${steps[@]}"; do
  echo "==== $s" >&2
  start=$(date +%s)
  if ci_step "$s"; then
    passed=$((passed + 1)); echo "==== $s: PASS ($(( $(date +%s) - start ))s)" >&2
  else
    failed=$((failed + 1)); failures+=("$s"); echo "==== $s: FAIL ($(( $(date +%s) - start ))s)" >&2
  fi
done
[ ${#failures[@]} -gt 0 ] && echo "failed steps: ${failures[*]}" >&2
echo "test.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
