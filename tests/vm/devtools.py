"""Headless Chromium on the demo relying party (rp/), driven over the DevTools protocol.

Shared by the browser suite (tests/vm/browser_tests.py, root in the VM that
mounts this machine's /) and the booted-system test (tests/system/guest.py,
Chromium run as the logged-in user of a Debian 12 guest), so that both drive
the browser the same way: Runtime.evaluate (awaitPromise) of the page's own
`lp.register()` / `lp.signIn()`, each a real navigator.credentials call with
an AbortSignal. Never the DevTools WebAuthn domain: it would replace the real
device with a virtual one, and the test would prove nothing about ours.

Needs websocket-client (`websocket`) on sys.path.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/lib/chromium/chromium"  # /usr/bin/chromium is a wrapper script
AAGUID = "cb8a205c-984c-4e7e-98eb-5800f04355ef"
JS_TIMEOUT_MS = 30000  # the AbortSignal of each successful ceremony


class JsonWebsocket:
    """Numbered JSON commands over a browser's websocket, each waiting for
    the message with its own id (events and other answers are skipped)."""

    def __init__(self, ws_url: str):
        import websocket  # websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=300, suppress_origin=True)
        self.next_id = 0

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                return msg

    def close(self) -> None:
        self.ws.close()


def save_screenshot(shots: Path, name: str, b64: str) -> Path:
    shots.mkdir(parents=True, exist_ok=True)
    path = shots / f"{len(list(shots.glob('*.png'))) + 1:02d}-{name}.png"
    path.write_bytes(base64.b64decode(b64))
    return path


class Cdp(JsonWebsocket):
    """The DevTools protocol over one page's websocket: commands only (events are skipped)."""

    def __init__(self, ws_url: str, shots: Path):
        super().__init__(ws_url)
        self.shots = shots

    def call(self, method: str, **params):
        if method.startswith("WebAuthn."):
            raise AssertionError("never the DevTools WebAuthn domain: it swaps the real device for a virtual one")
        msg = self.request(method, params)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg["result"]

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page exception: {json.dumps(r['exceptionDetails'])[:500]}")
        return r["result"].get("value")

    def screenshot(self, name: str) -> Path:
        return save_screenshot(self.shots, name, self.call("Page.captureScreenshot", format="png")["data"])


def http_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def wait_for(what: str, fn, timeout: float, every: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(every)
    raise TimeoutError(f"{what} not ready in {timeout:.0f}s (last error: {last})")


def chromium_argv(profile: Path, port: int) -> list[str]:
    return [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--remote-allow-origins=*", f"--remote-debugging-port={port}",
            f"--user-data-dir={profile}", "--window-size=1150,900",
            # Under TCG Chromium's GPU process dies with SIGSEGV several
            # times a run (measured 6 and 8), and after the sixth crash
            # Chromium exits ("GPU process isn't usable"). It restarts the GPU
            # process each time, so lift the limit; WebAuthn is not involved.
            "--disable-gpu-process-crash-limit",
            # Chromium's own FIDO log: what it asked the device and why.
            "--enable-logging=stderr", "--v=0", "--vmodule=device_event_log_impl=1",
            "about:blank"]


def launch_chromium(profile: Path, log: Path, port: int = 9222, **popen) -> subprocess.Popen:
    """Start headless Chromium, its output in `log`. `popen` goes to
    subprocess.Popen (user, group, env, cwd: whose browser this is)."""
    return subprocess.Popen(chromium_argv(profile, port), stdout=open(log, "wb"), stderr=subprocess.STDOUT, **popen)


def start_chromium(profile: Path, log: Path, shots: Path, origin: str, port: int = 9222,
                   **popen) -> tuple[subprocess.Popen, Cdp, str]:
    """launch_chromium, then open_page. Returns the process, the page's
    DevTools connection and the browser's version."""
    proc = launch_chromium(profile, log, port, **popen)
    cdp, browser = open_page(proc, log, shots, origin, port)
    return proc, cdp, browser


def open_page(proc: subprocess.Popen, log: Path, shots: Path, origin: str, port: int = 9222) -> tuple[Cdp, str]:
    """Wait for the DevTools endpoint of a launched Chromium, open the demo
    page at `origin` and wait until it is ready; stops Chromium if it never is."""

    def version():
        if proc.poll() is not None:
            raise RuntimeError(f"Chromium exited with {proc.returncode}: {log.read_text(errors='replace')[-800:]}")
        return http_json(f"http://127.0.0.1:{port}/json/version")

    try:
        browser = wait_for("Chromium's DevTools endpoint", version, 150).get("Browser", "?")
        page = wait_for("a page target", lambda: [t for t in http_json(f"http://127.0.0.1:{port}/json/list")
                                                   if t.get("type") == "page"], 30)[0]
        cdp = Cdp(page["webSocketDebuggerUrl"], shots)
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        cdp.call("Page.navigate", url=origin + "/")
        rp_id = origin.split("//", 1)[1].split(":", 1)[0]
        wait_for("the demo page", lambda: cdp.eval(
            f"document.readyState === 'complete' && !!window.lp "
            f"&& document.getElementById('rpid').textContent === {json.dumps(rp_id)}"), 60)
    except BaseException:
        stop(proc)
        raise
    return cdp, browser


def stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------- the demo page's API


def js_register(cdp, user: str, timeout_ms: int = JS_TIMEOUT_MS) -> dict:
    return cdp.eval(f"lp.register({json.dumps(user)}, {timeout_ms})")


def js_sign_in(cdp, user: str | None, timeout_ms: int = JS_TIMEOUT_MS) -> dict:
    return cdp.eval(f"lp.signIn({json.dumps(user)}, {timeout_ms})")


def expect_ok(r: dict) -> dict:
    """What the relying party verified (py_webauthn on the server), or why the page failed."""
    if not r.get("ok"):
        raise AssertionError(f"page result: {r.get('error')} after {r.get('ms')} ms")
    return r["server"]


def check_flags(s: dict) -> str:
    """Our promises as the relying party sees them: UP, UV, never BE/BS, our AAGUID, packed."""
    f = s["flags"]
    assert f["UP"] and f["UV"], f"UP/UV missing: {f}"
    assert not f["BE"] and not f["BS"], f"BE/BS must be 0: {f}"
    assert s["aaguid"] == AAGUID, s["aaguid"]
    assert s["fmt"] == "packed", s["fmt"]
    assert s["device_type"] == "single_device" and s["backed_up"] is False, s
    return f"UV=1 BE=0 BS=0 AAGUID {s['aaguid']} {s['fmt']}"


# Chromium's PIN screens (UI steps) and the clientPIN subcommands that mean
# "the browser has the PIN": getPinToken (5), setPIN (3), changePIN (4),
# getPinUvAuthTokenUsingPinWithPermissions (9). Built-in verification is
# getPinUvAuthTokenUsingUvWithPermissions (6).
PIN_STEPS = {"kClientPinEntry", "kClientPinSetup", "kClientPinChange"}
SUBCMD = re.compile(r"<- 0x6 \(kAuthenticatorClientPin\) \{1: \d+, 2: (\d+)")


def check_no_pin_screen(chromium_log: Path, fido_log: Path) -> str:
    """Chromium used our built-in user verification and never asked for the PIN itself
    (headless, nobody could type it there). Writes its FIDO lines to `fido_log`."""
    log = chromium_log.read_text(errors="replace")
    fido = [x[x.index("FIDO: "):] for x in log.splitlines() if "FIDO: " in x]
    fido_log.write_text("\n".join(fido) + "\n")
    steps = re.findall(r"UI step: (k\w+)", log)
    subcmds = [int(x) for x in SUBCMD.findall(log)]
    pin_steps = sorted(set(steps) & PIN_STEPS)
    assert not pin_steps, f"Chromium showed its PIN screen: {pin_steps}"
    with_pin = sorted(set(subcmds) & {3, 4, 5, 9})
    assert not with_pin, f"Chromium sent clientPIN subcommands that carry the PIN: {with_pin}"
    assert 6 in subcmds, f"Chromium never used built-in UV (getPinUvAuthTokenUsingUvWithPermissions): {subcmds}"
    uniq = sorted(set(steps))
    return (f"no PIN screen; built-in UV tokens (clientPIN 0x06) {subcmds.count(6)}x; "
            f"UI steps seen: {', '.join(uniq)}")
