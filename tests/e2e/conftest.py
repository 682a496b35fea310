"""Fixtures: one fresh daemon per test, with its stderr attached to failures.

Every test that uses a daemon runs twice, once per key custody:
  [tpm]  `--custody tpm` with its own swtpm (keys created in the TPM, the PIN
         checked by the TPM through the vault's authValue), and
  [soft] `--custody insecure-software` (software keys; same protocol logic).
`@pytest.mark.custody("tpm")` restricts a test to the custodies named.
"""

from __future__ import annotations

import shutil

import pytest

import lpk

CUSTODIES = ("tpm", "soft")


def pytest_report_header(config):
    b = lpk.binary()
    tools = {t: shutil.which(t) for t in ("swtpm", "tpm2_dictionarylockout", "tpm2_flushcontext", "tpm2_print")}
    return [
        f"localpasskey binary: {b} ({'present' if b.exists() else 'MISSING'})",
        "custodies: " + ", ".join(CUSTODIES) + " (every daemon test runs once per custody)",
        f"transport: {lpk.TRANSPORT} (LPK_TRANSPORT)",
        "TPM tools: " + ", ".join(f"{t} {'ok' if p else 'MISSING'}" for t, p in tools.items()),
    ]


def pytest_sessionstart(session):
    # No binary or no swtpm, no suite: fail loudly instead of skipping (nothing may pass vacuously).
    if not lpk.binary().exists():
        raise pytest.UsageError(
            f"localpasskey binary not found at {lpk.binary()}: run `cargo build` or set LOCALPASSKEY_BIN"
        )
    missing = [t for t in ("swtpm", "tpm2_dictionarylockout", "tpm2_flushcontext", "tpm2_print", "tpm2_getcap")
               if shutil.which(t) is None]
    if missing:
        raise pytest.UsageError(f"missing {', '.join(missing)}: run scripts/install-deps.sh (swtpm, tpm2-tools)")


def pytest_collection_modifyitems(config, items):
    """Leave out the tests that need another transport (named in the summary, never counted as passed)."""
    kept, left_out = [], []
    for item in items:
        marker = item.get_closest_marker("transport")
        if marker is None or lpk.TRANSPORT in marker.args:
            kept.append(item)
        else:
            left_out.append(item)
            config._lpk_left_out.append((item.nodeid, marker.kwargs.get("reason", "")))
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def pytest_configure(config):
    config._lpk_left_out = []


def pytest_sessionfinish(session):
    # Under xdist the workers collect: hand the left-out list to the controller.
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["lpk_left_out"] = session.config._lpk_left_out


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    seen = node.config._lpk_left_out
    for entry in getattr(node, "workeroutput", {}).get("lpk_left_out", []):
        if tuple(entry) not in seen:
            seen.append(tuple(entry))


def pytest_generate_tests(metafunc):
    if "custody" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("custody")
        params = list(marker.args) if marker else list(CUSTODIES)
        for p in params:
            assert p in CUSTODIES, f"unknown custody {p!r} in {metafunc.definition.nodeid}"
        metafunc.parametrize("custody", params)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        daemons = getattr(item, "_lpk_daemons", [])
        for i, d in enumerate(daemons):
            title = "localpasskey stderr" + (f" (daemon {i}, {d.custody})" if len(daemons) > 1 else f" ({d.custody})")
            rep.sections.append((title, d.stderr() or "(empty)"))


@pytest.fixture
def make_swtpm(request, tmp_path):
    """Factory: a started swtpm, stopped at teardown (after the daemons)."""
    tpms: list[lpk.Swtpm] = []

    def make() -> lpk.Swtpm:
        t = lpk.Swtpm(tmp_path / f"tpm{len(tpms)}")
        tpms.append(t)
        return t.start()

    yield make
    for t in tpms:
        t.stop()


@pytest.fixture
def make_daemon(request, tmp_path, custody, make_swtpm):
    """Factory: make_daemon(presence_timeout_ms=..., start=True, name=..., pin=lpk.PIN, tpm=...).

    With TPM custody every daemon gets its own swtpm unless `tpm=` names one
    (a daemon that must open another's data dir needs that daemon's TPM).
    `pin=None`: no PIN is set.
    """
    daemons: list[lpk.Daemon] = []
    request.node._lpk_daemons = daemons

    def make(name: str = "d", start: bool = True, custody: str = custody, tpm: lpk.Swtpm | None = None,
             **kw) -> lpk.Daemon:
        if custody == "tpm" and tpm is None:
            tpm = make_swtpm()
        d = lpk.Daemon(tmp_path / f"{name}{len(daemons)}", custody=custody, tpm=tpm, **kw)
        daemons.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in daemons:
        d.stop()


@pytest.fixture
def daemon(make_daemon) -> lpk.Daemon:
    """A running daemon with a fresh data dir and the PIN lpk.PIN set; presence
    (and the scripted verification prompt) approves unless a test queues answers."""
    return make_daemon()


@pytest.fixture
def rp() -> lpk.RelyingParty:
    return lpk.RelyingParty("example.com")


def _custody_of(nodeid: str) -> str:
    params = nodeid.partition("[")[2].rstrip("]").split("-") if "[" in nodeid else []
    return next((p for p in params if p in CUSTODIES), "-")


def pytest_terminal_summary(terminalreporter):
    """What ran: outcomes per test file and per custody (also under xdist)."""
    worst: dict[str, str] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
    for outcome in rank:
        for rep in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(rep, "nodeid", "")
            if not nodeid or "::" not in nodeid:
                continue
            if outcome == "passed" and getattr(rep, "when", "call") != "call":
                continue
            if rank[outcome] >= rank.get(worst.get(nodeid, "passed"), 0) or nodeid not in worst:
                worst[nodeid] = outcome
    if not worst:
        return
    table: dict[tuple[str, str], dict[str, int]] = {}
    for nodeid, outcome in worst.items():
        key = (nodeid.split("::")[0].rsplit("/", 1)[-1], _custody_of(nodeid))
        table.setdefault(key, {}).setdefault(outcome, 0)
        table[key][outcome] += 1
    tr = terminalreporter
    tr.section("LocalPasskey e2e: what ran (per file and key custody)")
    tr.write_line(f"  {'file':<26} {'custody':<8} {'passed':>7} {'failed':>7} {'error':>6} {'skipped':>8}")
    totals = {k: 0 for k in rank}
    for (f, c), counts in sorted(table.items()):
        tr.write_line(f"  {f:<26} {c:<8} {counts.get('passed', 0):>7} {counts.get('failed', 0):>7} "
                      f"{counts.get('error', 0):>6} {counts.get('skipped', 0):>8}")
        for k in rank:
            totals[k] += counts.get(k, 0)
    for c in CUSTODIES:
        n = sum(v.get("passed", 0) for (f, cc), v in table.items() if cc == c)
        tr.write_line(f"  custody {c}: {n} passed")
    tr.write_line(f"  total: {totals['passed']} passed, {totals['failed']} failed, {totals['error']} errors, "
                  f"{totals['skipped']} skipped")
    left_out = getattr(terminalreporter.config, "_lpk_left_out", [])
    if left_out:
        tr.write_line(f"  left out on transport {lpk.TRANSPORT} ({len(left_out)}, they need another transport):")
        for nodeid, reason in left_out:
            tr.write_line(f"    {nodeid}: {reason}")
