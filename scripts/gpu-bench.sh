#!/usr/bin/env bash
# Native wgpu on a real GPU: kernel tests, GPU-vs-CPU logits and decode speed of the 1.5B model,
# in one run (made for a lent GPU machine with no Rust toolchain and no network).
#
# Prepare here (x86-64 Linux):
#   cargo build --release -p inference && cargo test --release -p inference --test webgpu --no-run
#   mkdir -p .devcarry && cp target/release/chord .devcarry/ && strip .devcarry/chord
#   cp target/release/deps/webgpu-<hash> .devcarry/webgpu-tests && strip .devcarry/webgpu-tests
#   scripts/gguf-tile.py pack models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf .devcarry/qwen.tile
# (the 1.1 GB model cannot travel; its tile rebuilds a same-shape, same-speed copy, see
# gguf-tile.py) and the Vulkan loader as .gl/*.deb where the machine lacks one. Then there:
#   scripts/gpu-bench.sh     (OUT=dir for the logs; THREADS=CPU threads, default all; RUNS, GEN,
#                             LONG: runs, generated tokens, long-prompt tokens; MODEL=a GGUF;
#                             CPU=0 skips the CPU figures; EXTRA=other builds to time)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-bench}
mkdir -p "$OUT"
D=.devcarry
THREADS=${THREADS:-$(nproc)}
RUNS=${RUNS:-5} GEN=${GEN:-128} LONG=${LONG:-512}
CPU=${CPU:-1}          # 0: skip the CPU figures
EXTRA=${EXTRA:-}       # other builds in .devcarry to time the same way (e.g. "chord-a chord-b")
if ! ldconfig -p | grep -q libvulkan.so.1 && ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
NV=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$NV" ] && export VK_DRIVER_FILES=$NV
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null
nproc
MODEL=${MODEL:-/tmp/qwen-tiled.gguf}
[ -f "$MODEL" ] || python3 scripts/gguf-tile.py unpack "$D/qwen.tile" "$MODEL" || exit 1

step() { echo; echo "=== $* ($(date +%T))"; }

step "1. kernel tests on this GPU (every quant type vs the CPU; split tensors; shader errors)"
"$D/webgpu-tests" --test-threads 1 matvec_every_type fused_products embedding_lookup tensors_larger shader_errors \
    2>&1 | tee "$OUT/kernel-tests.log" | grep -E "^test |test result"

step "2. GPU vs CPU logits, every position of a 72-token prompt (two GPU batches)"
P="The quick brown fox jumps over the lazy dog. In the beginning the universe was created, \
which made a lot of people very angry and has been widely regarded as a bad move."
P="$P $P"
"$D/chord" logits --model "$MODEL" --prompt "$P" --top 20 --all-positions --json \
    --backend webgpu >"$OUT/logits-gpu.json"
"$D/chord" logits --model "$MODEL" --prompt "$P" --top 20 --all-positions --json \
    --threads "$THREADS" >"$OUT/logits-cpu.json"
python3 - "$OUT/logits-cpu.json" "$OUT/logits-gpu.json" <<'EOF'
import json, sys
cpu, gpu = (json.load(open(p)) for p in sys.argv[1:3])
worst, agree, close = 0.0, 0, 0
for c, g in zip(cpu["positions"], gpu["positions"]):
    gv = dict((int(i), v) for i, v in g["top"])
    cv = dict((int(i), v) for i, v in c["top"])
    worst = max([worst] + [abs(v - gv[i]) for i, v in cv.items() if i in gv])
    if c["top"][0][0] == g["top"][0][0]:
        agree += 1
    elif c["top"][0][1] - c["top"][1][1] < 0.05:
        close += 1
n = len(cpu["positions"])
print(f"positions {n}: top-1 equal {agree}, near ties (<0.05) {close}; top-20 max |gpu-cpu| {worst:.5f}")
print("GPU_VS_CPU", "PASS" if agree + close == n and worst < 0.05 else "FAIL")
EOF

step "3. speed on the GPU ($RUNS runs: 64-token prompt + $GEN tokens; a $LONG-token prompt)"
"$D/chord" bench --backend webgpu --model "$MODEL" --runs "$RUNS" --gen-tokens "$GEN" --profile \
    | tee "$OUT/bench-gpu.txt"
"$D/chord" bench --backend webgpu --model "$MODEL" --runs 3 --prompt-tokens "$LONG" \
    --gen-tokens 32 | tee -a "$OUT/bench-gpu.txt"

for v in $EXTRA; do
    step "3. speed on the GPU, build $v"
    "$D/$v" bench --backend webgpu --model "$MODEL" --runs "$RUNS" --gen-tokens "$GEN" \
        | tee -a "$OUT/bench-gpu.txt"
    "$D/$v" bench --backend webgpu --model "$MODEL" --runs 3 --prompt-tokens "$LONG" \
        --gen-tokens 32 | tee -a "$OUT/bench-gpu.txt"
done
[ "$CPU" = 1 ] || { step done; exit 0; }

step "4. the CPU path on the same machine ($THREADS threads and 1 thread)"
for act in q8 f32; do
    "$D/chord" bench --model "$MODEL" --threads "$THREADS" --runs 3 --gen-tokens 32 \
        --activations $act
done | tee "$OUT/bench-cpu.txt"
"$D/chord" bench --model "$MODEL" --threads 1 --runs 1 --gen-tokens 16 --activations q8 \
    | tee -a "$OUT/bench-cpu.txt"
step done
