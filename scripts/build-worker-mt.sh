#!/usr/bin/env bash
# The threaded build of the engine worker (wasm threads: shared memory + atomics), added to an
# existing dist/ (run it after `trunk build --release`; scripts/run.sh does). The page starts it
# instead of the default worker when it is cross-origin isolated and the device has more than one
# core (app/src/engine_link.rs); without these files, or where they fail to start, the default
# single-threaded worker runs as before. ARCHITECTURE.md, "Threads in the browser", has the design.
#
# Writes into dist/:
#   worker_mt.js, worker_mt_bg.wasm   wasm-bindgen --target no-modules output of the `worker` bin
#                                     built with atomics (nightly, -Z build-std)
#   worker_mt_loader.js               the engine worker's script: loads the two above
#   worker_mt_pool.js                 a CPU pool worker (nested in the engine worker): the same
#                                     module on the same memory, runs `pool_worker_entry(ptr)`
# then reruns scripts/trunk-post-build.py on dist/ so the service worker's app-shell list has them.
#
# Needs: rustup's nightly toolchain with rust-src (added here when missing), wasm-bindgen-cli at
# the pinned version, wasm-opt (binaryen 132, scripts/toolchain.sh) unless WASM_OPT=0. Its cargo
# target dir is separate (CARGO_TARGET_DIR, default ../target-mt next to the repository) so it
# never fights the default build. std is rebuilt, which needs its crates from crates.io once.
#
# With RELAXED=1 (scripts/build-worker-relaxed.sh runs it so), the same build with +relaxed-simd
# (target dir default ../target-mt-rs): only worker_mt_rs_bg.wasm is added, after checking that its
# wasm-bindgen glue is identical to dist/worker_mt.js (the pool workers instantiate either module
# with it); build-worker-relaxed.sh then writes the loader that picks one.
#
# usage: scripts/build-worker-mt.sh [DIST_DIR]     env: NIGHTLY (default nightly), WASM_OPT (1/0),
#        CARGO_TARGET_DIR, PROFILE (release|dev, default release), RELAXED (1/0, default 0)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh

DIST=${1:-dist}
NIGHTLY=${NIGHTLY:-nightly}
PROFILE=${PROFILE:-release}
RELAXED=${RELAXED:-0}
rs_dir="" rs_feat="" rs_opt=()
if [ "$RELAXED" = 1 ]; then
  rs_dir=-rs rs_feat=,+relaxed-simd rs_opt=(--enable-relaxed-simd)
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(cd .. && pwd)/target-mt$rs_dir}
[ -f "$DIST/index.html" ] || { echo "error: $DIST/ has no built app (run trunk build --release first)" >&2; exit 1; }

if ! rustup +"$NIGHTLY" component list --installed 2>/dev/null | grep -q '^rust-src'; then
  log "installing rust-src for $NIGHTLY (-Z build-std needs it)"
  rustup +"$NIGHTLY" component add rust-src
fi
ensure_wasm_bindgen

# +atomics: atomic instructions, in every crate and in std (rebuilt with -Z build-std; panic=abort
# as wasm has no unwinding here). A shared memory must declare its maximum: 4 GiB (the wasm32
# limit), like the default build's. These RUSTFLAGS are those of every crate: changing them
# rebuilds everything, std included.
RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128$rs_feat -C link-arg=--max-memory=4294967296"
export RUSTFLAGS
# Link arguments of the final link only (`cargo rustc -- …`): a shared, imported memory and the
# TLS symbols that wasm-bindgen's thread support calls. rustc no longer adds them for +atomics
# (rust-lang/rust#147225, Oct 2025); without them wasm-bindgen makes a single-threaded module.
link=(-C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--export=__wasm_init_tls
  -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base)
flags=(--target wasm32-unknown-unknown -p app --bin worker -Z build-std=std,panic_abort)
[ "$PROFILE" = release ] && flags+=(--release)
log "building the threaded engine worker (cargo +$NIGHTLY, $PROFILE, target dir $CARGO_TARGET_DIR)"
cargo +"$NIGHTLY" rustc "${flags[@]}" -- "${link[@]}"
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/$([ "$PROFILE" = release ] && echo release || echo debug)/worker.wasm"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
log "wasm-bindgen --target no-modules"
wasm-bindgen "$wasm" --out-dir "$out" --out-name worker_mt --target no-modules --no-typescript
grep -q 'shared:true' "$out/worker_mt.js" \
  || { echo "error: the module does not import a shared memory (see the link arguments)" >&2; exit 1; }
if [ "${WASM_OPT:-1}" != 0 ] && [ "$PROFILE" = release ] && command -v wasm-opt >/dev/null; then
  log "wasm-opt -O3 ($(wasm-opt --version))"
  wasm-opt -O3 --enable-threads --enable-bulk-memory --enable-mutable-globals --enable-simd \
    "${rs_opt[@]}" \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-reference-types \
    --enable-multivalue "$out/worker_mt_bg.wasm" -o "$out/worker_mt_bg.opt.wasm"
  mv "$out/worker_mt_bg.opt.wasm" "$out/worker_mt_bg.wasm"
fi

if [ "$RELAXED" = 1 ]; then
  [ -f "$DIST/worker_mt.js" ] || { echo "error: $DIST/ has no threaded worker to pair with" >&2; exit 1; }
  # (Comments name closure shim indices, which differ between the two builds; the code may not.)
  cmp -s <(grep -v '^ *//' "$out/worker_mt.js") <(grep -v '^ *//' "$DIST/worker_mt.js") \
    || { echo "error: the relaxed build's glue differs from $DIST/worker_mt.js" >&2; exit 1; }
  cp "$out/worker_mt_bg.wasm" "$DIST/worker_mt_rs_bg.wasm"
  log "added $(du -h "$DIST/worker_mt_rs_bg.wasm" | cut -f1) worker_mt_rs_bg.wasm to $DIST/"
  exit 0
fi

# The engine worker. A failed start (no shared memory, no such file) must reach the page as the
# worker's `error` event, so that it starts the single-threaded worker instead: a rejected
# promise alone would not, so it is rethrown from a task.
cat >"$out/worker_mt_loader.js" <<'EOF'
importScripts("./worker_mt.js");
wasm_bindgen({ module_or_path: "./worker_mt_bg.wasm" }).catch((e) => setTimeout(() => { throw e; }));
EOF
# A CPU pool worker, started by the engine worker (app/src/bin/worker/main.rs, spawn_pool_worker)
# with [module, memory, ptr]: instantiate the module on the shared memory, run the pool worker
# loop (it returns when the pool is dropped), free this thread's stack, and end.
cat >"$out/worker_mt_pool.js" <<'EOF'
importScripts("./worker_mt.js");
self.onmessage = (e) => {
  self.onmessage = null;
  const [module, memory, ptr] = e.data;
  wasm_bindgen({ module_or_path: module, memory })
    .then((wasm) => {
      wasm_bindgen.pool_worker_entry(ptr);
      wasm.__wbindgen_thread_destroy();
      close();
    })
    .catch((err) => setTimeout(() => { throw err; }));
};
EOF
cp "$out"/worker_mt.js "$out"/worker_mt_bg.wasm "$out"/worker_mt_loader.js "$out"/worker_mt_pool.js "$DIST/"
log "added $(du -h "$DIST/worker_mt_bg.wasm" | cut -f1) worker_mt_bg.wasm and its scripts to $DIST/"
# The service worker's app-shell list and build hash now include the new files.
python3 scripts/trunk-post-build.py "$DIST"
