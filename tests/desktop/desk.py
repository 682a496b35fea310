"""Helpers for the desktop-prompt tests: a private X server (Xvfb), the real
`localpasskey-prompt`, and xdotool to press its keys like a person would.

Nothing here fakes the dialog: GTK draws it on Xvfb, the keys are X events
from the XTEST extension (what a real keyboard produces), and the answer is
read from the program's stdout exactly as the daemon reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "test-output"

TOOLS = ("Xvfb", "xdotool", "import")


def prompt_binary() -> Path:
    b = Path(os.environ.get("LOCALPASSKEY_PROMPT_BIN", REPO / "target/debug/localpasskey-prompt"))
    return b if b.is_absolute() else REPO / b


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


class Xvfb:
    """A private X server; `env` is what its clients need."""

    def __init__(self, width: int = 1024, height: int = 768):
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp", "-noreset"],
            pass_fds=(w,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(w)
        # Xvfb writes the display number it picked once it accepts clients.
        data = b""
        deadline = time.monotonic() + 20
        while not data.endswith(b"\n"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("Xvfb did not start")
            chunk = os.read(r, 16)
            if not chunk:
                break
            data += chunk
        os.close(r)
        self.display = f":{int(data.strip())}"
        env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "DISPLAY")}
        env.update(
            DISPLAY=self.display,
            GDK_BACKEND="x11",
            # No session bus in CI: keep GTK from looking for the
            # accessibility bus and printing a warning per dialog.
            GTK_A11Y="none",
            NO_AT_BRIDGE="1",
        )
        self.env = env

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # ---- xdotool

    def xdo(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=20)
        if check and r.returncode != 0:
            raise AssertionError(f"xdotool {' '.join(args)} failed: {r.stderr}")
        return r.stdout

    def windows(self, name: str = "^LocalPasskey") -> list[str]:
        out = self.xdo("search", "--onlyvisible", "--name", name, check=False)
        return out.split()

    def wait_window(self, timeout: float = 20.0, name: str = "^LocalPasskey", waiting=None) -> str:
        """The dialog's window id, as soon as it is on screen, with the keyboard focus.

        `waiting`: something with `done()`; if it finishes first, no dialog is coming.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if waiting is not None and waiting.done():
                raise AssertionError(f"no dialog appeared, and the call ended with: {waiting.outcome()}")
            found = self.windows(name)
            if found:
                wid = found[-1]
                # No window manager here: give it the focus as one would.
                self.xdo("windowfocus", "--sync", wid, check=False)
                return wid
            time.sleep(0.02)
        raise AssertionError(f"no window named {name!r} appeared within {timeout} s")

    def wait_no_window(self, timeout: float = 5.0, name: str = "^LocalPasskey") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.windows(name):
                return
            time.sleep(0.05)
        raise AssertionError(f"a window named {name!r} is still on screen after {timeout} s")

    def keys(self, *keys: str) -> None:
        self.xdo("key", "--delay", "80", *keys)

    def type(self, text: str) -> None:
        self.xdo("type", "--delay", "60", text)

    def screenshot(self, wid: str, name: str) -> Path:
        """Saves the window (or "root") to test-output/NAME.png."""
        OUT.mkdir(exist_ok=True)
        path = OUT / f"{name}.png"
        subprocess.run(["import", "-window", wid, str(path)], env=self.env, check=True, timeout=30,
                       capture_output=True)
        return path


class Prompt:
    """One run of the real dialog."""

    def __init__(self, x: Xvfb | None, request: dict, env: dict | None = None):
        self.request = request
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(prompt_binary())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env if env is not None else x.env,
        )
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.close()
        self.proc.stdin = None  # communicate() must not flush it again

    def result(self, timeout: float = 20.0) -> tuple[int, str, str]:
        """(exit status, stdout, stderr)."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the dialog did not answer within {timeout} s; stderr:\n{err.decode()}")
        return self.proc.returncode, out.decode(), err.decode()

    def answer(self, timeout: float = 20.0) -> dict:
        rc, out, err = self.result(timeout)
        assert rc == 0, f"the dialog exited {rc}; stderr:\n{err}"
        lines = out.splitlines()
        assert len(lines) == 1 and out.endswith("\n"), f"expected one JSON line, got {out!r}"
        return json.loads(lines[0])

    def still_open(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
