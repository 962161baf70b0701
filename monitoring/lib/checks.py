#!/usr/bin/env python3
"""The Python half of monitoring/check: one subcommand per check; exit 1 with reasons on failure.

Environment: MON (the monitoring dir under test), CATALOG (tests/data/catalog.tsv), REF (the upstream
reference folder, may be absent: checks that need it are skipped by monitoring/check)."""
import copy
import json
import os
import pathlib
import re
import subprocess
import sys

import jsonschema

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import (CONSTANT_LABELS, EXTERNAL_LABELS, KSM_SERIES, PROMETHEUS_SERIES, RELEASE,  # noqa: E402
                    RUNBOOK_BASE, TARGET_LABELS, Env, agg_modifier, chart_defaults, dig, effective_values, fail_if,
                    load_defaults, load_docs, load_yaml, parse_promql, promql_walk, result_labels, selector_matches,
                    series_families)


# ====================================================================== 1. custom resources vs CRD schemas
def strict(schema):
    """Add additionalProperties: false to every object level that lists properties (typos then fail)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        for k, v in schema.items():
            if k in ("properties", "patternProperties", "definitions"):
                for sub in v.values():
                    strict(sub)
            elif k in ("items", "additionalProperties", "not"):
                strict(v)
            elif k in ("anyOf", "oneOf", "allOf"):
                for sub in v:
                    strict(sub)
    return schema


STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {"type": "object", "required": ["name"], "properties": {
    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
    "namespace": {"type": "string"}, "labels": STR_MAP, "annotations": STR_MAP}}
# Core kinds have no CRD: a deliberately small strict schema for the fields these files may use.
CORE_SCHEMAS = {
    ("v1", "Service"): {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "properties": {
        "apiVersion": {"const": "v1"}, "kind": {"const": "Service"}, "metadata": OBJECT_META,
        "spec": {"type": "object", "required": ["selector", "ports"], "properties": {
            "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
            "clusterIP": {"type": "string"}, "selector": STR_MAP,
            "ports": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["port"], "properties": {
                "name": {"type": "string"}, "port": {"type": "integer"}, "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
                "targetPort": {"type": ["integer", "string"]}, "appProtocol": {"type": "string"}}}}}}}},
    ("networking.k8s.io/v1", "NetworkPolicy"): {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"const": "networking.k8s.io/v1"}, "kind": {"const": "NetworkPolicy"},
                       "metadata": OBJECT_META, "spec": {"type": "object"}}},
    ("v1", "ConfigMap"): {"type": "object", "required": ["apiVersion", "kind", "metadata"], "properties": {
        "apiVersion": {"const": "v1"}, "kind": {"const": "ConfigMap"}, "metadata": OBJECT_META,
        "data": STR_MAP, "binaryData": STR_MAP, "immutable": {"type": "boolean"}}},
}


def crd_schemas(env):
    out = {}
    for f in sorted((env.ref / "crds").glob("*.yaml")):
        for crd in load_docs(f):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                s = copy.deepcopy(v["schema"]["openAPIV3Schema"])
                s.setdefault("required", [])
                s["required"] = sorted(set(s["required"]) | {"apiVersion", "kind", "metadata", "spec"})
                s["properties"]["metadata"] = OBJECT_META
                out[(f"{group}/{v['name']}", kind)] = strict(s)
    for k, s in CORE_SCHEMAS.items():
        out[k] = strict(copy.deepcopy(s))
    return out


KUBE_VALIDATE_VERSION = "1.33.0"   # the Kubernetes schema version kubernetes-validate checks core kinds against


def core_kind_errors(env, files):
    """Core Kubernetes kinds (no CRD): kubernetes-validate --strict, which rejects unknown fields."""
    import tempfile
    errors = []
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for f in files:
            for i, doc in enumerate(load_docs(f)):
                if isinstance(doc, dict) and doc.get("kind") and "monitoring.coreos.com" not in str(doc.get("apiVersion")):
                    out = pathlib.Path(d) / f"{f.stem}-{i}.yaml"
                    out.write_text(json.dumps(doc), encoding="utf-8")
                    paths.append((f.relative_to(env.mon), out))
        for rel, out in paths:
            p = subprocess.run(["kubernetes-validate", "--strict", "--quiet", "-k", KUBE_VALIDATE_VERSION, str(out)],
                               capture_output=True, text=True)
            if p.returncode:
                errors.append(f"{rel}: kubernetes-validate --strict (Kubernetes {KUBE_VALIDATE_VERSION}): "
                              + (p.stdout + p.stderr).strip().replace(str(out), "")[:300])
    return errors


def check_crds(env):
    schemas = crd_schemas(env)
    errors, seen = [], []
    files = [p for p in sorted(env.mon.rglob("*.yaml")) if ".tools" not in p.parts]
    for f in files:
        for doc in load_docs(f):
            if not isinstance(doc, dict) or "kind" not in doc:
                continue  # Helm values / promtool test files carry no kind
            key = (doc.get("apiVersion"), doc["kind"])
            rel = f.relative_to(env.mon)
            if key not in schemas:
                errors.append(f"{rel}: no schema for {key[0]} {key[1]}")
                continue
            v = jsonschema.Draft7Validator(schemas[key])
            for e in sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                where = "/".join(str(p) for p in e.absolute_path) or "(root)"
                errors.append(f"{rel}: {doc['kind']} {dig(doc, 'metadata.name')}: {where}: {e.message[:200]}")
            seen.append(doc["kind"])
    errors += core_kind_errors(env, files)
    for need in ("ServiceMonitor", "PrometheusRule", "Service", "ConfigMap", "NetworkPolicy"):
        if need not in seen:
            errors.append(f"no {need} found under monitoring/")
    fail_if(errors, f"{len(seen)} resources valid against strict schemas ({', '.join(sorted(set(seen)))}); core kinds "
                    f"also through kubernetes-validate --strict (Kubernetes {KUBE_VALIDATE_VERSION})")


# ====================================================================== 2. values key paths vs chart defaults
VALUES_FILES = ("prometheus-values.yaml", "pagerduty-integration.yaml", "fleet-values.yaml")

# Maps that are free-form although their upstream default is not {}/null: checked by other tools.
FREE_FORM = {"alertmanager.config"}  # Alertmanager configuration: amtool check-config


def key_path_errors(ours, upstream, prefix, errors):
    for k, v in ours.items():
        path = f"{prefix}{k}"
        if path in FREE_FORM:
            continue
        if not isinstance(upstream, dict) or k not in upstream:
            errors.append(f"{path}: no such key in the chart's default values")
            continue
        u = upstream[k]
        if isinstance(v, dict):
            if u is None or u == {}:
                continue  # free-form map upstream (selectors, resources, storageSpec, ...)
            if not isinstance(u, dict):
                errors.append(f"{path}: a map here, but the chart's default is {type(u).__name__}")
                continue
            key_path_errors(v, u, path + ".", errors)


def check_values(env):
    defaults = chart_defaults(env)
    errors = []
    for f in VALUES_FILES:
        ours = load_yaml(env.mon / f) or {}
        errs = []
        key_path_errors(ours, defaults, "", errs)
        errors += [f"{f}: {e}" for e in errs]
    fail_if(errors, "every key path exists in kube-prometheus-stack 88.5.3 defaults (grafana: incl. subchart)")


# ====================================================================== 3. the pieces line up
def effective_selector(vals, kind):
    sel = dig(vals, f"prometheus.prometheusSpec.{kind}Selector") or {}
    if not sel and dig(vals, f"prometheus.prometheusSpec.{kind}SelectorNilUsesHelmValues", True):
        sel = {"matchLabels": {"release": RELEASE}}  # what the chart renders for an empty selector
    return sel


def check_wiring(env):
    vals = effective_values(env)
    errors = []
    docs = {}
    for f in ("servicemonitor.yaml", "alert-rules.yaml", "dashboards/configmap.yaml"):
        for d in load_docs(env.mon / f):
            docs.setdefault(d["kind"], []).append(d)
    svcs, sms, rules = docs.get("Service", []), docs.get("ServiceMonitor", []), docs.get("PrometheusRule", [])
    if not (svcs and sms and rules):
        errors.append("need a Service and a ServiceMonitor (servicemonitor.yaml) and a PrometheusRule (alert-rules.yaml)")
    # Prometheus picks our objects
    for kind, objs, sel_name in (("ServiceMonitor", sms, "serviceMonitor"), ("PrometheusRule", rules, "rule")):
        sel = effective_selector(vals, sel_name)
        for o in objs:
            if not selector_matches(sel, dig(o, "metadata.labels")):
                errors.append(f"{kind} {dig(o, 'metadata.name')} labels {dig(o, 'metadata.labels')} "
                              f"not picked by prometheus.prometheusSpec.{sel_name}Selector {sel}")
        ns_sel = dig(vals, f"prometheus.prometheusSpec.{sel_name}NamespaceSelector")
        if ns_sel != {}:
            errors.append(f"prometheus.prometheusSpec.{sel_name}NamespaceSelector must be {{}} (all namespaces): "
                          f"{kind}s live in dchat's namespace; got {ns_sel!r}")
    # the ServiceMonitor selects the dchat Service and names its metrics port
    for sm in sms:
        picked = [s for s in svcs if selector_matches(dig(sm, "spec.selector", {}), dig(s, "metadata.labels"))]
        if [dig(s, "metadata.name") for s in picked] != ["dchat"]:
            errors.append(f"ServiceMonitor {dig(sm, 'metadata.name')} must select exactly the Service dchat, "
                          f"selects {[dig(s, 'metadata.name') for s in picked]}")
        for s in picked:
            ports = {p.get("name"): p for p in dig(s, "spec.ports", [])}
            for ep in dig(sm, "spec.endpoints", []):
                if ep.get("port") not in ports:
                    errors.append(f"ServiceMonitor endpoint port {ep.get('port')!r} is not a port name of "
                                  f"Service {dig(s, 'metadata.name')} ({sorted(ports)})")
                if ep.get("path", "/metrics") != "/metrics":
                    errors.append(f"ServiceMonitor endpoint path {ep.get('path')!r}, dchat serves /metrics")
                if ep.get("honorLabels"):
                    errors.append("honorLabels must stay false (README: dchat's `service` arrives as exported_service)")
            mp = ports.get("metrics")
            if not mp or mp.get("targetPort") not in ("metrics", 9090) or mp.get("port") != 9090:
                errors.append(f"Service {dig(s, 'metadata.name')}: port `metrics` must be 9090 -> container port "
                              f"`metrics`/9090, got {mp}")
            if dig(s, "spec.selector") != {"app.kubernetes.io/name": "dchat"}:
                errors.append(f"Service dchat must select app.kubernetes.io/name: dchat, got {dig(s, 'spec.selector')}")
        if dig(sm, "spec.jobLabel") and dig(sm, "spec.jobLabel") not in (dig(picked[0], "metadata.labels") if picked else {}):
            errors.append(f"ServiceMonitor jobLabel {dig(sm, 'spec.jobLabel')} is not a label of the Service")
    # the Grafana sidecar picks the dashboard ConfigMap
    label, value = dig(vals, "grafana.sidecar.dashboards.label"), dig(vals, "grafana.sidecar.dashboards.labelValue")
    if not dig(vals, "grafana.sidecar.dashboards.enabled"):
        errors.append("grafana.sidecar.dashboards.enabled is not true")
    for cm in docs.get("ConfigMap", []):
        if dig(cm, "metadata.labels", {}).get(label) != value:
            errors.append(f"ConfigMap {dig(cm, 'metadata.name')} lacks label {label}: {value!r} that the sidecar watches")
        sn = dig(vals, "grafana.sidecar.dashboards.searchNamespace")
        if sn != "ALL" and dig(cm, "metadata.namespace") not in str(sn or "monitoring").split(","):
            errors.append(f"ConfigMap namespace {dig(cm, 'metadata.namespace')} outside sidecar searchNamespace {sn}")
    errors += install_errors(vals, sms)
    errors += fleet_errors(env, rules)
    errors += https_variant_errors(env, sms)
    errors += network_policy_errors(env, svcs)
    readme = (env.mon / "README.md").read_text(encoding="utf-8")
    if f"helm install {RELEASE} prometheus-community/kube-prometheus-stack" not in readme:
        errors.append(f"README.md does not install the release as `{RELEASE}` (the selectors depend on it)")
    note = "" if env.ref else " (reference absent: chart defaults not merged)"
    fail_if(errors, "ServiceMonitor/PrometheusRule picked by the release's selectors, ServiceMonitor -> Service "
                    f"dchat port metrics with a sampleLimit, dashboard ConfigMap labelled for the sidecar; volumes and "
                    f"upgrades (retentionSize headroom, Alertmanager storage, Grafana Recreate); fleet values{note}")


def https_variant_errors(env, sms):
    """servicemonitor-https.yaml: the same ServiceMonitor as servicemonitor.yaml but for scheme https with a CA and
    basic auth from Secrets (or ConfigMaps), so switching to it changes nothing else."""
    errors = []
    f = env.mon / "servicemonitor-https.yaml"
    if not f.is_file():
        return ["servicemonitor-https.yaml missing (the ServiceMonitor for a /metrics behind TLS and basic auth)"]
    var = [d for d in load_docs(f) if d.get("kind") == "ServiceMonitor"]
    if len(var) != 1 or not sms:
        return ["servicemonitor-https.yaml must hold exactly one ServiceMonitor"]
    v, plain = var[0], sms[0]
    if dig(v, "metadata") != dig(plain, "metadata"):
        errors.append("servicemonitor-https.yaml: metadata must equal servicemonitor.yaml's (it replaces that object)")
    for k in set(plain["spec"]) | set(v["spec"]):
        if k != "endpoints" and plain["spec"].get(k) != v["spec"].get(k):
            errors.append(f"servicemonitor-https.yaml: spec.{k} differs from servicemonitor.yaml "
                          f"({v['spec'].get(k)!r} vs {plain['spec'].get(k)!r})")
    for pe, ve in zip(plain["spec"]["endpoints"], v["spec"]["endpoints"]):
        for k in set(pe) | set(ve):
            if k not in ("scheme", "tlsConfig", "basicAuth") and pe.get(k) != ve.get(k):
                errors.append(f"servicemonitor-https.yaml: endpoint {k} differs from servicemonitor.yaml")
        if ve.get("scheme") != "https":
            errors.append("servicemonitor-https.yaml: scheme must be https")
        ca = dig(ve, "tlsConfig.ca") or {}
        if not (dig(ca, "secret.name") or dig(ca, "configMap.name")):
            errors.append("servicemonitor-https.yaml: tlsConfig.ca must come from a Secret or ConfigMap")
        if dig(ve, "tlsConfig.insecureSkipVerify"):
            errors.append("servicemonitor-https.yaml: insecureSkipVerify defeats the TLS")
        if not dig(ve, "tlsConfig.serverName"):
            errors.append("servicemonitor-https.yaml: tlsConfig.serverName needed (Prometheus dials pod IPs; the "
                          "certificate names a DNS name)")
        for part in ("username", "password"):
            if not (dig(ve, f"basicAuth.{part}.name") and dig(ve, f"basicAuth.{part}.key")):
                errors.append(f"servicemonitor-https.yaml: basicAuth.{part} must be a Secret key reference")
    return errors


def network_policy_errors(env, svcs):
    """networkpolicy.yaml: selects dchat's pods; only Prometheus' pods of the monitoring namespace reach port 9090."""
    errors = []
    f = env.mon / "networkpolicy.yaml"
    if not f.is_file():
        return ["networkpolicy.yaml missing (only Prometheus may reach /metrics)"]
    pols = [d for d in load_docs(f) if d.get("kind") == "NetworkPolicy"]
    if len(pols) != 1:
        return ["networkpolicy.yaml must hold one NetworkPolicy"]
    spec = pols[0]["spec"]
    if dig(spec, "podSelector.matchLabels") != {"app.kubernetes.io/name": "dchat"}:
        errors.append("NetworkPolicy must select dchat's pods (app.kubernetes.io/name: dchat)")
    if spec.get("policyTypes") != ["Ingress"]:
        errors.append("NetworkPolicy policyTypes must be [Ingress] (egress is not this policy's business)")
    metrics_rules = []
    for r in spec.get("ingress") or []:
        ports = r.get("ports") or []
        if not ports:
            errors.append("NetworkPolicy: an ingress rule without ports opens every port, /metrics included")
        for pt in ports:
            if pt.get("port") in (9090, "metrics") or (isinstance(pt.get("port"), int) and pt.get("endPort")
                                                       and pt["port"] <= 9090 <= pt["endPort"]):
                metrics_rules.append(r)
    if len(metrics_rules) != 1:
        errors.append(f"NetworkPolicy: exactly one ingress rule may open port 9090, found {len(metrics_rules)}")
    for r in metrics_rules:
        peers = r.get("from") or []
        if not peers:
            errors.append("NetworkPolicy: the rule for port 9090 has no `from`: it admits everyone")
        for peer in peers:
            ns = dig(peer, "namespaceSelector.matchLabels") or {}
            pod = peer.get("podSelector") or {}
            if ns != {"kubernetes.io/metadata.name": RELEASE} or not pod:
                errors.append(f"NetworkPolicy: port 9090 peer {peer} must be Prometheus' pods (podSelector) in "
                              f"namespace {RELEASE} (namespaceSelector kubernetes.io/metadata.name)")
            elif not selector_matches(pod, {"app.kubernetes.io/name": "prometheus"}):
                errors.append(f"NetworkPolicy: port 9090 podSelector {pod} does not select the operator's Prometheus "
                              "pods (app.kubernetes.io/name: prometheus)")
    return errors


def quantity_bytes(q):
    """Kubernetes quantity (50Gi, 1G, ...) -> bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|K|M|G|T|P|k)?", str(q).strip())
    if not m:
        return None
    mult = {None: 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
            "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50}[m.group(2)]
    return float(m.group(1)) * mult


def prom_size_bytes(s):
    """Prometheus' --storage.tsdb.retention.size (powers of 2: 1KB = 1024B) -> bytes."""
    m = re.fullmatch(r"(\d+)(B|KB|MB|GB|TB|PB|EB)", str(s).strip())
    if not m:
        return None
    return int(m.group(1)) * 1024 ** ["B", "KB", "MB", "GB", "TB", "PB", "EB"].index(m.group(2))


def install_errors(vals, sms):
    """What makes installs and upgrades work in a cluster: limits, volumes, rollout strategy."""
    errors = []
    for sm in sms:
        limit = dig(sm, "spec.sampleLimit")
        if not isinstance(limit, int) or limit <= 0:
            errors.append(f"ServiceMonitor {dig(sm, 'metadata.name')}: no sampleLimit; one node with many channels "
                          "could exceed Prometheus' memory (README: Capacity)")
    pvc = dig(vals, "prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec.resources.requests.storage")
    size = dig(vals, "prometheus.prometheusSpec.retentionSize")
    vb, sb = quantity_bytes(pvc) if pvc else None, prom_size_bytes(size) if size else None
    if not (vb and sb):
        errors.append(f"Prometheus needs a volume and a retentionSize (got volume {pvc!r}, retentionSize {size!r})")
    elif sb > 0.8 * vb:
        errors.append(f"prometheus retentionSize {size} is {sb / vb:.0%} of the {pvc} volume: keep it at most 80% "
                      "(compaction and the WAL need room)")
    for comp, key in (("prometheus", "prometheus.prometheusSpec.replicas"), ("alertmanager", "alertmanager.alertmanagerSpec.replicas")):
        n = dig(vals, key)
        if not isinstance(n, int) or n < 2:
            errors.append(f"{key} is {n!r}: run 2 replicas (one {comp} pod lost or rescheduled must not blind or "
                          "silence the stack)")
        if not dig(vals, f"{comp}.podDisruptionBudget.enabled"):
            errors.append(f"{comp}.podDisruptionBudget.enabled: a node drain may take both replicas at once")
    if "created-timestamp-zero-ingestion" not in (dig(vals, "prometheus.prometheusSpec.enableFeatures") or []):
        errors.append("prometheus.prometheusSpec.enableFeatures lacks created-timestamp-zero-ingestion (Prometheus 3 "
                      "then counts the first increment of a new series from its _created line)")
    if not dig(vals, "alertmanager.alertmanagerSpec.storage.volumeClaimTemplate.spec.resources.requests.storage"):
        errors.append("alertmanager.alertmanagerSpec.storage has no volumeClaimTemplate: silences and the "
                      "notification log are lost on every restart")
    if dig(vals, "grafana.persistence.enabled"):
        modes = dig(vals, "grafana.persistence.accessModes") or ["ReadWriteOnce"]
        strategy = dig(vals, "grafana.deploymentStrategy.type")
        if "ReadWriteOnce" in modes and strategy != "Recreate":
            errors.append(f"Grafana has a ReadWriteOnce volume but deploymentStrategy {strategy!r}: an upgrade "
                          "hangs on Multi-Attach when the new pod lands on another node (use Recreate)")
    return errors


def fleet_errors(env, rules):
    """fleet-values.yaml: remote write to the long-term store, shards, and shards that skip the fleet rules."""
    errors = []
    fleet_file = env.mon / "fleet-values.yaml"
    if not fleet_file.is_file():
        return ["fleet-values.yaml missing (the fleet path: sharding and remote write)"]
    vals = effective_values(env, ("prometheus-values.yaml", "pagerduty-integration.yaml", "fleet-values.yaml"))
    spec = dig(vals, "prometheus.prometheusSpec") or {}
    rws = spec.get("remoteWrite") or []
    if not rws or not all(re.match(r"^https?://[^/]+/api/v1/write$", str(r.get("url", ""))) for r in rws):
        errors.append(f"fleet-values.yaml: prometheusSpec.remoteWrite needs a Prometheus remote-write URL, got {rws}")
    for r in rws:
        drops = [c for c in r.get("writeRelabelConfigs") or [] if c.get("action") == "labeldrop"
                 and re.fullmatch(str(c.get("regex")), "prometheus_replica")]
        if not drops:
            errors.append("fleet-values.yaml: remoteWrite must drop prometheus_replica (HA copies deduplicate)")
    if not isinstance(spec.get("shards"), int) or spec["shards"] < 2:
        errors.append(f"fleet-values.yaml: prometheusSpec.shards must be 2 or more, got {spec.get('shards')!r}")
    sel = effective_selector(vals, "rule")
    for r in rules:
        labels = dig(r, "metadata.labels") or {}
        scope = labels.get("dchat.io/rule-scope")
        picked = selector_matches(sel, labels)
        if scope == "fleet" and picked:
            errors.append(f"fleet-values.yaml: the shards' ruleSelector {sel} picks PrometheusRule "
                          f"{dig(r, 'metadata.name')} (fleet scope: must run centrally, in vmalert)")
        if scope != "fleet" and not picked:
            errors.append(f"fleet-values.yaml: the shards' ruleSelector {sel} drops PrometheusRule "
                          f"{dig(r, 'metadata.name')} (scope {scope})")
    if not selector_matches(sel, {"release": RELEASE}):
        errors.append(f"fleet-values.yaml: the shards' ruleSelector {sel} drops the chart's own rules")
    # the shards evaluate the node-scope rules: they must keep the longest window those read, with a day to spare
    # (Prometheus deletes whole blocks, and a window at the edge of retention reads a partial day)
    longest = max((duration_s(w) for r in rules if dig(r, "metadata.labels", {}).get("dchat.io/rule-scope") != "fleet"
                   for g in r["spec"]["groups"] for rr in g["rules"]
                   for w in re.findall(r"\[(\d+[smhdw])(?::[^\]]*)?\]", rr["expr"])), default=0)
    ret = duration_s(spec.get("retention", "0s"))
    if ret < longest + 86400:
        errors.append(f"fleet-values.yaml: the shards keep {spec.get('retention')} but evaluate windows of "
                      f"{longest // 3600}h: keep at least the longest window plus a day")
    ext = spec.get("externalLabels") or {}
    if ext.get("prometheus_shard") != "$(SHARD)":
        errors.append("fleet-values.yaml: externalLabels.prometheus_shard must be \"$(SHARD)\" (each shard names itself "
                      "in the store; DchatPrometheusShardDown counts them)")
    if not ext.get("cluster"):
        errors.append("fleet-values.yaml: externalLabels.cluster must name the cluster")
    shard_alert = next((rr for r in rules for g in r["spec"]["groups"] for rr in g["rules"]
                        if rr.get("alert") == "DchatPrometheusShardDown"), None)
    if shard_alert is None:
        errors.append("alert-rules.yaml: DchatPrometheusShardDown missing (a dead shard's targets vanish silently)")
    else:
        got = [int(x) for x in re.findall(r"< (\d+)", shard_alert["expr"])]
        if got != [spec.get("shards")]:
            errors.append(f"DchatPrometheusShardDown compares with {got}, fleet-values.yaml deploys "
                          f"{spec.get('shards')} shards: keep them equal")
    return errors


def check_configmap(env):
    errors = []
    gen = subprocess.run([sys.executable, str(env.mon / "generate-dashboards-configmap"), "--dir",
                          str(env.mon / "dashboards"), "--stdout"], capture_output=True, text=True)
    if gen.returncode:
        errors.append("generator failed: " + gen.stderr.strip())
    committed = (env.mon / "dashboards" / "configmap.yaml").read_text(encoding="utf-8")
    if gen.stdout != committed:
        errors.append("dashboards/configmap.yaml differs from a fresh generation: run "
                      "monitoring/generate-dashboards-configmap")
    cms = [d for d in load_docs(env.mon / "dashboards" / "configmap.yaml") if d.get("kind") == "ConfigMap"]
    data = {}
    for cm in cms:
        data.update(cm.get("data") or {})
    files = {p.name: p.read_bytes().decode("utf-8") for p in sorted((env.mon / "dashboards").glob("*.json"))}
    for name, text in files.items():
        if name not in data:
            errors.append(f"{name} missing from the ConfigMap")
        elif data[name] != text:
            errors.append(f"{name}: ConfigMap value is not byte-for-byte the JSON file")
    for name in set(data) - set(files):
        errors.append(f"ConfigMap key {name} has no dashboards/{name}")
    fail_if(errors, f"ConfigMap equals a fresh generation and holds {len(files)} dashboard(s) byte for byte")


# ====================================================================== 4. promtool test coverage
def rules_of(env):
    pr = [d for d in load_docs(env.mon / "alert-rules.yaml") if d.get("kind") == "PrometheusRule"]
    return [r for d in pr for g in d["spec"]["groups"] for r in g["rules"]]


def alert_labels(env):
    """alert name -> the labels its alerts carry (expression result + rule labels + alertname), or None."""
    cat = env.catalog()
    rec = recorded(env)
    out = {}
    for r in rules_of(env):
        if "alert" in r:
            ls = result_labels(parse_promql(r["expr"]), cat, rec)
            out[r["alert"]] = None if ls is None else ls | set(r.get("labels") or {}) | {"alertname"}
    return out


def rule_docs(env):
    return [d for d in load_docs(env.mon / "alert-rules.yaml") if d.get("kind") == "PrometheusRule"]


def crosses_nodes(expr):
    """Whether some part of the expression aggregates over the nodes (by () without instance and node_id)."""
    import promql_parser as p
    for node, _ in promql_walk(parse_promql(expr)):
        if isinstance(node, p.AggregateExpr):
            kind, labels = agg_modifier(node)
            if kind != "without" and not {"instance", "node_id"} & set(labels):
                return True
        if isinstance(node, p.Call) and node.func.name in ("absent", "absent_over_time"):
            return True
    return False


def check_rule_scope(env):
    """node-scope rules must keep the node (they run on any shard); fleet-scope ones compare nodes; every by/on keeps
    `cluster` (the fleet path's shared store holds several clusters)."""
    import promql_parser as p
    cat = env.catalog()
    rec = recorded(env)
    errors, counts = [], {}
    docs = rule_docs(env)
    scopes = [dig(d, "metadata.labels", {}).get("dchat.io/rule-scope") for d in docs]
    if sorted(scopes) != ["fleet", "node"]:
        errors.append(f"alert-rules.yaml needs one PrometheusRule per scope (dchat.io/rule-scope: node, fleet), "
                      f"has {scopes}")
    for d, scope in zip(docs, scopes):
        for g in d["spec"]["groups"]:
            for r in g["rules"]:
                name = r.get("alert") or r.get("record")
                counts[scope] = counts.get(scope, 0) + 1
                labels = result_labels(parse_promql(r["expr"]), cat, rec)
                keeps_node = labels is not None and bool(labels & {"instance", "node_id"})
                if scope == "node" and not keeps_node:
                    errors.append(f"{name} (scope node) aggregates across nodes (result labels {sorted(labels or [])}): "
                                  "on a shard it would see part of a namespace; move it to the fleet PrometheusRule")
                if scope == "fleet" and "record" in r:
                    errors.append(f"{name}: recording rules belong to the node scope (the shards record them)")
                if scope == "fleet" and not crosses_nodes(r["expr"]):
                    errors.append(f"{name} (scope fleet) compares nothing across nodes: move it to the node "
                                  "PrometheusRule")
    for d in docs:
        for g in d["spec"]["groups"]:
            for r in g["rules"]:
                name = r.get("alert") or r.get("record")
                for node, _ in promql_walk(parse_promql(r["expr"])):
                    lists = []
                    if isinstance(node, p.AggregateExpr):
                        kind, labels = agg_modifier(node)
                        if kind == "by":
                            lists.append(("by", labels))
                    if isinstance(node, p.BinaryExpr) and node.modifier and node.modifier.matching is not None \
                            and str(node.modifier.matching.type).endswith(("On", "Include")) \
                            and node.modifier.matching.labels:
                        lists.append(("on", list(node.modifier.matching.labels)))
                    for kw, labels in lists:
                        if "cluster" not in labels:
                            errors.append(f"{name}: {kw} ({', '.join(labels)}) without `cluster`: two clusters "
                                          "sharing the long-term store would mix")
    fail_if(errors, f"{counts.get('node', 0)} node-scope rules keep instance or node_id; "
                    f"{counts.get('fleet', 0)} fleet-scope alerts compare the nodes of a namespace; every by/on keeps cluster")


def check_test_coverage(env):
    alerts = sorted({r["alert"] for r in rules_of(env) if "alert" in r})
    tests = load_yaml(env.mon / "alert-rules.test.yaml")
    fires, silent = set(), set()
    for t in tests.get("tests", []):
        for a in t.get("alert_rule_test", []) or []:
            (fires if a.get("exp_alerts") else silent).add(a["alertname"])
        for e in t.get("promql_expr_test", []) or []:
            m = re.fullmatch(r'ALERTS\{alertname="(\w+)", alertstate="firing"\}', e.get("expr", "").strip())
            if m and e.get("exp_samples"):
                fires.add(m.group(1))
    errors = []
    for a in alerts:
        if a not in fires:
            errors.append(f"{a}: no test case where it fires")
        if a not in silent:
            errors.append(f"{a}: no test case where it stays silent")
    for a in (fires | silent) - set(alerts):
        errors.append(f"test names unknown alert {a}")
    fail_if(errors, f"each of {len(alerts)} alerts has a firing and a silent test case")


# ====================================================================== 5. Alertmanager configuration
def am_config(env):
    vals = effective_values(env, ("prometheus-values.yaml", "pagerduty-integration.yaml"))
    return vals, dig(vals, "alertmanager.config")


def write_am_config(env, out):
    import yaml
    _, cfg = am_config(env)
    pathlib.Path(out).write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")


def secret_files(cfg):
    """(receiver, key, path) for every *_file setting of the Alertmanager receivers."""
    out = []

    def walk(o, receiver):
        if isinstance(o, dict):
            for k, v in o.items():
                if k.endswith("_file") and isinstance(v, str):
                    out.append((receiver, k, v))
                else:
                    walk(v, receiver)
        elif isinstance(o, list):
            for v in o:
                walk(v, receiver)
    for r in cfg.get("receivers", []):
        walk(r, r.get("name"))
    return out


def am_matcher(m):
    """'name op "value"' -> (name, op, value)."""
    g = re.fullmatch(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*', m)
    if not g:
        raise ValueError(f"cannot read matcher {m!r}")
    return g.groups()


def am_matches(matchers, labels):
    for n, op, v in map(am_matcher, matchers):
        have = labels.get(n, "")
        ok = {"=": have == v, "!=": have != v, "=~": re.fullmatch(v, have) is not None,
              "!~": re.fullmatch(v, have) is None}[op]
        if not ok:
            return False
    return True


def pd_severity(template, severity):
    """PagerDuty severity a receiver sends for an alert of `severity`: a literal, or the one template form
    used here: {{ if eq .CommonLabels.severity "X" }}A{{ else }}B{{ end }}."""
    m = re.fullmatch(r'\{\{ if eq \.CommonLabels\.severity "(\w+)" \}\}(\w+)\{\{ else \}\}(\w+)\{\{ end \}\}', template or "")
    if m:
        return m.group(2) if severity == m.group(1) else m.group(3)
    return template


# Inhibitions that must exist (source alert, target alert, labels that must be equal): one page per cause.
REQUIRED_INHIBITIONS = [
    ("DchatTargetDown", "TargetDown", {"cluster", "namespace", "job"}),            # the chart's generic TargetDown
    ("DchatTargetDown", "KubePodCrashLooping", {"cluster", "namespace", "pod"}),   # the chart's pod alerts
    ("DchatTargetDown", "KubePodNotReady", {"cluster", "namespace", "pod"}),
    ("DchatNoReadyNode", "DchatNotReady", {"cluster", "namespace", "job"}),
    ("DchatMessagesNotDelivered", "DchatNodeNotReceiving", {"cluster", "namespace", "job"}),
    ("DchatHighMessageLatencyP99", "DchatHighMessageLatencyP95", {"cluster", "namespace", "instance"}),
    ("DchatMessageLatencyBudgetBurn", "DchatMessageLatencyBudgetBurnSlow", {"cluster", "namespace", "node_id"}),
    ("DchatMessageLatencyBudgetBurn", "DchatHighMessageLatencyP95", {"cluster", "namespace", "node_id"}),
    ("DchatMessageLatencyBudgetBurn", "DchatHighMessageLatencyP99", {"cluster", "namespace", "node_id"}),
    ("DchatMessageDeliveryBudgetBurn", "DchatMessageDeliveryBudgetBurnSlow", {"cluster", "namespace", "node_id"}),
    # one node losing its relays: one page, not three
    ("DchatRelayConnectionsGone", "DchatMessageDeliveryBudgetBurn", {"cluster", "namespace", "node_id"}),
    ("DchatRelayConnectionsGone", "DchatMessageDeliveryBudgetBurnSlow", {"cluster", "namespace", "node_id"}),
    ("DchatRelayConnectionsGone", "DchatNodeNotReceiving", {"cluster", "namespace", "node_id"}),
]
# Alertmanager's own alerts about notifications it could not deliver (the chart's alertmanager.rules).
AM_FAILED_ALERTS = ("AlertmanagerFailedToSendAlerts", "AlertmanagerClusterFailedToSendAlerts")
HEARTBEAT_MAX_REPEAT_S = 300


def check_am_structure(env):
    vals, cfg = am_config(env)
    errors = []
    secrets = dig(vals, "alertmanager.alertmanagerSpec.secrets") or []
    receivers = {r["name"]: r for r in cfg.get("receivers", [])}
    pd = {n: r["pagerduty_configs"] for n, r in receivers.items() if r.get("pagerduty_configs")}
    if not pd:
        errors.append("no receiver with pagerduty_configs")
    for name, confs in pd.items():
        for c in confs:
            for bad in ("routing_key", "service_key", "service_key_file"):
                if bad in c:
                    errors.append(f"{name}: uses {bad}; read the Events v2 key with routing_key_file from a Secret")
            if not c.get("routing_key_file"):
                errors.append(f"{name}: no routing_key_file")
            if c.get("send_resolved") is not True:
                errors.append(f"{name}: send_resolved must be true (resolved alerts resolve the incident)")
    for rcv, key, path in secret_files(cfg):
        m = re.match(r"^/etc/alertmanager/secrets/([^/]+)/[^/]+$", path)
        if not m or m.group(1) not in secrets:
            errors.append(f"{rcv}: {key} {path!r} is not a file of a Secret listed in "
                          f"alertmanager.alertmanagerSpec.secrets {secrets}")
    route = cfg.get("route", {})

    def receiver_for(labels):
        for r in route.get("routes", []):
            if am_matches(r.get("matchers", []), labels):
                return r["receiver"], r
        return route.get("receiver"), route
    for severity, pd_sev in (("critical", "critical"), ("warning", "warning"), ("info", "info")):
        rcv, _ = receiver_for({"alertname": "DchatX", "severity": severity})
        got = {pd_severity(c.get("severity"), severity) for c in pd.get(rcv, [])}
        if rcv not in pd or got != {pd_sev}:
            errors.append(f"severity={severity} alerts must reach a PagerDuty receiver sending severity {pd_sev}; "
                          f"got {rcv} {got}")
    # nothing is dropped silently: only Watchdog (heartbeat) and InfoInhibitor may avoid PagerDuty
    for labels in ({"alertname": "X", "severity": "page"}, {"alertname": "X"}, {"alertname": "X", "severity": "none"}):
        rcv, _ = receiver_for(labels)
        if rcv not in pd:
            errors.append(f"an alert with labels {labels} reaches {rcv!r}: any unknown severity must still page")
    for r in route.get("routes", []):
        if r["receiver"] not in pd and not (am_matches(r.get("matchers", []), {"alertname": "Watchdog", "severity": "none"})
                                            or am_matches(r.get("matchers", []), {"alertname": "InfoInhibitor", "severity": "none"})):
            errors.append(f"route to {r['receiver']!r} ({r.get('matchers')}) takes alerts away from PagerDuty")
    # the dead man's switch
    rcv, hb_route = receiver_for({"alertname": "Watchdog", "severity": "none"})
    hb = receivers.get(rcv, {})
    hooks = hb.get("webhook_configs") or []
    if not hooks:
        errors.append(f"Watchdog reaches {rcv!r}: it must go to a heartbeat receiver (webhook_configs)")
    for h in hooks:
        if h.get("send_resolved") is not False:
            errors.append(f"{rcv}: send_resolved must be false (a heartbeat pings only while Watchdog fires)")
        if not (h.get("url") or h.get("url_file")):
            errors.append(f"{rcv}: no url")
    rep = hb_route.get("repeat_interval") or route.get("repeat_interval")
    if not rep or duration_s(rep) > HEARTBEAT_MAX_REPEAT_S:
        errors.append(f"{rcv}: repeat_interval {rep} - the heartbeat must repeat at least every "
                      f"{HEARTBEAT_MAX_REPEAT_S // 60} minutes")
    gi = hb_route.get("group_interval") or route.get("group_interval")
    if not gi or duration_s(gi) > HEARTBEAT_MAX_REPEAT_S:
        errors.append(f"{rcv}: group_interval {gi} - Alertmanager repeats only at a group_interval flush")
    pd_failure_mutes_watchdog = False
    for ir in cfg.get("inhibit_rules", []):
        if am_matches(ir.get("target_matchers", []), {"alertname": "Watchdog", "severity": "none"}):
            src = ir.get("source_matchers", [])
            only_pd_failures = all(am_matches(src, {"alertname": a, "integration": "pagerduty", "severity": "warning"})
                                   for a in AM_FAILED_ALERTS) and \
                not am_matches(src, {"alertname": "DchatTargetDown", "severity": "critical"}) and \
                not am_matches(src, {"alertname": AM_FAILED_ALERTS[0], "integration": "webhook", "severity": "warning"})
            if only_pd_failures:
                pd_failure_mutes_watchdog = True
            else:
                errors.append(f"inhibit rule {ir.get('source_matchers')} can silence Watchdog (the heartbeat); only "
                              "PagerDuty delivery failures may (they must reach someone)")
    if not pd_failure_mutes_watchdog:
        errors.append("no inhibit rule lets Alertmanager's failures to notify PagerDuty (" + ", ".join(AM_FAILED_ALERTS)
                      + ', integration="pagerduty") stop the heartbeat: a wrong or revoked PagerDuty key would be '
                      "reported only to PagerDuty")
    if env.ref is not None and not (dig(vals, "defaultRules.create") and dig(vals, "defaultRules.rules.general")):
        errors.append("defaultRules.rules.general is off: the chart's Watchdog alert (the heartbeat) is gone")
    for k in ("group_by", "group_wait", "group_interval", "repeat_interval"):
        if not route.get(k):
            errors.append(f"route.{k} not set")
    if not {"cluster", "namespace", "alertname"} <= set(route.get("group_by") or []):
        errors.append(f"route.group_by {route.get('group_by')} must hold cluster, namespace and alertname (one "
                      "Alertmanager for several clusters must not fold them into one incident)")
    # inhibitions: the required ones, and every equal label carried by both dchat alerts
    labels_of = alert_labels(env)
    rules = cfg.get("inhibit_rules", [])
    for src, tgt, equal in REQUIRED_INHIBITIONS:
        hit = [r for r in rules if am_matches(r.get("source_matchers", []), {"alertname": src, "severity": "critical"})
               and am_matches(r.get("target_matchers", []), {"alertname": tgt, "severity": "warning"})
               and set(r.get("equal", [])) == equal]
        if not hit:
            errors.append(f"no inhibit rule where {src} inhibits {tgt} with equal {sorted(equal)}")
    for r in rules:
        srcs = [a for a in labels_of if am_matches(r.get("source_matchers", []), {"alertname": a})
                and any(m.strip().startswith("alertname") for m in r.get("source_matchers", []))]
        tgts = [a for a in labels_of if am_matches(r.get("target_matchers", []), {"alertname": a})
                and any(m.strip().startswith("alertname") for m in r.get("target_matchers", []))]
        for a in srcs + tgts:
            # `cluster` is an external label: on every alert of the fleet path, on none of a single Prometheus
            missing = set(r.get("equal", [])) - {"cluster"} - (labels_of[a] or set(r.get("equal", [])))
            if missing:
                errors.append(f"inhibit rule {r.get('source_matchers')} -> {r.get('target_matchers')}: {a} has no "
                              f"{sorted(missing)} label, so `equal` compares empty values (inhibits everything or nothing)")
    fail_if(errors, "PagerDuty: critical->high urgency, warning/info/unknown->low, send_resolved, keys from mounted "
                    "Secrets; Watchdog -> heartbeat (repeating, never inhibited); grouping; inhibitions one page per "
                    "cause, equal labels present on both alerts")


def duration_s(d):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", str(d))
    return sum(int(n) * units[u] for n, u in parts)


# ====================================================================== 6. metrics vs the catalogue
ALLOWED_LABELS = TARGET_LABELS - {"service"} | CONSTANT_LABELS | {"le", "__name__"}


def recorded(env):
    return {r["record"]: r["expr"] for r in rules_of(env) if "record" in r}


def dashboard_exprs(env):
    """(where, expr, panel) for every query of every dashboard; label_values() variable queries too."""
    out = []
    for f in sorted((env.mon / "dashboards").glob("*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        for p in all_panels(d):
            for t in p.get("targets", []) or []:
                if "expr" in t:
                    out.append((f"{f.name} panel {p.get('title')!r} {t.get('refId')}", t["expr"], p))
        for v in dig(d, "templating.list", []) or []:
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            if v.get("type") == "query" and isinstance(q, str):
                m = re.match(r"^\s*label_values\((.*),\s*\w+\)\s*$", q)
                if m:
                    out.append((f"{f.name} variable {v.get('name')}", m.group(1), None))
                elif re.match(r"^\s*(query_result)\((.*)\)\s*$", q):
                    out.append((f"{f.name} variable {v.get('name')}", re.match(r"^\s*query_result\((.*)\)\s*$", q).group(1), None))
    return out


def all_panels(d):
    for p in d.get("panels", []) or []:
        yield p
        for c in p.get("panels", []) or []:
            yield c


def usage_errors(expr, series, rec, record_name=None, cat=None, all_rec=None):
    """Catalogue membership and usage rules for one PromQL expression. Returns (errors, families used)."""
    import promql_parser as p
    errors, used = [], set()
    try:
        ast = parse_promql(expr)
    except Exception as e:  # noqa: BLE001 - the parser raises plain exceptions
        return [f"PromQL does not parse: {e}"], used
    for node, anc in promql_walk(ast):
        if isinstance(node, p.AggregateExpr):
            kind, labels = agg_modifier(node)
            for l in labels:
                if l == "service":
                    errors.append("groups by `service`: the operator's label (dchat's own is exported_service)")
            inner = result_labels(node.expr, cat, all_rec if all_rec is not None else rec) if cat else None
            if kind == "by" and inner is not None and set(labels) - inner:
                errors.append(f"{node.op} by ({', '.join(labels)}): the series it aggregates have no "
                              f"{sorted(set(labels) - inner)} label (they carry {sorted(inner)})")
        if not isinstance(node, p.VectorSelector):
            continue
        name = node.name
        for m in node.matchers.matchers:
            if m.name == "service":
                errors.append("matches on `service`: the operator's label (dchat's own is exported_service)")
        if not name:
            errors.append(f"selector without a metric name: {node}")
            continue
        in_rate = len(anc) >= 2 and isinstance(anc[-1], p.MatrixSelector) and isinstance(anc[-2], p.Call) \
            and anc[-2].func.name in ("rate", "increase")
        in_range_fn = len(anc) >= 2 and isinstance(anc[-1], p.MatrixSelector) and isinstance(anc[-2], p.Call)
        in_timestamp = any(isinstance(a, p.Call) and a.func.name == "timestamp" for a in anc)
        held_rule = bool(record_name and record_name.endswith(":held"))
        if name in series:
            family, kind = series[name]
            used.add(family)
            if kind in ("counter", "bucket", "hsum", "hcount") and not (in_rate or in_timestamp or held_rule):
                errors.append(f"{name} is a counter: use it only through rate() or increase() (or hold it in a "
                              "`:held` recording rule)")
            if kind == "gauge" and in_range_fn and anc[-2].func.name in ("rate", "increase", "irate"):
                errors.append(f"{name} is a gauge: rate()/increase() on it is meaningless")
            if kind == "bucket":
                errors += bucket_errors(name, anc, record_name, node)
        elif name in rec:
            if "_bucket" in name:
                errors += bucket_errors(name, anc, record_name, node)
            if name.endswith(":held") and not (in_rate or held_rule):
                errors.append(f"{name} holds a counter: use it only through rate() or increase()")
        elif name in KSM_SERIES:
            pass
        elif name in PROMETHEUS_SERIES:
            if in_range_fn and anc[-2].func.name in ("rate", "increase", "irate"):
                errors.append(f"{name} is a gauge Prometheus writes: rate()/increase() on it is meaningless")
        else:
            errors.append(f"{name} is not in the metric catalogue (tests/data/catalog.tsv) nor a recording rule")
    return errors, used


# Bucket boundaries as Prometheus 2 stores them (as exposed) and as Prometheus 3 does (a float: "1" -> "1.0").
COMMON_BOUNDARIES = ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
                     "5", "10", "25", "50", "100", "250", "500", "1000"]


def prom3_le(s):
    return s if s == "+Inf" or "." in s or "e" in s else s + ".0"


def single_bucket(matcher):
    """(ok, why) for an `le` matcher meant to pick one bucket: it must match that boundary as Prometheus 2 and
    as Prometheus 3 write it, and no other boundary."""
    op, v = str(matcher.op), matcher.value
    alts = {a.replace("\\", "") for a in v.split("|")} if op.endswith("Re") else {v}
    cands = set(COMMON_BOUNDARIES) | {prom3_le(b) for b in COMMON_BOUNDARIES} | {"+Inf"}
    for a in alts:
        try:
            float(a)
            cands |= {a, prom3_le(a)}
        except ValueError:
            pass
    if op.endswith("Re"):
        hit = {c for c in cands if re.fullmatch(v, c)}
    elif op.endswith("Equal") and not op.endswith("NotEqual"):
        hit = {v} & cands
    else:
        return False, f'le{op} "{v}" does not select one bucket'
    values = {float(c) for c in hit}
    if len(values) != 1:
        return False, f'le matcher "{v}" selects {sorted(hit)}: it must select exactly one bucket boundary'
    b = next(iter(values))
    spellings = {c for c in cands if float(c) == b}
    two = {min(spellings, key=len), prom3_le(min(spellings, key=len))}
    if not two <= hit:
        return False, (f'le matcher "{v}" matches {sorted(hit)} but not {sorted(two - hit)}: Prometheus 2 stores '
                       f'le as exposed ("1"), Prometheus 3 as a float ("1.0"); match both, e.g. le=~"1|1\\\\.0"')
    return True, ""


def bucket_errors(name, anc, record_name, node=None):
    """A _bucket series either reaches histogram_quantile (or a *_bucket recording) with `le` kept all the way,
    or selects one bucket with an `le` matcher (an SLO ratio: good events = the bucket at the threshold)."""
    import promql_parser as p
    le = [m for m in (node.matchers.matchers if node is not None else []) if m.name == "le"]
    if le and len(le) == 1:
        ok, why = single_bucket(le[0])
        return [] if ok else [f"{name}: {why}"]
    if le:
        return [f"{name}: more than one le matcher"]
    hq = [i for i, a in enumerate(anc) if isinstance(a, p.Call) and a.func.name == "histogram_quantile"]
    if not hq and not (record_name and "_bucket" in record_name):
        return [f"{name}: histogram buckets are used through histogram_quantile(..., ... by (le)), or one bucket "
                'with an le matcher (le=~"1|1\\\\.0")']
    start = hq[-1] + 1 if hq else 0
    errs = []
    for a in anc[start:]:
        if isinstance(a, p.AggregateExpr):
            kind, labels = agg_modifier(a)
            if not ((kind == "by" and "le" in labels) or (kind == "without" and "le" not in labels)):
                errs.append(f"{name}: aggregation {a.op} must keep `le` (by (..., le)) before histogram_quantile")
    return errs


def check_metrics(env):
    cat, errors = env.catalog(), []
    series = series_families(cat)
    rec = recorded(env)
    rule_used, dash_used = set(), set()
    for r in rules_of(env):
        errs, used = usage_errors(r["expr"], series, rec, r.get("record"), cat)
        errors += [f"alert-rules.yaml {r.get('alert') or r.get('record')}: {e}" for e in errs]
        rule_used |= used
    node_level = {k: v for k, v in rec.items() if k.startswith(("node:dchat_slo_", "instance_version:"))}
    for where, expr, _ in dashboard_exprs(env):
        errs, used = usage_errors(expr, series, node_level, None, cat, rec)  # raw metrics; SLO series for budgets
        errors += [f"{where}: {e}" for e in errs]
        dash_used |= used
    for name in cat:
        if name not in dash_used:
            errors.append(f"catalogue metric {name} appears on no dashboard")
    fail_if(errors, f"all queries name catalogue metrics (or Prometheus' series, recording rules); counters via "
                    f"rate/increase; buckets via histogram_quantile by le or one le (both spellings); all "
                    f"{len(cat)} catalogue metrics on dashboards")


# ====================================================================== 7. alert coverage and annotations
REQUIRED_ALERTS = {
    # alert name: (what it watches, metrics its expression must reach)
    "DchatTargetDown": ("dchat target down", {"up"}),
    "DchatTargetMissing": ("a namespace without dchat targets", {"up"}),
    "DchatNotReady": ("not ready", {"dchat_telemetry_ready"}),
    "DchatNoReadyNode": ("no node of a namespace ready", {"dchat_telemetry_ready"}),
    "DchatHighErrorRate": ("error rate by type, relative to traffic",
                           {"dchat_errors_total", "dchat_messages_sent_total", "dchat_messages_received_total"}),
    "DchatHighMessageLatencyP95": ("p95 message latency", {"dchat_message_latency_seconds_bucket",
                                                           "dchat_message_latency_seconds_count"}),
    "DchatHighMessageLatencyP99": ("p99 message latency", {"dchat_message_latency_seconds_bucket",
                                                           "dchat_message_latency_seconds_count"}),
    "DchatRelayConnectionsGone": ("relay connections gone", {"dchat_relay_connections_active"}),
    "DchatSlowDatabaseQueries": ("slow database queries", {"dchat_database_query_duration_seconds_bucket",
                                                           "dchat_database_query_duration_seconds_count"}),
    "DchatMessagesNotDelivered": ("messages sent but not received in a namespace",
                                  {"dchat_messages_sent_total", "dchat_messages_received_total"}),
    "DchatNodeNotReceiving": ("one node receives nothing while the others send",
                              {"dchat_messages_sent_total", "dchat_messages_received_total"}),
    "DchatMessageLatencyBudgetBurn": ("latency SLO fast burn", {"dchat_message_latency_seconds_bucket",
                                                                "dchat_message_latency_seconds_count"}),
    "DchatMessageLatencyBudgetBurnSlow": ("latency SLO slow burn", {"dchat_message_latency_seconds_bucket",
                                                                    "dchat_message_latency_seconds_count"}),
    "DchatMessageDeliveryBudgetBurn": ("delivery SLO fast burn", {"dchat_messages_send_failed_total",
                                                                  "dchat_messages_sent_total"}),
    "DchatMessageDeliveryBudgetBurnSlow": ("delivery SLO slow burn", {"dchat_messages_send_failed_total",
                                                                      "dchat_messages_sent_total"}),
    "DchatLabelCardinalityOverflow": ("label cardinality overflow", {"dchat_telemetry_label_sets_dropped_total"}),
    "DchatTelemetryValuesDropped": ("values dropped", {"dchat_telemetry_values_dropped_total"}),
    "DchatTelemetryHealthCheckFailing": ("health-check failures", {"dchat_telemetry_health_check_failures_total"}),
    "DchatScrapeNearTimeout": ("scrape render time near the scrape timeout",
                               {"dchat_telemetry_scrape_duration_seconds_sum", "scrape_duration_seconds"}),
    "DchatScrapeSampleLimitNear": ("samples near the sampleLimit", {"scrape_samples_scraped"}),
    "DchatTelemetryFilterBlocked": ("a tracing filter blocks the layer", {"dchat_telemetry_filter_blocked"}),
    "DchatTelemetrySampleBudgetFull": ("the crate's sample budget nearly full",
                                       {"dchat_telemetry_samples", "dchat_telemetry_sample_budget"}),
    "DchatTelemetryOTLPExportFailing": ("OTLP pushes of the metrics that keep failing",
                                        {"dchat_telemetry_otlp_export_failures_total"}),
    "DchatTelemetryRegistryFamiliesSkipped": ("families of other registries left out of scrapes",
                                              {"dchat_telemetry_registry_families_skipped_total",
                                               "dchat_telemetry_scrapes_total"}),
    "DchatMessagesDropped": ("received messages a node cannot use", {"dchat_messages_dropped_total",
                                                                     "dchat_messages_received_total"}),
    "DchatSLIUnmeasured": ("an SLI that vanishes without an error", {"dchat_message_latency_seconds_bucket",
                                                                     "dchat_message_latency_seconds_count",
                                                                     "dchat_telemetry_ready"}),
    "DchatPrometheusShardDown": ("a Prometheus shard gone from the store", {"up"}),
}
# Alerts about chat traffic or relay connections: validators have neither, so they select the chat roles.
CHAT_ROLE_ALERTS = {"DchatRelayConnectionsGone", "DchatHighMessageLatencyP95", "DchatHighMessageLatencyP99",
                    "DchatMessageLatencyBudgetBurn", "DchatMessageLatencyBudgetBurnSlow",
                    "DchatMessageDeliveryBudgetBurn", "DchatMessageDeliveryBudgetBurnSlow",
                    "DchatMessagesNotDelivered", "DchatNodeNotReceiving"}
# Every way an SLI can vanish silently has its reason in DchatSLIUnmeasured.
SLI_UNMEASURED_REASONS = {"no_1s_bucket", "received_without_latency", "no_delivery_events", "unknown_role",
                          "validator_with_traffic"}
QUANTILE = {"DchatHighMessageLatencyP95": "0.95", "DchatHighMessageLatencyP99": "0.99",
            "DchatSlowDatabaseQueries": "0.95"}
PLAIN_FOR = re.compile(r"^\s+for: (\d+[smhdw])\s*$")
# Multi-window, multi-burn-rate (SRE workbook): (long window, short window, burn factor) pairs per alert kind.
BURN_PAIRS = {"fast": [("1h", "5m", "14.4"), ("6h", "30m", "6")], "slow": [("1d", "2h", "3"), ("3d", "6h", "1")]}
# Alert thresholds tied to a ServiceMonitor field: alert -> (regex for the constant in the expr, field, fraction)
SM_TIES = {"DchatScrapeNearTimeout": (r"0\.5 \* (\d+)", "scrapeTimeout", 0.5),
           "DchatScrapeSampleLimitNear": (r"0\.8 \* (\d+)", "sampleLimit", 0.8)}


def slo_errors(by_name):
    """The SLO alerts: both window pairs with the workbook's factors of one budget, a traffic guard, page =
    critical, ticket = warning, and a `slo` label."""
    errors = []
    for name, r in by_name.items():
        m = re.fullmatch(r"Dchat\w+BudgetBurn(Slow)?", name)
        if not m:
            continue
        kind = "slow" if m.group(1) else "fast"
        expr = " ".join(r["expr"].split())
        budgets = set(re.findall(r"> \((?:[\d.]+) \* ([\d.]+)\)", expr))
        if len(budgets) != 1:
            errors.append(f"{name}: every threshold must be (factor * budget) of one budget, found {sorted(budgets)}")
        for long_w, short_w, factor in BURN_PAIRS[kind]:
            for w in (long_w, short_w):
                if not re.search(rf"_error_ratio:rate{w}(\{{[^}}]*\}})? > \({re.escape(factor)} \* [\d.]+\)", expr):
                    errors.append(f"{name}: missing the {w} window at {factor}x the budget "
                                  f"({long_w}/{short_w} pair, SRE workbook)")
            if not re.search(rf"_errors:increase{long_w} >= \d+", expr):
                errors.append(f"{name}: no minimum of bad events on the {long_w} window (..._errors:increase{long_w} >= N)")
        if not re.search(r"_events:rate5m > 0", expr) or "dchat_telemetry_ready" not in expr:
            errors.append(f"{name}: must need the node alive (dchat_telemetry_ready) with SLI events in the last 5 minutes, "
                          "or it pages on the windows' old samples after the node died or went quiet")
        want = "critical" if kind == "fast" else "warning"
        if (r.get("labels") or {}).get("severity") != want:
            errors.append(f"{name}: a {'page' if kind == 'fast' else 'ticket'} must have severity {want}")
        if not (r.get("labels") or {}).get("slo"):
            errors.append(f"{name}: no `slo` label")
    return errors


def names_reached(expr, rec, depth=0):
    """Metric names an expression reads, following recording rules down to raw series."""
    import promql_parser as p
    out = set()
    for node, _ in promql_walk(parse_promql(expr)):
        if isinstance(node, p.VectorSelector) and node.name:
            out.add(node.name)
            if node.name in rec and depth < 5:
                out |= names_reached(rec[node.name], rec, depth + 1)
    return out


def chat_role_scoped(expr):
    """Whether every alternative of an alert condition selects the chat roles: the expression has a role=~"relay|user"
    selector, and so has each side of every `or` that joins conditions (one reached through set operators and
    parentheses only, not an `or` inside arithmetic or an aggregation)."""
    import promql_parser as p

    def has_role(node):
        return any(isinstance(n, p.VectorSelector) and any(m.name == "role" and m.value == "relay|user"
                                                           for m in n.matchers.matchers) for n, _ in promql_walk(node))
    ast = parse_promql(expr)
    if not has_role(ast):
        return False
    for node, anc in promql_walk(ast):
        if isinstance(node, p.BinaryExpr) and str(node.op).lower().endswith("or") and all(
                isinstance(a, p.ParenExpr) or (isinstance(a, p.BinaryExpr)
                                               and str(a.op).lower().endswith(("and", "or", "unless"))) for a in anc):
            if not (has_role(node.lhs) and has_role(node.rhs)):
                return False
    return True


def check_alerts(env):
    rules = [r for r in rules_of(env) if "alert" in r]
    rec = recorded(env)
    errors = []
    by_name = {r["alert"]: r for r in rules}
    for name, (what, metrics) in REQUIRED_ALERTS.items():
        r = by_name.get(name)
        if not r:
            errors.append(f"missing alert for {what} ({name})")
            continue
        reached = names_reached(r["expr"], rec)
        if not metrics <= reached:
            errors.append(f"{name} ({what}) must be based on {sorted(metrics)}, reads {sorted(reached)}")
        if name in QUANTILE and f"histogram_quantile({QUANTILE[name]}," not in r["expr"].replace(" ", ""):
            errors.append(f"{name}: expected histogram_quantile({QUANTILE[name]}, ...)")
        if name in QUANTILE and not re.search(r"\band\b[^>]*_count:rate5m >= ", " ".join(r["expr"].split())):
            errors.append(f"{name}: a percentile needs traffic: `and` a minimum count rate (..._count:rate5m >= ...)")
    for name, (pattern, field, frac) in SM_TIES.items():
        r = by_name.get(name)
        sm = next((d for d in load_docs(env.mon / "servicemonitor.yaml") if d.get("kind") == "ServiceMonitor"), {})
        want = dig(sm, "spec.sampleLimit") if field == "sampleLimit" else \
            duration_s(dig(sm, "spec.endpoints", [{}])[0].get("scrapeTimeout", "10s"))
        got = [int(x) for x in re.findall(pattern, r["expr"])] if r else []
        if r and (not got or any(g != want for g in got)):
            errors.append(f"{name}: its threshold must be {frac} * the ServiceMonitor's {field} ({want}), "
                          f"the expression says {frac} * {got}")
    errors += slo_errors(by_name)
    for name in sorted(CHAT_ROLE_ALERTS):
        if name in by_name and not chat_role_scoped(by_name[name]["expr"]):
            errors.append(f'{name}: every alternative (each side of an `or` between alert conditions) must select '
                          'role=~"relay|user" (a validator has no chat traffic and no relay connections; it would fire '
                          "forever)")
    if "DchatSLIUnmeasured" in by_name:
        got = set(re.findall(r'"reason", "(\w+)"', by_name["DchatSLIUnmeasured"]["expr"]))
        if got != SLI_UNMEASURED_REASONS:
            errors.append(f"DchatSLIUnmeasured: reasons {sorted(got)}, want {sorted(SLI_UNMEASURED_REASONS)}")
    for name, r in by_name.items():
        for k, text in (r.get("annotations") or {}).items():
            if re.search(r"\| humanize \}\}", text):
                errors.append(f"{name}: {k} prints $value with humanize (rates below 1 come out in milli-units, "
                              '"166.7m errors/s"): use printf "%.3g"')
    tm = by_name.get("DchatTargetMissing")
    if tm and not re.search(r"by \((cluster, )?namespace", tm["expr"]):
        errors.append("DchatTargetMissing must work per namespace (one namespace losing its targets while another "
                      "is fine), not only a global absent()")
    if "DchatHighErrorRate" in by_name and "type" not in json.dumps(by_name["DchatHighErrorRate"]["annotations"]):
        errors.append("DchatHighErrorRate must name the error type ($labels.type)")
    for r in rules:
        n = r["alert"]
        sev = (r.get("labels") or {}).get("severity")
        if sev not in ("critical", "warning", "info"):
            errors.append(f"{n}: severity label must be critical|warning|info, got {sev!r}")
        ann = r.get("annotations") or {}
        if not ann.get("summary"):
            errors.append(f"{n}: no summary annotation")
        if "$value" not in ann.get("description", ""):
            errors.append(f"{n}: description must show the value ({{{{ $value }}}})")
        url = ann.get("runbook_url", "")
        if url != f"{RUNBOOK_BASE}{n}.md":
            errors.append(f"{n}: runbook_url must be {RUNBOOK_BASE}{n}.md, got {url!r}")
        rb = env.mon / "runbooks" / f"{n}.md"
        if not rb.is_file():
            errors.append(f"{n}: runbook file monitoring/runbooks/{n}.md missing")
        elif n not in rb.read_text(encoding="utf-8"):
            errors.append(f"{n}: runbook file does not name the alert")
        if not re.fullmatch(r"\d+[smhdw]", str(r.get("for", ""))):
            errors.append(f"{n}: `for:` must be a plain duration like 5m, got {r.get('for')!r}")
    plain_for_lines = [l for l in (env.mon / "alert-rules.yaml").read_text().splitlines() if PLAIN_FOR.match(l)]
    if len(plain_for_lines) != len(rules):
        errors.append(f"alert-rules.yaml: {len(rules)} alerts but {len(plain_for_lines)} plain `for: <d>` lines")
    extra = sorted({p.stem for p in (env.mon / "runbooks").glob("*.md")} - set(by_name))
    if extra:
        errors.append(f"runbooks without an alert: {extra}")
    fail_if(errors, f"{len(rules)} alerts cover the required set; severity, summary, description with $value, "
                    "runbook URL -> existing runbook, plain `for:`")


# ====================================================================== 8. dashboards
GRAFANA_SDK_NOT_MODELLED = {".id", ".definition"}  # real Grafana keys the SDK's model does not keep


def sdk_dropped_keys(d):
    """Keys that grafana-foundation-sdk's Dashboard model drops on a decode/encode round trip."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard
    out = json.loads(json.dumps(Dashboard.from_json(copy.deepcopy(d)), cls=JSONEncoder))
    dropped = []
    def walk(a, b, path):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in a:
                if k not in b:
                    if not any(f"{path}.{k}".endswith(s) for s in GRAFANA_SDK_NOT_MODELLED):
                        dropped.append(f"{path}.{k}")
                else:
                    walk(a[k], b[k], f"{path}.{k}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{i}]")
    walk(d, out, "")
    return dropped


NODE_VARS = ("cluster", "namespace", "role", "node_id", "instance")
TARGET_VARS = ("cluster", "namespace", "instance")   # Prometheus' own per-target series carry no node_id or role


def check_dashboards(env):
    import promql_parser as p
    cat = env.catalog()
    series = series_families(cat)
    rec = recorded(env)
    slis = sorted({m.group(1) for r in rec for m in [re.fullmatch(r"node:dchat_slo_(\w+)_errors:rate5m", r)] if m})
    budget_panels, burn_panels, up_panel = set(), set(), False
    errors, uids = [], set()
    per_metric_unit, quantiles, errors_by_type = {}, {}, False
    files = sorted((env.mon / "dashboards").glob("*.json"))
    if not files:
        errors.append("no dashboards/*.json")
    for f in files:
        d = json.loads(f.read_text(encoding="utf-8"))
        fn = f.name
        uid = d.get("uid")
        if not isinstance(uid, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{2,39}", uid):
            errors.append(f"{fn}: uid must be a fixed lowercase slug, got {uid!r}")
        elif uid in uids:
            errors.append(f"{fn}: uid {uid} used twice")
        uids.add(uid)
        if d.get("id") is not None:
            errors.append(f"{fn}: id must be null (Grafana assigns it)")
        variables = {v.get("name"): v for v in dig(d, "templating.list", []) or []}
        ds = variables.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            errors.append(f"{fn}: needs a `datasource` template variable of type datasource, query prometheus")
        for vn in NODE_VARS:
            v = variables.get(vn)
            q = json.dumps((v or {}).get("query"))
            if not v or v.get("type") != "query" or "label_values" not in q or f", {vn})" not in q:
                errors.append(f"{fn}: needs a `{vn}` query variable using label_values(..., {vn})")
            elif dig(v, "datasource.uid") != "${datasource}" or not v.get("includeAll") or not v.get("multi"):
                errors.append(f"{fn}: variable {vn} must use ${{datasource}}, be multi-value and include All")
        ids = set()
        for panel in all_panels(d):
            title = panel.get("title")
            if panel.get("id") in ids:
                errors.append(f"{fn}: duplicate panel id {panel.get('id')}")
            ids.add(panel.get("id"))
            gp = panel.get("gridPos") or {}
            if not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")):
                errors.append(f"{fn}: panel {title!r}: incomplete gridPos {gp}")
            if panel.get("type") == "row":
                continue
            if dig(panel, "datasource.uid") != "${datasource}":
                errors.append(f"{fn}: panel {title!r}: datasource must be the ${{datasource}} variable")
            unit = dig(panel, "fieldConfig.defaults.unit")
            if not unit:
                errors.append(f"{fn}: panel {title!r}: no unit (fieldConfig.defaults.unit)")
            targets = panel.get("targets") or []
            if not targets:
                errors.append(f"{fn}: panel {title!r}: no queries")
            for t in targets:
                where = f"{fn}: panel {title!r} {t.get('refId')}"
                if dig(t, "datasource.uid") != "${datasource}":
                    errors.append(f"{where}: target datasource must be ${{datasource}}")
                expr = t.get("expr", "")
                try:
                    ast = parse_promql(expr)
                except Exception as e:  # noqa: BLE001
                    errors.append(f"{where}: PromQL does not parse: {e}")
                    continue
                legend = t.get("legendFormat", "")
                names = {n.name for n, _ in promql_walk(ast) if isinstance(n, p.VectorSelector)}
                only_prom = names and names <= set(PROMETHEUS_SERIES)
                if not only_prom and "{{node_id}}" not in legend and "{{version}}" not in legend:
                    errors.append(f"{where}: legend must name the node ({{{{node_id}}}}), not its address")
                if only_prom and not re.search(r"\{\{(pod|instance)\}\}", legend):
                    errors.append(f"{where}: legend must name the target ({{{{pod}}}})")
                if "{{namespace}}" not in legend and "version" not in legend:
                    errors.append(f"{where}: legend must name the namespace ({{{{namespace}}}}): node ids and pod names "
                                  "repeat across namespaces")
                have = result_labels(ast, cat, rec)
                shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
                if have is not None and shown - have:
                    errors.append(f"{where}: legend shows {sorted(shown - have)}, which the query's result does not "
                                  f"carry (it keeps {sorted(have)})")
                if "up" in names:
                    up_panel = True
                for sli in slis:
                    ranged = r"\{[^}]*\}\[30d\]"   # the SLO period, whatever range the dashboard shows
                    if re.search(rf"node:dchat_slo_{sli}_errors:rate5m{ranged}", expr) and \
                            re.search(rf"node:dchat_slo_{sli}_events:rate5m{ranged}", expr):
                        budget_panels.add(sli)
                    if f"node:dchat_slo_{sli}_error_ratio:rate1h" in expr:
                        burn_panels.add(sli)
                hq = None
                for node, anc in promql_walk(ast):
                    if isinstance(node, p.Call) and node.func.name == "histogram_quantile":
                        hq = str(node.args[0])
                    if isinstance(node, p.AggregateExpr):
                        kind, labels = agg_modifier(node)
                        per_version = kind == "by" and "version" in labels
                        if not ((kind == "by" and {"instance", "node_id"} & set(labels))
                                or (kind == "without" and not {"instance", "node_id"} <= set(labels)) or per_version):
                            errors.append(f"{where}: aggregation must keep the node (`instance` or `node_id`), or be "
                                          "a per-version breakdown (by version)")
                        if kind == "by" and not {"cluster", "namespace"} <= set(labels):
                            errors.append(f"{where}: aggregation must keep `cluster` and `namespace`")
                        if kind == "by" and "type" in labels and "dchat_errors_total" in t.get("expr", ""):
                            errors_by_type = True
                    if isinstance(node, p.VectorSelector) and node.name in series:
                        fam = series[node.name][0]
                        per_metric_unit.setdefault(fam, set()).add(unit)
                        if hq:
                            quantiles.setdefault(fam, set()).add(float(hq))
                    if isinstance(node, p.VectorSelector) and node.name:
                        ms = {(m.name, m.value) for m in node.matchers.matchers}
                        if node.name in series:
                            need = NODE_VARS
                        elif node.name in PROMETHEUS_SERIES:
                            need = TARGET_VARS                  # Prometheus' own series carry no node_id
                        else:                                   # recorded: the node variables they carry
                            need = [v for v in NODE_VARS if v in (result_labels(node, cat, rec) or NODE_VARS)]
                        missing = [v for v in need if (v, f"${v}") not in ms]
                        if missing:
                            errors.append(f"{where}: {node.name} must be filtered by "
                                          + ", ".join(f'{v}=~"${v}"' for v in missing))
        for k in sdk_dropped_keys(d):
            errors.append(f"{fn}: key {k} is not in Grafana's dashboard schema (grafana-foundation-sdk drops it)")
    for name, m in cat.items():
        if not per_metric_unit.get(name) - {None, ""} if per_metric_unit.get(name) else True:
            errors.append(f"catalogue metric {name}: no panel with a unit shows it")
        if m["type"] == "histogram" and not {0.5, 0.95, 0.99} <= quantiles.get(name, set()):
            errors.append(f"histogram {name}: needs p50, p95 and p99 (has {sorted(quantiles.get(name, []))})")
    if not errors_by_type:
        errors.append("no panel shows dchat_errors_total by type")
    if not up_panel:
        errors.append("no panel shows `up` (whether Prometheus can scrape each target)")
    for sli in slis:
        if sli not in budget_panels:
            errors.append(f"SLO {sli}: no error-budget panel (node:dchat_slo_{sli}_errors:rate5m over [30d], the SLO "
                          "period)")
        if sli not in burn_panels:
            errors.append(f"SLO {sli}: no burn-rate panel (node:dchat_slo_{sli}_error_ratio:rate1h)")
    fail_if(errors, f"{len(files)} dashboard(s): stable uid, $datasource/$namespace/$node_id/$instance, a panel with "
                    "unit per catalogue metric, p50/p95/p99, errors by type, up, error budget and burn rate per SLO, per "
                    "node with node_id legends the queries carry; Grafana schema round trip clean")


# ====================================================================== 9. secrets
SECRET_PATTERNS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "private key"),
    (re.compile(r"^\s*(-\s+)?(routing_key|service_key|api_key|auth_token|client_secret|credentials|bearer_token)[ \t]*:[ \t]*\S", re.M),
     "inline credential"),
    (re.compile(r"^\s*(-\s+)?(adminPassword|password|admin-password)[ \t]*:[ \t]*\S", re.M), "inline password"),
    (re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])"), "32-hex token (PagerDuty key shape)"),
]


def check_secrets(env):
    errors = []
    root = env.mon.parent
    skip_dirs = {".git", "target", ".tools", "node_modules", "__pycache__"}
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs]   # never walk into build output
        files += [pathlib.Path(dirpath) / n for n in filenames]
    for f in sorted(files):
        if not f.is_file() or f.suffix in (".lock",) or f.stat().st_size > 2_000_000:
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        in_mon = "monitoring" in f.relative_to(root).parts[:1]
        for pat, what in SECRET_PATTERNS:
            if what != "private key" and not in_mon:
                continue  # outside monitoring/ (the crate's code, tests) only the unambiguous shape
            for m in pat.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                errors.append(f"{f.relative_to(root)}:{line}: {what}")
    vals = effective_values(env)
    ours = load_yaml(env.mon / "prometheus-values.yaml") or {}
    grafana_secret = dig(ours, "grafana.admin.existingSecret")
    if not grafana_secret:
        errors.append("grafana.admin.existingSecret not set: Grafana's admin must come from an existing Secret")
    if dig(vals, "grafana.adminPassword"):
        errors.append("grafana.adminPassword is set (chart default or ours): use grafana.admin.existingSecret")
    _, cfg = am_config(env)
    key_files = [c.get("routing_key_file", "") for r in cfg.get("receivers", []) for c in r.get("pagerduty_configs", []) or []]
    if not any(re.match(r"^/etc/alertmanager/secrets/([^/]+)/", f) for f in key_files):
        errors.append("PagerDuty key not read from a mounted Secret (routing_key_file)")
    pd_secrets = {m.group(1) for _, _, f in secret_files(cfg) for m in [re.match(r"^/etc/alertmanager/secrets/([^/]+)/", f)] if m}
    readme = (env.mon / "README.md").read_text(encoding="utf-8")
    https = env.mon / "servicemonitor-https.yaml"
    sm_secrets = set()
    if https.is_file():
        for d in load_docs(https):
            for ep in dig(d, "spec.endpoints", []) or []:
                for path in ("tlsConfig.ca.secret.name", "tlsConfig.cert.secret.name", "tlsConfig.keySecret.name",
                             "basicAuth.username.name", "basicAuth.password.name"):
                    if dig(ep, path):
                        sm_secrets.add(dig(ep, path))
    for s in sorted(pd_secrets | sm_secrets | ({grafana_secret} if grafana_secret else set())):
        if not re.search(rf"kubectl[^\n]*create secret generic {re.escape(s)}\b", readme):
            errors.append(f"README.md does not show how to create Secret {s} (kubectl create secret generic {s} ...)")
    fail_if(errors, f"no secret in the repository; Grafana admin from Secret {grafana_secret}, Alertmanager "
                    f"credentials from Secrets {', '.join(sorted(pd_secrets))}, scrape credentials from "
                    f"{', '.join(sorted(sm_secrets))}; README shows how to create each")


# What one scrape carries besides the label sets the sample budget counts: the crate's self-metrics (a few per
# catalogue metric, the render-time histogram), process_* and tokio_* metrics, dchat_build_info. The demo node
# exposes about 220 samples in all; 2000 leaves room for registries merged into the same /metrics.
SAMPLE_HEADROOM = 2000
K8S_DEFAULT_GRACE_S = 30    # Kubernetes' default terminationGracePeriodSeconds (no pod spec is shipped here)
KUBELET_PROBE_TIMEOUT_MS = 1000   # the kubelet's default probe timeoutSeconds


def check_defaults(env):
    """The crate's published defaults (tests/data/defaults.tsv) against what monitoring/ assumes."""
    errors = []
    if not env.defaults_path.is_file():
        fail_if([f"{env.defaults_path} missing (the crate's defaults)"], "")
    d = load_defaults(env.defaults_path)
    need = ("sample_budget", "cardinality_limit", "series_ttl_seconds", "drain_seconds", "drain_max_seconds",
            "close_grace_seconds", "check_timeout_ms")
    missing = [k for k in need if not isinstance(d.get(k), int)]
    if missing:
        fail_if([f"defaults.tsv lacks {missing}"], "")
    sm = next((x for x in load_docs(env.mon / "servicemonitor.yaml") if x.get("kind") == "ServiceMonitor"), {})
    limit = dig(sm, "spec.sampleLimit") or 0
    if limit < d["sample_budget"] + SAMPLE_HEADROOM:
        errors.append(f"sampleLimit {limit} < the crate's default sample budget {d['sample_budget']} + "
                      f"{SAMPLE_HEADROOM} samples for what the budget does not count: a full node would fail its scrape")
    default_stop = d["drain_seconds"] + d["close_grace_seconds"]
    max_stop = d["drain_max_seconds"] + d["close_grace_seconds"]
    if default_stop >= K8S_DEFAULT_GRACE_S:
        errors.append(f"the default drain ({d['drain_seconds']} s) + close grace ({d['close_grace_seconds']} s) = "
                      f"{default_stop} s does not fit Kubernetes' default {K8S_DEFAULT_GRACE_S} s grace period: the "
                      "kubelet kills the pod before the final scrape")
    readme = (env.mon / "README.md").read_text(encoding="utf-8")
    for n, what in ((default_stop, "the default drain + close grace"), (max_stop, "the longest drain + close grace")):
        if f"{n} s" not in readme:
            errors.append(f"README.md does not state {what} ({n} s) against terminationGracePeriodSeconds")
    if d["check_timeout_ms"] >= KUBELET_PROBE_TIMEOUT_MS:
        errors.append(f"the crate's health check timeout {d['check_timeout_ms']} ms is not under the kubelet's default "
                      f"probe timeout ({KUBELET_PROBE_TIMEOUT_MS} ms): a slow check fails the probe, not the check")
    for k in ("sample_budget", "series_ttl_seconds"):
        if str(d[k]) not in readme:
            errors.append(f"README.md does not state the crate's {k} ({d[k]})")
    fail_if(errors, f"sampleLimit {limit} >= sample budget {d['sample_budget']} + {SAMPLE_HEADROOM}; default stop "
                    f"{default_stop} s < {K8S_DEFAULT_GRACE_S} s grace; longest stop {max_stop} s documented; check "
                    f"timeout {d['check_timeout_ms']} ms < probe timeout")


COMMANDS = {
    "defaults": check_defaults,
    "crds": check_crds, "values": check_values, "wiring": check_wiring, "configmap": check_configmap,
    "test-coverage": check_test_coverage, "am-structure": check_am_structure, "metrics": check_metrics,
    "rule-scope": check_rule_scope,
    "alerts": check_alerts, "dashboards": check_dashboards, "secrets": check_secrets,
}

if __name__ == "__main__":
    env = Env()
    if sys.argv[1] == "am-config":
        write_am_config(env, sys.argv[2])
    else:
        COMMANDS[sys.argv[1]](env)
