#!/usr/bin/env bash
# The end-to-end suite (tests/e2e) over a real kernel HID device, in the VM
# of tests/vm/run.sh: python-fido2 against /dev/hidrawN of
# `localpasskey run --transport uhid`, swtpm in the guest.
#
#   tests/vm/e2e.sh [BIN]
#
# LPK_E2E_ARGS replaces the whole-suite selection (e.g. "tests/e2e/test_pin.py -k wrong"). Output in
# test-output/e2e-hidraw/ (pytest.log, junit.xml); last line
# "e2e-hidraw: N passed, M failed".
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOCALPASSKEY_VM_NAME=e2e-hidraw LOCALPASSKEY_VM_GUEST=e2e_hidraw.py \
    LOCALPASSKEY_VM_MEM=${LOCALPASSKEY_VM_MEM:-2048} \
    LOCALPASSKEY_VM_TIMEOUT=${LOCALPASSKEY_VM_TIMEOUT:-1500} exec "$HERE/run.sh" "$@"
