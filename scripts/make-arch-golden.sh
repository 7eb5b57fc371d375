#!/usr/bin/env bash
# Golden logits of the tiny per-architecture models, from llama.cpp: builds llama.cpp (the same
# vendored copy as scripts/make-context-shift-golden.sh, into ~/.cache/wasm-chord) and
# scripts/arch-golden.c against it, writes the tiny models of inference/tests/common/tiny.rs with
# the ignored test `write_tiny_models`, runs llama.cpp on each and writes
# inference/tests/data/arch/<model>.json: full-vocabulary logits of every position of every
# sequence (6 significant digits). Only that output is committed.
# usage: scripts/make-arch-golden.sh [MODEL...]   (default: every model the generator writes)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/llamacpp.sh
source scripts/llamacpp.sh
ensure_llamacpp llama libllama.so
BIN="$CACHE/arch-golden"
gcc -O2 -o "$BIN" scripts/arch-golden.c -I"$SRC/include" -I"$SRC/ggml/include" \
    -L"$SRC/build/bin" -lllama -lggml -lggml-base -lm -Wl,-rpath,"$SRC/build/bin"

COMMIT=$(sed -n 's/.*LLAMA_COMMIT = "\(.*\)";/\1/p' "$SRC/build/common/build-info.cpp" 2>/dev/null || true)
[ -n "$COMMIT" ] || COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
LLAMA="llama-cpp-python $VER vendored llama.cpp (commit $COMMIT), CPU"

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
TINY_OUT="$OUT" cargo test -q -p inference --test architectures -- --ignored --exact write_tiny_models \
    >/dev/null
mkdir -p inference/tests/data/arch
if [ $# -gt 0 ]; then MODELS="$*"; else MODELS=$(cd "$OUT" && ls *.gguf | sed 's/\.gguf$//'); fi
for m in $MODELS; do
    if ! "$BIN" "$OUT/$m.gguf" "$OUT/sequences.txt" >"$OUT/$m.json" 2>"$OUT/$m.err"; then
        echo "llama.cpp failed on $m:" >&2
        cat "$OUT/$m.err" >&2
        exit 1
    fi
    grep -v '^$' "$OUT/$m.err" | sed "s/^/$m: llama.cpp: /" >&2 || true
    python3 - "$m" "$LLAMA" "$OUT/$m.json" "$OUT/$m.fnv1a" "inference/tests/data/arch/$m.json" <<'PY'
import json, sys
name, llama, src, hashf, dst = sys.argv[1:]
d = json.load(open(src))
size, fnv = open(hashf).read().split()
out = {
    "model": name,
    "arch": name.split("-")[0],
    "llama_cpp": llama,
    "model_bytes": int(size),
    "model_fnv1a": fnv,
    "n_vocab": d["n_vocab"],
    "sequences": d["sequences"],
}
# The smallest top-1 margin: the tests compare top-1, so it must not be a near tie.
m = min(sorted(r)[-1] - sorted(r)[-2] for s in d["sequences"] for r in s["logits"])
span = max(max(r) - min(r) for s in d["sequences"] for r in s["logits"])
with open(dst, "w") as f:
    f.write("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in out.items() if k != "sequences"))
    f.write(', "sequences": [\n')
    f.write(",\n".join(json.dumps(s, separators=(",", ":")) for s in d["sequences"]))
    f.write("\n]}\n")
print(f"wrote {dst}: min top-1 margin {m:.3g}, max logit span {span:.3g}")
PY
done
