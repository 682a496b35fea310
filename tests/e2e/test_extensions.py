"""Extensions through `Fido2Client` and fido2's extension classes, and raw
`Ctap2` calls: credProtect 1-3, hmac-secret (PIN protocols 1 and 2, one and
two salts, across a restart) and WebAuthn PRF, credBlob, largeBlobKey,
minPinLength. Both custodies."""

from __future__ import annotations

import pytest

from ctap_common import *  # noqa: F403 (the shared helpers and constants)


# --------------------------------------------------------------------------- credProtect


def test_cred_protect_is_applied_to_discovery_and_lists(daemon):
    rp = lpk.RelyingParty("protect.example")
    c = client(daemon, rp.rp_id)
    regs = {}
    for level, policy in enumerate(POLICY, start=1):
        regs[level] = rp.register(c, user_name=f"level{level}", resident_key="required",
                                  extensions={"credentialProtectionPolicy": policy.value})
        assert regs[level].authenticator_extensions == {"credProtect": level}
    # Raw MakeCredential: the level comes back as asked.
    raw3, att = raw_register(daemon, rp, "raw3", extensions={"credProtect": 3}, ed=True)
    assert att.auth_data.extensions == {"credProtect": 3}

    # Verified (alwaysUv: every use is), every level answers: by discovery
    # and by allowList, each assertion verified by both RP libraries.
    found = {r.credential_id for r in rp.authenticate(client(daemon, rp.rp_id), allow=None)}
    assert found == {r.credential_id for r in rp.credentials.values()}
    for reg in regs.values():
        assert rp.authenticate(client(daemon, rp.rp_id), allow=[reg.credential_id])[0] is reg

    # A silent probe (up=false, no token) learns nothing credProtect hides:
    # a level-3 credential, and a level-2 one not named, look like none at all.
    hidden = lpk.RelyingParty("hidden.example")
    h = client(daemon, hidden.rp_id)
    h2 = hidden.register(h, user_name="h2", resident_key="required",
                         extensions={"credentialProtectionPolicy": POLICY.OPTIONAL_WITH_LIST.value})
    h3 = hidden.register(h, user_name="h3", resident_key="required",
                         extensions={"credentialProtectionPolicy": POLICY.REQUIRED.value})
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash(origin=hidden.origin)

    def probe(rp_id, allow=None):
        try:
            ctap2.get_assertion(rp_id, cdh, allow, None, {"up": False})
            return lpk.CTAP2_OK
        except CtapError as e:
            return int(e.code)

    nothing = probe("nothing-here.example")
    assert nothing == lpk.NO_CREDENTIALS, lpk.status_name(nothing)
    assert probe(hidden.rp_id) == nothing, "discovery revealed level-2/3 credentials without verification"
    assert probe(hidden.rp_id, [desc(h3.credential_id)]) == probe(hidden.rp_id, [desc(os.urandom(32))]), (
        "a level-3 credential in an allowList was revealed without verification")
    named2 = probe(hidden.rp_id, [desc(h2.credential_id)])
    named1 = probe(rp.rp_id, [desc(regs[1].credential_id)])
    assert named2 == named1 != lpk.CTAP2_OK, (
        f"a named level-2 credential ({lpk.status_name(named2)}) is treated unlike a level-1 one "
        f"({lpk.status_name(named1)})")
    # excludeList: the user is verified, so every level excludes.
    for reg in (regs[3], h3):
        owner = rp if reg is regs[3] else hidden
        expect_status(lpk.CREDENTIAL_EXCLUDED, owner.register, client(daemon, owner.rp_id), user_name="again",
                      exclude=[reg.credential_id])


# --------------------------------------------------------------------------- hmac-secret and PRF


def test_hmac_secret_under_both_pin_protocols(daemon):
    rp = lpk.RelyingParty("hmac.example")
    a, att = raw_register(daemon, rp, "a", extensions={"hmac-secret": True}, ed=True)
    assert att.auth_data.extensions == {"hmac-secret": True}
    b, _ = raw_register(daemon, rp, "b", extensions={"hmac-secret": True}, ed=True)
    plain, _ = raw_register(daemon, rp, "plain")
    s1, s2 = os.urandom(32), os.urandom(32)

    one = {
        "protocol 2": hmac_secret(daemon, rp, a, [s1], 2),
        "protocol 2 again": hmac_secret(daemon, rp, a, [s1], 2),
        "protocol 1": hmac_secret(daemon, rp, a, [s1], 1),
        "protocol 1, pinUvAuthProtocol left out": hmac_secret(daemon, rp, a, [s1], 1, send_protocol=False),
    }
    # The secret is the credential's; the protocol only carries it.
    assert len(set(one.values())) == 1, {k: v.hex()[:16] for k, v in one.items()}
    out1 = one["protocol 2"]
    out2 = hmac_secret(daemon, rp, a, [s2], 1)
    assert out2 != out1, "different salts gave the same output"
    both_v2 = hmac_secret(daemon, rp, a, [s1, s2], 2)
    both_v1 = hmac_secret(daemon, rp, a, [s1, s2], 1)
    assert both_v2 == both_v1 == out1 + out2, "two salts: not the two single outputs"
    swapped = hmac_secret(daemon, rp, a, [s2, s1], 2)
    assert swapped == out2 + out1
    # Another credential, another secret.
    assert hmac_secret(daemon, rp, b, [s1], 2) != out1
    # A credential made without hmac-secret gives no output (and ED=0).
    ctap2, proto, token = fresh_token(daemon, PERM.GET_ASSERTION, rp.rp_id)
    key_agreement, shared = ClientPin(ctap2, proto)._get_shared_secret()
    enc = proto.encrypt(shared, s1)
    inp = {1: key_agreement, 2: enc, 3: proto.authenticate(shared, enc), 4: 2}
    a_plain = raw_assert(daemon, rp, plain, {"hmac-secret": inp}, ed=False, token_parts=(ctap2, proto, token))
    assert a_plain.auth_data.extensions is None


def test_prf_and_hmac_get_secret_through_the_client(daemon):
    rp = lpk.RelyingParty("prf.example")
    c = client(daemon, rp.rp_id)
    reg = rp.register(c, user_name="prf", resident_key="required", extensions={"prf": {}})
    assert reg.client_extensions.prf.enabled is True
    assert reg.authenticator_extensions == {"hmac-secret": True}

    first, _ = prf_eval(rp, c, reg, b"first salt")
    assert prf_eval(rp, c, reg, b"first salt")[0] == first, "same PRF input, different output"
    other, _ = prf_eval(rp, c, reg, b"other salt")
    assert other != first
    f2, s2 = prf_eval(rp, c, reg, b"first salt", b"other salt")
    assert (f2, s2) == (first, other), "two PRF inputs: not the two single outputs"
    assert prf_eval(rp, client(daemon, rp.rp_id), reg, b"first salt", by_credential=True)[0] == first
    # PRF is hmac-secret with salt SHA-256("WebAuthn PRF" || 0 || input): the
    # raw extension, under either PIN protocol, agrees.
    assert hmac_secret(daemon, rp, reg, [prf_salt(b"first salt")], 1) == first
    assert hmac_secret(daemon, rp, reg, [prf_salt(b"first salt"), prf_salt(b"other salt")], 2) == first + other

    # The plain hmac-secret client extension (hmacCreateSecret / hmacGetSecret).
    reg2 = rp.register(c, user_name="hmac", resident_key="required", extensions={"hmacCreateSecret": True})
    assert reg2.client_extensions.hmac_create_secret is True
    assert reg2.authenticator_extensions == {"hmac-secret": True}
    salt1, salt2 = os.urandom(32), os.urandom(32)
    rp.authenticate(c, allow=[reg2.credential_id], extensions={"hmacGetSecret": {"salt1": salt1, "salt2": salt2}})
    got = rp.last_responses[0].client_extension_results.hmac_get_secret
    assert got.output1 + got.output2 == hmac_secret(daemon, rp, reg2, [salt1, salt2], 1)
    assert got.output1 != first


def test_prf_at_registration_through_hmac_secret_mc(daemon):
    """CTAP 2.2 hmac-secret-mc: python-fido2 sends the PRF salts with
    MakeCredential because GetInfo lists it; the outputs equal what every
    later assertion gives for the same input."""
    rp = lpk.RelyingParty("prf-mc.example")
    c = client(daemon, rp.rp_id)
    reg = rp.register(c, user_name="prf-mc", resident_key="required",
                      extensions={"prf": {"eval": {"first": b"at creation", "second": b"second"}}})
    assert set(reg.authenticator_extensions) == {"hmac-secret", "hmac-secret-mc"}, reg.authenticator_extensions
    results = reg.client_extensions.prf.results
    assert results is not None and len(results.first) == 32 and len(results.second) == 32
    first, second = prf_eval(rp, c, reg, b"at creation", b"second")
    assert (results.first, results.second) == (first, second), "hmac-secret-mc and hmac-secret disagree"


def test_hmac_secret_and_large_blobs_survive_a_restart(daemon):
    rp = lpk.RelyingParty("restart.example")
    c = client(daemon, rp.rp_id)
    reg = rp.register(c, user_name="r", resident_key="required",
                      extensions={"prf": {}, "largeBlob": {"support": "required"}}, expect_ed=True)
    assert reg.client_extensions.prf.enabled and reg.client_extensions.large_blob.supported
    salt = os.urandom(32)
    before = {
        "prf": prf_eval(rp, c, reg, b"disk unlock")[0],
        "v1": hmac_secret(daemon, rp, reg, [salt], 1),
        "v2": hmac_secret(daemon, rp, reg, [salt], 2),
    }
    assert before["v1"] == before["v2"]
    key = raw_assert(daemon, rp, reg, {"largeBlobKey": True}).large_blob_key
    data = os.urandom(300)
    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    LargeBlobs(ctap2, proto, token).put_blob(key, data)

    daemon.restart()  # same data dir, same TPM (its objects flushed, as a resource manager would)

    c = client(daemon, rp.rp_id)
    after = {
        "prf": prf_eval(rp, c, reg, b"disk unlock")[0],
        "v1": hmac_secret(daemon, rp, reg, [salt], 1),
        "v2": hmac_secret(daemon, rp, reg, [salt], 2),
    }
    assert after == before, "hmac-secret output changed across a restart"
    assert prf_eval(rp, c, reg, b"another input")[0] != before["prf"]
    assert raw_assert(daemon, rp, reg, {"largeBlobKey": True}).large_blob_key == key
    assert LargeBlobs(daemon.ctap2()).get_blob(key) == data


# --------------------------------------------------------------------------- credBlob


def test_cred_blob(daemon):
    rp = lpk.RelyingParty("credblob.example")
    c = client(daemon, rp.rp_id)
    blob = os.urandom(32)
    reg = rp.register(c, user_name="blob", resident_key="required", extensions={"credBlob": blob})
    assert reg.authenticator_extensions == {"credBlob": True}
    rp.authenticate(c, allow=[reg.credential_id], extensions={"getCredBlob": True})
    assert rp.last_responses[0].response.authenticator_data.extensions == {"credBlob": blob}
    rp.authenticate(client(daemon, rp.rp_id), allow=None, extensions={"getCredBlob": True})
    assert rp.last_responses[0].response.authenticator_data.extensions == {"credBlob": blob}
    # Not asked for: not sent.
    rp.authenticate(c, allow=[reg.credential_id])
    # Longer than maxCredBlobLength: not stored, and MakeCredential says so.
    long_reg, att = raw_register(daemon, rp, "long", extensions={"credBlob": os.urandom(33)}, ed=True)
    assert att.auth_data.extensions == {"credBlob": False}
    assert raw_assert(daemon, rp, long_reg, {"credBlob": True}, ed=True).auth_data.extensions == {"credBlob": b""}
    # A credential without one answers with an empty one.
    none_reg, _ = raw_register(daemon, rp, "none")
    assert raw_assert(daemon, rp, none_reg, {"credBlob": True}, ed=True).auth_data.extensions == {"credBlob": b""}
    # The blob stays with its credential.
    assert raw_assert(daemon, rp, reg, {"credBlob": True}, ed=True).auth_data.extensions == {"credBlob": blob}
