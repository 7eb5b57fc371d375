#!/usr/bin/env bash
# Fuzz the engine with cargo-fuzz (libFuzzer): the GGUF reader (header + streaming loader), the
# tokenizers (encode arbitrary bytes, decode arbitrary ids) and the chat-template renderer.
#
#   scripts/fuzz.sh                        every target, 60 s each
#   scripts/fuzz.sh gguf_header 600        one target for 600 s
#   scripts/fuzz.sh tokenizer -runs=10000000
#   scripts/fuzz.sh all 30 -- -seed=1      anything after `--` goes to libFuzzer
#
# Installs what is missing (the nightly toolchain, cargo-fuzz, the vocabulary files of
# scripts/fetch-vocabs.sh, the seed corpora of fuzz/examples/make_seeds.rs). The corpus grows in
# fuzz/corpus/<target>/ (git-ignored; seeded from the committed fuzz/seeds/<target>/), crashes,
# timeouts and OOMs land in fuzz/artifacts/<target>/, logs in fuzz/logs/. Replay a finding with
# `cd fuzz && cargo +nightly fuzz run -O --debug-assertions -s none <target> artifacts/<target>/crash-…`.
# Exits non-zero when a target found something.
# Every target runs with -timeout=5 (seconds per input) and -rss_limit_mb=2048.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/toolchain.sh
source scripts/toolchain.sh

ALL=(gguf_header tokenizer chat_template)
target=${1:-all}
budget=${2:-60}
shift $(($# < 2 ? $# : 2))
[ "${1:-}" = "--" ] && shift
extra=("$@")

case "$target" in
  all) targets=("${ALL[@]}") ;;
  gguf_header | tokenizer | chat_template) targets=("$target") ;;
  *) echo "usage: $0 [all|gguf_header|tokenizer|chat_template] [SECONDS|-runs=N] [-- LIBFUZZER_ARGS...]" >&2; exit 2 ;;
esac
case "$budget" in
  -runs=*) limit=("$budget") ;;
  *[!0-9]* | "") echo "error: budget must be seconds or -runs=N, got '$budget'" >&2; exit 2 ;;
  *) limit=("-max_total_time=$budget") ;;
esac

# Largest input per target: micro models and header prefixes are ≤ 16 KB; real chat templates
# (tool calling included) ≤ 20 KB.
max_len() {
  case "$1" in
    gguf_header) echo 32768 ;;
    tokenizer) echo 4096 ;;
    chat_template) echo 32768 ;;
  esac
}

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  log "installing the nightly toolchain (cargo-fuzz needs -Zsanitizer)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
fi
if ! ls models/vocab/ggml-vocab-gpt-2.gguf >/dev/null 2>&1; then
  log "fetching the vocabulary files (tokenizer target, seeds)"
  scripts/fetch-vocabs.sh
fi
for t in "${targets[@]}"; do
  if [ ! -d "fuzz/seeds/$t" ]; then
    log "writing the seed corpora (fuzz/examples/make_seeds.rs)"
    (cd fuzz && cargo +nightly run --release --example make_seeds)
    break
  fi
done

mkdir -p fuzz/logs
found=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log "fuzzing $t (${limit[*]})"
  log_file="fuzz/logs/$t.log"
  start=$(date +%s)
  set +e
  (cd fuzz && cargo +nightly fuzz run -O --debug-assertions -s none "$t" "corpus/$t" "seeds/$t" -- \
    -max_len="$(max_len "$t")" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "${limit[@]}" "${extra[@]}") 2>&1 | tee "$log_file"
  rc=${PIPESTATUS[0]}
  set -e
  secs=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_file" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log_file" | tail -1)
  files=$(find "fuzz/corpus/$t" -type f | wc -l)
  bytes=$(du -sk "fuzz/corpus/$t" | cut -f1)
  status=ok
  if [ "$rc" != 0 ]; then
    status="FOUND SOMETHING (exit $rc; see fuzz/artifacts/$t/ and $log_file)"
    found=1
  fi
  summary+=("$t: ${runs:-?} executions, ${speed:-?} exec/s, ${secs} s, corpus $files files / ${bytes} KB: $status")
done

log "summary"
printf '%s\n' "${summary[@]}"
exit "$found"
