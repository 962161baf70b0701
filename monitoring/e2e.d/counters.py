#!/usr/bin/env python3
"""monitoring/e2e's counting scenarios: what Debian's Prometheus computes from what a node exposes, in the three
situations where an exposition can look right and still make PromQL lie (examples/scenario_node.rs plays them):

  rare   one send failure on a quiet channel and one error of a rare type every 5 s, with a 2 s series TTL, so
         each series expires between its events: increase() over the run counts every event but at most the
         first (Prometheus never counts a new series' first sample), and never sees a reset.
  churn  5000 relays connect and leave at once, then three stay connected (TTL 1 s): once the burst's series
         expire, each live relay is in its own series at 1 and the overflow series is gone.
  flood  the seed's metrics, then floods of distinct channels, relays, operations and error types, scraped with
         the shipped ServiceMonitor's sampleLimit: the scrape stays under it (up 1) and the seed's series stay.

Scraped every second. Prints one PASS/FAIL line per check and ends with "N passed, M failed" (exit 1 if any
failed). Run by monitoring/e2e in its temp dir; alone: counters.py --tmp DIR --node-bin target/release/examples/
scenario_node.
"""
import argparse
import os
import pathlib
import signal
import sys
import time

import yaml

HERE = pathlib.Path(__file__).resolve().parent
MON = HERE.parent
sys.path.insert(0, str(HERE))
import harness  # noqa: E402  (monitoring/e2e.d/harness.py)
from harness import Proc, free_port, prometheus, query, value  # noqa: E402

BUDGET = float(os.environ.get("E2E_COUNTERS_BUDGET_SECONDS", "240"))
EVERY = 5  # seconds between the rare scenario's events
START_AFTER = 10  # seconds before its first: Prometheus scrapes by then, so it can see the first event


def wait_for(fn, timeout, every=0.5):
    return harness.wait_for(fn, timeout, BUDGET, every)


def sample_limit():
    """The shipped ServiceMonitor's sampleLimit."""
    with open(MON / "servicemonitor.yaml") as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == "ServiceMonitor":
                return int(doc["spec"]["sampleLimit"])
    raise RuntimeError("no ServiceMonitor with a sampleLimit in monitoring/servicemonitor.yaml")


def start(tmp, node_bin, scenarios, limit):
    """One node per scenario (its TTL in the environment) and one Prometheus scraping them all every second."""
    nodes, targets = {}, []
    for name, ttl in scenarios:
        port = free_port()
        env = {"DCHAT_TELEMETRY_DRAIN": "0s"}
        if ttl:
            env["DCHAT_TELEMETRY_SERIES_TTL"] = ttl
        nodes[name] = Proc(tmp, "counters", name, [str(node_bin), "--listen", f"127.0.0.1:{port}",
                                                   "--scenario", name, "--every", str(EVERY),
                                                   "--start-after", str(START_AFTER)], env)
        targets.append({"job_name": name, "sample_limit": limit, "scrape_interval": "1s", "scrape_timeout": "1s",
                        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]})
    prom, base = prometheus(tmp, "counters", {"global": {"scrape_interval": "1s"}, "scrape_configs": targets})
    return nodes, prom, base


def rare(res, base, started):
    """Every event but at most the first is counted by increase(); the counter never goes back."""
    wait_for(lambda: None, START_AFTER + 72 - (time.monotonic() - started))  # about 14 events
    for metric, labels in [("dchat_messages_send_failed_total", 'channel="quiet"'),
                           ("dchat_errors_total", 'type="rare"')]:
        sel = f'{metric}{{job="rare",{labels}}}'
        # The exposed value counts the events (it continues across expiry): the last one seen is how many
        # events Prometheus has scraped.
        events = value(base, f"max_over_time({sel}[3m])")
        first = value(base, f"min_over_time({sel}[3m])")
        res.check(f"{metric}{{{labels}}} counts every event (about one per {EVERY} s), from the first",
                  events is not None and events >= 60 / EVERY and first == 1, f"{first} to {events}")
        inc = value(base, f"increase({sel}[3m])")
        res.check(f"increase({metric}{{{labels}}}[3m]) counts every event but at most the first",
                  inc is not None and events is not None and events - 1 <= inc <= events + 1,
                  f"increase {inc}, events {events}")
        resets = value(base, f"resets({sel}[3m])")
        res.check(f"{metric}{{{labels}}} never goes back (no reset)", resets == 0, f"resets {resets}")
        # The series did expire between events: it was absent from some scrapes.
        present = value(base, f"count_over_time({sel}[3m])")
        scrapes = value(base, 'count_over_time(up{job="rare"}[3m])')
        res.check(f"{metric}{{{labels}}} expired between events (absent from some scrapes)",
                  present is not None and scrapes is not None and present < scrapes,
                  f"present in {present} of {scrapes} scrapes")


def churn(res, base):
    """The three live relays leave the overflow series for their own, and the overflow series goes."""
    live = 'dchat_relay_connections_active{job="churn",relay=~"live-.*"}'
    got = wait_for(lambda: (lambda v: v if v == 3 else None)(value(base, f"count({live} == 1)")), 30)
    res.check("every still-open relay is in its own series at 1", got == 3, f"{got} of 3")
    overflow = 'dchat_relay_connections_active{job="churn",otel_metric_overflow="true"}'
    gone = wait_for(lambda: True if query(base, overflow) == [] else None, 30)
    res.check("the overflow series is gone", gone is True, str(query(base, overflow)))
    total = value(base, 'sum(dchat_relay_connections_active{job="churn"})')
    res.check("the gauges add up to the open relays (3 live and the seed's)", total == 4, str(total))


def flood(res, base, limit):
    """One scrape under the sampleLimit, up 1, the seed's series present."""
    scraped = wait_for(lambda: value(base, 'scrape_samples_scraped{job="flood"}'), 30)
    res.check(f"one scrape carries at most the sampleLimit of {limit} samples",
              scraped is not None and scraped <= limit, f"{scraped} samples")
    up = value(base, 'up{job="flood"}')
    res.check("up is 1: Prometheus keeps the scrape", up == 1, str(up))
    for sel in ['dchat_messages_sent_total{channel="general"}',
                'dchat_messages_received_total{channel="general"}',
                'dchat_message_latency_seconds_count{channel="general"}',
                'dchat_database_query_duration_seconds_count{operation="select"}',
                'dchat_relay_connections_active{relay="seed"}']:
        v = value(base, sel.replace("{", '{job="flood",', 1))
        res.check(f"the seed's {sel} is still there", v is not None and v >= 1, str(v))
    for m in ["dchat_errors_total", "dchat_error_rate"]:
        n = value(base, f'count({m}{{job="flood"}})')
        res.check(f"{m} keeps series (flooded types fold into overflow)", n is not None and n >= 1, str(n))
    dropped = value(base, 'sum(dchat_telemetry_label_sets_dropped_total{job="flood"})')
    res.check("the folded label sets are counted", dropped is not None and dropped > 0, str(dropped))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", required=True, type=pathlib.Path)
    ap.add_argument("--node-bin", required=True, type=pathlib.Path)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = harness.Results("counters")
    procs = []
    try:
        limit = sample_limit()
        nodes, prom, base = start(args.tmp, args.node_bin, [("rare", "2s"), ("churn", "1s"), ("flood", None)], limit)
        procs = [*nodes.values(), prom]
        started = time.monotonic()
        ready = wait_for(lambda: (lambda v: v if v == 3 else None)(value(base, "count(up == 1)")), 30)
        if not res.check("Prometheus scrapes the three scenario nodes", ready == 3,
                         f"{ready}; logs: {[p.tail(3) for p in procs]}"):
            return
        churn(res, base)
        flood(res, base, limit)
        rare(res, base, started)
    except Exception as e:  # a broken step is a failure, reported like the others
        res.check("scenario ran to the end", False, f"{type(e).__name__}: {e}")
    finally:
        for p in reversed(procs):
            p.stop()
    sys.exit(res.summary())


if __name__ == "__main__":
    main()
