#!/usr/bin/env bash
# The README's "test" command, and what CI runs (.ci/run): installs what is missing (wasm32 target,
# wasm-bindgen-cli, binaryen, Trunk, the Python gguf + numpy packages, the three test models), then
# formatting, clippy (native and wasm32), the test suite (native, then tests/wasm_simd.rs as wasm
# under Node), the release build of the web app (Trunk) and the browser end-to-end tests
# (scripts/e2e.sh). Every step runs; the summary at the end lists each one, and the exit status is
# non-zero if any failed. Whole real models on the software GPU are the opt-in slow tier
# (scripts/test-slow.sh), not run here.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh
START=$(date +%s)

log "setup"
ensure_wasm_target
ensure_wasm_bindgen   # its wasm-bindgen-test-runner runs the wasm32 tests (.cargo/config.toml)
ensure_binaryen       # wasm-opt for the release build of the app (Trunk)
ensure_trunk
ensure_vulkan
if ! python3 -c 'import gguf, numpy' >/dev/null 2>&1; then
  log "installing python packages gguf, numpy"
  python3 -m pip install --quiet gguf numpy || python3 -m pip install --quiet --break-system-packages gguf numpy
fi
scripts/fetch-models.sh all

RESULTS=()
FAILED=0
step() {
  local name=$1; shift
  local t0; t0=$(date +%s)
  log "$name: $*"
  if "$@"; then
    RESULTS+=("ok      $name ($(( $(date +%s) - t0 ))s)")
  else
    RESULTS+=("FAILED  $name ($(( $(date +%s) - t0 ))s)")
    FAILED=$((FAILED + 1))
  fi
}

step "fmt"          cargo fmt --all --check
step "clippy"       cargo clippy --workspace --all-targets -- -D warnings
# wasm32: the engine library and the binaries (`chord` is a stub there: the CLI reads files). The
# integration tests read model files and run natively only, except tests/wasm_simd.rs (test-wasm).
step "clippy-wasm"  cargo clippy -p inference -p app --target wasm32-unknown-unknown --lib --bins -- -D warnings
step "test"         cargo test --workspace
# The wasm32 simd128 kernels (and the engine on the 4-layer model) run as wasm under Node.
step "test-wasm"    cargo test -p inference --target wasm32-unknown-unknown --test wasm_simd
# The web app as users get it (trunk build --release into dist/, and the threaded worker: nightly,
# -Z build-std), then the browser tests on it:
# headless Chromium, WebGPU on SwiftShader, the 4-layer model (scripts/e2e.sh, tests/e2e/).
step "app-build"    bash -c "cargo fetch --locked && trunk build --release && scripts/build-worker-mt.sh"
step "e2e"          scripts/e2e.sh --no-build

echo
echo "==== scripts/test.sh summary ($(( $(date +%s) - START ))s) ===="
printf '  %s\n' "${RESULTS[@]}"
if [ "$FAILED" -ne 0 ]; then
  echo "scripts/test.sh: $FAILED step(s) FAILED"
  exit 1
fi
echo "scripts/test.sh: all ${#RESULTS[@]} steps ok"
