#!/usr/bin/env bash
# Real browsers against LocalPasskey over uhid, in the throw-away VM of tests/vm.
#
#   tests/vm/browser.sh [BIN]      (BIN: the localpasskey binary; default target/debug)
#
# Boots the same VM as tests/vm/run.sh (Debian kernel with uhid, qemu TCG, the
# host's / read-only over 9p) and runs tests/vm/browser_tests.py inside: swtpm,
# the daemon on uhid with TPM custody, a PIN set, built-in user verification
# through the scripted prompt, the demo relying party (rp/) on
# http://localhost:8080, and headless Chromium driven over the DevTools
# protocol (Runtime.evaluate only, never the WebAuthn domain), then headless
# Firefox ESR over WebDriver BiDi.
#
# Output in test-output/browser/: guest.log (one line per browser and
# ceremony), screenshots/*.png, chromium.log and chromium-fido.log (the
# browser's FIDO log), firefox.log (with its FIDO log), daemon.log, rp.log, compat.json and compat.md (the
# README's compatibility table; scripts/update-compat.py --readme copies it
# into README.md). Last line: "browser: N passed, M failed".
#
# Headless Firefox ESR runs after Chromium (a smaller set: register,
# username-less and allowCredentials sign-in, two accounts picked in our
# prompt, refused presence), driven over
# WebDriver BiDi; it starts slowly under emulation, so the VM gets more time
# and memory. FIREFOX_TESTS=0 leaves it out, FIREFOX_TESTS=only runs it alone.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
case "${FIREFOX_TESTS:-1}" in
0) browsers=chromium ;;
only) browsers=firefox ;;
*) browsers=chromium,firefox ;;
esac
if [ "$browsers" != firefox ]; then
    [ -x /usr/lib/chromium/chromium ] || { echo "browser: no /usr/lib/chromium/chromium (scripts/install-deps.sh installs chromium)" >&2; exit 1; }
fi
case "$browsers" in
*firefox*)
    [ -x /usr/lib/firefox-esr/firefox-esr ] ||
        { echo "browser: no /usr/lib/firefox-esr/firefox-esr (scripts/install-deps.sh installs firefox-esr)" >&2; exit 1; }
    mem=2048 timeout=1080
    ;;
*) mem=1536 timeout=480 ;;
esac
"$ROOT/.venv/bin/python" -c 'import websocket, webauthn' 2>/dev/null ||
    { echo "browser: .venv lacks websocket-client or webauthn (scripts/install-deps.sh)" >&2; exit 1; }

echo "browser: running $browsers"

rc=0
LPK_BROWSERS=$browsers LOCALPASSKEY_VM_ENV=LPK_BROWSERS LOCALPASSKEY_VM_NAME=browser LOCALPASSKEY_VM_GUEST=browser_tests.py LOCALPASSKEY_VM_MEM=${LOCALPASSKEY_VM_MEM:-$mem} \
    LOCALPASSKEY_VM_TIMEOUT=${LOCALPASSKEY_VM_TIMEOUT:-$timeout} "$HERE/run.sh" "$@" || rc=$?
OUT="$ROOT/test-output/browser"
if [ -s "$OUT/compat.json" ]; then
    python3 "$ROOT/scripts/update-compat.py" "$OUT/compat.json" --out "$OUT/compat.md" >/dev/null &&
        echo "browser: compatibility table in $OUT/compat.md (scripts/update-compat.py --readme puts it in README.md)"
fi
# The counts once more as the very last line.
grep -E '^browser: [0-9]+ passed, [0-9]+ failed$' "$OUT/guest.log" 2>/dev/null | tail -n 1 ||
    echo "browser: 0 passed, 1 failed"
exit "$rc"
