#!/usr/bin/env bash
# Time to first token, turn by turn, of a 10-turn chat whose history grows to ~1,600 tokens
# (scripts/chat-bench-messages.txt, replies of 80 tokens), native CPU engine: the conversation
# engine (the KV cache kept between turns) against recomputing the whole conversation every turn
# (`chord chat --no-reuse`, what every reply cost before). Each run starts with one warm-up turn
# and /reset (buffers grown, caches warm), then the 10 turns; RUNS runs of each, alternating, and
# the median per turn. usage: scripts/bench-chat.sh [MODEL] [THREADS]
# env: RUNS (default 3)          (default model SmolLM2 135M Q4_1, 1 thread)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${2:-1}
RUNS=${RUNS:-3}
cargo build --release -q -p inference --bin chord
run() {
    { echo "Hello! Say something short."; echo "/reset"; cat scripts/chat-bench-messages.txt; } |
        ./target/release/chord chat --model "$MODEL" --threads "$THREADS" --json --max-tokens 80 \
            --ignore-eos --system "You are a helpful assistant." "$@" | tail -n +2
}
out=$(mktemp -d)
for i in $(seq "$RUNS"); do
    run >"$out/reuse.$i"
    run --no-reuse >"$out/scratch.$i"
done
python3 - "$out" "$RUNS" "$MODEL" "$THREADS" <<'PY'
import json, statistics, sys
d, runs = sys.argv[1], int(sys.argv[2])
load = lambda kind: [[json.loads(l) for l in open(f"{d}/{kind}.{i}")] for i in range(1, runs + 1)]
a, b = load("reuse"), load("scratch")
med = lambda runs, t: statistics.median(r[t]["ttft_ms"] for r in runs)
print(f"{sys.argv[3]}, {sys.argv[4]} thread(s), native CPU engine, q8 activations; median of {runs} runs")
print("turn  prompt  evaluated   TTFT reuse   TTFT recompute   same reply")
for t, x in enumerate(a[0]):
    same = all(r[t]["tokens"] == b[0][t]["tokens"] for r in a + b)
    print(f"{t + 1:>4}  {x['prompt_tokens']:>6}  {x['evaluated_tokens']:>9}  {med(a, t):>9.0f} ms  {med(b, t):>12.0f} ms   {same}")
print("turn 10 runs (reuse):", " ".join(f"{r[-1]['ttft_ms']:.0f}" for r in a), " turn 1 runs:", " ".join(f"{r[0]['ttft_ms']:.0f}" for r in a))
print(f"turn 10 / turn 1 TTFT: {med(a, -1) / med(a, 0):.2f}x with reuse, {med(b, -1) / med(b, 0):.2f}x recomputing")
PY
rm -rf "$out"
