#!/usr/bin/env bash
# Fetch llama.cpp's tokenizer test vocabularies (models/ggml-vocab-*.gguf with their .inp/.out
# test strings and token ids) into ./models/vocab (git-ignored), from the llama-cpp-python sdist
# on PyPI, which vendors llama.cpp. Idempotent: does nothing when the files are already there.
# Used by inference/tests/tokenizer.rs (llama_cpp_vocab_files).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
OUT=models/vocab
STAMP=$OUT/.llama-cpp-python-$VERSION
CACHE=${WASM_CHORD_CACHE:-$HOME/.cache/wasm-chord}
PY=${PYTHON:-python3}

if [ -f "$STAMP" ]; then
  echo "have: $OUT (llama-cpp-python $VERSION)"
  exit 0
fi

mkdir -p "$OUT" "$CACHE/sdist"
SDIST=$CACHE/sdist/llama_cpp_python-$VERSION.tar.gz
if [ ! -f "$SDIST" ]; then
  # The sdist's URL and sha256 from the package index's JSON (PEP 691, what pip reads), then the
  # file itself. (Not `pip download --no-binary :all:`: to read the sdist's metadata pip builds
  # its build dependencies from source, CMake included: 25+ minutes on 2 cores.)
  "$PY" - "$VERSION" "$SDIST" <<'PYEOF' >&2
import hashlib, json, os, sys, urllib.request
version, dst = sys.argv[1], sys.argv[2]
req = urllib.request.Request('https://pypi.org/simple/llama-cpp-python/',
                             headers={'Accept': 'application/vnd.pypi.simple.v1+json'})
files = json.load(urllib.request.urlopen(req, timeout=60))['files']
name = f'llama_cpp_python-{version}.tar.gz'
found = [f for f in files if f['filename'] == name]
if not found:
    sys.exit(f'error: the package index lists no {name}')
url, want = found[0]['url'], found[0]['hashes']['sha256']
h = hashlib.sha256()
with urllib.request.urlopen(url, timeout=60) as r, open(dst + '.part', 'wb') as f:
    while chunk := r.read(1 << 20):
        h.update(chunk)
        f.write(chunk)
if h.hexdigest() != want:
    os.remove(dst + '.part')
    sys.exit(f'error: {url}: sha256 {h.hexdigest()} != {want} (PyPI)')
os.replace(dst + '.part', dst)
print(f'downloaded {url}')
PYEOF
fi

# Extract only vendor/llama.cpp/models/ggml-vocab-* (flat) into $OUT, then mark it complete.
"$PY" - "$SDIST" "$OUT" <<'PYEOF'
import os, sys, tarfile, shutil
sdist, out = sys.argv[1], sys.argv[2]
n = 0
with tarfile.open(sdist) as tf:
    for m in tf:
        parts = m.name.split('/')
        if (m.isfile() and len(parts) == 5 and parts[1:4] == ['vendor', 'llama.cpp', 'models']
                and parts[4].startswith('ggml-vocab-')):
            dst = os.path.join(out, parts[4])
            with tf.extractfile(m) as src, open(dst + '.part', 'wb') as f:
                shutil.copyfileobj(src, f, 1 << 20)
            os.replace(dst + '.part', dst)
            n += 1
if n == 0:
    sys.exit(f'error: no vendor/llama.cpp/models/ggml-vocab-* in {sdist}')
print(f'ok: {n} files in {out}')
PYEOF
touch "$STAMP"
