#!/usr/bin/env python3
"""Independent checks of ocipack's supply-chain outputs (tests/supply-chain/run.sh).

  check.py cyclonedx FILE            CycloneDX 1.6 JSON schema (cyclonedx-python-lib, strict)
  check.py ntia FILE                 ntia-conformance-checker (-k: pyspdxtools validated already) must say conformant
  check.py syft NAME SYFT_JSON CDX   one markdown table row: syft's packages vs ours
  check.py dsse ENVELOPE PUBKEY DIGEST   verify with securesystemslib (not our code); subject = DIGEST
  check.py registry-sig REG REPO TAG PUBKEY   the cosign signature in a registry (tag sha256-<hex>.sig),
                                     verified with `cryptography`: signature, digest, identity
"""
import json
import subprocess
import sys


def cyclonedx(path):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(path).read())
    if err is not None:
        sys.exit(f"{path}: not valid CycloneDX 1.6: {err}")


def ntia(path):
    out = subprocess.run(
        [sys.prefix + "/bin/ntia-checker", "-k", "-r", "json", path],
        capture_output=True, text=True, check=False,
    )
    rep = json.loads(out.stdout)
    if not rep.get("isNtiaConformant"):
        sys.exit(f"{path}: not NTIA conformant: {json.dumps(rep)[:2000]}")


def syft(name, syft_json, cdx):
    found = json.load(open(syft_json))["artifacts"]
    ours = json.load(open(cdx))["components"]
    names = {}
    for c in ours:
        if c.get("type") == "file":
            continue
        names.setdefault(c["name"].lower(), set()).add(c.get("version", ""))
        # a Debian binary package also answers to its source package name
        desc = c.get("description", "")
        if "(source " in desc:
            names.setdefault(desc.split("(source ")[1].rstrip(")").lower(), set()).add(c.get("version", ""))
    matched, missing_deb = 0, []
    for a in found:
        vs = names.get(a["name"].lower())
        ok = vs is not None and (a["version"] in ("", "UNKNOWN") or a["version"] in vs
                                 or any(a["version"] in v or v in a["version"] for v in vs))
        matched += ok
        if not ok and a["type"] == "deb":
            missing_deb.append(a["name"])
    syft_names = {a["name"].lower() for a in found}
    ours_pkgs = [c for c in ours if c.get("type") != "file"]
    not_in_syft = sum(1 for c in ours_pkgs if c["name"].lower() not in syft_names)
    files = sum(1 for c in ours if c.get("type") == "file")
    print(f"| {name} | {len(found)} | {matched} | {len(ours_pkgs)} | {not_in_syft} | {files} | "
          f"{', '.join(missing_deb) or 'none'} |")
    if missing_deb:
        sys.exit(f"{name}: Debian packages syft found that our SBOM lacks: {missing_deb}")


def dsse(envelope, pubkey, digest):
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import Signature, SSlibKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    import base64

    pem = open(pubkey, "rb").read()
    key = SSlibKey.from_crypto(load_pem_public_key(pem), scheme="ecdsa-sha2-nistp256")
    d = json.load(open(envelope))
    # DSSE carries base64 signatures; securesystemslib's Signature holds hex,
    # and matches signatures to keys by its own keyid (the keyid is a hint,
    # not signed).
    sigs = [Signature(key.keyid, base64.b64decode(s["sig"]).hex()) for s in d["signatures"]]
    env = Envelope(base64.b64decode(d["payload"]), d["payloadType"], {s.keyid: s for s in sigs})
    env.verify([key], 1)  # raises VerificationError
    st = json.loads(env.payload)
    assert st["_type"] == "https://in-toto.io/Statement/v1", st["_type"]
    assert st["predicateType"] == "https://slsa.dev/provenance/v1"
    got = "sha256:" + st["subject"][0]["digest"]["sha256"]
    if got != digest:
        sys.exit(f"subject {got} is not {digest}")
    # in-toto's own model of the statement parses it too
    try:
        from in_toto.models.metadata import Envelope as ItEnvelope  # noqa: F401
    except ImportError as e:
        sys.exit(f"in-toto not installed: {e}")


def registry_sig(reg, repo, tag, pubkey):
    import hashlib
    import urllib.request
    import base64
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"

    def get(path, manifest=True):
        req = urllib.request.Request(f"http://{reg}/v2/{repo}/{path}", headers={"Accept": accept} if manifest else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    image = get(f"manifests/{tag}")
    digest = "sha256:" + hashlib.sha256(image).hexdigest()
    sig_manifest = json.loads(get(f"manifests/{digest.replace(':', '-')}.sig"))
    layer = sig_manifest["layers"][0]
    payload = get(f"blobs/{layer['digest']}", manifest=False)
    sig = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    load_pem_public_key(open(pubkey, "rb").read()).verify(sig, payload, ec.ECDSA(hashes.SHA256()))
    crit = json.loads(payload)["critical"]
    if crit["image"]["docker-manifest-digest"] != digest:
        sys.exit(f"the signature names {crit['image']['docker-manifest-digest']}, the tag is {digest}")
    if crit["identity"]["docker-reference"] != f"{reg}/{repo}":
        sys.exit(f"the signature names {crit['identity']['docker-reference']}, not {reg}/{repo}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"cyclonedx": cyclonedx, "ntia": ntia, "syft": syft, "dsse": dsse,
     "registry-sig": registry_sig}[cmd](*args)
