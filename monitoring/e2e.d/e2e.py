#!/usr/bin/env python3
"""monitoring/e2e's engine: dchat demo nodes, Debian's prometheus and prometheus-alertmanager and a local
PagerDuty Events v2 receiver on 127.0.0.1, driven through the scenario of issue 6. Run it through
monitoring/e2e (which builds the demo, makes the temp dir and kills leftovers); see monitoring/README.md,
"Try the stack locally".

Prints one PASS/FAIL line per assertion (a FAIL also prints what was expected and what came back) and ends
with "N passed, M failed"; exits 1 when anything failed.

The shipped files are never edited: alert-rules.yaml, pagerduty-integration.yaml and servicemonitor.yaml
are read, and shortened copies are written to the temp dir (the "E2E override", below).
"""
import argparse
import hashlib
import json
import os
import pathlib
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

HERE = pathlib.Path(__file__).resolve().parent
MON = HERE.parent
ROOT = MON.parent
sys.path.insert(0, str(MON / "lib"))
import common  # noqa: E402  (monitoring/lib: Helm-style merge of chart defaults + values files)

T0 = time.monotonic()

# ------------------------------------------------------------------ the E2E override (documented in README)
# Only the temp copies are changed. Everything else (expressions, thresholds, labels, routing, inhibition,
# receivers, templates) is used as shipped.
INTERVAL = os.environ.get("E2E_INTERVAL", "1s")                 # scrape interval (and timeout), rule evaluation interval
FOR_DIVISOR = int(os.environ.get("E2E_FOR_DIVISOR", "60"))      # every alert's `for:` divided (5m -> 5s, 10m -> 10s)
WINDOW_DIVISOR = int(os.environ.get("E2E_WINDOW_DIVISOR", "10"))  # every range window [..] in rule exprs divided (5m -> 30s)
AM_GROUP_WAIT = os.environ.get("E2E_AM_GROUP_WAIT", "1s")        # Alertmanager group_wait, every route that sets it
AM_GROUP_INTERVAL = os.environ.get("E2E_AM_GROUP_INTERVAL", "2s")  # Alertmanager group_interval, every route that sets it
RATE = os.environ.get("E2E_NODE_RATE", "5")   # demo nodes' --rate: low, so the healthy nodes' ~0.5% errors stay far below 0.1/s per type
BUDGET = float(os.environ.get("E2E_BUDGET_SECONDS", "290"))      # hard stop for the whole run

NS = "dchat-e2e"
NS_STALL = "dchat-e2e-stall"   # MessagesNotDelivered is per namespace/job: a stalled deployment, not one stalled node
# node id -> (namespace, fault at start)
NODES = {
    "node-1": (NS, None),
    "node-2": (NS, "errors"),
    "node-3": (NS_STALL, "stall"),
    "node-4": (NS, "relay-loss"),
}


# ------------------------------------------------------------------ output
class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def check(self, name, ok, detail="", expected=None, got=None):
        t = f"[{time.monotonic() - T0:5.1f}s]"
        if ok:
            self.passed += 1
            print(f"PASS {t} {name}" + (f": {detail}" if detail else ""), flush=True)
        else:
            self.failed += 1
            self.failures.append(name)
            print(f"FAIL {t} {name}" + (f": {detail}" if detail else ""), flush=True)
            if expected is not None:
                print("       expected: " + indent(expected), flush=True)
            if got is not None:
                print("       got:      " + indent(got), flush=True)
        return ok


def indent(v):
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
    if len(s) > 3000:
        s = s[:3000] + " ...(cut)"
    return s.replace("\n", "\n                 ")


def info(msg):
    print(f"     [{time.monotonic() - T0:5.1f}s] {msg}", flush=True)


class Abort(BaseException):  # not an Exception: the polls swallow those
    pass


# ------------------------------------------------------------------ durations
_UNITS = {"y": 365 * 86400000, "w": 7 * 86400000, "d": 86400000, "h": 3600000, "m": 60000, "s": 1000, "ms": 1}


def parse_dur(s):
    parts = re.findall(r"(\d+)(ms|y|w|d|h|m|s)", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"not a Prometheus duration: {s!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def fmt_dur(ms):
    ms = max(1, int(ms))
    out = ""
    for u in ("h", "m", "s", "ms"):
        n, ms = divmod(ms, _UNITS[u])
        if n:
            out += f"{n}{u}"
    return out


def div_dur(s, divisor):
    return fmt_dur(parse_dur(s) / divisor)


# ------------------------------------------------------------------ the temp copies
def shorten_rules(spec):
    """alert-rules.yaml's .spec with for: / range windows shortened; returns (spec, list of changes)."""
    changes = []
    win_re = re.compile(r"\[(\d+(?:ms|[ywdhms])(?:\d+(?:ms|[ywdhms]))*)(:[^\]]*)?\]")
    for g in spec["groups"]:
        g["interval"] = INTERVAL
        for r in g["rules"]:
            name = r.get("alert") or r.get("record")
            if "for" in r:
                new = div_dur(str(r["for"]), FOR_DIVISOR)
                changes.append(f"{name}: for {r['for']} -> {new}")
                r["for"] = new

            def repl(m):
                return f"[{div_dur(m.group(1), WINDOW_DIVISOR)}{m.group(2) or ''}]"
            new_expr = win_re.sub(repl, r["expr"])
            if new_expr != r["expr"]:
                changes.append(f"{name}: " + ", ".join(sorted({f"[{a}] -> [{div_dur(a, WINDOW_DIVISOR)}]"
                                                               for a, _ in win_re.findall(r["expr"])})))
                r["expr"] = new_expr
    return spec, changes


def am_effective_config():
    """alertmanager.config as Helm would render it: chart defaults (when ../shared/reference is there) +
    prometheus-values.yaml + pagerduty-integration.yaml, merged like monitoring/check does."""
    os.environ.setdefault("MON", str(MON))
    os.environ.setdefault("CATALOG", str(ROOT / "tests/data/catalog.tsv"))
    os.environ.setdefault("REF", os.environ.get("MONITORING_REFERENCE", str(ROOT.parent / "shared/reference")))
    env = common.Env()
    vals = common.effective_values(env)
    return common.dig(vals, "alertmanager.config"), env.ref is not None


def localize_am(cfg, tmp, receiver_url, key_file):
    """The temp copy: PagerDuty URL -> the local receiver, the Secret's key file -> a temp file,
    templates dir -> an empty temp dir, group_wait/group_interval shortened. Returns a list of changes."""
    changes = []
    for r in cfg.get("receivers", []):
        for pd in r.get("pagerduty_configs") or []:
            changes.append(f"{r['name']}: routing_key_file {pd.get('routing_key_file')} -> {key_file}; "
                           f"url -> {receiver_url}")
            pd["routing_key_file"] = str(key_file)
            pd["url"] = receiver_url
    tdir = tmp / "am-templates"
    tdir.mkdir(exist_ok=True)
    if cfg.get("templates"):
        changes.append(f"templates {cfg['templates']} -> [{tdir}/*.tmpl] (empty)")
        cfg["templates"] = [str(tdir / "*.tmpl")]

    def walk(route, path):
        for k, v in (("group_wait", AM_GROUP_WAIT), ("group_interval", AM_GROUP_INTERVAL)):
            if k in route:
                changes.append(f"{path}: {k} {route[k]} -> {v}")
                route[k] = v
        for i, child in enumerate(route.get("routes") or []):
            walk(child, f"{path}.routes[{i}]({child.get('receiver')})")
    walk(cfg["route"], "route")
    return changes


def scrape_configs(sm_docs, node_ports):
    """The scrape jobs the prometheus-operator generates for the ServiceMonitor (one per namespace it is
    applied in), with Kubernetes endpoints discovery replaced by static targets that carry the same
    __meta_kubernetes_* labels the discovery would attach for our Service and pods."""
    svc = next(d for d in sm_docs if d["kind"] == "Service")
    sm = next(d for d in sm_docs if d["kind"] == "ServiceMonitor")
    ep = sm["spec"]["endpoints"][0]
    job_label = sm["spec"].get("jobLabel")
    svc_port = next(p for p in svc["spec"]["ports"] if p.get("name") == ep["port"])
    sel = sm["spec"]["selector"]["matchLabels"]
    svc_labels = svc["metadata"].get("labels", {})

    def sanitize(n):
        return re.sub(r"[^a-zA-Z0-9_]", "_", n)

    jobs = []
    for ns in sorted({ns for ns, _ in NODES.values()}):
        targets = []
        for nid, (nns, _) in NODES.items():
            if nns != ns:
                continue
            pod = f"{svc['metadata']['name']}-{nid}"
            labels = {
                "__meta_kubernetes_namespace": ns,
                "__meta_kubernetes_service_name": svc["metadata"]["name"],
                "__meta_kubernetes_endpoint_port_name": svc_port["name"],
                "__meta_kubernetes_endpoint_address_target_kind": "Pod",
                "__meta_kubernetes_endpoint_address_target_name": pod,
                "__meta_kubernetes_pod_name": pod,
                "__meta_kubernetes_pod_container_name": "dchat",
                "__meta_kubernetes_pod_phase": "Running",
            }
            for k, v in svc_labels.items():
                labels[f"__meta_kubernetes_service_label_{sanitize(k)}"] = v
                labels[f"__meta_kubernetes_service_labelpresent_{sanitize(k)}"] = "true"
            targets.append({"targets": [f"127.0.0.1:{node_ports[nid]}"], "labels": labels})
        relabel = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
        for k, v in sel.items():
            relabel.append({"action": "keep",
                            "source_labels": [f"__meta_kubernetes_service_label_{sanitize(k)}",
                                              f"__meta_kubernetes_service_labelpresent_{sanitize(k)}"],
                            "regex": f"({v});true"})
        relabel += [
            {"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": ep["port"]},
            {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                               "__meta_kubernetes_endpoint_address_target_name"],
             "separator": ";", "regex": "Node;(.*)", "replacement": "${1}", "target_label": "node"},
            {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                               "__meta_kubernetes_endpoint_address_target_name"],
             "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}", "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"},
        ]
        if job_label:
            relabel.append({"source_labels": [f"__meta_kubernetes_service_label_{sanitize(job_label)}"],
                            "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
        relabel.append({"target_label": "endpoint", "replacement": ep["port"]})
        # instance: not relabelled by the operator, so it stays __address__ (pod IP:port there, 127.0.0.1:port here)
        jobs.append({
            "job_name": f"serviceMonitor/{ns}/{sm['metadata']['name']}/0",
            "honor_labels": bool(ep.get("honorLabels", False)),
            "honor_timestamps": True,
            "metrics_path": ep.get("path", "/metrics"),
            "scheme": ep.get("scheme", "http"),
            "scrape_interval": INTERVAL,
            "scrape_timeout": fmt_dur(min(parse_dur(INTERVAL), parse_dur(ep.get("scrapeTimeout", "10s")))),
            "static_configs": targets,
            "relabel_configs": relabel,
        })
    return jobs, ep


# ------------------------------------------------------------------ processes
class Proc:
    ALL = []

    def __init__(self, tmp, name, argv, env=None):
        self.name, self.argv, self.tmp = name, argv, tmp
        self.logpath = tmp / "logs" / f"{name}.log"
        with open(self.logpath, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
            log.flush()
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True, env={**os.environ, **(env or {})})
        comm = pathlib.Path(argv[0]).name[:15]
        with open(tmp / "pids", "a", encoding="utf-8") as f:
            f.write(f"{self.p.pid} {comm}\n")
        Proc.ALL.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode

    def tail(self, n=15):
        try:
            lines = self.logpath.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ HTTP
def http(url, timeout=5.0):
    """(status, body text); status 0 and the error text when the connection failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as e:
        return 0, str(e)


def http_json(url, timeout=5.0):
    code, body = http(url, timeout)
    try:
        return code, json.loads(body)
    except ValueError:
        return code, body


WAITING = {"what": None, "last": None}   # for the abort message: what the run was waiting for, and what it saw


def wait_for(fn, timeout, every=0.5, what=None):
    """Poll fn() -> (ok, value) until ok or timeout; returns (ok, last value, seconds waited)."""
    WAITING["what"], WAITING["last"] = what or getattr(fn, "__name__", "a condition"), None
    start = time.monotonic()
    deadline = start + timeout
    while True:
        try:
            ok, val = fn()
        except Exception as e:  # a poll must never kill the run
            ok, val = False, f"{type(e).__name__}: {e}"
        WAITING["last"] = val
        if ok or time.monotonic() >= deadline:
            return ok, val, time.monotonic() - start
        time.sleep(every)


class Prom:
    def __init__(self, base):
        self.base = base

    def query(self, expr):
        code, body = http_json(f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if isinstance(body, dict) and body.get("status") == "success":
            return True, body["data"]["result"]
        return False, body if isinstance(body, dict) else f"HTTP {code}: {body}"

    def alerts(self):
        code, body = http_json(f"{self.base}/api/v1/alerts")
        return body["data"]["alerts"] if isinstance(body, dict) and body.get("status") == "success" else []

    def firing(self, alertname, **labels):
        return [a for a in self.alerts() if a["labels"].get("alertname") == alertname and a["state"] == "firing"
                and all(a["labels"].get(k) == v for k, v in labels.items())]


def am_alerts(base):
    code, body = http_json(f"{base}/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true")
    return body if isinstance(body, list) else []


def pd_events(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def short_alert(a):
    lab = a.get("labels", {})
    keep = {k: lab[k] for k in ("alertname", "namespace", "instance", "node_id", "type", "severity") if k in lab}
    st = a.get("state") or a.get("status", {}).get("state")
    return {"labels": keep, "state": st}


# ------------------------------------------------------------------ the run
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--node-bin", required=True)
    args = ap.parse_args()
    tmp = pathlib.Path(args.tmp)
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    res = Results()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    def on_alarm(_signum, _frame):
        raise Abort(f"time budget of {BUDGET:.0f}s exhausted (E2E_BUDGET_SECONDS)")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, BUDGET)

    interrupted = None
    try:
        scenario(res, tmp, pathlib.Path(args.node_bin))
    except SystemExit as e:   # a signal (on_signal)
        interrupted = e.code
        res.check("run", False, f"interrupted by signal {e.code - 128}", expected=f"(was waiting for) {WAITING['what']}",
                  got=WAITING["last"])
    except Abort as e:
        res.check("run", False, f"aborted: {e}", expected=f"(was waiting for) {WAITING['what']}",
                  got=WAITING["last"])
    except Exception as e:  # a bug in this script, or an answer it could not read: still clean up and count it
        import traceback
        traceback.print_exc()
        res.check("run", False, f"internal error: {type(e).__name__}: {e}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)   # let the cleanup below finish
        if res.failed:
            print("\n--- last lines of each log (all logs: $E2E_KEEP_TMP=1 keeps the temp dir) ---")
            for p in Proc.ALL:
                print(f"--- {p.name} ({p.logpath.name})")
                print(p.tail())
        for p in reversed(Proc.ALL):
            p.stop(signal.SIGTERM, timeout=5)
        left = []
        for line in (tmp / "pids").read_text().splitlines() if (tmp / "pids").exists() else []:
            pid = int(line.split()[0])
            try:
                os.kill(pid, 0)
                left.append(line)
            except ProcessLookupError:
                pass
            except PermissionError:
                left.append(line)
        res.check("cleanup: no process left behind", not left,
                  f"{len(Proc.ALL)} processes started, all stopped and reaped", expected=[], got=left)
        elapsed = time.monotonic() - T0
        res.check("wall time under 5 minutes", elapsed < 300, f"{elapsed:.0f}s",
                  expected="< 300s", got=f"{elapsed:.0f}s")
        print()
        if res.failures:
            print("failed: " + "; ".join(res.failures))
        print(f"{res.passed} passed, {res.failed} failed", flush=True)
    return interrupted or (1 if res.failed else 0)


def scenario(res, tmp, node_bin):
    # ---------------------------------------------------------------- 0. configuration (temp copies)
    sm_docs = [d for d in yaml.safe_load_all((MON / "servicemonitor.yaml").read_text()) if d]
    rules_src = yaml.safe_load((MON / "alert-rules.yaml").read_text())["spec"]
    shipped = {(r.get("alert") or r.get("record")): r for g in rules_src["groups"] for r in g["rules"]}
    rules, rule_changes = shorten_rules(json.loads(json.dumps(rules_src)))
    (tmp / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    info("E2E override applied to the temp copy of alert-rules.yaml (the shipped file is not touched):")
    info(f"  evaluation interval {INTERVAL}")
    info("  " + "; ".join(c for c in rule_changes if "[" in c))
    info("  " + "; ".join(c for c in rule_changes if "[" not in c))
    p = subprocess.run(["promtool", "check", "rules", str(tmp / "rules.yaml")], capture_output=True, text=True)
    ok = res.check("promtool check rules (shortened copy)", p.returncode == 0,
                   p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "", expected="exit 0",
                   got=p.stdout + p.stderr)
    if not ok:
        raise Abort("the shortened rules do not load")

    node_ports = {n: free_port() for n in NODES}
    am_port, prom_port = free_port(), free_port()
    routing_key = secrets.token_hex(16)   # a fresh fake Events v2 integration key per run
    key_file = tmp / "secrets" / "alertmanager-pagerduty" / "routing-key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(routing_key)

    # the PagerDuty stand-in
    events_path = tmp / "pagerduty-events.jsonl"
    Proc(tmp, "pagerduty-receiver", [sys.executable, str(HERE / "pagerduty-receiver.py"),
                                     "--port-file", str(tmp / "receiver.port"), "--events", str(events_path)])
    ok, _, _ = wait_for(lambda: ((tmp / "receiver.port").exists(), None), 10, 0.1)
    if not res.check("pagerduty receiver started", ok, expected="port file written within 10s", got="nothing"):
        raise Abort("no PagerDuty receiver")
    rport = int((tmp / "receiver.port").read_text())
    receiver_url = f"http://127.0.0.1:{rport}/v2/enqueue"

    am_cfg, merged_defaults = am_effective_config()
    am_changes = localize_am(am_cfg, tmp, receiver_url, key_file)
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(am_cfg, sort_keys=False))
    info("Alertmanager config = alertmanager.config of " + ("chart 88.5.3 defaults + " if merged_defaults else "")
         + "prometheus-values.yaml + pagerduty-integration.yaml (Helm merge); temp-copy changes:")
    for c in am_changes:
        info("  " + c)
    p = subprocess.run(["amtool", "check-config", str(tmp / "alertmanager.yml")], capture_output=True, text=True)
    if not res.check("amtool check-config (local copy)", p.returncode == 0, "SUCCESS",
                     expected="exit 0", got=p.stdout + p.stderr):
        raise Abort("the Alertmanager config does not load")

    jobs, sm_ep = scrape_configs(sm_docs, node_ports)
    prom_cfg = {
        "global": {"scrape_interval": INTERVAL, "scrape_timeout": jobs[0]["scrape_timeout"],
                   "evaluation_interval": INTERVAL},
        "rule_files": [str(tmp / "rules.yaml")],
        "alerting": {"alertmanagers": [{"api_version": "v2",
                                        "static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": jobs,
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg, sort_keys=False))
    info(f"scrape config from servicemonitor.yaml: path {sm_ep.get('path')}, interval {sm_ep.get('interval')} -> "
         f"{INTERVAL}, honorLabels {sm_ep.get('honorLabels', False)}, jobs "
         + ", ".join(j["job_name"] for j in jobs))
    p = subprocess.run(["promtool", "check", "config", str(tmp / "prometheus.yml")], capture_output=True, text=True)
    if not res.check("promtool check config (scrape config equivalent to the ServiceMonitor)", p.returncode == 0,
                     expected="exit 0", got=p.stdout + p.stderr):
        raise Abort("the Prometheus config does not load")

    # ---------------------------------------------------------------- 1. start everything at once
    am_base = f"http://127.0.0.1:{am_port}"
    prom_base = f"http://127.0.0.1:{prom_port}"
    Proc(tmp, "alertmanager", ["prometheus-alertmanager", f"--config.file={tmp / 'alertmanager.yml'}",
                               f"--storage.path={tmp / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                               f"--web.external-url={am_base}", "--cluster.listen-address="])
    nodes = {}

    def start_node(nid, fault):
        argv = [str(node_bin), "--listen", f"127.0.0.1:{node_ports[nid]}", "--node-id", nid, "--rate", RATE]
        if fault:
            argv += ["--fault", fault]
        nodes[nid] = Proc(tmp, nid, argv, env={"DCHAT_TELEMETRY_DRAIN": "0s", "NO_COLOR": "1"})

    for nid, (_, fault) in NODES.items():
        start_node(nid, fault)
    Proc(tmp, "prometheus", ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
                             "--rules.alert.resend-delay=2s", "--log.level=info"])
    info("started: " + ", ".join(f"{n} (127.0.0.1:{node_ports[n]}{', --fault ' + f if f else ''}, namespace {ns})"
                                 for n, (ns, f) in NODES.items())
         + f"; prometheus {prom_base}; alertmanager {am_base}; pagerduty receiver {receiver_url}")

    for name, url in [("alertmanager", f"{am_base}/-/ready"), ("prometheus", f"{prom_base}/-/ready")] + \
            [(n, f"http://127.0.0.1:{node_ports[n]}/ready") for n in NODES]:
        ok, val, took = wait_for(lambda: (http(url, 2)[0] == 200, http(url, 2)), 30, 0.2)
        if not res.check(f"{name} ready", ok, f"GET {url} -> 200 after {took:.1f}s",
                         expected="200 within 30s", got=val):
            raise Abort(f"{name} did not start")

    prom = Prom(prom_base)

    # ---------------------------------------------------------------- 2. targets, labels, queries
    def targets_up():
        code, body = http_json(f"{prom_base}/api/v1/targets?state=active")
        ts = body["data"]["activeTargets"] if isinstance(body, dict) else []
        return len(ts) == len(NODES) and all(t["health"] == "up" for t in ts), ts
    ok, ts, took = wait_for(targets_up, 30)
    res.check("all targets up", ok, f"{len(ts)} targets healthy after {took:.1f}s",
              expected=f"{len(NODES)} active targets, health up",
              got=[{"labels": t.get("labels"), "health": t.get("health"), "lastError": t.get("lastError")}
                   for t in ts] if isinstance(ts, list) else ts)
    want_target_labels = sorted(common.TARGET_LABELS)
    bad = [t["labels"] for t in ts if sorted(t["labels"]) != want_target_labels
           or t["labels"].get("job") != "dchat" or t["labels"].get("service") != "dchat"
           or t["labels"].get("endpoint") != sm_ep["port"]
           or t["labels"]["instance"] != t["discoveredLabels"]["__address__"]]
    res.check("target labels as the operator sets them", not bad and bool(ts),
              f"{want_target_labels}; job=dchat (jobLabel), service=dchat, endpoint={sm_ep['port']}, "
              "instance=address", expected=want_target_labels, got=bad)

    def series_labels():
        ok, r = prom.query("dchat_telemetry_ready")
        return ok and len(r) == len(NODES), r
    ok, r, _ = wait_for(series_labels, 20)
    want = sorted(common.TARGET_LABELS | common.CONSTANT_LABELS | {"__name__"})
    bad = [s["metric"] for s in r if sorted(s["metric"]) != want or s["metric"].get("exported_service") != "dchat"] \
        if isinstance(r, list) else r
    res.check("series labels (honorLabels false: dchat's service -> exported_service)", ok and not bad,
              f"dchat_telemetry_ready carries {want}", expected=want, got=bad or r)

    # enough samples for every rate window: the recording rules produce a series per node
    def recorded():
        ok, r = prom.query("count(instance:dchat_messages_sent:rate5m)")
        return ok and r and float(r[0]["value"][1]) == len(NODES), r
    ok, r, took = wait_for(recorded, 30)
    res.check("recording rules running", ok, f"instance:dchat_messages_sent:rate5m has {len(NODES)} series",
              expected=len(NODES), got=r)

    # a few scrapes of every node, so that every rate window holds at least two samples of each series
    def scraped():
        ok, r = prom.query('count(count_over_time(up{job="dchat"}[1m]) >= 5)')
        return ok and r and float(r[0]["value"][1]) == len(NODES), r
    ok, r, took = wait_for(scraped, 30)
    res.check("every node scraped at least 5 times", ok, f"after {took:.1f}s more", expected=len(NODES), got=r)

    # rules as loaded by Prometheus (the shortened copy): every one healthy
    def rules_health():
        code, body = http_json(f"{prom_base}/api/v1/rules")
        groups = body["data"]["groups"] if isinstance(body, dict) else []
        rs = [r for g in groups for r in g["rules"]]
        done = rs and all(r.get("lastEvaluation", "").startswith("20") for r in rs)
        return bool(done) and len(rs) == len(shipped) and all(r["health"] == "ok" for r in rs), rs
    ok, rs, _ = wait_for(rules_health, 15)
    res.check("Prometheus evaluates every rule without error", ok,
              f"{len(rs) if isinstance(rs, list) else 0} rules loaded, health ok",
              expected=f"{len(shipped)} rules, health ok",
              got=[{"name": r["name"], "health": r["health"], "lastError": r.get("lastError")}
                   for r in rs if r.get("health") != "ok"] if isinstance(rs, list) else rs)

    # the shipped expressions, evaluated as written, through the HTTP API
    import promql_parser
    table = []
    fires_in_scenario = {"DchatHighErrorRate", "DchatRelayConnectionsGone", "DchatMessagesNotDelivered",
                         "DchatTargetDown"}
    for name, r in shipped.items():
        ok, result = prom.query(r["expr"])
        if not ok:
            res.check(f"expr {name} evaluates", False, expected="status success", got=result)
            continue
        if "record" in r:
            ok2, rec = prom.query(name)
            res.check(f"recording rule {name}", bool(result) and ok2 and bool(rec),
                      f"expr returns {len(result)} series; recorded series {len(rec) if ok2 else 0}",
                      expected="data from the expr and from the recorded name", got={"expr": result, "rec": rec})
            continue
        note = f"{len(result)} series" if result else "empty"
        operand_ok = True
        if not result:
            tree = promql_parser.parse(r["expr"])
            if isinstance(tree, promql_parser.BinaryExpr) and isinstance(tree.rhs, promql_parser.NumberLiteral):
                okl, lhs = prom.query(str(tree.lhs))
                operand_ok = okl and bool(lhs)
                note += f" (healthy); its operand `{tree.lhs}` returns {len(lhs) if okl else lhs} series"
            else:
                note += " (healthy)" + ("; fires in a fault scenario below" if name in fires_in_scenario else
                                        "; no operand to sample")
        res.check(f"alert expr {name} evaluates", operand_ok, note, expected="success; data (or its operand's)",
                  got=result)

    # the dashboard, template variables substituted as Grafana would for "All"
    dash = json.loads((MON / "dashboards" / "dchat-overview.json").read_text())
    tvars = {v["name"]: v for v in dash["templating"]["list"]}
    rate_interval = div_dur("5m", WINDOW_DIVISOR)
    subst = {"$namespace": tvars["namespace"].get("allValue", ".*"), "$instance": tvars["instance"].get("allValue", ".*"),
             "$__rate_interval": rate_interval, "${__rate_interval}": rate_interval}
    info(f"dashboard variables: $datasource = this Prometheus; $namespace, $instance = All ({subst['$namespace']}); "
         f"$__rate_interval = {rate_interval}")
    for vname in ("namespace", "instance"):
        q = tvars[vname]["definition"]
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
        sel = m.group(1)
        for k, v in subst.items():
            sel = sel.replace(k, v)
        code, body = http_json(f"{prom_base}/api/v1/label/{m.group(2)}/values?" + urllib.parse.urlencode({"match[]": sel}))
        vals = body.get("data") if isinstance(body, dict) else None
        want = sorted({ns for ns, _ in NODES.values()}) if vname == "namespace" else \
            sorted(f"127.0.0.1:{p}" for p in node_ports.values())
        res.check(f"dashboard variable ${vname}", vals is not None and sorted(vals) == want,
                  f"{q} -> {vals}", expected=want, got=body)
    for panel in dash["panels"]:
        for t in panel.get("targets") or []:
            expr = t["expr"]
            for k, v in subst.items():
                expr = expr.replace(k, v)
            ok, result = prom.query(expr)
            res.check(f"panel {panel['id']} \"{panel['title']}\" {t.get('refId')}", ok and bool(result),
                      f"{len(result)} series" if ok else "error", expected="status success and data",
                      got={"query": expr, "result": result})

    # ---------------------------------------------------------------- 3. faults page
    # PagerDuty dedup_key = sha256(Alertmanager group key), group key = "<route key>:<group labels>"
    def route_key(labels):
        root = am_cfg["route"]
        for child in root.get("routes") or []:
            ms = [re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*', m).groups() for m in child.get("matchers", [])]

            def match(n, op, v):
                have = labels.get(n, "")
                return {"=": have == v, "!=": have != v, "=~": re.fullmatch(v, have) is not None,
                        "!~": re.fullmatch(v, have) is None}[op]
            if all(match(*m) for m in ms):
                return "{}/{" + ",".join(f"{n}{op}{json.dumps(v)}" for n, op, v in ms) + "}", child
        return "{}", root

    def group_key(alertname, namespace, severity):
        rk, route = route_key({"alertname": alertname, "namespace": namespace, "severity": severity})
        gb = route.get("group_by") or am_cfg["route"].get("group_by")
        lab = {"alertname": alertname, "namespace": namespace}
        gl = "{" + ", ".join(sorted(f"{k}={json.dumps(lab[k])}" for k in gb if k in lab)) + "}"
        return f"{rk}:{gl}", route["receiver"]

    def dedup(alertname, namespace, severity):
        return hashlib.sha256(group_key(alertname, namespace, severity)[0].encode()).hexdigest()

    expected_pages = {  # alert -> (labels that identify the firing alert, namespace, severity)
        "DchatHighErrorRate": ({"node_id": "node-2"}, NS, "warning"),
        "DchatRelayConnectionsGone": ({"node_id": "node-4"}, NS, "critical"),
        "DchatMessagesNotDelivered": ({"namespace": NS_STALL}, NS_STALL, "critical"),
        "DchatTargetDown": ({"instance": f"127.0.0.1:{node_ports['node-2']}"}, NS, "critical"),
    }
    for a, (_, ns, sev) in expected_pages.items():
        gk, recv = group_key(a, ns, sev)
        info(f"{a}: receiver {recv}, group key {gk} -> dedup_key {dedup(a, ns, sev)[:16]}...")

    def wait_firing(alertname, labels, timeout):
        ok, val, took = wait_for(lambda: (bool(prom.firing(alertname, **labels)), prom.firing(alertname, **labels)
                                          or [short_alert(x) for x in prom.alerts()]), timeout,
                                 what=f"{alertname} firing with {labels} (Prometheus /api/v1/alerts)")
        return ok, val, took

    def wait_page(alertname, action, timeout, after=0.0):
        _, ns, sev = expected_pages[alertname]
        key = dedup(alertname, ns, sev)

        def look():
            evs = [e for e in pd_events(events_path) if e["received_at"] > after and "event" in e]
            hit = [e for e in evs if e["event"].get("dedup_key") == key and e["event"].get("event_action") == action]
            return bool(hit), (hit[0] if hit else [
                {k: e["event"].get(k) for k in ("event_action", "dedup_key")} | {
                    "summary": (e["event"].get("payload") or {}).get("summary")} for e in evs])
        return wait_for(look, timeout, what=f"PagerDuty {action} for {alertname} with dedup_key {key}")

    def check_page(alertname, ev, action):
        _, ns, sev = expected_pages[alertname]
        e = ev["event"]
        problems = []
        if e.get("routing_key") != routing_key:
            problems.append(f"routing_key {e.get('routing_key')!r} != the key in the Secret file {routing_key!r}")
        if action == "trigger":
            pl = e.get("payload") or {}
            if pl.get("severity") != sev:
                problems.append(f"payload.severity {pl.get('severity')!r} != {sev!r}")
            if alertname not in (pl.get("summary") or "") or not (pl.get("summary") or "").startswith("[FIRING"):
                problems.append(f"payload.summary {pl.get('summary')!r} does not name the firing alert")
            if (pl.get("custom_details") or {}).get("namespace") != ns:
                problems.append(f"custom_details.namespace {(pl.get('custom_details') or {}).get('namespace')!r}")
        return problems

    triggers = {}
    for a in ("DchatRelayConnectionsGone", "DchatHighErrorRate", "DchatMessagesNotDelivered"):
        labels, ns, sev = expected_pages[a]
        ok, val, took = wait_firing(a, labels, 60)
        res.check(f"{a} fires for {labels}", ok,
                  f"firing ({len(val)} alert(s), e.g. {short_alert(val[0])['labels']})" if ok else "",
                  expected=f"{a} firing with {labels} within 60s", got=val)
        ok, ev, took = wait_page(a, "trigger", 30)
        if ok:
            triggers[a] = ev
            problems = check_page(a, ev, "trigger")
            res.check(f"PagerDuty trigger for {a}", not problems,
                      f"severity {sev}, routing key ok, dedup_key {ev['event']['dedup_key'][:16]}...",
                      expected=f"severity {sev}, routing key from the Secret, dedup_key {dedup(a, ns, sev)}",
                      got=problems)
        else:
            res.check(f"PagerDuty trigger for {a}", False, expected=f"a trigger with dedup_key {dedup(a, ns, sev)}",
                      got=ev)

    n1 = f"127.0.0.1:{node_ports['node-1']}"
    noisy = [short_alert(x) for x in prom.alerts()
             if x["labels"].get("instance") == n1 or (x["labels"].get("alertname") == "DchatMessagesNotDelivered"
                                                      and x["labels"].get("namespace") == NS)]
    res.check("no alert for the healthy node (and none for its namespace's delivery)",
              not [x for x in noisy if x["state"] == "firing"], f"node-1 {n1}: nothing firing",
              expected="no firing alert with instance node-1", got=noisy)

    # ---------------------------------------------------------------- 4. a node stops; faults end
    # node-2 (errors, its error-rate alert firing) stops: TargetDown fires; its error-rate alert keeps firing in
    # Prometheus for one rate window and must be inhibited in Alertmanager. node-3 and node-4 are restarted on
    # the same port and node id without their fault: their alerts resolve.
    t_stop = time.time()
    info("stopping node-2 (SIGTERM); restarting node-3 and node-4 without --fault")
    for nid in ("node-2", "node-3", "node-4"):
        rc = nodes[nid].stop(signal.SIGTERM, 10)
        res.check(f"{nid} stops on SIGTERM", rc == 0, "exit 0", expected=0, got=rc)
    for nid in ("node-3", "node-4"):
        start_node(nid, None)

    i2 = f"127.0.0.1:{node_ports['node-2']}"
    ok, val, took = wait_firing("DchatTargetDown", {"instance": i2}, 40)
    res.check("DchatTargetDown fires for the stopped node-2", ok, f"{took:.1f}s after the stop",
              expected=f"DchatTargetDown firing for {i2}", got=val)
    ok, ev, took = wait_page("DchatTargetDown", "trigger", 30, after=t_stop)
    if ok:
        triggers["DchatTargetDown"] = ev
        problems = check_page("DchatTargetDown", ev, "trigger")
        res.check("PagerDuty trigger for DchatTargetDown", not problems,
                  f"severity critical, routing key ok, dedup_key {ev['event']['dedup_key'][:16]}...",
                  expected="severity critical, routing key from the Secret", got=problems)
    else:
        res.check("PagerDuty trigger for DchatTargetDown", False, expected="a trigger", got=ev)

    def inhibited():
        am = [x for x in am_alerts(am_base) if x["labels"].get("instance") == i2]
        td = [x for x in am if x["labels"].get("alertname") == "DchatTargetDown" and x["status"]["state"] == "active"]
        others = [x for x in am if x["labels"].get("alertname") != "DchatTargetDown"]
        her = [x for x in others if x["labels"].get("alertname") == "DchatHighErrorRate"]
        good = td and her and all(x["status"]["state"] == "suppressed" and x["status"]["inhibitedBy"] for x in others)
        return bool(good), [{"labels": {k: x["labels"].get(k) for k in ("alertname", "instance", "type")},
                             "status": x["status"]} for x in am]
    ok, val, took = wait_for(inhibited, 15)
    still = prom.firing("DchatHighErrorRate", instance=i2)
    res.check("node-2's other alerts inhibited by DchatTargetDown", ok and bool(still),
              f"Alertmanager: {sum(1 for x in val if x['labels']['alertname'] != 'DchatTargetDown')} alert(s) of "
              f"{i2} suppressed (inhibitedBy TargetDown) while Prometheus still fires {len(still)} "
              "DchatHighErrorRate for it" if ok else "",
              expected="TargetDown active; DchatHighErrorRate (still firing in Prometheus) and any other alert "
                       "of that instance suppressed with inhibitedBy",
              got={"alertmanager": val, "prometheus_firing_HighErrorRate": len(still)})
    td_at = triggers.get("DchatTargetDown", {}).get("received_at", time.time())
    her_key = dedup("DchatHighErrorRate", NS, "warning")
    time.sleep(3)  # more than a group_interval: a wrongly un-inhibited alert would have paged by now
    late = [e["event"].get("event_action") for e in pd_events(events_path)
            if e["received_at"] > td_at and e.get("event", {}).get("dedup_key") == her_key]
    res.check("no new PagerDuty trigger for node-2's inhibited alert", "trigger" not in late,
              f"events for its group while node-2 is down: {late or 'none'}",
              expected="no trigger", got=late)

    for a in ("DchatRelayConnectionsGone", "DchatMessagesNotDelivered"):
        after = triggers.get(a, {}).get("received_at", t_stop)
        ok, ev, took = wait_page(a, "resolve", 60, after=after)
        res.check(f"fault ended: PagerDuty resolve for {a}", ok and not check_page(a, ev, "resolve"),
                  f"same dedup_key as its trigger, {ev['received_at'] - t_stop:.1f}s after the restart" if ok else "",
                  expected=f"a resolve with dedup_key {dedup(a, *expected_pages[a][1:])}",
                  got=ev if not ok else check_page(a, ev, "resolve"))

    # node-2 comes back without the fault: TargetDown resolves, then its error rate drains out of the window
    t_back = time.time()
    info("restarting node-2 without --fault")
    start_node("node-2", None)
    ok, ev, took = wait_page("DchatTargetDown", "resolve", 30, after=t_back)
    res.check("node back: PagerDuty resolve for DchatTargetDown", ok and not check_page("DchatTargetDown", ev, "resolve"),
              f"{ev['received_at'] - t_back:.1f}s after the restart" if ok else "",
              expected="a resolve with the TargetDown dedup_key", got=ev)
    ok, val, took = wait_for(lambda: (not prom.firing("DchatHighErrorRate", instance=i2),
                                      prom.firing("DchatHighErrorRate", instance=i2)), 90)
    res.check("error fault ended: DchatHighErrorRate resolves in Prometheus", ok, f"{took:.1f}s after the restart",
              expected="not firing", got=[short_alert(x) for x in val] if isinstance(val, list) else val)
    ok, ev, took = wait_page("DchatHighErrorRate", "resolve", 30, after=t_back)
    res.check("error fault ended: PagerDuty resolve for DchatHighErrorRate",
              ok and not check_page("DchatHighErrorRate", ev, "resolve"),
              f"dedup_key {her_key[:16]}..., {ev['received_at'] - t_back:.1f}s after the restart" if ok else "",
              expected=f"a resolve with dedup_key {her_key}", got=ev)

    # ---------------------------------------------------------------- 5. the whole PagerDuty log
    evs = pd_events(events_path)
    invalid = [e for e in evs if "invalid" in e]
    names = {dedup(a, *v[1:]): a for a, v in expected_pages.items()}
    print("     PagerDuty events received (time since start, action, severity, alert group, summary):")
    t_first = T0 - time.monotonic() + time.time()
    for e in evs:
        ev = e.get("event", {})
        pl = ev.get("payload") or {}
        print(f"       {e['received_at'] - t_first:6.1f}s  {ev.get('event_action', '?'):8} {pl.get('severity', ''):8} "
              f"{names.get(ev.get('dedup_key'), 'unexpected ' + str(ev.get('dedup_key'))[:12]):26} "
              f"{(pl.get('summary') or '')[:90]}")
    bare = sorted({names.get(e["event"].get("dedup_key"), "?") for e in evs if "event" in e
                   and re.fullmatch(r"\[\w+\] \w+: ?", (e["event"].get("payload") or {}).get("summary") or "")})
    if bare:
        info("NOTE (not an assertion): PagerDuty summaries with nothing after the alert name for " + ", ".join(bare)
             + ": the group holds alerts whose summaries differ, so .CommonAnnotations.summary is empty")
    unexpected = [e["event"].get("payload", {}).get("summary") for e in evs
                  if "event" in e and e["event"].get("dedup_key") not in names]
    res.check("PagerDuty got only the expected pages, all valid Events v2", not unexpected and not invalid,
              f"{len(evs)} events, all for {sorted(set(names.values()))}",
              expected="only the four expected alert groups", got={"unexpected": unexpected, "invalid": invalid})
    firing = [short_alert(x) for x in prom.alerts() if x["state"] == "firing"]
    res.check("all quiet at the end", not firing, "no alert firing", expected=[], got=firing)


if __name__ == "__main__":
    sys.exit(main())
