"""The daemon with `--presence desktop` and the real dialog, end to end.

python-fido2 talks CTAP to the daemon over the UDP simulation transport; the
daemon starts `localpasskey-prompt` (found next to its own executable, as in
an installation) on the private Xvfb, and xdotool answers it. What the
client gets back is what a browser would get.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fido2.ctap import STATUS, CtapError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import lpk  # noqa: E402

PIN = "246810"
RP = {"id": "example.com", "name": "Example Corp (never shown)"}
ES256_ONLY = [{"type": "public-key", "alg": -7}]
UV_INVALID = 0x3F  # CTAP2_ERR_UV_INVALID
ARMED = 1.2


def _user(name="pat"):
    return {"id": os.urandom(16), "name": name, "displayName": name.title()}


class Call:
    """Runs one CTAP call in a thread: it blocks while the dialog is up."""

    def __init__(self, fn, *args, **kw):
        self.result = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, args, kw), daemon=True)
        self.thread.start()

    def _run(self, fn, args, kw):
        try:
            self.result = fn(*args, **kw)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e

    def done(self) -> bool:
        return not self.thread.is_alive()

    def outcome(self) -> str:
        if isinstance(self.error, CtapError):
            return lpk.status_name(int(self.error.code))
        return repr(self.error) if self.error is not None else f"success: {self.result!r}"

    def wait(self, timeout: float = 30.0):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the CTAP call did not finish"
        if self.error is not None:
            raise self.error
        return self.result

    def status(self, timeout: float = 30.0) -> int:
        with pytest.raises(CtapError) as e:
            self.wait(timeout)
        return int(e.value.code)


@pytest.fixture
def desktop_daemon(x, tmp_path, monkeypatch):
    """Factory: a daemon on the Xvfb display with a PIN set."""
    for k in ("WAYLAND_DISPLAY", "LOCALPASSKEY_PROMPT"):
        monkeypatch.delenv(k, raising=False)
    for k in ("DISPLAY", "GDK_BACKEND", "GTK_A11Y", "NO_AT_BRIDGE"):
        monkeypatch.setenv(k, x.env[k])
    daemons = []

    def make(presence: str = "desktop", **kw) -> lpk.Daemon:
        # pin=None: the PIN is set below through our own CLI, as a user would.
        d = lpk.Daemon(tmp_path / f"d{len(daemons)}", presence=presence, pin=None, **kw)
        daemons.append(d)
        d.start()
        r = subprocess.run(
            [str(lpk.binary()), "pin", "set", "--to", f"127.0.0.1:{d.port}", "--pin-stdin"],
            input=f"{PIN}\n{PIN}\n", capture_output=True, text=True, timeout=30,
        )
        assert r.returncode == 0, r.stderr
        return d

    yield make
    for d in daemons:
        d.stop()
    x.wait_no_window()


def test_pin_typed_in_the_dialog_creates_a_passkey_and_signs_in(x, desktop_daemon):
    d = desktop_daemon()
    ctap2 = d.ctap2()
    _, cdh = lpk.client_data_hash()
    call = Call(ctap2.make_credential, cdh, RP, _user(), ES256_ONLY, options={"rk": True})
    wid = x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.type(PIN)
    x.screenshot(wid, "prompt-daemon-register")
    x.keys("Return")
    att = call.wait()
    assert att.auth_data.is_user_present() and att.auth_data.is_user_verified()
    assert [c["rp_id"] for c in d.list_json()] == ["example.com"]

    call = Call(ctap2.get_assertion, "example.com", cdh)
    wid = x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-daemon-sign-in")
    x.type(PIN)
    x.keys("Return")
    assertion = call.wait()
    assert assertion.auth_data.is_user_present() and assertion.auth_data.is_user_verified()
    assert "Example Corp" not in d.stderr(), "the RP's self-chosen name reached the prompt"


def test_deny_in_the_dialog_gives_operation_denied(x, desktop_daemon):
    d = desktop_daemon()
    ctap2 = d.ctap2()
    _, cdh = lpk.client_data_hash()
    call = Call(ctap2.make_credential, cdh, RP, _user(), ES256_ONLY)
    x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.keys("Escape")
    assert call.status() == lpk.OPERATION_DENIED
    assert d.list_json() == []


def test_a_wrong_pin_costs_a_try_and_the_next_dialog_says_so(x, desktop_daemon):
    d = desktop_daemon()
    ctap2 = d.ctap2()
    _, cdh = lpk.client_data_hash()
    call = Call(ctap2.make_credential, cdh, RP, _user(), ES256_ONLY)
    x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.type("000000")
    x.keys("Return")
    assert call.status() == UV_INVALID
    call = Call(ctap2.make_credential, cdh, RP, _user(), ES256_ONLY)
    wid = x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-daemon-7-tries")
    x.keys("Escape")
    assert call.status() == lpk.OPERATION_DENIED


def test_nobody_answering_gives_user_action_timeout_with_keepalives(x, desktop_daemon):
    d = desktop_daemon(presence_timeout_ms=3000)
    ctap2 = d.ctap2()
    _, cdh = lpk.client_data_hash()
    ka = lpk.KeepaliveRecorder()
    start = time.monotonic()
    call = Call(ctap2.make_credential, cdh, RP, _user(), ES256_ONLY, on_keepalive=ka)
    x.wait_window(waiting=call)
    assert call.status() == lpk.USER_ACTION_TIMEOUT
    elapsed = time.monotonic() - start
    assert 2.5 < elapsed < 8, f"a 3 s timeout took {elapsed:.1f} s"
    assert STATUS.UPNEEDED in ka.statuses, f"no UPNEEDED keepalive: {ka.statuses}"
    x.wait_no_window(timeout=2)


def test_cancel_from_the_platform_closes_the_dialog(x, desktop_daemon):
    d = desktop_daemon()
    ctap2 = d.ctap2()
    _, cdh = lpk.client_data_hash()
    cancel = threading.Event()
    call = Call(ctap2.make_credential, cdh, RP, _user(), ES256_ONLY, event=cancel)
    x.wait_window(waiting=call)
    time.sleep(0.5)
    cancel.set()
    assert call.status() == lpk.KEEPALIVE_CANCEL
    x.wait_no_window(timeout=2)
    assert d.list_json() == []


def test_reset_asks_for_presence_in_the_dialog(x, desktop_daemon):
    d = desktop_daemon()
    d.power_cycle()  # Reset is allowed only within 10 s of power-up
    ctap2 = d.ctap2()
    call = Call(ctap2.reset)
    x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.keys("Return")  # the focus is on Deny
    assert call.status() == lpk.OPERATION_DENIED
    call = Call(ctap2.reset)
    wid = x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-daemon-reset")
    x.keys("Tab", "Return")
    call.wait()
    info = ctap2.get_info()
    assert info.options.get("clientPin") is False, "Reset must erase the PIN"


def _fake_user_manager(tmp_path, monkeypatch, environment: str | None) -> None:
    """A `systemctl` first on PATH: `--user show-environment` prints
    `environment`, or fails (no user manager) when it is None."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "systemctl"
    if environment is None:
        fake.write_text("#!/bin/sh\nexit 1\n")
    else:
        fake.write_text('#!/bin/sh\n[ "$*" = "--user show-environment" ] || exit 1\n'
                        f"cat <<'END'\n{environment}END\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_the_display_may_come_from_the_user_manager(x, desktop_daemon, tmp_path, monkeypatch):
    """A user service started before the desktop told systemd its display:
    the daemon's own environment has none, the user manager's has it by the
    time of the request, and the dialog appears there."""
    xvfb_display = x.env["DISPLAY"]
    monkeypatch.delenv("DISPLAY")
    _fake_user_manager(tmp_path, monkeypatch, f"HOME=/nowhere\nDISPLAY={xvfb_display}\n")
    d = desktop_daemon()
    ctap2 = d.ctap2()
    _, cdh = lpk.client_data_hash()
    call = Call(ctap2.make_credential, cdh, RP, _user(), ES256_ONLY)
    x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.type(PIN)
    x.keys("Return")
    att = call.wait()
    assert att.auth_data.is_user_verified()
    own = Path(f"/proc/{d.proc.pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in own if v.startswith((b"DISPLAY=", b"WAYLAND_DISPLAY="))], "the daemon had a display of its own"


def test_without_a_display_the_daemon_falls_back_to_pinentry_and_says_so(x, desktop_daemon, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY")
    _fake_user_manager(tmp_path, monkeypatch, None)
    # A pinentry that cannot run: the request is refused, never approved.
    monkeypatch.setenv("PINENTRY_PROGRAM", "/nonexistent/pinentry")
    d = desktop_daemon()
    ctap2 = d.ctap2()
    _, cdh = lpk.client_data_hash()
    call = Call(ctap2.make_credential, cdh, RP, _user(), ES256_ONLY)
    assert call.status() == lpk.OPERATION_DENIED
    err = d.stderr()
    assert "no display yet (neither DISPLAY nor WAYLAND_DISPLAY): pinentry until there is one" in err
    # ... and at the request itself.
    assert "no display (neither DISPLAY nor WAYLAND_DISPLAY) for the dialog: asking through pinentry" in err
    assert "/nonexistent/pinentry" in err


def _register_in_dialog(x, ctap2, name: str) -> tuple[bytes, bytes]:
    """A discoverable passkey for `name`, the PIN typed into our dialog.
    Returns (credential id, COSE key)."""
    _, cdh = lpk.client_data_hash(kind="webauthn.create")
    call = Call(ctap2.make_credential, cdh, RP, _user(name), ES256_ONLY, options={"rk": True})
    x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.type(PIN)
    x.keys("Return")
    att = call.wait()
    x.wait_no_window()
    return att.auth_data.credential_data.credential_id, lpk.verify_attestation_twice(att, cdh)


def test_the_second_account_picked_in_the_dialog_signs_in(x, desktop_daemon):
    """A username-less sign-in with two passkeys: the dialog lists both
    (most recent first), the person picks the second with the keyboard and
    types the PIN, and the one answer is that account, userSelected."""
    d = desktop_daemon()
    ctap2 = d.ctap2()
    older, older_key = _register_in_dialog(x, ctap2, "pat")
    _register_in_dialog(x, ctap2, "quinn")

    _, cdh = lpk.client_data_hash()
    call = Call(ctap2.get_assertion, "example.com", cdh)
    wid = x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.keys("Down", "Return")
    x.type(PIN)
    x.screenshot(wid, "prompt-daemon-choose-account")
    x.keys("Return")
    a = call.wait()
    assert a.credential["id"] == older, "the second account shown is the older one, pat"
    assert a.user_selected is True, a
    assert a.number_of_credentials is None, a
    assert a.user["name"] == "pat" and a.user["displayName"] == "Pat"
    lpk.check_flags(a.auth_data, up=True)
    lpk.verify_es256(older_key, bytes(a.auth_data) + cdh, a.signature)
    with pytest.raises(CtapError) as e:
        ctap2.get_next_assertion()
    assert lpk.ctap_error(e) == lpk.NOT_ALLOWED
    assert "accounts=2" in d.stderr(), "the daemon did not send the list to the dialog"

    # Escape in the chooser: OPERATION_DENIED, nothing signed.
    call = Call(ctap2.get_assertion, "example.com", cdh)
    x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.keys("Escape")
    assert call.status() == lpk.OPERATION_DENIED


def test_with_pinentry_there_is_no_list_and_the_platform_chooses(x, desktop_daemon, monkeypatch):
    """The real pinentry-gtk-2 cannot list accounts: the sign-in is as it
    always was, numberOfCredentials for the platform to choose from."""
    gtk = "/usr/bin/pinentry-gtk-2"
    assert Path(gtk).exists(), "pinentry-gtk-2 is missing: scripts/install-deps.sh installs it"
    monkeypatch.setenv("PINENTRY_PROGRAM", gtk)
    d = desktop_daemon(presence="pinentry")
    ctap2 = d.ctap2()
    ids = {_register_in_dialog(x, ctap2, name)[0] for name in ("rae", "sam")}
    _, cdh = lpk.client_data_hash()
    call = Call(ctap2.get_assertion, "example.com", cdh)
    wid = x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-pinentry-two-accounts")
    x.type(PIN)
    x.keys("Return")
    a = call.wait()
    assert a.number_of_credentials == 2 and a.user_selected is None, a
    nxt = ctap2.get_next_assertion()
    assert {a.credential["id"], nxt.credential["id"]} == ids


@pytest.fixture
def bus():
    b = lpk.SessionBus().start()
    yield b
    b.stop()


def test_the_manager_changes_the_pin_in_our_dialog(x, desktop_daemon, bus):
    """ChangePin over D-Bus: the PINs are typed into our dialog, never sent
    on the bus; the platform's next PIN is the new one."""
    d = desktop_daemon(bus=bus.address)
    m = bus.client()
    call = Call(m.change_pin)
    wid = x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-daemon-change-pin")
    x.type(PIN)
    x.keys("Return")
    x.type("975310")
    x.keys("Return")
    x.type("975310")
    x.keys("Return")
    call.wait()
    from fido2.ctap2 import ClientPin
    cp = ClientPin(d.ctap2(), lpk.PROTOCOLS[2]())
    assert cp.get_pin_token("975310", ClientPin.PERMISSION.GET_ASSERTION, "example.com")
    assert m.pin_status()["retries"] == 8
    m.close()


def test_the_manager_deletes_only_after_our_dialog(x, desktop_daemon, bus):
    d = desktop_daemon(bus=bus.address)
    m = bus.client()
    ctap2 = d.ctap2()
    _, cdh = lpk.client_data_hash()
    call = Call(ctap2.make_credential, cdh, RP, _user("pat"), ES256_ONLY, options={"rk": True})
    x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.type(PIN)
    x.keys("Return")
    call.wait()
    [key] = m.passkeys()

    call = Call(m.delete, key["credential_id"])
    wid = x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.keys("Escape")
    with pytest.raises(lpk.DBusError) as e:
        call.wait()
    assert e.value.name == "org.localpasskey.Error.Refused"
    assert len(m.passkeys()) == 1

    call = Call(m.delete, key["credential_id"])
    wid = x.wait_window(waiting=call)
    time.sleep(ARMED)
    x.screenshot(wid, "prompt-daemon-delete")
    x.keys("Tab", "Return")
    call.wait()
    assert m.passkeys() == []
    m.close()
