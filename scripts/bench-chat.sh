#!/usr/bin/env bash
# Time to first token, turn by turn, of a 10-turn chat whose history grows to ~1,500 tokens
# (scripts/chat-bench-messages.txt, replies of 80 tokens), native CPU engine: the conversation
# engine (the KV cache kept between turns) against recomputing the whole conversation every turn
# (`chord chat --no-reuse`, what every reply cost before), run one after the other in the same
# minute. usage: scripts/bench-chat.sh [MODEL] [THREADS]   (default SmolLM2 135M Q4_1, 1 thread)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${2:-1}
cargo build --release -q -p inference --bin chord
run() {
    ./target/release/chord chat --model "$MODEL" --threads "$THREADS" --json --max-tokens 80 \
        --ignore-eos --system "You are a helpful assistant." "$@" <scripts/chat-bench-messages.txt
}
reuse=$(run)
scratch=$(run --no-reuse)
python3 - "$reuse" "$scratch" "$MODEL" "$THREADS" <<'PY'
import json, sys
a = [json.loads(l) for l in sys.argv[1].splitlines()]
b = [json.loads(l) for l in sys.argv[2].splitlines()]
print(f"{sys.argv[3]}, {sys.argv[4]} thread(s), native CPU engine, q8 activations")
print("turn  prompt  evaluated   TTFT reuse   TTFT recompute   same reply")
for x, y in zip(a, b):
    print(f"{x['turn']:>4}  {x['prompt_tokens']:>6}  {x['evaluated_tokens']:>9}  {x['ttft_ms']:>9.0f} ms  {y['ttft_ms']:>12.0f} ms   {x['tokens'] == y['tokens']}")
t1, t10 = a[0]['ttft_ms'], a[-1]['ttft_ms']
print(f"turn 10 / turn 1 TTFT: {t10 / t1:.2f}x with reuse, {b[-1]['ttft_ms'] / b[0]['ttft_ms']:.2f}x recomputing")
PY
