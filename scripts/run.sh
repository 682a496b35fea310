#!/usr/bin/env bash
# One command: install what is needed, build, and run the authenticator on the
# best backend this machine has. Extra arguments go to `localpasskey run`.
#
# - TPM: the machine's TPM 2.0 (/dev/tpmrm0) when it has one; otherwise a
#   project-managed software TPM (swtpm) whose state lives in the data
#   directory — say so loudly, because a software TPM is a file on disk.
# - Transport: a real USB security key through /dev/uhid when this user can
#   open it (every browser and FIDO2 program sees it; prompts come from our
#   desktop dialog, or pinentry without a display); otherwise the UDP
#   simulation transport on 127.0.0.1:8111 for CTAP test tools.
# For a permanent setup (udev rule, module, systemd user unit) use
# scripts/install.sh instead.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
need=()
packages=(build-essential pkg-config libtss2-dev swtpm swtpm-tools tpm2-tools)
# The desktop dialog (GTK 4) is only needed for the real USB key.
[ -e /dev/uhid ] && packages+=(libgtk-4-dev)
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install Rust with rustup (https://rustup.rs) and run this again" >&2
    exit 1
fi

cargo build --release --locked -p localpasskey
bin=target/release/localpasskey
data=${LOCALPASSKEY_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/localpasskey}
mkdir -p -m 700 "$data"
export TSS2_LOG=${TSS2_LOG:-all+none}

if [ -r /dev/tpmrm0 ] && [ -w /dev/tpmrm0 ]; then
    tpm=device:/dev/tpmrm0
    echo "Backend: hardware TPM (/dev/tpmrm0)" >&2
else
    port=${LOCALPASSKEY_SWTPM_PORT:-21321}
    state="$data/swtpm"
    fresh=0
    [ -d "$state" ] || fresh=1
    mkdir -p -m 700 "$state"
    swtpm socket --tpm2 --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
        --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
        --tpmstate "dir=$state" --flags not-need-init,startup-clear &
    swtpm_pid=$!
    trap 'kill $swtpm_pid 2>/dev/null || true' EXIT
    tpm="swtpm:host=127.0.0.1,port=$port"
    for _ in $(seq 50); do
        tpm2_getcap -T "$tpm" properties-fixed >/dev/null 2>&1 && break
        sleep 0.1
    done
    if [ "$fresh" -eq 1 ]; then
        # Our own counter (8 tries, 3 per power cycle) comes first; the TPM's
        # lockout is the backstop behind it, not in front of it.
        tpm2_dictionarylockout -s -n 32 -t 600 -l 600 -T "$tpm" >/dev/null
    fi
    echo "Backend: NO hardware TPM here (/dev/tpmrm0 missing or not accessible)." >&2
    echo "         Using a project-managed SOFTWARE TPM (swtpm, state in $state):" >&2
    echo "         keys are TPM-wrapped, but that TPM is a file on this disk." >&2
fi

if [ -r /dev/uhid ] && [ -w /dev/uhid ]; then
    echo "Transport: USB security key through /dev/uhid (browsers and FIDO2 tools see it);" >&2
    echo "           prompts: the desktop dialog (pinentry without a display)" >&2
    cargo build --release --locked -p localpasskey-prompt
    exec_args=(--transport uhid --presence desktop)
else
    echo "Transport: /dev/uhid is missing or not accessible here (modprobe uhid; see" >&2
    echo "           scripts/install.sh): UDP SIMULATION on 127.0.0.1:8111 for CTAP test tools" >&2
    exec_args=(--transport udp --presence approve)
fi
"$bin" run "${exec_args[@]}" --data-dir "$data" --tpm "$tpm" "$@"
