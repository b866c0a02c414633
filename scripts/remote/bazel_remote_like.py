"""A stand-in for stock bazel-remote's HTTP cache (v2.6, AC validation on), for chunkcache's
tests: bazel-remote itself is a Go program that neither Debian nor PyPI packages.

    python3 bazel_remote_like.py PORT DIR

It does what bazel-remote documents and does on the paths chunkcache uses:
- paths must be [PREFIX/](ac|cas)/<64 lowercase hex>, else 400;
- PUT cas/<hash>: the body must hash to <hash>, or, with Content-Encoding: zstd and
  X-Digest-SizeBytes, decode to that many bytes that do; else 400;
- GET cas/<hash>: with Accept-Encoding: zstd, a zstd frame and Content-Encoding: zstd;
  else the plain bytes;
- PUT ac/<hash>: the body must be an ActionResult (protobuf; anything else is 400); it is stored
  re-serialized with execution_metadata.worker set to the client's address, as
  addWorkerMetadataHTTP does, so the bytes read back differ from those sent;
- GET/HEAD ac/<hash>: 404 unless every blob the ActionResult names is in cas/.
GET /status answers JSON with counters: puts by kind, compressed cas puts, rejected requests.
"""
import hashlib
import http.server
import json
import os
import re
import sys
import threading

import zstandard

PATH = re.compile(r"^/?(.*/)?(ac/|cas/)([a-f0-9]{64})$")
root = None
counters = {"ac_puts": 0, "cas_puts": 0, "cas_puts_zstd": 0, "rejected": 0, "ac_incomplete": 0}
lock = threading.Lock()


def count(name):
    with lock:
        counters[name] += 1


class Malformed(Exception):
    pass


def varint(data, i):
    shift = value = 0
    while True:
        if i >= len(data) or shift > 63:
            raise Malformed()
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(data):
    i, out = 0, []
    while i < len(data):
        tag, i = varint(data, i)
        number, kind = tag >> 3, tag & 7
        if number == 0:
            raise Malformed()
        if kind == 0:
            value, i = varint(data, i)
        elif kind == 2:
            length, i = varint(data, i)
            if i + length > len(data):
                raise Malformed()
            value, i = data[i:i + length], i + length
        elif kind in (1, 5):
            width = 8 if kind == 1 else 4
            if i + width > len(data):
                raise Malformed()
            value, i = data[i:i + width], i + width
        else:
            raise Malformed()
        out.append((number, kind, value))
    return out


def encode_varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def named_digests(action_result):
    """The (hash, size) of every blob an ActionResult names (output files, stdout, stderr)."""
    digests = []

    def digest(data):
        hash_, size = "", 0
        for number, kind, value in fields(data):
            if number == 1 and kind == 2:
                hash_ = value.decode()
            elif number == 2 and kind == 0:
                size = value
        if not re.fullmatch(r"[a-f0-9]{64}", hash_):
            raise Malformed()
        return hash_, size

    for number, kind, value in fields(action_result):
        if number == 2:  # OutputFile
            if kind != 2:
                raise Malformed()
            for n, k, v in fields(value):
                if n == 2 and k == 2:
                    digests.append(digest(v))
        elif number in (6, 8) and kind == 2:  # stdout_digest, stderr_digest
            digests.append(digest(value))
        elif number in (3, 10, 11, 12) and kind != 2:
            raise Malformed()
    return digests


def with_worker(action_result, worker):
    kept = bytearray()
    for number, kind, value in fields(action_result):
        if number == 9:
            continue  # replaced below (bazel-remote keeps one that names a worker already)
        if kind == 0:
            kept += encode_varint(number << 3) + encode_varint(value)
        elif kind == 2:
            kept += encode_varint(number << 3 | 2) + encode_varint(len(value)) + value
        else:
            kept += encode_varint(number << 3 | kind) + value
    metadata = encode_varint(1 << 3 | 2) + encode_varint(len(worker)) + worker
    return bytes(kept) + encode_varint(9 << 3 | 2) + encode_varint(len(metadata)) + metadata


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        if status >= 400 and status != 404:
            count("rejected")
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def target(self):
        match = PATH.match(self.path)
        if not match:
            self.reply(400, b"resource name must be a SHA256 hash in hex")
            return None
        return match.group(2)[:-1], match.group(3)

    def file(self, kind, hash_):
        return os.path.join(root, kind, hash_)

    def store(self, kind, hash_, data):
        path = self.file(kind, hash_)
        with open(path + ".tmp%d" % threading.get_ident(), "wb") as out:
            out.write(data)
        os.replace(path + ".tmp%d" % threading.get_ident(), path)

    def ac_complete(self, data):
        for hash_, size in named_digests(data):
            path = self.file("cas", hash_)
            if not os.path.exists(path) or os.path.getsize(path) != size:
                count("ac_incomplete")
                return False
        return True

    def do_GET(self):
        if self.path == "/status":
            with lock:
                self.reply(200, json.dumps(counters).encode())
            return
        target = self.target()
        if not target:
            return
        kind, hash_ = target
        try:
            with open(self.file(kind, hash_), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return self.reply(404)
        if kind == "ac" and not self.ac_complete(data):
            return self.reply(404)
        if kind == "cas" and "zstd" in self.headers.get("Accept-Encoding", ""):
            return self.reply(200, zstandard.ZstdCompressor().compress(data), [("Content-Encoding", "zstd")])
        self.reply(200, data)

    def do_HEAD(self):
        target = self.target()
        if not target:
            return
        kind, hash_ = target
        path = self.file(kind, hash_)
        if not os.path.exists(path):
            return self.reply(404)
        if kind == "ac":
            with open(path, "rb") as f:
                if not self.ac_complete(f.read()):
                    return self.reply(404)
        self.reply(200)

    def do_PUT(self):
        length = self.headers.get("Content-Length")
        if length is None:
            return self.reply(400, b"PUT without Content-Length")
        data = self.rfile.read(int(length))
        target = self.target()
        if not target:
            return
        kind, hash_ = target
        if kind == "cas":
            if self.headers.get("Content-Encoding") == "zstd":
                size = self.headers.get("X-Digest-SizeBytes")
                try:
                    data = zstandard.ZstdDecompressor().decompress(data, max_output_size=int(size))
                except Exception:
                    return self.reply(400, b"bad zstd body or X-Digest-SizeBytes")
                if len(data) != int(size):
                    return self.reply(400, b"size mismatch")
                count("cas_puts_zstd")
            if hashlib.sha256(data).hexdigest() != hash_:
                return self.reply(400, b"hash mismatch")
            count("cas_puts")
        else:
            try:
                named_digests(data)
                data = with_worker(data, self.client_address[0].encode())
            except Malformed:
                return self.reply(400, b"not an ActionResult")
            count("ac_puts")
        self.store(kind, hash_, data)
        self.reply(200)


def inline_manifest(action_result):
    """The first output file's inline contents (for tests that rewrite entries)."""
    for number, kind, value in fields(action_result):
        if number == 2:
            for n, k, v in fields(value):
                if n == 5:
                    return v
    raise Malformed()


if __name__ == "__main__":
    port, root = int(sys.argv[1]), sys.argv[2]
    os.makedirs(os.path.join(root, "ac"), exist_ok=True)
    os.makedirs(os.path.join(root, "cas"), exist_ok=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
