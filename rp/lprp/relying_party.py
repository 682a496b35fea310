"""The WebAuthn ceremonies, verified on the server by py_webauthn.

Each ceremony is a begin/finish pair. ``begin`` makes the options (with a
fresh challenge, remembered server-side under a one-time ceremony id and for
a few minutes only); ``finish`` verifies the browser's response against that
challenge, the RP ID and the origin, and returns what the site sees.

Policy of this demo site (the strictest a passkey site can ask for):
- registration: discoverable credential required, user verification
  required, attestation "direct" (so the authenticator's AAGUID reaches us;
  with "none" Chromium zeroes it), ES256;
- sign in: user verification required; the signature, the challenge, the
  origin, the RP ID hash and the sign counter are all checked; a credential
  the site does not know (or has forgotten) is refused.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_attestation_object,
    parse_authenticator_data,
    parse_client_data_json,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier

from .store import JsonStore

CEREMONY_TTL_S = 300


class CeremonyError(Exception):
    """A response the site refuses; the message says why."""


@dataclass
class _Pending:
    kind: str
    challenge: bytes
    user: str | None
    expires: float


def _flags(auth_data) -> dict[str, bool]:
    parsed = parse_authenticator_data(auth_data) if isinstance(auth_data, (bytes, bytearray)) else auth_data
    f = parsed.flags
    return {"UP": f.up, "UV": f.uv, "BE": f.be, "BS": f.bs, "AT": f.at, "ED": f.ed}


def _s(x) -> str:
    """py_webauthn gives enums or plain strings depending on the field and version."""
    return str(getattr(x, "value", x))


class RelyingParty:
    def __init__(self, rp_id: str, rp_name: str, origin: str, store: JsonStore):
        self.rp_id = rp_id
        self.rp_name = rp_name
        self.origin = origin
        self.store = store
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------- helpers
    def _remember(self, kind: str, challenge: bytes, user: str | None) -> str:
        cid = secrets.token_urlsafe(16)
        now = time.time()
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if p.expires > now}
            self._pending[cid] = _Pending(kind, challenge, user, now + CEREMONY_TTL_S)
        return cid

    def _take(self, cid: str, kind: str) -> _Pending:
        with self._lock:
            p = self._pending.pop(cid, None)
        if p is None or p.kind != kind or p.expires < time.time():
            raise CeremonyError("unknown or expired ceremony")
        return p

    # ------------------------------------------------------ registration
    def register_begin(self, username: str, display_name: str | None = None) -> dict[str, Any]:
        username = username.strip()
        if not username:
            raise CeremonyError("a user name is needed to register")
        user = self.store.user(username)
        if user is None:
            handle = bytes_to_base64url(secrets.token_bytes(16))
            user = self.store.add_user(username, handle, display_name or username)
        opts = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_id=base64url_to_bytes(user["handle"]),
            user_name=username,
            user_display_name=user["display_name"],
            attestation=AttestationConveyancePreference.DIRECT,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
            # Do not register a second passkey for this user on the same authenticator.
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(c["id"]))
                for c in self.store.credentials(username)
            ],
            timeout=60000,
        )
        cid = self._remember("register", opts.challenge, username)
        return {"ceremony": cid, "publicKey": json.loads(options_to_json(opts))}

    def register_finish(self, ceremony: str, credential: dict[str, Any]) -> dict[str, Any]:
        p = self._take(ceremony, "register")
        try:
            v = verify_registration_response(
                credential=credential,
                expected_challenge=p.challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                require_user_presence=True,
                require_user_verification=True,
            )
        except Exception as e:  # py_webauthn raises one of several types
            raise CeremonyError(f"registration refused: {type(e).__name__}: {e}") from e
        att = parse_attestation_object(v.attestation_object)
        flags = _flags(att.auth_data)
        att_stmt = att.att_stmt
        att_type = "none" if _s(v.fmt) == "none" else ("basic (x5c)" if att_stmt.x5c else "self")
        cred = {
            "id": bytes_to_base64url(v.credential_id),
            "user": p.user,
            "public_key": bytes_to_base64url(v.credential_public_key),
            "sign_count": v.sign_count,
            "aaguid": _s(v.aaguid),
            "fmt": _s(v.fmt),
            "attestation_type": att_type,
            "flags_at_registration": flags,
            "device_type": _s(v.credential_device_type),
            "backed_up": v.credential_backed_up,
            "transports": credential.get("response", {}).get("transports", []),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "last_used": None,
        }
        self.store.add_credential(cred)
        return {
            "ceremony": "register",
            "verified": True,
            "user": p.user,
            "credential_id": cred["id"],
            "flags": flags,
            "aaguid": _s(v.aaguid),
            "fmt": cred["fmt"],
            "attestation_type": att_type,
            "sign_count": v.sign_count,
            "device_type": cred["device_type"],
            "backed_up": v.credential_backed_up,
            "transports": cred["transports"],
        }

    # ------------------------------------------------------------ sign in
    def authenticate_begin(self, username: str | None = None) -> dict[str, Any]:
        """Without a user name: a username-less (discoverable) sign in, no
        allowCredentials. With one: allowCredentials lists that user's passkeys."""
        allow = None
        if username:
            creds = self.store.credentials(username.strip())
            if not creds:
                raise CeremonyError(f"no passkey registered for {username!r}")
            allow = [PublicKeyCredentialDescriptor(id=base64url_to_bytes(c["id"])) for c in creds]
        opts = generate_authentication_options(
            rp_id=self.rp_id,
            allow_credentials=allow,
            user_verification=UserVerificationRequirement.REQUIRED,
            timeout=60000,
        )
        cid = self._remember("authenticate", opts.challenge, username or None)
        return {"ceremony": cid, "publicKey": json.loads(options_to_json(opts))}

    def authenticate_finish(self, ceremony: str, credential: dict[str, Any]) -> dict[str, Any]:
        p = self._take(ceremony, "authenticate")
        cred = self.store.credential(credential.get("id", ""))
        if cred is None:
            raise CeremonyError("unknown credential: this site has no such passkey")
        if p.user is not None and cred["user"] != p.user:
            raise CeremonyError("that passkey belongs to another account")
        user = self.store.user(cred["user"])
        handle = credential.get("response", {}).get("userHandle")
        if handle and handle != user["handle"]:
            raise CeremonyError("user handle does not match the credential's account")
        try:
            v = verify_authentication_response(
                credential=credential,
                expected_challenge=p.challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=base64url_to_bytes(cred["public_key"]),
                credential_current_sign_count=cred["sign_count"],
                require_user_verification=True,
            )
        except Exception as e:
            raise CeremonyError(f"sign-in refused: {type(e).__name__}: {e}") from e
        auth_data = base64url_to_bytes(credential["response"]["authenticatorData"])
        flags = _flags(auth_data)
        client = parse_client_data_json(base64url_to_bytes(credential["response"]["clientDataJSON"]))
        previous = cred["sign_count"]
        self.store.update_credential(
            cred["id"],
            sign_count=v.new_sign_count,
            last_used=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        return {
            "ceremony": "authenticate",
            "verified": True,
            "user": cred["user"],
            "username_less": p.user is None,
            "credential_id": cred["id"],
            "flags": flags,
            "aaguid": cred["aaguid"],
            "fmt": cred["fmt"],
            "sign_count": v.new_sign_count,
            "previous_sign_count": previous,
            "device_type": _s(v.credential_device_type),
            "backed_up": v.credential_backed_up,
            "origin": client.origin,
        }

    # ------------------------------------------------------------ listing
    def forget(self, cred_id_b64: str) -> bool:
        return self.store.remove_credential(cred_id_b64)

    def summary(self) -> dict[str, Any]:
        return {
            "rp_id": self.rp_id,
            "origin": self.origin,
            "credentials": self.store.credentials(),
        }
