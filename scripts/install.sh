#!/usr/bin/env bash
# Set LocalPasskey up on a real machine, in one command, as your own user
# (it uses sudo for the system files):
#
#   scripts/install.sh                 # build, install, enable the user service
#   scripts/install.sh --system        # binary in /usr/local/bin instead of ~/.local/bin
#   scripts/install.sh --uninstall     # undo everything; your passkeys stay
#   scripts/install.sh --uninstall --purge   # ... and delete the passkeys too
#
# What it installs (the README explains each piece; `localpasskey doctor`
# checks each one and prints the fix):
#   1. the release binaries: ~/.local/bin/localpasskey and, beside it, the
#      desktop dialog localpasskey-prompt (or both in /usr/local/bin)
#   2. /etc/udev/rules.d/70-localpasskey.rules: the logged-in user may open
#      /dev/uhid (to create the security key) and our hidraw node (browsers);
#      /dev/tpmrm0 belongs to group tss
#   3. /etc/modules-load.d/localpasskey.conf: load uhid at boot (and now)
#   4. you join the tss group, which may use /dev/tpmrm0 (log in again after)
#   5. ~/.config/systemd/user/localpasskey.service, enabled and started
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

UDEV_RULE=/etc/udev/rules.d/70-localpasskey.rules
MODULES_LOAD=/etc/modules-load.d/localpasskey.conf
UNIT_DIR=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
UNIT=$UNIT_DIR/localpasskey.service
DATA_DIR=${XDG_DATA_HOME:-$HOME/.local/share}/localpasskey

MODE=install
PURGE=0
SYSTEM=0
START=1
for arg in "$@"; do
    case "$arg" in
        --uninstall) MODE=uninstall ;;
        --purge) PURGE=1 ;;
        --system) SYSTEM=1 ;;
        --no-start) START=0 ;;
        --print-unit) MODE=print-unit ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

# The systemd user unit for the daemon at $1 (step 6 below explains it).
# `--print-unit BIN` prints it alone: tests check it with systemd-analyze.
unit_text() {
    local BIN=$1
    cat <<UNIT
# LocalPasskey: a FIDO2 security key whose passkeys live in the TPM.
# Installed by scripts/install.sh; \`localpasskey doctor\` checks it.
[Unit]
Description=LocalPasskey security key (TPM-backed FIDO2 authenticator)
Documentation=file://$ROOT/README.md
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=simple
ExecStartPre=/bin/sh -c 'for i in \$(seq 240); do [ -r /dev/uhid ] && [ -w /dev/uhid ] && [ -r /dev/tpmrm0 ] && [ -w /dev/tpmrm0 ] && exit 0; sleep 0.5; done; echo "/dev/uhid or /dev/tpmrm0 is missing or not yours after 2 minutes: run localpasskey doctor" >&2; exit 1'
ExecStart=$BIN run --transport uhid --custody tpm --tpm device:/dev/tpmrm0 --presence desktop
Restart=on-failure
RestartSec=10s
TimeoutStartSec=150
# The daemon removes the device on SIGTERM.
KillSignal=SIGTERM
NoNewPrivileges=yes
PrivateTmp=yes
LockPersonality=yes
RestrictRealtime=yes

[Install]
WantedBy=default.target
UNIT
}

log() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }

if [ "$MODE" = print-unit ]; then
    unit_text "${LOCALPASSKEY_BIN:-$HOME/.local/bin/localpasskey}"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    echo "Run this as the user who will use the passkeys, not as root: it installs a systemd" >&2
    echo "*user* service and adds that user to the tss group (it calls sudo where needed)." >&2
    exit 1
fi
SUDO=(sudo)
command -v sudo >/dev/null || { echo "sudo is needed for the udev rule and modules-load file" >&2; exit 1; }

if [ "$SYSTEM" -eq 1 ]; then
    BIN_DIR=/usr/local/bin
else
    BIN_DIR=$HOME/.local/bin
fi
BIN=$BIN_DIR/localpasskey

have_user_systemd() { systemctl --user show-environment >/dev/null 2>&1; }

# ------------------------------------------------------------------ uninstall
if [ "$MODE" = uninstall ]; then
    if have_user_systemd; then
        systemctl --user disable --now localpasskey.service 2>/dev/null || true
    fi
    rm -f "$UNIT"
    have_user_systemd && systemctl --user daemon-reload || true
    log "removed the user service"
    for b in "$HOME/.local/bin/localpasskey" /usr/local/bin/localpasskey \
        "$HOME/.local/bin/localpasskey-prompt" /usr/local/bin/localpasskey-prompt; do
        if [ -e "$b" ]; then
            if [ -w "$(dirname "$b")" ]; then rm -f "$b"; else "${SUDO[@]}" rm -f "$b"; fi
            log "removed $b"
        fi
    done
    "${SUDO[@]}" rm -f "$UDEV_RULE" "$MODULES_LOAD"
    "${SUDO[@]}" udevadm control --reload 2>/dev/null || true
    log "removed $UDEV_RULE and $MODULES_LOAD (uhid stays loaded until reboot)"
    log "you stay in the tss group (other TPM programs may need it): sudo gpasswd -d $USER tss to leave"
    if [ "$PURGE" -eq 1 ]; then
        if [ -d "$DATA_DIR" ]; then
            read -r -p "Delete every passkey in $DATA_DIR for good? Type 'delete': " answer </dev/tty
            if [ "$answer" = delete ]; then
                rm -rf "$DATA_DIR"
                log "deleted $DATA_DIR"
            else
                log "kept $DATA_DIR"
            fi
        fi
    else
        log "your passkeys stay in $DATA_DIR (--purge deletes them)"
    fi
    exit 0
fi

# -------------------------------------------------------------------- install
# 1. Build. Only what the build needs (scripts/install-deps.sh is for tests).
need=()
for p in build-essential pkg-config libtss2-dev libgtk-4-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null; then
        log "installing build packages: ${need[*]}"
        "${SUDO[@]}" apt-get install -y --no-install-recommends "${need[@]}"
    else
        warn "not Debian/Ubuntu: make sure a C compiler, pkg-config, tpm2-tss (libtss2) and GTK 4 are installed"
    fi
fi
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || { echo "cargo is missing: install Rust from https://rustup.rs" >&2; exit 1; }
log "building the release binaries"
cargo build --release -p localpasskey -p localpasskey-prompt

# 2. The binaries. The daemon finds the dialog next to itself.
for b in localpasskey localpasskey-prompt; do
    if [ "$SYSTEM" -eq 1 ]; then
        "${SUDO[@]}" install -D -m 0755 "target/release/$b" "$BIN_DIR/$b"
    else
        install -D -m 0755 "target/release/$b" "$BIN_DIR/$b"
    fi
done
if [ "$SYSTEM" -ne 1 ]; then
    case ":$PATH:" in *":$BIN_DIR:"*) ;; *) warn "$BIN_DIR is not on your PATH" ;; esac
fi
log "installed $BIN and $BIN_DIR/localpasskey-prompt"

# 3. udev: uaccess gives the user of the active local session (and only
#    them) an ACL on the node, applied by systemd-logind at login and seat
#    switch; no group to join, nothing for remote users. The file sorts before
#    73-seat-late.rules, which turns the uaccess tag into the ACL.
tmp=$(mktemp)
cat >"$tmp" <<'RULES'
# LocalPasskey (installed by scripts/install.sh; removed by --uninstall).
# The logged-in user may create the virtual FIDO security key through uhid.
KERNEL=="uhid", SUBSYSTEM=="misc", TAG+="uaccess"
# ... and browsers and libfido2 in that session may open it: our USB ids are
# 1209:0001 (pid.codes' VID, its test PID). HID device names are
# BUS:VENDOR:PRODUCT.N in upper-case hex.
SUBSYSTEM=="hidraw", KERNEL=="hidraw*", KERNELS=="0003:1209:0001.*", TAG+="uaccess"
# The TPM's resource manager for the tss group (what Debian's tpm-udev does).
SUBSYSTEM=="tpmrm", KERNEL=="tpmrm[0-9]*", GROUP="tss", MODE="0660"
RULES
"${SUDO[@]}" install -D -m 0644 "$tmp" "$UDEV_RULE"
echo uhid >"$tmp"
"${SUDO[@]}" install -D -m 0644 "$tmp" "$MODULES_LOAD"
rm -f "$tmp"
log "installed $UDEV_RULE and $MODULES_LOAD"

# 4. The module now, then apply the rules to the existing nodes.
"${SUDO[@]}" modprobe uhid || warn "modprobe uhid failed: does this kernel have CONFIG_UHID?"
"${SUDO[@]}" udevadm control --reload
"${SUDO[@]}" udevadm trigger --action=change --sysname-match=uhid --sysname-match='tpmrm*' || true

# 5. The TPM. /dev/tpmrm0 is the kernel's resource manager: it lets several
#    programs share the TPM safely. Group tss may open it; membership counts
#    from the next login.
getent group tss >/dev/null || "${SUDO[@]}" groupadd --system tss
if ! id -nG "$USER" | tr ' ' '\n' | grep -qx tss; then
    "${SUDO[@]}" usermod -aG tss "$USER"
    warn "you were added to the tss group: log out and in again before the service can use the TPM"
fi

# 5b. The TPM's lockout authorisation. While it is empty, anyone who can
#    open the TPM may reset its dictionary-attack counter, and the daemon
#    refuses to set a PIN. `tpm-protect` explains what taking it changes on
#    this machine and asks; it does nothing if someone already holds it.
if [ -e /dev/tpmrm0 ]; then
    if [ -t 0 ]; then
        "${SUDO[@]}" "$BIN" tpm-protect --tpm device:/dev/tpmrm0 ||
            warn "the TPM's lockout authorisation was not taken: no PIN can be set until \`localpasskey tpm-protect\`"
    else
        warn "not a terminal: run \`sudo $BIN tpm-protect\` before setting a PIN (it explains and asks)"
    fi
fi

# 6. The systemd user service. It waits for /dev/uhid and /dev/tpmrm0 to be
#    usable (ExecStartPre, up to 2 minutes) instead of failing at login, when
#    the uhid module, the TPM driver or the session's ACLs may still be on
#    their way. A bare ConditionPathExists would skip the service for good in
#    that race; a restart loop alone would hit the start rate limit. If it
#    still fails, Restart=on-failure retries every 10 s, at most 5 times in 5
#    minutes, and `localpasskey doctor` says why.
mkdir -p "$UNIT_DIR"
unit_text "$BIN" >"$UNIT"
log "installed $UNIT"

if have_user_systemd; then
    systemctl --user daemon-reload
    if [ "$START" -eq 1 ]; then
        systemctl --user enable --now localpasskey.service || warn "the service did not start: localpasskey doctor"
    else
        systemctl --user enable localpasskey.service
    fi
    log "service: $(systemctl --user is-active localpasskey.service 2>/dev/null || true)"
else
    warn "no systemd user session here: enable it later with systemctl --user enable --now localpasskey.service"
fi

log "done. Check everything with: $BIN doctor"
