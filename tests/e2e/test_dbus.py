"""The manager's D-Bus API (org.localpasskey.Manager1) on a real session bus.

Each test starts its own `dbus-daemon` and a daemon serving the API on it,
calls it with jeepney (an independent D-Bus implementation), makes and uses
passkeys with python-fido2, and checks the answers against what the
authenticator really holds. The confirmation prompt is the daemon's scripted
presence file: a `deny` there must stop a deletion whoever asked for it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fido2.client import ClientError
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin

import lpk
from ctap_common import EXTENSIONS

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "crates/localpasskey/dbus/org.localpasskey.Manager1.xml"

pytestmark = pytest.mark.custody("soft")

# Another local user: dbus-daemon admits only uids that /etc/passwd knows.
NOBODY = 65534


@pytest.fixture
def bus():
    b = lpk.SessionBus().start()
    yield b
    b.stop()


@pytest.fixture
def served(make_daemon, bus):
    """A daemon on `bus` with the PIN set, and a client of its API."""
    d = make_daemon(bus=bus.address)
    m = bus.client()
    yield d, m
    m.close()


def _register(daemon, rp, name: str, resident: str = "required", **kw):
    return rp.register(daemon.client(extensions=EXTENSIONS), user_name=name, resident_key=resident, **kw)


def _interface(xml_text: str) -> dict:
    """The Manager1 interface as {member: [(name, type, direction), ...]}."""
    root = ET.fromstring(xml_text)
    iface = next(i for i in root.iter("interface") if i.get("name") == lpk.bus.INTERFACE)
    out = {}
    for member in iface:
        args = [(a.get("name"), a.get("type"), a.get("direction", "out" if member.tag == "signal" else "in"))
                for a in member.iter("arg")]
        out[(member.tag, member.get("name"))] = args
    return out


def test_introspection_matches_the_contract_in_the_repository(served):
    _, m = served
    live = _interface(m.introspect())
    contract = _interface(CONTRACT.read_text())
    assert live == contract, f"served {live}\ncontract {contract}"
    assert ("method", "DeletePasskey") in live and ("signal", "ActivityAdded") in live


def test_info_says_what_every_site_sees(served):
    d, m = served
    info = m.info()
    assert info["aaguid"] == lpk.AAGUID_STR
    assert info["backup_eligible"] is False and info["backup_state"] is False
    assert info["attestation"] == "packed"
    assert "ES256" in info["algorithms"]
    assert "insecure" in info["backend"] and info["hardware"] is False
    assert Path(info["data_dir"]).resolve() == d.data_dir.resolve()


def test_list_passkeys_is_what_the_authenticator_holds(served, rp):
    d, m = served
    assert m.passkeys() == []
    alice = _register(d, rp, "alice", extensions={"hmacCreateSecret": True})
    bob = _register(d, rp, "bob", resident="discouraged")
    rp.authenticate(d.client(), allow=[alice.credential_id])
    keys = {k["credential_id"]: k for k in m.passkeys()}
    assert set(keys) == {alice.credential_id.hex(), bob.credential_id.hex()}
    a, b = keys[alice.credential_id.hex()], keys[bob.credential_id.hex()]
    assert a["rp_id"] == b["rp_id"] == "example.com"
    assert (a["user_name"], a["display_name"]) == ("alice", "Alice")
    assert a["user_id"] == alice.user_id.hex()
    assert a["discoverable"] is True and b["discoverable"] is False
    assert a["sign_count"] == alice.counters[-1] >= 1 and b["sign_count"] == 0
    assert a["last_used"] >= a["created"] > 0 and b["last_used"] == 0
    assert a["algorithm"] == "ES256"
    assert "hmac-secret" in a["extensions"] and "hmac-secret" not in b["extensions"]
    assert a["cred_protect"] in (1, 2, 3)
    # The software custody keeps nothing in a TPM, and says so.
    assert a["key_protection"] == []
    # No key material crosses the bus.
    assert "key_blob" not in a and "hmac_key" not in a


@pytest.mark.custody("tpm")
def test_key_protection_is_read_from_the_tpm_keys_public_area(make_daemon, bus, rp, custody):
    d = make_daemon(bus=bus.address)
    m = bus.client()
    try:
        _register(d, rp, "alice")
        [k] = m.passkeys()
        assert set(k["key_protection"]) == {"fixedTPM", "fixedParent", "sensitiveDataOrigin"}
        assert m.info()["backend"] == "software TPM (swtpm)"
    finally:
        m.close()


def test_delete_needs_the_person_not_just_the_caller(served, rp):
    d, m = served
    m.watch_signals()
    alice = _register(d, rp, "alice")
    keep = _register(d, rp, "bob")
    d.presence("deny")
    with pytest.raises(lpk.DBusError) as e:
        m.delete(alice.credential_id.hex())
    assert e.value.name == "org.localpasskey.Error.Refused"
    assert d.pending_presence() == [], "the daemon did not ask the person"
    assert {k["credential_id"] for k in m.passkeys()} == {alice.credential_id.hex(), keep.credential_id.hex()}
    # Still usable: nothing was deleted.
    rp.authenticate(d.client(), allow=[alice.credential_id])

    d.presence("approve")
    m.delete(alice.credential_id.hex())
    assert [k["credential_id"] for k in m.passkeys()] == [keep.credential_id.hex()]
    seen = m.drain_signals()
    names = [s[0] for s in seen]
    # Two registrations and one deletion changed the passkeys; the refusal did not.
    assert names.count("PasskeysChanged") == 3, names
    deletes = [lpk.bus.plain(body[0]) for name, body in seen if name == "ActivityAdded"
               and lpk.bus.plain(body[0])["action"] == "delete"]
    assert [(x["outcome"], x["rp_id"]) for x in deletes] == [("refused", "example.com"), ("approved", "example.com")]
    # The site's passkey is gone for the authenticator too.
    with pytest.raises(ClientError) as ce:
        rp.authenticate(d.client(), allow=[alice.credential_id])
    assert isinstance(ce.value.cause, CtapError) and ce.value.cause.code == CtapError.ERR.NO_CREDENTIALS


def test_bad_arguments_get_clear_errors_and_change_nothing(served, rp):
    d, m = served
    alice = _register(d, rp, "alice")
    before = m.passkeys()
    for bad, name in [
        ("zz", "org.freedesktop.DBus.Error.InvalidArgs"),
        ("", "org.freedesktop.DBus.Error.InvalidArgs"),
        ("ab" * 1024, "org.freedesktop.DBus.Error.InvalidArgs"),
        ("00" * 32, "org.localpasskey.Error.NotFound"),
    ]:
        with pytest.raises(lpk.DBusError) as e:
            m.delete(bad)
        assert e.value.name == name, (bad[:8], e.value)
        with pytest.raises(lpk.DBusError) as e:
            m.rename(bad, "x", "y")
        assert e.value.name == name, (bad[:8], e.value)
    with pytest.raises(lpk.DBusError) as e:
        m.rename(alice.credential_id.hex(), "x" * 65, "")
    assert e.value.name == "org.freedesktop.DBus.Error.InvalidArgs"
    for limit in (0, 10_001):
        with pytest.raises(lpk.DBusError) as e:
            m.activity(limit)
        assert e.value.name == "org.freedesktop.DBus.Error.InvalidArgs"
    # The wrong D-Bus signature: an integer where the id goes.
    # zbus answers it with its own error name, naming both signatures.
    with pytest.raises(lpk.DBusError) as e:
        m.call("DeletePasskey", "u", 7)
    assert e.value.name == "org.freedesktop.zbus.Error" and "expected `s`" in e.value.text, e.value
    with pytest.raises(lpk.DBusError) as e:
        m.call("NoSuchMethod")
    assert e.value.name == "org.freedesktop.DBus.Error.UnknownMethod"
    assert m.passkeys() == before
    assert d.pending_presence() == [] and "scripted presence" not in d.stderr(), "a bad call reached the prompt"
    assert lpk.assert_alive(d) is None


def test_rename_user_changes_what_the_authenticator_returns(served, rp):
    d, m = served
    alice = _register(d, rp, "alice")
    m.rename(alice.credential_id.hex(), "alice@new.example", "Alice N.")
    [k] = m.passkeys()
    assert (k["user_name"], k["display_name"]) == ("alice@new.example", "Alice N.")
    m.rename(alice.credential_id.hex(), "", "Only Display")
    [k] = m.passkeys()
    assert (k["user_name"], k["display_name"]) == ("", "Only Display")
    # A username-less sign-in now names the account as renamed.
    ctap2 = d.ctap2()
    cp = ClientPin(ctap2, lpk.PROTOCOLS[2]())
    token = cp.get_pin_token(d.pin, ClientPin.PERMISSION.GET_ASSERTION, "example.com")
    _, cdh = lpk.client_data_hash(origin="https://example.com")
    a = ctap2.get_assertion("example.com", cdh, **lpk.pin_uv_param(2, token, cdh))
    assert a.user.get("displayName") == "Only Display" and "name" not in a.user


def test_pin_set_and_change_go_through_the_prompt(make_daemon, bus):
    d = make_daemon(bus=bus.address, pin=None)
    m = bus.client()
    try:
        s = m.pin_status()
        assert (s["set"], s["retries"], s["blocked"], s["force_change"]) == (False, 8, False, False)
        with pytest.raises(lpk.DBusError) as e:
            m.change_pin()
        assert e.value.name == "org.localpasskey.Error.PinNotSet"
        d.presence("deny")
        with pytest.raises(lpk.DBusError) as e:
            m.set_pin()
        assert e.value.name == "org.localpasskey.Error.Refused"
        assert m.pin_status()["set"] is False
        d.presence("new-pin 12")
        with pytest.raises(lpk.DBusError) as e:
            m.set_pin()
        assert e.value.name == "org.localpasskey.Error.PinPolicy"
        d.presence("new-pin 135790")
        m.set_pin()
        assert m.pin_status()["set"] is True
        with pytest.raises(lpk.DBusError) as e:
            m.set_pin()
        assert e.value.name == "org.localpasskey.Error.PinAlreadySet"
        # A wrong current PIN costs a try, counted like any other.
        d.presence("change-pin 000000 246802")
        with pytest.raises(lpk.DBusError) as e:
            m.change_pin()
        assert e.value.name == "org.localpasskey.Error.PinInvalid"
        assert m.pin_status()["retries"] == 7
        d.presence("change-pin 135790 246802")
        m.change_pin()
        assert m.pin_status()["retries"] == 8
        # The new PIN is the one a platform must use now.
        cp = ClientPin(d.ctap2(), lpk.PROTOCOLS[2]())
        with pytest.raises(CtapError) as ce:
            cp.get_pin_token("135790", ClientPin.PERMISSION.GET_ASSERTION, "example.com")
        assert ce.value.code == CtapError.ERR.PIN_INVALID
        assert cp.get_pin_token("246802", ClientPin.PERMISSION.GET_ASSERTION, "example.com")
        # What the person was asked, and how it ended; the calls that asked
        # nothing (no PIN yet, a PIN already) left no entry.
        acts = [(a["action"], a["outcome"]) for a in m.activity()]
        assert acts == [("unlock", "wrong_pin"), ("change_pin", "approved"), ("change_pin", "wrong_pin"),
                        ("set_pin", "approved"), ("set_pin", "failed"), ("set_pin", "refused")], acts
    finally:
        m.close()


def test_health_is_doctors_findings(served):
    d, m = served
    findings = m.health()
    assert findings and all(set(f) == {"check", "status", "text", "fix"} for f in findings)
    assert all(f["status"] in ("ok", "info", "warn", "fail") for f in findings)
    checks = {f["check"] for f in findings}
    assert {"TPM", "Data directory"} <= checks
    tpm = next(f for f in findings if f["check"] == "TPM")
    assert tpm["status"] == "warn" and "insecure" not in tpm["text"].lower() or "clear" in tpm["text"]
    assert any(f["text"] == "mode 0700" for f in findings)
    # A fault doctor knows shows up with its fix.
    os.chmod(d.data_dir, 0o755)
    try:
        bad = [f for f in m.health() if f["status"] == "fail"]
        assert any("755" in f["text"] and "chmod 700" in f["fix"] for f in bad), bad
    finally:
        os.chmod(d.data_dir, 0o700)


def test_recent_activity_records_sign_ins_registrations_and_refusals(served, rp):
    d, m = served
    alice = _register(d, rp, "alice")
    rp.authenticate(d.client(), allow=[alice.credential_id])
    d.presence("deny")
    with pytest.raises(ClientError):
        rp.authenticate(d.client(), allow=[alice.credential_id])
    entries = m.activity(10)
    acts = [(e["action"], e["outcome"], e["rp_id"], e["account"]) for e in entries]
    who = ("example.com", "alice (Alice)")
    assert acts[0] == ("sign_in", "refused", *who), acts
    # Newest first: the sign-in (and the browser's silent check before it),
    # then the registration, then the test's own PIN.
    assert acts[1:] == [("sign_in", "approved", *who), ("check", "approved", *who),
                        ("register", "approved", *who), ("set_pin", "approved", "", "")], acts
    times = [e["time"] for e in entries]
    assert times == sorted(times, reverse=True) and abs(times[0] / 1000 - time.time()) < 120
    assert len(m.activity(1)) == 1
    # No secrets or client data in the log.
    blob = json.dumps(entries)
    assert d.pin not in blob and "challenge" not in blob


def test_another_uid_is_refused_even_on_an_open_bus(make_daemon, rp):
    if os.geteuid() != 0:
        pytest.skip("needs root to run a caller as another uid")
    dbus_send = shutil.which("dbus-send")
    assert dbus_send, "dbus-send is not installed (scripts/install-deps.sh installs dbus-bin)"
    bus = lpk.SessionBus(open_to_all_users=True).start()
    try:
        d = make_daemon(bus=bus.address)
        _register(d, rp, "alice")
        cmd = [dbus_send, f"--bus={bus.address}", "--print-reply", "--reply-timeout=20000",
               f"--dest={lpk.bus.BUS_NAME}", lpk.bus.OBJECT_PATH]
        for method, args in [("ListPasskeys", []), ("RecentActivity", ["uint32:10"]),
                             ("DeletePasskey", [f"string:{'00' * 32}"]), ("SetPin", [])]:
            r = subprocess.run(cmd + [f"{lpk.bus.INTERFACE}.{method}", *args], capture_output=True, text=True,
                               user=NOBODY, group=NOBODY, timeout=30)
            assert r.returncode != 0, f"{method} answered uid {NOBODY}: {r.stdout}"
            assert "org.freedesktop.DBus.Error.AccessDenied" in r.stderr, (method, r.stderr)
        # The owner is still served on the same bus, and nothing changed.
        m = bus.client()
        assert len(m.passkeys()) == 1
        m.close()
        assert "D-Bus call from another user refused" in d.stderr()
    finally:
        bus.stop()


def test_a_session_bus_refuses_another_uid_before_the_daemon_sees_it(served):
    if os.geteuid() != 0:
        pytest.skip("needs root to run a caller as another uid")
    d, m = served
    os.chmod(Path(m.conn.sock.getpeername()).parent, 0o711)
    os.chmod(m.conn.sock.getpeername(), 0o777)
    r = subprocess.run([shutil.which("dbus-send"), f"--bus={d.bus}", "--print-reply", f"--dest={lpk.bus.BUS_NAME}",
                        lpk.bus.OBJECT_PATH, f"{lpk.bus.INTERFACE}.ListPasskeys"],
                       capture_output=True, text=True, user=NOBODY, group=NOBODY, timeout=30)
    assert r.returncode != 0
    assert "D-Bus call from another user refused" not in d.stderr()


def test_the_cli_gives_the_same_answers_through_the_daemon_and_the_store(served, rp):
    d, m = served
    alice = _register(d, rp, "alice")
    _register(d, rp, "bob", resident="discouraged")
    rp.authenticate(d.client(), allow=[alice.credential_id])
    via_daemon = json.loads(d.cli("list", "--json").stdout)
    act_daemon = json.loads(d.cli("activity", "--json").stdout)
    assert {c["credential_id"] for c in via_daemon} == {k["credential_id"] for k in m.passkeys()}
    # While the daemon runs, the CLI's deletion goes through it, so the
    # person confirms it in the prompt.
    d.presence("deny")
    r = d.cli("delete", alice.credential_id.hex()[:10], check=False)
    assert r.returncode != 0 and "refused" in (r.stdout + r.stderr).lower(), r
    assert d.pending_presence() == []
    assert len(json.loads(d.cli("list", "--json").stdout)) == 2
    act_daemon = json.loads(d.cli("activity", "--json").stdout)
    d.stop()
    via_store = json.loads(d.cli("list", "--json").stdout)
    act_store = json.loads(d.cli("activity", "--json").stdout)
    assert via_store == via_daemon
    assert act_store == act_daemon
    assert act_store[0]["action"] == "delete" and act_store[0]["outcome"] == "refused"
    # Without a daemon, the command at the terminal is the confirmation; it is logged.
    d.cli("delete", alice.credential_id.hex()[:10])
    assert len(json.loads(d.cli("list", "--json").stdout)) == 1
    top = json.loads(d.cli("activity", "--json").stdout)[0]
    assert (top["action"], top["outcome"], top["rp_id"]) == ("delete", "approved", "example.com")


def test_activity_log_survives_sigkill_and_is_trimmed_by_retention(make_daemon, rp, custody):
    d = make_daemon()
    alice = _register(d, rp, "alice")
    for _ in range(3):
        rp.authenticate(d.client(), allow=[alice.credential_id])
    d.presence("deny")
    with pytest.raises(ClientError):
        rp.authenticate(d.client(), allow=[alice.credential_id])
    d.kill()
    entries = json.loads(d.cli("activity", "--json").stdout)
    acts = [(e["action"], e["outcome"]) for e in entries if e["action"] != "check"]
    assert acts == [("sign_in", "refused")] + [("sign_in", "approved")] * 3 + [("register", "approved"),
                                                                             ("set_pin", "approved")], acts

    # Entries older than the retention go: at the next start (90 days by
    # default) and when the person sets a shorter one.
    db = d.data_dir / "credentials.sqlite3"
    day = 24 * 3600 * 1000
    now = int(time.time() * 1000)
    with sqlite3.connect(db) as c:
        c.executemany("INSERT INTO activity (time, action, outcome, rp_id, account) VALUES (?, ?, ?, ?, ?)",
                      [(now - 200 * day, "sign_in", "approved", "old.example", "x"),
                       (now - 30 * day, "sign_in", "approved", "month.example", "y")])
    d.start()
    rps = [e["rp_id"] for e in json.loads(d.cli("activity", "--json").stdout)]
    assert "old.example" not in rps and "month.example" in rps
    d.stop()
    d.cli("activity", "--retention-days", "7")
    rps = [e["rp_id"] for e in json.loads(d.cli("activity", "--json").stdout)]
    assert "month.example" not in rps and "example.com" in rps
    r = d.cli("activity", "--retention-days", "0", check=False)
    assert r.returncode != 0
    r = d.cli("activity", "--limit", "0", check=False)
    assert r.returncode != 0


def test_reset_empties_the_activity_log(make_daemon, rp):
    d = make_daemon()
    _register(d, rp, "alice")
    d.restart()
    ctap2 = d.ctap2()
    ctap2.reset()
    entries = json.loads(d.cli("activity", "--json").stdout)
    assert [(e["action"], e["outcome"]) for e in entries] == [("reset", "approved")]


def test_the_security_key_outlives_its_session_bus(make_daemon, rp):
    bus = lpk.SessionBus().start()
    d = make_daemon(bus=bus.address)
    m = bus.client()
    assert m.passkeys() == []
    m.close()
    bus.stop()
    lpk.assert_alive(d)
    reg = rp.register(d.client(extensions=EXTENSIONS), user_name="alice")
    rp.authenticate(d.client(), allow=[reg.credential_id])
    # Without a bus the CLI reads the store, and finds the same passkey.
    assert [c["credential_id"] for c in d.list_json()] == [reg.credential_id.hex()]
