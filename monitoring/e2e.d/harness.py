"""What monitoring/e2e's extra scenarios share: PASS/FAIL lines, free loopback ports, processes that are
stopped (and recorded in the temp dir's "pids" file, so that the wrapper kills leftovers), PromQL queries and
bounded waits."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

T0 = time.monotonic()


class Results:
    """Counts checks and prints one line each: `PASS [  1.2s] <scenario>: <name>: <detail>`."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        t = f"[{time.monotonic() - T0:5.1f}s]"
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'} {t} {self.scenario}: {name}" + (f": {detail}" if detail else ""),
              flush=True)
        return ok

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A process of the scenario, its output in <tmp>/logs/<prefix>-<name>.log."""

    def __init__(self, tmp, prefix, name, argv, env=None):
        self.log = pathlib.Path(tmp) / "logs" / f"{prefix}-{name}.log"
        self.log.parent.mkdir(exist_ok=True)
        with open(self.log, "ab") as log:
            self.p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True, env={**os.environ, **(env or {})})
        with open(pathlib.Path(tmp) / "pids", "a", encoding="utf-8") as f:
            f.write(f"{self.p.pid} {pathlib.Path(argv[0]).name[:15]}\n")

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)

    def tail(self, n=10):
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def prometheus(tmp, prefix, config):
    """Debian's Prometheus on a free loopback port with `config` (a dict); (process, base URL)."""
    d = pathlib.Path(tmp) / f"{prefix}-prometheus"
    (d / "tsdb").mkdir(parents=True, exist_ok=True)
    (d / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    p = Proc(tmp, prefix, "prometheus", ["prometheus", f"--config.file={d / 'prometheus.yml'}",
                                         f"--storage.tsdb.path={d / 'tsdb'}",
                                         f"--web.listen-address=127.0.0.1:{port}"])
    return p, f"http://127.0.0.1:{port}"


def query(base, expr):
    """The result vector of an instant PromQL query; None when Prometheus does not answer."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())["data"]["result"]
    except (OSError, ValueError, KeyError):
        return None


def value(base, expr):
    """The single value of an instant query, as a float; None when it has no (or no single) result."""
    r = query(base, expr)
    return float(r[0]["value"][1]) if r and len(r) == 1 else None


def wait_for(fn, timeout, budget, every=0.5):
    """fn() until it is not None, for at most `timeout` s and never past `budget` s since start."""
    deadline = time.monotonic() + min(timeout, max(1.0, budget - (time.monotonic() - T0)))
    while True:
        val = fn()
        if val is not None or time.monotonic() >= deadline:
            return val
        time.sleep(every)
