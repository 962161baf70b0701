#!/usr/bin/env python3
"""Prints the median of every criterion benchmark under target/criterion (after
`cargo bench --bench layer`), one `group/function[/input]  median` line each, in ns or ms."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (benches/report.py: the medians of the last run)

root = sys.argv[1] if len(sys.argv) > 1 else report.CRITERION
for name, ns in sorted(report.medians(root).items()):
    shown = f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns:.1f} ns"
    print(f"{name:70} {shown:>12}")
