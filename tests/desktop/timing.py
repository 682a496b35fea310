"""What a person waits for, under Xvfb: figures for scripts/bench.sh, not a test.

For each prompt (the desktop dialog, and pinentry-gtk-2 when installed) and
each ceremony, a daemon on the TPM custody (its own swtpm) is asked by
python-fido2 over the UDP simulation, exactly as in test_daemon_prompt.py:

* request to prompt: from the CTAP call leaving the client to the prompt's
  window being mapped on the X server (found by polling `xdotool search`,
  a few ms per poll: that is the resolution);
* click to answer: from the moment the Return key press is sent (xdotool
  started) to the client holding the answer; this includes the PIN check in
  the TPM and the signature, and xdotool's own start-up (a few ms), so it is
  an upper bound.

Every answer is checked (UP and UV set), so a broken prompt ends the run
with an error instead of a figure. Nothing here is asserted about time.

Usage: timing.py ROUNDS  (LOCALPASSKEY_BIN: the daemon; its
localpasskey-prompt is the one next to it, as in an installation).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "e2e"))
import desk  # noqa: E402
import lpk  # noqa: E402

PIN = "246810"
RP = {"id": "example.com", "name": "Example"}
ES256_ONLY = [{"type": "public-key", "alg": -7}]
# The dialog takes no keys for its first moments (a key already held down
# must not answer it); a person cannot react sooner anyway.
ARMED = 1.2


class Timed:
    """One CTAP call in a thread, remembering when it returned."""

    def __init__(self, fn, *args, **kw):
        self.result = None
        self.error: BaseException | None = None
        self.finished: float | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(fn, args, kw), daemon=True)
        self.thread.start()

    def _run(self, fn, args, kw):
        try:
            self.result = fn(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - reported by wait()
            self.error = e
        self.finished = time.monotonic()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def outcome(self) -> str:
        return repr(self.error) if self.error is not None else "success"

    def wait(self, timeout: float = 60.0):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError("the CTAP call did not finish")
        if self.error is not None:
            raise self.error
        return self.result


def wait_mapped(x: desk.Xvfb, call: Timed, name: str, timeout: float = 30.0) -> tuple[str, float]:
    """The window id and when it was first seen mapped, polling without sleeping."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = x.windows(name)
        if found:
            return found[-1], time.monotonic()
        if call.done():
            raise RuntimeError(f"no prompt appeared; the call ended with {call.outcome()}")
    raise RuntimeError(f"no window named {name!r} within {timeout} s")


def stats(name: str, samples: list[float]) -> None:
    s = sorted(samples)
    at = lambda q: s[round((len(s) - 1) * q)] * 1e3  # noqa: E731
    print(f"RESULT name={name} n={len(s)} p50_ms={at(0.5):.1f} p99_ms={at(0.99):.1f} "
          f"min_ms={s[0] * 1e3:.1f} max_ms={s[-1] * 1e3:.1f}", flush=True)


def one(x: desk.Xvfb, ctap2, ceremony: str, window: str) -> tuple[float, float]:
    _, cdh = lpk.client_data_hash()
    if ceremony == "make_credential":
        # One account, registered again each round (a discoverable
        # credential replaces the last one for the same user): with several,
        # the sign-in would list them in the prompt and wait for a pick.
        user = {"id": b"pat-timing", "name": "pat", "displayName": "Pat"}
        call = Timed(ctap2.make_credential, cdh, RP, user, ES256_ONLY, options={"rk": True})
    else:
        call = Timed(ctap2.get_assertion, RP["id"], cdh)
    wid, shown = wait_mapped(x, call, window)
    x.xdo("windowfocus", "--sync", wid, check=False)
    time.sleep(ARMED)
    x.type(PIN)
    click = time.monotonic()
    x.xdo("key", "Return")
    answer = call.wait()
    flags = answer.auth_data.is_user_present(), answer.auth_data.is_user_verified()
    if flags != (True, True):
        raise RuntimeError(f"{ceremony}: UP/UV = {flags}")
    x.wait_no_window(name=window)
    return shown - call.started, call.finished - click


def run(x: desk.Xvfb, work: Path, prompt: str, rounds: int, window: str) -> None:
    tpm = lpk.Swtpm(work / f"tpm-{prompt}").start()
    d = lpk.Daemon(work / prompt, presence=prompt, pin=None, custody="tpm", tpm=tpm)
    try:
        d.start()
        r = subprocess.run(
            [str(lpk.binary()), "pin", "set", "--to", f"127.0.0.1:{d.port}", "--pin-stdin"],
            input=f"{PIN}\n{PIN}\n", capture_output=True, text=True, timeout=60,
        )
        if r.returncode != 0:
            raise RuntimeError(f"pin set: {r.stderr}")
        ctap2 = d.ctap2()
        for ceremony in ("make_credential", "get_assertion"):
            shown, answered = [], []
            for _ in range(rounds):
                a, b = one(x, ctap2, ceremony, window)
                shown.append(a)
                answered.append(b)
            stats(f"{prompt}_{ceremony}_request_to_prompt_on_screen", shown)
            stats(f"{prompt}_{ceremony}_click_to_answer", answered)
    finally:
        d.stop()
        tpm.stop()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if desk.missing_tools():
        raise SystemExit(f"missing {', '.join(desk.missing_tools())}")
    x = desk.Xvfb()
    work = Path(tempfile.mkdtemp(prefix="lpk-desktop-timing-"))
    saved = dict(os.environ)
    try:
        for k in ("WAYLAND_DISPLAY", "LOCALPASSKEY_PROMPT", "PINENTRY_PROGRAM"):
            os.environ.pop(k, None)
        for k in ("DISPLAY", "GDK_BACKEND", "GTK_A11Y", "NO_AT_BRIDGE"):
            os.environ[k] = x.env[k]
        os.environ["LOCALPASSKEY_LOG"] = "info"
        run(x, work, "desktop", rounds, "^LocalPasskey")
        gtk = shutil.which("pinentry-gtk-2")
        if gtk:
            os.environ["PINENTRY_PROGRAM"] = gtk
            run(x, work, "pinentry", rounds, "^LocalPasskey")
        else:
            print("# pinentry-gtk-2 is not installed: no pinentry figures", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        x.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
