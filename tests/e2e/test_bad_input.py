"""Bad input over raw UDP (no fido2 client): every malformed request gets a
CTAP or CTAPHID error code, never a crash or a hang (DESIGN.md promise 5)."""

from __future__ import annotations

import os
import random
import struct

import cbor2
import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin

import lpk

CDH = bytes(range(32))
RP = {"id": "example.com", "name": "Example"}
USER = {"id": b"user-1", "name": "u", "displayName": "U"}
PARAMS = [{"alg": -7, "type": "public-key"}]


def enc(v) -> bytes:
    return cbor2.dumps(v, canonical=True)


@pytest.fixture
def raw(daemon):
    r = daemon.raw()
    # Nothing malformed may reach the person: a queued "deny" must still be there at the end.
    daemon.presence("deny")
    yield r
    r.close()


@pytest.fixture
def cid(raw):
    return raw.init()


@pytest.fixture(autouse=True)
def _still_alive(request, daemon):
    yield
    # After whatever the test threw at it, the daemon answers INIT and PING.
    lpk.assert_alive(daemon)


def _status(raw, cid, cmd, params: bytes):
    status, body = raw.cbor(cid, cmd, params)
    if status != lpk.CTAP2_OK:
        assert body == b"", f"error status 0x{status:02x} with a body {body.hex()}"
    return status


# ---------------------------------------------------------------- CTAP2 / CBOR


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff",  # break outside an indefinite item
        b"\xa1\x01",  # map with its value missing
        b"\xa5\x01\x58\x20" + b"\0" * 4,  # byte string cut short
        b"\x1c",  # reserved additional information
        b"\xa2\x01\x41\x00",  # map of 2 with one entry
        b"\x7f\x61",  # indefinite text, unterminated
        b"\x9a" + b"\xff" * 3,  # fixed: parameters must be the same on every xdist worker
    ],
)
def test_garbage_cbor_after_make_credential(daemon, raw, cid, garbage):
    status = _status(raw, cid, lpk.CMD_MAKE_CREDENTIAL, garbage)
    assert status in (lpk.INVALID_CBOR, lpk.CBOR_UNEXPECTED_TYPE), lpk.status_name(status)
    assert daemon.pending_presence() == ["deny"]


@pytest.mark.parametrize("cmd", [lpk.CMD_GET_ASSERTION, lpk.CMD_MAKE_CREDENTIAL])
def test_trailing_bytes_after_valid_map(daemon, raw, cid, cmd):
    body = enc({1: CDH, 2: RP, 3: USER, 4: PARAMS}) if cmd == 1 else enc({1: "example.com", 2: CDH})
    status = _status(raw, cid, cmd, body + b"\x00")
    assert status in (lpk.INVALID_CBOR, lpk.CBOR_UNEXPECTED_TYPE), lpk.status_name(status)
    assert daemon.pending_presence() == ["deny"]


@pytest.mark.parametrize("cmd", [lpk.CMD_MAKE_CREDENTIAL, lpk.CMD_GET_ASSERTION])
@pytest.mark.parametrize("top", [[1, 2], "text", 7, b"\x01", None])
def test_top_level_not_a_map(raw, cid, cmd, top):
    status = _status(raw, cid, cmd, enc(top))
    assert status == lpk.CBOR_UNEXPECTED_TYPE, lpk.status_name(status)


@pytest.mark.parametrize("missing", [1, 2, 3, 4])
def test_make_credential_missing_parameter(daemon, raw, cid, missing):
    req = {1: CDH, 2: RP, 3: USER, 4: PARAMS}
    del req[missing]
    status = _status(raw, cid, lpk.CMD_MAKE_CREDENTIAL, enc(req))
    assert status == lpk.MISSING_PARAMETER, lpk.status_name(status)
    assert daemon.pending_presence() == ["deny"]


@pytest.mark.parametrize(
    "req",
    [
        {1: CDH, 2: {"name": "no id"}, 3: USER, 4: PARAMS},  # rp.id
        {1: CDH, 2: RP, 3: {"name": "no id"}, 4: PARAMS},  # user.id
        {1: CDH, 2: RP, 3: USER, 4: [{"type": "public-key"}]},  # alg
        {1: CDH, 2: RP, 3: USER, 4: [{"alg": -7}]},  # type
    ],
    ids=["rp.id", "user.id", "alg", "type"],
)
def test_make_credential_missing_nested_parameter(daemon, raw, cid, req):
    status = _status(raw, cid, lpk.CMD_MAKE_CREDENTIAL, enc(req))
    assert status == lpk.MISSING_PARAMETER, lpk.status_name(status)
    assert daemon.pending_presence() == ["deny"]


@pytest.mark.parametrize("missing", [1, 2])
def test_get_assertion_missing_parameter(raw, cid, missing):
    req = {1: "example.com", 2: CDH}
    del req[missing]
    status = _status(raw, cid, lpk.CMD_GET_ASSERTION, enc(req))
    assert status == lpk.MISSING_PARAMETER, lpk.status_name(status)


@pytest.mark.parametrize(
    "req",
    [
        {1: "not bytes", 2: RP, 3: USER, 4: PARAMS},
        {1: CDH, 2: 5, 3: USER, 4: PARAMS},
        {1: CDH, 2: {"id": 5}, 3: USER, 4: PARAMS},
        {1: CDH, 2: RP, 3: {"id": "text, not bytes", "name": "u"}, 4: PARAMS},
        {1: CDH, 2: RP, 3: USER, 4: {"alg": -7, "type": "public-key"}},
        {1: CDH, 2: RP, 3: USER, 4: [{"alg": "ES256", "type": "public-key"}]},
        {1: CDH, 2: RP, 3: USER, 4: [7]},
        {1: CDH, 2: RP, 3: USER, 4: PARAMS, 5: {"id": b"x", "type": "public-key"}},
        {1: CDH, 2: RP, 3: USER, 4: PARAMS, 5: [b"not a descriptor"]},
        {1: CDH, 2: RP, 3: USER, 4: PARAMS, 7: ["rk"]},
        {1: CDH, 2: RP, 3: USER, 4: PARAMS, 7: {"rk": "yes"}},
        {1: CDH, 2: RP, 3: USER, 4: PARAMS, 6: [1]},
    ],
    ids=[
        "cdh-text", "rp-int", "rp.id-int", "user.id-text", "params-map", "alg-text", "param-int",
        "exclude-map", "exclude-entry-bytes", "options-array", "option-text", "extensions-array",
    ],
)
def test_make_credential_wrong_types(daemon, raw, cid, req):
    status = _status(raw, cid, lpk.CMD_MAKE_CREDENTIAL, enc(req))
    assert status == lpk.CBOR_UNEXPECTED_TYPE, lpk.status_name(status)
    assert daemon.pending_presence() == ["deny"]


@pytest.mark.parametrize(
    "req",
    [
        {1: b"example.com", 2: CDH},
        {1: "example.com", 2: "cdh"},
        {1: "example.com", 2: CDH, 3: {"id": b"x", "type": "public-key"}},
        {1: "example.com", 2: CDH, 3: [{"id": "text", "type": "public-key"}]},
        {1: "example.com", 2: CDH, 5: {"up": 1}},
    ],
    ids=["rpid-bytes", "cdh-text", "allow-map", "allow-id-text", "up-int"],
)
def test_get_assertion_wrong_types(raw, cid, req):
    status = _status(raw, cid, lpk.CMD_GET_ASSERTION, enc(req))
    assert status == lpk.CBOR_UNEXPECTED_TYPE, lpk.status_name(status)


# 0x41 is not here: it is credential management's CTAP 2.1 pre-release number.
@pytest.mark.parametrize("cmd", [0x03, 0x05, 0x0F, 0x20, 0x3F, 0x42, 0x55, 0xBF, 0xC0, 0xFF])
def test_unknown_ctap_command(raw, cid, cmd):
    status = _status(raw, cid, cmd, b"")
    assert status == lpk.INVALID_COMMAND, lpk.status_name(status)
    status = _status(raw, cid, cmd, enc({1: 2}))
    assert status == lpk.INVALID_COMMAND, lpk.status_name(status)


def test_deeply_nested_cbor(raw, cid):
    for prefix in (b"\x81", b"\xa1\x01"):  # arrays in arrays, maps in maps
        depth = (lpk.MAX_MSG_SIZE - 1) // len(prefix) - 1
        payload = prefix * depth + b"\x00"
        status = _status(raw, cid, lpk.CMD_MAKE_CREDENTIAL, payload)
        assert status in (lpk.INVALID_CBOR, lpk.CBOR_UNEXPECTED_TYPE), lpk.status_name(status)


def test_empty_cbor_message_is_refused(raw, cid):
    """CTAPHID_CBOR with no command byte at all: a framing error (§11.2.9.1.2)."""
    cmd, data = raw.request(cid, lpk.HID_CBOR, b"")
    assert (cmd, data) == (lpk.HID_ERROR, bytes([lpk.ERR_INVALID_LEN])), f"0x{cmd:02x} {data.hex()}"


def test_random_payloads_never_crash(daemon, raw, cid):
    rnd = random.Random(1234)
    for i in range(300):
        cmd = rnd.choice([lpk.CMD_MAKE_CREDENTIAL, lpk.CMD_GET_ASSERTION, lpk.CMD_GET_NEXT_ASSERTION])
        n = rnd.choice([0, 1, 2, 5, 40, 200, 1000])
        payload = bytes(rnd.getrandbits(8) for _ in range(n))
        status, _ = raw.cbor(cid, cmd, payload, timeout=10)
        assert status != lpk.CTAP2_OK, f"random payload #{i} for 0x{cmd:02x} accepted: {payload.hex()}"

    # Random bytes that happen to parse cannot have reached the person.
    assert daemon.pending_presence() == ["deny"]


# ---------------------------------------------------------------- CTAPHID framing


def test_truncated_message_times_out(raw, cid):
    payload = os.urandom(200)
    raw.send(raw.init_packet(cid, lpk.HID_PING, len(payload), payload[:57]))
    err = raw.expect_error(cid, timeout=10)
    assert err == lpk.ERR_MSG_TIMEOUT, f"CTAPHID error 0x{err:02x}"
    # The channel is usable again.
    assert raw.request(cid, lpk.HID_PING, b"ok") == (lpk.HID_PING, b"ok")


def test_wrong_sequence_number(raw, cid):
    payload = os.urandom(200)
    raw.send(raw.init_packet(cid, lpk.HID_PING, len(payload), payload[:57]))
    raw.send(raw.cont_packet(cid, 1, payload[57:116]))  # seq 0 expected
    assert raw.expect_error(cid) == lpk.ERR_INVALID_SEQ
    assert raw.request(cid, lpk.HID_PING, b"ok") == (lpk.HID_PING, b"ok")


def test_declared_length_too_long(raw, cid):
    raw.send(raw.init_packet(cid, lpk.HID_PING, lpk.MAX_MSG_SIZE + 1, b"\0" * 57))
    assert raw.expect_error(cid) == lpk.ERR_INVALID_LEN
    raw.send(raw.init_packet(cid, lpk.HID_CBOR, 0xFFFF, b"\x04"))
    assert raw.expect_error(cid) == lpk.ERR_INVALID_LEN
    # Exactly the maximum is fine.
    data = os.urandom(lpk.MAX_MSG_SIZE)
    assert raw.request(cid, lpk.HID_PING, data) == (lpk.HID_PING, data)


@pytest.mark.parametrize("bad_cid", [0x11223344, 0x00000000])
def test_unallocated_channel(raw, cid, bad_cid):
    assert bad_cid != cid
    raw.send_message(bad_cid, lpk.HID_PING, b"hello")
    assert raw.expect_error(bad_cid) == lpk.ERR_INVALID_CHANNEL
    raw.send_message(bad_cid, lpk.HID_CBOR, bytes([lpk.CMD_GET_INFO]))
    assert raw.expect_error(bad_cid) == lpk.ERR_INVALID_CHANNEL


def test_broadcast_channel_only_for_init(raw, cid):
    raw.send_message(lpk.BROADCAST_CID, lpk.HID_PING, b"hello")
    assert raw.expect_error(lpk.BROADCAST_CID) == lpk.ERR_INVALID_CHANNEL


def test_second_channel_while_first_is_mid_message(daemon, raw, cid):
    other = daemon.raw()
    try:
        cid2 = other.init()
        assert cid2 != cid
        payload = os.urandom(150)
        pkts = raw.packets(cid, lpk.HID_PING, payload)
        raw.send(pkts[0])  # cid is now mid-message
        other.send_message(cid2, lpk.HID_PING, b"me too")
        err = other.expect_error(cid2)
        assert err == lpk.ERR_CHANNEL_BUSY, f"CTAPHID error 0x{err:02x}"
        # The first transaction completes normally.
        for p in pkts[1:]:
            raw.send(p)
        assert raw.read_message(cid) == (lpk.HID_PING, payload)
        # And the second channel is served afterwards.
        assert other.request(cid2, lpk.HID_PING, b"now") == (lpk.HID_PING, b"now")
    finally:
        other.close()


def test_second_channel_while_first_waits_for_presence(daemon, raw, cid):
    """A CBOR request waiting for the person keeps the device busy for other channels."""
    daemon.presence("delay 1500")
    other = daemon.raw()
    try:
        cid2 = other.init()
        req = enc({1: CDH, 2: RP, 3: USER, 4: PARAMS})
        raw.send_message(cid, lpk.HID_CBOR, bytes([lpk.CMD_MAKE_CREDENTIAL]) + req)
        # Wait for the first keepalive: the request is being processed.
        r = raw.recv(5)
        assert r is not None and r[4] == (0x80 | lpk.HID_KEEPALIVE), f"expected keepalive, got {r and r.hex()}"
        other.send_message(cid2, lpk.HID_CBOR, bytes([lpk.CMD_GET_INFO]))
        err = other.expect_error(cid2)
        assert err == lpk.ERR_CHANNEL_BUSY, f"CTAPHID error 0x{err:02x}"
        # PING on the second channel while busy: also busy, or answered (both are fine),
        # but the first request must complete successfully.
        cmd, data = raw.read_message(cid, timeout=10)
        assert cmd == lpk.HID_CBOR and data[0] == lpk.CTAP2_OK, data[:1].hex()
    finally:
        other.close()
        daemon.presence("deny")


def test_init_on_busy_channel_resynchronises(raw, cid):
    payload = os.urandom(150)
    raw.send(raw.packets(cid, lpk.HID_PING, payload)[0])  # left mid-message
    nonce = os.urandom(8)
    assert raw.init(cid, nonce) == cid, "INIT on an allocated channel must keep its id"
    assert raw.request(cid, lpk.HID_PING, b"fresh") == (lpk.HID_PING, b"fresh")


def test_unknown_ctaphid_command(raw, cid):
    for cmd in (0x02, 0x05, 0x30, 0x3A, 0x40, 0x7E):
        raw.send_message(cid, cmd, b"x")
        err = raw.expect_error(cid)
        assert err == lpk.ERR_INVALID_CMD, f"command 0x{cmd:02x}: CTAPHID error 0x{err:02x}"


def test_init_with_wrong_length(raw, cid):
    raw.send(raw.init_packet(lpk.BROADCAST_CID, lpk.HID_INIT, 7, b"1234567"))
    err = raw.expect_error(lpk.BROADCAST_CID)
    assert err == lpk.ERR_INVALID_LEN, f"CTAPHID error 0x{err:02x}"


def test_cancel_with_nothing_pending_is_silent(raw, cid):
    raw.send(raw.init_packet(cid, lpk.HID_CANCEL, 0))
    assert raw.recv(0.5) is None, "CTAPHID_CANCEL with nothing pending got an answer"


def test_stray_continuation_packet_is_ignored(raw, cid):
    raw.send(raw.cont_packet(cid, 0, b"stray"))
    assert raw.recv(0.5) is None, "stray continuation packet got an answer"


@pytest.mark.transport("udp", reason="datagram sizes are the simulation's; hidraw reports are 64 bytes by the descriptor")
@pytest.mark.parametrize("size", [0, 1, 8, 63, 65, 100, 128, 1024])
def test_datagrams_of_other_sizes_are_ignored(raw, cid, size):
    nonce = os.urandom(8)
    init = raw.init_packet(lpk.BROADCAST_CID, lpk.HID_INIT, 8, nonce)
    if size == 65:
        data = b"\x00" + init  # with a report-id byte, as hidraw would write it
    elif size > 64:
        data = init + os.urandom(size - 64)
    else:
        data = init[:size]
    raw.send_datagram(data)
    ping = raw.init_packet(cid, lpk.HID_PING, 3, b"abc")
    raw.send_datagram(ping[:size] if size < 64 else ping + b"\0" * (size - 64))
    assert raw.recv(0.5) is None, f"a {size}-byte datagram got an answer"


@pytest.mark.transport("udp", reason="the power-cycle datagram exists only in the simulation "
                       "(test_power_cycle_report_is_no_power_cycle_on_the_real_device covers uhid)")
def test_power_cycle_datagram_alone_gets_no_answer(daemon, raw, cid):
    raw.send_datagram(lpk.POWER_CYCLE)
    assert raw.recv(0.5) is None


@pytest.mark.transport("uhid", reason="the real device's answer to the simulation's power-cycle report")
def test_power_cycle_report_is_no_power_cycle_on_the_real_device(daemon):
    """Anything that can open the hidraw node could send the simulation's
    power-cycle report: on the real device it is an ordinary (bad) report and
    clears nothing: the 3-wrong-PINs block stays."""
    ctap2 = daemon.ctap2()
    cp = daemon.client_pin(2, ctap2)
    for _ in range(3):
        with pytest.raises(CtapError):
            cp.get_pin_token("000000", ClientPin.PERMISSION.GET_ASSERTION, "example.com")
    assert cp.get_pin_retries() == (5, True)
    raw = daemon.raw()
    try:
        raw.send_datagram(lpk.POWER_CYCLE)
        # An initialisation packet on a channel nobody was given: CTAPHID_ERROR.
        assert raw.expect_error(int.from_bytes(lpk.POWER_CYCLE[:4], "big")) == lpk.ERR_INVALID_CHANNEL
    finally:
        raw.close()
    lpk.assert_alive(daemon)
    assert cp.get_pin_retries() == (5, True), "the report cleared the per-boot block"
    with pytest.raises(CtapError) as e:
        cp.get_pin_token(daemon.pin, ClientPin.PERMISSION.GET_ASSERTION, "example.com")
    assert e.value.code == lpk.PIN_AUTH_BLOCKED


def test_many_clients_in_turn(daemon):
    """Several clients, each on its own socket and channel, interleaved."""
    clients = [daemon.raw() for _ in range(4)]
    try:
        cids = [c.init() for c in clients]
        for round_ in range(3):
            for c, ch in zip(clients, cids):
                data = struct.pack(">II", ch, round_) + os.urandom(100)
                assert c.request(ch, lpk.HID_PING, data) == (lpk.HID_PING, data)
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------- clientPIN and pinUvAuthParam


@pytest.mark.parametrize(
    "params, expected",
    [
        (b"\xa1\x01", (lpk.INVALID_CBOR, lpk.CBOR_UNEXPECTED_TYPE)),
        (enc([1, 2]), (lpk.CBOR_UNEXPECTED_TYPE,)),
        (enc({1: 2}), (lpk.MISSING_PARAMETER,)),  # no subCommand
        (enc({1: 2, 2: "getRetries"}), (lpk.CBOR_UNEXPECTED_TYPE,)),
        (enc({1: 2, 2: 0x08}), (lpk.INVALID_SUBCOMMAND,)),  # 0x08 is not a subcommand
        (enc({1: 2, 2: 0x0A}), (lpk.INVALID_SUBCOMMAND,)),
        (enc({1: 2, 2: 0xFF}), (lpk.INVALID_SUBCOMMAND,)),
        (enc({2: 0x02}), (lpk.MISSING_PARAMETER,)),  # getKeyAgreement needs the protocol
        (enc({1: 3, 2: 0x02}), (lpk.INVALID_PARAMETER,)),  # unknown protocol
        (enc({1: "2", 2: 0x02}), (lpk.CBOR_UNEXPECTED_TYPE,)),
        (enc({1: 2, 2: 0x05}), (lpk.MISSING_PARAMETER,)),  # getPinToken without keyAgreement / pinHashEnc
        (enc({1: 2, 2: 0x09, 3: {1: 2}, 6: b"\0" * 32, 9: 3, 0x0A: "example.com"}), None),  # bad COSE key
        (enc({1: 2, 2: 0x09, 6: b"\0" * 32, 9: 3}), (lpk.MISSING_PARAMETER,)),
        (enc({1: 2, 2: 0x03, 3: {1: 2, 3: -25, -1: 1, -2: b"\0" * 32, -3: b"\0" * 32}, 4: b"\0" * 32,
              5: b"\0" * 64}), None),  # setPIN with a point not on the curve
        (enc({1: 2, 2: 0x09, 9: "mc"}), (lpk.CBOR_UNEXPECTED_TYPE,)),
    ],
    ids=[
        "garbage", "array", "no-subcommand", "subcommand-text", "subcommand-8", "subcommand-10",
        "subcommand-255", "keyagreement-no-protocol", "protocol-3", "protocol-text", "token-missing",
        "token-bad-cose", "token-no-keyagreement", "setpin-point-off-curve", "permissions-text",
    ],
)
def test_client_pin_bad_requests(daemon, raw, cid, params, expected):
    status = _status(raw, cid, lpk.CMD_CLIENT_PIN, params)
    if expected is None:
        assert status not in (lpk.CTAP2_OK, lpk.OTHER), lpk.status_name(status)
    else:
        assert status in expected, lpk.status_name(status)
    # Nothing malformed counts as a wrong PIN, sets a PIN or reaches the person.
    assert daemon.pin_retries() == (lpk.MAX_PIN_RETRIES, False)
    assert daemon.pending_presence() == ["deny"]


@pytest.mark.parametrize(
    "auth, expected",
    [
        ({8: b"\x01" * 32}, lpk.MISSING_PARAMETER),  # pinUvAuthParam without its protocol
        ({8: b"\x01" * 32, 9: 3}, lpk.INVALID_PARAMETER),  # unsupported protocol
        ({8: "text", 9: 2}, lpk.CBOR_UNEXPECTED_TYPE),
        ({8: b"\x01" * 32, 9: "2"}, lpk.CBOR_UNEXPECTED_TYPE),
        ({8: b"\x01" * 32, 9: 2}, lpk.PIN_AUTH_INVALID),  # no token was ever issued
        ({8: b"\x01" * 16, 9: 1}, lpk.PIN_AUTH_INVALID),
    ],
    ids=["no-protocol", "protocol-3", "param-text", "protocol-text", "no-token-v2", "no-token-v1"],
)
@pytest.mark.parametrize("cmd", [lpk.CMD_MAKE_CREDENTIAL, lpk.CMD_GET_ASSERTION], ids=["mc", "ga"])
def test_pin_uv_auth_param_bad(daemon, raw, cid, cmd, auth, expected):
    if cmd == lpk.CMD_MAKE_CREDENTIAL:
        req = {1: CDH, 2: RP, 3: USER, 4: PARAMS, **auth}
    else:  # GetAssertion: pinUvAuthParam is 0x06, pinUvAuthProtocol 0x07
        req = {1: "example.com", 2: CDH, **{k - 2: v for k, v in auth.items()}}
    status = _status(raw, cid, cmd, enc(req))
    assert status == expected, lpk.status_name(status)
    assert daemon.pending_presence() == ["deny"], "a request with a bad pinUvAuthParam reached the person"
    assert daemon.pin_retries() == (lpk.MAX_PIN_RETRIES, False)
