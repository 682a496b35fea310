"""Relying parties nobody here wrote (fido2.server and py_webauthn) checking every answer: authenticator data, signatures, attestation."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import webauthn
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from fido2.attestation import Attestation, AttestationType, AttestationVerifier
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import STATUS, CtapError
from fido2.ctap2 import ClientPin, Ctap2, PinProtocolV1, PinProtocolV2
from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor
from fido2.server import Fido2Server
from fido2.webauthn import (
    UserVerificationRequirement,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)
from webauthn.helpers import parse_attestation_object
from webauthn.helpers.structs import CredentialDeviceType

from .common import *  # noqa: F403

def rp_id_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode()).digest()


def check_flags(auth_data: AuthenticatorData, up: bool, at: bool = False, ed: bool = False) -> None:
    """Honest flags (DESIGN.md promise 3): BE=0, BS=0 always; UV=1 on every
    MakeCredential and GetAssertion (alwaysUv: nothing is signed without
    verification); UP as asked; ED exactly when extension outputs are expected."""
    f = auth_data.flags
    assert bool(f & FLAG_UP) == up, f"UP flag {bool(f & FLAG_UP)}, expected {up} (flags 0x{f:02x})"
    assert f & FLAG_UV, f"UV=0: alwaysUv promises verification on every signature (flags 0x{f:02x})"
    assert not f & FLAG_BE, f"BE=1: backup eligible (flags 0x{f:02x})"
    assert not f & FLAG_BS, f"BS=1: backed up (flags 0x{f:02x})"
    assert bool(f & FLAG_AT) == at, f"AT flag {bool(f & FLAG_AT)}, expected {at} (flags 0x{f:02x})"
    if ed:
        assert f & FLAG_ED, f"ED=0 but extension outputs were expected (flags 0x{f:02x})"
        assert auth_data.extensions, f"ED=1 with an empty extensions map {auth_data.extensions!r}"
    else:
        assert not f & FLAG_ED, f"ED=1 but no extensions were asked for (flags 0x{f:02x})"
    # No reserved bits.
    assert not f & 0x22, f"reserved flag bits set (flags 0x{f:02x})"


def verify_es256(cose_public_key: bytes, message: bytes, signature: bytes, alg: int = None) -> None:
    """Verify with py_webauthn's COSE decoding and signature code (not fido2's).
    `alg`: the credential's algorithm (ES256 unless said)."""
    from webauthn.helpers import (
        decode_credential_public_key,
        decoded_public_key_to_cryptography,
        verify_signature,
    )

    decoded = decode_credential_public_key(cose_public_key)
    expected = ES256 if alg is None else alg
    assert decoded.alg == expected, f"credential key alg {decoded.alg}, expected {expected}"
    pub = decoded_public_key_to_cryptography(decoded)
    verify_signature(public_key=pub, signature_alg=decoded.alg, signature=signature, data=message)


def cose_bytes(att) -> bytes:
    """The credential's COSE_Key bytes from a Ctap2 AttestationResponse, as py_webauthn parses them."""
    from fido2.webauthn import AttestationObject

    obj = AttestationObject.create(att.fmt, att.auth_data, att.att_stmt)
    return parse_attestation_object(bytes(obj)).auth_data.attested_credential_data.credential_public_key


def verify_attestation_twice(att, client_data_hash: bytes) -> bytes:
    """A raw MakeCredential answer: packed self-attestation checked by fido2's
    verifier and the signature again by py_webauthn's code. Returns the COSE key."""
    from fido2.webauthn import AttestationObject

    assert att.fmt == "packed", att.fmt
    verify_packed_self(AttestationObject.create(att.fmt, att.auth_data, att.att_stmt), client_data_hash)
    cose = cose_bytes(att)
    verify_es256(cose, bytes(att.auth_data) + client_data_hash, att.att_stmt["sig"])
    assert att.auth_data.credential_data.aaguid == AAGUID
    return cose


def verify_packed_self(attestation_object, client_data_hash: bytes) -> None:
    """fido2.server's attestation hook: packed self-attestation with the
    credential key's own algorithm, no x5c."""
    assert attestation_object.fmt == "packed", f"attestation format {attestation_object.fmt!r}"
    stmt = attestation_object.att_stmt
    assert set(stmt) == {"alg", "sig"}, f"packed attStmt keys {sorted(stmt)} (expected alg, sig; no x5c)"
    assert stmt["alg"] == attestation_object.auth_data.credential_data.public_key[3], "attStmt alg is not the key's"
    result = Attestation.for_type("packed")().verify(stmt, attestation_object.auth_data, client_data_hash)
    assert result.attestation_type == AttestationType.SELF, result.attestation_type


class PinnedRootVerifier(AttestationVerifier):
    """python-fido2's attestation verifier with these PEM roots as its only
    trust anchors: every attestation must carry a chain (x5c) to one of them."""

    def __init__(self, roots_pem: list[bytes]):
        super().__init__()
        from cryptography import x509 as _x509
        from cryptography.hazmat.primitives.serialization import Encoding
        self.roots = [_x509.load_pem_x509_certificate(r) for r in roots_pem]
        self._der = {r.subject: r.public_bytes(Encoding.DER) for r in self.roots}

    def ca_lookup(self, attestation_result, auth_data):
        from cryptography import x509 as _x509
        chain = attestation_result.trust_path
        if not chain:
            return None
        last = _x509.load_der_x509_certificate(chain[-1])
        return self._der.get(last.issuer)


@dataclass
class Registered:
    """What a relying party keeps about one credential."""

    credential_id: bytes
    credential_data: AttestedCredentialData
    public_key: bytes  # COSE_Key as sent by the authenticator
    user_id: bytes
    discoverable: bool
    sign_count: int
    fmt: str
    counters: list[int] = field(default_factory=list)
    user_name: str | None = None
    # With extensions: the client's extension results (fido2's
    # AuthenticationExtensionsClientOutputs: attribute access gives bytes and
    # objects, item access the JSON form) and the authenticator's extension
    # outputs from authData, as the registration returned them.
    client_extensions: Any = None
    authenticator_extensions: dict | None = None


class RelyingParty:
    """A WebAuthn relying party whose every check is done twice, by two libraries."""

    def __init__(self, rp_id: str = "example.com", origin: str | None = None, attestation: str = "direct",
                 algorithms: list[int] | None = None, attestation_roots: list[bytes] | None = None):
        """`algorithms`: pubKeyCredParams in order (fido2's default list, ES256
        first, if None); the authenticator must pick the first it supports.
        `attestation_roots`: PEM roots an attestation with a certificate
        (enterprise `tpm`) must chain to, pinned in both verifiers; without
        them only packed self-attestation is accepted."""
        self.rp_id = rp_id
        self.origin = origin or f"https://{rp_id}"
        self.attestation = attestation
        self.attestation_roots = attestation_roots
        self.server = Fido2Server(
            {"id": rp_id, "name": f"RP {rp_id}"},
            attestation=attestation,
            verify_attestation=(PinnedRootVerifier(attestation_roots) if attestation_roots
                                else verify_packed_self),
        )
        self.expected_alg = ES256
        if algorithms is not None:
            from fido2.webauthn import PublicKeyCredentialParameters, PublicKeyCredentialType
            self.server.allowed_algorithms = [
                PublicKeyCredentialParameters(type=PublicKeyCredentialType.PUBLIC_KEY, alg=a) for a in algorithms
            ]
            self.expected_alg = algorithms[0]
        self.credentials: dict[bytes, Registered] = {}
        self.last_responses: list = []

    # ---- registration

    def register(
        self,
        client: Fido2Client,
        user_id: bytes | None = None,
        user_name: str = "alice",
        resident_key: str = "discouraged",
        user_verification: str = "discouraged",
        exclude: list[bytes] | None = None,
        expect_fmt: str = "packed",
        extensions: dict | None = None,
        expect_ed: bool | None = None,
    ) -> Registered:
        """`extensions`: WebAuthn client extension inputs. `expect_ed`: whether
        authData must carry extension outputs (default: exactly when
        extensions were asked for)."""
        user_id = user_id or os.urandom(16)
        user = {"id": user_id, "name": user_name, "displayName": user_name.title()}
        exclude_creds = [self.credentials[c].credential_data for c in exclude or []]
        options, state = self.server.register_begin(
            user,
            credentials=exclude_creds or None,
            resident_key_requirement=resident_key,
            user_verification=user_verification,
            extensions=extensions,
        )
        response = client.make_credential(options.public_key)
        ed = bool(extensions) if expect_ed is None else expect_ed
        reg = self.complete_registration(state, options.public_key.challenge, response, user_id,
                                         resident_key == "required", expect_fmt, ed=ed)
        reg.user_name = user_name
        return reg

    def complete_registration(self, state, challenge, response, user_id, discoverable, expect_fmt,
                              ed: bool = False) -> Registered:
        # 1. fido2.server, told to insist on UV whatever the request preferred:
        # an alwaysUv authenticator verifies every ceremony.
        auth_data = self.server.register_complete(_uv_required(state), response)
        att_obj = response.response.attestation_object
        assert att_obj.fmt == expect_fmt, f"attestation format {att_obj.fmt!r}, expected {expect_fmt!r}"
        check_flags(auth_data, up=True, at=True, ed=ed)
        assert auth_data.rp_id_hash == rp_id_hash(self.rp_id)
        cd = auth_data.credential_data
        assert cd.aaguid == AAGUID, f"AAGUID {cd.aaguid.hex()}"
        assert cd.public_key[3] == self.expected_alg, f"COSE alg {cd.public_key[3]}, expected {self.expected_alg}"
        assert len(cd.credential_id) >= 16, "credential id too short to be random"
        if expect_fmt == "packed":
            verify_packed_self(att_obj, response.response.client_data.hash)

        parsed = parse_attestation_object(bytes(att_obj))
        cose = parsed.auth_data.attested_credential_data.credential_public_key
        if _py_webauthn_knows(self.expected_alg):
            # 2. py_webauthn, from the JSON a browser would send.
            as_json = json.loads(json.dumps(dict(response), default=_json_default))
            roots = {}
            if self.attestation_roots:
                # Pinned: without roots py_webauthn skips the chain silently.
                from webauthn.helpers.structs import AttestationFormat
                roots = {"pem_root_certs_bytes_by_fmt": {AttestationFormat.TPM: list(self.attestation_roots)}}
            v = webauthn.verify_registration_response(
                credential=as_json,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                require_user_presence=True,
                require_user_verification=True,
                supported_pub_key_algs=[COSEAlgorithmIdentifier(self.expected_alg)],
                **roots,
            )
            assert v.fmt == expect_fmt, v.fmt
            assert v.aaguid == AAGUID_STR, v.aaguid
            assert v.credential_id == cd.credential_id
            assert v.credential_device_type == CredentialDeviceType.SINGLE_DEVICE
            assert v.credential_backed_up is False
            assert v.user_verified is True
            assert v.sign_count == auth_data.counter
            assert v.credential_public_key == cose
        elif expect_fmt == "packed":
            # 2'. py_webauthn has no ES384: the packed signature again with
            # `cryptography` (neither fido2's code nor ours).
            message = bytes(att_obj.auth_data) + response.response.client_data.hash
            verify_with_cryptography(cose, message, att_obj.att_stmt["sig"])

        reg = Registered(
            credential_id=cd.credential_id,
            credential_data=cd,
            public_key=cose,
            user_id=user_id,
            discoverable=discoverable,
            sign_count=auth_data.counter,
            fmt=att_obj.fmt,
            client_extensions=response.client_extension_results,
            authenticator_extensions=auth_data.extensions,
        )
        self.credentials[reg.credential_id] = reg
        return reg

    # ---- authentication

    def authenticate(
        self,
        client: Fido2Client,
        allow: list[bytes] | None = None,
        user_verification: str = "discouraged",
        extensions: dict | None = None,
        expect_ed: bool | None = None,
    ) -> list[Registered]:
        """One WebAuthn get(); every returned assertion is verified twice.

        `allow=None` means a discoverable-credential request (no allowList).
        Returns the credentials that answered, in the authenticator's order;
        the responses themselves (client extension results, authData) are
        kept in `self.last_responses`. `extensions`/`expect_ed` as for register().
        """
        creds = [self.credentials[c].credential_data for c in allow] if allow else None
        options, state = self.server.authenticate_begin(creds, user_verification=user_verification,
                                                        extensions=extensions)
        selection = client.get_assertion(options.public_key)
        responses = [selection.get_response(i) for i in range(len(selection.get_assertions()))]
        self.last_responses = responses
        ed = bool(extensions) if expect_ed is None else expect_ed
        used = []
        for response in responses:
            used.append(self.verify_assertion(state, options.public_key.challenge, response, allow, ed=ed))
        return used

    def verify_assertion(self, state, challenge, response, allow, ed: bool = False) -> Registered:
        cred_id = response.raw_id
        assert cred_id in self.credentials, f"unknown credential {cred_id.hex()}"
        reg = self.credentials[cred_id]
        if allow is not None:
            assert cred_id in allow, "a credential outside the allowList answered"
        auth_data = response.response.authenticator_data
        # 1. fido2.server (insisting on UV, as above)
        self.server.authenticate_complete(_uv_required(state), [reg.credential_data], response)
        check_flags(auth_data, up=True, ed=ed)
        assert auth_data.rp_id_hash == rp_id_hash(self.rp_id)
        if reg.discoverable:
            assert response.response.user_handle == reg.user_id, "wrong or missing userHandle"
        if _py_webauthn_knows(reg.credential_data.public_key[3]):
            # 2. py_webauthn (it also rejects a counter that does not go up)
            as_json = json.loads(json.dumps(dict(response), default=_json_default))
            v = webauthn.verify_authentication_response(
                credential=as_json,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=reg.public_key,
                credential_current_sign_count=reg.sign_count,
                require_user_verification=True,
            )
            assert v.credential_device_type == CredentialDeviceType.SINGLE_DEVICE
            assert v.credential_backed_up is False
            assert v.user_verified is True
            assert v.new_sign_count == auth_data.counter
        else:
            # 2'. py_webauthn has no ES384: the signature with `cryptography`.
            message = bytes(auth_data) + response.response.client_data.hash
            verify_with_cryptography(reg.public_key, message, response.response.signature)
        # Counter strictly increasing (explicitly, whatever the library allows).
        assert auth_data.counter > reg.sign_count, (
            f"counter went from {reg.sign_count} to {auth_data.counter}"
        )
        reg.sign_count = auth_data.counter
        reg.counters.append(auth_data.counter)
        return reg


def _py_webauthn_knows(alg: int) -> bool:
    return alg in {a.value for a in COSEAlgorithmIdentifier}


def verify_with_cryptography(cose_public_key: bytes, message: bytes, signature: bytes) -> None:
    """An EC2 P-384 (ES384) signature checked by `cryptography` alone, from
    the COSE key decoded with cbor2: code neither we nor fido2 wrote."""
    import cbor2
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = cbor2.loads(cose_public_key)
    assert key[1] == 2 and key[3] == -35 and key[-1] == 2, f"not an ES384 EC2 P-384 key: {key}"
    pub = ec.EllipticCurvePublicNumbers(
        int.from_bytes(key[-2], "big"), int.from_bytes(key[-3], "big"), ec.SECP384R1()
    ).public_key()
    pub.verify(signature, message, ec.ECDSA(hashes.SHA384()))


def _uv_required(state: dict) -> dict:
    return {**state, "user_verification": UserVerificationRequirement.REQUIRED}


def _json_default(o: Any):
    from collections.abc import Mapping

    if isinstance(o, Mapping):
        return dict(o)
    if isinstance(o, bytes):
        from fido2.utils import websafe_encode

        return websafe_encode(o)
    raise TypeError(f"cannot serialise {type(o)}")


def client_data_hash(challenge: bytes | None = None, origin: str = "https://example.com", kind: str = "webauthn.get") -> tuple[CollectedClientData, bytes]:
    cd = CollectedClientData.create(type=kind, origin=origin, challenge=challenge or os.urandom(32))
    return cd, cd.hash


def pin_uv_param(protocol: int, token: bytes, client_data_hash: bytes) -> dict:
    """The pinUvAuthParam/pinUvAuthProtocol keyword arguments for Ctap2.make_credential/get_assertion."""
    return {
        "pin_uv_param": PROTOCOLS[protocol]().authenticate(token, client_data_hash),
        "pin_uv_protocol": protocol,
    }


def ctap_error(excinfo) -> int:
    """The CTAP status inside a CtapError or a fido2 ClientError caused by one."""
    e = excinfo.value if hasattr(excinfo, "value") else excinfo
    if isinstance(e, CtapError):
        return int(e.code)
    cause = getattr(e, "cause", None)
    if isinstance(cause, CtapError):
        return int(cause.code)
    raise AssertionError(f"not a CTAP error: {e!r}")
