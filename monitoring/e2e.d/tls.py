#!/usr/bin/env python3
"""monitoring/e2e's TLS scenario: one demo node serving /metrics over https with basic auth (the shipped
examples/web-config.yml, beside a certificate from a throwaway CA made with openssl), scraped by Debian's
Prometheus with the right password (up 1) and with a wrong one (up 0), and over plain http (up 0). Run by
monitoring/e2e after the main scenario, in the same temp dir (its "pids" file lets the wrapper kill leftovers).

Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exits 1 when anything failed.
"""
import argparse
import base64
import json
import os
import pathlib
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402  (monitoring/e2e.d/harness.py)
from harness import Proc, free_port, query  # noqa: E402
EXAMPLE = ROOT / "examples" / "web-config.yml"
PASSWORD = "change-me"          # the example's hash is of this password
BUDGET = float(os.environ.get("E2E_TLS_BUDGET_SECONDS", "90"))


def run(argv, cwd):
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r.stdout


def make_pki(d):
    """A CA and a server certificate for 127.0.0.1 and localhost, with openssl."""
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-days", "1", "-subj", "/CN=dchat e2e CA"], d)
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr",
         "-subj", "/CN=dchat e2e node"], d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "tls.crt", "-days", "1", "-extfile", "ext.cnf"], d)


def https(url, ca, auth=None, timeout=5.0):
    """(status, body); status 0 and the error when the connection or handshake failed."""
    ctx = ssl.create_default_context(cafile=str(ca))
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout,
                                    context=ctx) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as e:
        return 0, str(e)


def wait_for(fn, timeout, every=0.5):
    return harness.wait_for(fn, timeout, BUDGET, every)


def scenario(res, tmp, node_bin):
    d = tmp / "tls"
    d.mkdir(exist_ok=True)
    make_pki(d)
    shutil.copy(EXAMPLE, d / "web-config.yml")
    out = subprocess.run(["promtool", "check", "web-config", str(d / "web-config.yml")],
                         capture_output=True, text=True, timeout=60)
    res.check("promtool check web-config accepts examples/web-config.yml", out.returncode == 0,
              (out.stdout + out.stderr).strip().splitlines()[-1] if (out.stdout + out.stderr).strip() else "")

    port = free_port()
    node = Proc(tmp, "tls", "node", [str(node_bin), "--listen", f"127.0.0.1:{port}", "--node-id", "tls-node",
                              "--rate", "20"],
                env={"DCHAT_TELEMETRY_WEB_CONFIG": str(d / "web-config.yml"), "DCHAT_TELEMETRY_DRAIN": "0s"})
    procs = [node]
    try:
        ca = d / "ca.crt"
        base = f"https://127.0.0.1:{port}"
        up = wait_for(lambda: (lambda r: r if r[0] != 0 else None)(https(f"{base}/health", ca)), 20)
        if not res.check("the node serves https with the example web config", up is not None and up[0] == 200,
                         f"/health {up[0] if up else 'never answered'}" + ("" if up else f"; log: {node.tail()}")):
            return
        code, body = https(f"{base}/metrics", ca, ("prometheus", PASSWORD))
        res.check("/metrics with the right password: 200", code == 200 and "dchat_messages_sent_total" in body,
                  str(code))
        code, _ = https(f"{base}/metrics", ca, ("prometheus", "wrong"))
        res.check("/metrics with a wrong password: 401", code == 401, str(code))
        code, _ = https(f"{base}/metrics", ca)
        res.check("/metrics without credentials: 401", code == 401, str(code))

        prom_port = free_port()
        ca_s = str(ca)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": "right", "scheme": "https", "tls_config": {"ca_file": ca_s},
                 "basic_auth": {"username": "prometheus", "password": PASSWORD},
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                {"job_name": "wrong", "scheme": "https", "tls_config": {"ca_file": ca_s},
                 "basic_auth": {"username": "prometheus", "password": "not-the-password"},
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                {"job_name": "plain", "scheme": "http",
                 "basic_auth": {"username": "prometheus", "password": PASSWORD},
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
            ],
        }
        (d / "prometheus.yml").write_text(json.dumps(config))
        (d / "tsdb").mkdir(exist_ok=True)
        prom = Proc(tmp, "tls", "prometheus", ["prometheus", f"--config.file={d / 'prometheus.yml'}",
                                        f"--storage.tsdb.path={d / 'tsdb'}",
                                        f"--web.listen-address=127.0.0.1:{prom_port}"])
        procs.append(prom)
        pbase = f"http://127.0.0.1:{prom_port}"

        def up_of(job):
            r = query(pbase, f'up{{job="{job}"}}')
            return r[0]["value"][1] if r else None

        for job, want, what in [("right", "1", "https + basic auth, right password"),
                                ("wrong", "0", "https + basic auth, wrong password"),
                                ("plain", "0", "plain http on the https port")]:
            got = wait_for(lambda: (lambda v: v if v == want else None)(up_of(job)), 40)
            res.check(f"Prometheus up{{job=\"{job}\"}} is {want} ({what})", got == want,
                      f"up={up_of(job)}" + ("" if got == want else f"; prometheus log: {prom.tail(5)}"))
        # A refusal shows in the "right" job's next scrape after it: wait for it (bounded).
        def rejected(reason):
            return wait_for(lambda: query(pbase, f'dchat_telemetry_http_rejected_total{{job="right",reason="{reason}"}} > 0')
                            or None, 20) or []
        targets = rejected("unauthorized")
        res.check("the node counts the wrong password's scrapes (dchat_telemetry_http_rejected_total{reason=\"unauthorized\"})",
                  bool(targets), json.dumps(targets))
        tls_refused = rejected("tls")
        res.check("the node counts the plain-http scrapes as failed handshakes (reason=\"tls\")",
                  bool(tls_refused), json.dumps(tls_refused))
    finally:
        for p in reversed(procs):
            p.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", required=True, type=pathlib.Path)
    ap.add_argument("--node-bin", required=True, type=pathlib.Path)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = harness.Results("tls")
    try:
        scenario(res, args.tmp, args.node_bin)
    except Exception as e:  # a broken step is a failure, reported like the others
        res.check("scenario ran to the end", False, f"{type(e).__name__}: {e}")
    sys.exit(res.summary())


if __name__ == "__main__":
    main()
