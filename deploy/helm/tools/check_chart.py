#!/usr/bin/env python3
"""Checks the GatePulse Helm chart, deploy/helm/gatepulse (SPEC HA-4).

Run by deploy/check.sh inside its virtualenv (deploy/helm/tools/requirements.txt);
needs no network and no cluster. What it checks:

1. Chart.yaml: apiVersion v2, and appVersion equal to the workspace version of the
   repository's Cargo.toml (the version `gp` reports).
2. values.schema.json is a valid JSON Schema (draft-07), and values.yaml and every
   ci/*.yaml (merged over values.yaml, as Helm merges them) validate against it.
3. Every positive case (the chart's defaults with just the required values, and each
   ci/*.yaml) passes `helm lint --strict` and is rendered by Helm itself: the
   helm-python-sdk package binds Helm's Go SDK (Helm v4), so templates, Sprig
   functions and the schema check are Helm's own, not an imitation.
4. Every rendered object validates against the Kubernetes OpenAPI schemas bundled in
   kubernetes-validate (strict: unknown fields are errors), for the oldest Kubernetes
   the chart supports and the newest the package knows. The ServiceMonitor (a
   Prometheus Operator CRD, whose schema is not bundled) is checked by the rules in 5.
5. Rules about the rendered objects: the workload kind and replica count of each
   store mode; probes on /healthz and /readyz; pod security (non-root, read-only root
   file system, no capabilities, RuntimeDefault seccomp); no service links (they
   would inject GATEPULSE_* variables the server refuses); the node id from the
   Downward API; a termination grace period longer than the server's; every
   GATEPULSE_* variable naming a key of router/config/default.toml, with a value of
   that key's type; every Secret reference resolved; selectors of the Service,
   PodDisruptionBudget and ServiceMonitor matching; the PodDisruptionBudget only
   with several nodes; the master key in a chart-made Secret well formed.
6. Negative cases: values that must be refused (by the schema or by a template
   `fail`), each with the message that must say why.
7. README.md's values table names every value of values.yaml.

Exits 1 after printing every failure; prints what it checked.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import re
import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "deploy" / "helm" / "gatepulse"
RELEASE = "gatepulse"
NAMESPACE = "gatepulse"
# Chart.yaml's kubeVersion floor, and the newest schemas kubernetes-validate bundles.
KUBE_OLDEST = "1.27.0"
KUBE_NEWEST = kubernetes_validate.utils.latest_version()
SHUTDOWN_GRACE_DEFAULT = 30
# Client variables the server ignores (router/src/config.rs, Config::figment).
CLIENT_VARIABLES = {"url", "token", "tenant", "profile", "client_config"}

ADMIN_TOKEN = "check-admin-token-0123456789"
MASTER_KEY = "1:" + base64.b64encode(bytes(range(32))).decode()
DB_URL = "postgres://gatepulse:secret@db.example.internal:5432/gatepulse"

failures: list[str] = []
checked: list[str] = []


def fail(where: str, message: str) -> None:
    failures.append(f"{where}: {message}")


def ok(what: str) -> None:
    checked.append(what)
    print(f"ok   {what}")


def coalesce(base: Any, over: Any) -> Any:
    """Helm's merge of user values over the chart's: maps merge key by key, a null
    removes the key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for key, value in over.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = coalesce(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) or {}


# --- the server's configuration keys -------------------------------------------


def config_keys() -> tuple[dict[str, Any], set[str]]:
    """`section.key` → default for every key of default.toml, and the tables that
    take free-form keys (an empty table such as tracing.otlp_headers)."""
    data = tomllib.loads((ROOT / "router" / "config" / "default.toml").read_text())
    keys: dict[str, Any] = {}
    open_tables: set[str] = set()

    def walk(table: dict[str, Any], prefix: list[str]) -> None:
        for key, value in table.items():
            path = prefix + [key]
            if isinstance(value, dict):
                if not value:
                    open_tables.add(".".join(path))
                walk(value, path)
            else:
                keys[".".join(path)] = value

    walk(data, [])
    return keys, open_tables


CONFIG_KEYS, OPEN_TABLES = config_keys()
ENUMS = {"cluster.mode": {"leader", "active-active"}, "log.format": {"json", "text"}}


def check_env_name(where: str, name: str, value: str | None) -> None:
    if not name.startswith("GATEPULSE_"):
        return
    key = ".".join(part.lower() for part in name[len("GATEPULSE_"):].split("__"))
    if key == "config":
        return
    if key in CLIENT_VARIABLES:
        fail(where, f"{name} is a client variable of gp, not a server setting")
        return
    if any(key.startswith(table + ".") for table in OPEN_TABLES):
        return
    if key not in CONFIG_KEYS:
        fail(where, f"{name}: `{key}` is not a key of router/config/default.toml "
                    "(the server refuses unknown GATEPULSE_* variables at start)")
        return
    if value is None or "$(" in value:
        return
    default = CONFIG_KEYS[key]
    if isinstance(default, bool):
        good = value in ("true", "false")
    elif isinstance(default, int):
        good = re.fullmatch(r"[0-9]+", value) is not None
    elif isinstance(default, float):
        good = re.fullmatch(r"[0-9]+(\.[0-9]+)?", value) is not None
    elif isinstance(default, list):
        good = value.startswith("[") and value.endswith("]")
    else:
        good = True
    if key in ENUMS:
        good = value in ENUMS[key]
    if not good:
        fail(where, f"{name}={value!r} does not fit `{key}` (default {default!r})")


def master_key_entries_ok(spec: str) -> bool:
    """The server's reading of master key entries (crypto/keyring.rs, parse_keys)."""
    entries = [e.strip() for e in re.split(r"[\n,]", spec)]
    entries = [e for e in entries if e and not e.startswith("#")]
    if not entries:
        return False
    for entry in entries:
        version, sep, material = entry.partition(":")
        if not sep:
            if len(entries) != 1:
                return False
            material = version
        elif not version.strip().lstrip("vV").isdigit() or int(version.strip().lstrip("vV")) == 0:
            return False
        material = material.strip()
        decoded = None
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(material + "=" * (-len(material) % 4))
                break
            except ValueError:
                continue
        if decoded is None or len(decoded) != 32:
            return False
    return True


# --- rendering -------------------------------------------------------------------


def render(values: dict[str, Any], chart_dir: Path = CHART) -> list[dict[str, Any]]:
    with helm.Chart.load(str(chart_dir)) as chart:
        files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path in sorted(files):
        if path.endswith("NOTES.txt"):
            if not files[path].strip():
                raise AssertionError("NOTES.txt rendered empty")
            continue
        for doc in yaml.safe_load_all(files[path]):
            if doc:
                doc["__file__"] = path
                docs.append(doc)
    return docs


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Helm's Go logger writes a line to fd 2 for every template `fail` that lint
    meets (lint mode only logs them; render() is what checks the guards)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def lint_problems(values: dict[str, Any]) -> list[str]:
    with quiet_stderr():
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE,
                           kube_version=f"v{KUBE_OLDEST}")
    problems = [m["error"] for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    return problems + list(report.get("errors", []))


@dataclass
class Case:
    name: str
    values: dict[str, Any]
    # The oldest Kubernetes whose schemas the rendered objects are checked against.
    kube_oldest: str = KUBE_OLDEST
    merged: dict[str, Any] = field(default_factory=dict)


def positive_cases(defaults: dict[str, Any]) -> list[Case]:
    cases = [
        Case("defaults + required values (postgres)",
             {"postgres": {"url": DB_URL},
              "secrets": {"adminToken": ADMIN_TOKEN, "masterKey": MASTER_KEY}}),
        Case("defaults + required values (embedded)",
             {"store": {"mode": "embedded"},
              "secrets": {"adminToken": ADMIN_TOKEN, "masterKey": MASTER_KEY}}),
    ]
    for path in sorted((CHART / "ci").glob("*.yaml")):
        values = load_yaml(path)
        # preStop.sleep exists from Kubernetes 1.30 on.
        oldest = "1.30.0" if "sleep" in json.dumps(values.get("lifecycle", {})) else KUBE_OLDEST
        cases.append(Case(f"ci/{path.name}", values, oldest))
    for case in cases:
        case.merged = coalesce(defaults, case.values)
    return cases


# --- rules about rendered objects ------------------------------------------------


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def subset(small: dict[str, str], big: dict[str, str]) -> bool:
    return all(big.get(k) == v for k, v in small.items())


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def check_rendered(case: Case, docs: list[dict[str, Any]]) -> None:
    where = case.name
    values = case.merged
    mode = values["store"]["mode"]
    replicas = 1 if mode == "embedded" else values.get("replicas", 3)

    # Every object: schema-valid, labelled, named within limits.
    for doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name", "")
        label = f"{where}: {kind}/{name}"
        labels = doc.get("metadata", {}).get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                    "app.kubernetes.io/managed-by", "helm.sh/chart"):
            if key not in labels:
                fail(label, f"no label {key}")
        if len(name) > 63:
            fail(label, "name longer than 63 characters")
        if kind == "ServiceMonitor":
            continue
        body = {k: v for k, v in doc.items() if k != "__file__"}
        for version in sorted({case.kube_oldest, KUBE_NEWEST}):
            try:
                kubernetes_validate.validate(body, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                fail(label, f"Kubernetes {version} schema: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                fail(label, e.message)

    workloads = by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet")
    if len(workloads) != 1:
        fail(where, f"expected one workload, found {[w['kind'] for w in workloads]}")
        return
    workload = workloads[0]
    expected_kind = "StatefulSet" if mode == "embedded" else "Deployment"
    if workload["kind"] != expected_kind:
        fail(where, f"store.mode {mode} should render a {expected_kind}, not a {workload['kind']}")
    if workload["spec"].get("replicas") != replicas:
        fail(where, f"replicas {workload['spec'].get('replicas')}, expected {replicas}")

    template = workload["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    if not subset(workload["spec"]["selector"]["matchLabels"], pod_labels):
        fail(where, "the workload's selector does not match its pod labels")
    pod = template["spec"]
    if pod.get("enableServiceLinks") is not False:
        fail(where, "enableServiceLinks must be false (service links inject GATEPULSE_* "
                    "variables that the server refuses as unknown keys)")
    if pod.get("automountServiceAccountToken") is not False:
        fail(where, "the pod mounts a service account token it does not need")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("runAsUser") in (None, 0):
        fail(where, "the pod must run as a non-root user")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail(where, "the pod's seccompProfile must be RuntimeDefault")

    containers = pod["containers"]
    if len(containers) != 1:
        fail(where, f"expected one container, found {len(containers)}")
    c = containers[0]
    sc = c.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True:
        fail(where, "readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        fail(where, "allowPrivilegeEscalation must be false")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        fail(where, "capabilities must drop ALL")
    if sc.get("capabilities", {}).get("add"):
        fail(where, "no capability may be added")
    if c.get("args") != ["serve"]:
        fail(where, f"the container runs {c.get('args')}, not `gp serve`")
    tag = values["image"]["tag"] or load_yaml(CHART / "Chart.yaml")["appVersion"]
    if c["image"] != f"{values['image']['repository']}:{tag}":
        fail(where, f"image {c['image']}")

    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports.get("http") != 8080:
        fail(where, f"the container's http port is {ports.get('http')}, not 8080")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ("http", 8080):
            fail(where, f"{probe} must GET {path} on port 8080, found {get}")

    env = env_of(c)
    names = [e["name"] for e in c.get("env", [])]
    if len(names) != len(set(names)):
        fail(where, f"environment variables set twice: {sorted({n for n in names if names.count(n) > 1})}")
    for name, entry in env.items():
        check_env_name(where, name, entry.get("value"))
    for entry in values.get("extraEnv") or []:
        if env.get(entry["name"]) != entry:
            fail(where, f"extraEnv {entry['name']} is not in the container as given: {env.get(entry['name'])}")
    expect = {"GATEPULSE_LISTEN": "0.0.0.0:8080", "GATEPULSE_DATA_DIR": "/data"}
    if mode == "embedded":
        expect["GATEPULSE_STORE"] = "redb"
    for name, value in expect.items():
        if env.get(name, {}).get("value") != value:
            fail(where, f"{name} should be {value!r}, found {env.get(name)}")
    if mode == "postgres" and "secretKeyRef" not in env.get("GATEPULSE_STORE", {}).get("valueFrom", {}):
        fail(where, "GATEPULSE_STORE (the PostgreSQL URL) must come from a Secret")
    node_id = env.get("GATEPULSE_CLUSTER__NODE_ID", {}).get("valueFrom", {}).get("fieldRef", {})
    if node_id.get("fieldPath") != "metadata.name":
        fail(where, "GATEPULSE_CLUSTER__NODE_ID must be the pod name (Downward API metadata.name)")
    for name in ("GATEPULSE_CLUSTER__MODE", "GATEPULSE_CLUSTER__LEADER_TTL_MS",
                 "GATEPULSE_CLUSTER__ELECTION_INTERVAL_MS", "GATEPULSE_CLUSTER__TRUST_MARGIN_MS",
                 "GATEPULSE_CLUSTER__ADVERTISE_ADDRESS", "GATEPULSE_ADMIN_TOKEN",
                 "GATEPULSE_MASTER_KEY_FILE"):
        if name not in env:
            fail(where, f"{name} is not set")
    if env.get("GATEPULSE_CLUSTER__MODE", {}).get("value") != values["cluster"]["mode"]:
        fail(where, "GATEPULSE_CLUSTER__MODE does not follow cluster.mode")
    grace = int(env.get("GATEPULSE_SHUTDOWN_GRACE_SECS", {}).get("value", SHUTDOWN_GRACE_DEFAULT))
    if pod.get("terminationGracePeriodSeconds", 30) <= grace:
        fail(where, f"terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds')} "
                    f"must exceed the server's shutdown grace ({grace} s)")

    # Volumes: /data from the claim (embedded) or an emptyDir (postgres), a writable
    # /tmp, the master key file where GATEPULSE_MASTER_KEY_FILE says.
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claims = [t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])]
    for mount in c.get("volumeMounts", []):
        if mount["name"] not in volumes and mount["name"] not in claims:
            fail(where, f"volumeMount {mount['name']} names no volume of the pod")
    data = mounts.get("/data")
    if mode == "embedded":
        if data not in claims or data in volumes:
            fail(where, "/data must be the StatefulSet's PersistentVolumeClaim")
    elif data not in volumes or "emptyDir" not in volumes[data]:
        fail(where, "/data must be an emptyDir")
    if "/tmp" not in mounts or "emptyDir" not in volumes.get(mounts["/tmp"], {}):
        fail(where, "/tmp must be an emptyDir (the root file system is read-only)")
    key_file = env.get("GATEPULSE_MASTER_KEY_FILE", {}).get("value", "")
    key_dir, _, key_name = key_file.rpartition("/")
    key_volume = volumes.get(mounts.get(key_dir, ""), {}).get("secret", {})
    if key_name not in [i["path"] for i in key_volume.get("items", [])]:
        fail(where, f"GATEPULSE_MASTER_KEY_FILE {key_file} is not a mounted Secret key")

    # Secret references: a Secret the chart renders (holding the key), or one the
    # values name as existing.
    secrets = {s["metadata"]["name"]: s for s in by_kind(docs, "Secret")}
    external = {values["postgres"].get("existingSecret"), values["secrets"].get("existingSecret"),
                values["metrics"]["tokenSecret"].get("name")} - {"", None}
    refs = [(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in env.values() if "secretKeyRef" in e.get("valueFrom", {})]
    refs += [(v["secret"]["secretName"], i["key"]) for v in volumes.values() if "secret" in v
             for i in v["secret"].get("items", [])]
    for name, key in refs:
        if name in secrets:
            if key not in secrets[name].get("data", {}):
                fail(where, f"Secret {name} has no key {key}")
        elif name not in external:
            fail(where, f"a reference to Secret {name}, which is neither rendered nor named in the values")
    for name, secret in secrets.items():
        data_ = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        if "master-key" in data_ and not master_key_entries_ok(data_["master-key"]):
            fail(where, f"Secret {name}: master-key is not `<version>:<base64 of 32 bytes>` entries")
        if "admin-token" in data_ and len(data_["admin-token"]) < 16:
            fail(where, f"Secret {name}: admin-token is shorter than 16 characters")
        if "postgres-url" in data_ and not re.match(r"postgres(ql)?://", data_["postgres-url"]):
            fail(where, f"Secret {name}: postgres-url is not a postgres:// URL")
    if secrets and "checksum/secret" not in template["metadata"].get("annotations", {}):
        fail(where, "the pods carry no checksum/secret annotation (a changed Secret would not roll them)")

    # Services: the API Service selects the pods on the http port; the StatefulSet's
    # governing Service is headless.
    services = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    api = [s for s in services.values() if s["metadata"]["labels"].get("gatepulse.io/service") == "api"]
    if len(api) != 1:
        fail(where, "expected one API Service")
    for svc in services.values():
        if not subset(svc["spec"]["selector"], pod_labels):
            fail(where, f"Service {svc['metadata']['name']} does not select the pods")
        for port in svc["spec"]["ports"]:
            if port.get("targetPort") not in ("http", 8080):
                fail(where, f"Service {svc['metadata']['name']} targets port {port.get('targetPort')}")
    if workload["kind"] == "StatefulSet":
        governing = services.get(workload["spec"].get("serviceName"))
        if not governing or governing["spec"].get("clusterIP") != "None":
            fail(where, "the StatefulSet's serviceName must be a headless Service of the chart")
        if workload["spec"].get("podManagementPolicy") != "OrderedReady":
            fail(where, "the StatefulSet's podManagementPolicy should be OrderedReady")
    elif len(services) != 1:
        fail(where, "store.mode postgres needs no headless Service")

    pdbs = by_kind(docs, "PodDisruptionBudget")
    want_pdb = values["podDisruptionBudget"]["enabled"] and replicas > 1
    if want_pdb != bool(pdbs):
        fail(where, f"{'no' if want_pdb else 'a'} PodDisruptionBudget with {replicas} replica(s)")
    for pdb in pdbs:
        if not subset(pdb["spec"]["selector"]["matchLabels"], pod_labels):
            fail(where, "the PodDisruptionBudget does not select the pods")
        if pdb["spec"].get("minAvailable") != values["podDisruptionBudget"]["minAvailable"]:
            fail(where, "the PodDisruptionBudget's minAvailable does not follow the values")

    monitors = by_kind(docs, "ServiceMonitor")
    if values["metrics"]["serviceMonitor"]["enabled"] != bool(monitors):
        fail(where, "metrics.serviceMonitor.enabled does not decide the ServiceMonitor")
    for sm in monitors:
        if sm.get("apiVersion") != "monitoring.coreos.com/v1":
            fail(where, f"ServiceMonitor apiVersion {sm.get('apiVersion')}")
        matched = [s for s in services.values()
                   if subset(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        if [s["metadata"]["name"] for s in matched] != [s["metadata"]["name"] for s in api]:
            fail(where, f"the ServiceMonitor selects {[s['metadata']['name'] for s in matched]}, not the API Service alone")
        for endpoint in sm["spec"]["endpoints"]:
            if endpoint.get("path") != "/metrics":
                fail(where, "the ServiceMonitor must scrape /metrics")
            if api and endpoint.get("port") not in [p["name"] for p in api[0]["spec"]["ports"]]:
                fail(where, f"the ServiceMonitor's port {endpoint.get('port')} is not a port of the API Service")
            token = values["metrics"]["tokenSecret"]
            if token["name"]:
                creds = endpoint.get("authorization", {}).get("credentials", {})
                if creds != {"name": token["name"], "key": token["key"]}:
                    fail(where, "the ServiceMonitor does not send the metrics token")

    sa = values["serviceAccount"]
    if sa["create"] and not by_kind(docs, "ServiceAccount"):
        fail(where, "serviceAccount.create renders no ServiceAccount")


# --- negative cases --------------------------------------------------------------

REQUIRED = {"postgres": {"url": DB_URL}, "secrets": {"adminToken": ADMIN_TOKEN, "masterKey": MASTER_KEY}}
EMBEDDED = {"store": {"mode": "embedded"}, "secrets": REQUIRED["secrets"]}


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in layers:
        out = coalesce(out, layer)
    return out


# (what, values over the defaults, text the refusal must contain, refused by the schema too)
NEGATIVE: list[tuple[str, dict[str, Any], str, bool]] = [
    ("the defaults alone (no database, token or key)", {}, "needs a database", False),
    ("embedded with replicas 3", merged(EMBEDDED, {"replicas": 3}), "replicas", True),
    ("embedded with a PostgreSQL URL", merged(EMBEDDED, {"postgres": {"url": DB_URL}}), "store.mode is embedded", False),
    ("postgres.url and postgres.existingSecret both", merged(REQUIRED, {"postgres": {"existingSecret": "db"}}), "not both", False),
    ("a store mode that does not exist", merged(REQUIRED, {"store": {"mode": "redb"}}), "store", True),
    ("a URL that is not postgres://", merged(REQUIRED, {"postgres": {"url": "mysql://db/gatepulse"}}), "url", True),
    ("no admin token", merged(REQUIRED, {"secrets": {"adminToken": ""}}), "secrets.adminToken", False),
    ("an admin token of 8 characters", merged(REQUIRED, {"secrets": {"adminToken": "12345678"}}), "adminToken", True),
    ("no master key", merged(REQUIRED, {"secrets": {"masterKey": ""}}), "secrets.masterKey", False),
    ("a master key that is not base64 of 32 bytes", merged(REQUIRED, {"secrets": {"masterKey": "1:short"}}), "masterKey", True),
    ("a misspelt top-level value (replica)", merged(REQUIRED, {"replica": 3}), "replica", True),
    ("a misspelt nested value (cluster.modee)", merged(REQUIRED, {"cluster": {"modee": "leader"}}), "modee", True),
    ("a cluster mode that does not exist", merged(REQUIRED, {"cluster": {"mode": "active"}}), "mode", True),
    ("leaderTtlMs below 1000", merged(REQUIRED, {"cluster": {"leaderTtlMs": 500}}), "leaderTtlMs", True),
    ("trustMarginMs not below leaderTtlMs", merged(REQUIRED, {"cluster": {"trustMarginMs": 5000}}), "trustMarginMs", False),
    ("electionIntervalMs over half the trust window", merged(REQUIRED, {"cluster": {"electionIntervalMs": 2500}}), "electionIntervalMs", False),
    ("a termination grace not above the shutdown grace", merged(REQUIRED, {"terminationGracePeriodSeconds": 30}), "terminationGracePeriodSeconds", False),
    ("commitConcurrency not below poolSize", merged(REQUIRED, {"postgres": {"poolSize": 4, "commitConcurrency": 4}}), "commitConcurrency", False),
    ("replicas 0", merged(REQUIRED, {"replicas": 0}), "replicas", True),
    ("a string where a number goes", merged(REQUIRED, {"postgres": {"poolSize": "16"}}), "poolSize", True),
    ("an extraEnv entry with a misspelt field", merged(REQUIRED, {"extraEnv": [{"name": "GATEPULSE_LOG__LEVEL", "valu": "debug"}]}), "valu", True),
    ("a probe removed (probes.liveness: null)", merged(REQUIRED, {"probes": {"liveness": None}}), "liveness", True),
]


def check_negative(defaults: dict[str, Any], validator: jsonschema.Draft7Validator) -> None:
    for what, values, needle, by_schema in NEGATIVE:
        label = f"refused: {what}"
        try:
            render(values)
        except helm.HelmError as e:
            message = str(e)
            if needle not in message:
                fail(label, f"refused, but the message does not mention `{needle}`: {message}")
            else:
                first = " ".join(message.split())[:160]
                ok(f"{label} — {first}")
        else:
            fail(label, "Helm rendered these values")
            continue
        schema_errors = list(validator.iter_errors(coalesce(defaults, values)))
        if by_schema and not schema_errors:
            fail(label, "values.schema.json accepts these values (only a template refuses them)")
        if not by_schema and schema_errors:
            fail(label, f"values.schema.json refuses them too (mark the case): {schema_errors[0].message}")
    # The template guard behind the schema rule for embedded replicas, for installs
    # with --skip-schema-validation: rendered from a copy of the chart without its
    # schema (helm lint cannot tell: in lint mode Helm logs a template `fail`).
    label = "refused without values.schema.json: embedded with replicas 3"
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "gatepulse"
        shutil.copytree(CHART, bare, ignore=shutil.ignore_patterns("values.schema.json"))
        try:
            render(merged(EMBEDDED, {"replicas": 3}), bare)
        except helm.HelmError as e:
            if "exactly one node" in str(e):
                ok(f"{label} (template fail)")
            else:
                fail(label, f"refused, but not by the template guard: {e}")
        else:
            fail(label, "Helm rendered these values")


# --- documentation ---------------------------------------------------------------


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        out = []
        for key, value in values.items():
            out += leaf_paths(value, f"{prefix}.{key}" if prefix else key)
        return out
    return [prefix]


def check_readme(defaults: dict[str, Any]) -> None:
    readme = (CHART / "README.md").read_text()
    missing = [p for p in leaf_paths(defaults) + ["replicas"] if f"`{p}`" not in readme]
    if missing:
        fail("deploy/helm/gatepulse/README.md", f"the values table does not name {missing}")
    else:
        ok(f"README.md's values table names all {len(leaf_paths(defaults)) + 1} values")


# --- main ------------------------------------------------------------------------


def main() -> int:
    chart_meta = load_yaml(CHART / "Chart.yaml")
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    workspace_version = cargo["workspace"]["package"]["version"]
    if chart_meta.get("apiVersion") != "v2":
        fail("Chart.yaml", "apiVersion must be v2")
    if str(chart_meta.get("appVersion")) != workspace_version:
        fail("Chart.yaml", f"appVersion {chart_meta.get('appVersion')!r} is not the workspace "
                           f"version {workspace_version!r} of Cargo.toml")
    else:
        ok(f"Chart.yaml: apiVersion v2, appVersion {workspace_version} = Cargo.toml's version")

    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    defaults = load_yaml(CHART / "values.yaml")
    for error in validator.iter_errors(defaults):
        fail("values.yaml", f"{'/'.join(map(str, error.path))}: {error.message}")
    ok("values.schema.json is a draft-07 schema; values.yaml validates against it")

    print(f"     Helm {helm.helm_sdk_version()} (helm-python-sdk, libhelm_c {helm.helm_c_version()}); "
          f"Kubernetes schemas {KUBE_OLDEST}–{KUBE_NEWEST} (kubernetes-validate {kubernetes_validate.__version__})")
    for case in positive_cases(defaults):
        for error in validator.iter_errors(case.merged):
            fail(case.name, f"schema: {'/'.join(map(str, error.path))}: {error.message}")
        for problem in lint_problems(case.values):
            fail(case.name, f"helm lint --strict: {problem}")
        try:
            docs = render(case.values)
        except (helm.HelmError, AssertionError) as e:
            fail(case.name, f"does not render: {e}")
            continue
        before = len(failures)
        check_rendered(case, docs)
        if len(failures) == before:
            kinds = ", ".join(sorted(f"{d['kind']}" for d in docs))
            versions = " and ".join(sorted({case.kube_oldest, KUBE_NEWEST}))
            ok(f"{case.name}: schema, helm lint --strict, rendered ({kinds}), "
               f"valid for Kubernetes {versions}, chart rules hold")

    check_negative(defaults, validator)
    check_readme(defaults)

    if failures:
        print(f"\n{len(failures)} problem(s) in the Helm chart:", file=sys.stderr)
        for f in failures:
            print(f"FAIL {f}", file=sys.stderr)
        return 1
    print(f"chart checks: {len(checked)} passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
