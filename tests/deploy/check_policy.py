#!/usr/bin/env python3
"""Policy checks on rendered deployment files, run by validate.sh.

Schema validators prove a file is well-formed; these prove it says what the
architecture requires (hardening, health checks, pinned images, isolated
networks, secrets as files). Each check prints what it verified and exits
non-zero with the offending service/resource named.

  check_policy.py compose-prod  RENDERED.json   # `compose config --format json`
  check_policy.py compose-exposure RENDERED.json prod|ops
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


def compose_exposure(path, variant):
    """Networks, published ports and secrets: only nginx is reachable from
    outside; the stores and ML services sit on the gateway-less internal
    network; secrets are files (`*_FILE` settings), never values."""
    cfg = json.loads(Path(path).read_text())
    services = cfg["services"]
    nets = cfg.get("networks") or {}
    internal = [n for n, spec in nets.items() if (spec or {}).get("internal")]
    if "internal" not in internal:
        fail(f"compose {variant}: network `internal` must be internal: true, got {nets}")
    want = {
        "scoring": {"internal", "edge"},
        "face-detection": {"internal"},
        "face-embedding": {"internal"},
        "redis": {"internal"} | ({"ops"} if variant == "ops" else set()),
        "qdrant": {"internal"} | ({"ops"} if variant == "ops" else set()),
        "nginx": {"edge"},
    }
    for name, nets_want in want.items():
        got = set((services.get(name) or {}).get("networks") or {})
        if got != nets_want:
            fail(f"compose {variant} service {name}: networks {sorted(got)}, want {sorted(nets_want)}")
    for name, svc in services.items():
        for p in svc.get("ports") or []:
            if name == "nginx":
                continue
            if variant == "ops" and name in ("redis", "qdrant") and p.get("host_ip") == "127.0.0.1":
                continue
            fail(f"compose {variant} service {name}: publishes {p}; only nginx is published (ops: loopback only)")
        env = svc.get("environment") or {}
        for key, value in env.items():
            if re.search(r"PASSWORD|API_KEY|TOKEN|SECRET", key) and not key.endswith("_FILE") and name != "redis-monitor":
                fail(f"compose {variant} service {name}: {key} is a value; use a secret file ({key}_FILE)")
            if key.endswith("_FILE") and not str(value).startswith("/run/secrets/"):
                fail(f"compose {variant} service {name}: {key}={value!r} is not a mounted secret")
    for name in ("scoring", "face-detection", "face-embedding"):
        env = services[name].get("environment") or {}
        if env.get("SERVICE_TOKEN_FILE") != "/run/secrets/service-token":
            fail(f"compose {variant} service {name}: SERVICE_TOKEN_FILE must be /run/secrets/service-token")
        if int(env.get("SHUTDOWN_DELAY_SECS", "0")) < 1:
            fail(f"compose {variant} service {name}: SHUTDOWN_DELAY_SECS must be set for zero-error rollouts")
        targets = {s.get("target") for s in services[name].get("secrets") or []}
        if "service-token" not in targets:
            fail(f"compose {variant} service {name}: the service_token secret is not mounted")
    for name in ("face-detection", "face-embedding"):
        ml = int((services[name].get("environment") or {}).get("MAX_BODY_BYTES", 10 * 1024 * 1024))
        scoring = int((services["scoring"].get("environment") or {}).get("MAX_BODY_BYTES", 10 * 1024 * 1024))
        if ml < scoring + 64 * 1024:
            fail(f"compose {variant} service {name}: MAX_BODY_BYTES {ml} leaves no room for scoring's "
                 f"multipart wrapping of a {scoring}-byte upload")
    ok(f"compose {variant}: networks isolated (internal: {', '.join(internal)}), only nginx published"
       f"{' (ops: loopback stores)' if variant == 'ops' else ''}, secrets as files, token and shutdown delay set")


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
                if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]:
                    fail(f"{cn}: {e['name']} comes from a Secret as an environment variable; mount it as a file (CKV_K8S_35)")
                if re.search(r"PASSWORD|API_KEY|SECRET|TOKEN", e["name"]):
                    if not e["name"].endswith("_FILE") or not str(e.get("value", "")).startswith("/run/secrets/"):
                        fail(f"{cn}: {e['name']} must be a *_FILE setting naming a mounted secret under /run/secrets")
        short = d["metadata"]["name"]
        if short in STATELESS:
            env = {e["name"]: e.get("value") for c in pod["containers"] for e in c.get("env", [])}
            if env.get("SERVICE_TOKEN_FILE") != "/run/secrets/service-token":
                fail(f"{name}: SERVICE_TOKEN_FILE must be /run/secrets/service-token")
            delay, drain = int(env.get("SHUTDOWN_DELAY_SECS") or 0), int(env.get("SHUTDOWN_DRAIN_SECS") or 20)
            if delay < 1:
                fail(f"{name}: SHUTDOWN_DELAY_SECS must be set (the pause before the listener closes)")
            if pod.get("terminationGracePeriodSeconds", 30) <= delay + drain:
                fail(f"{name}: terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds', 30)} "
                     f"must exceed SHUTDOWN_DELAY_SECS + SHUTDOWN_DRAIN_SECS ({delay + drain})")
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
    ing = [d for d in docs if d["kind"] == "Ingress"]
    if not ing or not all(i["spec"].get("tls") for i in ing):
        fail("k8s: no Ingress with TLS")
    ok(f"k8s render: {len(docs)} objects ({summary}); pods restricted, pinned, probed; secrets as files; "
       f"token, shutdown delay and grace set; Ingress with TLS")


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
    {"compose-prod": compose_prod, "compose-exposure": compose_exposure, "k8s": k8s, "images": images}[cmd](*args)
    if FAILURES:
        sys.exit(f"{len(FAILURES)} policy failure(s)")


if __name__ == "__main__":
    main()
