"""CTAP 2.1 in full (issue 4), driven by python-fido2's own classes.

- authenticatorCredentialManagement through `fido2.ctap2.CredentialManagement`
  (and the 0x41 prototype number): counts, RP ID hashes, user entities,
  public keys, credProtect levels and largeBlobKeys as created; deletion that
  is final (no assertion, no row, no key blob in the database); renaming;
  RP-bound tokens; malformed requests.
- Extensions through `Fido2Client` and fido2's extension classes, and raw
  `Ctap2` calls: credProtect 1-3, hmac-secret (PIN protocols 1 and 2, one
  and two salts, across a restart) and WebAuthn PRF, credBlob, largeBlobKey,
  minPinLength.
- authenticatorLargeBlobs through `fido2.ctap2.LargeBlobs` and raw fragments:
  integrity, offsets and sequence, the lbw permission.
- authenticatorConfig through `fido2.ctap2.Config`: setMinPINLength (RP list,
  forceChangePin), toggleAlwaysUv refused, no enterprise attestation.
- GetInfo lists exactly that.

Every attestation and assertion is verified by the suite's relying-party
helpers (fido2.server and py_webauthn, or fido2's and py_webauthn's signature
code for raw calls) with UV=1, BE=0, BS=0. Each test runs with TPM custody
(own swtpm) and software custody.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import struct
from pathlib import Path

import pytest
from fido2 import cbor
from fido2.client import ClientError
from fido2.cose import CoseKey
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, Config, CredentialManagement, Ctap2, LargeBlobs
from fido2.ctap2.extensions import (
    CredBlobExtension,
    CredProtectExtension,
    HmacSecretExtension,
    LargeBlobExtension,
    MinPinLengthExtension,
)
from fido2.utils import websafe_encode

import lpk

PERM = ClientPin.PERMISSION
R = CredentialManagement.RESULT
POLICY = CredProtectExtension.POLICY
DB = "credentials.sqlite3"
MAX_DISCOVERABLE = 1_000_000
MAX_FRAGMENT = lpk.MAX_MSG_SIZE - 64
MAX_LARGE_BLOB_ARRAY = 4096
CMD_CRED_MGMT = 0x0A
CMD_CRED_MGMT_PRE = 0x41
CMD_LARGE_BLOBS = 0x0C
CMD_CONFIG = 0x0D

LARGE_BLOB_STORAGE_FULL = 0x18
INVALID_LENGTH = 0x03
INVALID_SEQ = 0x04
INTEGRITY_FAILURE = 0x3D

# Every extension python-fido2 has for what we implement; hmac-secret also
# without the PRF wrapping (hmacCreateSecret / hmacGetSecret).
EXTENSIONS = [
    HmacSecretExtension(allow_hmac_secret=True),
    LargeBlobExtension(),
    CredBlobExtension(),
    CredProtectExtension(),
    MinPinLengthExtension(),
]

EXPECTED_VERSIONS = ["FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1", "FIDO_2_2"]
EXPECTED_EXTENSIONS = {"credProtect", "hmac-secret", "hmac-secret-mc", "credBlob", "largeBlobKey", "minPinLength",
                       "thirdPartyPayment"}
EXPECTED_OPTIONS = {
    "rk": True, "up": True, "uv": True, "plat": False, "alwaysUv": True,
    "credMgmt": True, "credentialMgmtPreview": True, "authnrCfg": True,
    "clientPin": True, "largeBlobs": True, "pinUvAuthToken": True,
    "setMinPINLength": True, "makeCredUvNotRqd": False, "perCredMgmtRO": True,
}


# --------------------------------------------------------------------------- helpers


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def code_of(fn, *args, **kw) -> int:
    """Run a call that must fail; return its CTAP status."""
    with pytest.raises((CtapError, ClientError)) as e:
        fn(*args, **kw)
    return lpk.ctap_error(e)


def expect_status(expected: int, fn, *args, **kw) -> None:
    got = code_of(fn, *args, **kw)
    assert got == expected, f"got {lpk.status_name(got)}, expected {lpk.status_name(expected)}"


def fresh_token(daemon, permissions, rp_id: str | None = None, protocol: int = 2):
    """(Ctap2, protocol object, pinUvAuthToken) from getPinUvAuthTokenUsingPinWithPermissions."""
    ctap2 = daemon.ctap2()
    proto = lpk.PROTOCOLS[protocol]()
    token = ClientPin(ctap2, proto).get_pin_token(daemon.pin, permissions, rp_id)
    return ctap2, proto, token


def credman(daemon, protocol: int = 2, rp_id: str | None = None) -> CredentialManagement:
    ctap2, proto, token = fresh_token(daemon, PERM.CREDENTIAL_MGMT, rp_id, protocol)
    return CredentialManagement(ctap2, proto, token)


def desc(cred_id: bytes) -> dict:
    return {"id": cred_id, "type": "public-key"}


def get_info(daemon) -> dict:
    return dict(daemon.ctap2().send_cbor(Ctap2.CMD.GET_INFO))


def client(daemon, rp_id: str, interaction=None):
    return daemon.client(origin=f"https://{rp_id}", extensions=EXTENSIONS, interaction=interaction)


def raw_register(daemon, rp: lpk.RelyingParty, user_name: str, rk: bool = True, extensions=None,
                 ed: bool = False, protocol: int = 2):
    """MakeCredential through raw Ctap2 with a PIN token: verified by fido2's
    packed verifier and py_webauthn, flags checked; the credential joins
    `rp.credentials`. Returns (Registered, AttestationResponse)."""
    ctap2, proto, token = fresh_token(daemon, PERM.MAKE_CREDENTIAL, rp.rp_id, protocol)
    user_id = os.urandom(16)
    _, cdh = lpk.client_data_hash(origin=rp.origin, kind="webauthn.create")
    att = ctap2.make_credential(
        cdh, {"id": rp.rp_id, "name": f"RP {rp.rp_id}"},
        {"id": user_id, "name": user_name, "displayName": user_name.title()},
        [{"type": "public-key", "alg": lpk.ES256}], None, extensions, {"rk": True} if rk else None,
        **lpk.pin_uv_param(protocol, token, cdh),
    )
    cose = lpk.verify_attestation_twice(att, cdh)
    lpk.check_flags(att.auth_data, up=True, at=True, ed=ed)
    assert att.auth_data.rp_id_hash == lpk.rp_id_hash(rp.rp_id)
    cd = att.auth_data.credential_data
    reg = lpk.Registered(
        credential_id=cd.credential_id, credential_data=cd, public_key=cose, user_id=user_id,
        discoverable=rk, sign_count=att.auth_data.counter, fmt=att.fmt, user_name=user_name,
        authenticator_extensions=att.auth_data.extensions,
    )
    rp.credentials[reg.credential_id] = reg
    return reg, att


def check_assertion(a, reg: lpk.Registered, cdh: bytes, rp_id: str, ed: bool) -> None:
    """One raw assertion: flags (UV=1, BE=0, BS=0), RP ID hash, the signature by
    fido2's and py_webauthn's code, a strictly increasing counter."""
    ad = a.auth_data
    lpk.check_flags(ad, up=True, ed=ed)
    assert ad.rp_id_hash == lpk.rp_id_hash(rp_id)
    assert a.credential["id"] == reg.credential_id
    CoseKey.parse(cbor.decode(reg.public_key)).verify(bytes(ad) + cdh, a.signature)  # fido2
    lpk.verify_es256(reg.public_key, bytes(ad) + cdh, a.signature)  # py_webauthn
    assert ad.counter > reg.sign_count, f"counter went from {reg.sign_count} to {ad.counter}"
    reg.sign_count = ad.counter


def raw_assert(daemon, rp: lpk.RelyingParty, reg: lpk.Registered, extensions=None, ed: bool = False,
               protocol: int = 2, token_parts=None):
    """GetAssertion through raw Ctap2 with a GA token and an allowList of `reg`, verified."""
    ctap2, proto, token = token_parts or fresh_token(daemon, PERM.GET_ASSERTION, rp.rp_id, protocol)
    _, cdh = lpk.client_data_hash(origin=rp.origin)
    a = ctap2.get_assertion(rp.rp_id, cdh, [desc(reg.credential_id)], extensions, None,
                            proto.authenticate(token, cdh), proto.VERSION)
    check_assertion(a, reg, cdh, rp.rp_id, ed)
    return a


def hmac_secret(daemon, rp: lpk.RelyingParty, reg: lpk.Registered, salts: list[bytes], protocol: int,
                send_protocol: bool = True) -> bytes:
    """hmac-secret by hand: key agreement and salt encryption with fido2's
    PinProtocolV1/V2, GetAssertion, decrypt. Returns output1 || output2."""
    ctap2, proto, token = fresh_token(daemon, PERM.GET_ASSERTION, rp.rp_id, protocol)
    key_agreement, shared = ClientPin(ctap2, proto)._get_shared_secret()
    salt_enc = proto.encrypt(shared, b"".join(salts))
    inp = {1: key_agreement, 2: salt_enc, 3: proto.authenticate(shared, salt_enc)}
    if send_protocol:
        inp[4] = protocol  # absent means protocol 1 (what CTAP 2.0 platforms send)
    a = raw_assert(daemon, rp, reg, {"hmac-secret": inp}, ed=True, token_parts=(ctap2, proto, token))
    # alwaysUv: this is the verified secret; an unverified use cannot happen.
    assert a.auth_data.flags & lpk.FLAG_UV
    assert set(a.auth_data.extensions) == {"hmac-secret"}, a.auth_data.extensions
    enc = a.auth_data.extensions["hmac-secret"]
    iv = 16 if protocol == 2 else 0
    assert len(enc) == iv + 32 * len(salts), f"hmac-secret output of {len(enc)} bytes"
    out = proto.decrypt(shared, enc)
    assert len(out) == 32 * len(salts)
    return out


def prf_eval(rp: lpk.RelyingParty, c, reg: lpk.Registered, first: bytes, second: bytes | None = None,
             by_credential: bool = False) -> tuple[bytes, bytes | None]:
    """WebAuthn PRF through Fido2Client (eval or evalByCredential); the assertion is verified by the RP."""
    values = {"first": first, **({"second": second} if second is not None else {})}
    ext = ({"prf": {"evalByCredential": {websafe_encode(reg.credential_id): values}}} if by_credential
           else {"prf": {"eval": values}})
    rp.authenticate(c, allow=[reg.credential_id], extensions=ext)
    r = rp.last_responses[0]
    assert set(r.response.authenticator_data.extensions) == {"hmac-secret"}
    res = r.client_extension_results.prf.results
    assert len(res.first) == 32
    if second is None:
        assert not res.second, f"a second PRF output nobody asked for: {res.second!r}"
        return res.first, None
    assert len(res.second) == 32
    return res.first, res.second


def prf_salt(value: bytes) -> bytes:
    """WebAuthn's PRF-to-hmac-secret salt mapping, written out here (not fido2's)."""
    return sha256(b"WebAuthn PRF\x00" + value)


def db_rows(daemon, sql: str, args=()) -> list[tuple]:
    """A read-only look at the daemon's SQLite database while it runs."""
    con = sqlite3.connect(f"file:{daemon.data_dir / DB}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def files_holding(directory: Path, needle: bytes) -> list[str]:
    return [p.name for p in sorted(directory.rglob("*")) if p.is_file() and needle in p.read_bytes()]


def lb_param(proto, token: bytes, offset: int, fragment: bytes) -> bytes:
    """pinUvAuthParam for a large-blob write, as CTAP 2.1 §6.10.2 defines it (written out here)."""
    return proto.authenticate(token, b"\xff" * 32 + b"\x0c\x00" + struct.pack("<I", offset) + sha256(fragment))


def serialized(array: list) -> bytes:
    body = cbor.encode(array)
    return body + sha256(body)[:16]


INITIAL_ARRAY = b"\x80" + bytes.fromhex("76be8b528d0075f7aae98d6fa57a6d3c")  # spec's empty array


# --------------------------------------------------------------------------- GetInfo


def test_get_info_lists_exactly_what_is_implemented(daemon):
    ctap2 = daemon.ctap2()
    raw = ctap2.send_cbor(Ctap2.CMD.GET_INFO)
    assert raw[0x01] == EXPECTED_VERSIONS, f"versions {raw[0x01]}"
    assert "U2F_V2" not in raw[0x01]
    assert len(raw[0x02]) == len(set(raw[0x02])) and set(raw[0x02]) == EXPECTED_EXTENSIONS, f"extensions {raw[0x02]}"
    assert raw[0x04] == EXPECTED_OPTIONS, f"options {raw[0x04]}"
    for absent in ("ep", "bioEnroll", "uvBioEnroll", "userVerificationMgmtPreview",
                   "noMcGaPermissionsWithClientPin", "uvAcfg"):
        assert absent not in raw[0x04], f"option {absent} claimed"
    assert raw[0x0B] == MAX_LARGE_BLOB_ARRAY and raw[0x0B] >= 1024, "maxSerializedLargeBlobArray"
    assert raw[0x0F] == 32, "maxCredBlobLength (at least 32 when credBlob is listed)"
    assert raw[0x10] == 8, "maxRPIDsForSetMinPINLength (at least 1 with setMinPINLength)"
    assert raw[0x14] == MAX_DISCOVERABLE, "remainingDiscoverableCredentials"
    assert raw[0x0C] is False and raw[0x0D] == 4
    assert raw[0x16] == ["packed", "none"] and raw[0x1D] == 63, "attestationFormats, maxPINLength"
    # Nothing else: no vendorPrototypeConfigCommands, no certifications, no
    # uvModality (our UV is a PIN prompt); no encIdentifier or
    # encCredStoreState before a persistent token exists.
    assert set(raw) == {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
                        0x0F, 0x10, 0x14, 0x16, 0x1D}, f"GetInfo keys {sorted(raw)}"
    # python-fido2's feature probes agree.
    info = ctap2.get_info()
    assert CredentialManagement.is_supported(info) and CredentialManagement.is_update_supported(info)
    assert CredentialManagement.is_readonly_supported(info)
    assert LargeBlobs.is_supported(info) and Config.is_supported(info)
    assert info.max_cred_blob_length == 32 and info.max_large_blob == MAX_LARGE_BLOB_ARRAY
    assert info.max_rpids_for_min_pin == 8 and info.remaining_disc_creds == MAX_DISCOVERABLE
    assert info.authenticator_config_commands is None and not info.vendor_prototype_config_commands
    assert all(e.is_supported(ctap2) for e in EXTENSIONS)


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


# --------------------------------------------------------------------------- large blobs


def test_large_blob_extension_write_then_read_in_another_client(daemon):
    """The WebAuthn largeBlob extension as python-fido2 (and Chrome) run it:
    GetAssertion with a token that also carries lbw, then the write with that
    same token; a second client reads it back."""
    rp = lpk.RelyingParty("webauthn-blob.example")
    c = client(daemon, rp.rp_id)
    reg = rp.register(c, user_name="b", resident_key="required", extensions={"largeBlob": {"support": "required"}},
                      expect_ed=False)
    assert reg.client_extensions.large_blob.supported is True
    data = b"a certificate, say " + os.urandom(200)
    rp.authenticate(c, allow=[reg.credential_id], extensions={"largeBlob": {"write": data}}, expect_ed=False)
    assert rp.last_responses[0].client_extension_results.large_blob.written is True
    rp.authenticate(client(daemon, rp.rp_id), allow=[reg.credential_id], extensions={"largeBlob": {"read": True}},
                    expect_ed=False)
    assert rp.last_responses[0].client_extension_results.large_blob.blob == data


def test_large_blobs_per_credential_with_fido2s_class(daemon):
    rp = lpk.RelyingParty("blobs.example")
    c = client(daemon, rp.rp_id)
    a = rp.register(c, user_name="a", resident_key="required", extensions={"largeBlob": {"support": "required"}},
                    expect_ed=False)
    b = rp.register(c, user_name="b", resident_key="required", extensions={"largeBlob": {"support": "required"}},
                    expect_ed=False)
    key_a = raw_assert(daemon, rp, a, {"largeBlobKey": True}).large_blob_key
    key_b = raw_assert(daemon, rp, b, {"largeBlobKey": True}).large_blob_key
    assert len(key_a) == len(key_b) == 32 and key_a != key_b

    # A fresh authenticator has the spec's empty array.
    reader = LargeBlobs(daemon.ctap2())
    assert reader.ctap.large_blobs(0, get=1024)[1] == INITIAL_ARRAY
    assert reader.read_blob_array() == []

    data_a, data_b = os.urandom(500), b"b" * 1000  # the second compresses well
    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    writer = LargeBlobs(ctap2, proto, token)
    writer.put_blob(key_a, data_a)
    writer.put_blob(key_b, data_b)
    # Another client object (another channel), no token needed to read.
    reader = LargeBlobs(daemon.ctap2())
    assert reader.get_blob(key_a) == data_a and reader.get_blob(key_b) == data_b
    assert len(reader.read_blob_array()) == 2
    raw = reader.ctap.large_blobs(0, get=MAX_FRAGMENT)[1]
    assert raw[-16:] == sha256(raw[:-16])[:16], "stored array without its integrity hash"
    # The WebAuthn read path finds it too.
    rp.authenticate(client(daemon, rp.rp_id), allow=[a.credential_id], extensions={"largeBlob": {"read": True}},
                    expect_ed=False)
    assert rp.last_responses[0].client_extension_results.large_blob.blob == data_a

    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    LargeBlobs(ctap2, proto, token).delete_blob(key_a)
    reader = LargeBlobs(daemon.ctap2())
    assert reader.get_blob(key_a) is None and reader.get_blob(key_b) == data_b
    assert len(reader.read_blob_array()) == 1

    # Writing needs a token with lbw.
    ctap2, proto, token = fresh_token(daemon, PERM.CREDENTIAL_MGMT)
    expect_status(lpk.PIN_AUTH_INVALID, LargeBlobs(ctap2, proto, token).put_blob, key_b, b"x")
    expect_status(lpk.PUAT_REQUIRED, LargeBlobs(daemon.ctap2()).put_blob, key_b, b"x")
    # More than maxSerializedLargeBlobArray.
    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    expect_status(LARGE_BLOB_STORAGE_FULL, LargeBlobs(ctap2, proto, token).write_blob_array,
                  [{1: os.urandom(MAX_LARGE_BLOB_ARRAY), 2: os.urandom(12), 3: 1}])
    assert LargeBlobs(daemon.ctap2()).get_blob(key_b) == data_b


def test_large_blob_fragments_integrity_and_errors(daemon):
    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    V = proto.VERSION

    def read_all(c=ctap2) -> bytes:
        return c.large_blobs(0, get=MAX_FRAGMENT)[1]

    def write(offset, fragment, length=None, tok=token, pr=proto):
        return ctap2.large_blobs(offset, set=fragment, length=length, pin_uv_param=lb_param(pr, tok, offset, fragment),
                                 pin_uv_protocol=pr.VERSION)

    entry = {1: os.urandom(100), 2: os.urandom(12), 3: 100}
    array = serialized([entry])
    n, half = len(array), len(array) // 2

    # Two fragments; until the last one the old array stays.
    write(0, array[:half], length=n)
    assert read_all(daemon.ctap2()) == INITIAL_ARRAY, "a half-written array is visible"
    write(half, array[half:])
    assert read_all() == array
    assert LargeBlobs(daemon.ctap2()).read_blob_array() == [entry]
    # Reads at offsets: a substring; at the very end, empty.
    assert ctap2.large_blobs(5, get=10)[1] == array[5:15]
    assert ctap2.large_blobs(n - 3, get=10)[1] == array[-3:]
    assert ctap2.large_blobs(n, get=10)[1] == b""

    # Integrity: a complete array whose hash is wrong is refused; the old one stays.
    body = cbor.encode([entry, entry])
    expect_status(INTEGRITY_FAILURE, write, 0, body + bytes(16), len(body) + 16)
    bad = bytearray(serialized([entry, entry]))
    bad[3] ^= 1
    write(0, bytes(bad[:40]), length=len(bad))
    expect_status(INTEGRITY_FAILURE, write, 40, bytes(bad[40:]))
    assert read_all() == array

    # Sequence: a fragment at the wrong offset; the right one still continues.
    array2 = serialized([entry, {1: b"x" * 40, 2: b"y" * 12, 3: 40}])
    write(0, array2[:50], length=len(array2))
    expect_status(INVALID_SEQ, write, 51, array2[51:])
    expect_status(INVALID_SEQ, write, 49, array2[49:])
    write(50, array2[50:])
    assert read_all() == array2
    # A continuation with no write in progress.
    expect_status(INVALID_SEQ, write, 10, b"abc")
    # A fragment running past the announced length.
    write(0, array[:half], length=n)
    expect_status(lpk.INVALID_PARAMETER, write, half, array[half:] + b"!")
    assert read_all() == array2

    def raw_status(params) -> int:
        try:
            ctap2.send_cbor(CMD_LARGE_BLOBS, params)
            return lpk.CTAP2_OK
        except CtapError as e:
            return int(e.code)

    frag = array[:20]
    p0 = lb_param(proto, token, 0, frag)
    cases = [
        ("neither get nor set", {3: 0}, lpk.INVALID_PARAMETER),
        ("both get and set", {1: 10, 2: frag, 3: 0, 4: n, 5: p0, 6: V}, lpk.INVALID_PARAMETER),
        ("offset missing (get)", {1: 10}, lpk.INVALID_PARAMETER),
        ("offset missing (set)", {2: frag, 4: n, 5: p0, 6: V}, lpk.INVALID_PARAMETER),
        ("get with length", {1: 10, 3: 0, 4: 10}, lpk.INVALID_PARAMETER),
        ("get with pinUvAuthParam", {1: 10, 3: 0, 5: p0, 6: V}, lpk.INVALID_PARAMETER),
        ("get more than maxFragmentLength", {1: MAX_FRAGMENT + 1, 3: 0}, INVALID_LENGTH),
        ("get past the end", {1: 10, 3: len(array2) + 1}, lpk.INVALID_PARAMETER),
        ("offset as text", {1: 10, 3: "0"}, lpk.CBOR_UNEXPECTED_TYPE),
        ("set as text", {2: "abc", 3: 0, 4: n, 5: p0, 6: V}, lpk.CBOR_UNEXPECTED_TYPE),
        ("set at offset 0 without length", {2: frag, 3: 0, 5: p0, 6: V}, lpk.INVALID_PARAMETER),
        ("set at offset 0, length < 17", {2: frag[:16], 3: 0, 4: 16, 5: lb_param(proto, token, 0, frag[:16]), 6: V},
         lpk.INVALID_PARAMETER),
        ("set with length > maxSerializedLargeBlobArray", {2: frag, 3: 0, 4: MAX_LARGE_BLOB_ARRAY + 1, 5: p0, 6: V},
         LARGE_BLOB_STORAGE_FULL),
        ("set longer than maxFragmentLength",
         {2: bytes(MAX_FRAGMENT + 1), 3: 0, 4: MAX_FRAGMENT + 1,
          5: lb_param(proto, token, 0, bytes(MAX_FRAGMENT + 1)), 6: V}, INVALID_LENGTH),
        ("length with a non-zero offset", {2: frag, 3: 20, 4: n, 5: lb_param(proto, token, 20, frag), 6: V},
         lpk.INVALID_PARAMETER),
        ("set without pinUvAuthParam", {2: frag, 3: 0, 4: n}, lpk.PUAT_REQUIRED),
        ("set without pinUvAuthProtocol", {2: frag, 3: 0, 4: n, 5: p0}, lpk.MISSING_PARAMETER),
        ("set with pinUvAuthProtocol 9", {2: frag, 3: 0, 4: n, 5: p0, 6: 9}, lpk.INVALID_PARAMETER),
        ("set with a wrong pinUvAuthParam", {2: frag, 3: 0, 4: n, 5: bytes(len(p0)), 6: V}, lpk.PIN_AUTH_INVALID),
        ("set with a param for another offset", {2: frag, 3: 0, 4: n, 5: lb_param(proto, token, 1, frag), 6: V},
         lpk.PIN_AUTH_INVALID),
    ]
    wrong = []
    for name, params, expected in cases:
        got = raw_status(params)
        if got != expected:
            wrong.append(f"{name}: {lpk.status_name(got)}, expected {lpk.status_name(expected)}")
    # A token without lbw.
    ctap2b, protob, tok_cm = fresh_token(daemon, PERM.CREDENTIAL_MGMT)
    got = code_of(ctap2b.large_blobs, 0, set=array, length=n, pin_uv_param=lb_param(protob, tok_cm, 0, array),
                  pin_uv_protocol=protob.VERSION)
    if got != lpk.PIN_AUTH_INVALID:
        wrong.append(f"token without lbw: {lpk.status_name(got)}, expected PIN_AUTH_INVALID")
    assert not wrong, "\n".join(wrong)
    # All of that left the stored array alone, and a good write still works.
    assert read_all(daemon.ctap2()) == array2
    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    ctap2.large_blobs(0, set=array, length=n, pin_uv_param=lb_param(proto, token, 0, array),
                      pin_uv_protocol=proto.VERSION)
    assert read_all() == array


# --------------------------------------------------------------------------- authenticatorConfig


def config(daemon, protocol: int = 2) -> Config:
    ctap2, proto, token = fresh_token(daemon, PERM.AUTHENTICATOR_CFG, protocol=protocol)
    return Config(ctap2, proto, token)


def test_config_refuses_to_turn_off_always_uv_and_has_no_enterprise_attestation(daemon):
    for protocol in (1, 2):
        expect_status(lpk.OPERATION_DENIED, config(daemon, protocol).toggle_always_uv)
    # No attestation certificate at all, by design: the subcommand is not supported.
    expect_status(lpk.INVALID_SUBCOMMAND, config(daemon).enable_enterprise_attestation)
    info = get_info(daemon)
    assert info[0x04]["alwaysUv"] is True and "ep" not in info[0x04]
    # Still verified: a registration carries UV (checked by the RP helpers).
    lpk.RelyingParty("cfg.example").register(client(daemon, "cfg.example"), resident_key="required")


def test_set_min_pin_length_and_the_min_pin_length_extension(daemon):
    listed, unlisted = lpk.RelyingParty("listed.example"), lpk.RelyingParty("unlisted.example")
    assert (get_info(daemon)[0x0D], get_info(daemon)[0x0C]) == (4, False)

    # 1. Only the RP list: the minimum (4) stays, no change forced (the PIN has 6).
    config(daemon, protocol=1).set_min_pin_length(rp_ids=[listed.rp_id, "also.example"])
    info = get_info(daemon)
    assert (info[0x0D], info[0x0C]) == (4, False)
    reg = listed.register(client(daemon, listed.rp_id), user_name="l", extensions={"minPinLength": True})
    assert reg.authenticator_extensions == {"minPinLength": 4}
    # An RP that is not on the list learns nothing (no output, ED=0).
    reg = unlisted.register(client(daemon, unlisted.rp_id), user_name="u", extensions={"minPinLength": True},
                            expect_ed=False)
    assert reg.authenticator_extensions is None

    # 2. A minimum of 8: the 6-character PIN must change before the next token.
    config(daemon).set_min_pin_length(min_pin_length=8)
    info = get_info(daemon)
    assert (info[0x0D], info[0x0C]) == (8, True)
    for protocol in (1, 2):
        expect_status(lpk.PIN_POLICY_VIOLATION, daemon.client_pin(protocol).get_pin_token, daemon.pin,
                      PERM.CREDENTIAL_MGMT)
    assert daemon.pin_retries()[0] == lpk.MAX_PIN_RETRIES, "the right PIN was counted as a wrong one"
    expect_status(lpk.PIN_POLICY_VIOLATION, daemon.change_pin, daemon.pin, "1234567")  # 7 < 8
    daemon.change_pin(daemon.pin, "13572468")
    info = get_info(daemon)
    assert (info[0x0D], info[0x0C]) == (8, False)
    # From here the client types the new PIN itself (the scripted prompt knows the old one).
    typist = lpk.RecordingInteraction(daemon.pin, allow_uv=False)
    reg = listed.register(client(daemon, listed.rp_id, typist), user_name="l2", extensions={"minPinLength": True})
    assert reg.authenticator_extensions == {"minPinLength": 8}
    assert typist.pin_requests >= 1

    # 3. The minimum never goes down; forceChangePin alone forces a change.
    expect_status(lpk.PIN_POLICY_VIOLATION, config(daemon).set_min_pin_length, min_pin_length=7)
    assert get_info(daemon)[0x0D] == 8
    config(daemon).set_min_pin_length(force_change_pin=True)
    assert get_info(daemon)[0x0C] is True
    expect_status(lpk.PIN_POLICY_VIOLATION, daemon.client_pin().get_pin_token, daemon.pin, PERM.CREDENTIAL_MGMT)
    daemon.change_pin(daemon.pin, "97531864")
    assert (get_info(daemon)[0x0D], get_info(daemon)[0x0C]) == (8, False)
    credman(daemon).get_metadata()  # tokens again

    # 4. The RP list keeps its last value; more RP IDs than GetInfo allows are refused.
    too_many = [f"rp{i}.example" for i in range(9)]
    with pytest.raises(CtapError):
        config(daemon).set_min_pin_length(rp_ids=too_many)
    reg = listed.register(client(daemon, listed.rp_id, lpk.RecordingInteraction(daemon.pin, allow_uv=False)),
                          user_name="l3", extensions={"minPinLength": True})
    assert reg.authenticator_extensions == {"minPinLength": 8}


def test_config_malformed_requests(daemon):
    ctap2, proto, token = fresh_token(daemon, PERM.AUTHENTICATOR_CFG)
    V = proto.VERSION

    def auth(sub, params=None, tok=token, pr=proto):
        msg = b"\xff" * 32 + b"\x0d" + bytes([sub]) + (cbor.encode(params) if params is not None else b"")
        return pr.authenticate(tok, msg)

    cases = [
        ("empty map", {}, lpk.MISSING_PARAMETER),
        ("no subCommand", {3: V, 4: auth(3)}, lpk.MISSING_PARAMETER),
        ("subCommand as text", {1: "3", 3: V, 4: auth(3)}, lpk.CBOR_UNEXPECTED_TYPE),
        ("setMinPINLength without pinUvAuthParam", {1: 3, 2: {1: 6}}, lpk.PUAT_REQUIRED),
        ("toggleAlwaysUv without pinUvAuthParam", {1: 2}, lpk.PUAT_REQUIRED),
        ("without pinUvAuthProtocol", {1: 3, 2: {1: 6}, 4: auth(3, {1: 6})}, lpk.MISSING_PARAMETER),
        ("pinUvAuthProtocol 7", {1: 3, 2: {1: 6}, 3: 7, 4: auth(3, {1: 6})}, lpk.INVALID_PARAMETER),
        ("wrong pinUvAuthParam", {1: 3, 2: {1: 6}, 3: V, 4: bytes(len(auth(3)))}, lpk.PIN_AUTH_INVALID),
        ("param over other subCommandParams", {1: 3, 2: {1: 6}, 3: V, 4: auth(3, {1: 7})}, lpk.PIN_AUTH_INVALID),
        ("unknown subCommand 0x09", {1: 9, 3: V, 4: auth(9)}, lpk.INVALID_SUBCOMMAND),
        ("vendorPrototype 0xff (none offered)", {1: 0xFF, 3: V, 4: auth(0xFF)}, lpk.INVALID_SUBCOMMAND),
        ("newMinPINLength as text", {1: 3, 2: {1: "6"}, 3: V, 4: auth(3, {1: "6"})}, lpk.CBOR_UNEXPECTED_TYPE),
        ("minPinLengthRPIDs as text", {1: 3, 2: {2: "a.example"}, 3: V, 4: auth(3, {2: "a.example"})},
         lpk.CBOR_UNEXPECTED_TYPE),
        ("minPinLengthRPIDs of numbers", {1: 3, 2: {2: [1]}, 3: V, 4: auth(3, {2: [1]})}, lpk.CBOR_UNEXPECTED_TYPE),
        ("forceChangePin as number", {1: 3, 2: {3: 1}, 3: V, 4: auth(3, {3: 1})}, lpk.CBOR_UNEXPECTED_TYPE),
        ("subCommandParams as array", {1: 3, 2: [6], 3: V, 4: auth(3, [6])}, lpk.CBOR_UNEXPECTED_TYPE),
        ("a lower minimum", {1: 3, 2: {1: 3}, 3: V, 4: auth(3, {1: 3})}, lpk.PIN_POLICY_VIOLATION),
    ]
    wrong = []
    for name, params, expected in cases:
        got = code_of(ctap2.send_cbor, CMD_CONFIG, params)
        if got != expected:
            wrong.append(f"{name}: {lpk.status_name(got)}, expected {lpk.status_name(expected)}")
    ctap2b, protob, tok_cm = fresh_token(daemon, PERM.CREDENTIAL_MGMT)
    got = code_of(ctap2b.send_cbor, CMD_CONFIG, {1: 3, 2: {1: 6}, 3: protob.VERSION,
                                                 4: auth(3, {1: 6}, tok_cm, protob)})
    if got != lpk.PIN_AUTH_INVALID:
        wrong.append(f"token without acfg: {lpk.status_name(got)}, expected PIN_AUTH_INVALID")
    assert not wrong, "\n".join(wrong)
    # None of it changed anything.
    info = get_info(daemon)
    assert (info[0x0D], info[0x0C], info[0x04]["alwaysUv"]) == (4, False, True)
