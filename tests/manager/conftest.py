"""Fixtures: one desktop (Xvfb, a session bus, the accessibility bus) for the
whole run, and the real daemon on that bus with the software TPM."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "e2e"))
import lpk  # noqa: E402
import mgr  # noqa: E402


def pytest_report_header(config):
    b, m = lpk.binary(), mgr.manager_binary()
    return [
        f"localpasskey binary: {b} ({'present' if b.exists() else 'MISSING'})",
        f"localpasskey-manager binary: {m} ({'present' if m.exists() else 'MISSING'})",
    ]


def pytest_sessionstart(session):
    # Nothing may pass vacuously: a missing binary or tool fails the run.
    for b in (lpk.binary(), mgr.manager_binary()):
        if not b.exists():
            raise pytest.UsageError(f"{b} not found: run `cargo build -p localpasskey -p localpasskey-manager`")
    missing = mgr.missing_tools() + [t for t in ("swtpm", "tpm2_getcap") if shutil.which(t) is None]
    if missing:
        raise pytest.UsageError(f"missing {', '.join(missing)}: run scripts/install-deps.sh")


@pytest.fixture(scope="session")
def desktop(tmp_path_factory):
    bus = lpk.SessionBus().start()
    d = mgr.Desktop(tmp_path_factory.mktemp("desktop"), bus)
    yield d
    d.stop()
    bus.stop()


class Daemons:
    """Starts `localpasskey run --transport udp` with TPM custody (its own
    swtpm) serving its manager API on the desktop's session bus."""

    def __init__(self, desktop, root: Path):
        self.desktop = desktop
        self.root = root
        self.started: list[lpk.Daemon] = []
        self.tpms: list[lpk.Swtpm] = []

    def make(self, start: bool = True) -> lpk.Daemon:
        n = len(self.started)
        tpm = lpk.Swtpm(self.root / f"tpm{n}").start()
        self.tpms.append(tpm)
        d = lpk.Daemon(self.root / f"d{n}", custody="tpm", tpm=tpm, bus=self.desktop.bus.address)
        self.started.append(d)
        if start:
            d.start()
        return d

    def stop(self) -> None:
        for d in self.started:
            d.stop()
        for t in self.tpms:
            t.stop()


@pytest.fixture(scope="module")
def daemons(desktop, tmp_path_factory):
    ds = Daemons(desktop, tmp_path_factory.mktemp("daemons"))
    yield ds
    ds.stop()


@pytest.fixture(scope="module")
def api(desktop):
    """An independent client of the same API (jeepney), to check what the app shows."""
    m = lpk.bus.Manager(desktop.bus.address)
    yield m
    m.close()
