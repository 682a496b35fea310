"""Reset, simulated power cycles and restarts."""

from __future__ import annotations

import json
import os
import time

import pytest
from fido2.ctap import CtapError

import lpk


def _assert_pin_erased(daemon, old_pin: str):
    """After Reset: no PIN, so nothing can be verified and nothing signed (alwaysUv)."""
    ctap2 = daemon.ctap2()
    assert ctap2.get_info().options["clientPin"] is False, "Reset kept the PIN"
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh)
    assert lpk.ctap_error(e) == lpk.PIN_NOT_SET, lpk.status_name(lpk.ctap_error(e))
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(cdh, {"id": "example.com"}, {"id": b"u", "name": "u"},
                              [{"type": "public-key", "alg": -7}])
    assert lpk.ctap_error(e) == lpk.PIN_NOT_SET, lpk.status_name(lpk.ctap_error(e))
    with pytest.raises(CtapError) as e:
        daemon.client_pin(2, ctap2).get_pin_token(old_pin, lpk.PERM_GA, "example.com")
    assert lpk.ctap_error(e) == lpk.PIN_NOT_SET, lpk.status_name(lpk.ctap_error(e))
    daemon.pin = None


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
    daemon.presence()
    # The PIN went with the credentials.
    _assert_pin_erased(daemon, lpk.PIN)
    # A new PIN (the same one, even) finds nothing of the old credentials.
    daemon.set_pin(lpk.PIN)
    assert daemon.pin_retries() == (lpk.MAX_PIN_RETRIES, False)
    _assert_no_credentials(daemon, [r.credential_id for r in regs])
    # The authenticator works after a reset.
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
    _assert_pin_erased(daemon, lpk.PIN)
    daemon.set_pin(lpk.PIN)
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


def test_second_daemon_on_same_data_dir_is_refused_or_safe(make_daemon, custody):
    """Two daemons must not share a store silently... or, if they may, must not corrupt it."""
    if custody == "tpm":
        pytest.skip("a data dir's blobs load only in its own TPM, and swtpm (no resource manager, "
                    "3 object slots) cannot serve two daemons at once (FACTS.md); the store "
                    "sharing itself is checked with the soft custody")
    d1 = make_daemon()
    d2 = lpk.Daemon(d1.workdir.parent / "second", data_dir=d1.data_dir, custody=custody)
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
    """`--presence approve` (no script) approves every presence request but
    cannot verify: the client asks its user for the PIN and brings a token
    (getPinUvAuthTokenUsingPinWithPermissions), never built-in UV."""
    daemon = make_daemon(presence="approve")
    rp = lpk.RelyingParty()
    interaction = lpk.RecordingInteraction(daemon.pin)
    client = daemon.client(interaction=interaction)
    reg = rp.register(client, resident_key="required")
    assert rp.authenticate(client)[0].credential_id == reg.credential_id
    assert interaction.uv_requests == 0, "the client tried built-in UV where none is offered"
    assert interaction.pin_requests == 2, f"PIN asked {interaction.pin_requests} times for two ceremonies"
    # And still refuses what it does not have (a token is needed to get that far).
    ctap2 = daemon.ctap2()
    token = daemon.client_pin(2, ctap2).get_pin_token(daemon.pin, lpk.PERM_GA, "example.com")
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh, allow_list=[{"type": "public-key", "id": os.urandom(32)}],
                            **lpk.pin_uv_param(2, token, cdh))
    assert lpk.ctap_error(e) == lpk.NO_CREDENTIALS
    # Without a token there is no way to verify: CTAP2_ERR_PUAT_REQUIRED.
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh)
    assert lpk.ctap_error(e) == lpk.PUAT_REQUIRED, lpk.status_name(lpk.ctap_error(e))
