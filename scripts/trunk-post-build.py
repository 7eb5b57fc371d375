#!/usr/bin/env python3
"""Trunk post_build hook (Trunk.toml): finish dist/ for the Content-Security-Policy and the
service worker.

1. Trunk 0.21 starts the app with an inline <script type="module">. The page's CSP (index.html)
   allows no inline script, so the script is moved into a file of its own, `boot-<hash>.js`, and
   the page loads that (`src`, with an `integrity` hash like Trunk's other assets). The build
   fails if any inline script or inline event handler is left.
2. A clean console on load: Chrome warns that `integrity` is ignored on `<link rel="preload"
   as="fetch">` (Trunk adds it to the wasm preload), so it is removed there (the module's
   `integrity` stays); the worker's loader shim calls wasm-bindgen's init with a bare path, which
   wasm-bindgen 0.2.130 reports as deprecated, so it passes `{ module_or_path }`.
3. The service worker (sw.js) gets this build's app-shell files (every file of the build but
   itself; never a model) and a build hash, which names its cache: a new build installs a new
   cache and the old one is deleted on activation.

Trunk runs it with TRUNK_STAGING_DIR (the build being assembled) and TRUNK_PUBLIC_URL; by hand:
scripts/trunk-post-build.py DIST_DIR (scripts/build-worker-mt.sh does, after adding the threaded
worker's files, so that they are in the app-shell list too; every step is idempotent).
"""
import base64
import hashlib
import json
import os
import re
import sys

MANIFEST_LINE = re.compile(r"^const MANIFEST = .*;.*$", re.M)
INLINE_SCRIPT = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.S | re.I)
EVENT_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)


def sri(data):
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def externalize_scripts(dist, public_url):
    path = os.path.join(dist, "index.html")
    with open(path, encoding="utf-8") as f:
        html = f.read()

    def replace(m):
        attrs, body = m.group("attrs"), m.group("body")
        if re.search(r"\ssrc\s*=", attrs, re.I):
            return m.group(0)
        if not re.search(r"type\s*=\s*[\"']module[\"']", attrs, re.I):
            sys.exit(f"trunk-post-build: an inline non-module script is left in index.html: {attrs}")
        data = body.strip().encode() + b"\n"
        name = f"boot-{hashlib.sha256(data).hexdigest()[:16]}.js"
        with open(os.path.join(dist, name), "wb") as out:
            out.write(data)
        return f'<script type="module" src="{public_url}{name}" integrity="{sri(data)}"></script>'

    html = INLINE_SCRIPT.sub(replace, html)
    for m in INLINE_SCRIPT.finditer(html):
        if not re.search(r"\ssrc\s*=", m.group("attrs"), re.I):
            sys.exit("trunk-post-build: an inline script is left in index.html")
    if EVENT_HANDLER.search(html):
        sys.exit("trunk-post-build: an inline event handler is left in index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)


PRELOAD_LINK = re.compile(r"<link\b[^>]*\brel=\"preload\"[^>]*>", re.I)
LOADER_CALL = re.compile(r"wasm_bindgen\((\"[^\"]+\")\)")


def quiet_console(dist):
    path = os.path.join(dist, "index.html")
    with open(path, encoding="utf-8") as f:
        html = f.read()
    html = PRELOAD_LINK.sub(lambda m: re.sub(r'\s+integrity="[^"]*"', "", m.group(0)), html)
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)
    loader = os.path.join(dist, "worker_loader.js")
    if os.path.exists(loader):
        with open(loader, encoding="utf-8") as f:
            js = f.read()
        js = LOADER_CALL.sub(lambda m: "wasm_bindgen({ module_or_path: " + m.group(1) + " })", js)
        with open(loader, "w", encoding="utf-8") as f:
            f.write(js)


def shell_files(dist):
    files = []
    for root, dirs, names in os.walk(dist):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in sorted(names):
            rel = os.path.relpath(os.path.join(root, n), dist).replace(os.sep, "/")
            if n.startswith(".") or rel == "sw.js":
                continue
            if rel.lower().endswith(".gguf") or rel.startswith("models/"):
                sys.exit(f"trunk-post-build: a model file is in the build: {rel}")
            files.append(rel)
    return files


def write_manifest(dist):
    files = shell_files(dist)
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0")
        with open(os.path.join(dist, rel), "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    build = h.hexdigest()[:16]
    shell = ["./" if rel == "index.html" else rel for rel in files]
    sw_path = os.path.join(dist, "sw.js")
    with open(sw_path, encoding="utf-8") as f:
        sw = f.read()
    manifest = json.dumps({"build": build, "files": shell}, separators=(",", ":"))
    sw, n = MANIFEST_LINE.subn(lambda _: f"const MANIFEST = {manifest}; // written by scripts/trunk-post-build.py", sw)
    if n != 1:
        sys.exit("trunk-post-build: sw.js has no `const MANIFEST = …;` line")
    with open(sw_path, "w", encoding="utf-8") as f:
        f.write(sw)
    print(f"trunk-post-build: build {build}, {len(shell)} app-shell files in sw.js")


def main():
    dist = os.environ.get("TRUNK_STAGING_DIR") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not dist or not os.path.isdir(dist):
        sys.exit(__doc__)
    public_url = os.environ.get("TRUNK_PUBLIC_URL", "/") or "/"
    if not public_url.endswith("/"):
        public_url += "/"
    externalize_scripts(dist, public_url)
    quiet_console(dist)
    write_manifest(dist)


if __name__ == "__main__":
    main()
