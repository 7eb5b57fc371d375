#!/usr/bin/env bash
# Golden data for the context shift, from llama.cpp: builds llama.cpp (the same vendored copy as
# scripts/bench-llamacpp.sh, into ~/.cache/wasm-chord) and scripts/context-shift-golden.c
# against it, tokenizes a fixed text with `chord tokenize`, and writes
# inference/tests/data/context-shift-<model>.json (what llama.cpp computes after shifting its KV
# cache). Only that output is committed. usage: scripts/make-context-shift-golden.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/llamacpp.sh
source scripts/llamacpp.sh
ensure_llamacpp llama libllama.so
BIN="$CACHE/context-shift-golden"
gcc -O2 -o "$BIN" scripts/context-shift-golden.c -I"$SRC/include" -I"$SRC/ggml/include" \
    -L"$SRC/build/bin" -lllama -lggml -lggml-base -lm -Wl,-rpath,"$SRC/build/bin"
cargo build --release -q -p inference --bin chord

TEXT="The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps \
as his father had taught him: one hundred and twelve, no more and no less. From the lamp room he \
could see the whole bay, the fishing boats coming home, the gulls circling the harbour wall and \
the long grey line of the cliffs to the north. He wrote in his logbook the wind, the weather, the \
ships that passed and anything else that seemed worth remembering. Some nights nothing happened \
at all, and he wrote that down too, because his father had said that an empty page is a lie. In \
the winter the storms came in from the west, and the waves broke so high that the spray reached \
the windows of the lamp room. On those nights he did not sleep. He watched the light turn, and \
he listened to the radio, and he waited for the voice of a captain asking for help. Once, many \
years ago, a small cargo ship lost its engine in a gale and drifted towards the rocks below the \
lighthouse. The keeper called the lifeboat station, and then he went down to the shore with a \
rope and a lamp, and he stood in the freezing wind for three hours until the lifeboat came. \
Every member of the crew was saved. The captain sent him a letter every Christmas after that, \
with a photograph of his children, who grew a little taller every year. The keeper kept the \
letters in a tin box under his bed, and on quiet evenings he read them again. Now the \
lighthouse runs by itself, and the keeper lives in the village, but he still climbs the hill \
every evening to watch the light come on."
mkdir -p inference/tests/data
for m in "SmolLM2-135M-Instruct.Q4_1.gguf smollm2-135m-q4_1 4 160" \
         "gemma-3-270m-q4_k_m.gguf gemma-3-270m-q4_k_m 4 160"; do
    set -- $m
    toks=$(mktemp)
    ./target/release/chord tokenize --model "models/$1" --text "$TEXT" --json \
        | python3 -c 'import json,sys; print(" ".join(map(str, json.load(sys.stdin)["tokens"])))' >"$toks"
    "$BIN" "models/$1" "$3" "$4" "$toks" 2>/dev/null \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); d["model"]=sys.argv[1]; d["llama_cpp"]=sys.argv[2]; print(json.dumps(d))' "$1" "llama-cpp-python $VER vendored llama.cpp" \
        >"inference/tests/data/context-shift-$2.json"
    rm -f "$toks"
    echo "wrote inference/tests/data/context-shift-$2.json"
done
