"""Fixtures: one fresh daemon per test, with its stderr attached to failures."""

from __future__ import annotations

import pytest

import lpk


def pytest_report_header(config):
    b = lpk.binary()
    return [f"localpasskey binary: {b} ({'present' if b.exists() else 'MISSING'})"]


def pytest_sessionstart(session):
    # No binary, no suite: fail loudly instead of skipping (nothing may pass vacuously).
    if not lpk.binary().exists():
        raise pytest.UsageError(
            f"localpasskey binary not found at {lpk.binary()}: run `cargo build` or set LOCALPASSKEY_BIN"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        daemons = getattr(item, "_lpk_daemons", [])
        for i, d in enumerate(daemons):
            title = "localpasskey stderr" + (f" (daemon {i})" if len(daemons) > 1 else "")
            rep.sections.append((title, d.stderr() or "(empty)"))


@pytest.fixture
def make_daemon(request, tmp_path):
    """Factory: make_daemon(presence_timeout_ms=..., start=True, name=...)."""
    daemons: list[lpk.Daemon] = []
    request.node._lpk_daemons = daemons

    def make(name: str = "d", start: bool = True, **kw) -> lpk.Daemon:
        d = lpk.Daemon(tmp_path / f"{name}{len(daemons)}", **kw)
        daemons.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in daemons:
        d.stop()


@pytest.fixture
def daemon(make_daemon) -> lpk.Daemon:
    """A running daemon with a fresh data dir; presence approves unless a test queues answers."""
    return make_daemon()


@pytest.fixture
def rp() -> lpk.RelyingParty:
    return lpk.RelyingParty("example.com")
