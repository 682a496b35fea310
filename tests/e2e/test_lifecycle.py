"""Reset, simulated power cycles and restarts."""

from __future__ import annotations

import json
import os
import time

import pytest
from fido2.ctap import CtapError

import lpk


def _assert_no_credentials(daemon, cred_ids):
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh)
    assert lpk.ctap_error(e) == lpk.NO_CREDENTIALS, lpk.status_name(lpk.ctap_error(e))
    for cid in cred_ids:
        with pytest.raises(CtapError) as e:
            ctap2.get_assertion("example.com", cdh, allow_list=[{"type": "public-key", "id": cid}])
        assert lpk.ctap_error(e) == lpk.NO_CREDENTIALS, lpk.status_name(lpk.ctap_error(e))


def test_reset_within_window_erases_everything(daemon, rp):
    client = daemon.client()
    regs = [
        rp.register(client, user_name="a", resident_key="required"),
        rp.register(client, user_name="b", resident_key="discouraged"),
    ]
    assert len(daemon.list_json()) == 2
    assert time.monotonic() - daemon.started_at < 9, "setup too slow to test the reset window"
    daemon.presence("approve", "deny")
    daemon.ctap2().reset()
    assert daemon.pending_presence() == ["deny"], "Reset did not ask for presence"
    assert daemon.list_json() == []
    info = daemon.cli("info", "--json")
    assert json.loads(info.stdout)["credentials"] == 0
    _assert_no_credentials(daemon, [r.credential_id for r in regs])
    # The authenticator works after a reset.
    daemon.presence()
    reg = rp.register(daemon.client(), resident_key="required")
    assert rp.authenticate(daemon.client())[0].credential_id == reg.credential_id


@pytest.mark.slow
def test_reset_window_and_power_cycle(daemon, rp):
    """After 10 s Reset is NOT_ALLOWED (without a prompt); a power cycle reopens the window."""
    client = daemon.client()
    reg = rp.register(client, resident_key="required")
    wait = 10.5 - (time.monotonic() - daemon.started_at)
    if wait > 0:
        time.sleep(wait)
    ctap2 = daemon.ctap2()
    daemon.presence("approve")
    with pytest.raises(CtapError) as e:
        ctap2.reset()
    assert lpk.ctap_error(e) == lpk.NOT_ALLOWED, lpk.status_name(lpk.ctap_error(e))
    assert daemon.pending_presence() == ["approve"], "asked for presence for a reset it must refuse"
    assert len(daemon.list_json()) == 1

    # Power cycle through the CLI: the window opens again.
    daemon.power_cycle(via_cli=True)
    daemon.ctap2().reset()
    assert daemon.pending_presence() == []
    assert daemon.list_json() == []
    _assert_no_credentials(daemon, [reg.credential_id])


def test_power_cycle_keeps_credentials(daemon, rp):
    client = daemon.client()
    a = rp.register(client, resident_key="required")
    b = rp.register(client, resident_key="discouraged")
    rp.authenticate(client, allow=[a.credential_id])
    daemon.power_cycle()
    client = daemon.client()
    assert rp.authenticate(client, allow=None)[0].credential_id == a.credential_id
    assert rp.authenticate(client, allow=[b.credential_id])[0].credential_id == b.credential_id


def test_get_next_assertion_after_power_cycle(daemon, rp):
    client = daemon.client()
    for i in range(2):
        rp.register(client, user_name=f"u{i}", resident_key="required")
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    assert ctap2.get_assertion("example.com", cdh).number_of_credentials == 2
    daemon.power_cycle()
    ctap2 = daemon.ctap2()
    with pytest.raises(CtapError) as e:
        ctap2.get_next_assertion()
    assert lpk.ctap_error(e) == lpk.NOT_ALLOWED, lpk.status_name(lpk.ctap_error(e))


def test_credentials_survive_restart(daemon, rp):
    client = daemon.client()
    a = rp.register(client, user_id=os.urandom(16), resident_key="required")
    b = rp.register(client, resident_key="discouraged")
    rp.authenticate(client, allow=[a.credential_id])
    rp.authenticate(client, allow=[b.credential_id])
    before = daemon.list_json()
    daemon.restart()
    after = daemon.list_json()
    assert sorted(before, key=lambda c: c["credential_id"]) == sorted(after, key=lambda c: c["credential_id"])
    client = daemon.client()
    # Counters continue from where they were (RelyingParty checks strictly increasing).
    assert rp.authenticate(client, allow=None)[0].credential_id == a.credential_id
    assert rp.authenticate(client, allow=[b.credential_id])[0].credential_id == b.credential_id
    # And a SIGKILL'd daemon keeps them too.
    daemon.kill()
    daemon.start()
    client = daemon.client()
    assert rp.authenticate(client, allow=[a.credential_id, b.credential_id])[0].credential_id in (a.credential_id, b.credential_id)


def test_second_daemon_on_same_data_dir_is_refused_or_safe(make_daemon):
    """Two daemons must not share a store silently... or, if they may, must not corrupt it."""
    d1 = make_daemon()
    d2 = lpk.Daemon(d1.workdir.parent / "second", data_dir=d1.data_dir)
    try:
        try:
            d2.start()
        except lpk.DaemonStartError:
            return  # refused: fine
        # Both run: they must not lose each other's credentials.
        rp = lpk.RelyingParty()
        a = rp.register(d1.client(), resident_key="required")
        b = rp.register(d2.client(), resident_key="required")
        ids = {bytes.fromhex(c["credential_id"]) for c in d1.list_json()}
        assert {a.credential_id, b.credential_id} <= ids
    finally:
        d2.stop()


def test_presence_approve_mode(make_daemon):
    """`--presence approve` (no script) approves every request."""
    daemon = make_daemon(presence="approve")
    rp = lpk.RelyingParty()
    client = daemon.client()
    reg = rp.register(client, resident_key="required")
    assert rp.authenticate(client)[0].credential_id == reg.credential_id
    # And still refuses what it does not have.
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        daemon.ctap2().get_assertion("example.com", cdh, allow_list=[{"type": "public-key", "id": os.urandom(32)}])
    assert lpk.ctap_error(e) == lpk.NO_CREDENTIALS
