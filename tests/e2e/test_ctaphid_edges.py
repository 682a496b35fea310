"""CTAPHID edge cases to the letter of CTAP 2.1 §11.2, over the real daemon:
a CBOR message without a command byte, channels that were never allocated,
and a new INIT while a transaction is pending (on its own channel, another
channel, the broadcast channel). docs/conformance.md says which reading of
the text each one follows. The framing itself is one state machine
(crates/lp-core/src/ctaphid.rs), so one custody is enough here."""

from __future__ import annotations

import os
import struct
import time

import pytest

import lpk

pytestmark = pytest.mark.custody("soft")

STRANGER = 0x5EED_CAFE  # never handed out: the daemon counts channels up from 1


@pytest.fixture
def raw(daemon):
    r = daemon.raw()
    yield r
    r.close()
    lpk.assert_alive(daemon)


def _selection(raw, cid):
    """authenticatorSelection: it waits for the person, as the script says."""
    raw.send_message(cid, lpk.HID_CBOR, bytes([lpk.CMD_SELECTION]))


def _first_keepalive(raw, cid):
    r = raw.recv(5)
    assert r is not None and r[:5] == struct.pack(">IB", cid, 0x80 | lpk.HID_KEEPALIVE), (
        f"expected a keepalive on {cid:08x}, got {r and r.hex()}")


def _strangers_get_invalid_channel(raw):
    for cmd, data in ((lpk.HID_INIT, os.urandom(8)), (lpk.HID_PING, b"hi"),
                      (lpk.HID_CBOR, bytes([lpk.CMD_GET_INFO])), (lpk.HID_WINK, b"")):
        raw.send_message(STRANGER, cmd, data)
        assert raw.expect_error(STRANGER) == lpk.ERR_INVALID_CHANNEL, f"CTAPHID command 0x{cmd:02x}"
    raw.send(raw.cont_packet(STRANGER, 0, b"stray"))
    raw.send(raw.init_packet(STRANGER, lpk.HID_CANCEL, 0))


def _busy_until_free(raw, cid, limit=10.0):
    """GetInfo on `cid`, retried while the daemon is still busy (ERR_CHANNEL_BUSY)."""
    deadline = time.monotonic() + limit
    while True:
        raw.send_message(cid, lpk.HID_CBOR, bytes([lpk.CMD_GET_INFO]))
        cmd, data = raw.read_message(cid)
        if cmd == lpk.HID_CBOR:
            assert data[0] == lpk.CTAP2_OK
            return
        assert (cmd, data) == (lpk.HID_ERROR, bytes([lpk.ERR_CHANNEL_BUSY])), data.hex()
        assert time.monotonic() < deadline, "still busy"
        time.sleep(0.05)


@pytest.mark.parametrize("cmd", [lpk.HID_CBOR, lpk.HID_MSG])
def test_a_message_without_a_command_byte_is_invalid_len(daemon, raw, cmd):
    """§11.2.9.1.1–2: BCNT is 1..(n + 1) for MSG and CBOR."""
    cid = raw.init()
    raw.send(raw.init_packet(cid, cmd, 0))
    assert raw.expect_error(cid) == lpk.ERR_INVALID_LEN
    assert raw.recv(0.3) is None, "a second answer"
    # Nothing reached the application, which is free at once.
    status, _ = raw.cbor(cid, lpk.CMD_GET_INFO)
    assert status == lpk.CTAP2_OK
    # An empty PING is fine (BCNT 0..n).
    assert raw.request(cid, lpk.HID_PING, b"") == (lpk.HID_PING, b"")


def test_a_never_allocated_channel_is_invalid_channel_whatever_is_going_on(daemon, raw):
    """ERR_INVALID_CHANNEL for every initialisation packet on it, silence for
    its continuation packets and CANCEL, and nothing else is disturbed."""
    cid = raw.init()
    other = daemon.raw()
    try:
        _strangers_get_invalid_channel(other)
        assert other.recv(0.3) is None
        # While another channel is mid-message.
        payload = os.urandom(150)
        pkts = raw.packets(cid, lpk.HID_PING, payload)
        raw.send(pkts[0])
        _strangers_get_invalid_channel(other)
        for p in pkts[1:]:
            raw.send(p)
        assert raw.read_message(cid) == (lpk.HID_PING, payload)
        # While a request waits for the person.
        daemon.presence("delay 1500")
        _selection(raw, cid)
        _first_keepalive(raw, cid)
        _strangers_get_invalid_channel(other)
        cmd, data = raw.read_message(cid)
        assert (cmd, data[:1]) == (lpk.HID_CBOR, bytes([lpk.CTAP2_OK]))
        assert other.recv(0.3) is None
    finally:
        other.close()


def test_init_on_the_pending_channel_aborts_the_request(daemon, raw):
    cid = raw.init()
    daemon.presence("wait")
    _selection(raw, cid)
    _first_keepalive(raw, cid)
    nonce = os.urandom(8)
    assert raw.init(cid, nonce) == cid, "INIT on an allocated channel keeps its id"
    # The aborted request is never answered, and the prompt was withdrawn.
    deadline = time.monotonic() + 1.0
    while (r := raw.recv(max(deadline - time.monotonic(), 0.01))) is not None:
        assert r[4] == 0x80 | lpk.HID_KEEPALIVE, f"an answer to the aborted request: {r.hex()}"
    _busy_until_free(raw, cid)
    assert daemon.pending_presence() == [], "the prompt was not asked"


def test_a_malformed_init_on_the_pending_channel_aborts_it_too(raw):
    cid = raw.init()
    payload = os.urandom(150)
    pkts = raw.packets(cid, lpk.HID_PING, payload)
    raw.send(pkts[0])
    raw.send(raw.init_packet(cid, lpk.HID_INIT, 7, b"1234567"))
    assert raw.expect_error(cid) == lpk.ERR_INVALID_LEN
    for p in pkts[1:]:
        raw.send(p)
    assert raw.recv(0.5) is None, "the aborted message was answered"
    assert raw.request(cid, lpk.HID_PING, b"fresh") == (lpk.HID_PING, b"fresh")


@pytest.mark.parametrize("where", ["other channel", "broadcast"])
def test_init_elsewhere_is_answered_and_leaves_the_request_alone(daemon, raw, where):
    cid = raw.init()
    other = daemon.raw()
    try:
        cid2 = other.init()
        daemon.presence("delay 1500")
        _selection(raw, cid)
        _first_keepalive(raw, cid)
        if where == "broadcast":
            new = other.init()
            assert new not in (cid, cid2, 0, lpk.BROADCAST_CID)
        else:
            assert other.init(cid2) == cid2
            new = cid2
        # The device is still busy for the new channel, and the request completes.
        other.send_message(new, lpk.HID_CBOR, bytes([lpk.CMD_GET_INFO]))
        assert other.expect_error(new) == lpk.ERR_CHANNEL_BUSY
        cmd, data = raw.read_message(cid)
        assert (cmd, data[:1]) == (lpk.HID_CBOR, bytes([lpk.CTAP2_OK]))
        assert daemon.pending_presence() == []
        status, _ = other.cbor(new, lpk.CMD_GET_INFO)
        assert status == lpk.CTAP2_OK
    finally:
        other.close()
