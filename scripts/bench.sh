#!/usr/bin/env bash
# Benchmarks (figures, not tests), all in one run on this machine:
#  1. the TPM itself on a fresh swtpm: raw TPM2_Sign with a loaded key,
#     load+sign, key creation (crates/lp-tpm/examples/tpm_bench.rs);
#  2. LocalPasskey end to end over CTAPHID/UDP on the same kind of swtpm:
#     GetAssertion and MakeCredential with a valid pinUvAuthToken.
# Usage: scripts/bench.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-300}
export TSS2_LOG=all+none

cargo build --release --quiet -p localpasskey -p lp-tpm --examples --bins
BIN=target/release/localpasskey
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

port=$((20000 + RANDOM % 10000))
start_swtpm() {
    mkdir -p "$WORK/tpm$1"
    swtpm socket --tpm2 --server type=tcp,port=$1,bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=$(($1 + 1)),bindaddr=127.0.0.1 \
        --tpmstate dir="$WORK/tpm$1" --flags not-need-init,startup-clear &
    PIDS+=($!)
    for _ in $(seq 50); do
        tpm2_getcap -T "swtpm:host=127.0.0.1,port=$1" properties-fixed >/dev/null 2>&1 && break
        sleep 0.1
    done
    tpm2_dictionarylockout -s -n 32 -t 10 -l 10 -T "swtpm:host=127.0.0.1,port=$1"
}

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "# date: $(date -u +%FT%TZ); rounds: $ROUNDS"
echo
echo "## The TPM alone (swtpm $(swtpm --version 2>&1 | head -1 | awk '{print $NF}'))"
start_swtpm "$port"
target/release/examples/tpm_bench "swtpm:host=127.0.0.1,port=$port" "$ROUNDS" | tee "$WORK/raw.txt"

echo
echo "## LocalPasskey end to end over CTAPHID (UDP), TPM custody, same kind of swtpm"
port2=$((port + 2))
start_swtpm "$port2"
udp=$((port + 4))
"$BIN" run --transport udp --listen "127.0.0.1:$udp" --data-dir "$WORK/data" \
    --tpm "swtpm:host=127.0.0.1,port=$port2" --presence approve 2>"$WORK/daemon.log" &
PIDS+=($!)
sleep 0.5
"$BIN" bench --to "127.0.0.1:$udp" --rounds "$ROUNDS" | tee "$WORK/e2e.txt"

raw=$(grep -m1 'sign, key cached' "$WORK/raw.txt" | sed -E 's/.*p50 +([0-9.]+) ms.*/\1/')
ga=$(grep -m1 'GetAssertion' "$WORK/e2e.txt" | sed -E 's/.*p50 +([0-9.]+) ms.*/\1/')
if [ -n "$raw" ] && [ -n "$ga" ]; then
    echo
    echo "ratio e2e GetAssertion / raw TPM2_Sign (p50): $(echo "scale=2; $ga / $raw" | bc)"
fi
