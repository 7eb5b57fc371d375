#!/usr/bin/env bash
# The relaxed-SIMD builds of the engine worker, added to an existing dist/ (after `trunk build
# --release`, and after scripts/build-worker-mt.sh for the threaded one; scripts/run.sh runs all
# three). The same `worker` bin built with `-C target-feature=+simd128,+relaxed-simd`: the 8-bit
# kernels then use `i32x4.relaxed_dot_i8x16_i7x16_add_s` (inference/src/quant/simd128_rq8.rs;
# the same results bit for bit as the default build). Such a module does not validate in a browser
# without relaxed SIMD (Firefox and Safari today), so the default build stays as it is and the
# engine worker's loader picks: it validates a tiny module that uses the relaxed dot and loads the
# relaxed .wasm only where that succeeds (`?kernels=simd128` on the loader's URL forces the default
# one, for benchmarks). Without these files the loaders are Trunk's / build-worker-mt.sh's, as before.
#
# Writes into dist/:
#   worker_rs.js, worker_rs_bg.wasm     wasm-bindgen --target no-modules output (stable Rust)
#   worker_loader.js                    replaced: picks worker_rs* or worker* (see above)
#   worker_mt_rs_bg.wasm                where dist/ has the threaded worker (worker_mt.js): its
#                                       relaxed build (nightly, scripts/build-worker-mt.sh with
#                                       RELAXED=1), loaded by worker_mt_loader.js the same way; it
#                                       shares worker_mt.js (the glue must come out identical:
#                                       the pool workers, worker_mt_pool.js, instantiate whichever
#                                       module the engine worker runs with it)
# then reruns scripts/trunk-post-build.py on dist/ (the service worker's app-shell list).
#
# usage: scripts/build-worker-relaxed.sh [DIST_DIR]   env: CARGO_TARGET_DIR (default
#        ../target-relaxed; the flags differ from the default build's, so never its dir),
#        MT (1/0: also the threaded one where dist/ has it; default 1), MT_CARGO_TARGET_DIR (its
#        target dir, default ../target-mt-rs), WASM_OPT (1/0)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh

DIST=${1:-dist}
[ -f "$DIST/worker_loader.js" ] && [ -f "$DIST/worker.js" ] \
  || { echo "error: $DIST/ has no built engine worker (run trunk build --release first)" >&2; exit 1; }
ensure_wasm_bindgen

TARGET_DIR=${CARGO_TARGET_DIR:-$(cd .. && pwd)/target-relaxed}
log "building the relaxed-SIMD engine worker (release, target dir $TARGET_DIR)"
CARGO_TARGET_DIR=$TARGET_DIR RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
  cargo build --release --target wasm32-unknown-unknown -p app --bin worker
wasm="$TARGET_DIR/wasm32-unknown-unknown/release/worker.wasm"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
wasm-bindgen "$wasm" --out-dir "$out" --out-name worker_rs --target no-modules --no-typescript
if [ "${WASM_OPT:-1}" != 0 ] && command -v wasm-opt >/dev/null; then
  log "wasm-opt -O3 ($(wasm-opt --version))"
  wasm-opt -O3 --enable-simd --enable-relaxed-simd --enable-bulk-memory --enable-mutable-globals \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-reference-types \
    --enable-multivalue "$out/worker_rs_bg.wasm" -o "$out/worker_rs_bg.opt.wasm"
  mv "$out/worker_rs_bg.opt.wasm" "$out/worker_rs_bg.wasm"
fi
cp "$out/worker_rs.js" "$out/worker_rs_bg.wasm" "$DIST/"

# The check both loaders run: a module whose one function is
# `i32x4.relaxed_dot_i8x16_i7x16_add_s(v128.const 0, v128.const 0, v128.const 0)`.
detect='// Relaxed SIMD: the relaxed build only where a module using i32x4.relaxed_dot_i8x16_i7x16_add_s
// validates, and unless ?kernels=simd128 asks for the default one.
const chordRelaxed = (() => {
  try {
    if (new URL(self.location.href).searchParams.get("kernels") === "simd128") return false;
    const c = [0xfd, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    return WebAssembly.validate(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5, 1, 0x60, 0, 1,
      0x7b, 3, 2, 1, 0, 0x0a, 0x3d, 1, 0x3b, 0, ...c, ...c, ...c, 0xfd, 0x93, 0x02, 0x0b]));
  } catch (e) {
    return false;
  }
})();'
cat >"$DIST/worker_loader.js" <<JS
$detect
importScripts(chordRelaxed ? "./worker_rs.js" : "./worker.js");
wasm_bindgen({ module_or_path: chordRelaxed ? "./worker_rs_bg.wasm" : "./worker_bg.wasm" });
JS
log "added $(du -h "$DIST/worker_rs_bg.wasm" | cut -f1) worker_rs_bg.wasm, worker_rs.js; worker_loader.js picks"

if [ "${MT:-1}" != 0 ] && [ -f "$DIST/worker_mt.js" ]; then
  if CARGO_TARGET_DIR=${MT_CARGO_TARGET_DIR:-$(cd .. && pwd)/target-mt-rs} RELAXED=1 \
    scripts/build-worker-mt.sh "$DIST"; then
    cat >"$DIST/worker_mt_loader.js" <<JS
$detect
importScripts("./worker_mt.js");
wasm_bindgen({ module_or_path: chordRelaxed ? "./worker_mt_rs_bg.wasm" : "./worker_mt_bg.wasm" })
  .catch((e) => setTimeout(() => { throw e; }));
JS
    log "worker_mt_loader.js picks worker_mt_rs_bg.wasm or worker_mt_bg.wasm"
  else
    echo "warning: no relaxed-SIMD threaded worker built (the threaded worker runs the default kernels)" >&2
  fi
fi
python3 scripts/trunk-post-build.py "$DIST"
