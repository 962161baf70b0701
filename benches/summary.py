#!/usr/bin/env python3
"""Prints the median of every criterion benchmark under target/criterion (after
`cargo bench --bench layer`), one `group/function[/input]  median` line each, in ns or ms."""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "target", "criterion")
rows = []
for dirpath, dirnames, filenames in os.walk(root):
    if os.path.basename(dirpath) == "new" and "estimates.json" in filenames:
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        rows.append((bench["full_id"], est["median"]["point_estimate"]))
for name, ns in sorted(rows):
    shown = f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns:.1f} ns"
    print(f"{name:70} {shown:>12}")
