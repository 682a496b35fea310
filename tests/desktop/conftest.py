"""Fixtures: one private X server for the whole run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import desk  # noqa: E402


def pytest_report_header(config):
    b = desk.prompt_binary()
    return [f"localpasskey-prompt binary: {b} ({'present' if b.exists() else 'MISSING'})"]


def pytest_sessionstart(session):
    # Nothing may pass vacuously: no binary or no X tools is a failure, not a skip.
    if not desk.prompt_binary().exists():
        raise pytest.UsageError(
            f"localpasskey-prompt not found at {desk.prompt_binary()}: run `cargo build --workspace`"
        )
    if desk.missing_tools():
        raise pytest.UsageError(
            f"missing {', '.join(desk.missing_tools())}: run scripts/install-deps.sh"
        )


@pytest.fixture(scope="session")
def x():
    server = desk.Xvfb()
    yield server
    server.stop()


@pytest.fixture
def prompts(x):
    """Factory for dialogs; any still open at the end are killed."""
    started: list[desk.Prompt] = []

    def make(request: dict, env: dict | None = None) -> desk.Prompt:
        p = desk.Prompt(x, request, env)
        started.append(p)
        return p

    yield make
    for p in started:
        p.kill()
    x.wait_no_window()
