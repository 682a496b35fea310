"""The end-to-end suite of tests/e2e over a real kernel HID device.

Runs inside the throw-away VM of tests/vm/run.sh (LOCALPASSKEY_VM_GUEST=
e2e_hidraw.py; tests/vm/e2e.sh starts it). It runs the same pytest suite as
scripts/test.sh runs over UDP, with LPK_TRANSPORT=uhid: every daemon is
`localpasskey run --transport uhid` and python-fido2 talks to its
/dev/hidrawN. Tests marked `transport("udp")` need the simulation (its
power-cycle datagram, the CLI's UDP client, datagram sizes) and are left out;
pytest's summary names them. Ends with "e2e-hidraw: N passed, M failed".
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    print(f"guest: {os.uname().release}, python {sys.version.split()[0]}", flush=True)
    if not Path("/dev/uhid").exists():
        print("FAIL  no /dev/uhid in the guest")
        print("e2e-hidraw: 0 passed, 1 failed")
        return 1
    # Root opens /dev/uhid itself here (--uhid-direct): the suite runs two
    # daemons of one uid at a time, and the broker gives a uid one device.
    # tests/vm/guest_tests.py covers the broker.
    env = dict(os.environ, LPK_TRANSPORT="uhid", LOCALPASSKEY_BIN=args.bin, PYTHONDONTWRITEBYTECODE="1",
               LOCALPASSKEY_UHID_DIRECT="1")
    # The host's tree is read-only here: no cache, temporary files in the guest's /tmp.
    selection = shlex.split(os.environ.get("LPK_E2E_ARGS", "")) or [str(ROOT / "tests/e2e")]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--basetemp", "/tmp/e2e", "-n", os.environ.get("LPK_E2E_WORKERS", "2"),
            "--junitxml", str(args.out / "junit.xml"), *selection]
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (args.out / "pytest.log").write_text(proc.stdout)
    # The per-file summary and the failures, not the dots.
    out = proc.stdout
    keep = out[out.find("= FAILURES ="):] if "= FAILURES =" in out else ""
    tail = out[out.find("LocalPasskey e2e: what ran"):] if "LocalPasskey e2e: what ran" in out else out[-4000:]
    print(keep[-20000:] if keep else "", tail, sep="\n", flush=True)
    # pytest's own last line, e.g. "2 failed, 431 passed, 18 deselected in 300.1s".
    last = next((l for l in reversed(out.splitlines()) if re.search(r" in [\d.]+s", l)), "")
    m = re.search(r"(\d+) passed", last)
    f = re.search(r"(\d+) failed", last)
    e = re.search(r"(\d+) errors?", last)
    passed = int(m.group(1)) if m else 0
    failed = (int(f.group(1)) if f else 0) + (int(e.group(1)) if e else 0)
    if proc.returncode != 0 and failed == 0:
        failed = 1  # pytest failed without a failed test: a collection or usage error
    print(f"guest: pytest exited {proc.returncode} after {time.monotonic() - t0:.0f}s", flush=True)
    print(f"e2e-hidraw: {passed} passed, {failed} failed", flush=True)
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
