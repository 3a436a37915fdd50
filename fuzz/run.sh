#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS (default 60) each. Needs a nightly
# toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if missing.
# A crash leaves its input in fuzz/artifacts/<target>/; copy it to
# fuzz/regressions/<target>/ so tests/fuzz_regressions.rs replays it in CI.
# Leak detection is off: the HTTP targets share one server per process whose
# threads allocate outside any single input (the code under test is safe Rust).
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"registration authorize token guard_verify"}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
status=0
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
for target in $TARGETS; do
  mkdir -p "corpus/$target"
  echo "== $target: ${SECONDS_EACH}s" >&2
  if ! cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 -detect_leaks=0 2>&1 |
      tee "/tmp/fuzz-$target.log" | grep -E "^(#[0-9]+ *DONE|Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread)" ; then
    :
  fi
  if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "!! $target found a crash: $(ls artifacts/$target/crash-*)" >&2
    status=1
  fi
done
exit $status
