"""authenticatorCredentialManagement through `fido2.ctap2.CredentialManagement`
(and the 0x41 prototype number): counts, RP ID hashes, user entities, public
keys, credProtect levels and largeBlobKeys as created; deletion that is final
(no assertion, no row, no key blob in the database); renaming; RP-bound
tokens; malformed requests. Both custodies."""

from __future__ import annotations

import pytest

from ctap_common import *  # noqa: F403 (the shared helpers and constants)


# --------------------------------------------------------------------------- credential management


@pytest.mark.parametrize("protocol", [1, 2])
def test_enumeration_matches_what_was_created(daemon, protocol):
    layout = {"alpha.example": ["ann", "bob", "cyd"], "beta.example": ["dan", "eve"], "gamma.example": ["fay"]}
    regs: dict[str, list[lpk.Registered]] = {}
    for rp_id, users in layout.items():
        rp = lpk.RelyingParty(rp_id)
        c = client(daemon, rp_id)
        regs[rp_id] = [rp.register(c, user_name=u, resident_key="required") for u in users]
        # Not discoverable: never listed, never counted.
        rp.register(c, user_name="not-resident", resident_key="discouraged")
    total = sum(len(u) for u in layout.values())

    cm = credman(daemon, protocol)
    meta = cm.get_metadata()
    assert meta == {R.EXISTING_CRED_COUNT: total, R.MAX_REMAINING_COUNT: MAX_DISCOVERABLE - total}, meta

    rps = cm.enumerate_rps()
    assert len(rps) == len(layout)
    assert rps[0][R.TOTAL_RPS] == len(layout)
    assert all(R.TOTAL_RPS not in e for e in rps[1:]), "totalRPs in a GetNextRP answer"
    listed = {}
    for e in rps:
        assert set(e) == {R.RP, R.RP_ID_HASH} | ({R.TOTAL_RPS} if e is rps[0] else set()), e
        rp_id = e[R.RP]["id"]
        assert e[R.RP_ID_HASH] == sha256(rp_id.encode()), f"rpIDHash of {rp_id}"
        assert e[R.RP] == {"id": rp_id, "name": f"RP {rp_id}"}, e[R.RP]
        listed[rp_id] = e
    assert set(listed) == set(layout)

    for rp_id, rs in regs.items():
        creds = cm.enumerate_creds(sha256(rp_id.encode()))
        assert len(creds) == len(rs), f"{rp_id}: {len(creds)} credentials listed, {len(rs)} created"
        assert creds[0][R.TOTAL_CREDENTIALS] == len(rs)
        assert all(R.TOTAL_CREDENTIALS not in c for c in creds[1:])
        by_id = {c[R.CREDENTIAL_ID]["id"]: c for c in creds}
        assert set(by_id) == {r.credential_id for r in rs}
        for r in rs:
            c = by_id[r.credential_id]
            assert c[R.CREDENTIAL_ID] == desc(r.credential_id)
            assert c[R.USER] == {"id": r.user_id, "name": r.user_name, "displayName": r.user_name.title()}
            # The very key registration returned (canonical COSE bytes, and as a map).
            assert cbor.encode(c[R.PUBLIC_KEY]) == r.public_key
            assert c[R.PUBLIC_KEY] == dict(r.credential_data.public_key)
            assert c[R.CRED_PROTECT] == 1, "no credProtect asked: userVerificationOptional"
            assert R.LARGE_BLOB_KEY not in c, "largeBlobKey listed but never asked for"
    assert len(cm.enumerate_creds(sha256(b"nobody.example"))) == 0
    expect_status(lpk.NO_CREDENTIALS, cm.enumerate_creds_begin, sha256(b"nobody.example"))
    # GetInfo's estimate agrees with the metadata.
    assert get_info(daemon)[0x14] == MAX_DISCOVERABLE - total


def test_prototype_command_0x41_answers_like_0x0a(daemon):
    for rp_id in ("one.example", "two.example"):
        lpk.RelyingParty(rp_id).register(client(daemon, rp_id), user_name="u", resident_key="required")
    ctap2, proto, token = fresh_token(daemon, PERM.CREDENTIAL_MGMT)

    def call(cmd, sub, params=None, auth=True):
        req = {1: sub}
        if params is not None:
            req[2] = params
        if auth:
            req[3] = proto.VERSION
            req[4] = proto.authenticate(token, bytes([sub]) + (cbor.encode(params) if params is not None else b""))
        return ctap2.send_cbor(cmd, req)

    assert call(CMD_CRED_MGMT_PRE, 1) == call(CMD_CRED_MGMT, 1) == {1: 2, 2: MAX_DISCOVERABLE - 2}
    for cmd in (CMD_CRED_MGMT_PRE, CMD_CRED_MGMT):
        first = call(cmd, 2)
        second = call(cmd, 3, auth=False)
        assert first[R.TOTAL_RPS] == 2
        assert {first[R.RP]["id"], second[R.RP]["id"]} == {"one.example", "two.example"}
        creds = call(cmd, 4, {1: sha256(b"one.example")})
        assert creds[R.TOTAL_CREDENTIALS] == 1 and creds[R.USER]["name"] == "u"


def test_listing_shows_cred_protect_levels_and_large_blob_keys(daemon):
    rp = lpk.RelyingParty("levels.example")
    c = client(daemon, rp.rp_id)
    regs = {}
    for level, policy in enumerate(POLICY, start=1):
        regs[level] = rp.register(c, user_name=f"level{level}", resident_key="required",
                                  extensions={"credentialProtectionPolicy": policy.value,
                                              "enforceCredentialProtectionPolicy": True})
        assert regs[level].authenticator_extensions == {"credProtect": level}
    blob_reg = rp.register(c, user_name="blob", resident_key="required",
                           extensions={"largeBlob": {"support": "required"}}, expect_ed=False)
    assert blob_reg.client_extensions.large_blob.supported is True
    # The key itself, as GetAssertion (largeBlobKey: true) hands it out.
    key = raw_assert(daemon, rp, blob_reg, {"largeBlobKey": True}).large_blob_key
    assert isinstance(key, bytes) and len(key) == 32
    assert raw_assert(daemon, rp, regs[1], {"largeBlobKey": True}).large_blob_key is None
    # And raw MakeCredential returns one for a discoverable credential only.
    raw_reg, att = raw_register(daemon, rp, "raw-blob", extensions={"largeBlobKey": True})
    assert len(att.large_blob_key) == 32 and att.large_blob_key != key
    expect_status(lpk.INVALID_OPTION, raw_register, daemon, rp, "not-resident", rk=False,
                  extensions={"largeBlobKey": True})

    creds = {c_[R.CREDENTIAL_ID]["id"]: c_ for c_ in credman(daemon).enumerate_creds(sha256(rp.rp_id.encode()))}
    assert len(creds) == 5
    for level, reg in regs.items():
        assert creds[reg.credential_id][R.CRED_PROTECT] == level
        assert R.LARGE_BLOB_KEY not in creds[reg.credential_id]
    assert creds[blob_reg.credential_id][R.LARGE_BLOB_KEY] == key
    assert creds[raw_reg.credential_id][R.LARGE_BLOB_KEY] == att.large_blob_key
    assert creds[blob_reg.credential_id][R.CRED_PROTECT] == 1


def test_delete_credential_is_final(daemon):
    rp = lpk.RelyingParty("delete.example")
    c = client(daemon, rp.rp_id)
    # With hmac-secret (through PRF), so that the row holds two TPM blobs.
    regs = [rp.register(c, user_name=u, resident_key="required", extensions={"prf": {}})
            for u in ("keep1", "victim", "keep2")]
    for r in regs:
        assert r.client_extensions.prf.enabled is True
    victim = regs[1]
    others = {regs[0].credential_id, regs[2].credential_id}
    rows = db_rows(daemon, "SELECT key_blob, hmac_key FROM credentials WHERE id = ?", (victim.credential_id,))
    assert len(rows) == 1
    key_blob, hmac_key = rows[0]
    assert key_blob and hmac_key, "the victim's row has no key blob or no hmac-secret key"
    count_before = get_info(daemon)[0x14]

    cm = credman(daemon)
    cm.delete_cred(desc(victim.credential_id))
    left = cm.enumerate_creds(sha256(rp.rp_id.encode()))
    assert {x[R.CREDENTIAL_ID]["id"] for x in left} == others
    assert left[0][R.TOTAL_CREDENTIALS] == 2
    assert cm.get_metadata()[R.EXISTING_CRED_COUNT] == 2
    assert get_info(daemon)[0x14] == count_before + 1
    # Deleting it again: it is not there.
    expect_status(lpk.NO_CREDENTIALS, cm.delete_cred, desc(victim.credential_id))

    # It no longer authenticates: raw with a token, and through a WebAuthn client.
    expect_status(lpk.NO_CREDENTIALS, raw_assert, daemon, rp, victim)
    expect_status(lpk.NO_CREDENTIALS, rp.authenticate, client(daemon, rp.rp_id), allow=[victim.credential_id])
    # Discovery offers only the others, each verified.
    assert {r.credential_id for r in rp.authenticate(client(daemon, rp.rp_id), allow=None)} == others

    # The database has neither its row nor its blobs (read-only look).
    assert db_rows(daemon, "SELECT count(*) FROM credentials WHERE id = ?", (victim.credential_id,)) == [(0,)]
    for blob in (key_blob, hmac_key):
        assert db_rows(daemon, "SELECT count(*) FROM credentials WHERE key_blob = ? OR hmac_key = ?",
                       (blob, blob)) == [(0,)]
    assert db_rows(daemon, "SELECT count(*) FROM credentials WHERE rp_id = ?", (rp.rp_id,)) == [(2,)]


def test_deleted_key_blobs_leave_no_bytes_in_the_data_dir(daemon, tmp_path):
    """"Nothing can load that key again" (README): the deleted credential's
    wrapped blobs must not survive as bytes anywhere under the data dir, not
    in the database file (secure_delete) and not in its write-ahead log."""
    rp = lpk.RelyingParty("shred.example")
    c = client(daemon, rp.rp_id)
    keep = rp.register(c, user_name="keep", resident_key="required", extensions={"prf": {}})
    victim = rp.register(c, user_name="victim", resident_key="required", extensions={"prf": {}})
    (key_blob, hmac_key), = db_rows(daemon, "SELECT key_blob, hmac_key FROM credentials WHERE id = ?",
                                    (victim.credential_id,))
    assert files_holding(daemon.data_dir, key_blob), "the scan cannot even find a live blob"
    credman(daemon).delete_cred(desc(victim.credential_id))
    assert rp.authenticate(client(daemon, rp.rp_id), allow=None)[0] is keep
    # 1. The database as SQLite would present it after a checkpoint (a copy).
    copy = tmp_path / "copy"
    shutil.copytree(daemon.data_dir, copy)
    con = sqlite3.connect(str(copy / DB))
    try:
        assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        con.close()
    for blob, what in ((key_blob, "key blob"), (hmac_key, "hmac-secret key blob")):
        assert not files_holding(copy, blob), f"the deleted {what} is still in the checkpointed database"
    # 2. The live files, as they are on disk right now.
    for blob, what in ((key_blob, "key blob"), (hmac_key, "hmac-secret key blob")):
        assert not files_holding(daemon.data_dir, blob), (
            f"the deleted credential's {what} is still on disk in {files_holding(daemon.data_dir, blob)}")


def test_update_user_information(daemon):
    rp = lpk.RelyingParty("rename.example")
    c = client(daemon, rp.rp_id)
    alice = rp.register(c, user_name="alice", resident_key="required")
    bob = rp.register(c, user_name="bob", resident_key="required")

    def listed() -> dict:
        return {x[R.CREDENTIAL_ID]["id"]: x[R.USER]
                for x in credman(daemon).enumerate_creds(sha256(rp.rp_id.encode()))}

    def discovered() -> dict:
        ctap2, proto, token = fresh_token(daemon, PERM.GET_ASSERTION, rp.rp_id)
        _, cdh = lpk.client_data_hash(origin=rp.origin)
        answers = ctap2.get_assertions(rp.rp_id, cdh, None, None, None, proto.authenticate(token, cdh), proto.VERSION)
        assert answers[0].number_of_credentials == 2
        out = {}
        for a in answers:
            reg = rp.credentials[a.credential["id"]]
            check_assertion(a, reg, cdh, rp.rp_id, ed=False)
            assert a.user["id"] == reg.user_id
            out[a.credential["id"]] = dict(a.user)
        return out

    credman(daemon).update_user_info(desc(alice.credential_id),
                                     {"id": alice.user_id, "name": "alice.renamed", "displayName": "Alice Renamed"})
    new_alice = {"id": alice.user_id, "name": "alice.renamed", "displayName": "Alice Renamed"}
    old_bob = {"id": bob.user_id, "name": "bob", "displayName": "Bob"}
    assert listed() == {alice.credential_id: new_alice, bob.credential_id: old_bob}
    assert discovered() == {alice.credential_id: new_alice, bob.credential_id: old_bob}

    # Members left out are removed (§6.8.6), not kept.
    credman(daemon).update_user_info(desc(alice.credential_id), {"id": alice.user_id, "name": "alice.only"})
    assert listed()[alice.credential_id] == {"id": alice.user_id, "name": "alice.only"}
    assert discovered()[alice.credential_id] == {"id": alice.user_id, "name": "alice.only"}

    # Another user id, or an unknown credential: refused, nothing changes.
    cm = credman(daemon)
    expect_status(lpk.INVALID_PARAMETER, cm.update_user_info, desc(alice.credential_id),
                  {"id": bob.user_id, "name": "mallory"})
    expect_status(lpk.NO_CREDENTIALS, cm.update_user_info, desc(os.urandom(32)),
                  {"id": alice.user_id, "name": "mallory"})
    assert listed()[alice.credential_id]["name"] == "alice.only"
    # The WebAuthn sign-in still works, userHandle unchanged (verified by both RP libraries).
    assert {r.credential_id for r in rp.authenticate(client(daemon, rp.rp_id), allow=None)} == {
        alice.credential_id, bob.credential_id}


def test_rp_bound_token_sees_and_changes_only_its_rp(daemon):
    mine = lpk.RelyingParty("mine.example")
    theirs = lpk.RelyingParty("theirs.example")
    m = mine.register(client(daemon, mine.rp_id), user_name="me", resident_key="required")
    t = theirs.register(client(daemon, theirs.rp_id), user_name="them", resident_key="required")

    cm = credman(daemon, rp_id=mine.rp_id)
    listed = cm.enumerate_creds(sha256(mine.rp_id.encode()))
    assert [x[R.CREDENTIAL_ID]["id"] for x in listed] == [m.credential_id]
    for what, call in (
        ("getCredsMetadata", lambda: cm.get_metadata()),
        ("enumerateRPsBegin", lambda: cm.enumerate_rps_begin()),
        ("enumerateCredentialsBegin (other RP)", lambda: cm.enumerate_creds_begin(sha256(theirs.rp_id.encode()))),
        ("deleteCredential (other RP)", lambda: cm.delete_cred(desc(t.credential_id))),
        ("updateUserInformation (other RP)",
         lambda: cm.update_user_info(desc(t.credential_id), {"id": t.user_id, "name": "x"})),
    ):
        got = code_of(call)
        assert got == lpk.PIN_AUTH_INVALID, f"{what} with a token bound to {mine.rp_id}: {lpk.status_name(got)}"
    # Its own RP: rename and delete work.
    cm.update_user_info(desc(m.credential_id), {"id": m.user_id, "name": "me2"})
    assert cm.enumerate_creds(sha256(mine.rp_id.encode()))[0][R.USER]["name"] == "me2"
    cm.delete_cred(desc(m.credential_id))
    # The other RP's credential is untouched.
    full = credman(daemon)
    assert [x[R.RP]["id"] for x in full.enumerate_rps()] == [theirs.rp_id]
    assert full.enumerate_creds(sha256(theirs.rp_id.encode()))[0][R.USER]["name"] == "them"


def test_credential_management_malformed_requests(daemon):
    rp = lpk.RelyingParty("malformed.example")
    reg = rp.register(client(daemon, rp.rp_id), user_name="m", resident_key="required")
    ctap2, proto, token = fresh_token(daemon, PERM.CREDENTIAL_MGMT)
    V = proto.VERSION

    def auth(sub, params=None, tok=token):
        return proto.authenticate(tok, bytes([sub]) + (cbor.encode(params) if params is not None else b""))

    good_desc = desc(reg.credential_id)
    cases = [
        ("empty map", {}, lpk.MISSING_PARAMETER),
        ("no subCommand", {3: V, 4: auth(1)}, lpk.MISSING_PARAMETER),
        ("subCommand as text", {1: "1", 3: V, 4: auth(1)}, lpk.CBOR_UNEXPECTED_TYPE),
        ("unknown subCommand 0x20", {1: 0x20, 3: V, 4: auth(0x20)}, lpk.INVALID_SUBCOMMAND),
        ("getCredsMetadata without pinUvAuthParam", {1: 1}, lpk.PUAT_REQUIRED),
        ("enumerateRPsBegin without pinUvAuthParam", {1: 2}, lpk.PUAT_REQUIRED),
        ("deleteCredential without pinUvAuthParam", {1: 6, 2: {2: good_desc}}, lpk.PUAT_REQUIRED),
        ("without pinUvAuthProtocol", {1: 1, 4: auth(1)}, lpk.MISSING_PARAMETER),
        ("pinUvAuthProtocol 3", {1: 1, 3: 3, 4: auth(1)}, lpk.INVALID_PARAMETER),
        ("pinUvAuthProtocol as text", {1: 1, 3: "2", 4: auth(1)}, lpk.CBOR_UNEXPECTED_TYPE),
        ("pinUvAuthParam as text", {1: 1, 3: V, 4: "abc"}, lpk.CBOR_UNEXPECTED_TYPE),
        ("wrong pinUvAuthParam", {1: 1, 3: V, 4: bytes(len(auth(1)))}, lpk.PIN_AUTH_INVALID),
        ("pinUvAuthParam made for another subcommand", {1: 1, 3: V, 4: auth(2)}, lpk.PIN_AUTH_INVALID),
        ("enumerateCredentialsBegin without subCommandParams", {1: 4, 3: V, 4: auth(4)}, lpk.MISSING_PARAMETER),
        ("enumerateCredentialsBegin without rpIDHash", {1: 4, 2: {}, 3: V, 4: auth(4, {})}, lpk.MISSING_PARAMETER),
        ("rpIDHash as text", {1: 4, 2: {1: "x"}, 3: V, 4: auth(4, {1: "x"})}, lpk.CBOR_UNEXPECTED_TYPE),
        ("subCommandParams as array", {1: 4, 2: [1], 3: V, 4: auth(4, [1])}, lpk.CBOR_UNEXPECTED_TYPE),
        ("unknown rpIDHash", {1: 4, 2: {1: sha256(b"x")}, 3: V, 4: auth(4, {1: sha256(b"x")})}, lpk.NO_CREDENTIALS),
        ("deleteCredential without credentialId", {1: 6, 2: {}, 3: V, 4: auth(6, {})}, lpk.MISSING_PARAMETER),
        ("credentialId as bare bytes", {1: 6, 2: {2: reg.credential_id}, 3: V,
                                        4: auth(6, {2: reg.credential_id})}, lpk.CBOR_UNEXPECTED_TYPE),
        ("credentialId without id", {1: 6, 2: {2: {"type": "public-key"}}, 3: V,
                                     4: auth(6, {2: {"type": "public-key"}})}, lpk.MISSING_PARAMETER),
        ("unknown credentialId", {1: 6, 2: {2: desc(b"\x01" * 32)}, 3: V,
                                  4: auth(6, {2: desc(b"\x01" * 32)})}, lpk.NO_CREDENTIALS),
        ("updateUserInformation without user", {1: 7, 2: {2: good_desc}, 3: V,
                                                4: auth(7, {2: good_desc})}, lpk.MISSING_PARAMETER),
        ("user as text", {1: 7, 2: {2: good_desc, 3: "m"}, 3: V,
                          4: auth(7, {2: good_desc, 3: "m"})}, lpk.CBOR_UNEXPECTED_TYPE),
        ("user without id", {1: 7, 2: {2: good_desc, 3: {"name": "m"}}, 3: V,
                             4: auth(7, {2: good_desc, 3: {"name": "m"}})}, lpk.MISSING_PARAMETER),
        ("enumerateRPsGetNextRP without a listing", {1: 3}, lpk.NOT_ALLOWED),
        ("enumerateCredentialsGetNextCredential without a listing", {1: 5}, lpk.NOT_ALLOWED),
    ]
    wrong = []
    for name, params, expected in cases:
        got = code_of(ctap2.send_cbor, CMD_CRED_MGMT, params)
        if got != expected:
            wrong.append(f"{name}: {lpk.status_name(got)}, expected {lpk.status_name(expected)}")
    # A token without the cm permission.
    ctap2b, protob, tok_lbw = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    got = code_of(ctap2b.send_cbor, CMD_CRED_MGMT, {1: 1, 3: protob.VERSION,
                                                     4: protob.authenticate(tok_lbw, b"\x01")})
    if got != lpk.PIN_AUTH_INVALID:
        wrong.append(f"token without cm: {lpk.status_name(got)}, expected PIN_AUTH_INVALID")
    assert not wrong, "\n".join(wrong)

    # A listing that has run out has no next, either.
    cm = credman(daemon)
    assert cm.enumerate_rps_begin()[R.TOTAL_RPS] == 1
    expect_status(lpk.NOT_ALLOWED, cm.enumerate_rps_next)
    assert cm.enumerate_creds_begin(sha256(rp.rp_id.encode()))[R.TOTAL_CREDENTIALS] == 1
    expect_status(lpk.NOT_ALLOWED, cm.enumerate_creds_next)
    # Nothing was harmed.
    assert cm.get_metadata()[R.EXISTING_CRED_COUNT] == 1
    assert rp.authenticate(client(daemon, rp.rp_id), allow=[reg.credential_id])[0] is reg


def test_enumerate_rps_with_no_credentials(daemon):
    cm = credman(daemon)
    assert cm.get_metadata() == {R.EXISTING_CRED_COUNT: 0, R.MAX_REMAINING_COUNT: MAX_DISCOVERABLE}
    expect_status(lpk.NO_CREDENTIALS, cm.enumerate_rps_begin)
    assert cm.enumerate_rps() == []
