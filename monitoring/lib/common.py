"""Shared helpers for monitoring/check (loaders, Helm-style merge, PromQL walking)."""
import csv
import os
import pathlib
import sys

import yaml

RELEASE = "monitoring"  # the Helm release name the README installs
RUNBOOK_BASE = "https://github.com/dchat/dchat-telemetry/blob/main/monitoring/runbooks/"
# Series that Prometheus itself creates per target (not in the crate's catalogue).
PROMETHEUS_SERIES = {"up"}
# Labels the prometheus-operator puts on every target (honorLabels: false), and dchat's constant labels
# as they arrive (dchat's own `service` becomes `exported_service`).
TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance", "service"}
CONSTANT_LABELS = {"node_id", "exported_service"}


class Env:
    """Where things are: the monitoring dir under test, the catalogue, the upstream reference."""

    def __init__(self):
        self.mon = pathlib.Path(os.environ["MON"])
        self.catalog_path = pathlib.Path(os.environ["CATALOG"])
        ref = os.environ.get("REF", "")
        self.ref = pathlib.Path(ref) if ref and pathlib.Path(ref).is_dir() else None


def fail_if(errors, ok_message):
    if errors:
        for e in errors:
            print("  - " + e)
        sys.exit(1)
    print("  " + ok_message)


class Loader(yaml.SafeLoader):
    """SafeLoader that reads a bare `=` (YAML 1.1's value tag, used in CRD enums) as the string "="."""


Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=Loader) if d is not None]


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=Loader)


def load_catalog(path):
    """name -> {type, labels, unit, help} from tests/data/catalog.tsv."""
    cat = {}
    with open(path, encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0].startswith("#"):
                continue
            name, typ, labels, unit, help_ = (row + [""] * 5)[:5]
            cat[name] = {"type": typ, "labels": [l for l in labels.split(",") if l], "unit": unit, "help": help_}
    if not cat:
        raise SystemExit(f"empty metric catalogue {path}")
    return cat


def series_families(cat):
    """series name as scraped -> (family, kind) where kind is counter|gauge|bucket|hsum|hcount."""
    out = {}
    for name, m in cat.items():
        if m["type"] == "histogram":
            out[name + "_bucket"] = (name, "bucket")
            out[name + "_sum"] = (name, "hsum")
            out[name + "_count"] = (name, "hcount")
        elif m["type"] == "counter":
            out[name] = (name, "counter")
        elif m["type"] == "gauge":
            out[name] = (name, "gauge")
        else:
            raise SystemExit(f"catalogue: unsupported type {m['type']} for {name}")
    return out


def helm_merge(base, override):
    """Helm's value coalescing: maps merge deeply, anything else replaces, null deletes."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    out = dict(base)
    for k, v in override.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = helm_merge(out[k], v)
        else:
            out[k] = v
    return out


def chart_defaults(env):
    """kube-prometheus-stack 88.5.3 defaults with the Grafana subchart's under grafana: (None without ref)."""
    if env.ref is None:
        return None
    kps = load_yaml(env.ref / "kube-prometheus-stack" / "values.yaml")
    graf = load_yaml(env.ref / "kube-prometheus-stack" / "grafana-values.yaml")
    kps["grafana"] = helm_merge(graf, kps.get("grafana") or {})
    return kps


def effective_values(env, files=("prometheus-values.yaml", "pagerduty-integration.yaml")):
    vals = chart_defaults(env) or {}
    for f in files:
        vals = helm_merge(vals, load_yaml(env.mon / f) or {})
    return vals


def dig(d, path, default=None):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def selector_matches(selector, labels):
    """Kubernetes LabelSelector semantics (matchLabels + matchExpressions); {} selects everything."""
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


# ---------------------------------------------------------------- PromQL
def promql_children(node):
    import promql_parser as p
    if isinstance(node, p.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, p.AggregateExpr):
        return [c for c in (node.param, node.expr) if c is not None]
    if isinstance(node, p.Call):
        return list(node.args)
    if isinstance(node, (p.ParenExpr, p.UnaryExpr, p.SubqueryExpr)):
        return [node.expr]
    if isinstance(node, p.MatrixSelector):
        return [node.vector_selector]
    return []


def promql_walk(node, ancestors=()):
    """Yield (node, ancestors) depth first; ancestors is a tuple from the root down to the parent."""
    yield node, ancestors
    for c in promql_children(node):
        yield from promql_walk(c, ancestors + (node,))


GRAFANA_MACROS = ("$__rate_interval", "${__rate_interval}", "$__interval", "${__interval}", "$__range", "${__range}")


def parse_promql(expr):
    """Parse PromQL, with Grafana's range macros replaced by a plain duration first."""
    import promql_parser as p
    for m in GRAFANA_MACROS:
        expr = expr.replace(m, "5m")
    return p.parse(expr)


def agg_modifier(node):
    """('by'|'without'|None, [labels]) of an AggregateExpr."""
    m = node.modifier
    if m is None:
        return None, []
    kind = "by" if str(m.type).endswith("By") else "without"
    return kind, list(m.labels)
