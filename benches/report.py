#!/usr/bin/env python3
"""benches/report.py — writes the results tables of benches/README.md from the last run.

  cargo bench --bench layer            # criterion, peers in the same run (target/criterion)
  scripts/instructions --write benches/budgets.tsv   # or without --write: target/instructions.tsv
  benches/report.py                    # rewrites the part of benches/README.md between the markers

One table per shape: our median, each peer's, and ours / peer. The instruction counts come from the
last `scripts/instructions` run (target/instructions.tsv) beside their budgets (benches/budgets.tsv).
A benchmark missing from the run shows as "-".
"""
import datetime
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CRITERION = os.path.join(ROOT, "target", "criterion")
README = os.path.join(HERE, "README.md")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

# (title, our benchmark, [(peer, benchmark)])
SHAPES = [
    ("A counter event: dchat's `message.sent` over 100 live channels",
     "many_series/ours/counter_event/100",
     [("OpenTelemetry SDK `counter.add`", "many_series/otel_sdk/counter_add/100"),
      ("tracing-opentelemetry", "many_series/tracing_otel/counter_event/100"),
      ("prometheus `with_label_values().inc()`", "many_series/prometheus/with_label_values_inc/100"),
      ("metrics-rs", "many_series/metrics_rs/counter/100")]),
    ("A counter event over 1000 live channels",
     "many_series/ours/counter_event/1000",
     [("OpenTelemetry SDK `counter.add`", "many_series/otel_sdk/counter_add/1000"),
      ("tracing-opentelemetry", "many_series/tracing_otel/counter_event/1000"),
      ("prometheus `with_label_values().inc()`", "many_series/prometheus/with_label_values_inc/1000"),
      ("metrics-rs", "many_series/metrics_rs/counter/1000")]),
    ("A counter event with an inherited label (two labels)",
     "event/ours/counter_event",
     [("tracing-opentelemetry", "event/tracing_otel/counter_event"),
      ("OpenTelemetry SDK `counter.add`", "event/otel_sdk/counter_add"),
      ("metrics-rs", "event/metrics_rs/counter"),
      ("prometheus `with_label_values().inc()`", "event/prometheus/with_label_values_inc")]),
    ("A histogram event",
     "event/ours/histogram_event",
     [("tracing-opentelemetry", "event/tracing_otel/histogram_event"),
      ("OpenTelemetry SDK `histogram.record`", "event/otel_sdk/histogram_record")]),
    ("An event no rule matches",
     "event/ours/unmatched_event",
     [("tracing-opentelemetry", "event/tracing_otel/unmatched_event"),
      ("the registry alone", "event/registry_only/info")]),
    ("A `db.query` span under a `node` span",
     "event/ours/db_query_span",
     [("a span timer feeding a prometheus histogram", "event/span_timer_prometheus/db_query_span_under_node"),
      ("the same behind a per-layer filter", "event/span_timer_prometheus_filtered/db_query_span_under_node"),
      ("floor: a do-nothing layer", "event/floor_plain_noop_layer/db_query_span"),
      ("floor: a do-nothing layer behind a per-layer filter", "event/floor_filtered_noop_layer/db_query_span")]),
    ("Two threads on one series (per op, per thread)",
     "two_threads_one_series/ours",
     [("OpenTelemetry SDK", "two_threads_one_series/otel_sdk"),
      ("tracing-opentelemetry", "two_threads_one_series/tracing_otel"),
      ("metrics-rs", "two_threads_one_series/metrics_rs")]),
    ("Two threads on their own series (per op, per thread)",
     "two_threads_own_series/ours/2",
     [("ours, one thread", "two_threads_own_series/ours/1"),
      ("metrics-rs, two threads", "two_threads_own_series/metrics_rs/2")]),
]

# Shapes no peer has: (what, benchmark).
ALONE = [
    ("dchat's `message.received` (a counter and a histogram)", "event/ours/message_received_event"),
    ("a `relay.connection` span, opened and closed", "event/ours/relay_span_open_close"),
]

# A render (one scrape's exposition) by series count, against each exporter's own render.
RENDER_SIZES = (1000, 10000, 50000, 200000)
RENDER_PEERS = [("metrics-exporter-prometheus", "render/metrics_exporter_prometheus/{n}"),
                ("opentelemetry-prometheus", "render/opentelemetry_prometheus/{n}")]


def medians(root=CRITERION):
    """Every criterion benchmark's median under `root`, in ns, by its full id."""
    out = {}
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) == "new" and "estimates.json" in files:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                bench = json.load(f)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
            out[bench["full_id"]] = est["median"]["point_estimate"]
    return out


def shown(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def read_tsv(path):
    rows = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("\t")[:2]
                    rows[k] = float(v)
    return rows


def ratio(m, ours, peer):
    return f"{m[ours] / m[peer]:.2f}x" if ours in m and m.get(peer) else "-"


def tables(m):
    lines = []
    for title, ours, peers in SHAPES:
        lines += [f"### {title}", "", "| | median | ours / this |", "| --- | --- | --- |",
                  f"| **dchat-telemetry** | **{shown(m.get(ours))}** | |"]
        for name, bench in peers:
            lines.append(f"| {name} | {shown(m.get(bench))} | {ratio(m, ours, bench)} |")
        lines.append("")
    lines += ["### Shapes no peer has", "", "| | median |", "| --- | --- |"]
    lines += [f"| {what} | {shown(m.get(bench))} |" for what, bench in ALONE]
    lines += ["", "### A render of the whole exposition", ""]
    lines.append("| series | **dchat-telemetry** | "
                 + " | ".join(f"{name} | ours / this" for name, _ in RENDER_PEERS) + " |")
    lines.append("| --- | --- |" + " --- | --- |" * len(RENDER_PEERS))
    for n in RENDER_SIZES:
        ours = f"render/ours/{n}"
        cells = [f"{shown(m.get(b.format(n=n)))} | {ratio(m, ours, b.format(n=n))}" for _, b in RENDER_PEERS]
        lines.append(f"| {n:,} | **{shown(m.get(ours))}** | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def instructions():
    measured = read_tsv(os.path.join(ROOT, "target", "instructions.tsv"))
    budgets = read_tsv(os.path.join(HERE, "budgets.tsv"))
    lines = ["| shape (`examples/hot_path_profile`) | instructions per op | budget (CI) |", "| --- | --- | --- |"]
    for shape in budgets or measured:
        m = measured.get(shape)
        unit = " per series" if shape == "render" else ""
        lines.append(f"| `{shape}` | {f'{m:.0f}' if m is not None else '-'}{unit} | {budgets.get(shape, 0):.0f} |")
    return lines


def main():
    m = medians()
    if not m:
        print(f"report: no criterion results under {CRITERION}: run `cargo bench --bench layer` first",
              file=sys.stderr)
        return 1
    stamp = datetime.date.today().isoformat()
    body = [BEGIN,
            f"Last run: {stamp}, {platform.machine()} ({os.cpu_count()} CPUs), criterion medians; "
            "written by `benches/report.py`.", ""]
    body += tables(m)
    body += ["### Instructions (callgrind), held by CI", ""] + instructions() + ["", END]
    with open(README) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        print(f"report: {README} has no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(README, "w") as f:
        f.write(head + "\n".join(body) + tail)
    print(f"report: {README} updated ({len(m)} benchmarks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
