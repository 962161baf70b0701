#!/usr/bin/env python3
"""Parses an exposition from stdin with prometheus_client's strict parsers, as an independent
check of what /metrics serves: the text format 0.0.4 by default, OpenMetrics 1.0 with
--openmetrics (which also needs `# EOF`, canonical +Inf buckets, counters named without _total
in TYPE, and exemplars within 128 characters). Exit 0 and print the number of samples when it
parses; exit 1 with the parser's error otherwise."""
import sys

text = sys.stdin.read()
try:
    if "--openmetrics" in sys.argv[1:]:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    samples = 0
    for family in text_string_to_metric_families(text):
        samples += len(family.samples)
except ImportError:
    raise
except Exception as e:  # the parser raises ValueError and friends; any failure is a rejection
    print(f"rejected: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print(samples)
