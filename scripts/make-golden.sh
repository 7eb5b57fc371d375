#!/usr/bin/env bash
# Golden logits (format "llama.cpp-golden-v1", inference/tests/data/golden/README.md) and float64
# reference logits of a model, for the fidelity tests: builds llama.cpp (the vendored copy of
# scripts/llamacpp.sh, into ~/.cache/wasm-chord) and scripts/golden.c against it, runs the prompts
# of the existing golden file through llama.cpp (F32 KV cache, flash attention off, 1 thread), then
# scripts/np_reference.py (numpy float64, needs `pip install numpy gguf`) on the same prompts, and
# writes inference/tests/data/golden/NAME.json and inference/tests/data/reference/NAME.json.
# Only that output is committed. The reference forward pass is written for llama-architecture
# models (SmolLM2).
# usage: scripts/make-golden.sh [NAME]   (default smollm2-4layer-mixed; the model is models/NAME.gguf,
#                                         built by scripts/fetch-models.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-smollm2-4layer-mixed}
MODEL=models/$NAME.gguf
GOLDEN=inference/tests/data/golden/$NAME.json
[ -f "$MODEL" ] || { echo "error: $MODEL is missing: run scripts/fetch-models.sh" >&2; exit 1; }
[ -f "$GOLDEN" ] || { echo "error: $GOLDEN is missing (its prompts are the ones regenerated)" >&2; exit 1; }
# shellcheck source=scripts/llamacpp.sh
source scripts/llamacpp.sh
ensure_llamacpp llama libllama.so
BIN="$CACHE/golden"
gcc -O2 -o "$BIN" scripts/golden.c -I"$SRC/include" -I"$SRC/ggml/include" \
    -L"$SRC/build/bin" -lllama -lggml -lggml-base -lm -Wl,-rpath,"$SRC/build/bin"
COMMIT=$(sed -n 's/.*LLAMA_COMMIT = "\(.*\)";/\1/p' "$SRC/build/common/build-info.cpp" 2>/dev/null || true)
[ -n "$COMMIT" ] || COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
python3 -c 'import json,sys; [print(p["text"].encode().hex()) for p in json.load(open(sys.argv[1]))["prompts"]]' \
    "$GOLDEN" >"$OUT/prompts.hex"
if ! "$BIN" "$MODEL" "$OUT/prompts.hex" >"$OUT/raw.json" 2>"$OUT/err"; then
    cat "$OUT/err" >&2
    exit 1
fi
python3 - "$GOLDEN" "$OUT/raw.json" "$MODEL" "llama-cpp-python $VER vendored llama.cpp (commit $COMMIT)" <<'PY'
import json, os, sys
golden, raw, model, llama = sys.argv[1:]
old = json.load(open(golden))
r = json.load(open(raw))
data = open(model, "rb").read()
h = 0xcbf29ce484222325
for b in data:
    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
prompts = []
for p, q in zip(old["prompts"], r["prompts"]):
    g = q["greedy"]
    text = bytes.fromhex(g["text_hex"]).decode("utf-8", errors="replace")
    prompts.append({
        "name": p["name"], "text": p["text"], "text_hex": p["text"].encode().hex(),
        "bos_added": q["bos_added"], "n_tokens": len(q["tokens"]), "tokens": q["tokens"],
        "token_pieces_hex": q["token_pieces_hex"], "last_logits": q["last_logits"],
        "greedy": {"tokens": g["tokens"], "text": text, "text_hex": g["text_hex"],
                   "first_eog_index": g["first_eog_index"], "top1_logit": g["top1_logit"],
                   "top1_minus_top2": g["top1_minus_top2"]},
    })
out = {
    "format": "llama.cpp-golden-v1",
    "llama_cpp_commit": llama,
    "model": {"path": os.path.basename(model), "size_bytes": len(data), "fnv1a64": f"{h:016x}",
              "desc": r["desc"], "n_params": r["n_params"], "n_vocab": r["n_vocab"]},
    "settings": dict(old["settings"], vocab_add_bos=r["add_bos"], bos_id=r["bos_id"], eos_id=r["eos_id"]),
    "prompts": prompts,
}
with open(golden, "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"wrote {golden}")
PY
python3 scripts/np_reference.py "$MODEL" "$GOLDEN" "--save=$OUT/last" >"$OUT/vs.json"
python3 scripts/compact-reference.py "$GOLDEN" "$OUT/last" "inference/tests/data/reference/$NAME.json"
python3 - "$OUT/vs.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['name']}: llama.cpp vs reference, top-20 max |Δ| "
          f"{r['max_abs_diff_on_llamacpp_top20']:.3f}, argmax {r['llamacpp_argmax']} / {r['ref_argmax']}")
PY
