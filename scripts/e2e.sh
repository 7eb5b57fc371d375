#!/usr/bin/env bash
# Browser end-to-end tests: build the app with trunk, serve it (plus ../shared/models at /models/),
# and run tests/e2e/chat.spec.mjs in headless Chromium (system /usr/bin/chromium via playwright-core,
# WebGPU on SwiftShader).
# Screenshots land in tests/e2e/screenshots/ (git-ignored).
# usage: scripts/e2e.sh [--no-build]     env: E2E_PORT (default 8091), WASM_CHORD_SHARED (default ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh

PORT=${E2E_PORT:-8091}
SHARED=${WASM_CHORD_SHARED:-../shared}
MODEL="$SHARED/models/smollm2-4layer-mixed.gguf"
GOLDEN="$SHARED/golden/smollm2-4layer-mixed.json"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
for f in "$MODEL" "$GOLDEN"; do
  [ -f "$f" ] || { echo "error: $f is missing (set WASM_CHORD_SHARED)" >&2; exit 1; }
done
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "error: $CHROMIUM not found; install chromium" >&2
    exit 1
  fi
fi

if [ "${1:-}" != "--no-build" ]; then
  ensure_wasm_target
  ensure_wasm_bindgen
  ensure_binaryen
  ensure_trunk
  log "building (trunk build --release)"
  cargo fetch --locked
  nice -n 5 trunk build --release
fi

if [ ! -d tests/e2e/node_modules/playwright-core ]; then
  log "installing playwright-core (npm ci)"
  (cd tests/e2e && npm ci --no-audit --no-fund --silent)
fi

# The hostile-output model of test f (same weights, HTML payloads as token strings), and the
# model of test m whose chat template raises an error.
INJECTION_MODEL=$(mktemp -d)/injection.gguf
TEMPLATE_MODEL=$(dirname "$INJECTION_MODEL")/raising-template.gguf
python3 scripts/make-injection-model.py "$MODEL" "$INJECTION_MODEL" >/dev/null 2>&1
python3 scripts/make-template-model.py "$MODEL" "$TEMPLATE_MODEL" '{{ raise_exception("boom") }}' >/dev/null 2>&1

log "serving dist/ on 127.0.0.1:$PORT"
python3 scripts/serve.py --dir dist --models models --extra-models "$SHARED/models" \
  --bind 127.0.0.1 --port "$PORT" >/tmp/wasm-chord-e2e-serve.log 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$(dirname "$INJECTION_MODEL")"' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break
  sleep 0.2
done

log "running tests/e2e/chat.spec.mjs"
BASE_URL="http://127.0.0.1:$PORT/" MODEL="$(realpath "$MODEL")" GOLDEN="$(realpath "$GOLDEN")" \
  INJECTION_MODEL="$INJECTION_MODEL" TEMPLATE_MODEL="$TEMPLATE_MODEL" \
  CHROMIUM="$CHROMIUM" node tests/e2e/chat.spec.mjs
