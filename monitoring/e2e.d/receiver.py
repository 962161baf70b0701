#!/usr/bin/env python3
"""Stand-ins for the HTTP services Alertmanager and vmalert notify, for monitoring/e2e: PagerDuty's Events
API v2 (https://events.pagerduty.com/v2/enqueue), a heartbeat service (the dead man's switch: Alertmanager's
webhook for Watchdog) and an Alertmanager API for vmalert (POST /api/v2/alerts).

Listens on 127.0.0.1 (port 0 = any free port; the port it got is written to --port-file) and appends one JSON
line per POST to --events: {"received_at": <unix time>, "path": ..., "authorization": <header or null>, and
"event": <body> for /v2/enqueue, "body": <body> for any other path}. /v2/enqueue is answered 202 like PagerDuty
does, anything that is not a JSON object 400 (recorded with "invalid" set, so the test can see it); other
paths accept any JSON (200). GET /events returns everything recorded so far.
"""
import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--events", required=True)
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):  # keep the log quiet but useful
            print("%s %s" % (self.command, fmt % a), flush=True)

        def _answer(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802 (http.server naming)
            path = self.path.rstrip("/")
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(n, 4 << 20))
            rec = {"received_at": time.time(), "path": path, "authorization": self.headers.get("Authorization")}
            pagerduty = path == "/v2/enqueue"
            try:
                body = json.loads(raw)
                if pagerduty and not isinstance(body, dict):
                    raise ValueError("not a JSON object")
                rec["event" if pagerduty else "body"] = body
            except ValueError as e:
                rec["invalid"] = f"{e}: {raw[:200]!r}"
            with LOCK, open(args.events, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            if "invalid" in rec:
                return self._answer(400, {"status": "invalid event", "message": rec["invalid"]})
            if not pagerduty:
                return self._answer(200, {"status": "success"})
            return self._answer(202, {"status": "success", "message": "Event processed",
                                      "dedup_key": rec["event"].get("dedup_key", "")})

        def do_GET(self):  # noqa: N802
            if self.path != "/events":
                return self._answer(404, {"status": "not found"})
            with LOCK:
                try:
                    with open(args.events, encoding="utf-8") as f:
                        recs = [json.loads(line) for line in f if line.strip()]
                except FileNotFoundError:
                    recs = []
            return self._answer(200, recs)

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(srv.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    print(f"receiver: listening on 127.0.0.1:{srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
