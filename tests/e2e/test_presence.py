"""User presence: denial, cancel, timeout and keepalives, through fido2's HID stack.

With alwaysUv and no token, MakeCredential/GetAssertion open the daemon's own
verification prompt (it types the PIN, and counts as presence too: one prompt,
one script line); Reset and Selection ask for presence alone. Either way the
keepalives say UPNEEDED while the person is asked.
"""

from __future__ import annotations

import os
import threading
import time

import cbor2
import pytest
from fido2.ctap import STATUS, CtapError

import lpk

RP = {"id": "example.com", "name": "Example"}
ES256_ONLY = [{"type": "public-key", "alg": -7}]


def _user():
    return {"id": os.urandom(16), "name": "pat", "displayName": "Pat"}


def test_presence_denied_make_credential(daemon):
    ctap2 = daemon.ctap2()
    daemon.presence("deny")
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(cdh, RP, _user(), ES256_ONLY, options={"rk": True})
    assert lpk.ctap_error(e) == lpk.OPERATION_DENIED, lpk.status_name(lpk.ctap_error(e))
    assert daemon.pending_presence() == []
    assert daemon.list_json() == []


def test_wait_then_cancel_gives_keepalive_cancel(daemon):
    ctap2 = daemon.ctap2()
    daemon.presence("wait")
    cancel = threading.Event()
    ka = lpk.KeepaliveRecorder(cancel_on_up=cancel)
    _, cdh = lpk.client_data_hash()
    start = time.monotonic()
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(cdh, RP, _user(), ES256_ONLY, event=cancel, on_keepalive=ka)
    elapsed = time.monotonic() - start
    assert lpk.ctap_error(e) == lpk.KEEPALIVE_CANCEL, lpk.status_name(lpk.ctap_error(e))
    assert STATUS.UPNEEDED in ka.statuses, f"no keepalive with status UPNEEDED (2): {ka.statuses}"
    assert ka.first_up_at is not None
    assert time.monotonic() - ka.first_up_at < 5, "cancel took too long to be answered"
    assert elapsed < 10
    assert daemon.pending_presence() == []
    assert daemon.list_json() == [], "a cancelled registration stored a credential"
    # The authenticator is usable right away.
    daemon.presence()
    att = ctap2.make_credential(cdh, RP, _user(), ES256_ONLY)
    assert att.auth_data.is_user_present()


def test_cancel_get_assertion(daemon):
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    ctap2.make_credential(cdh, RP, _user(), ES256_ONLY, options={"rk": True})
    daemon.presence("wait")
    cancel = threading.Event()
    ka = lpk.KeepaliveRecorder(cancel_on_up=cancel)
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh, event=cancel, on_keepalive=ka)
    assert lpk.ctap_error(e) == lpk.KEEPALIVE_CANCEL, lpk.status_name(lpk.ctap_error(e))
    assert STATUS.UPNEEDED in ka.statuses


def test_wait_times_out_with_user_action_timeout(make_daemon):
    daemon = make_daemon(presence_timeout_ms=1500)
    ctap2 = daemon.ctap2()
    daemon.presence("wait")
    ka = lpk.KeepaliveRecorder()
    _, cdh = lpk.client_data_hash()
    start = time.monotonic()
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(cdh, RP, _user(), ES256_ONLY, on_keepalive=ka)
    elapsed = time.monotonic() - start
    assert lpk.ctap_error(e) == lpk.USER_ACTION_TIMEOUT, lpk.status_name(lpk.ctap_error(e))
    assert 1.4 <= elapsed < 6, f"timed out after {elapsed:.2f} s, configured 1.5 s"
    assert STATUS.UPNEEDED in ka.statuses, f"keepalives seen: {ka.statuses}"
    assert daemon.list_json() == []


def test_delay_then_approve_sends_up_needed_keepalives(daemon):
    ctap2 = daemon.ctap2()
    daemon.presence("delay 1200")
    ka = lpk.KeepaliveRecorder()
    _, cdh = lpk.client_data_hash()
    start = time.monotonic()
    att = ctap2.make_credential(cdh, RP, _user(), ES256_ONLY, on_keepalive=ka)
    elapsed = time.monotonic() - start
    assert elapsed >= 1.1, f"answered after {elapsed:.2f} s, before the scripted delay"
    assert att.auth_data.is_user_present()
    assert STATUS.UPNEEDED in ka.statuses, f"keepalives seen: {ka.statuses}"
    assert daemon.pending_presence() == []


def test_keepalive_cadence_on_raw_channel(daemon):
    """Keepalives come often enough for a platform not to give up (CTAP: at least every 100 ms-ish)."""
    daemon.presence("delay 1500")
    raw = daemon.raw()
    cid = raw.init()
    _, cdh = lpk.client_data_hash()
    params = cbor2.dumps({1: cdh, 2: RP, 3: _user(), 4: ES256_ONLY}, canonical=True)
    times: list[float] = []

    class Rec(list):
        def append(self, x):
            times.append(time.monotonic())
            super().append(x)

    rec = Rec()
    raw.send_message(cid, lpk.HID_CBOR, bytes([lpk.CMD_MAKE_CREDENTIAL]) + params)
    cmd, data = raw.read_message(cid, timeout=10, keepalives=rec)
    assert cmd == lpk.HID_CBOR and data[0] == 0, f"status {data[:1].hex()}"
    keepalives = list(rec)
    assert keepalives and set(keepalives) <= {1, 2}, f"keepalive statuses {keepalives}"
    assert 2 in keepalives
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(keepalives) >= 5, f"only {len(keepalives)} keepalives in 1.5 s"
    assert max(gaps) < 0.5, f"longest gap between keepalives {max(gaps):.2f} s"


def test_reset_denied_and_timed_out(make_daemon):
    daemon = make_daemon(presence_timeout_ms=1000)
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    ctap2.make_credential(cdh, RP, _user(), ES256_ONLY, options={"rk": True})
    daemon.presence("deny", "wait")
    with pytest.raises(CtapError) as e:
        ctap2.reset()
    assert lpk.ctap_error(e) == lpk.OPERATION_DENIED, lpk.status_name(lpk.ctap_error(e))
    with pytest.raises(CtapError) as e:
        ctap2.reset()
    assert lpk.ctap_error(e) == lpk.USER_ACTION_TIMEOUT, lpk.status_name(lpk.ctap_error(e))
    assert len(daemon.list_json()) == 1, "a refused reset erased credentials"


def test_cancel_from_another_channel_is_ignored(make_daemon):
    """Only the channel that made the request can cancel it."""
    daemon = make_daemon(presence_timeout_ms=1500)
    daemon.presence("wait")
    a, b = daemon.raw(), daemon.raw()
    try:
        cid_a, cid_b = a.init(), b.init()
        _, cdh = lpk.client_data_hash()
        params = cbor2.dumps({1: cdh, 2: RP, 3: _user(), 4: ES256_ONLY}, canonical=True)
        start = time.monotonic()
        a.send_message(cid_a, lpk.HID_CBOR, bytes([lpk.CMD_MAKE_CREDENTIAL]) + params)
        r = a.recv(5)
        assert r is not None and r[4] == 0x80 | lpk.HID_KEEPALIVE, f"expected a keepalive, got {r and r.hex()}"
        b.send(b.init_packet(cid_b, lpk.HID_CANCEL, 0))
        # Whatever b hears (nothing, or CHANNEL_BUSY), a's request runs on to the timeout.
        for extra in b.drain(0.3):
            assert extra[:5] == bytes.fromhex(f"{cid_b:08x}") + bytes([0x80 | lpk.HID_ERROR]), extra.hex()
            assert extra[7] == lpk.ERR_CHANNEL_BUSY, extra.hex()
        cmd, data = a.read_message(cid_a, timeout=10)
        assert cmd == lpk.HID_CBOR
        assert data[0] == lpk.USER_ACTION_TIMEOUT, f"status {lpk.status_name(data[0])}: cancelled by another channel?"
        assert time.monotonic() - start >= 1.4
    finally:
        a.close()
        b.close()
