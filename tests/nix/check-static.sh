#!/usr/bin/env bash
# Static checks of the Nix files: every tracked .nix file parses, and
# flake.lock is valid JSON (version 7) pinning exactly the inputs flake.nix
# declares. Needs nix-instantiate and python3; no network, no store writes.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

status=0
while IFS= read -r f; do
  if ! nix-instantiate --parse "$f" >/dev/null 2>"${TMPDIR:-/tmp}/parse.err"; then
    echo "FAIL: $f does not parse:" >&2
    cat "${TMPDIR:-/tmp}/parse.err" >&2
    status=1
  fi
done < <(git ls-files '*.nix')

# The inputs flake.nix declares, as Nix sees them (parsing only, no fetching).
declared=$(nix-instantiate --eval --strict --json -E \
  'builtins.mapAttrs (n: i: i.url or "") (import ./flake.nix).inputs')

python3 - "$declared" <<'PY' || status=1
import json, sys
declared = json.loads(sys.argv[1])
try:
    lock = json.load(open("flake.lock"))
except (OSError, ValueError) as e:
    sys.exit(f"FAIL: flake.lock is not valid JSON: {e}")
errors = []
if lock.get("version") != 7:
    errors.append(f"flake.lock version is {lock.get('version')}, expected 7")
nodes = lock.get("nodes", {})
root = nodes.get(lock.get("root", ""), {})
pinned = root.get("inputs", {})
if set(pinned) != set(declared):
    errors.append(f"flake.nix declares {sorted(declared)}, flake.lock pins {sorted(pinned)}")
for name, url in declared.items():
    node = nodes.get(pinned.get(name, ""), {})
    locked, original = node.get("locked", {}), node.get("original", {})
    for key in ("type", "narHash", "lastModified", "rev"):
        if key not in locked:
            errors.append(f"input {name}: locked entry lacks {key}")
    # github:owner/repo/ref must match the lock's original exactly, or Nix re-locks.
    if url.startswith("github:"):
        parts = url[len("github:"):].split("/")
        want = {"type": "github", "owner": parts[0], "repo": parts[1]}
        if len(parts) > 2:
            want["ref"] = parts[2]
        if original != want:
            errors.append(f"input {name}: flake.nix says {url}, lock original is {original}")
        if locked.get("owner") != parts[0] or locked.get("repo") != parts[1]:
            errors.append(f"input {name}: locked {locked.get('owner')}/{locked.get('repo')} is not {parts[0]}/{parts[1]}")
    if len(locked.get("rev", "")) != 40:
        errors.append(f"input {name}: rev is not a full commit hash")
extra = set(nodes) - {"root"} - set(pinned.values())
if extra:
    errors.append(f"flake.lock has nodes no input uses: {sorted(extra)}")
for e in errors:
    print("FAIL:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY

[ "$status" -eq 0 ] && echo "PASS: static nix checks" >&2
exit "$status"
