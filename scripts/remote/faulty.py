"""A faulty HTTP cache for chunkcache's fault tests, on loopback.

    python3 faulty.py PORT MODE [UPSTREAM]

Requests are passed on to UPSTREAM with their headers (Host too, so that a signed request still
checks out there), and replies come back with theirs, except as MODE says:
  error     every request answers 500;
  corrupt   GET bodies come back with bytes flipped;
  truncate  GET bodies come back cut in half (with a Content-Length that says so);
  cut       GET replies announce the whole body, send half of it and close the connection;
  slow      every reply waits 5 s before it starts.
"""
import http.server
import sys
import time
import urllib.request

port, mode = int(sys.argv[1]), sys.argv[2]
upstream = sys.argv[3] if len(sys.argv) > 3 else None
HOP = {"connection", "content-length", "transfer-encoding", "keep-alive"}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


opener = urllib.request.build_opener(NoRedirect)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def relay(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if mode == "error":
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "slow":
            time.sleep(5)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        request = urllib.request.Request(upstream + self.path, data=body, method=method, headers=headers)
        try:
            with opener.open(request) as response:
                status, reply_headers, data = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, reply_headers, data = error.code, error.headers, error.read()
        announced = len(data)
        if method == "GET" and status == 200 and data:
            if mode == "corrupt":
                data = bytes(b ^ 0x5A if i % 97 == 0 else b for i, b in enumerate(data))
            elif mode in ("truncate", "cut"):
                data = data[: len(data) // 2]
                if mode == "truncate":
                    announced = len(data)
        self.send_response(status)
        for name, value in reply_headers.items():
            if name.lower() not in HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(announced))
        if mode == "cut":
            self.send_header("Connection", "close")
            self.close_connection = True
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
