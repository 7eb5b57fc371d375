#!/usr/bin/env python3
"""Static server for the built app (dist/) and the models (models/ at /models/).

- HTTP Range requests (single range: `bytes=a-b`, `bytes=a-`, `bytes=-n`) → 206 with Content-Range,
  unsatisfiable → 416, so the app can download models resumably.
- Correct MIME types for .wasm, .js, .webmanifest, .gguf.
- Cross-origin isolation (COOP/COEP) so the page may use SharedArrayBuffer and threads later.
- Test hook for resumable downloads: `?drop_after=N` on a file URL cuts the connection after
  byte N of a response that starts at byte 0, so a client must resume with Range to get the
  rest (tests/e2e).

usage: scripts/serve.py [--dir dist] [--models models] [--extra-models DIR] [--mount PREFIX=DIR]...
                        [--bind 127.0.0.1] [--port 8080]

--extra-models (or env WASM_CHORD_EXTRA_MODELS): a second folder also served at /models/, looked up
when a file is not in --models (e.g. models kept outside the repository).

--mount PREFIX=DIR (repeatable): also serve DIR at /PREFIX/ (e.g. `--mount /bench=tests/bench`, how
scripts/bench-browser.sh serves its page and wllama's assets next to the app). The longest
matching prefix wins; /models/ keeps its own rule.
"""

import argparse
import http.server
import os
import re
import shutil
import sys
import urllib.parse

CHUNK = 1 << 20
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header, size):
    """Return (start, end_inclusive) for a single satisfiable range, None to ignore the header
    (malformed or multi-range: serve the whole file), or 'unsatisfiable'."""
    m = RANGE_RE.match(header.strip())
    if not m:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return (max(0, size - n), size - 1) if size > 0 else "unsatisfiable"
    start = int(first)
    end = int(last) if last != "" else size - 1
    if last != "" and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return (start, min(end, size - 1))


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for many Range requests; every response sets a length
    models_dir = "models"
    extra_models_dir = None
    mounts = []  # (url prefix without trailing slash, absolute dir), longest prefix first

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".css": "text/css",
        ".html": "text/html; charset=utf-8",
        ".json": "application/json",
        ".webmanifest": "application/manifest+json",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".gguf": "application/octet-stream",
    }

    def translate_path(self, path):
        url_path = urllib.parse.urlsplit(path).path
        if url_path == "/models" or url_path.startswith("/models/"):
            saved = self.directory
            try:
                # The base class drops '..' and empty segments, so this stays inside models_dir.
                self.directory = self.models_dir
                found = super().translate_path(path[len("/models"):] or "/")
                if self.extra_models_dir and not os.path.isfile(found):
                    self.directory = self.extra_models_dir
                    extra = super().translate_path(path[len("/models"):] or "/")
                    if os.path.isfile(extra):
                        return extra
                return found
            finally:
                self.directory = saved
        for prefix, directory in self.mounts:
            if url_path == prefix or url_path.startswith(prefix + "/"):
                saved = self.directory
                try:
                    self.directory = directory
                    return super().translate_path(path[len(prefix):] or "/")
                finally:
                    self.directory = saved
        return super().translate_path(path)

    def list_directory(self, path):
        self.send_error(404, "Not found")
        return None

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def send_head(self):
        self._range = None
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            index = os.path.join(path, "index.html")
            if not os.path.isfile(index):
                return super().send_head()  # redirect or 404 via list_directory
            if not urllib.parse.urlsplit(self.path).path.endswith("/"):
                return super().send_head()  # the base class sends the trailing-slash redirect
            path = index
        if not os.path.isfile(path):
            self.send_error(404, "File not found")
            return None
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(404, "File not found")
            return None
        try:
            size = os.fstat(f.fileno()).st_size
            ctype = self.guess_type(path)
            header = self.headers.get("Range")
            rng = parse_range(header, size) if header else None
            if rng == "unsatisfiable":
                f.close()
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            if rng is None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                self._range = (0, size)
            else:
                start, end = rng
                self.send_response(206)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                f.seek(start)
                self._range = (start, end - start + 1)
            return f
        except Exception:
            f.close()
            raise

    def drop_at(self):
        """Absolute file offset at which to cut this response (`?drop_after=N`), or None."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            n = int(query.get("drop_after", [""])[0])
        except ValueError:
            return None
        start = self._range[0] if self._range else 0
        return n if start == 0 else None

    def copyfile(self, source, outputfile):
        remaining = self._range[1] if self._range else None
        drop = self.drop_at()
        if drop is not None and remaining is not None:
            start = self._range[0]
            remaining = min(remaining, drop - start)
            while remaining > 0:
                buf = source.read(min(CHUNK, remaining))
                if not buf:
                    break
                outputfile.write(buf)
                remaining -= len(buf)
            outputfile.flush()
            # Cut the connection mid-body, as a dropped network would.
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if remaining is None:
            shutil.copyfileobj(source, outputfile, CHUNK)
            return
        while remaining > 0:
            buf = source.read(min(CHUNK, remaining))
            if not buf:
                break
            outputfile.write(buf)
            remaining -= len(buf)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="dist", help="built app to serve at / (default: dist)")
    ap.add_argument("--models", default="models", help="folder served at /models/ (default: models)")
    ap.add_argument("--extra-models", default=os.environ.get("WASM_CHORD_EXTRA_MODELS"),
                    help="second folder served at /models/ (default: $WASM_CHORD_EXTRA_MODELS)")
    ap.add_argument("--mount", action="append", default=[], metavar="PREFIX=DIR",
                    help="also serve DIR at /PREFIX/ (repeatable)")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()

    if not os.path.isdir(args.dir):
        sys.exit(f"error: {args.dir}/ does not exist (build first: trunk build --release)")
    Handler.models_dir = os.path.abspath(args.models)
    if args.extra_models:
        Handler.extra_models_dir = os.path.abspath(args.extra_models)
    mounts = []
    mounted = ""  # for the start-up line
    for spec in args.mount:
        prefix, sep, directory = spec.partition("=")
        prefix = "/" + prefix.strip("/")
        if not sep or prefix == "/" or not directory:
            sys.exit(f"error: --mount {spec!r}: expected PREFIX=DIR, e.g. /bench=tests/bench")
        if prefix == "/models" or prefix.startswith("/models/"):
            sys.exit(f"error: --mount {spec!r}: /models/ is served from --models")
        if not os.path.isdir(directory):
            sys.exit(f"error: --mount {spec!r}: {directory}/ does not exist")
        mounts.append((prefix, os.path.abspath(directory)))
        mounted += f", {directory.rstrip('/')}/ at {prefix}/"
    Handler.mounts = sorted(mounts, key=lambda m: len(m[0]), reverse=True)

    def handler(*a, **kw):
        return Handler(*a, directory=os.path.abspath(args.dir), **kw)

    http.server.ThreadingHTTPServer.allow_reuse_address = True
    with http.server.ThreadingHTTPServer((args.bind, args.port), handler) as httpd:
        print(f"serving {args.dir}/ and {args.models}/{mounted} at http://{args.bind}:{args.port}/", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
