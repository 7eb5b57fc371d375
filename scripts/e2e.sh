#!/usr/bin/env bash
# Browser end-to-end tests: build the app with trunk (and the threaded worker), serve it (and models/ at /models/),
# and run tests/e2e/chat.spec.mjs in headless Chromium (system /usr/bin/chromium via playwright-core,
# WebGPU on SwiftShader).
# Screenshots land in tests/e2e/screenshots/ (git-ignored).
# Then the npm package (tests/e2e/npm.spec.mjs): packed from the same build, installed from its tarball.
# usage: scripts/e2e.sh [--no-build]     env: E2E_PORT (default 8091; the package's page uses the next
#        port), CHAT_ONLY=1 / NPM_ONLY=1 (one of the two suites). Needs models/smollm2-4layer-mixed.gguf
#        (scripts/fetch-models.sh smollm2) and its golden file inference/tests/data/golden/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh

PORT=${E2E_PORT:-8091}
MODEL=models/smollm2-4layer-mixed.gguf
GOLDEN=inference/tests/data/golden/smollm2-4layer-mixed.json
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
# The npm suite's structured-output test (5b) runs the 135M model the 4-layer one is cut from.
for f in "$MODEL" "$GOLDEN" models/SmolLM2-135M-Instruct.Q4_1.gguf; do
  [ -f "$f" ] || { echo "error: $f is missing (run scripts/fetch-models.sh smollm2)" >&2; exit 1; }
done
# Test t: the 4-layer model split in 3 files (chord split), served at /models/split/.
SPLIT=models/split/smollm2-4layer-mixed
if [ ! -f "$SPLIT-00003-of-00003.gguf" ] || [ "$MODEL" -nt "$SPLIT-00003-of-00003.gguf" ]; then
  log "splitting $MODEL in 3 parts (chord split)"
  mkdir -p models/split
  cargo run -q -p inference --bin chord -- split "$MODEL" --parts 3 --out "$SPLIT" >/dev/null
fi
# Test s: a 6.5 GB model's header (Llama-3-8B shapes) in a sparse file, for "will it fit?".
SYNTH=models/synthetic/synth-8b-header.gguf
if [ ! -f "$SYNTH" ]; then
  [ -f models/vocab/ggml-vocab-llama-bpe.gguf ] || scripts/fetch-vocabs.sh
  mkdir -p models/synthetic
  python3 scripts/make-synthetic-model.py "$SYNTH" --header-only >/dev/null
fi
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
  log "building the threaded worker (scripts/build-worker-mt.sh; test u)"
  nice -n 5 scripts/build-worker-mt.sh
fi
[ -f dist/worker_mt_loader.js ] || { echo "error: dist/ has no threaded worker (run scripts/build-worker-mt.sh)" >&2; exit 1; }

if [ ! -d tests/e2e/node_modules/playwright-core ] || [ ! -d tests/e2e/node_modules/ajv ]; then
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
python3 scripts/serve.py --dir dist --models models \
  --bind 127.0.0.1 --port "$PORT" >/tmp/wasm-chord-e2e-serve.log 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$(dirname "$INJECTION_MODEL")"' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break
  sleep 0.2
done

status=0
if [ -z "${NPM_ONLY:-}" ]; then
  log "running tests/e2e/chat.spec.mjs"
  BASE_URL="http://127.0.0.1:$PORT/" MODEL="$(realpath "$MODEL")" GOLDEN="$(realpath "$GOLDEN")" SYNTH_HEADER="$SYNTH" \
    INJECTION_MODEL="$INJECTION_MODEL" TEMPLATE_MODEL="$TEMPLATE_MODEL" \
    CHROMIUM="$CHROMIUM" node tests/e2e/chat.spec.mjs || status=1
fi

# The npm package: packed from this build's engine worker, installed from the tarball into a fresh
# project (no network: it has no dependencies), served, and driven by tests/e2e/npm.spec.mjs.
if [ -z "${CHAT_ONLY:-}" ]; then
  log "packing the npm package and installing it into a temporary project"
  scripts/build-npm.sh --from-dist >/dev/null
  TGZ=$(ls "$PWD"/packages/wasm-chord/wasm-chord-*.tgz)
  PROJECT=$(dirname "$INJECTION_MODEL")/npm-project
  mkdir -p "$PROJECT"
  (cd "$PROJECT" && npm init -y >/dev/null &&
    npm install --offline --no-audit --no-fund --silent "$TGZ")
  cp tests/e2e/npm-page.html "$PROJECT/index.html"
  # Tool calls: the 4-layer model with a Hermes-style template (`<tool_call>` JSON) that renders tools.
  python3 scripts/make-template-model.py "$MODEL" "$PROJECT/hermes.gguf" "$(cat tests/e2e/hermes-template.jinja)" >/dev/null 2>&1
  NPM_PORT=$((PORT + 1))
  python3 scripts/serve.py --dir "$PROJECT" --models models \
    --bind 127.0.0.1 --port "$NPM_PORT" >/tmp/wasm-chord-e2e-npm-serve.log 2>&1 &
  NPM_SERVER=$!
  trap 'kill "$SERVER" "$NPM_SERVER" 2>/dev/null || true; rm -rf "$(dirname "$INJECTION_MODEL")"' EXIT
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$NPM_PORT/" >/dev/null && break
    sleep 0.2
  done
  log "running tests/e2e/npm.spec.mjs"
  BASE_URL="http://127.0.0.1:$NPM_PORT/" CHROMIUM="$CHROMIUM" node tests/e2e/npm.spec.mjs || status=1
fi
exit $status
