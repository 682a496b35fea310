#!/usr/bin/env bash
# Benchmarks (figures, not tests), all in one run on this machine:
#  1. the TPM itself on a fresh swtpm: raw TPM2_Sign with a loaded key,
#     load+sign, key creation (crates/lp-tpm/examples/tpm_bench.rs);
#  2. LocalPasskey end to end over CTAPHID/UDP on the same kind of swtpm:
#     GetAssertion and MakeCredential with a valid pinUvAuthToken;
#  3. the software path: raw P-256 sign and SHA-256 vs Authenticator::handle
#     in process, and end to end over UDP with --custody insecure-software;
#  4. the peer: 1Password's passkey-authenticator in process vs our core;
#  5. scale: 10 / 1 000 / 10 000 / 100 000 stored passkeys: discoverable
#     GetAssertion (in process and end to end), daemon start-up, VmRSS;
#  6. idle: the daemon's CPU time over IDLE seconds with no traffic.
# 3-6 come from crates/lp-bench (its own workspace: the peer crate is never
# part of the normal build). Figures go to stdout and, as RESULT lines, to
# bench-output/results.txt; docs/benchmarks.md has the last run and a plot
# (scripts/bench_plot.py).
# Usage: scripts/bench.sh [ROUNDS] [IDLE_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-300}
IDLE=${2:-60}
export TSS2_LOG=all+none

cargo build --release --quiet -p localpasskey -p lp-tpm --examples --bins
cargo build --release --quiet --manifest-path crates/lp-bench/Cargo.toml
LPB=crates/lp-bench/target/release/lp-bench
OUT=bench-output
mkdir -p "$OUT"
BIN=target/release/localpasskey
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# Each swtpm answers only on a unix socket in $WORK (mktemp -d: 0700), its
# state files 0600: no TCP port another user could reach.
# start_swtpm NAME: state in $WORK/NAME; sets $tcti.
start_swtpm() {
    (umask 077 && mkdir -p "$WORK/$1")
    (
        umask 077
        exec swtpm socket --tpm2 --server "type=unixio,path=$WORK/$1.sock,mode=0600" \
            --ctrl "type=unixio,path=$WORK/$1.sock.ctrl,mode=0600" \
            --tpmstate "dir=$WORK/$1,mode=0600" --flags not-need-init,startup-clear
    ) >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    tcti="swtpm:path=$WORK/$1.sock"
    for _ in $(seq 50); do
        tpm2_getcap -T "$tcti" properties-fixed >/dev/null 2>&1 && break
        sleep 0.1
    done
    tpm2_dictionarylockout -s -n 32 -t 10 -l 10 -T "$tcti"
}
port=$((20000 + RANDOM % 10000))

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "# date: $(date -u +%FT%TZ); rounds: $ROUNDS"
echo
echo "## The TPM alone (swtpm $(swtpm --version 2>&1 | head -1 | awk '{print $NF}'))"
start_swtpm raw
target/release/examples/tpm_bench "$tcti" "$ROUNDS" | tee "$WORK/raw.txt"

echo
echo "## LocalPasskey end to end over CTAPHID (UDP), TPM custody, same kind of swtpm"
start_swtpm e2e
udp=$port
"$BIN" run --transport udp --listen "127.0.0.1:$udp" --data-dir "$WORK/data" \
    --tpm "$tcti" --presence approve 2>"$WORK/daemon.log" &
PIDS+=($!)
sleep 0.5
"$BIN" bench --to "127.0.0.1:$udp" --rounds "$ROUNDS" | tee "$WORK/e2e.txt"

raw=$(grep -m1 'sign, key cached' "$WORK/raw.txt" | sed -E 's/.*p50 +([0-9.]+) ms.*/\1/')
ga=$(grep -m1 'GetAssertion' "$WORK/e2e.txt" | sed -E 's/.*p50 +([0-9.]+) ms.*/\1/')
if [ -n "$raw" ] && [ -n "$ga" ]; then
    echo
    echo "ratio e2e GetAssertion / raw TPM2_Sign (p50): $(echo "scale=2; $ga / $raw" | bc)"
fi

echo
echo "## Software path (no TPM): raw operations vs Authenticator::handle in process"
"$LPB" software "$((ROUNDS * 10))" | tee "$OUT/software.txt"

echo
echo "## Peer: 1Password passkey-authenticator $(grep -A1 'name = "passkey-authenticator"' crates/lp-bench/Cargo.lock | sed -n 2p | cut -d'"' -f2) vs our core, in process"
"$LPB" peer "$((ROUNDS * 10))" | tee "$OUT/peer.txt"

echo
echo "## Software custody end to end over UDP, and scale"
: >"$OUT/scale.txt"
udp=$((port + 1))
for n in 10 1000 10000 100000; do
    dir="$WORK/scale$n"
    "$LPB" scale "$n" "$((ROUNDS * 3))" "$dir" | tee -a "$OUT/scale.txt"
    idle=0
    [ "$n" = 100000 ] && idle=$IDLE
    "$LPB" daemon "$BIN" "$dir" "$udp" "$ROUNDS" "$idle" | sed "s/^RESULT name=/RESULT n=$n name=/" | tee -a "$OUT/scale.txt"
    udp=$((udp + 1))
done
grep -h '^RESULT' "$OUT"/*.txt >"$OUT/results.txt"
echo
echo "RESULT lines collected in $OUT/results.txt"
