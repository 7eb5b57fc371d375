#!/usr/bin/env bash
# Browser CPU benchmark: our wasm CPU engine vs wllama (@wllama/wllama, llama.cpp in wasm) on the same
# GGUF, one thread each (THREADS=1,2: at each count, interleaved round by round), greedy, same raw
# prompt (~64 tokens) and 64 generated tokens, in headless Chromium (system /usr/bin/chromium via
# playwright-core). Prints each run, the median prefill and decode tok/s of each engine, the ratio
# ours/wllama, both generated texts, and with several counts each engine's decode scaling.
#
# Serves, on a free 127.0.0.1 port (scripts/serve.py): the built app dist/ at / (its engine worker),
# tests/bench/ at /bench/ (bench.html, bench.mjs, and wllama from tests/bench/node_modules), and
# models/ at /models/. The driver is tests/bench/run.mjs; what is measured is described in
# tests/bench/bench.mjs. It does not build: dist/ must be current (trunk build --release), and for
# more than one thread have the threaded worker (scripts/build-worker-mt.sh). serve.py sends
# COOP/COEP, so the page is cross-origin isolated: ours runs its threaded worker, wllama its pthreads.
#
# usage: scripts/bench-browser.sh
# env:   MODEL (file in models/, default SmolLM2-135M-Instruct.Q4_1.gguf), RUNS (default 5),
#        WARMUP_TOKENS (default 16: the untimed warm-up generation; see tests/bench/run.mjs),
#        N_PREDICT (default 64), WARMUP (default 1), BENCH_PORT (default: a free port),
#        CHROMIUM (default /usr/bin/chromium), THREADS (default 1; e.g. 1,2), DIST (default dist)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

MODEL=${MODEL:-SmolLM2-135M-Instruct.Q4_1.gguf}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ $# -eq 0 ] || { echo "usage: $0   (settings through env: see the header)" >&2; exit 2; }
DIST=${DIST:-dist}
[ -f "$DIST/worker_loader.js" ] && [ -f "$DIST/worker_bg.wasm" ] \
  || die "$DIST/ has no built engine worker (build first: trunk build --release, or scripts/run.sh --no-serve)"
case ",${THREADS:-1}," in
  ,1,) ;;
  *) [ -f "$DIST/worker_mt_loader.js" ] && [ -f "$DIST/worker_mt_bg.wasm" ] \
       || die "THREADS=${THREADS}: $DIST/ has no threaded engine worker (scripts/build-worker-mt.sh)" ;;
esac
[ -f "models/$MODEL" ] || die "models/$MODEL is missing (scripts/fetch-models.sh smollm2)"
[ -x "$CHROMIUM" ] || die "$CHROMIUM not found; install chromium or set CHROMIUM"
command -v node >/dev/null || die "node not found"

if [ ! -d tests/bench/node_modules/@wllama/wllama ] || [ ! -d tests/bench/node_modules/playwright-core ]; then
  log "installing @wllama/wllama and playwright-core (npm ci in tests/bench)"
  (cd tests/bench && npm ci --no-audit --no-fund --silent) || die "npm ci in tests/bench failed"
fi

PORT=${BENCH_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
SERVE_LOG=$(mktemp)
log "serving $DIST/, tests/bench/ at /bench/ and models/ on 127.0.0.1:$PORT"
python3 scripts/serve.py --dir "$DIST" --models models --mount /bench=tests/bench \
  --bind 127.0.0.1 --port "$PORT" >"$SERVE_LOG" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; rm -f "$SERVE_LOG"' EXIT
up=0
for _ in $(seq 50); do
  if curl -sf -o /dev/null "http://127.0.0.1:$PORT/bench/bench.html"; then up=1; break; fi
  kill -0 "$SERVER" 2>/dev/null || break
  sleep 0.2
done
if [ "$up" != 1 ]; then
  cat "$SERVE_LOG" >&2
  die "the server did not come up on port $PORT"
fi

log "running tests/bench/run.mjs (${RUNS:-5} runs per engine, threads ${THREADS:-1})"
BASE_URL="http://127.0.0.1:$PORT/" MODEL_URL="/models/$MODEL" CHROMIUM="$CHROMIUM" THREADS="${THREADS:-1}" \
  node tests/bench/run.mjs
