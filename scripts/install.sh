#!/usr/bin/env bash
# Set LocalPasskey up on a real machine, in one command, as your own user
# (it uses sudo for the system part):
#
#   scripts/install.sh                 # build the Debian package, install it with apt, start your service
#   scripts/install.sh --uninstall     # undo everything; your passkeys stay
#   scripts/install.sh --uninstall --purge   # ... and delete your passkeys too
#   scripts/install.sh --deb FILE      # install this package instead of building one
#
# What the package installs (docs/setup.md explains each piece; `localpasskey
# doctor` checks each one and prints the fix):
#   - /usr/bin/localpasskey and the desktop dialog /usr/bin/localpasskey-prompt
#   - the desktop app /usr/bin/localpasskey-manager, "LocalPasskey" in the
#     applications menu (its .desktop file and icon)
#   - the uhid broker /usr/libexec/localpasskey/localpasskey-broker with
#     localpasskey-broker.socket/.service (root; the only thing that opens
#     /dev/uhid, one FIDO key per user)
#   - the user unit localpasskey.service, enabled for every user
#   - udev rules: our hidraw node belongs to its owner alone; tags for the
#     Firefox and Chromium snaps; /dev/uhid stays root's
#   - /usr/lib/modules-load.d/localpasskey.conf: uhid at boot
# Then, for you: the tss group (/dev/tpmrm0), the TPM's lockout
# authorisation (tpm-protect asks first), and your service started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)


MODE=install
PURGE=0
START=1
DEB=
while [ "$#" -gt 0 ]; do
    arg=$1
    shift
    case "$arg" in
        --deb)
            [ "$#" -gt 0 ] || { echo "--deb needs the package's path" >&2; exit 2; }
            DEB=$(realpath "$1")
            shift
            ;;
        --uninstall) MODE=uninstall ;;
        --purge) PURGE=1 ;;
        --no-start) START=0 ;;
        --print-unit) MODE=print-unit ;;
        -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }

# `--print-unit`: the packaged user unit, with the daemon at
# $LOCALPASSKEY_BIN (tests check it with systemd-analyze).
if [ "$MODE" = print-unit ]; then
    sed "s|/usr/bin/localpasskey |${LOCALPASSKEY_BIN:-/usr/bin/localpasskey} |" packaging/systemd/localpasskey.service
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    echo "Run this as the user who will use the passkeys, not as root: it installs a systemd" >&2
    echo "*user* service and adds that user to the tss group (it calls sudo where needed)." >&2
    exit 1
fi
SUDO=(sudo)
command -v sudo >/dev/null || { echo "sudo is needed to install the package with apt" >&2; exit 1; }

BIN=/usr/bin/localpasskey

have_user_systemd() { systemctl --user show-environment >/dev/null 2>&1; }

# ------------------------------------------------------------------ uninstall
# `localpasskey uninstall` does it: stops your service, removes what an older
# install.sh left in your home, removes the package (apt), and with --purge
# deletes your passkeys after you type `delete`.
if [ "$MODE" = uninstall ]; then
    args=()
    [ "$PURGE" -eq 1 ] && args+=(--purge)
    if [ -x "$BIN" ]; then
        exec "$BIN" uninstall "${args[@]}"
    fi
    for b in "$HOME/.local/bin/localpasskey" /usr/local/bin/localpasskey; do
        [ -x "$b" ] && exec "$b" uninstall "${args[@]}"
    done
    echo "localpasskey is not installed" >&2
    exit 1
fi

# -------------------------------------------------------------------- install
# 1. Build, unless given a package built elsewhere (the same package: e.g.
#    built once for several machines). Only what the build needs
#    (scripts/install-deps.sh is for tests).
if [ -z "$DEB" ]; then
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
    DEB=$(scripts/build-deb.sh | tail -n 1)
fi
deb=$DEB
log "installing $deb with apt"
"${SUDO[@]}" apt-get install -y --reinstall "$(realpath "$deb")"

# What an older install.sh put in your home would shadow the package's files.
for old in "$HOME/.local/bin/localpasskey" "$HOME/.local/bin/localpasskey-prompt" \
    "${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/localpasskey.service" \
    "${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/default.target.wants/localpasskey.service"; do
    if [ -e "$old" ] || [ -L "$old" ]; then
        rm -f "$old"
        log "removed $old (from an older install; the package provides it now)"
    fi
done

# 5. The TPM. /dev/tpmrm0 is the kernel's resource manager: it lets several
#    programs share the TPM safely. Group tss may open it; membership counts
#    from the next login.
getent group tss >/dev/null || "${SUDO[@]}" groupadd --system tss
NEW_TSS=0
if ! id -nG "$USER" | tr ' ' '\n' | grep -qx tss; then
    "${SUDO[@]}" usermod -aG tss "$USER"
    NEW_TSS=1
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

# The user service: the package enables it for every user (it starts at
# each login); start it now for you.
if have_user_systemd; then
    systemctl --user daemon-reload
    # Until the next login your user manager runs without group tss, and the
    # service would wait two minutes for /dev/tpmrm0 before failing.
    if [ "$START" -eq 1 ] && [ "$NEW_TSS" -eq 1 ]; then
        log "the service starts at your next login (group tss counts from then)"
    elif [ "$START" -eq 1 ]; then
        systemctl --user restart localpasskey.service || warn "the service did not start: localpasskey doctor"
    fi
    log "service: $(systemctl --user is-active localpasskey.service 2>/dev/null || true)"
else
    warn "no systemd user session here: the service starts at your next login"
fi

log "done. Check everything with: localpasskey doctor"
