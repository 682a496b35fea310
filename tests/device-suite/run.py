"""Run python-fido2's own device suite against LocalPasskey, once per key custody.

    .venv/bin/python tests/device-suite/run.py [--bin target/debug/localpasskey]
                                               [--custody tpm --custody soft]

Both custodies run at once, each in its own pytest process with its own daemon
(and swtpm), through the plugin lpk_device_suite.py. Output per custody in
test-output/fido2-device-suite/<custody>/ (pytest.log, junit.xml, the daemon's
log). Prints one line per custody, the reasons for every skip with their
counts, and the total line

    fido2-device-suite: N passed, M failed, K skipped

and exits non-zero unless every run ended with 0 failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CUSTODIES = ("tpm", "soft")


def suite_dir() -> Path:
    r = subprocess.run([str(HERE / "fetch.sh")], stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit("fido2-device-suite: could not fetch the suite (tests/device-suite/fetch.sh)")
    return Path(r.stdout.strip().splitlines()[-1])


def launch(custody: str, suite: Path, binary: Path, out: Path, extra: list[str]) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.is_file():
            stale.unlink()
    env = dict(os.environ)
    env.update(
        LOCALPASSKEY_BIN=str(binary),
        LPK_SUITE_CUSTODY=custody,
        LPK_SUITE_OUTPUT=str(out),
        TSS2_LOG="all+none",
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
    )
    cmd = [
        sys.executable, "-m", "pytest", str(suite / "tests" / "device"),
        "-c", str(HERE / "pytest.ini"), "--rootdir", str(suite),
        "-p", "lpk_device_suite", "-rfEs", "-v",
        "--junitxml", str(out / "junit.xml"), *extra,
    ]
    log = open(out / "pytest.log", "wb")
    return subprocess.Popen(cmd, cwd=suite, env=env, stdout=log, stderr=subprocess.STDOUT)


def tally(junit: Path) -> tuple[int, list[str], Counter]:
    """(passed, failed test names, skip reasons counted)."""
    root = ET.parse(junit).getroot()
    passed, failed, skipped = 0, [], Counter()
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        elif (s := case.find("skipped")) is not None:
            skipped[s.get("message", "").removeprefix("Skipped: ")] += 1
        else:
            passed += 1
    return passed, failed, skipped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", type=Path, default=Path(os.environ.get("LOCALPASSKEY_BIN", REPO / "target/debug/localpasskey")))
    ap.add_argument("--custody", action="append", choices=CUSTODIES)
    ap.add_argument("--output", type=Path, default=REPO / "test-output" / "fido2-device-suite")
    ap.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    a = ap.parse_args()
    binary = a.bin if a.bin.is_absolute() else REPO / a.bin
    if not binary.exists():
        sys.exit(f"fido2-device-suite: no binary at {binary} (cargo build)")
    suite = suite_dir()
    custodies = a.custody or list(CUSTODIES)
    runs = {c: launch(c, suite, binary, a.output / c, a.pytest_args) for c in custodies}
    codes = {c: p.wait() for c, p in runs.items()}

    total_passed = total_failed = total_skipped = 0
    ok = True
    for c in custodies:
        junit = a.output / c / "junit.xml"
        if not junit.exists():
            print(f"fido2-device-suite ({c}): pytest exited {codes[c]} without results; see {a.output / c}/pytest.log")
            ok = False
            continue
        passed, failed, skipped = tally(junit)
        n_skipped = sum(skipped.values())
        print(f"fido2-device-suite ({c}): {passed} passed, {len(failed)} failed, {n_skipped} skipped")
        for name in failed:
            print(f"  FAILED {name}")
        for reason, n in skipped.most_common():
            print(f"  skipped {n:>3}: {reason}")
        total_passed += passed
        total_failed += len(failed)
        total_skipped += n_skipped
        # pytest's own verdict too: an error outside any test (a crashed
        # plugin, a daemon that did not start) leaves no failed testcase.
        if failed or codes[c] != 0 or passed == 0:
            ok = False
    print(f"fido2-device-suite: {total_passed} passed, {total_failed} failed, {total_skipped} skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
