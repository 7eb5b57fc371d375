#!/usr/bin/env bash
# Build the npm package packages/wasm-chord and pack it (nothing is published from here).
# Its engine is the web app's engine worker (app/src/bin/worker), built for wasm32 and bound with
# wasm-bindgen `--target no-modules` — exactly what Trunk builds for the app (dist/worker.js +
# dist/worker_bg.wasm), so `--from-dist` takes those files from a finished `trunk build --release`.
#
# With --from-dist the package also takes the builds that scripts/build-worker-mt.sh and
# scripts/build-worker-relaxed.sh add to dist/ (scripts/run.sh and scripts/e2e.sh make them):
# the threaded engine (worker_mt*.js/.wasm: index.js starts it on a cross-origin isolated page)
# and the relaxed-SIMD ones (worker_rs*: engine-worker.js and worker_mt_loader.js pick them where
# the browser validates relaxed SIMD). Without them the package runs one thread, default kernels.
#
# usage: scripts/build-npm.sh [--from-dist]
#   → packages/wasm-chord/dist/{worker.js,worker_bg.wasm,…} and packages/wasm-chord/wasm-chord-<version>.tgz
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh

PKG=packages/wasm-chord
OUT=$PKG/dist
rm -rf "$OUT"
mkdir -p "$OUT"
if [ "${1:-}" = "--from-dist" ]; then
  for f in worker.js worker_bg.wasm; do
    [ -f "dist/$f" ] || { echo "error: dist/$f is missing: run trunk build --release first" >&2; exit 1; }
    cp "dist/$f" "$OUT/$f"
  done
  optional=(worker_rs.js worker_rs_bg.wasm worker_mt.js worker_mt_bg.wasm worker_mt_rs_bg.wasm
    worker_mt_loader.js worker_mt_pool.js)
  for f in "${optional[@]}"; do
    if [ -f "dist/$f" ]; then cp "dist/$f" "$OUT/$f"; fi
  done
  log "from dist/: $(cd "$OUT" && echo *)"
else
  ensure_wasm_target
  ensure_wasm_bindgen
  ensure_binaryen
  log "building the engine worker (cargo, wasm32, release)"
  cargo build --release --locked --target wasm32-unknown-unknown -p app --bin worker
  wasm_dir=${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release
  wasm-bindgen --target no-modules --no-typescript --out-dir "$OUT" --out-name worker "$wasm_dir/worker.wasm"
  log "wasm-opt -O3"
  wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$OUT/worker_bg.wasm" -o "$OUT/worker_bg.wasm"
fi
log "packing $PKG"
(cd "$PKG" && rm -f wasm-chord-*.tgz && npm pack --silent >/dev/null)
ls -la "$PKG"/wasm-chord-*.tgz
