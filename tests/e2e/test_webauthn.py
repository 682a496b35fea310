"""WebAuthn ceremonies through fido2.client.Fido2Client, every answer verified
by fido2.server.Fido2Server and by py_webauthn (see lpk.RelyingParty)."""

from __future__ import annotations

import os

import pytest
from fido2.client import ClientError
from fido2.ctap import CtapError
from fido2.ctap2 import AttestationResponse
from fido2.server import Fido2Server
from fido2.webauthn import AttestationObject

import lpk


def test_register_and_authenticate_non_discoverable(daemon, rp):
    interaction = lpk.RecordingInteraction(daemon.pin)
    client = daemon.client(interaction=interaction)
    reg = rp.register(client, user_name="alice", resident_key="discouraged")
    # alwaysUv + built-in UV: the client asked for a UV token (subcommand 6),
    # never for the PIN, and the daemon's own prompt answered once.
    assert (interaction.uv_requests, interaction.pin_requests) == (1, 0)
    assert reg.sign_count == 0
    assert reg.fmt == "packed"
    for _ in range(3):
        used = rp.authenticate(client, allow=[reg.credential_id])
        assert [u.credential_id for u in used] == [reg.credential_id]
    assert len(reg.counters) == 3 and reg.counters == sorted(set(reg.counters))
    # A non-discoverable credential is not found without an allowList.
    with pytest.raises(ClientError) as e:
        rp.authenticate(client, allow=None)
    assert lpk.ctap_error(e) == lpk.NO_CREDENTIALS, lpk.status_name(lpk.ctap_error(e))


def test_register_and_authenticate_discoverable(daemon, rp):
    client = daemon.client()
    user_id = os.urandom(32)
    reg = rp.register(client, user_id=user_id, user_name="bob", resident_key="required")
    used = rp.authenticate(client, allow=None)
    assert [u.credential_id for u in used] == [reg.credential_id]
    # Also usable with an allowList.
    used = rp.authenticate(client, allow=[reg.credential_id])
    assert [u.credential_id for u in used] == [reg.credential_id]
    assert reg.counters[1] > reg.counters[0] > 0


@pytest.mark.parametrize("uv", ["discouraged", "preferred", "required"])
def test_every_user_verification_preference_is_verified(daemon, rp, uv):
    """alwaysUv: whatever the RP prefers, the ceremony is verified (UV=1, checked
    by both verifiers in RelyingParty) with exactly one prompt per ceremony."""
    interaction = lpk.RecordingInteraction(daemon.pin)
    client = daemon.client(interaction=interaction)
    daemon.presence("approve", "approve", "deny")
    reg = rp.register(client, resident_key="required", user_verification=uv)
    used = rp.authenticate(client, allow=None, user_verification=uv)
    assert used[0].credential_id == reg.credential_id
    assert daemon.pending_presence() == ["deny"], "not exactly one prompt per ceremony"
    assert (interaction.uv_requests, interaction.pin_requests) == (2, 0)


def test_uv_option_is_built_in_verification(daemon):
    """A platform may send uv=true instead of a token: the daemon's own prompt verifies."""
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    daemon.presence("approve", "deny")
    att = ctap2.make_credential(
        cdh, {"id": "example.com"}, {"id": b"u1", "name": "u"}, [{"type": "public-key", "alg": -7}],
        options={"uv": True, "rk": True},
    )
    lpk.check_flags(att.auth_data, up=True, at=True)
    cose = lpk.verify_attestation_twice(att, cdh)
    assert daemon.pending_presence() == ["deny"], "verification and presence were asked separately"
    daemon.presence("approve", "deny")
    a = ctap2.get_assertion("example.com", cdh, options={"uv": True})
    lpk.check_flags(a.auth_data, up=True)
    a.verify(cdh, att.auth_data.credential_data.public_key)  # fido2
    lpk.verify_es256(cose, bytes(a.auth_data) + cdh, a.signature)  # py_webauthn
    assert daemon.pending_presence() == ["deny"]


def test_uv_option_refused_without_built_in_uv(make_daemon):
    """`--presence approve` has no built-in UV (no `uv` in GetInfo): uv=true is
    CTAP2_ERR_INVALID_OPTION (CTAP 2.1 §6.1.2 step 5, §6.2.2 step 5)."""
    daemon = make_daemon(presence="approve")
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(
            cdh, {"id": "example.com"}, {"id": b"u1", "name": "u"}, [{"type": "public-key", "alg": -7}],
            options={"uv": True},
        )
    assert lpk.ctap_error(e) == lpk.INVALID_OPTION, lpk.status_name(lpk.ctap_error(e))
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh, options={"uv": True})
    assert lpk.ctap_error(e) == lpk.INVALID_OPTION, lpk.status_name(lpk.ctap_error(e))
    # Without a token, and unable to verify by itself, it needs one (CTAP 2.1 §6.1.2 step 6 / alwaysUv).
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(
            cdh, {"id": "example.com"}, {"id": b"u1", "name": "u"}, [{"type": "public-key", "alg": -7}],
        )
    assert lpk.ctap_error(e) == lpk.PUAT_REQUIRED, lpk.status_name(lpk.ctap_error(e))
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh)
    assert lpk.ctap_error(e) == lpk.PUAT_REQUIRED, lpk.status_name(lpk.ctap_error(e))
    assert daemon.list_json() == []


def test_make_credential_up_false_is_invalid_option(daemon):
    ctap2 = daemon.ctap2()
    daemon.presence("deny")  # refused before any prompt
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(
            cdh, {"id": "example.com"}, {"id": b"u1", "name": "u"}, [{"type": "public-key", "alg": -7}],
            options={"up": False},
        )
    assert lpk.ctap_error(e) == lpk.INVALID_OPTION, lpk.status_name(lpk.ctap_error(e))
    assert daemon.pending_presence() == ["deny"] and daemon.list_json() == []


def test_attestation_none_when_platform_asks(daemon):
    """attestationFormatsPreference ["none"] (CTAP 2.2 key 0x0B) gives fmt "none", empty attStmt."""
    ctap2 = daemon.ctap2()
    rp = lpk.RelyingParty("example.com", attestation="none")
    user_id = os.urandom(16)
    options, state = rp.server.register_begin({"id": user_id, "name": "carol", "displayName": "Carol"})
    challenge = options.public_key.challenge
    client_data, cdh = lpk.client_data_hash(challenge, kind="webauthn.create")
    resp = ctap2.send_cbor(
        lpk.CMD_MAKE_CREDENTIAL,
        {
            1: cdh,
            2: {"id": "example.com", "name": "Example"},
            3: {"id": user_id, "name": "carol", "displayName": "Carol"},
            4: [{"type": "public-key", "alg": -7}],
            0x0B: ["none"],
        },
    )
    att = AttestationResponse.from_dict(resp)
    assert att.fmt == "none", f"fmt {att.fmt!r}"
    assert att.att_stmt == {}, f"attStmt {att.att_stmt}"
    # The AAGUID stays ours: it is the platform's business to hide it.
    assert att.auth_data.credential_data.aaguid == lpk.AAGUID
    response = _registration_response(client_data, att)
    reg = rp.complete_registration(state, challenge, response, user_id, False, "none")
    # And the credential works.
    client = daemon.client()
    used = rp.authenticate(client, allow=[reg.credential_id])
    assert used[0].credential_id == reg.credential_id


def test_attestation_none_preference_through_client(daemon):
    """An RP asking attestation "none" accepts our (unstripped) packed statement."""
    client = daemon.client()
    rp = lpk.RelyingParty("example.com", attestation="none")
    reg = rp.register(client, resident_key="required", expect_fmt="packed")
    assert rp.authenticate(client)[0].credential_id == reg.credential_id


def _check_user_entity(user: dict, reg: lpk.Registered, names_required: bool) -> None:
    """CTAP 2.1 §6.2.2, member `user` (0x04): the id always; for several
    accounts on an authenticator without a display, the other fields too;
    name/displayName never without user verification (which is always done
    here: alwaysUv)."""
    assert user is not None and user.get("id") == reg.user_id, f"user entity {user}"
    assert set(user) <= {"id", "name", "displayName"}, f"user entity {user}"
    if names_required:
        assert "name" in user, f"several accounts, UV done, but no name to choose by: {user}"
    if "name" in user:
        assert user["name"] == reg.user_name, f"user entity {user}, registered as {reg.user_name!r}"
    if "displayName" in user:
        assert user["displayName"] == reg.user_name.title(), f"user entity {user}"


def _registration_response(client_data, att: AttestationResponse):
    from fido2.webauthn import AuthenticatorAttestationResponse, RegistrationResponse

    att_obj = AttestationObject.create(att.fmt, att.auth_data, att.att_stmt)
    return RegistrationResponse(
        raw_id=att.auth_data.credential_data.credential_id,
        response=AuthenticatorAttestationResponse(client_data=client_data, attestation_object=att_obj),
    )


def test_exclude_list_gives_credential_excluded_after_presence(daemon, rp):
    client = daemon.client()
    reg = rp.register(client, user_name="dave")
    # Through the client: it gets a UV token (the prompt: presence too),
    # pre-flights silently with it, then sends the match in excludeList.
    daemon.presence("approve", "deny")
    with pytest.raises(ClientError) as e:
        rp.register(client, user_name="dave", exclude=[reg.credential_id])
    assert lpk.ctap_error(e) == lpk.CREDENTIAL_EXCLUDED, lpk.status_name(lpk.ctap_error(e))
    assert daemon.pending_presence() == ["deny"], "CREDENTIAL_EXCLUDED came without asking for presence"

    # Raw, no token: the built-in UV prompt comes first; denied, it gives
    # OPERATION_DENIED, not a silent answer.
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    args = (cdh, {"id": "example.com"}, {"id": b"x", "name": "x"}, [{"type": "public-key", "alg": -7}])
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(*args, exclude_list=[{"type": "public-key", "id": reg.credential_id}])
    assert lpk.ctap_error(e) == lpk.OPERATION_DENIED, lpk.status_name(lpk.ctap_error(e))
    assert daemon.pending_presence() == []
    # An excludeList entry for another RP, or unknown, does not block.
    other = rp.credentials[reg.credential_id]
    att = ctap2.make_credential(
        cdh, {"id": "other.example"}, {"id": b"x", "name": "x"}, [{"type": "public-key", "alg": -7}],
        exclude_list=[{"type": "public-key", "id": other.credential_id}, {"type": "public-key", "id": os.urandom(32)}],
    )
    assert att.auth_data.credential_data is not None
    # Nothing new was stored for example.com by the refused requests.
    assert [c["rp_id"] for c in daemon.list_json()].count("example.com") == 1


def test_unsupported_algorithm(daemon, rp):
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    daemon.presence("deny")
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(cdh, {"id": "example.com"}, {"id": b"u", "name": "u"},
                              [{"type": "public-key", "alg": -8}])  # EdDSA: no TPM here has it
    assert lpk.ctap_error(e) == lpk.UNSUPPORTED_ALGORITHM, lpk.status_name(lpk.ctap_error(e))
    assert daemon.pending_presence() == ["deny"], "asked for presence before refusing the algorithm"
    # Unknown type with ES256 is not acceptable either.
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(cdh, {"id": "example.com"}, {"id": b"u", "name": "u"},
                              [{"type": "not-a-key", "alg": -7}])
    assert lpk.ctap_error(e) == lpk.UNSUPPORTED_ALGORITHM, lpk.status_name(lpk.ctap_error(e))
    daemon.presence()
    # A list where ES256 comes after an unsupported one: ES256 is chosen.
    att = ctap2.make_credential(cdh, {"id": "example.com"}, {"id": b"u", "name": "u"},
                                [{"type": "public-key", "alg": -8}, {"type": "public-key", "alg": -7}])
    assert att.auth_data.credential_data.public_key[3] == lpk.ES256
    assert daemon.list_json() and len(daemon.list_json()) == 1

    # Through a WebAuthn client, an RP offering only EdDSA fails too.
    server = Fido2Server({"id": "example.com", "name": "x"})
    server.allowed_algorithms = [p for p in server.allowed_algorithms if p.alg == -8]
    options, _ = server.register_begin({"id": b"u2", "name": "u2", "displayName": "U2"})
    with pytest.raises(ClientError) as e:
        daemon.client().make_credential(options.public_key)
    assert lpk.ctap_error(e) == lpk.UNSUPPORTED_ALGORITHM


def test_same_rp_same_user_replaces_discoverable_credential(daemon, rp):
    client = daemon.client()
    user_id = os.urandom(16)
    old = rp.register(client, user_id=user_id, user_name="erin", resident_key="required")
    other = rp.register(client, user_id=os.urandom(16), user_name="frank", resident_key="required")
    new = rp.register(client, user_id=user_id, user_name="erin2", resident_key="required")
    assert new.credential_id != old.credential_id

    stored = {bytes.fromhex(c["credential_id"]) for c in daemon.list_json()}
    assert stored == {new.credential_id, other.credential_id}, "old credential not replaced"

    # Discovery returns the two current accounts, newest first.
    used = rp.authenticate(client, allow=None)
    assert [u.credential_id for u in used] == [new.credential_id, other.credential_id]
    # The old one is gone for good.
    with pytest.raises(ClientError) as e:
        rp.authenticate(client, allow=[old.credential_id])
    assert lpk.ctap_error(e) == lpk.NO_CREDENTIALS


def test_same_user_non_discoverable_does_not_replace(daemon, rp):
    client = daemon.client()
    user_id = os.urandom(16)
    a = rp.register(client, user_id=user_id, resident_key="discouraged")
    b = rp.register(client, user_id=user_id, resident_key="discouraged")
    assert {bytes.fromhex(c["credential_id"]) for c in daemon.list_json()} == {a.credential_id, b.credential_id}
    assert rp.authenticate(client, allow=[a.credential_id])[0].credential_id == a.credential_id
    assert rp.authenticate(client, allow=[b.credential_id])[0].credential_id == b.credential_id


def test_several_discoverable_credentials_and_get_next_assertion(daemon, rp):
    client = daemon.client()
    users = [os.urandom(16) for _ in range(3)]
    regs = [rp.register(client, user_id=u, user_name=f"user{i}", resident_key="required") for i, u in enumerate(users)]
    # Noise that must not show up: a non-discoverable credential for the same RP,
    # and a discoverable one for another RP.
    rp.register(client, user_name="hidden", resident_key="discouraged")
    lpk.RelyingParty("other.example").register(daemon.client("https://other.example"), resident_key="required")

    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    first = ctap2.get_assertion("example.com", cdh)
    assert first.number_of_credentials == 3, f"numberOfCredentials {first.number_of_credentials}"
    rest = [ctap2.get_next_assertion() for _ in range(2)]
    answers = [first] + rest
    # Most recently created first.
    expected = [r.credential_id for r in reversed(regs)]
    assert [a.credential["id"] for a in answers] == expected
    for a in rest:
        assert a.number_of_credentials is None, "numberOfCredentials in a GetNextAssertion response"
    for a, reg in zip(answers, reversed(regs)):
        # Several accounts, no display, UV done: the platform gets the names to choose from.
        _check_user_entity(a.user, reg, names_required=True)
        lpk.check_flags(a.auth_data, up=True)
        assert a.auth_data.rp_id_hash == lpk.rp_id_hash("example.com")
        a.verify(cdh, reg.credential_data.public_key)  # fido2
        lpk.verify_es256(reg.public_key, bytes(a.auth_data) + cdh, a.signature)  # py_webauthn
        assert a.auth_data.counter > reg.sign_count
        reg.sign_count = a.auth_data.counter
    # The sequence is over.
    with pytest.raises(CtapError) as e:
        ctap2.get_next_assertion()
    assert lpk.ctap_error(e) == lpk.NOT_ALLOWED, lpk.status_name(lpk.ctap_error(e))

    # Through the WebAuthn client: all three come back, each verified twice.
    used = rp.authenticate(client, allow=None)
    assert [u.credential_id for u in used] == expected


def test_single_discoverable_credential_user_entity(daemon, rp):
    client = daemon.client()
    reg = rp.register(client, user_name="solo", resident_key="required")
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    a = ctap2.get_assertion("example.com", cdh)
    assert a.number_of_credentials in (None, 1)
    # One account: the id is what matters; the names may come too, UV having been done.
    _check_user_entity(a.user, reg, names_required=False)
    assert a.credential == {"type": "public-key", "id": reg.credential_id}


def test_get_next_assertion_without_pending(daemon, rp):
    ctap2 = daemon.ctap2()
    with pytest.raises(CtapError) as e:
        ctap2.get_next_assertion()
    assert lpk.ctap_error(e) == lpk.NOT_ALLOWED, lpk.status_name(lpk.ctap_error(e))
    # Also after another command came in between a GetAssertion and it.
    client = daemon.client()
    for i in range(2):
        rp.register(client, user_name=f"u{i}", resident_key="required")
    _, cdh = lpk.client_data_hash()
    assert ctap2.get_assertion("example.com", cdh).number_of_credentials == 2
    ctap2.get_info()
    with pytest.raises(CtapError) as e:
        ctap2.get_next_assertion()
    assert lpk.ctap_error(e) == lpk.NOT_ALLOWED, lpk.status_name(lpk.ctap_error(e))


def test_silent_assertion_up_false(daemon, rp):
    """up=false: no prompt at all, so verification must come as a token;
    without one, CTAP2_ERR_PUAT_REQUIRED (CTAP 2.1 §6.2.2 step 6, alwaysUv)."""
    client = daemon.client()
    reg = rp.register(client, resident_key="required")
    ctap2 = daemon.ctap2()
    daemon.presence("deny")  # would fail the request if the daemon asked
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh, options={"up": False})
    assert lpk.ctap_error(e) == lpk.PUAT_REQUIRED, lpk.status_name(lpk.ctap_error(e))
    assert daemon.pending_presence() == ["deny"], "a silent assertion without a token opened a prompt"

    token = daemon.client_pin(2, ctap2).get_pin_token(daemon.pin, lpk.PERM_GA, "example.com")
    before = reg.sign_count
    # The token is not spent by a silent assertion (no presence collected): use it twice.
    for allow in ([{"type": "public-key", "id": reg.credential_id}], None):
        _, cdh = lpk.client_data_hash()
        a = ctap2.get_assertion("example.com", cdh, allow_list=allow, options={"up": False},
                                **lpk.pin_uv_param(2, token, cdh))
        lpk.check_flags(a.auth_data, up=False)
        a.verify(cdh, reg.credential_data.public_key)
        lpk.verify_es256(reg.public_key, bytes(a.auth_data) + cdh, a.signature)
        assert a.auth_data.counter > before, "counter did not increase for a silent assertion"
        before = a.auth_data.counter
    assert daemon.pending_presence() == ["deny"], "a silent (up=false) assertion asked for presence"
    reg.sign_count = before
    daemon.presence()
    # A normal assertion afterwards continues the counter.
    used = rp.authenticate(client, allow=[reg.credential_id])
    assert used[0].counters[-1] > before


def test_rk_option_in_get_assertion_is_unsupported(daemon):
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh, options={"rk": True})
    assert lpk.ctap_error(e) == lpk.UNSUPPORTED_OPTION, lpk.status_name(lpk.ctap_error(e))


def test_wrong_rp_does_not_get_credential(daemon, rp):
    client = daemon.client()
    reg = rp.register(client, resident_key="required")
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    for allow in ([{"type": "public-key", "id": reg.credential_id}], None):
        with pytest.raises(CtapError) as e:
            ctap2.get_assertion("evil.example", cdh, allow_list=allow)
        assert lpk.ctap_error(e) == lpk.NO_CREDENTIALS, lpk.status_name(lpk.ctap_error(e))


def test_assertion_with_presence_denied(daemon, rp):
    client = daemon.client()
    reg = rp.register(client)
    daemon.presence("deny")
    with pytest.raises(ClientError) as e:
        rp.authenticate(client, allow=[reg.credential_id])
    assert lpk.ctap_error(e) == lpk.OPERATION_DENIED, lpk.status_name(lpk.ctap_error(e))
    assert daemon.pending_presence() == []
    # The credential still works, and the failed attempt did not break the counter.
    used = rp.authenticate(client, allow=[reg.credential_id])
    assert used[0].credential_id == reg.credential_id


def test_registration_with_presence_denied(daemon, rp):
    client = daemon.client()
    daemon.presence("deny")
    with pytest.raises(ClientError) as e:
        rp.register(client, resident_key="required")
    assert lpk.ctap_error(e) == lpk.OPERATION_DENIED, lpk.status_name(lpk.ctap_error(e))
    assert daemon.pending_presence() == []
    assert daemon.list_json() == [], "a denied registration stored a credential"
