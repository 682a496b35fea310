#!/usr/bin/env python3
"""Turn a VM run's compat.json into the README's compatibility table.

    scripts/update-compat.py test-output/browser/compat.json [--out compat.md] [--readme README.md]
    scripts/update-compat.py test-output/vm/compat.json --readme README.md

tests/vm/browser.sh writes one for the browsers, tests/vm/run.sh one for the
other clients (libfido2, OpenSSH, python-fido2). The table is written from the
run's own output (browser or client, version, date and each check's result),
never by hand. With --readme, the part of README.md
between the markers <!-- compat:begin --> and <!-- compat:end --> is replaced.
Other rows already in that section (another browser from another run) are
kept: a run only replaces the rows of the browsers it ran.
"""

import argparse
import json
import re
import sys
from pathlib import Path

BEGIN, END = "<!-- compat:begin -->", "<!-- compat:end -->"
HEADER = ["| browser or client | version | date | checks (passed / run) | result |", "|---|---|---|---|---|"]


def rows(compat: dict) -> dict[str, str]:
    out = {}
    for browser, version in compat["browsers"].items():
        res = [r for r in compat["results"] if r["browser"] == browser]
        passed = [r for r in res if r["status"] == "PASS"]
        failed = [r["ceremony"] for r in res if r["status"] == "FAIL"]
        blocked = [r["ceremony"] for r in res if r["status"] == "BLOCKED"]
        names = ", ".join(r["ceremony"] for r in passed)
        if not res:
            verdict = "not run"
        elif failed:
            verdict = "fails: " + ", ".join(failed)
        else:
            verdict = "**works**"
        if blocked:
            verdict += "; BLOCKED at a browser dialog headless mode cannot answer: " + ", ".join(blocked)
        out[browser] = f"| {browser} | {version} | {compat['date']} | {len(passed)} / {len(res)}: {names} | {verdict} |"
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("compat_json", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--readme", type=Path)
    a = ap.parse_args()
    compat = json.loads(a.compat_json.read_text())
    new = rows(compat)
    table = "\n".join(HEADER + list(new.values())) + "\n"
    if a.out:
        a.out.write_text(table)
    print(table, end="")
    if a.readme:
        text = a.readme.read_text()
        m = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
        if not m:
            print(f"{a.readme}: no {BEGIN} ... {END} section", file=sys.stderr)
            return 1
        kept = {}
        for line in m.group(1).splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if line.startswith("| ") and cells[0] not in ("browser", "browser or client") and not line.startswith("|---"):
                kept[cells[0]] = line
        kept.update(new)
        body = "\n".join(HEADER + list(kept.values())) + "\n"
        a.readme.write_text(text[: m.start(1)] + body + text[m.end(1):])
        print(f"updated {a.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
