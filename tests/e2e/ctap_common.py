"""What the CTAP 2.1 and 2.2 test files share: python-fido2's extension
classes for what we implement, the relying-party helpers for raw calls (every
attestation and assertion verified by fido2.server and py_webauthn, or their
signature code, with UV=1, BE=0, BS=0) and the database probes."""

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
