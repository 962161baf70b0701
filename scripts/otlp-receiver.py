#!/usr/bin/env python3
"""A small OTLP/HTTP metrics receiver for the tests: listens on 127.0.0.1 (the port given, or a
free one), decodes each POST to /v1/metrics with the official protobuf definitions (PyPI
opentelemetry-proto; gzip bodies too), answers 200 with an empty response, and prints the
request as one JSON line (protobuf's JSON mapping) on stdout. Its first line is
`listening PORT`. It stops on SIGTERM, or when stdin closes (so it never outlives its test).

    scripts/otlp-receiver.py [PORT]
"""
import gzip
import http.server
import json
import os
import sys
import threading

try:
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
except ImportError as e:  # the test reports this line: a missing tool must not pass silently
    print(f"missing: {e}; run scripts/install-tools", file=sys.stderr, flush=True)
    sys.exit(2)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/metrics":
            self.send_response(404)
            self.end_headers()
            return
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as e:  # noqa: BLE001 - any decode error is the client's
            self.send_response(400)
            self.end_headers()
            print(json.dumps({"error": str(e)}), flush=True)
            return
        record = MessageToDict(request)
        record["_headers"] = {k.lower(): v for k, v in self.headers.items()}
        print(json.dumps(record), flush=True)
        reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
