#!/usr/bin/env bash
# The opt-in slow tier: whole models on the WebGPU backend over lavapipe (SmolLM2 135M streamed
# onto the GPU, Gemma 3 270M, Qwen2.5 1.5B, constrained generation, the scripted conversation,
# llama.cpp's context shift, forced binding splits, split-K attention over a long cache). Each
# takes minutes on a software GPU, so scripts/test.sh (and CI) leaves them out; run this before
# landing a change to the GPU backend. Release build; the stretch architectures stay skipped.
# Usage: scripts/test-slow.sh [TEST-NAME-FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh
ensure_vulkan
scripts/fetch-models.sh all
log "slow tier: cargo test --release -p inference --test webgpu -- --ignored ${1:-}"
cargo test --release -p inference --test webgpu -- --ignored --skip tiny_ ${1:+"$1"}
