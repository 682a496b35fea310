"""Enterprise attestation (CTAP 2.1 §7.1, §6.1.2 step 9, §6.11.1; WebAuthn
§8.3 `tpm`) against the real daemon on swtpm, TPM custody.

Each test manufactures its swtpm with an EK certificate from its own local
TPM-maker CA (swtpm_setup --create-ek-cert), makes an enterprise CA with
`python -m lprp.attestation_ca init`, and enrols the device as an
administrator would: `localpasskey enterprise request` (daemon stopped, PIN
on stdin), `lprp.attestation_ca issue` (EK chain checked against the maker
CA), `localpasskey enterprise install --rp-id ...`. Every enterprise
attestation is verified by python-fido2's verifier and by py_webauthn, both
with the enterprise root pinned; then the credential signs in.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ctap_common import *  # noqa: F403 (the shared helpers and constants)

pytestmark = pytest.mark.custody("tpm")

CORP = "corp.example"
OTHER = "other.example"
RP_KIT = lpk.REPO / "rp"
sys.path.insert(0, str(RP_KIT))
from lprp import attestation_ca  # noqa: E402


def ca_tool(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(RP_KIT))
    return subprocess.run([sys.executable, "-m", "lprp.attestation_ca", *args], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.fixture
def maker_ca(tmp_path):
    return tmp_path / "tpm-maker-ca"


@pytest.fixture
def enterprise_ca(tmp_path):
    d = tmp_path / "enterprise-ca"
    r = ca_tool("init", "--dir", str(d))
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture
def make_ek_daemon(make_daemon, tmp_path, maker_ca):
    """A daemon on a swtpm that has an EK certificate from `maker_ca`."""
    tpms = []

    def make(name="d"):
        t = lpk.Swtpm(tmp_path / f"ek-tpm{len(tpms)}", ek_ca=maker_ca)
        tpms.append(t)
        t.start()
        return make_daemon(name=name, tpm=t)

    yield make
    for t in tpms:
        t.stop()


def enterprise_cli(daemon, *args, pin: str | None = None, check: bool = True):
    r = lpk.run_cli("enterprise", *args, "--data-dir", str(daemon.data_dir), "--tpm", daemon.tpm.tcti,
                    "--pin-stdin", input=(pin or daemon.pin) + "\n")
    if check:
        assert r.returncode == 0, f"localpasskey enterprise {' '.join(args)}: {r.stderr}"
    return r


def request(daemon, tmp_path, pin=None, check=True) -> dict:
    daemon.stop()
    out = tmp_path / f"req-{daemon.data_dir.parent.name}.json"
    r = enterprise_cli(daemon, "request", "--out", str(out), pin=pin, check=check)
    if not check and r.returncode != 0:
        return {"error": r.stderr}
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    return json.loads(out.read_text())


def issue(enterprise_ca, maker_ca, req: dict, tmp_path) -> dict:
    req_file = tmp_path / "issue-req.json"
    req_file.write_text(json.dumps(req))
    out = tmp_path / "resp.json"
    roots = [a for p in lpk.ek_roots(maker_ca) for a in ("--tpm-roots", str(p))]
    r = ca_tool("issue", "--dir", str(enterprise_ca), "--request", str(req_file), *roots, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text())


def install(daemon, resp: dict, tmp_path, rp_ids=(CORP,), check=True):
    f = tmp_path / "install-resp.json"
    f.write_text(json.dumps(resp))
    args = [a for rp in rp_ids for a in ("--rp-id", rp)]
    return enterprise_cli(daemon, "install", str(f), *args, check=check)


def enrol(daemon, enterprise_ca, maker_ca, tmp_path, rp_ids=(CORP,)):
    resp = issue(enterprise_ca, maker_ca, request(daemon, tmp_path), tmp_path)
    install(daemon, resp, tmp_path, rp_ids)
    daemon.start()


def enable_ep(daemon) -> None:
    ctap2, proto, token = fresh_token(daemon, PERM.AUTHENTICATOR_CFG)
    Config(ctap2, proto, token).enable_enterprise_attestation()


def root_pem(enterprise_ca) -> bytes:
    return (enterprise_ca / "root.pem").read_bytes()


def enterprise_rp(rp_id: str, enterprise_ca) -> lpk.RelyingParty:
    return lpk.RelyingParty(rp_id, attestation="enterprise", attestation_roots=[root_pem(enterprise_ca)])


def raw_ea(daemon, rp_id: str, ea: int | None):
    """MakeCredential with enterpriseAttestation = `ea`, through raw Ctap2."""
    ctap2, proto, token = fresh_token(daemon, PERM.MAKE_CREDENTIAL, rp_id)
    _, cdh = lpk.client_data_hash(origin=f"https://{rp_id}", kind="webauthn.create")
    return ctap2.make_credential(
        cdh, {"id": rp_id, "name": rp_id}, {"id": os.urandom(16), "name": "alice"},
        [{"type": "public-key", "alg": lpk.ES256}], enterprise_attestation=ea,
        **lpk.pin_uv_param(2, token, cdh),
    ), cdh


def test_enrol_enable_and_attest_for_both_kinds(make_ek_daemon, enterprise_ca, maker_ca, tmp_path):
    d = make_ek_daemon()
    info = get_info(d)
    assert "ep" not in info[0x04], "ep before any enrolment"
    assert "tpm" not in info[0x16]

    enrol(d, enterprise_ca, maker_ca, tmp_path)
    info = get_info(d)
    assert info[0x04]["ep"] is False, "enrolled: ep present and false until enabled"
    assert "tpm" not in info[0x16]
    # §6.1.2 step 9.1: capable but disabled.
    for ea in (1, 2, 3):
        expect_status(lpk.INVALID_PARAMETER, raw_ea, d, CORP, ea)
    st = json.loads(d.cli("enterprise", "status", "--json").stdout)
    assert st["enrolled"] and not st["enabled"] and st["rpIds"] == [CORP]

    enable_ep(d)
    info = get_info(d)
    assert info[0x04]["ep"] is True
    assert info[0x16] == ["packed", "tpm", "none"]
    # Persisted: a restart keeps it.
    d.restart()
    assert get_info(d)[0x04]["ep"] is True
    # §6.1.2 step 9.2.
    for ea in (0, 3, 200):
        expect_status(lpk.INVALID_OPTION, raw_ea, d, CORP, ea)

    # Platform-managed (2): python-fido2's client with the platform's
    # enterprise RP list, for any RP in it (here one not on the device's list).
    rp = enterprise_rp(OTHER, enterprise_ca)
    c = client(d, OTHER)
    c._enterprise_rpid_list = [OTHER]
    reg = rp.register(c, user_name="alice", expect_fmt="tpm")  # both verifiers, root pinned
    rp.authenticate(c, allow=[reg.credential_id])
    rp.authenticate(c, allow=[reg.credential_id])

    # Vendor-facilitated (1): the client has no list, the device decides.
    rp = enterprise_rp(CORP, enterprise_ca)
    c = client(d, CORP)
    reg = rp.register(c, user_name="bob", resident_key="required", expect_fmt="tpm")
    rp.authenticate(c, allow=None)
    # ... and an RP outside the device's list gets the normal attestation.
    plain = lpk.RelyingParty(OTHER, attestation="enterprise")
    plain.register(client(d, OTHER), user_name="carol", expect_fmt="packed")

    # epAtt exactly when it was given (raw CTAP).
    att, cdh = raw_ea(d, CORP, 1)
    assert att.fmt == "tpm" and att.ep_att is True
    stmt = att.att_stmt
    assert stmt["ver"] == "2.0" and stmt["alg"] == lpk.ES256 and len(stmt["x5c"]) == 2
    aik = x509.load_der_x509_certificate(stmt["x5c"][0])
    assert len(aik.subject) == 0
    att, _ = raw_ea(d, OTHER, 1)
    assert att.fmt == "packed" and not att.ep_att and "x5c" not in att.att_stmt
    att, _ = raw_ea(d, OTHER, 2)
    assert att.fmt == "tpm" and att.ep_att is True
    att, _ = raw_ea(d, CORP, None)
    assert att.fmt == "packed" and not att.ep_att and "x5c" not in att.att_stmt, \
        "direct attestation must stay self-attestation"

    # Two enterprise attestations carry the same AK certificate: it
    # identifies the device, which is the point (and why it is enterprise only).
    a1, _ = raw_ea(d, CORP, 1)
    a2, _ = raw_ea(d, OTHER, 2)
    assert a1.att_stmt["x5c"][0] == a2.att_stmt["x5c"][0]


def test_reset_ends_the_enrolment(make_ek_daemon, enterprise_ca, maker_ca, tmp_path):
    d = make_ek_daemon()
    enrol(d, enterprise_ca, maker_ca, tmp_path)
    enable_ep(d)
    d.power_cycle()
    d.ctap2().reset()
    d.pin = None
    info = get_info(d)
    assert "ep" not in info[0x04], "the attestation key died with the vault: no ep after Reset"
    d.set_pin(lpk.PIN)
    expect_status(lpk.INVALID_PARAMETER, raw_ea, d, CORP, 2)
    st = json.loads(d.cli("enterprise", "status", "--json").stdout)
    assert not st["enrolled"] and not st["pendingRequest"]


def test_a_wrong_pin_makes_no_request_and_is_counted(make_ek_daemon, tmp_path):
    d = make_ek_daemon()
    out = request(d, tmp_path, pin="999999", check=False)
    assert "wrong PIN" in out["error"]
    d.start()
    assert d.pin_retries()[0] == 7, "the enrolment's PIN check is counted like clientPIN's"
    d.stop()
    st = json.loads(lpk.run_cli("enterprise", "status", "--data-dir", str(d.data_dir), "--json").stdout)
    assert not st["pendingRequest"] and not st["enrolled"]


def test_the_software_custody_has_no_enterprise_attestation(make_daemon):
    soft = make_daemon(custody="soft")
    assert "ep" not in get_info(soft)[0x04]
    expect_status(lpk.INVALID_SUBCOMMAND, lambda: enable_ep(soft))
    expect_status(lpk.INVALID_PARAMETER, raw_ea, soft, CORP, 2)


# --------------------------------------------------------------------------- attacks


def test_an_answer_for_another_tpms_ek_cannot_be_activated(make_ek_daemon, enterprise_ca, maker_ca, tmp_path):
    a = make_ek_daemon("a")
    b = make_ek_daemon("b")
    req_a = request(a, tmp_path)
    req_b = request(b, tmp_path)
    # The CA cannot tell which EK the AK is in: an attacker sends A's AK
    # with B's (genuine) EK certificate. The answer is bound to B's EK, so
    # A's TPM cannot decrypt its secret.
    forged = dict(req_a, ekCertificate=req_b["ekCertificate"])
    resp = issue(enterprise_ca, maker_ca, forged, tmp_path)
    r = install(a, resp, tmp_path, check=False)
    assert r.returncode != 0 and "ActivateCredential refused" in r.stderr, r.stderr
    # And B, which has that EK, does not have the AK the answer names.
    r = install(b, resp, tmp_path, check=False)
    assert r.returncode != 0 and "not for the one this device requested" in r.stderr, r.stderr
    a.start()
    assert "ep" not in get_info(a)[0x04]


def test_a_certificate_for_another_key_is_refused_at_install(make_ek_daemon, enterprise_ca, maker_ca, tmp_path):
    d = make_ek_daemon()
    req = request(d, tmp_path)
    # A correctly activatable answer whose certificate is for some other key.
    ek = x509.load_der_x509_certificate(base64.b64decode(req["ekCertificate"]))
    name = bytes.fromhex(req["attestationKey"]["name"])
    issuer = x509.load_pem_x509_certificate((enterprise_ca / "issuing.pem").read_bytes())
    issuer_key = serialization.load_pem_private_key((enterprise_ca / "issuing.key").read_bytes(), None)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = attestation_ca.aik_certificate(other, req["tpm"], issuer, issuer_key, 30)
    chain = [cert.public_bytes(serialization.Encoding.DER), issuer.public_bytes(serialization.Encoding.DER)]
    key = os.urandom(32)
    blob, secret = attestation_ca.make_credential(ek.public_key(), name, key)
    nonce = os.urandom(12)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    sealed = AESGCM(key).encrypt(nonce, json.dumps({"x5c": [base64.b64encode(c).decode() for c in chain]}).encode(),
                                 name)
    resp = {
        "format": attestation_ca.RESPONSE_FORMAT, "attestationKeyName": name.hex(),
        "credentialBlob": base64.b64encode(blob).decode(), "secret": base64.b64encode(secret).decode(),
        "nonce": base64.b64encode(nonce).decode(), "encryptedCertificates": base64.b64encode(sealed).decode(),
    }
    r = install(d, resp, tmp_path, check=False)
    assert r.returncode != 0 and "another key" in r.stderr, r.stderr
    # The same answer with the right key installs: the refusal was the key.
    good = issue(enterprise_ca, maker_ca, req, tmp_path)
    install(d, good, tmp_path)


def test_the_ca_refuses_unknown_makers_and_aks_it_must_not_certify(make_ek_daemon, enterprise_ca, maker_ca,
                                                                     tmp_path):
    d = make_ek_daemon()
    req = request(d, tmp_path)
    stranger = tmp_path / "stranger-ca"
    lpk.provision_ek_certificate(tmp_path / "stranger-state", stranger)
    req_file = tmp_path / "r.json"
    req_file.write_text(json.dumps(req))
    roots = [a for p in lpk.ek_roots(stranger) for a in ("--tpm-roots", str(p))]
    r = ca_tool("issue", "--dir", str(enterprise_ca), "--request", str(req_file), *roots,
                "--out", str(tmp_path / "x.json"))
    assert r.returncode == 1 and "does not chain" in r.stderr, r.stderr

    # The right maker CA, but an AK that is not what the CA certifies.
    import hashlib
    area = bytearray(base64.b64decode(req["attestationKey"]["publicArea"]))
    attrs = int.from_bytes(area[4:8], "big")
    for changed, why in [(attrs & ~(1 << 16), "attributes"),   # not restricted
                         (attrs | (1 << 17), "attributes"),    # decrypt too
                         (attrs & ~(1 << 1), "attributes")]:   # not fixedTPM
        bad = bytearray(area)
        bad[4:8] = changed.to_bytes(4, "big")
        name = b"\x00\x0b" + hashlib.sha256(bytes(bad)).digest()
        tampered = dict(req, attestationKey={"publicArea": base64.b64encode(bytes(bad)).decode(), "name": name.hex()})
        with pytest.raises(attestation_ca.EnrolmentError, match=why):
            attestation_ca.issue(enterprise_ca, tampered, attestation_ca.load_certificates(lpk.ek_roots(maker_ca)))
    # A Name that is not the public area's.
    wrong_name = dict(req, attestationKey=dict(req["attestationKey"], name="000b" + "00" * 32))
    with pytest.raises(attestation_ca.EnrolmentError, match="Name"):
        attestation_ca.issue(enterprise_ca, wrong_name, attestation_ca.load_certificates(lpk.ek_roots(maker_ca)))


def test_the_data_directory_on_another_tpm_gives_no_enterprise_attestation(
        make_ek_daemon, make_daemon, enterprise_ca, maker_ca, tmp_path):
    d = make_ek_daemon()
    enrol(d, enterprise_ca, maker_ca, tmp_path)
    enable_ep(d)
    d.stop()
    other_tpm = lpk.Swtpm(tmp_path / "elsewhere", ek_ca=maker_ca).start()
    try:
        copy = tmp_path / "copied-data"
        shutil.copytree(d.data_dir, copy)
        thief = lpk.Daemon(tmp_path / "thief", data_dir=copy, custody="tpm", tpm=other_tpm).start()
        try:
            # Nothing of the copy opens here: not the vault, so not the AK.
            code = code_of(raw_ea, thief, CORP, 2)
            assert code != 0
            # And the AK blob itself, with a vault of this TPM, does not load.
            thief.stop()
            r = lpk.run_cli("enterprise", "status", "--data-dir", str(copy), "--json")
            assert json.loads(r.stdout)["enrolled"], "the copy holds the enrolment"
        finally:
            thief.stop()
    finally:
        other_tpm.stop()
    # Positive control: in its own TPM the same data directory attests.
    d.start()
    att, _ = raw_ea(d, CORP, 1)
    assert att.fmt == "tpm" and att.ep_att is True


def forged_chain(stmt: dict) -> list[bytes]:
    """x5c with the same AIK certificate contents, re-signed by an attacker's own CA."""
    real = x509.load_der_x509_certificate(stmt["x5c"][0])
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "LocalPasskey Enterprise Attestation Issuing CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(real.subject).issuer_name(name).public_key(real.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
         .not_valid_after(now + datetime.timedelta(days=30)))
    for ext in real.extensions:
        if ext.oid != x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
            b = b.add_extension(ext.value, critical=ext.critical)
    leaf = b.sign(key, hashes.SHA256())
    selfsigned = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                  .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
                  .not_valid_after(now + datetime.timedelta(days=30))
                  .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                  .sign(key, hashes.SHA256()))
    return [leaf.public_bytes(serialization.Encoding.DER), selfsigned.public_bytes(serialization.Encoding.DER)]


def test_a_forged_aik_certificate_fails_both_verifiers(make_ek_daemon, enterprise_ca, maker_ca, tmp_path):
    import webauthn
    from fido2.webauthn import AttestationObject
    from webauthn.helpers.structs import AttestationFormat

    d = make_ek_daemon()
    enrol(d, enterprise_ca, maker_ca, tmp_path)
    enable_ep(d)
    rp = enterprise_rp(CORP, enterprise_ca)
    c = client(d, CORP)
    options, state = rp.server.register_begin({"id": b"u1", "name": "u"}, user_verification="discouraged")
    response = c.make_credential(options.public_key)
    att_obj = response.response.attestation_object
    assert att_obj.fmt == "tpm"
    cdh = response.response.client_data.hash
    # The genuine one passes the pinned verifier ...
    lpk.PinnedRootVerifier([root_pem(enterprise_ca)])(att_obj, cdh)
    for x5c in (forged_chain(att_obj.att_stmt), forged_chain(att_obj.att_stmt)[:1]):
        forged = AttestationObject.create("tpm", att_obj.auth_data, dict(att_obj.att_stmt, x5c=x5c))
        with pytest.raises(Exception):
            lpk.PinnedRootVerifier([root_pem(enterprise_ca)])(forged, cdh)
        as_json = json.loads(json.dumps(dict(response), default=lpk.rp._json_default))
        as_json["response"]["attestationObject"] = base64.urlsafe_b64encode(bytes(forged)).decode().rstrip("=")
        with pytest.raises(Exception):
            webauthn.verify_registration_response(
                credential=as_json, expected_challenge=options.public_key.challenge, expected_rp_id=CORP,
                expected_origin=f"https://{CORP}",
                pem_root_certs_bytes_by_fmt={AttestationFormat.TPM: [root_pem(enterprise_ca)]},
            )
    # A genuine chain from another enterprise's CA: not trusted either.
    other_ca = tmp_path / "other-enterprise"
    assert ca_tool("init", "--dir", str(other_ca)).returncode == 0
    with pytest.raises(Exception):
        lpk.PinnedRootVerifier([root_pem(other_ca)])(att_obj, cdh)


def _tpm2b(data: bytes) -> tuple[bytes, bytes]:
    n = int.from_bytes(data[:2], "big")
    return data[:2 + n], data[2 + n:]


def test_without_the_pin_tpm2_tools_cannot_load_the_attestation_key(
        make_ek_daemon, enterprise_ca, maker_ca, tmp_path):
    """The user's malware, with the blobs from the store and tpm2-tools: the
    primary is re-created and V loads (the positive control: these are the
    real blobs and the real parent), but the AK, V's child, needs V's
    policy, i.e. R, i.e. the PIN. No password (empty or guessed) loads it,
    and neither does any other parent."""
    import sqlite3

    d = make_ek_daemon()
    enrol(d, enterprise_ca, maker_ca, tmp_path)
    enable_ep(d)
    d.stop()
    con = sqlite3.connect(f"file:{d.data_dir / DB}?mode=ro", uri=True)
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    con.close()
    vault = meta["pin.vault"]
    assert vault[:4] == b"LPV\x02"
    v_pub, rest = _tpm2b(vault[4 + 12 + 8 + 1:])
    v_priv, _ = _tpm2b(rest)
    from fido2 import cbor as _cbor
    ak = _cbor.decode(meta["enterprise.enrolment"])[1]
    assert ak[:4] == b"LPA\x01"
    ak_pub, rest = _tpm2b(ak[4:])
    ak_priv, _ = _tpm2b(rest)
    w = tmp_path / "attacker"
    w.mkdir()
    for name, data in [("v.pub", v_pub), ("v.priv", v_priv), ("ak.pub", ak_pub), ("ak.priv", ak_priv)]:
        (w / name).write_bytes(data)

    tpm = d.tpm
    tpm.flush_all()

    def tool(*args, check=True):
        r = tpm.tool(*args, check=False)
        tpm.tool("tpm2_flushcontext", "-t", check=False)
        if check:
            assert r.returncode == 0, f"{args}: {r.stderr}"
        return r

    tool("tpm2_createprimary", "-C", "o", "-g", "sha256", "-G", "ecc256:null:aes128cfb",
         "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda|restricted|decrypt",
         "-c", str(w / "primary.ctx"))
    tool("tpm2_load", "-C", str(w / "primary.ctx"), "-u", str(w / "v.pub"), "-r", str(w / "v.priv"),
         "-c", str(w / "v.ctx"))
    for auth in ([], ["-P", ""], ["-P", "hex:" + "00" * 32], ["-P", lpk.PIN]):
        r = tool("tpm2_load", "-C", str(w / "v.ctx"), *auth, "-u", str(w / "ak.pub"), "-r", str(w / "ak.priv"),
                 "-c", str(w / "ak.ctx"), check=False)
        assert r.returncode != 0, f"the AK loaded under V with {auth}"
    r = tool("tpm2_load", "-C", str(w / "primary.ctx"), "-u", str(w / "ak.pub"), "-r", str(w / "ak.priv"),
             "-c", str(w / "ak.ctx"), check=False)
    assert r.returncode != 0, "the AK loaded under the primary"
    tpm.flush_all()
    # Positive control: with the PIN, the daemon attests with that same AK.
    d.start()
    att, _ = raw_ea(d, CORP, 1)
    assert att.fmt == "tpm" and att.ep_att is True
