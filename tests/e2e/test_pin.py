"""The PIN end to end (CTAP 2.1 §6.5): python-fido2's ClientPin with PIN/UV
auth protocols One and Two, tokens used in raw MakeCredential/GetAssertion,
built-in verification through the daemon's scripted prompt, retry counters
that survive crashes and restarts, and the `localpasskey pin` command line.

Every MakeCredential/GetAssertion answer is verified twice: by fido2's code
and by py_webauthn's (lpk.verify_attestation_twice, lpk.verify_es256).
"""

from __future__ import annotations

import os
import time

import pytest
from fido2.client import ClientError
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin

import lpk

RP_ID = "example.com"
OTHER_RP = "other.example"
ES256 = [{"type": "public-key", "alg": -7}]
WRONG = "135790"
MC, GA = lpk.PERM_MC, lpk.PERM_GA


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def protocol(request) -> int:
    """PIN/UV auth protocol One and Two (both advertised, §6.5.6 and §6.5.7)."""
    return request.param


def _err(fn, *args, **kw) -> int:
    with pytest.raises(CtapError) as e:
        fn(*args, **kw)
    return lpk.ctap_error(e)


def _mc(ctap2, token=None, protocol=2, rp_id=RP_ID, rk=True, **kw):
    """MakeCredential (with a token if given); the answer verified twice. Returns (att, cose)."""
    _, cdh = lpk.client_data_hash(kind="webauthn.create")
    auth = lpk.pin_uv_param(protocol, token, cdh) if token is not None else {}
    att = ctap2.make_credential(
        cdh, {"id": rp_id, "name": rp_id}, {"id": os.urandom(16), "name": "pin-user"}, ES256,
        options={"rk": True} if rk else None, **auth, **kw,
    )
    lpk.check_flags(att.auth_data, up=True, at=True)
    assert att.auth_data.rp_id_hash == lpk.rp_id_hash(rp_id)
    return att, lpk.verify_attestation_twice(att, cdh)


def _mc_status(ctap2, token=None, protocol=2, rp_id=RP_ID) -> int:
    return _err(_mc, ctap2, token, protocol, rp_id)


def _ga(ctap2, cred, token=None, protocol=2, rp_id=RP_ID, up=True):
    """GetAssertion for `cred` = (att, cose); verified twice. Returns the response."""
    att, cose = cred
    _, cdh = lpk.client_data_hash()
    auth = lpk.pin_uv_param(protocol, token, cdh) if token is not None else {}
    cred_id = att.auth_data.credential_data.credential_id
    a = ctap2.get_assertion(
        rp_id, cdh, allow_list=[{"type": "public-key", "id": cred_id}],
        options=None if up else {"up": False}, **auth,
    )
    assert a.credential["id"] == cred_id
    lpk.check_flags(a.auth_data, up=up)
    a.verify(cdh, att.auth_data.credential_data.public_key)  # fido2
    lpk.verify_es256(cose, bytes(a.auth_data) + cdh, a.signature)  # py_webauthn
    return a


def _ga_status(ctap2, cred, token=None, protocol=2, rp_id=RP_ID, up=True) -> int:
    return _err(_ga, ctap2, cred, token, protocol, rp_id, up)


def _retries(cp: ClientPin) -> tuple[int, bool, int]:
    """(pinRetries, powerCycleState, uvRetries): getPINRetries and getUVRetries share one counter."""
    retries, power_cycle = cp.get_pin_retries()
    return retries, power_cycle, cp.get_uv_retries()


def _pad(pin: bytes) -> bytes:
    return pin.ljust(64, b"\0")


def _set_pin_padded(cp: ClientPin, padded: bytes) -> None:
    """setPIN with a hand-made paddedNewPin (fido2's set_pin refuses bad PINs itself)."""
    key_agreement, shared = cp._get_shared_secret()
    enc = cp.protocol.encrypt(shared, padded)
    cp.ctap.client_pin(cp.protocol.VERSION, ClientPin.CMD.SET_PIN, key_agreement=key_agreement,
                       new_pin_enc=enc, pin_uv_param=cp.protocol.authenticate(shared, enc))


def _change_pin_padded(cp: ClientPin, old: str, padded: bytes) -> None:
    key_agreement, shared = cp._get_shared_secret()
    hash_enc = cp.protocol.encrypt(shared, lpk.hashlib.sha256(old.encode()).digest()[:16])
    new_enc = cp.protocol.encrypt(shared, padded)
    cp.ctap.client_pin(cp.protocol.VERSION, ClientPin.CMD.CHANGE_PIN, key_agreement=key_agreement,
                       pin_hash_enc=hash_enc, new_pin_enc=new_enc,
                       pin_uv_param=cp.protocol.authenticate(shared, new_enc + hash_enc))


# --------------------------------------------------------------------------- set, change, no PIN


def test_no_pin_means_nothing_is_signed(make_daemon):
    """alwaysUv and no PIN: MakeCredential and GetAssertion give CTAP2_ERR_PIN_NOT_SET."""
    d = make_daemon(pin=None)
    ctap2 = d.ctap2()
    d.presence("deny")
    assert _mc_status(ctap2) == lpk.PIN_NOT_SET
    _, cdh = lpk.client_data_hash()
    assert _err(ctap2.get_assertion, RP_ID, cdh) == lpk.PIN_NOT_SET
    assert _err(ctap2.get_assertion, RP_ID, cdh, options={"up": False}) == lpk.PIN_NOT_SET
    assert d.pending_presence() == ["deny"], "asked the person although nothing can be verified"
    cp = d.client_pin(2, ctap2)
    assert _err(cp.get_pin_token, lpk.PIN, MC | GA, RP_ID) == lpk.PIN_NOT_SET
    assert _err(cp.change_pin, lpk.PIN, "98765") == lpk.PIN_NOT_SET
    assert _err(cp.get_uv_token, GA, RP_ID) not in (lpk.CTAP2_OK, lpk.OTHER)
    assert d.pending_presence() == ["deny"]
    # A platform's "touch, and tell me whether a PIN is set" probe (zero-length
    # pinUvAuthParam, CTAP 2.1 §6.1.2 step 1): presence, then PIN_NOT_SET.
    d.presence("approve", "deny")
    _, cdh = lpk.client_data_hash()
    status = _err(ctap2.make_credential, cdh, {"id": RP_ID}, {"id": b"u", "name": "u"}, ES256,
                  pin_uv_param=b"", pin_uv_protocol=2)
    assert status == lpk.PIN_NOT_SET, lpk.status_name(status)
    assert d.pending_presence() == ["deny"], "the probe did not ask for presence"
    # A WebAuthn client sees alwaysUv with nothing configured and gives up itself.
    d.presence()
    with pytest.raises(ClientError) as e:
        lpk.RelyingParty().register(d.client())
    assert e.value.code == ClientError.ERR.CONFIGURATION_UNSUPPORTED, e.value
    assert d.list_json() == []


def test_set_change_and_use_pin(make_daemon, protocol):
    d = make_daemon(pin=None)
    ctap2 = d.ctap2()
    cp = d.client_pin(protocol, ctap2)
    first = "8642"
    cp.set_pin(first)
    assert ctap2.get_info().options["clientPin"] is True
    assert _retries(cp) == (8, False, 8)
    # setPIN when a PIN is set: CTAP2_ERR_PIN_AUTH_INVALID (CTAP 2.1 and 2.2
    # §6.5.5.5 step 3), and the PIN is unchanged.
    assert _err(cp.set_pin, "99999") == lpk.PIN_AUTH_INVALID
    # changePIN with a wrong current PIN: PIN_INVALID, one try gone.
    assert _err(cp.change_pin, WRONG, lpk.PIN) == lpk.PIN_INVALID
    assert _retries(cp) == (7, False, 7)
    cp.change_pin(first, lpk.PIN)
    assert _retries(cp) == (8, False, 8), "a right PIN did not restore the retries"
    # The old PIN is gone, the new one works.
    assert _err(cp.get_pin_token, first, MC | GA, RP_ID) == lpk.PIN_INVALID
    assert _retries(cp) == (7, False, 7)
    token = cp.get_pin_token(lpk.PIN, MC | GA, RP_ID)
    assert _retries(cp) == (8, False, 8)
    cred = _mc(ctap2, token, protocol)
    # The built-in prompt now types the new PIN (--script-pin) and is accepted.
    _ga(ctap2, cred)
    # The PIN set with "99999" never took.
    assert _err(cp.get_pin_token, "99999", GA, RP_ID) == lpk.PIN_INVALID


def test_pin_policy(make_daemon, protocol):
    """At least 4 code points, at most 63 bytes: else CTAP2_ERR_PIN_POLICY_VIOLATION (0x37)."""
    d = make_daemon(pin=None)
    ctap2 = d.ctap2()
    cp = d.client_pin(protocol, ctap2)
    for bad in (b"123", "äää".encode(), b"1" * 64):
        status = _err(_set_pin_padded, cp, _pad(bad))
        assert status == lpk.PIN_POLICY_VIOLATION, f"{bad!r}: {lpk.status_name(status)}"
        assert ctap2.get_info().options["clientPin"] is False, f"{bad!r} was set"
    # Four code points in eight bytes is long enough.
    _set_pin_padded(cp, _pad("ääää".encode()))
    assert ctap2.get_info().options["clientPin"] is True
    token = cp.get_pin_token("ääää", GA, RP_ID)
    assert len(token) == 32
    # Changing to a bad PIN is refused and leaves the old one (and no try lost).
    for bad in (b"12", b"7" * 64):
        status = _err(_change_pin_padded, cp, "ääää", _pad(bad))
        assert status == lpk.PIN_POLICY_VIOLATION, f"{bad!r}: {lpk.status_name(status)}"
    assert _retries(cp) == (8, False, 8)
    # 63 bytes is the longest allowed.
    longest = "7" * 63
    _change_pin_padded(cp, "ääää", _pad(longest.encode()))
    assert _err(cp.get_pin_token, "ääää", GA, RP_ID) == lpk.PIN_INVALID
    cp.get_pin_token(longest, GA, RP_ID)


# --------------------------------------------------------------------------- tokens


def test_pin_token_needs_presence_then_is_spent(daemon, protocol):
    """A token from the PIN carries no presence: MC/GA using it ask once; after
    an MC/GA that collected presence its mc/ga permissions are spent."""
    ctap2 = daemon.ctap2()
    cp = daemon.client_pin(protocol, ctap2)
    token = cp.get_pin_token(daemon.pin, MC | GA, RP_ID)
    daemon.presence("approve", "deny")
    cred = _mc(ctap2, token, protocol)
    assert daemon.pending_presence() == ["deny"], "MakeCredential with a PIN token did not ask for presence"
    # Spent: neither MC nor GA accepts it now, and no prompt is shown.
    assert _ga_status(ctap2, cred, token, protocol) == lpk.PIN_AUTH_INVALID
    assert _mc_status(ctap2, token, protocol) == lpk.PIN_AUTH_INVALID
    assert _ga_status(ctap2, cred, token, protocol, up=False) == lpk.PIN_AUTH_INVALID
    assert daemon.pending_presence() == ["deny"]
    # A GA token: presence denied → OPERATION_DENIED, nothing signed.
    token = cp.get_pin_token(daemon.pin, GA, RP_ID)
    assert _ga_status(ctap2, cred, token, protocol) == lpk.OPERATION_DENIED
    assert daemon.pending_presence() == []
    # Not spent by the refusal: approved now, it signs (UP=1, UV=1)...
    a = _ga(ctap2, cred, token, protocol)
    assert a.auth_data.counter == 1
    # ... and is spent.
    assert _ga_status(ctap2, cred, token, protocol) == lpk.PIN_AUTH_INVALID


def test_uv_token_carries_presence(daemon, protocol):
    """getPinUvAuthTokenUsingUvWithPermissions (subcommand 6) pops one verification
    line (the PIN typed into our prompt, which is presence too); the MC using it asks nothing."""
    ctap2 = daemon.ctap2()
    cp = daemon.client_pin(protocol, ctap2)
    daemon.presence("approve", "deny")
    token = cp.get_uv_token(MC | GA, RP_ID)
    assert daemon.pending_presence() == ["deny"], "subcommand 6 did not use the prompt exactly once"
    cred = _mc(ctap2, token, protocol)
    assert daemon.pending_presence() == ["deny"], "MakeCredential asked again despite a UV token"
    assert _ga_status(ctap2, cred, token, protocol) == lpk.PIN_AUTH_INVALID, "token not spent"
    # A wrong PIN at our prompt: UV_INVALID, one try gone from the shared counter.
    daemon.presence("pin 000000")
    assert _err(cp.get_uv_token, GA, RP_ID) == lpk.UV_INVALID
    assert _retries(cp) == (7, False, 7)
    # Denied, or nobody there: no token.
    daemon.presence("deny")
    assert _err(cp.get_uv_token, GA, RP_ID) == lpk.OPERATION_DENIED
    assert _retries(cp) == (7, False, 7)
    # The right PIN typed explicitly: a GA token, and the counter restored.
    daemon.presence(f"pin {lpk.PIN}", "deny")
    token = cp.get_uv_token(GA, RP_ID)
    assert _retries(cp) == (8, False, 8)
    _ga(ctap2, cred, token, protocol)
    assert daemon.pending_presence() == ["deny"]


def test_exclude_list_match_with_pin_token_asks_presence_first(daemon, protocol):
    """CTAP 2.1 §6.1.2 step 12: a matching excludeList entry is revealed only
    after presence; a PIN token carries none, so the daemon asks."""
    ctap2 = daemon.ctap2()
    att, _ = _mc(ctap2)
    excluded = [{"type": "public-key", "id": att.auth_data.credential_data.credential_id}]
    cp = daemon.client_pin(protocol, ctap2)
    daemon.presence("deny", "approve", "deny")
    token = cp.get_pin_token(daemon.pin, MC, RP_ID)
    assert _err(_mc, ctap2, token, protocol, exclude_list=excluded) == lpk.OPERATION_DENIED
    assert _err(_mc, ctap2, token, protocol, exclude_list=excluded) == lpk.CREDENTIAL_EXCLUDED
    assert daemon.pending_presence() == ["deny"]
    assert len(daemon.list_json()) == 1


def test_legacy_get_pin_token_binds_at_first_use(daemon, protocol):
    """getPinToken (subcommand 5, CTAP 2.0): mc|ga for whichever RP uses it first."""
    ctap2 = daemon.ctap2()
    cred = _mc(ctap2)
    other = _mc(ctap2, rp_id=OTHER_RP)
    cp = daemon.client_pin(protocol, ctap2)
    token = cp.get_pin_token(daemon.pin)  # no permissions: the legacy subcommand
    daemon.presence("deny")
    _ga(ctap2, cred, token, protocol, up=False)
    assert _ga_status(ctap2, other, token, protocol, rp_id=OTHER_RP, up=False) == lpk.PIN_AUTH_INVALID
    _ga(ctap2, cred, token, protocol, up=False)
    assert daemon.pending_presence() == ["deny"]


def test_token_bound_to_its_rp(daemon, protocol):
    ctap2 = daemon.ctap2()
    other = _mc(ctap2, rp_id=OTHER_RP)
    cp = daemon.client_pin(protocol, ctap2)
    token = cp.get_pin_token(daemon.pin, MC | GA, RP_ID)
    daemon.presence("deny")
    assert _mc_status(ctap2, token, protocol, rp_id=OTHER_RP) == lpk.PIN_AUTH_INVALID
    assert _ga_status(ctap2, other, token, protocol, rp_id=OTHER_RP, up=False) == lpk.PIN_AUTH_INVALID
    assert _ga_status(ctap2, other, token, protocol, rp_id=OTHER_RP) == lpk.PIN_AUTH_INVALID
    assert daemon.pending_presence() == ["deny"], "a token for another RP reached the prompt"
    # The token itself is fine for its own RP.
    daemon.presence()
    _mc(ctap2, token, protocol)


def test_token_permissions(daemon, protocol):
    ctap2 = daemon.ctap2()
    cred = _mc(ctap2)
    cp = daemon.client_pin(protocol, ctap2)
    daemon.presence("deny")
    ga_only = cp.get_pin_token(daemon.pin, GA, RP_ID)
    assert _mc_status(ctap2, ga_only, protocol) == lpk.PIN_AUTH_INVALID
    _ga(ctap2, cred, ga_only, protocol, up=False)
    mc_only = cp.get_pin_token(daemon.pin, MC, RP_ID)
    # A new token replaces the old one.
    assert _ga_status(ctap2, cred, ga_only, protocol, up=False) == lpk.PIN_AUTH_INVALID
    assert _ga_status(ctap2, cred, mc_only, protocol, up=False) == lpk.PIN_AUTH_INVALID
    assert _ga_status(ctap2, cred, mc_only, protocol) == lpk.PIN_AUTH_INVALID
    assert daemon.pending_presence() == ["deny"]
    # A wrong MAC (a token made up by the platform) is refused the same way.
    assert _ga_status(ctap2, cred, os.urandom(32), protocol, up=False) == lpk.PIN_AUTH_INVALID
    # A permission this authenticator cannot grant (bio enrolment: there are no
    # biometrics): CTAP2_ERR_UNAUTHORIZED_PERMISSION, before the PIN is even checked.
    assert _err(cp.get_pin_token, WRONG, ClientPin.PERMISSION.BIO_ENROLL, None) == lpk.UNAUTHORIZED_PERMISSION
    # The CTAP 2.1 ones it can: credential management, config, large blobs.
    for perm in (ClientPin.PERMISSION.CREDENTIAL_MGMT, ClientPin.PERMISSION.AUTHENTICATOR_CFG,
                 ClientPin.PERMISSION.LARGE_BLOB_WRITE):
        assert len(cp.get_pin_token(daemon.pin, perm, None)) == 32
    # mc/ga need an RP ID; no permissions at all is invalid.
    assert _err(cp.get_pin_token, daemon.pin, GA, None) == lpk.MISSING_PARAMETER
    assert _err(cp.get_pin_token, daemon.pin, 0, RP_ID) == lpk.INVALID_PARAMETER
    assert _retries(cp) == (8, False, 8)
    assert daemon.pending_presence() == ["deny"]


def test_pin_change_and_power_cycle_revoke_tokens(daemon, protocol):
    ctap2 = daemon.ctap2()
    cred = _mc(ctap2)
    cp = daemon.client_pin(protocol, ctap2)
    token = cp.get_pin_token(daemon.pin, GA, RP_ID)
    _ga(ctap2, cred, token, protocol, up=False)
    daemon.change_pin(daemon.pin, "97531", protocol)
    assert _ga_status(ctap2, cred, token, protocol, up=False) == lpk.PIN_AUTH_INVALID
    token = cp.get_pin_token("97531", GA, RP_ID)
    _ga(ctap2, cred, token, protocol, up=False)
    daemon.power_cycle()
    ctap2 = daemon.ctap2()
    assert _ga_status(ctap2, cred, token, protocol, up=False) == lpk.PIN_AUTH_INVALID
    # The credentials made under the old PIN still sign with the new one.
    _ga(ctap2, cred, daemon.client_pin(protocol, ctap2).get_pin_token("97531", GA, RP_ID), protocol, up=False)


@pytest.mark.slow
@pytest.mark.custody("tpm")
def test_token_expires_after_30_s_idle(daemon):
    """The token's idle limit (30 s, every use extends it) - the one long sleep of the suite."""
    ctap2 = daemon.ctap2()
    cred = _mc(ctap2)
    cp = daemon.client_pin(2, ctap2)
    token = cp.get_pin_token(daemon.pin, GA, RP_ID)
    _ga(ctap2, cred, token, 2, up=False)
    time.sleep(31)
    daemon.presence("deny")
    assert _ga_status(ctap2, cred, token, 2, up=False) == lpk.PIN_AUTH_INVALID
    assert _ga_status(ctap2, cred, token, 2) == lpk.PIN_AUTH_INVALID
    assert daemon.pending_presence() == ["deny"]
    # A fresh token works.
    _ga(ctap2, cred, cp.get_pin_token(daemon.pin, GA, RP_ID), 2, up=False)


# --------------------------------------------------------------------------- retries


def test_wrong_pins_decrement_and_the_count_survives_sigkill(daemon, protocol):
    ctap2 = daemon.ctap2()
    cp = daemon.client_pin(protocol, ctap2)
    assert _retries(cp) == (8, False, 8)
    assert _err(cp.get_pin_token, WRONG, GA, RP_ID) == lpk.PIN_INVALID
    assert _retries(cp) == (7, False, 7)
    assert _err(cp.get_pin_token, "0000", GA, RP_ID) == lpk.PIN_INVALID
    assert _retries(cp) == (6, False, 6)
    daemon.kill()
    daemon.start()
    cp = daemon.client_pin(protocol)
    assert _retries(cp) == (6, False, 6), "a SIGKILL gave tries back"
    daemon.restart()
    cp = daemon.client_pin(protocol)
    assert _retries(cp) == (6, False, 6), "a restart gave tries back"
    cp.get_pin_token(daemon.pin, GA, RP_ID)
    assert _retries(cp) == (8, False, 8)


def test_three_wrong_pins_need_a_power_cycle(daemon, protocol):
    """3 consecutive failures: PIN_AUTH_BLOCKED even for the right PIN, retries
    untouched, powerCycleState true - through restarts and SIGKILL; only a power cycle clears it."""
    ctap2 = daemon.ctap2()
    cp = daemon.client_pin(protocol, ctap2)
    codes = [_err(cp.get_pin_token, WRONG, GA, RP_ID) for _ in range(3)]
    assert codes == [lpk.PIN_INVALID, lpk.PIN_INVALID, lpk.PIN_AUTH_BLOCKED], [lpk.status_name(c) for c in codes]
    assert _retries(cp) == (5, True, 5)

    def still_blocked(cp, ctap2, where):
        assert _err(cp.get_pin_token, daemon.pin, GA, RP_ID) == lpk.PIN_AUTH_BLOCKED, where
        assert _err(cp.get_pin_token, WRONG, GA, RP_ID) == lpk.PIN_AUTH_BLOCKED, where
        assert _err(cp.change_pin, daemon.pin, "97531") == lpk.PIN_AUTH_BLOCKED, where
        # Built-in UV is the same PIN: refused before any prompt.
        daemon.presence("deny")
        assert _mc_status(ctap2) == lpk.PIN_AUTH_BLOCKED, where
        assert daemon.pending_presence() == ["deny"], f"{where}: prompted while blocked"
        daemon.presence()
        assert _retries(cp) == (5, True, 5), f"{where}: retries changed while blocked"

    still_blocked(cp, ctap2, "same boot")
    daemon.restart()
    ctap2 = daemon.ctap2()
    still_blocked(daemon.client_pin(protocol, ctap2), ctap2, "after a restart")
    daemon.kill()
    daemon.start()
    ctap2 = daemon.ctap2()
    still_blocked(daemon.client_pin(protocol, ctap2), ctap2, "after SIGKILL")
    daemon.power_cycle()
    ctap2 = daemon.ctap2()
    cp = daemon.client_pin(protocol, ctap2)
    assert _retries(cp) == (5, False, 5)
    cred = _mc(ctap2, cp.get_pin_token(daemon.pin, MC, RP_ID), protocol)
    assert _retries(cp) == (8, False, 8)
    _ga(ctap2, cred)


def test_eight_wrong_pins_block_for_good(daemon, protocol):
    ctap2 = daemon.ctap2()
    cred = _mc(ctap2)
    cp = daemon.client_pin(protocol, ctap2)
    seen = []
    for attempt in range(8):
        if attempt in (3, 6):
            daemon.power_cycle()
            ctap2 = daemon.ctap2()
            cp = daemon.client_pin(protocol, ctap2)
        seen.append((_err(cp.get_pin_token, WRONG, GA, RP_ID), cp.get_pin_retries()))
    I, A, B = lpk.PIN_INVALID, lpk.PIN_AUTH_BLOCKED, lpk.PIN_BLOCKED
    assert seen == [
        (I, (7, False)), (I, (6, False)), (A, (5, True)),
        (I, (4, False)), (I, (3, False)), (A, (2, True)),
        (I, (1, False)), (B, (0, False)),
    ], seen

    def blocked_for_good(cp, ctap2, where):
        assert _err(cp.get_pin_token, daemon.pin, GA, RP_ID) == lpk.PIN_BLOCKED, where
        assert _err(cp.change_pin, daemon.pin, "97531") == lpk.PIN_BLOCKED, where
        daemon.presence("deny")
        assert _err(cp.get_uv_token, GA, RP_ID) == lpk.UV_BLOCKED, where
        assert _mc_status(ctap2) == lpk.UV_BLOCKED, where
        assert _ga_status(ctap2, cred) == lpk.UV_BLOCKED, where
        assert daemon.pending_presence() == ["deny"], f"{where}: prompted although blocked"
        daemon.presence()
        assert cp.get_pin_retries()[0] == 0 and cp.get_uv_retries() == 0, where
        assert ctap2.get_info().options["clientPin"] is True, where

    blocked_for_good(cp, ctap2, "same boot")
    daemon.power_cycle()
    ctap2 = daemon.ctap2()
    blocked_for_good(daemon.client_pin(protocol, ctap2), ctap2, "after a power cycle")
    daemon.restart()
    ctap2 = daemon.ctap2()
    blocked_for_good(daemon.client_pin(protocol, ctap2), ctap2, "after a restart")
    # Only Reset (within 10 s of power-up, with presence) helps, and it erases everything.
    daemon.power_cycle()
    daemon.ctap2().reset()
    assert daemon.list_json() == []
    daemon.set_pin(lpk.PIN, protocol)
    assert _retries(daemon.client_pin(protocol)) == (8, False, 8)
    _mc(daemon.ctap2())


def test_built_in_uv_wrong_pin(daemon):
    """A wrong PIN typed into our own prompt: CTAP2_ERR_UV_INVALID, and the shared counter drops."""
    ctap2 = daemon.ctap2()
    cp = daemon.client_pin(2, ctap2)
    daemon.presence("pin 000000")
    assert _mc_status(ctap2) == lpk.UV_INVALID
    assert _retries(cp) == (7, False, 7)
    assert daemon.list_json() == []
    daemon.presence(f"pin {lpk.PIN}")
    cred = _mc(ctap2)
    assert _retries(cp) == (8, False, 8)
    daemon.presence("pin 000000", "pin 000001", "pin 000002", "approve")
    codes = [_ga_status(ctap2, cred) for _ in range(3)]
    assert codes == [lpk.UV_INVALID, lpk.UV_INVALID, lpk.PIN_AUTH_BLOCKED], [lpk.status_name(c) for c in codes]
    assert _retries(cp) == (5, True, 5)
    assert _ga_status(ctap2, cred) == lpk.PIN_AUTH_BLOCKED
    assert daemon.pending_presence() == ["approve"], "prompted while blocked"
    daemon.power_cycle()
    ctap2 = daemon.ctap2()
    a = _ga(ctap2, cred)  # the queued `approve` types --script-pin
    assert a.auth_data.counter == 1
    assert _retries(daemon.client_pin(2, ctap2)) == (8, False, 8)


# --------------------------------------------------------------------------- the command line


def _pin_cli(daemon, action: str, *lines: str):
    return lpk.run_cli("pin", action, "--to", daemon.target, "--pin-stdin",
                       input="".join(l + "\n" for l in lines))


def test_pin_command_line(make_daemon):
    d = make_daemon(pin=None)
    r = lpk.run_cli("pin", "status", "--to", d.target)
    assert r.returncode == 0, r.stderr
    assert "no pin" in r.stdout.lower(), r.stdout

    r = _pin_cli(d, "set", "4321", "4312")
    assert r.returncode != 0 and "differ" in r.stderr.lower(), (r.stdout, r.stderr)
    r = _pin_cli(d, "set", "123", "123")
    assert r.returncode != 0 and "4" in r.stderr, (r.stdout, r.stderr)
    assert d.ctap2().get_info().options["clientPin"] is False

    r = _pin_cli(d, "set", "4321", "4321")
    assert r.returncode == 0, r.stderr
    assert "pin set" in r.stdout.lower(), r.stdout
    r = lpk.run_cli("pin", "status", "--to", d.target)
    assert "8 of 8" in r.stdout, r.stdout
    r = _pin_cli(d, "set", "5555", "5555")
    assert r.returncode != 0 and "already" in r.stderr.lower(), (r.stdout, r.stderr)

    r = _pin_cli(d, "change", "0000", lpk.PIN, lpk.PIN)
    assert r.returncode != 0, r.stdout
    assert "wrong pin" in r.stderr.lower() and "7" in r.stderr, r.stderr
    assert "7 of 8" in lpk.run_cli("pin", "status", "--to", d.target).stdout
    r = _pin_cli(d, "change", "4321", lpk.PIN, lpk.PIN + "0")
    assert r.returncode != 0 and "differ" in r.stderr.lower(), r.stderr
    r = _pin_cli(d, "change", "4321", lpk.PIN, lpk.PIN)
    assert r.returncode == 0, r.stderr
    assert "changed" in r.stdout.lower(), r.stdout
    assert "8 of 8" in lpk.run_cli("pin", "status", "--to", d.target).stdout
    d.pin = lpk.PIN

    # The PIN set by the command line is the one the authenticator checks.
    cp = d.client_pin(2)
    assert _err(cp.get_pin_token, "4321", GA, RP_ID) == lpk.PIN_INVALID
    rp = lpk.RelyingParty()
    reg = rp.register(d.client(), resident_key="required")
    assert rp.authenticate(d.client())[0].credential_id == reg.credential_id

    # Three wrong: the command line says a power cycle is needed.
    for _ in range(2):
        _pin_cli(d, "change", "0000", "1111", "1111")
    r = _pin_cli(d, "change", "0000", "1111", "1111")
    assert r.returncode != 0 and "power" in r.stderr.lower(), r.stderr
    r = lpk.run_cli("pin", "status", "--to", d.target)
    assert "power" in r.stdout.lower(), r.stdout
