#!/usr/bin/env python3
"""The Python half of monitoring/check: one subcommand per check; exit 1 with reasons on failure.

Environment: MON (the monitoring dir under test), CATALOG (tests/data/catalog.tsv), REF (the upstream
reference folder, may be absent: checks that need it are skipped by monitoring/check)."""
import copy
import json
import pathlib
import re
import subprocess
import sys

import jsonschema

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import (CONSTANT_LABELS, PROMETHEUS_SERIES, RELEASE, RUNBOOK_BASE, TARGET_LABELS, Env,  # noqa: E402
                    agg_modifier, chart_defaults, dig, effective_values, fail_if, load_catalog, load_docs,
                    load_yaml, parse_promql, promql_walk, selector_matches, series_families)


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
    for need in ("ServiceMonitor", "PrometheusRule", "Service", "ConfigMap"):
        if need not in seen:
            errors.append(f"no {need} found under monitoring/")
    fail_if(errors, f"{len(seen)} resources valid against strict schemas ({', '.join(sorted(set(seen)))})")


# ====================================================================== 2. values key paths vs chart defaults
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
    for f in ("prometheus-values.yaml", "pagerduty-integration.yaml"):
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
    readme = (env.mon / "README.md").read_text(encoding="utf-8")
    if f"helm install {RELEASE} prometheus-community/kube-prometheus-stack" not in readme:
        errors.append(f"README.md does not install the release as `{RELEASE}` (the selectors depend on it)")
    note = "" if env.ref else " (reference absent: chart defaults not merged)"
    fail_if(errors, "ServiceMonitor/PrometheusRule picked by the release's selectors, ServiceMonitor -> Service "
                    f"dchat port metrics, dashboard ConfigMap labelled for the sidecar{note}")


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


def check_test_coverage(env):
    alerts = sorted({r["alert"] for r in rules_of(env) if "alert" in r})
    tests = load_yaml(env.mon / "alert-rules.test.yaml")
    fires, silent = set(), set()
    for t in tests.get("tests", []):
        for a in t.get("alert_rule_test", []) or []:
            (fires if a.get("exp_alerts") else silent).add(a["alertname"])
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
            f = c.get("routing_key_file", "")
            m = re.match(r"^/etc/alertmanager/secrets/([^/]+)/[^/]+$", f)
            if not m or m.group(1) not in secrets:
                errors.append(f"{name}: routing_key_file {f!r} is not a file of a Secret listed in "
                              f"alertmanager.alertmanagerSpec.secrets {secrets}")
            if c.get("send_resolved") is not True:
                errors.append(f"{name}: send_resolved must be true (resolved alerts resolve the incident)")
    sev = {n: {c.get("severity") for c in confs} for n, confs in pd.items()}
    route = cfg.get("route", {})
    def receiver_for(severity):
        for r in route.get("routes", []):
            ms = " ".join(r.get("matchers", []))
            if re.search(r'severity\s*=\s*"?%s"?' % severity, ms):
                return r["receiver"]
        return route.get("receiver")
    for severity, pd_sev in (("critical", "critical"), ("warning", "warning")):
        rcv = receiver_for(severity)
        if rcv not in pd or sev[rcv] != {pd_sev}:
            errors.append(f"severity={severity} alerts must reach a PagerDuty receiver with severity {pd_sev} "
                          f"({'high' if pd_sev == 'critical' else 'low'} urgency); got {rcv} {sev.get(rcv)}")
    for k in ("group_by", "group_wait", "group_interval", "repeat_interval"):
        if not route.get(k):
            errors.append(f"route.{k} not set")
    inhibit = [r for r in cfg.get("inhibit_rules", [])
               if any("DchatTargetDown" in m for m in r.get("source_matchers", []))]
    if not inhibit or "instance" not in inhibit[0].get("equal", []) or not inhibit[0].get("target_matchers"):
        errors.append("no inhibit rule where DchatTargetDown inhibits the alerts of the same instance")
    fail_if(errors, "PagerDuty: critical->high urgency, warning->low, send_resolved, key from a mounted Secret; "
                    "grouping and TargetDown inhibition set")


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


def usage_errors(expr, series, rec, record_name=None):
    """Catalogue membership and usage rules for one PromQL expression. Returns (errors, families used)."""
    import promql_parser as p
    errors, used = [], set()
    try:
        ast = parse_promql(expr)
    except Exception as e:  # noqa: BLE001 - the parser raises plain exceptions
        return [f"PromQL does not parse: {e}"], used
    for node, anc in promql_walk(ast):
        if isinstance(node, p.AggregateExpr):
            _, labels = agg_modifier(node)
            for l in labels:
                if l == "service":
                    errors.append("groups by `service`: the operator's label (dchat's own is exported_service)")
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
        if name in series:
            family, kind = series[name]
            used.add(family)
            if kind in ("counter", "bucket", "hsum", "hcount") and not in_rate:
                errors.append(f"{name} is a counter: use it only through rate() or increase()")
            if kind == "gauge" and in_range_fn and anc[-2].func.name in ("rate", "increase", "irate"):
                errors.append(f"{name} is a gauge: rate()/increase() on it is meaningless")
            if kind == "bucket":
                errors += bucket_errors(name, anc, record_name)
        elif name in rec:
            if "_bucket" in name:
                errors += bucket_errors(name, anc, record_name)
        elif name in PROMETHEUS_SERIES:
            pass
        else:
            errors.append(f"{name} is not in the metric catalogue (tests/data/catalog.tsv) nor a recording rule")
    return errors, used


def bucket_errors(name, anc, record_name):
    """A _bucket series must reach histogram_quantile (or a *_bucket recording) with `le` kept all the way."""
    import promql_parser as p
    hq = [i for i, a in enumerate(anc) if isinstance(a, p.Call) and a.func.name == "histogram_quantile"]
    if not hq and not (record_name and "_bucket" in record_name):
        return [f"{name}: histogram buckets are only used through histogram_quantile(..., ... by (le))"]
    start = hq[-1] + 1 if hq else 0
    errs = []
    for a in anc[start:]:
        if isinstance(a, p.AggregateExpr):
            kind, labels = agg_modifier(a)
            if not ((kind == "by" and "le" in labels) or (kind == "without" and "le" not in labels)):
                errs.append(f"{name}: aggregation {a.op} must keep `le` (by (..., le)) before histogram_quantile")
    return errs


def check_metrics(env):
    cat = load_catalog(env.catalog_path)
    series = series_families(cat)
    rec = recorded(env)
    errors, rule_used, dash_used = [], set(), set()
    for r in rules_of(env):
        errs, used = usage_errors(r["expr"], series, rec, r.get("record"))
        errors += [f"alert-rules.yaml {r.get('alert') or r.get('record')}: {e}" for e in errs]
        rule_used |= used
    for where, expr, _ in dashboard_exprs(env):
        errs, used = usage_errors(expr, series, {}, None)  # dashboards query raw catalogue metrics
        errors += [f"{where}: {e}" for e in errs]
        dash_used |= used
    for name in cat:
        if name not in dash_used:
            errors.append(f"catalogue metric {name} appears on no dashboard")
    fail_if(errors, f"all queries name catalogue metrics (or `up`/recording rules); counters via rate/increase, "
                    f"histograms via histogram_quantile by le; all {len(cat)} catalogue metrics on dashboards")


# ====================================================================== 7. alert coverage and annotations
REQUIRED_ALERTS = {
    # alert name: (what the issue asks for, metrics its expression must reach)
    "DchatTargetDown": ("dchat target down", {"up"}),
    "DchatNotReady": ("not ready", {"dchat_telemetry_ready"}),
    "DchatHighErrorRate": ("error rate by type", {"dchat_errors_total"}),
    "DchatHighMessageLatencyP95": ("p95 message latency", {"dchat_message_latency_seconds_bucket"}),
    "DchatHighMessageLatencyP99": ("p99 message latency", {"dchat_message_latency_seconds_bucket"}),
    "DchatRelayConnectionsGone": ("relay connections gone", {"dchat_relay_connections_active"}),
    "DchatSlowDatabaseQueries": ("slow database queries", {"dchat_database_query_duration_seconds_bucket"}),
    "DchatMessagesNotDelivered": ("messages sent but not received",
                                  {"dchat_messages_sent_total", "dchat_messages_received_total"}),
    "DchatLabelCardinalityOverflow": ("label cardinality overflow", {"dchat_telemetry_label_sets_dropped_total"}),
}
QUANTILE = {"DchatHighMessageLatencyP95": "0.95", "DchatHighMessageLatencyP99": "0.99"}
PLAIN_FOR = re.compile(r"^\s+for: (\d+[smhdw])\s*$")


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
        if name in QUANTILE and f"histogram_quantile({QUANTILE[name]}" not in r["expr"].replace(" ", ""):
            errors.append(f"{name}: expected histogram_quantile({QUANTILE[name]}, ...)")
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


def check_dashboards(env):
    import promql_parser as p
    cat = load_catalog(env.catalog_path)
    series = series_families(cat)
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
        for vn in ("namespace", "instance"):
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
                if "{{instance}}" not in t.get("legendFormat", ""):
                    errors.append(f"{where}: legend must show {{{{instance}}}} (one series per node)")
                try:
                    ast = parse_promql(t.get("expr", ""))
                except Exception as e:  # noqa: BLE001
                    errors.append(f"{where}: PromQL does not parse: {e}")
                    continue
                hq = None
                for node, anc in promql_walk(ast):
                    if isinstance(node, p.Call) and node.func.name == "histogram_quantile":
                        hq = str(node.args[0])
                    if isinstance(node, p.AggregateExpr):
                        kind, labels = agg_modifier(node)
                        if not ((kind == "by" and "instance" in labels) or (kind == "without" and "instance" not in labels)):
                            errors.append(f"{where}: aggregation must keep `instance` (multi-node)")
                        if kind == "by" and "type" in labels and "dchat_errors_total" in t.get("expr", ""):
                            errors_by_type = True
                    if isinstance(node, p.VectorSelector) and node.name in series:
                        fam = series[node.name][0]
                        per_metric_unit.setdefault(fam, set()).add(unit)
                        if hq:
                            quantiles.setdefault(fam, set()).add(float(hq))
                        ms = {(m.name, m.value) for m in node.matchers.matchers}
                        if ("namespace", "$namespace") not in ms or ("instance", "$instance") not in ms:
                            errors.append(f"{where}: {node.name} must be filtered by namespace=~\"$namespace\", "
                                          f"instance=~\"$instance\"")
        for k in sdk_dropped_keys(d):
            errors.append(f"{fn}: key {k} is not in Grafana's dashboard schema (grafana-foundation-sdk drops it)")
    for name, m in cat.items():
        if not per_metric_unit.get(name) - {None, ""} if per_metric_unit.get(name) else True:
            errors.append(f"catalogue metric {name}: no panel with a unit shows it")
        if m["type"] == "histogram" and not {0.5, 0.95, 0.99} <= quantiles.get(name, set()):
            errors.append(f"histogram {name}: needs p50, p95 and p99 (has {sorted(quantiles.get(name, []))})")
    if not errors_by_type:
        errors.append("no panel shows dchat_errors_total by type")
    fail_if(errors, f"{len(files)} dashboard(s): stable uid, $datasource/$namespace/$instance, a panel with unit per "
                    "catalogue metric, p50/p95/p99, errors by type, per instance; Grafana schema round trip clean")


# ====================================================================== 9. secrets
SECRET_PATTERNS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "private key"),
    (re.compile(r"^\s*(-\s+)?(routing_key|service_key|api_key|auth_token|client_secret)\s*:\s*\S", re.M), "inline credential"),
    (re.compile(r"^\s*(-\s+)?(adminPassword|password|admin-password)\s*:\s*\S", re.M), "inline password"),
    (re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{32}(?![0-9a-fA-F])"), "32-hex token (PagerDuty key shape)"),
]


def check_secrets(env):
    errors = []
    root = env.mon.parent
    for f in sorted(root.rglob("*")):
        parts = set(f.relative_to(root).parts)
        if not f.is_file() or parts & {".git", "target", ".tools", "node_modules", "__pycache__"} \
                or f.suffix in (".lock",) or f.stat().st_size > 2_000_000:
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
    pd_secrets = {m.group(1) for f in key_files for m in [re.match(r"^/etc/alertmanager/secrets/([^/]+)/", f)] if m}
    if not pd_secrets:
        errors.append("PagerDuty key not read from a mounted Secret (routing_key_file)")
    readme = (env.mon / "README.md").read_text(encoding="utf-8")
    for s in sorted(pd_secrets | ({grafana_secret} if grafana_secret else set())):
        if not re.search(rf"kubectl[^\n]*create secret generic {re.escape(s)}\b", readme):
            errors.append(f"README.md does not show how to create Secret {s} (kubectl create secret generic {s} ...)")
    fail_if(errors, f"no secret in the repository; Grafana admin from Secret {grafana_secret}, PagerDuty key from "
                    f"Secret {', '.join(sorted(pd_secrets))}; README shows how to create both")


COMMANDS = {
    "crds": check_crds, "values": check_values, "wiring": check_wiring, "configmap": check_configmap,
    "test-coverage": check_test_coverage, "am-structure": check_am_structure, "metrics": check_metrics,
    "alerts": check_alerts, "dashboards": check_dashboards, "secrets": check_secrets,
}

if __name__ == "__main__":
    env = Env()
    if sys.argv[1] == "am-config":
        write_am_config(env, sys.argv[2])
    else:
        COMMANDS[sys.argv[1]](env)
