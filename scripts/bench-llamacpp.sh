#!/usr/bin/env bash
# Native CPU speed side by side with llama.cpp, one machine, one run: prefill (64-token prompt)
# and decode tok/s, medians of RUNS runs each, alternating engines so that machine noise hits
# both. llama.cpp is built once from the PyPI `llama-cpp-python` sdist (its vendored copy) into
# ~/.cache/wasm-chord (outside the repo; ~20 min on 2 cores), with the best x86 flags that run
# here (AVX2/AVX-512/VNNI; AMX off: a VM may forbid its tiles, which then kill the process).
#
#   scripts/bench-llamacpp.sh [MODEL.gguf ...]     (default: SmolLM2 Q4_1 and Qwen2.5 1.5B)
#   RUNS=5 THREADS="1 2" GEN=32 scripts/bench-llamacpp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
THREADS=${THREADS:-"1 2"}
GEN=${GEN:-32}
# shellcheck source=scripts/llamacpp.sh
source scripts/llamacpp.sh
ensure_llamacpp llama-bench llama-bench
BENCH="$SRC/build/bin/llama-bench"
cargo build --release -q -p inference

MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(models/SmolLM2-135M-Instruct.Q4_1.gguf models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf)

median() { python3 -c 'import sys,statistics as s; v=[float(x) for x in sys.argv[1:]]; print(f"{s.median(v):.1f}")' "$@"; }

for m in "${MODELS[@]}"; do
    for t in $THREADS; do
        ours_p=() ours_d=() ours_pf=() ours_df=() ll_p=() ll_d=()
        for _ in $(seq "$RUNS"); do
            j=$(./target/release/chord bench --model "$m" --threads "$t" --runs 1 --gen-tokens "$GEN" --activations q8 --json)
            ours_p+=("$(jq -r .prefill_tok_s <<<"$j")"); ours_d+=("$(jq -r .decode_tok_s <<<"$j")")
            j=$(./target/release/chord bench --model "$m" --threads "$t" --runs 1 --gen-tokens "$GEN" --activations f32 --json)
            ours_pf+=("$(jq -r .prefill_tok_s <<<"$j")"); ours_df+=("$(jq -r .decode_tok_s <<<"$j")")
            j=$("$BENCH" -m "$m" -t "$t" -p 64 -n "$GEN" -r 1 -o json 2>/dev/null)
            ll_p+=("$(jq -r '.[] | select(.n_prompt > 0) | .avg_ts' <<<"$j")")
            ll_d+=("$(jq -r '.[] | select(.n_gen > 0) | .avg_ts' <<<"$j")")
        done
        lp=$(median "${ll_p[@]}") ld=$(median "${ll_d[@]}")
        op=$(median "${ours_p[@]}") od=$(median "${ours_d[@]}")
        fp=$(median "${ours_pf[@]}") fd=$(median "${ours_df[@]}")
        echo "$(basename "$m") threads=$t runs=$RUNS"
        echo "  llama.cpp        prefill $lp  decode $ld tok/s   (prefill runs ${ll_p[*]}; decode ${ll_d[*]})"
        echo "  ours, q8 acts    prefill $op  decode $od tok/s   (prefill runs ${ours_p[*]}; decode ${ours_d[*]})"
        echo "  ours, f32 acts   prefill $fp  decode $fd tok/s"
        python3 -c "import sys; a=list(map(float,sys.argv[1:])); print(f'  ratio (q8/llama.cpp): prefill {a[0]/a[2]:.2f}x  decode {a[1]/a[3]:.2f}x;  (f32/llama.cpp): prefill {a[4]/a[2]:.2f}x  decode {a[5]/a[3]:.2f}x')" "$op" "$od" "$lp" "$ld" "$fp" "$fd"
    done
done
