"""Real browsers register and sign in with LocalPasskey over uhid.

Runs inside the throw-away VM of tests/vm (see tests/vm/browser.sh): a
kernel with uhid, the host's tree read-only, /tmp a fresh tmpfs, results in
--out. It starts swtpm and `localpasskey run --transport uhid --custody tpm
--presence script:FILE --script-pin PIN` (the helpers of guest_tests.py),
sets the PIN through python-fido2 (so the browser finds a PIN already set),
starts the demo relying party (rp/, py_webauthn verifies every response on
the server) on http://localhost:8080, then starts headless Chromium and
drives the page over the DevTools protocol with Runtime.evaluate only
(awaitPromise) -- never the DevTools WebAuthn domain, which would replace the
real device with a virtual one. Each ceremony is a real
navigator.credentials.create()/get() on the page, with an AbortSignal.

With Firefox selected (LPK_BROWSERS, set by tests/vm/browser.sh from
FIREFOX_TESTS), headless Firefox ESR runs a smaller set afterwards, driven
over WebDriver BiDi (session, browsingContext and script.evaluate with
awaitPromise on the websocket of --remote-debugging-port) -- again never a
virtual authenticator.

After each ceremony a screenshot of the page goes to OUT/screenshots/.
Chromium's FIDO log (device_event_log) is in OUT/chromium.log; the test
fails if Chromium ever asked for the PIN itself (it must use our built-in
user verification). OUT/compat.json records browser, version, date and
each ceremony's result (scripts/update-compat.py turns it into the README's
table). Ends with "browser: N passed, M failed".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
import guest_tests as gt  # noqa: E402  (swtpm + daemon helpers, presence script)
from devtools import (  # noqa: E402  (the DevTools driver tests/system uses too)
    Cdp, JsonWebsocket, check_flags, expect_ok, http_json, js_register, js_sign_in, save_screenshot, wait_for,
)
import devtools  # noqa: E402

RP_PORT = 8080
ORIGIN = f"http://localhost:{RP_PORT}"
CDP_PORT = 9222
FIREFOX = "/usr/lib/firefox-esr/firefox-esr"
BIDI_PORT = 9223
FAIL_TIMEOUT_MS = 10000  # the AbortSignal of a ceremony that is expected to fail

ARGS = argparse.Namespace()
RESULTS: list[dict] = []  # {browser, ceremony, status, detail, seconds}
STATE: dict = {}


def say(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------ WebDriver BiDi client


class Bidi(JsonWebsocket):
    """WebDriver BiDi over Firefox's websocket: session, browsingContext and
    script only (no virtual authenticator exists there, and none is used)."""

    def __init__(self, ws_url: str):
        super().__init__(ws_url)
        self.context = ""

    def call(self, method: str, **params):
        if "authenticator" in method.lower() or method.lower().startswith("webauthn"):
            raise AssertionError("never a virtual authenticator: the real device must answer")
        msg = self.request(method, params)
        if msg.get("type") == "error":
            raise RuntimeError(f"{method}: {msg.get('error')}: {msg.get('message')}")
        return msg["result"]

    def eval(self, expr: str):
        # The page's result objects go back as JSON text: BiDi's own value
        # serialisation would need unpacking, a string does not.
        r = self.call("script.evaluate", expression=f"(async () => JSON.stringify(await ({expr})))()",
                      target={"context": self.context}, awaitPromise=True, resultOwnership="none")
        if r.get("type") == "exception":
            raise RuntimeError(f"page exception: {json.dumps(r.get('exceptionDetails'))[:500]}")
        return json.loads(r["result"]["value"])

    def screenshot(self, name: str) -> Path:
        return save_screenshot(ARGS.out / "screenshots", name,
                               self.call("browsingContext.captureScreenshot", context=self.context)["data"])


# ---------------------------------------------------------------- services


def set_pin() -> str:
    """The browser must find a PIN already set: set it like any FIDO2 tool would."""
    from fido2.ctap2 import Ctap2
    from fido2.ctap2.pin import ClientPin

    dev = gt.fido2_device()
    try:
        ctap = Ctap2(dev)
        ClientPin(ctap).set_pin(gt.PIN)
        info = Ctap2(dev).get_info()
    finally:
        dev.close()
    opts = info.options
    assert opts.get("clientPin") is True, opts
    assert opts.get("uv") is True, f"GetInfo must advertise built-in uv: {opts}"
    assert opts.get("alwaysUv") is True, opts
    return ", ".join(f"{k}={v}" for k, v in sorted(opts.items()))


def start_rp() -> None:
    log = open(ARGS.out / "rp.log", "wb")
    STATE["rp"] = subprocess.Popen(
        [sys.executable, "-B", "-m", "lprp", "--port", str(RP_PORT), "--db", str(gt.WORK / "rp-credentials.json")],
        cwd=ROOT / "rp", stdout=log, stderr=subprocess.STDOUT)
    wait_for("the demo relying party", lambda: http_json(f"http://127.0.0.1:{RP_PORT}/api/state"), 30)


def start_chromium() -> Cdp:
    proc, cdp, STATE["browser_version"] = devtools.start_chromium(
        gt.WORK / "chromium-profile", ARGS.out / "chromium.log", ARGS.out / "screenshots", ORIGIN, CDP_PORT)
    STATE["chromium"] = proc
    return cdp


# -------------------------------------------------------------- ceremonies


class Blocked(Exception):
    """The browser stopped at a dialog headless mode cannot answer (not a pass, not our failure)."""


def chromium_ui_steps(since: int) -> list[str]:
    log = (ARGS.out / "chromium.log").read_text(errors="replace")[since:]
    return re.findall(r"UI step: (k\w+)", log)


def log_mark() -> int:
    return len((ARGS.out / "chromium.log").read_text(errors="replace"))


def record(browser: str, ceremony: str, fn) -> dict | None:
    t0 = time.monotonic()
    try:
        detail = fn() or ""
        status = "PASS"
    except Blocked as e:
        status, detail = "BLOCKED", str(e)
    except Exception as e:  # noqa: BLE001 - a ceremony's failure is data
        status, detail = "FAIL", f"{type(e).__name__}: {e}"
        traceback.print_exc(file=sys.stdout)
    dt = time.monotonic() - t0
    shot = ""
    if STATE.get("driver"):
        try:
            shot = STATE["driver"].screenshot(f"{browser.lower()}-{ceremony}").name
        except Exception as e:  # noqa: BLE001
            shot = f"(no screenshot: {e})"
    RESULTS.append({"browser": browser, "ceremony": ceremony, "status": status, "detail": detail,
                    "seconds": round(dt, 1), "screenshot": shot})
    say(f"{status:5} [{browser}] {ceremony} ({dt:.1f}s): {detail}" + (f" [{shot}]" if shot else ""))
    return None


def register(cdp: Cdp, user: str) -> str:
    r = js_register(cdp, user)
    s = expect_ok(r)
    assert s["user"] == user, s
    assert s["attestation_type"] == "self", s["attestation_type"]
    STATE.setdefault("creds", {})[user] = s["credential_id"]
    return f"server verified: {check_flags(s)} ({s['attestation_type']} attestation), sign count {s['sign_count']}, " \
           f"transports {s['transports']}; {r['ms']} ms"


def sign_in(cdp: Cdp, user: str | None, expect_user: str) -> str:
    r = js_sign_in(cdp, user)
    s = expect_ok(r)
    assert s["user"] == expect_user, f"signed in as {s['user']}, wanted {expect_user}"
    assert s["credential_id"] == STATE["creds"][expect_user], s
    assert s["sign_count"] > s["previous_sign_count"], s
    return f"server verified signature as {s['user']}: {check_flags(s)}, sign count " \
           f"{s['previous_sign_count']} -> {s['sign_count']}; {r['ms']} ms"


def expect_error(r: dict, names: tuple[str, ...]) -> str:
    assert not r.get("ok"), f"succeeded: {r.get('server')}"
    err = r["error"]
    assert err["name"] in names, f"{err['name']}: {err['message']} (wanted {' or '.join(names)})"
    return f"{err['name']} after {r['ms']} ms ({err['message'][:90]})"


def localpasskey(*args: str) -> str:
    return gt.run([gt.ARGS.bin, "--data-dir", str(gt.WORK / "data"), *args]).stdout


def username_less(cdp, expect_user: str, browser: str = "Chromium") -> str:
    """No allowCredentials. With one passkey for the site, the daemon's prompt
    names that account; with several, it lists them and the (scripted)
    person picks one. Either way the answer is one credential with
    userSelected, so the browser has no account to ask for. Had the daemon
    left the choice to the browser, Chromium would show its account chooser
    (UI step kSelectAccount), which headless mode cannot click: the page's
    signal would end the call, and that is BLOCKED."""
    mark = log_mark() if browser == "Chromium" else 0
    r = js_sign_in(cdp, None, FAIL_TIMEOUT_MS)
    if r.get("ok"):
        s = r["server"]
        assert s["user"] == expect_user and s["username_less"], s
        assert s["sign_count"] > s["previous_sign_count"], s
        if browser == "Chromium":
            steps = chromium_ui_steps(mark)
            assert "kSelectAccount" not in steps, f"Chromium showed its own account chooser: {steps}"
        return f"server verified signature as {s['user']} (username-less): {check_flags(s)}, sign count " \
               f"{s['previous_sign_count']} -> {s['sign_count']}; {r['ms']} ms"
    steps = chromium_ui_steps(mark) if browser == "Chromium" else []
    err = r["error"]
    if "kSelectAccount" in steps and err["name"] in ("AbortError", "TimeoutError"):
        raise Blocked(f"the authenticator answered; Chromium then waited at its account chooser (UI steps "
                      f"{' > '.join(steps)}) until the page's signal fired: {err['name']} after {r['ms']} ms")
    raise AssertionError(f"{err['name']}: {err['message']} after {r['ms']} ms; UI steps {steps}")


def username_less_choosing(drv, n: int, expect_user: str, shown: str, browser: str = "Chromium") -> str:
    """Several passkeys, no allowCredentials: the daemon's prompt lists
    them (`shown`, most recent first) and the scripted person picks the
    n-th (`choose n`); the site must get exactly that account."""
    mark = len((ARGS.out / "daemon.log").read_text(errors="replace"))
    gt.presence(f"choose {n}")
    try:
        out = username_less(drv, expect_user, browser)
    finally:
        left = gt.presence_left()
        gt.presence()
    assert not left, f"the daemon never asked for the pick: {left} left"
    daemon = (ARGS.out / "daemon.log").read_text(errors="replace")[mark:]
    lists = re.findall(r'scripted \w+ rp="localhost" .*?step="choose" accounts=("[^"]*")', daemon)
    assert lists == [f'"{shown}"'], f"the prompt's lists: {lists}"
    return f"our prompt listed {shown}, picked #{n}; " + out


def presence_refused(drv, browser: str, user: str) -> str:
    """The daemon's prompt refuses (scripted "deny"): the page must get
    NotAllowedError, and the browser must not hang."""
    gt.presence(*["deny"] * 6)
    mark = log_mark() if browser == "Chromium" else 0
    try:
        r = js_sign_in(drv, user, FAIL_TIMEOUT_MS)
    finally:
        left = gt.presence_left()
        gt.presence()
    assert len(left) < 6, "the daemon never asked"
    assert not r.get("ok"), f"succeeded although the prompt refused: {r.get('server')}"
    err = r["error"]
    if err["name"] == "NotAllowedError":
        return f"{6 - len(left)} prompt(s) refused -> NotAllowedError after {r['ms']} ms"
    if browser != "Chromium":
        raise AssertionError(f"{err['name']}: {err['message']} after {r['ms']} ms (wanted NotAllowedError)")
    # Measured with Chromium 156: the refusal reaches Chromium as
    # CTAP2_ERR_OPERATION_DENIED (0x27) to getPinUvAuthTokenUsingUvWithPermissions,
    # the code CTAP 2.1 gives a user who declines. Chromium's own code
    # reads it as the user's refusal (device/fido/auth_token_requester.cc:
    # kPostTouchAuthenticatorOperationDenied -> GetAssertionStatus::
    # kUserConsentDenied -> NOT_ALLOWED_ERROR in
    # content/browser/webauth/authenticator_common_impl.cc), but its
    # desktop UI first shows an error sheet (AuthenticatorRequestDialog
    # Controller::OnUserConsentDenied -> Step::kErrorInternalUnrecognized)
    # and holds the request (DoesBlockRequestOnFailure) until a person
    # closes it. Headless mode has nobody to close it, so the promise
    # only ends with the page's signal.
    log = (ARGS.out / "chromium.log").read_text(errors="replace")[mark:]
    steps = chromium_ui_steps(mark)
    if "kErrorInternalUnrecognized" in steps and "kCtap2ErrOperationDenied" in log \
            and err["name"] in ("AbortError", "TimeoutError"):
        raise Blocked(f"{6 - len(left)} prompt(s) refused; the daemon answered CTAP2_ERR_OPERATION_DENIED (the "
                      f"CTAP 2.1 code for a declined prompt) to getPinUvAuthTokenUsingUvWithPermissions; Chromium "
                      f"maps it to kUserConsentDenied (NotAllowedError) but first shows its error sheet "
                      f"({' > '.join(steps)}) and waits for a click there; the page got {err['name']} from its "
                      f"signal after {r['ms']} ms")
    raise AssertionError(f"{err['name']}: {err['message']} after {r['ms']} ms; UI steps {steps}")


def chromium(cdp: Cdp) -> None:
    b = "Chromium"
    record(b, "register-alice", lambda: register(cdp, "alice"))
    record(b, "sign-in-username-less", lambda: username_less(cdp, "alice"))
    record(b, "sign-in-allowCredentials", lambda: sign_in(cdp, "alice", "alice"))
    record(b, "register-bob", lambda: register(cdp, "bob"))

    # Two accounts: a username-less sign-in lists both in our prompt (most
    # recent first) and the person picks one there, so Chromium never shows
    # its own chooser; then each account by allowCredentials (the site asks
    # for the user name first).
    record(b, "sign-in-username-less-two-accounts",
           lambda: username_less_choosing(cdp, 2, "alice", "bob|alice"))
    record(b, "sign-in-username-less-two-accounts-first",
           lambda: username_less_choosing(cdp, 1, "bob", "bob|alice"))
    record(b, "sign-in-choose-alice", lambda: sign_in(cdp, "alice", "alice"))
    record(b, "sign-in-choose-bob", lambda: sign_in(cdp, "bob", "bob"))

    def delete_bob():
        creds = json.loads(localpasskey("list", "--json"))
        bob = [c for c in creds if c["rp_id"] == "localhost" and c["user_name"] == "bob"]
        assert len(bob) == 1, creds
        out = localpasskey("delete", bob[0]["credential_id"][:12])
        left = json.loads(localpasskey("list", "--json"))
        assert not [c for c in left if c["user_name"] == "bob" and c["rp_id"] == "localhost"], left
        return out.strip()

    record("localpasskey", "delete-bob", delete_bob)

    def deleted_fails():
        r = js_sign_in(cdp, "bob", FAIL_TIMEOUT_MS)
        return "no signature from the deleted passkey: " + expect_error(
            r, ("NotAllowedError", "AbortError", "TimeoutError", "InvalidStateError"))

    record(b, "sign-in-deleted-bob-fails", deleted_fails)
    record(b, "sign-in-username-less-after-delete", lambda: username_less(cdp, "alice"))

    record(b, "presence-refused", lambda: presence_refused(cdp, b, "alice"))
    record(b, "sign-in-after-refusal", lambda: sign_in(cdp, "alice", "alice"))


# ------------------------------------------------------------------ Firefox


def start_firefox() -> Bidi:
    profile = gt.WORK / "firefox-profile"
    profile.mkdir(parents=True, exist_ok=True)
    # Firefox asks the person before it passes a "direct" attestation on to a
    # site (a doorhanger headless mode cannot answer); this preference is that
    # person's standing yes. Nothing about the device or the request changes.
    (profile / "user.js").write_text(
        'user_pref("security.webauthn.always_allow_direct_attestation", true);\n'
        'user_pref("browser.shell.checkDefaultBrowser", false);\n'
        'user_pref("datareporting.policy.dataSubmissionEnabled", false);\n'
        'user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);\n')
    log = open(ARGS.out / "firefox.log", "wb")
    env = dict(os.environ, MOZ_HEADLESS="1", MOZ_CRASHREPORTER_DISABLE="1",
               # Firefox's FIDO log: authenticator-rs logs through env_logger.
               RUST_LOG="authenticator=info")
    argv = [FIREFOX, "--headless", "--no-remote", "--profile", str(profile),
            f"--remote-debugging-port={BIDI_PORT}", "--remote-allow-hosts=localhost,127.0.0.1",
            "--window-size=1150,900", "about:blank"]
    STATE["firefox"] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)

    def listening():
        if STATE["firefox"].poll() is not None:
            raise RuntimeError(f"Firefox exited with {STATE['firefox'].returncode}")
        return "WebDriver BiDi listening" in (ARGS.out / "firefox.log").read_text(errors="replace")

    wait_for("Firefox's WebDriver BiDi endpoint", listening, 420, every=1)
    bidi = Bidi(f"ws://127.0.0.1:{BIDI_PORT}/session")
    caps = bidi.call("session.new", capabilities={})["capabilities"]
    STATE["firefox_version"] = f"{caps.get('browserName', 'firefox')} {caps.get('browserVersion', '?')}"
    # A tab opened after the session started, then activated: only then is
    # it the focused, active tab that Firefox requires for WebAuthn
    # (CredentialsContainer's IsInActiveTab; the start-up tab reports
    # document.hasFocus() false in headless mode and every call is refused).
    bidi.context = bidi.call("browsingContext.create", type="tab")["context"]
    bidi.call("browsingContext.navigate", context=bidi.context, url=ORIGIN + "/", wait="complete")
    bidi.call("browsingContext.activate", context=bidi.context)
    if not bidi.eval("document.hasFocus()"):
        raise RuntimeError("the demo page has no focus: Firefox would refuse every WebAuthn call")
    wait_for("the demo page", lambda: bidi.eval("document.readyState === 'complete' && !!window.lp "
                                                 "&& document.getElementById('rpid').textContent === 'localhost'"), 90)
    return bidi


def firefox(bidi: Bidi) -> None:
    b = "Firefox"

    def clear_localhost():
        # Start from no passkey for localhost, so "one account" means one.
        creds = json.loads(localpasskey("list", "--json"))
        mine = [c for c in creds if c["rp_id"] == "localhost"]
        for c in mine:
            localpasskey("delete", c["credential_id"][:12])
        left = [c for c in json.loads(localpasskey("list", "--json")) if c["rp_id"] == "localhost"]
        assert not left, left
        return f"deleted {len(mine)} passkey(s) for localhost left by the Chromium run"

    record("localpasskey", "clear-localhost-for-firefox", clear_localhost)
    daemon_mark = len((ARGS.out / "daemon.log").read_text(errors="replace"))
    record(b, "register-carol", lambda: register(bidi, "carol"))
    record(b, "sign-in-username-less", lambda: username_less(bidi, "carol", browser=b))
    record(b, "sign-in-allowCredentials", lambda: sign_in(bidi, "carol", "carol"))
    record(b, "presence-refused", lambda: presence_refused(bidi, b, "carol"))
    record(b, "sign-in-after-refusal", lambda: sign_in(bidi, "carol", "carol"))
    record(b, "register-dave", lambda: register(bidi, "dave"))
    record(b, "sign-in-username-less-two-accounts",
           lambda: username_less_choosing(bidi, 2, "carol", "dave|carol", browser=b))

    def built_in_uv_only():
        # Firefox never got a PIN from anyone (headless: nobody could type one
        # into its PIN prompt); every verification was our own prompt's.
        daemon = (ARGS.out / "daemon.log").read_text(errors="replace")[daemon_mark:]
        ours = re.findall(r'scripted verification rp="localhost" account="([^"]*)"', daemon)
        assert len(ours) >= 7, f"only {len(ours)} built-in verifications for 7 ceremonies"
        fx = (ARGS.out / "firefox.log").read_text(errors="replace")
        asked = sorted(set(re.findall(r"PinRequired|InvalidPin|PinNotSet", fx)))
        assert not asked, f"Firefox's log shows it wanted a PIN: {asked}"
        named = sum(1 for a in ours if a != "-")
        return f"{len(ours)} built-in verifications by our prompt ({named} naming the one account); no PIN asked of Firefox"

    record(b, "never-asked-for-a-PIN", built_in_uv_only)


def check_no_pin_screen() -> str:
    return devtools.check_no_pin_screen(ARGS.out / "chromium.log", ARGS.out / "chromium-fido.log")


def selected_browsers() -> list[str]:
    """tests/vm/browser.sh says which browsers to run (LPK_BROWSERS, handed
    over by tests/vm/run.sh); Chromium alone by default."""
    chosen = [b for b in os.environ.get("LPK_BROWSERS", "chromium").split(",") if b]
    unknown = set(chosen) - {"chromium", "firefox"}
    if unknown:
        raise SystemExit(f"unknown browsers in LPK_BROWSERS: {sorted(unknown)}")
    return chosen


def stop(name: str) -> None:
    p = STATE.get(name)
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def run_browser(browser: str, start, ceremonies, version_key: str) -> None:
    t1 = time.monotonic()
    try:
        drv = start()
        STATE["driver"] = drv
        say(f"guest: {STATE[version_key]} headless, page ready in {time.monotonic() - t1:.1f}s")
    except Exception as e:  # noqa: BLE001
        traceback.print_exc(file=sys.stdout)
        say(f"FAIL  [{browser}] setup ({time.monotonic() - t1:.1f}s): {type(e).__name__}: {e}")
        RESULTS.append({"browser": browser, "ceremony": "setup", "status": "FAIL", "detail": str(e),
                        "seconds": round(time.monotonic() - t1, 1)})
        return
    t2 = time.monotonic()
    ceremonies(drv)
    STATE["driver"] = None
    say(f"guest: {browser} ceremonies took {time.monotonic() - t2:.1f}s (start {t2 - t1:.1f}s)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.parse_args(namespace=ARGS)
    gt.ARGS.bin, gt.ARGS.out = ARGS.bin, ARGS.out
    gt.WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    browsers = selected_browsers()
    say(f"guest: {os.uname().release}, python {sys.version.split()[0]}; browsers: {', '.join(browsers)}")
    ready = False
    try:
        gt.start_swtpm()
        gt.start_daemon(direct=True)  # root opens /dev/uhid; guest_tests.py covers the broker
        opts = set_pin()
        say(f"guest: swtpm + daemon up, PIN set ({time.monotonic() - t0:.1f}s); {gt.hidraw()}; GetInfo options: {opts}")
        start_rp()
        say(f"guest: demo relying party on {ORIGIN} ({time.monotonic() - t0:.1f}s)")
        ready = True
    except Exception as e:  # noqa: BLE001
        traceback.print_exc(file=sys.stdout)
        say(f"FAIL  setup: {type(e).__name__}: {e}")
        RESULTS.append({"browser": "localpasskey", "ceremony": "setup", "status": "FAIL", "detail": str(e)})
    versions = {}
    if ready and "chromium" in browsers:
        run_browser("Chromium", start_chromium, chromium, "browser_version")
        versions["Chromium"] = STATE.get("browser_version", "?")
        if "browser_version" in STATE:
            record("Chromium", "never-at-its-own-PIN-screen", check_no_pin_screen)
        stop("chromium")
    if ready and "firefox" in browsers:
        run_browser("Firefox", start_firefox, firefox, "firefox_version")
        versions["Firefox"] = STATE.get("firefox_version", "?")
        stop("firefox")
    for name, p in (("rp", STATE.get("rp")), ("daemon", gt.STATE.get("daemon")), ("swtpm", gt.STATE.get("swtpm"))):
        if p and p.poll() is None:
            p.kill()
    passed = sum(1 for r in RESULTS if r["status"] == "PASS")
    failed = sum(1 for r in RESULTS if r["status"] == "FAIL")
    blocked = sum(1 for r in RESULTS if r["status"] == "BLOCKED")
    compat = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "kernel": os.uname().release,
        "browsers": versions,
        "results": RESULTS,
        "passed": passed,
        "failed": failed,
        "blocked": blocked,
    }
    (ARGS.out / "compat.json").write_text(json.dumps(compat, indent=1) + "\n")
    say(f"guest: browser checks took {time.monotonic() - t0:.1f}s")
    if blocked:
        say(f"guest: {blocked} BLOCKED (a browser dialog headless mode cannot answer; not counted as passed)")
    say(f"browser: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
