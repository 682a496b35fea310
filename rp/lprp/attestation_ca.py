"""An enterprise attestation CA for LocalPasskey (docs/enterprise-attestation.md).

    python -m lprp.attestation_ca init  --dir CA
    python -m lprp.attestation_ca issue --dir CA --request req.json --tpm-roots ROOTS.pem [...] --out resp.json

`init` makes a root (the certificate relying parties pin) and an issuing CA
under it. `issue` answers one device's enrolment request
(`localpasskey enterprise request`):

1. the TPM's endorsement key (EK) certificate must chain to one of the TPM
   makers' certificates given with --tpm-roots (every issuer's signature,
   validity and CA flag checked);
2. the attestation key (AK) must be an ECC P-256 restricted signing key
   bound to its TPM (fixedTPM, fixedParent, sensitiveDataOrigin, restricted,
   sign, not decrypt), and its Name must be the hash of the public area sent;
3. the answer is TPM2_MakeCredential (TPM 2.0 Part 1 §24, done here with
   `cryptography`) for that EK, bound to the AK's Name, whose credential is a
   fresh AES-256 key, and the AK's certificate chain encrypted with it
   (AES-256-GCM, the AK's Name as associated data). Only a TPM that holds
   that EK and that AK recovers the key (TPM2_ActivateCredential), so only
   the device that asked can install the certificate.

The AK's certificate follows WebAuthn §8.3.1: version 3, empty subject, a
critical subject alternative name with the TCG directoryName of the TPM's
manufacturer, model and firmware version (as the TPM reports them), EKU
tcg-kp-AIKCertificate (2.23.133.8.3), CA false, and LocalPasskey's AAGUID
(1.3.6.1.4.1.45724.1.1.4).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import struct
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

try:  # TPM 2.0 wraps credentials with AES-CFB, which `cryptography` now files as decrepit.
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # before cryptography 47
    CFB = modes.CFB

REQUEST_FORMAT = "localpasskey-enterprise-request-v1"
RESPONSE_FORMAT = "localpasskey-enterprise-response-v1"
LOCALPASSKEY_AAGUID = "cb8a205c-984c-4e7e-98eb-5800f04355ef"

OID_AIK_CERTIFICATE = x509.ObjectIdentifier("2.23.133.8.3")
OID_TPM_MANUFACTURER = x509.ObjectIdentifier("2.23.133.2.1")
OID_TPM_MODEL = x509.ObjectIdentifier("2.23.133.2.2")
OID_TPM_VERSION = x509.ObjectIdentifier("2.23.133.2.3")
OID_FIDO_AAGUID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")

# TPM 2.0 Part 2 constants.
TPM_ALG_ECC = 0x0023
TPM_ALG_SHA256 = 0x000B
TPM_ALG_NULL = 0x0010
TPM_ALG_ECDSA = 0x0018
TPM_ECC_NIST_P256 = 0x0003
FIXED_TPM = 1 << 1
FIXED_PARENT = 1 << 4
SENSITIVE_DATA_ORIGIN = 1 << 5
RESTRICTED = 1 << 16
DECRYPT = 1 << 17
SIGN = 1 << 18


class EnrolmentError(Exception):
    """The request cannot be certified (says why)."""


# --- TPM 2.0 Part 1 §11.4.10.2 and §24: KDFa and MakeCredential ---------------


def kdfa(key: bytes, label: bytes, context_u: bytes, context_v: bytes, bits: int) -> bytes:
    """KDFa with HMAC-SHA-256: K(i) = HMAC(key, [i]32 || Label || 00 || U || V || [L]32)."""
    out = b""
    i = 1
    while len(out) * 8 < bits:
        out += hmac.new(
            key,
            struct.pack(">I", i) + label + b"\x00" + context_u + context_v + struct.pack(">I", bits),
            hashlib.sha256,
        ).digest()
        i += 1
    return out[: bits // 8]


def make_credential(ek_public: rsa.RSAPublicKey, ak_name: bytes, credential: bytes) -> tuple[bytes, bytes]:
    """TPM2_MakeCredential for an RSA EK of the TCG template (nameAlg SHA-256,
    AES-128-CFB): returns the bodies of TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET."""
    seed = os.urandom(32)
    secret = ek_public.encrypt(
        seed,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"IDENTITY\x00"),
    )
    sym_key = kdfa(seed, b"STORAGE", ak_name, b"", 128)
    plain = struct.pack(">H", len(credential)) + credential
    enc = Cipher(algorithms.AES(sym_key), CFB(b"\x00" * 16)).encryptor()
    enc_identity = enc.update(plain) + enc.finalize()
    hmac_key = kdfa(seed, b"INTEGRITY", b"", b"", 256)
    integrity = hmac.new(hmac_key, enc_identity + ak_name, hashlib.sha256).digest()
    return struct.pack(">H", len(integrity)) + integrity + enc_identity, secret


# --- the AK's public area ---------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise EnrolmentError("the attestation key's public area is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def tpm2b(self) -> bytes:
        return self.take(self.u16())


def parse_attestation_key(public_area: bytes) -> ec.EllipticCurvePublicKey:
    """Checks a TPMT_PUBLIC is an AK we may certify; returns its key."""
    r = _Reader(public_area)
    if r.u16() != TPM_ALG_ECC:
        raise EnrolmentError("the attestation key is not an ECC key")
    if r.u16() != TPM_ALG_SHA256:
        raise EnrolmentError("the attestation key's Name is not SHA-256")
    attrs = r.u32()
    need = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | RESTRICTED | SIGN
    if attrs & need != need or attrs & DECRYPT:
        raise EnrolmentError(
            f"the attestation key's attributes {attrs:#010x} are not fixedTPM | fixedParent | "
            "sensitiveDataOrigin | restricted | sign without decrypt"
        )
    r.tpm2b()  # authPolicy: any; the key is bound to its TPM either way
    if r.u16() != TPM_ALG_NULL:
        raise EnrolmentError("a signing key has no symmetric algorithm")
    scheme = r.u16()
    if scheme != TPM_ALG_ECDSA or r.u16() != TPM_ALG_SHA256:
        raise EnrolmentError("the attestation key's scheme is not ECDSA with SHA-256")
    if r.u16() != TPM_ECC_NIST_P256:
        raise EnrolmentError("the attestation key is not on P-256")
    if r.u16() != TPM_ALG_NULL:
        raise EnrolmentError("the attestation key has a KDF")
    x, y = r.tpm2b(), r.tpm2b()
    if r.pos != len(public_area) or len(x) != 32 or len(y) != 32:
        raise EnrolmentError("the attestation key's public area has trailing or short fields")
    return ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()).public_key()


# --- the EK certificate's chain ---------------------------------------------------


def load_certificates(paths: list[Path]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for p in paths:
        data = p.read_bytes()
        if b"-----BEGIN" in data:
            out.extend(x509.load_pem_x509_certificates(data))
        else:
            out.append(x509.load_der_x509_certificate(data))
    return out


def _valid_now(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def verify_ek_chain(ek: x509.Certificate, anchors: list[x509.Certificate]) -> list[x509.Certificate]:
    """The EK certificate's chain up to a self-signed certificate among
    `anchors` (the TPM makers' roots and intermediates the CA trusts)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    if not _valid_now(ek, now):
        raise EnrolmentError("the EK certificate is outside its validity period")
    chain, cert = [], ek
    for _ in range(8):
        issuers = [a for a in anchors if a.subject == cert.issuer]
        for issuer in issuers:
            try:
                cert.verify_directly_issued_by(issuer)
            except Exception:  # noqa: BLE001 - any failure: not this issuer
                continue
            try:
                bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
            except x509.ExtensionNotFound:
                raise EnrolmentError(f"issuer {issuer.subject.rfc4514_string()} is not marked as a CA")
            if not bc.ca:
                raise EnrolmentError(f"issuer {issuer.subject.rfc4514_string()} is not a CA")
            if not _valid_now(issuer, now):
                raise EnrolmentError(f"issuer {issuer.subject.rfc4514_string()} is outside its validity period")
            chain.append(issuer)
            if issuer.subject == issuer.issuer:
                return chain
            cert = issuer
            break
        else:
            raise EnrolmentError(
                "the EK certificate does not chain to the TPM makers' roots given "
                f"(no valid issuer {cert.issuer.rfc4514_string()})"
            )
    raise EnrolmentError("the EK certificate's chain is too long")


# --- the CA ---------------------------------------------------------------------


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def init(ca_dir: Path, name: str = "LocalPasskey Enterprise Attestation") -> None:
    """A root (pinned by relying parties) and an issuing CA under it."""
    ca_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Issuing CA")]))
        .issuer_name(root_name)
        .public_key(issuing_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    _write(ca_dir / "root.key", _pem_key(root_key), 0o600)
    _write(ca_dir / "root.pem", root.public_bytes(serialization.Encoding.PEM))
    _write(ca_dir / "issuing.key", _pem_key(issuing_key), 0o600)
    _write(ca_dir / "issuing.pem", issuing.public_bytes(serialization.Encoding.PEM))


def aik_certificate(
    ak: ec.EllipticCurvePublicKey,
    tpm: dict,
    issuer: x509.Certificate,
    issuer_key,
    days: int,
    aaguid: str = LOCALPASSKEY_AAGUID,
) -> x509.Certificate:
    """The AK's certificate, as WebAuthn §8.3.1 requires."""
    now = datetime.datetime.now(datetime.timezone.utc)
    manufacturer = f"id:{int(tpm['manufacturer']) & 0xFFFFFFFF:08X}"
    model = str(tpm.get("model") or "unknown")[:64]
    fw = tpm.get("firmware") or [0, 0]
    version = f"id:{int(fw[0]) & 0xFFFFFFFF:08X}"
    san = x509.SubjectAlternativeName(
        [
            x509.DirectoryName(
                x509.Name(
                    [
                        x509.RelativeDistinguishedName([x509.NameAttribute(OID_TPM_MANUFACTURER, manufacturer)]),
                        x509.RelativeDistinguishedName([x509.NameAttribute(OID_TPM_MODEL, model)]),
                        x509.RelativeDistinguishedName([x509.NameAttribute(OID_TPM_VERSION, version)]),
                    ]
                )
            )
        ]
    )
    aaguid_der = b"\x04\x10" + bytes.fromhex(aaguid.replace("-", ""))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(ak)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([OID_AIK_CERTIFICATE]), critical=False)
        .add_extension(san, critical=True)
        .add_extension(x509.UnrecognizedExtension(OID_FIDO_AAGUID, aaguid_der), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def issue(ca_dir: Path, request: dict, tpm_roots: list[x509.Certificate], days: int = 825) -> dict:
    """The enrolment answer for one request (raises EnrolmentError)."""
    if request.get("format") != REQUEST_FORMAT:
        raise EnrolmentError(f"not a LocalPasskey enrolment request ({request.get('format')!r})")
    if request.get("aaguid") != LOCALPASSKEY_AAGUID:
        raise EnrolmentError("the request is from another authenticator model")
    ek = x509.load_der_x509_certificate(base64.b64decode(request["ekCertificate"]))
    verify_ek_chain(ek, tpm_roots)
    ek_key = ek.public_key()
    if not isinstance(ek_key, rsa.RSAPublicKey) or ek_key.key_size != 2048:
        raise EnrolmentError("the EK certificate is not for an RSA-2048 endorsement key")
    public_area = base64.b64decode(request["attestationKey"]["publicArea"])
    name = bytes.fromhex(request["attestationKey"]["name"])
    if name != struct.pack(">H", TPM_ALG_SHA256) + hashlib.sha256(public_area).digest():
        raise EnrolmentError("the attestation key's Name is not that of its public area")
    ak = parse_attestation_key(public_area)

    issuer = x509.load_pem_x509_certificate((ca_dir / "issuing.pem").read_bytes())
    issuer_key = serialization.load_pem_private_key((ca_dir / "issuing.key").read_bytes(), None)
    cert = aik_certificate(ak, request["tpm"], issuer, issuer_key, days)
    chain = [cert.public_bytes(serialization.Encoding.DER), issuer.public_bytes(serialization.Encoding.DER)]

    credential = AESGCM.generate_key(bit_length=256)
    blob, secret = make_credential(ek_key, name, credential)
    nonce = os.urandom(12)
    plain = json.dumps({"x5c": [base64.b64encode(c).decode() for c in chain]}).encode()
    sealed = AESGCM(credential).encrypt(nonce, plain, name)
    issued = ca_dir / "issued"
    issued.mkdir(mode=0o700, exist_ok=True)
    _write(issued / f"{name.hex()}.pem", cert.public_bytes(serialization.Encoding.PEM))
    return {
        "format": RESPONSE_FORMAT,
        "attestationKeyName": name.hex(),
        "credentialBlob": base64.b64encode(blob).decode(),
        "secret": base64.b64encode(secret).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "encryptedCertificates": base64.b64encode(sealed).decode(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lprp.attestation_ca", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init", help="make the root and the issuing CA")
    p_init.add_argument("--dir", type=Path, required=True)
    p_init.add_argument("--name", default="LocalPasskey Enterprise Attestation")
    p_issue = sub.add_parser("issue", help="answer one enrolment request")
    p_issue.add_argument("--dir", type=Path, required=True)
    p_issue.add_argument("--request", type=Path, required=True)
    p_issue.add_argument("--tpm-roots", type=Path, action="append", required=True,
                         help="PEM/DER file of TPM makers' root and intermediate certificates (repeatable)")
    p_issue.add_argument("--out", type=Path, required=True)
    p_issue.add_argument("--days", type=int, default=825)
    a = ap.parse_args(argv)
    if a.command == "init":
        init(a.dir, a.name)
        print(f"CA made in {a.dir}: relying parties pin {a.dir / 'root.pem'}")
        return 0
    try:
        answer = issue(a.dir, json.loads(a.request.read_text()), load_certificates(a.tpm_roots), a.days)
    except (EnrolmentError, KeyError, ValueError) as e:
        print(f"lprp.attestation_ca: refused: {e}", file=sys.stderr)
        return 1
    _write(a.out, (json.dumps(answer, indent=2) + "\n").encode())
    print(f"enrolment answer for attestation key {answer['attestationKeyName']} written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
