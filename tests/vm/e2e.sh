#!/usr/bin/env bash
# The end-to-end suite (tests/e2e) over a real kernel HID device, in the VM
# of tests/vm/run.sh: python-fido2 against /dev/hidrawN of
# `localpasskey run --transport uhid`, swtpm in the guest.
#
#   tests/vm/e2e.sh [BIN]
#
# By default (and in scripts/test.sh) it runs what meets the transport: every
# test of the protocol files (HID framing and bad input, WebAuthn ceremonies,
# CTAP 2.1 commands, PIN, presence) with the software custody, the slow ones
# (sleeps, kill loops) left out, and every credential algorithm with the TPM
# custody (ES256, ES384, ES512, RS256 and PS256 keys of swtpm over a real HID device); the
# TPM custody meets uhid in tests/vm/run.sh and tests/vm/browser.sh too. LPK_E2E_FULL=1 runs the whole suite, both custodies
# (about 19 minutes under TCG); LPK_E2E_ARGS replaces the selection (e.g.
# "tests/e2e/test_pin.py -k wrong"). Output in test-output/e2e-hidraw/
# (pytest.log, junit.xml); last line "e2e-hidraw: N passed, M failed".
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${LPK_E2E_ARGS:-}" ] && [ "${LPK_E2E_FULL:-0}" != 1 ]; then
    files="info_and_hid bad_input webauthn ctap21 credential_management extensions large_blobs config ctap22 pin presence algorithms"
    LPK_E2E_ARGS="$(printf 'tests/e2e/test_%s.py ' $files)-k '(soft and not algorithms) or (algorithms and tpm)' -m 'not slow'"
fi
export LPK_E2E_ARGS
LOCALPASSKEY_VM_ENV="LPK_E2E_ARGS LPK_E2E_WORKERS" LOCALPASSKEY_VM_NAME=e2e-hidraw LOCALPASSKEY_VM_GUEST=e2e_hidraw.py \
    LOCALPASSKEY_VM_MEM=${LOCALPASSKEY_VM_MEM:-2048} \
    LOCALPASSKEY_VM_TIMEOUT=${LOCALPASSKEY_VM_TIMEOUT:-1500} exec "$HERE/run.sh" "$@"
