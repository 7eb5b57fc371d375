#!/usr/bin/env bash
# Golden tool-calling prompts from llama.cpp: builds llama.cpp (scripts/llamacpp.sh, outside the
# repo) with its `llama-common` library (the chat code llama-server uses), compiles
# scripts/tools-golden.cpp against it and renders every case of inference/tests/data/tools/cases.json
# (OpenAI messages + two OpenAI tools) with Qwen2.5-Coder 1.5B's own chat template, exactly as
# llama-server's /v1/chat/completions would (use_jinja, tools, parallel_tool_calls, generation
# prompt). Writes inference/tests/data/tools/qwen2.5-coder-1.5b.json; only that output is committed.
# usage: scripts/make-tools-golden.sh [MODEL.gguf]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/llamacpp.sh
source scripts/llamacpp.sh
MODEL=${1:-models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf}
ensure_llamacpp llama libllama.so
[ -e "$SRC/build/common/libllama-common.a" ] || ninja -C "$SRC/build" llama-common
BIN="$CACHE/tools-golden"
g++ -std=c++17 -O1 -o "$BIN" scripts/tools-golden.cpp -I"$SRC/common" -I"$SRC/include" \
    -I"$SRC/ggml/include" -I"$SRC/vendor" "$SRC/build/common/libllama-common.a" \
    "$SRC/build/common/libllama-common-base.a" -L"$SRC/build/bin" -lllama -lggml -lggml-base \
    -Wl,-rpath,"$SRC/build/bin" -lpthread

COMMIT=$(sed -n 's/.*LLAMA_COMMIT = "\(.*\)";/\1/p' "$SRC/build/common/build-info.cpp" 2>/dev/null || true)
[ -n "$COMMIT" ] || COMMIT=unknown
LLAMA="llama-cpp-python $VER vendored llama.cpp (commit $COMMIT), common_chat_templates_apply"

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
"$BIN" "$MODEL" inference/tests/data/tools/cases.json >"$OUT"
python3 - "$LLAMA" "$MODEL" "$OUT" inference/tests/data/tools/qwen2.5-coder-1.5b.json <<'PY'
import json, os, sys
llama, model, src, dst = sys.argv[1:]
d = json.load(open(src))
out = {"llama_cpp": llama, "model": os.path.basename(model), "cases": d["cases"]}
with open(dst, "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"wrote {dst}: {len(d['cases'])} prompts")
PY
