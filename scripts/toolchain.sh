# shellcheck shell=bash
# Shared by scripts/run.sh and scripts/test.sh (sourced, not run): install what is missing, skip what
# is there. Versions here must match Trunk.toml [tools] and the wasm-bindgen pin in Cargo.toml.

TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130
BINARYEN_VERSION=132.0.0
WASM_CHORD_CACHE=${WASM_CHORD_CACHE:-$HOME/.cache/wasm-chord}
BINARYEN_DIR=$WASM_CHORD_CACHE/npm-binaryen-$BINARYEN_VERSION

export PATH="$HOME/.cargo/bin:$BINARYEN_DIR/node_modules/.bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_wasm_target() {
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    return
  fi
  log "installing rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
}

# A Vulkan driver for the WebGPU tests: lavapipe (Mesa's software Vulkan) when no ICD is installed.
# The GPU tests FAIL without an adapter, by design, so CI must have one.
ensure_vulkan() {
  if ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || [ -n "${VK_ICD_FILENAMES:-}" ]; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing mesa-vulkan-drivers (lavapipe) for the WebGPU tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1
  else
    echo "warning: no Vulkan driver; the WebGPU tests will fail (install mesa-vulkan-drivers)" >&2
  fi
}

ensure_trunk() {
  if [ "$(trunk --version 2>/dev/null || true)" = "trunk $TRUNK_VERSION" ]; then
    return
  fi
  log "installing trunk $TRUNK_VERSION (cargo install, 15-25 min on 2 cores)"
  cargo install trunk --version "$TRUNK_VERSION" --locked
}

ensure_wasm_bindgen() {
  if [ "$(wasm-bindgen --version 2>/dev/null || true)" = "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    return
  fi
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
}

# binaryen's wasm-opt from npm (Debian's binaryen is too old for the wasm that Rust emits today).
ensure_binaryen() {
  local have
  have=$("$BINARYEN_DIR/node_modules/.bin/wasm-opt" --version 2>/dev/null || true)
  case "$have" in
    "wasm-opt version ${BINARYEN_VERSION%%.*} "*) return ;;
  esac
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing npm (apt-get)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
    else
      echo "error: npm is needed to install binaryen $BINARYEN_VERSION (wasm-opt); install Node.js + npm" >&2
      return 1
    fi
  fi
  log "installing binaryen $BINARYEN_VERSION (npm) into $BINARYEN_DIR"
  mkdir -p "$BINARYEN_DIR"
  npm install --silent --no-audit --no-fund --prefix "$BINARYEN_DIR" "binaryen@$BINARYEN_VERSION"
}
