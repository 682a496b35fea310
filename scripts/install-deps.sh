#!/usr/bin/env bash
# Install everything LocalPasskey's build and tests need on a fresh Debian 12 /
# Ubuntu machine. Idempotent: a second run changes nothing and takes a second.
#
#   scripts/install-deps.sh
#
# - Debian packages (apt-get update only when one is missing)
# - cargo, through rustup, only if there is no cargo at all
# - a Python venv at .venv with tests/e2e/requirements.txt and rp/requirements.txt
# - python-fido2's device test suite, from its sdist on PyPI, in a cache
#   directory (tests/device-suite/fetch.sh)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

log() { printf '==> %s\n' "$*"; }

# ---------------------------------------------------------------- apt packages
# build-essential/pkg-config: Rust crates that build C (rusqlite's bundled SQLite).
# python3-venv/python3-pip: the end-to-end test client.
# libtss2-dev: the TPM custody (tss-esapi) links against it.
# swtpm, swtpm-tools: the software TPM every end-to-end test starts its own of.
# tpm2-tools: tpm2_dictionarylockout, tpm2_flushcontext, tpm2_getcap and
#   tpm2_print, used by the end-to-end suite around swtpm.
# fido2-tools, openssh-client: the real clients of the VM tests (tests/vm).
# qemu-system-x86, busybox-static, kmod, cpio: the throw-away VM with a kernel
# that has uhid (tests/vm/build-image.sh downloads Debian's kernel package).
# mmdebstrap, qemu-utils (qemu-img), e2fsprogs: tests/system builds a Debian 12
#   image from Debian's packages and boots a throw-away overlay of it.
# systemd: systemd-analyze checks the user unit scripts/install.sh writes.
# libgtk-4-dev: builds localpasskey-prompt, the desktop dialog (GTK 4.8 on Debian 12).
# libadwaita-1-dev: builds localpasskey-manager, the desktop app (libadwaita 1.2).
# xvfb, xdotool, imagemagick, fonts-dejavu-core: tests/desktop runs that dialog
#   on a private X server, types into it, and saves screenshots (`import`).
# at-spi2-core, python3-pyatspi, gir1.2-atspi-2.0 (and dbus-daemon, below):
#   tests/manager runs the app on its own session bus and accessibility bus
#   and drives it through the accessibility tree (AT-SPI).
# desktop-file-utils: desktop-file-validate checks the app's .desktop file.
# chromium: the real browser of the VM browser test (tests/vm/browser.sh),
#   started headless inside the VM against rp/.
# firefox-esr (not with FIREFOX_TESTS=0): the second browser of that test.
# pinentry-gtk2: the graphical pinentry scripts/bench.sh times beside our dialog.
# dbus-daemon, dbus-bin: the session bus tests/e2e/test_dbus.py starts for the
#   manager API, and dbus-send, its caller with another uid.
# strace: tests/e2e/test_sync_before_answer.py reads the daemon's system calls.
APT_PACKAGES=(
    build-essential pkg-config python3-venv python3-pip
    swtpm swtpm-tools tpm2-tools libtss2-dev fido2-tools openssh-client
    qemu-system-x86 busybox-static kmod cpio
    mmdebstrap qemu-utils e2fsprogs
    libgtk-4-dev xvfb xdotool imagemagick fonts-dejavu-core pinentry-gtk2
    systemd dbus-daemon dbus-bin strace
    libadwaita-1-dev at-spi2-core python3-pyatspi gir1.2-atspi-2.0 desktop-file-utils
    chromium
)

if [ "${FIREFOX_TESTS:-1}" != 0 ]; then
    APT_PACKAGES+=(firefox-esr)
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing packages (${missing[*]}) and no apt-get: install them by hand" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
        echo "error: missing packages (${missing[*]}); run as root or install sudo" >&2
        exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "Debian packages present"
fi

# ----------------------------------------------------------------------- cargo
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if command -v cargo >/dev/null 2>&1; then
    log "cargo present: $(cargo --version)"
else
    log "cargo not found: installing the Rust toolchain with rustup"
    if command -v rustup >/dev/null 2>&1; then
        rustup toolchain install stable --profile minimal --component rustfmt,clippy
        rustup default stable
    elif command -v curl >/dev/null 2>&1; then
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --profile minimal --component rustfmt,clippy
    else
        echo "error: no cargo, no rustup and no curl: install Rust (https://rustup.rs) by hand" >&2
        exit 1
    fi
    export PATH="$HOME/.cargo/bin:$PATH"
    command -v cargo >/dev/null 2>&1 || { echo "error: cargo still not on PATH" >&2; exit 1; }
    log "installed $(cargo --version); add \$HOME/.cargo/bin to your PATH"
fi

# ------------------------------------------------------------- python venv
VENV="$ROOT/.venv"
REQ="$ROOT/tests/e2e/requirements.txt"
RP_REQ="$ROOT/rp/requirements.txt"
STAMP="$VENV/.requirements.sha256"

PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating Python venv at .venv"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

want=$(cat "$REQ" "$RP_REQ" | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" != "$have" ] || ! "$VENV/bin/python" -c 'import fido2, webauthn, cbor2, cryptography, pytest, xdist, websocket' >/dev/null 2>&1; then
    log "installing Python test and demo relying-party requirements into .venv"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" -r "$RP_REQ"
    echo "$want" >"$STAMP"
else
    log "Python test requirements present in .venv"
fi
"$VENV/bin/python" - <<'EOF'
import importlib.metadata as m
print("==> python test deps: " + ", ".join(
    f"{p} {m.version(p)}" for p in ("fido2", "webauthn", "cbor2", "cryptography", "pytest", "pytest-xdist")))
EOF

# ------------------------------------------------- python-fido2's device suite
log "python-fido2 device suite at $("$ROOT/tests/device-suite/fetch.sh")"

# ------------------------------------------------------------- TPM tools check
for t in swtpm tpm2_dictionarylockout tpm2_flushcontext tpm2_getcap tpm2_print; do
    command -v "$t" >/dev/null 2>&1 || { echo "error: $t not found after installing packages" >&2; exit 1; }
done
log "TPM tools present: swtpm, tpm2-tools ($(dpkg-query -W -f='${Version}' tpm2-tools 2>/dev/null || echo '?'))"
