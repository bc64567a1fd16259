#!/usr/bin/env python3
"""Policy checks on rendered deployment files, run by validate.sh.

Schema validators prove a file is well-formed; these prove it says what the
architecture requires (hardening, health checks, pinned images, the test
override's host networking). Each check prints what it verified and exits
non-zero with the offending service/resource named.

  check_policy.py compose-prod  RENDERED.json   # `compose config --format json`
  check_policy.py compose-test  RENDERED.json
  check_policy.py k8s           RENDERED.yaml   # `kubectl kustomize` output
  check_policy.py images        REPO_ROOT COMPOSE_RENDERED.json
"""
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml  # PyYAML, a dependency of kubernetes-validate

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
STATELESS = {"scoring", "face-detection", "face-embedding"}
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print(f"FAIL: {msg}", file=sys.stderr)


def ok(msg):
    print(f"ok: {msg}")


def compose_prod(path):
    cfg = json.loads(Path(path).read_text())
    services = cfg["services"]
    for name, svc in services.items():
        if name == "redis-monitor":  # dev-only helper, checked for basics below
            continue
        where = f"compose service {name}"
        if not DIGEST.search(svc.get("image", "")) and "build" not in svc:
            fail(f"{where}: image {svc.get('image')!r} is not pinned by digest")
        if svc.get("restart") != "unless-stopped":
            fail(f"{where}: restart is {svc.get('restart')!r}, want unless-stopped")
        if svc.get("read_only") is not True:
            fail(f"{where}: read_only is not true")
        if not any(t.startswith("/tmp") for t in svc.get("tmpfs", [])):
            fail(f"{where}: no tmpfs on /tmp")
        if svc.get("cap_drop") != ["ALL"]:
            fail(f"{where}: cap_drop is {svc.get('cap_drop')}, want [ALL]")
        if "no-new-privileges:true" not in svc.get("security_opt", []):
            fail(f"{where}: no-new-privileges missing")
        if svc.get("user") != "65532:65532":
            fail(f"{where}: user is {svc.get('user')!r}, want 65532:65532")
        test = (svc.get("healthcheck") or {}).get("test") or []
        if not test or test[0] != "CMD":
            fail(f"{where}: healthcheck must exec a binary (CMD form), got {test}")
        limits = (((svc.get("deploy") or {}).get("resources") or {}).get("limits")) or {}
        if not limits.get("memory") or not limits.get("cpus"):
            fail(f"{where}: deploy.resources.limits needs memory and cpus, got {limits}")
        for dep, spec in (svc.get("depends_on") or {}).items():
            if spec.get("condition") != "service_healthy":
                fail(f"{where}: depends_on {dep} is {spec.get('condition')}, want service_healthy")
    if "scoring" in services:
        deps = set(services["scoring"].get("depends_on") or {})
        want = {"face-detection", "face-embedding", "redis"} | ({"qdrant"} if "qdrant" in services else set())
        if deps != want:
            fail(f"compose service scoring: depends_on {sorted(deps)}, want {sorted(want)}")
    ok(f"compose: {len(services)} services hardened, healthchecked, limited, pinned: {', '.join(sorted(services))}")


def compose_test(path):
    cfg = json.loads(Path(path).read_text())
    services = cfg["services"]
    if "qdrant" in services:
        fail("compose test override: qdrant is enabled; it has no host-built image")
    ports = {}
    for name, svc in services.items():
        if svc.get("network_mode") != "host":
            fail(f"compose test service {name}: network_mode is {svc.get('network_mode')!r}, want host")
        if svc.get("ports"):
            fail(f"compose test service {name}: ports {svc['ports']} must be reset under host networking")
        port = (svc.get("environment") or {}).get("PORT")
        if port:
            ports[name] = port
    env = services["scoring"]["environment"]
    for key in ("QDRANT_URL", "QDRANT_API_KEY"):
        if key in env:
            fail(f"compose test service scoring: {key} must be unset without qdrant")
    for key in ("FACE_DETECTION_SERVICE", "FACE_EMBEDDING_SERVICE", "REDIS_URL"):
        if "127.0.0.1:" not in env.get(key, ""):
            fail(f"compose test service scoring: {key}={env.get(key)!r} must point at 127.0.0.1")
    if len(set(ports.values())) != len(ports):
        fail(f"compose test: PORT values collide: {ports}")
    ok(f"compose test override: host networking, no ports, no qdrant, loopback URLs, ports {ports}")


def k8s(path):
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d["metadata"]["name"])
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        name = f"{d['kind']} {d['metadata']['name']}"
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        for k, v in (("runAsNonRoot", True), ("runAsUser", 65532), ("runAsGroup", 65532), ("fsGroup", 65532)):
            if psc.get(k) != v:
                fail(f"{name}: pod securityContext.{k} is {psc.get(k)!r}, want {v!r}")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{name}: pod seccompProfile is not RuntimeDefault")
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            cn = f"{name} container {c['name']}"
            csc = c.get("securityContext", {})
            if csc.get("readOnlyRootFilesystem") is not True:
                fail(f"{cn}: readOnlyRootFilesystem is not true")
            if csc.get("allowPrivilegeEscalation") is not False:
                fail(f"{cn}: allowPrivilegeEscalation is not false")
            if csc.get("capabilities", {}).get("drop") != ["ALL"]:
                fail(f"{cn}: capabilities.drop is not [ALL]")
            if not DIGEST.search(c["image"]):
                fail(f"{cn}: image {c['image']} is not pinned by digest")
            res = c.get("resources", {})
            if not res.get("limits", {}).get("memory") or not res.get("requests", {}).get("cpu"):
                fail(f"{cn}: resources need memory limit and cpu request")
            if not c.get("livenessProbe") or not c.get("readinessProbe"):
                fail(f"{cn}: liveness and readiness probes required")
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            if not tmp or "emptyDir" not in vols.get(tmp[0]["name"], {}):
                fail(f"{cn}: /tmp must be an emptyDir")
            for e in c.get("env", []):
                if re.search(r"PASSWORD|API_KEY|SECRET", e["name"]) and "value" in e:
                    fail(f"{cn}: {e['name']} is a literal; use secretKeyRef")
        short = d["metadata"]["name"]
        if short in STATELESS:
            if d["kind"] != "Deployment":
                fail(f"{name}: stateless service must be a Deployment")
            probes = {c["livenessProbe"]["httpGet"]["path"] for c in pod["containers"]} | {
                c["readinessProbe"]["httpGet"]["path"] for c in pod["containers"]
            }
            if probes != {"/api/health", "/api/ready"}:
                fail(f"{name}: probes {sorted(probes)}, want /api/health and /api/ready")
            for kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler", "Service"):
                if short not in kinds.get(kind, []):
                    fail(f"{name}: no {kind} named {short}")
        if short in ("redis", "qdrant") and not d["spec"].get("volumeClaimTemplates"):
            fail(f"{name}: StatefulSet without volumeClaimTemplates")
    if "Secret" in kinds:
        fail(f"k8s: the render contains Secret(s) {kinds['Secret']}; secrets are created out of band")
    netpols = kinds.get("NetworkPolicy", [])
    for want in ("default-deny-all", "allow-dns-egress", "scoring", "face-detection", "face-embedding", "redis", "qdrant"):
        if want not in netpols:
            fail(f"k8s: NetworkPolicy {want} missing")
    summary = ", ".join(f"{k} {len(v)}" for k, v in sorted(kinds.items()))
    ok(f"k8s render: {len(docs)} objects ({summary}); pods restricted, pinned, probed; no literal secrets")


def images(root, compose_json):
    root = Path(root)
    services = json.loads(Path(compose_json).read_text())["services"]
    # The compose healthcheck must be the one baked into the image: a drift
    # would make `docker run` and compose disagree about health.
    by_image = {"redis": "redis", "nginx": "nginx", "qdrant": "qdrant"}
    for image, service in by_image.items():
        path = root / "images" / f"{image}.toml"
        d = tomllib.loads(path.read_text())
        for key in ("name", "description", "source", "config", "healthcheck", "labels", "layers"):
            if key not in d:
                fail(f"{path}: missing [{key}]")
        if d.get("name") != image:
            fail(f"{path}: name is {d.get('name')!r}, want {image!r}")
        src = d["source"]
        if not src.get("host_binaries") and not src.get("host_unsupported"):
            fail(f"{path}: empty host_binaries needs host_unsupported saying why")
        for binary in src.get("host_binaries", []):
            if not Path(binary).is_file():
                fail(f"{path}: host binary {binary} is not installed here")
        for target, source in (d.get("files") or {}).items():
            if not (root / source).is_file():
                fail(f"{path}: file {target} comes from {source}, which does not exist")
        uses_probe = "/usr/local/bin/http-probe" in d["healthcheck"]["test"]
        if uses_probe != bool(d.get("probe")):
            fail(f"{path}: probe = {d.get('probe')} but the healthcheck {'uses' if uses_probe else 'does not use'} http-probe")
        if "org.opencontainers.image.licenses" not in d["labels"]:
            fail(f"{path}: no licence label")
        if service in services:
            got = services[service]["healthcheck"]["test"]
            if got != d["healthcheck"]["test"]:
                fail(f"{path}: healthcheck {d['healthcheck']['test']} differs from compose service {service}: {got}")
    ok("images/{redis,nginx,qdrant}.toml: complete, sources present, healthchecks match compose")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    {"compose-prod": compose_prod, "compose-test": compose_test, "k8s": k8s, "images": images}[cmd](*args)
    if FAILURES:
        sys.exit(f"{len(FAILURES)} policy failure(s)")


if __name__ == "__main__":
    main()
