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
# protocol (Runtime.evaluate only, never the WebAuthn domain).
#
# Output in test-output/browser/: guest.log (one line per browser and
# ceremony), screenshots/*.png, chromium.log and chromium-fido.log (the
# browser's FIDO log), daemon.log, rp.log, compat.json and compat.md (the
# README's compatibility table; scripts/update-compat.py --readme copies it
# into README.md). Last line: "browser: N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
[ -x /usr/lib/chromium/chromium ] || { echo "browser: no /usr/lib/chromium/chromium (scripts/install-deps.sh installs chromium)" >&2; exit 1; }
"$ROOT/.venv/bin/python" -c 'import websocket, webauthn' 2>/dev/null ||
    { echo "browser: .venv lacks websocket-client or webauthn (scripts/install-deps.sh)" >&2; exit 1; }

rc=0
LOCALPASSKEY_VM_NAME=browser LOCALPASSKEY_VM_GUEST=browser_tests.py LOCALPASSKEY_VM_MEM=${LOCALPASSKEY_VM_MEM:-1536} \
    LOCALPASSKEY_VM_TIMEOUT=${LOCALPASSKEY_VM_TIMEOUT:-480} "$HERE/run.sh" "$@" || rc=$?
OUT="$ROOT/test-output/browser"
if [ -s "$OUT/compat.json" ]; then
    python3 "$ROOT/scripts/update-compat.py" "$OUT/compat.json" --out "$OUT/compat.md" >/dev/null &&
        echo "browser: compatibility table in $OUT/compat.md (scripts/update-compat.py --readme puts it in README.md)"
fi
# The counts once more as the very last line.
grep -E '^browser: [0-9]+ passed, [0-9]+ failed$' "$OUT/guest.log" 2>/dev/null | tail -n 1 ||
    echo "browser: 0 passed, 1 failed"
exit "$rc"
