#!/usr/bin/env bash
# One command: install what is needed, build, and run the authenticator on the
# best backend this machine has. Extra arguments go to `localpasskey run`.
#
# - With the uhid broker (its socket /run/localpasskey/broker.sock, from the
#   package that scripts/install.sh installs), or /dev/uhid itself for root:
#   the real USB security key, with
#   your passkeys in your data directory. Every browser and FIDO2 program sees
#   it; prompts come from our desktop dialog, or pinentry without a display.
#   TPM: the machine's TPM 2.0 (/dev/tpmrm0) when it has one; otherwise a
#   project-managed software TPM (swtpm) whose state lives in the data
#   directory, said loudly (a software TPM is a file on disk).
# - Without it: a SIMULATION for CTAP test tools (UDP on 127.0.0.1:8111, or
#   --listen ADDR), which approves every request by itself. Any local user
#   can talk to it, power-cycle it and reset it, so it gets a throw-away data
#   directory and its own throw-away software TPM in a fresh private
#   directory, deleted when it stops: your passkeys and your TPM are never
#   part of it.
#
# The software TPM is reached only through a unix socket in a 0700 directory
# (no TCP port, no control channel other users can reach), its state files
# are 0600.
#
# LOCALPASSKEY_BIN=PATH runs that binary instead of building the release one.
# For a permanent setup (udev rule, module, systemd user unit) use
# scripts/install.sh instead.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
need=()
packages=(pkg-config libtss2-dev swtpm swtpm-tools tpm2-tools)
[ -n "${LOCALPASSKEY_BIN:-}" ] || packages+=(build-essential)
uhid=0
uhid_args=()
if [ -S /run/localpasskey/broker.sock ]; then
    uhid=1
elif [ -r /dev/uhid ] && [ -w /dev/uhid ]; then
    uhid=1
    uhid_args=(--uhid-direct)
fi
# The desktop dialog (GTK 4) is only needed for the real USB key.
[ "$uhid" -eq 1 ] && [ -z "${LOCALPASSKEY_BIN:-}" ] && packages+=(libgtk-4-dev)
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [ -n "${LOCALPASSKEY_BIN:-}" ]; then
    bin=$LOCALPASSKEY_BIN
    if [ ! -x "$bin" ]; then
        echo "LOCALPASSKEY_BIN=$bin is not an executable" >&2
        exit 1
    fi
else
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo is missing: install Rust with rustup (https://rustup.rs) and run this again" >&2
        exit 1
    fi
    cargo build --release --locked -p localpasskey
    [ "$uhid" -eq 1 ] && cargo build --release --locked -p localpasskey-prompt
    bin=target/release/localpasskey
fi
export TSS2_LOG=${TSS2_LOG:-all+none}

# Private to this run: the software TPM's sockets, and in the simulation
# everything (mktemp -d makes it 0700). A unix socket's path has at most
# 107 bytes.
base=${TMPDIR:-/tmp}
[ "${#base}" -le 64 ] || base=/tmp
work=$(mktemp -d "$base/localpasskey.XXXXXXXX")
daemon_pid=
swtpm_pid=
cleanup() {
    trap - EXIT INT TERM HUP
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if [ -n "$swtpm_pid" ]; then
        kill "$swtpm_pid" 2>/dev/null || true
        wait "$swtpm_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# start_swtpm STATE_DIR: a swtpm on $work/tpm.sock (control: tpm.sock.ctrl,
# where libtss2's swtpm TCTI looks for it); sets $tpm and $swtpm_pid.
start_swtpm() {
    local state=$1
    (umask 077 && mkdir -p "$state")
    # Older runs left swtpm's default modes (0640 files).
    chmod -R go-rwx "$state"
    (
        umask 077
        exec swtpm socket --tpm2 \
            --server "type=unixio,path=$work/tpm.sock,mode=0600" \
            --ctrl "type=unixio,path=$work/tpm.sock.ctrl,mode=0600" \
            --tpmstate "dir=$state,mode=0600" \
            --flags not-need-init,startup-clear
    ) >"$work/swtpm.log" 2>&1 &
    swtpm_pid=$!
    tpm="swtpm:path=$work/tpm.sock"
    for _ in $(seq 50); do
        tpm2_getcap -T "$tpm" properties-fixed >/dev/null 2>&1 && return 0
        kill -0 "$swtpm_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "swtpm did not start:" >&2
    cat "$work/swtpm.log" >&2
    exit 1
}

if [ "$uhid" -eq 1 ]; then
    data=${LOCALPASSKEY_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/localpasskey}
    mkdir -p -m 700 "$data"
    tpm_args=()
    if [ -r /dev/tpmrm0 ] && [ -w /dev/tpmrm0 ]; then
        tpm=device:/dev/tpmrm0
        echo "Backend: hardware TPM (/dev/tpmrm0)" >&2
    else
        state="$data/swtpm"
        start_swtpm "$state"
        tpm_args=(--allow-software-tpm)
        echo "Backend: NO hardware TPM here (/dev/tpmrm0 missing or not accessible)." >&2
        echo "         Using a project-managed SOFTWARE TPM (swtpm, state in $state):" >&2
        echo "         keys are TPM-wrapped, but that TPM is a file on this disk: whoever can" >&2
        echo "         read it can copy it, with every key in it." >&2
    fi
    via="the uhid broker"
    [ "${#uhid_args[@]}" -eq 0 ] || via="/dev/uhid (root, without the broker)"
    echo "Transport: USB security key through $via (browsers and FIDO2 tools see it);" >&2
    echo "           prompts: the desktop dialog (pinentry without a display)" >&2
    # Backgrounded so that a signal to this script stops it too; it keeps the
    # terminal as its stdin.
    "$bin" run --transport uhid "${uhid_args[@]}" --presence desktop --data-dir "$data" --tpm "$tpm" "${tpm_args[@]}" "$@" <&0 &
    daemon_pid=$!
else
    listen=127.0.0.1:8111
    prev=
    for a in "$@"; do
        [ "$prev" = --listen ] && listen=$a
        case $a in --listen=*) listen=${a#--listen=} ;; esac
        prev=$a
    done
    data="$work/data"
    (umask 077 && mkdir "$data")
    start_swtpm "$work/tpm"
    echo "SIMULATION: a throw-away authenticator; your passkeys are not used." >&2
    echo "            /dev/uhid is missing or not accessible here (modprobe uhid; see" >&2
    echo "            scripts/install.sh for the real USB security key), so this is the UDP" >&2
    echo "            simulation on $listen for CTAP test tools. It approves every request" >&2
    echo "            by itself and any local user can reach it: its data and its own" >&2
    echo "            software TPM live in $work," >&2
    echo "            deleted when it stops." >&2
    "$bin" run --transport udp --presence approve --data-dir "$data" --tpm "$tpm" "$@" &
    daemon_pid=$!
fi
status=0
wait "$daemon_pid" || status=$?
daemon_pid=
exit "$status"
