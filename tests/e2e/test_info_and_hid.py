"""GetInfo and the CTAPHID basics, through python-fido2's own HID stack."""

from __future__ import annotations

import os

import cbor2
import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.hid import CAPABILITY, CTAPHID

import lpk


def test_init_capabilities(daemon):
    dev = daemon.device()
    caps = dev.capabilities
    assert caps & CAPABILITY.CBOR, "no CBOR capability"
    assert caps & CAPABILITY.WINK, "no WINK capability"
    assert caps & CAPABILITY.NMSG, "NMSG must be set: CTAP1/U2F is not offered"
    assert not caps & CAPABILITY.LOCK
    assert caps & ~0x0F == 0, f"unknown capability bits 0x{caps:02x}"
    assert dev.version == 2, f"CTAPHID protocol version {dev.version}"


def _expected_info(options: dict) -> dict:
    return {
        # CTAP 2.1 and 2.2 (docs/conformance.md); FIDO_2_1_PRE for platforms
        # that only know the pre-release credential management (0x41). No U2F_V2.
        0x01: ["FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1", "FIDO_2_2"],
        # Listed because they are complete (tests/e2e/test_ctap21.py).
        0x02: ["credProtect", "hmac-secret", "hmac-secret-mc", "credBlob", "largeBlobKey", "minPinLength",
               "thirdPartyPayment"],
        0x03: lpk.AAGUID,
        0x04: options,
        0x05: lpk.MAX_MSG_SIZE,
        0x06: [2, 1],  # pinUvAuthProtocols, preferred first
        0x08: 32,  # maxCredentialIdLength: our ids are 32 random bytes
        0x09: ["usb"],
        # What the custody has (swtpm and the software custody: all five).
        0x0A: [{"alg": alg, "type": "public-key"} for alg in (-7, -35, -36, -257, -37)],
        0x0B: 4096,  # maxSerializedLargeBlobArray
        0x0C: False,  # forcePINChange
        0x0D: 4,  # minPINLength
        0x0F: 32,  # maxCredBlobLength
        0x10: 8,  # maxRPIDsForSetMinPINLength
        0x14: 1_000_000,  # remainingDiscoverableCredentials (none stored yet)
        0x16: ["packed", "none"],  # attestationFormats, preferred first
        0x1D: 63,  # maxPINLength (bytes)
    }


def _check_info(ctap2, options: dict) -> dict:
    # The raw map, so that nothing fido2 fills in by default can hide a field.
    raw = ctap2.send_cbor(Ctap2.CMD.GET_INFO)
    expected = _expected_info(options)
    assert raw[0x01] == expected[0x01], f"versions {raw[0x01]}"
    assert "U2F_V2" not in raw[0x01], "U2F_V2 advertised but CTAP1 is not offered"
    assert raw[0x03] == expected[0x03], f"aaguid {bytes(raw[0x03]).hex()}"
    assert raw[0x04] == expected[0x04], f"options {raw[0x04]}, expected {expected[0x04]}"
    # firmwareVersion: present, a number; its value is ours to choose.
    assert isinstance(raw.get(0x0E), int) and raw[0x0E] >= 0, f"firmwareVersion {raw.get(0x0E)!r}"
    rest = {k: v for k, v in raw.items() if k not in (0x01, 0x03, 0x04, 0x0E)}
    assert rest == {k: v for k, v in expected.items() if k not in (0x01, 0x03, 0x04)}, (
        f"GetInfo {rest}"
    )
    # Nothing claimed that is not there: no bio enrolment, no enterprise
    # attestation on a device that is not enrolled.
    for opt in ("bioEnroll", "uvBioEnroll", "userVerificationMgmtPreview", "ep",
                "noMcGaPermissionsWithClientPin", "uvAcfg"):
        assert opt not in raw[0x04], f"option {opt} claimed"
    return raw


_BASE_OPTIONS = {
    "rk": True, "up": True, "plat": False, "pinUvAuthToken": True,
    "alwaysUv": True, "makeCredUvNotRqd": False,
    "credMgmt": True, "credentialMgmtPreview": True, "authnrCfg": True,
    "largeBlobs": True, "setMinPINLength": True, "perCredMgmtRO": True,
}


def test_get_info_exact(daemon):
    """Scripted prompt (built-in UV) and a PIN set: clientPin and uv are true."""
    ctap2 = daemon.ctap2()
    _check_info(ctap2, {**_BASE_OPTIONS, "clientPin": True, "uv": True})
    # And fido2's parsed view agrees.
    info = ctap2.get_info()
    assert info.aaguid == lpk.AAGUID
    assert info.max_msg_size == lpk.MAX_MSG_SIZE
    assert info.pin_uv_protocols == [2, 1]
    assert info.min_pin_length == 4
    assert info.force_pin_change is False


def test_get_info_without_pin(make_daemon):
    """No PIN: clientPin false; uv false (built-in UV is "not configured": it types a PIN)."""
    daemon = make_daemon(pin=None)
    ctap2 = daemon.ctap2()
    _check_info(ctap2, {**_BASE_OPTIONS, "clientPin": False, "uv": False})
    # Setting the PIN switches both.
    daemon.set_pin(lpk.PIN)
    _check_info(daemon.ctap2(), {**_BASE_OPTIONS, "clientPin": True, "uv": True})


def test_get_info_presence_approve_has_no_uv(make_daemon):
    """`--presence approve` cannot verify: no `uv` option at all, clients must use clientPIN."""
    daemon = make_daemon(presence="approve", pin=None)
    _check_info(daemon.ctap2(), {**_BASE_OPTIONS, "clientPin": False})
    daemon.set_pin(lpk.PIN)
    _check_info(daemon.ctap2(), {**_BASE_OPTIONS, "clientPin": True})


def test_get_info_is_canonical_cbor(daemon):
    raw = daemon.raw()
    cid = raw.init()
    status, body = raw.cbor(cid, lpk.CMD_GET_INFO)
    assert status == lpk.CTAP2_OK
    decoded = cbor2.loads(body)
    assert cbor2.dumps(decoded, canonical=True) == body, "GetInfo is not CTAP2-canonical CBOR"


def test_ping_max_size_roundtrip(daemon):
    dev = daemon.device()
    for size in (0, 1, 57, 58, 116, 117, 1000, lpk.MAX_MSG_SIZE):
        data = os.urandom(size)
        assert dev.ping(data) == data, f"PING of {size} bytes did not round-trip"


def test_wink(daemon):
    dev = daemon.device()
    assert dev.call(CTAPHID.WINK) == b""


def test_msg_answers_u2f_ins_not_supported(daemon):
    dev = daemon.device()
    # U2F_VERSION APDU: CLA 00, INS 03, P1 00, P2 00, Le 0000 (extended).
    resp = dev.call(CTAPHID.MSG, bytes.fromhex("00030000000000"))
    assert resp == b"\x6d\x00", f"CTAPHID_MSG answered {resp.hex()}"
    # A U2F register APDU as well.
    resp = dev.call(CTAPHID.MSG, bytes.fromhex("00010300000040") + b"\0" * 64 + b"\0\0")
    assert resp == b"\x6d\x00", f"CTAPHID_MSG answered {resp.hex()}"


def test_each_init_allocates_a_new_channel(daemon):
    raw = daemon.raw()
    cids = {raw.init() for _ in range(5)}
    assert len(cids) == 5, "INIT handed out the same channel twice"
    assert not cids & {0, lpk.BROADCAST_CID}
    # Every channel works.
    for cid in cids:
        cmd, data = raw.request(cid, lpk.HID_PING, b"abc")
        assert (cmd, data) == (lpk.HID_PING, b"abc")


def test_selection(daemon):
    ctap2 = daemon.ctap2()
    daemon.presence("approve", "deny")
    ctap2.selection()
    assert daemon.pending_presence() == ["deny"], "Selection did not ask for presence"
    with pytest.raises(CtapError) as e:
        ctap2.selection()
    assert lpk.ctap_error(e) == lpk.OPERATION_DENIED, lpk.status_name(lpk.ctap_error(e))
