#!/usr/bin/env bash
# Run every cargo-fuzz target for a while (docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Short runs (scripts/test.sh uses 15 s each) start from the seed corpus in
# fuzz/seeds and grow a scratch corpus in fuzz/corpus (not committed). A
# crash leaves its input in fuzz/artifacts/TARGET/ and fails the run; turn
# it into a regression test (docs/fuzzing.md) before fixing it.
#
# AddressSanitizer only where unsafe code meets what the fuzzer chose:
# `ctap_real`, which drives the real crypto crates (their SIMD code is
# unsafe). The other targets run our own `#![forbid(unsafe_code)]` code, the
# fast fakes and crates without unsafe (ciborium, coset), where Rust's own
# bounds checks already catch what ASan would and ASan only costs time
# (3.5-6x; docs/fuzzing.md has the figures). FUZZ_SANITIZER=address (or none)
# puts every target on one sanitizer.
#
# Only stable Rust is installed: cargo-fuzz needs `-Zsanitizer=address`, which
# stable rustc accepts with RUSTC_BOOTSTRAP=1 (the ASan runtime ships with
# the stable toolchain). The coverage instrumentation alone is stable.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_EACH=${1:-15}
shift || true
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(ctap_command ctap_real client_pin ctaphid broker)
# The sanitizer a target runs under (see above).
sanitizer_for() {
    if [ -n "${FUZZ_SANITIZER:-}" ]; then
        echo "$FUZZ_SANITIZER"
    elif [ "$1" = ctap_real ]; then
        echo address
    else
        echo none
    fi
}

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
# cargo caches what rustc said about the target in this file without keying
# it on RUSTC_BOOTSTRAP: a run without it leaves a stale failure behind.
rm -f fuzz/target/.rustc_info.json fuzz/target/*/.rustc_info.json
# Each sanitizer builds into a target directory of its own: their flags
# differ, and one directory would rebuild everything at every switch.
target_dir() { echo "$PWD/fuzz/target/$1"; }
# ASan's checks as calls (__asan_load8 ...) instead of inline branches: the
# same checks, but the coverage pass, which runs after ASan here, no longer
# counts each check's own branch as an edge of ours. Fewer counters to scan
# and fewer meaningless features per input (docs/fuzzing.md has the figures).
flags_for() {
    if [ "$1" = address ]; then
        echo "${RUSTFLAGS:-} -Cllvm-args=-asan-instrumentation-with-call-threshold=0"
    else
        echo "${RUSTFLAGS:-}"
    fi
}
for t in "${TARGETS[@]}"; do
    san=$(sanitizer_for "$t")
    RUSTFLAGS=$(flags_for "$san") cargo fuzz build --sanitizer "$san" --target-dir "$(target_dir "$san")" "$t"
done

failed=0
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    # ctap_real runs ctap_command's programs on the real crypto: same seeds.
    seeds="fuzz/seeds/$t"
    [ "$t" = ctap_real ] && seeds=fuzz/seeds/ctap_command
    san=$(sanitizer_for "$t")
    echo "==> fuzzing $t for ${SECONDS_EACH}s (sanitizer: $san)"
    if ! RUSTFLAGS=$(flags_for "$san") cargo fuzz run --sanitizer "$san" --target-dir "$(target_dir "$san")" \
        "$t" "fuzz/corpus/$t" "$seeds" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1 2>"fuzz/$t.log"; then
        echo "FUZZ FAILURE in $t: see fuzz/$t.log and fuzz/artifacts/$t/" >&2
        tail -n 40 "fuzz/$t.log" >&2
        failed=1
    else
        runs=$(grep -E '^stat::number_of_executed_units' "fuzz/$t.log" | awk '{print $2}')
        echo "fuzz $t: ${runs:-?} inputs in ${SECONDS_EACH} s ($(( ${runs:-0} / SECONDS_EACH )) per second)"
    fi
done
exit "$failed"
