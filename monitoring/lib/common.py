"""Shared helpers for monitoring/check (loaders, Helm-style merge, PromQL walking)."""
import csv
import os
import pathlib
import sys

import yaml

RELEASE = "monitoring"  # the Helm release name the README installs
RUNBOOK_BASE = "https://github.com/dchat/dchat-telemetry/blob/main/monitoring/runbooks/"
# Series that Prometheus itself creates per target (not in the crate's catalogue), with their kind.
PROMETHEUS_SERIES = {"up": "gauge", "scrape_samples_scraped": "gauge", "scrape_duration_seconds": "gauge"}
# kube-state-metrics' series the rules read (the chart runs kube-state-metrics, honorLabels: true, so `namespace`
# is the object's): name -> the labels of its own besides the target labels.
KSM_SERIES = {"kube_deployment_spec_replicas": {"deployment"}, "kube_statefulset_replicas": {"statefulset"}}
# Labels the prometheus-operator puts on every target (honorLabels: false), and dchat's constant labels
# as they arrive (dchat's own `service` becomes `exported_service`; `role` is relay, validator or user).
TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance", "service"}
CONSTANT_LABELS = {"node_id", "exported_service", "role"}
# External labels of the fleet path (fleet-values.yaml): every series in the shared store carries `cluster`
# and the `prometheus_shard` that wrote it; absent on a single Prometheus, where grouping by them is harmless.
EXTERNAL_LABELS = {"cluster", "prometheus_shard"}


def load_defaults(path):
    """The crate's published defaults (tests/data/defaults.tsv): name -> value (int when it is one)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0].startswith("#"):
                continue
            v = row[1].strip()
            out[row[0].strip()] = int(v) if v.lstrip("-").isdigit() else v
    return out


class Env:
    """Where things are: the monitoring dir under test, the catalogue, the upstream reference."""

    def __init__(self):
        self.mon = pathlib.Path(os.environ["MON"])
        self.catalog_path = pathlib.Path(os.environ["CATALOG"])
        self.defaults_path = self.catalog_path.parent / "defaults.tsv"
        ref = os.environ.get("REF", "")
        self.ref = pathlib.Path(ref) if ref and pathlib.Path(ref).is_dir() else None

    def catalog(self):
        """The metric catalogue (tests/data/catalog.tsv): name -> {type, labels, unit, help}."""
        return load_catalog(self.catalog_path)


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


SELF = object()   # a recording rule's reference to its own last result (a held counter)


def result_labels(node, cat, rec, depth=0, _visiting=frozenset()):
    """See _result_labels; a rule that reads its own last result contributes nothing of its own."""
    out = _result_labels(node, cat, rec, depth, _visiting)
    return None if out is SELF else out


def _result_labels(node, cat, rec, depth=0, _visiting=frozenset()):
    """The labels every series of a PromQL expression's result carries (a set), or None when unknown.
    cat: the metric catalogue; rec: recording rule name -> expr (followed, so recorded series are known too).
    Mirrors Prometheus: by() keeps its labels, one-to-one matching with on() keeps only those, group_left/right
    keep the many side, `or` guarantees only what both sides have."""
    import promql_parser as p
    if depth > 8:
        return None
    if isinstance(node, p.VectorSelector):
        name = node.name
        if name in PROMETHEUS_SERIES:
            return set(TARGET_LABELS) | EXTERNAL_LABELS
        if name in KSM_SERIES:
            return set(TARGET_LABELS) | EXTERNAL_LABELS | KSM_SERIES[name]
        if name in _visiting:
            return SELF
        if name in rec:
            return _result_labels(parse_promql(rec[name]), cat, rec, depth + 1, _visiting | {name})
        fam = series_families(cat).get(name)
        if fam is None:
            return None
        labels = set(cat[fam[0]]["labels"]) | TARGET_LABELS | CONSTANT_LABELS | EXTERNAL_LABELS
        return labels | ({"le"} if fam[1] == "bucket" else set())
    if isinstance(node, (p.MatrixSelector,)):
        return _result_labels(node.vector_selector, cat, rec, depth, _visiting)
    if isinstance(node, (p.ParenExpr, p.UnaryExpr, p.SubqueryExpr)):
        return _result_labels(node.expr, cat, rec, depth, _visiting)
    if isinstance(node, (p.NumberLiteral, p.StringLiteral)):
        return set()
    if isinstance(node, p.AggregateExpr):
        kind, labels = agg_modifier(node)
        inner = _result_labels(node.expr, cat, rec, depth, _visiting)
        if node.op.__str__().endswith(("topk", "bottomk")):
            return inner
        if kind == "by":
            return set(labels)
        if kind == "without":
            return None if inner is None else inner - set(labels)
        return set()
    if isinstance(node, p.Call):
        fn = node.func.name
        args = list(node.args)
        if fn in ("vector", "time", "scalar", "pi"):
            return set()
        if fn == "histogram_quantile":
            inner = _result_labels(args[1], cat, rec, depth, _visiting)
            return None if inner is None else inner - {"le"}
        if fn in ("absent", "absent_over_time"):
            sel = args[0].vector_selector if isinstance(args[0], p.MatrixSelector) else args[0]
            if isinstance(sel, p.VectorSelector):
                return {m.name for m in sel.matchers.matchers if str(m.op).endswith("Equal")
                        and not str(m.op).endswith("NotEqual") and m.name != "__name__"}
            return set()
        if fn == "label_replace":
            inner = _result_labels(args[0], cat, rec, depth, _visiting)
            return None if inner is None else inner | {str(args[1]).strip('"')}
        for a in args:
            if not isinstance(a, (p.NumberLiteral, p.StringLiteral)):
                return _result_labels(a, cat, rec, depth, _visiting)
        return set()
    if isinstance(node, p.BinaryExpr):
        lhs, rhs = node.lhs, node.rhs
        ls, rs = _result_labels(lhs, cat, rec, depth, _visiting), _result_labels(rhs, cat, rec, depth, _visiting)
        scalar = (p.NumberLiteral,)
        if isinstance(lhs, scalar) or ls == set() and _is_scalar(lhs):
            return rs
        if isinstance(rhs, scalar) or rs == set() and _is_scalar(rhs):
            return ls
        op = str(node.op).lower()
        m = node.modifier
        matching = m.matching if m else None
        on = matching is not None and str(matching.type).endswith(("On", "Include"))   # on (...): "Include"
        mlabels = set(matching.labels) if matching is not None else set()
        card = str(m.card) if m else "OneToOne"
        if op.endswith(("and", "unless", "land", "lunless")):
            return ls
        if op.endswith(("or", "lor")):
            if ls is SELF or rs is SELF:
                return rs if ls is SELF else ls
            return None if ls is None or rs is None else ls & rs
        include = set(m.group_labels or []) if m and m.group_labels else set()
        if card.endswith("ManyToOne"):
            return None if ls is None else ls | include
        if card.endswith("OneToMany"):
            return None if rs is None else rs | include
        if on:
            return mlabels
        return None if ls is None else ls - mlabels
    return None


def _is_scalar(node):
    """A scalar-valued expression (a number, time(), arithmetic on them)."""
    import promql_parser as p
    if isinstance(node, p.NumberLiteral):
        return True
    if isinstance(node, p.ParenExpr):
        return _is_scalar(node.expr)
    if isinstance(node, p.Call):
        return node.func.name in ("time", "scalar", "pi")
    if isinstance(node, p.BinaryExpr):
        return _is_scalar(node.lhs) and _is_scalar(node.rhs)
    return False
