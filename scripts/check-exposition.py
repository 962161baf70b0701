#!/usr/bin/env python3
"""Parses a Prometheus text exposition (format 0.0.4) from stdin with prometheus_client's
strict parser, as an independent check of what /metrics serves. Exit 0 and print the number of
samples when it parses; exit 1 with the parser's error otherwise."""
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    samples = 0
    for family in text_string_to_metric_families(text):
        samples += len(family.samples)
except Exception as e:  # the parser raises ValueError and friends; any failure is a rejection
    print(f"rejected: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print(samples)
