#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted text: amounts, pagination cursors and the
# Stripe-Signature header (fuzz/fuzz_targets). Each target runs for SECONDS (default 60) with
# libFuzzer under AddressSanitizer; any crash or failed assertion stops the run with a
# reproducer under fuzz/artifacts/. Needs cargo-fuzz (installed when missing) and the
# sanitizer flags of a nightly compiler: the nightly toolchain when there is one, else the
# stable one with RUSTC_BOOTSTRAP=1.
#
#   scripts/fuzz.sh            # every target, 60 s each
#   SECONDS_PER_TARGET=600 scripts/fuzz.sh money_parse
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

# Its own target directory: sanitizer flags would otherwise rebuild the main cache.
unset CARGO_TARGET_DIR RUSTFLAGS

budget=${SECONDS_PER_TARGET:-60}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(money_parse cursor_decode stripe_signature)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

for t in "${targets[@]}"; do
  echo "== $t: ${budget} s"
  log=$(mktemp)
  "${fuzz[@]}" run "$t" -- -max_total_time="$budget" -print_final_stats=1 2>&1 | tee "$log" | grep -E '^(Done|#[0-9]+.*DONE|==[0-9]+==ERROR|thread .* panicked)' || true
  runs=$(awk -F'[: ]+' '/stat::number_of_executed_units/ {print $3}' "$log")
  if grep -qE 'ERROR: libFuzzer|panicked|deadly signal' "$log"; then
    echo "$t: CRASH after ${runs:-?} runs; see fuzz/artifacts/$t" >&2
    exit 1
  fi
  echo "$t: ${runs:-?} inputs, 0 crashes"
  rm -f "$log"
done
