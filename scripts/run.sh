#!/usr/bin/env bash
# Build the web app and serve it with the default model: the README's "run" command.
# Installs what is missing (wasm32 target, trunk, wasm-bindgen-cli, binaryen), fetches
# SmolLM2-135M-Instruct (Q4_1) into models/, runs `trunk build --release` (and the threaded engine
# worker, scripts/build-worker-mt.sh, and the relaxed-SIMD builds of both,
# scripts/build-worker-relaxed.sh), and serves dist/ with
# models/ at /models/ on http://127.0.0.1:8080 (Range requests, COOP/COEP) until Ctrl-C.
# usage: scripts/run.sh [--no-serve]     env: PORT (default 8080), BIND (default 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh

SERVE=1
case "${1:-}" in
  "") ;;
  --no-serve) SERVE=0 ;;
  *) echo "usage: $0 [--no-serve]" >&2; exit 2 ;;
esac
PORT=${PORT:-8080}
BIND=${BIND:-127.0.0.1}
MODEL=SmolLM2-135M-Instruct.Q4_1.gguf

ensure_wasm_target
ensure_wasm_bindgen
ensure_binaryen
ensure_trunk

log "fetching the default model"
scripts/fetch-models.sh smollm2

log "building (trunk build --release)"
# Trunk.toml builds offline: fetch the crates first (a no-op when they are cached).
cargo fetch --locked
echo "wasm-opt: $(command -v wasm-opt) ($(wasm-opt --version))" >&2
trunk build --release
# The threaded engine worker (nightly, wasm atomics), used on cross-origin isolated pages; without
# it the app runs the CPU engine on one thread.
scripts/build-worker-mt.sh || echo "warning: no threaded engine worker built (the app runs on one thread)" >&2
# The relaxed-SIMD builds of both workers (stable and nightly), loaded where the browser has relaxed
# SIMD (Chrome 114+); without them every browser runs the default kernels.
scripts/build-worker-relaxed.sh || echo "warning: no relaxed-SIMD engine worker built (the default kernels run)" >&2

if [ "$SERVE" = 0 ]; then
  log "built dist/ (not serving)"
  exit 0
fi
log "open http://$BIND:$PORT/   (model: http://$BIND:$PORT/models/$MODEL)   Ctrl-C stops"
exec python3 scripts/serve.py --dir dist --models models --bind "$BIND" --port "$PORT"
