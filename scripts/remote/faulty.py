"""A faulty HTTP cache for chunkcache's fault tests, on loopback.

    python3 faulty.py PORT MODE [UPSTREAM]

MODE is "error" (every request answers 500), "corrupt" (GET bodies from UPSTREAM come back with
bytes flipped) or "truncate" (GET bodies come back cut in half). Other methods are passed on.
"""
import http.server
import sys
import urllib.request

port, mode = int(sys.argv[1]), sys.argv[2]
upstream = sys.argv[3] if len(sys.argv) > 3 else None


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def relay(self, method):
        if mode == "error":
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(upstream + self.path, data=body, method=method)
        try:
            with urllib.request.urlopen(request) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, data = error.code, b""
        if method == "GET" and status == 200 and data:
            if mode == "corrupt":
                data = bytes(b ^ 0x5A if i % 97 == 0 else b for i, b in enumerate(data))
            elif mode == "truncate":
                data = data[: len(data) // 2]
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        self.relay("GET")

    def do_HEAD(self):
        self.relay("HEAD")

    def do_PUT(self):
        self.relay("PUT")


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
