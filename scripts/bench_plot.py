#!/usr/bin/env python3
"""Plot discoverable GetAssertion and credential-management latency against stored passkeys from
lp-bench's RESULT lines (bench-output/scale.txt): docs/benchmarks-scale.png.

    .venv/bin/pip install matplotlib
    .venv/bin/python scripts/bench_plot.py bench-output/scale.txt docs/benchmarks-scale.png
"""
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src, out = sys.argv[1], sys.argv[2]
inproc, e2e, creds = {}, {}, {}
current = None
for line in open(src):
    m = re.match(r"RESULT n=(\d+) name=daemon_startup", line)
    if m:
        current = int(m[1])
    m = re.match(r"RESULT name=scale_in_process_discoverable_get_assertion_n(\d+) .*p50_ms=([\d.]+) p99_ms=([\d.]+)", line)
    if m:
        inproc[int(m[1])] = (float(m[2]), float(m[3]))
    m = re.match(r"RESULT name=scale_cred_mgmt_enumerate_credentials_begin_n(\d+) .*p50_ms=([\d.]+) p99_ms=([\d.]+)", line)
    if m:
        creds[int(m[1])] = (float(m[2]), float(m[3]))
    m = re.search(r"e2e GetAssertion with a valid token\s+n=\d+\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", line)
    if m and current is not None:
        e2e[current] = (float(m[1]), float(m[2]))
fig, ax = plt.subplots(figsize=(7, 4.2))
for name, d, style in (
    ("in process (handle + SQLite)", inproc, "o-"),
    ("end to end over UDP (daemon)", e2e, "s-"),
    ("credential management: one RP's credentials (in process)", creds, "^-"),
):
    if not d:
        continue
    xs = sorted(d)
    ax.plot(xs, [d[x][0] for x in xs], style, label=f"{name}, p50")
    ax.plot(xs, [d[x][1] for x in xs], style.replace("-", ":"), alpha=0.5, label=f"{name}, p99")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("stored passkeys")
ax.set_ylabel("latency (ms)")
ax.set_title("LocalPasskey: latency vs number of stored passkeys (software custody)")
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
