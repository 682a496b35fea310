"""authenticatorConfig through `fido2.ctap2.Config`: setMinPINLength (RP
list, forceChangePin), toggleAlwaysUv refused, no enterprise attestation on a
device that is not enrolled (test_enterprise_attestation.py enrols one).
Both custodies."""

from __future__ import annotations

import pytest

from ctap_common import *  # noqa: F403 (the shared helpers and constants)


# --------------------------------------------------------------------------- authenticatorConfig


def config(daemon, protocol: int = 2) -> Config:
    ctap2, proto, token = fresh_token(daemon, PERM.AUTHENTICATOR_CFG, protocol=protocol)
    return Config(ctap2, proto, token)


def test_config_refuses_to_turn_off_always_uv_and_has_no_enterprise_attestation(daemon):
    for protocol in (1, 2):
        expect_status(lpk.OPERATION_DENIED, config(daemon, protocol).toggle_always_uv)
    # Not enrolled, so not enterprise attestation capable: no such subcommand.
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
