#!/bin/sh
# Fetch and verify the models, ONNX Runtime and test photos listed in
# models.toml (MODELS_TOML overrides). Usage: scripts/fetch-assets.sh [--dest DIR]
# Default DIR is <repo>/.cache/assets. Needs python3 (3.11+) with pip only.
set -eu
exec python3 "$(dirname "$0")/fetch_assets.py" "$@"
