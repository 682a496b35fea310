"""The transports a test talks through: python-fido2 connections over the UDP simulation and over a kernel hidraw node, and hand-made CTAPHID reports."""

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
from fido2.attestation import Attestation, AttestationType
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

class UdpConnection(CtapHidConnection):
    """python-fido2 HID connection over the UDP simulation transport.

    `read_timeout` bounds the wait for any one report (the daemon sends a
    keepalive at least every ~100 ms while it works). `call_limit` bounds a
    whole request: a daemon that sent keepalives forever would otherwise hang
    the suite.
    """

    def __init__(self, port: int, read_timeout: float = 10.0, call_limit: float = 90.0):
        self.port = port
        self.read_timeout = read_timeout
        self.call_limit = call_limit
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(("127.0.0.1", port))
        self._last_write = time.monotonic()
        self._closed = False

    def write_packet(self, data: bytes) -> None:
        if len(data) != 64:
            raise ValueError(f"report of {len(data)} bytes")
        self._last_write = time.monotonic()
        self.sock.send(data)

    def read_packet(self) -> bytes:
        while True:
            if time.monotonic() - self._last_write > self.call_limit:
                raise TimeoutError(
                    f"no final answer {self.call_limit:.0f} s after the last request packet"
                )
            self.sock.settimeout(self.read_timeout)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                raise TimeoutError(
                    f"no CTAPHID report from the daemon within {self.read_timeout} s"
                ) from None
            if len(data) == 64:
                return data
            if self._closed:
                raise ConnectionAbortedError("connection closed by the test")
            # Not a report: the daemon never sends these, but never trust it.
            raise AssertionError(f"daemon sent a {len(data)}-byte datagram: {data.hex()}")

    def close(self) -> None:
        # shutdown() wakes up a thread blocked in recv() on this socket.
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class SharedMedium:
    """What a platform does on a HID device that every open handle hears.

    hidraw hands every input report to every reader, so a handle sees the
    answers meant for other handles too. Like libfido2, keep only reports on
    a channel this handle has written to, and on the broadcast channel only
    the INIT answer carrying this handle's own nonce.
    """

    def __init__(self):
        self.cids: set[bytes] = set()
        self.init_nonces: set[bytes] = set()

    def sent(self, report: bytes) -> None:
        cid = report[:4]
        self.cids.add(cid)
        if len(report) >= 15 and cid == b"\xff" * 4 and report[4] == TYPE_INIT | HID_INIT:
            self.init_nonces.add(report[7:15])

    def ours(self, report: bytes) -> bool:
        cid = report[:4]
        if cid not in self.cids:
            return False
        if cid == b"\xff" * 4 and report[4] == TYPE_INIT | HID_INIT:
            return report[7:15] in self.init_nonces
        return True


class HidrawConnection(CtapHidConnection):
    """python-fido2 HID connection over a real `/dev/hidrawN` (the uhid device).

    python-fido2's own Linux connection blocks in read() forever and takes
    every report on the node; this one has the same timeouts as
    `UdpConnection` and keeps to its own channels (`SharedMedium`).
    """

    def __init__(self, path: str, read_timeout: float = 10.0, call_limit: float = 90.0):
        self.path = path
        self.read_timeout = read_timeout
        self.call_limit = call_limit
        self.fd = os.open(path, os.O_RDWR)
        self.medium = SharedMedium()
        self._last_write = time.monotonic()
        self._closed = False

    def write_packet(self, data: bytes) -> None:
        if len(data) != 64:
            raise ValueError(f"report of {len(data)} bytes")
        if data[4] & TYPE_INIT and data[4] != TYPE_INIT | HID_CANCEL:
            self._flush()
        self._last_write = time.monotonic()
        self.medium.sent(data)
        os.write(self.fd, b"\0" + data)  # report id 0: the descriptor has none

    def _flush(self) -> None:
        """Drop what other handles' traffic left in this handle's buffer.

        The kernel keeps 64 reports per open handle and drops the newest when
        it is full, so a handle left open and unread while another one worked
        would lose the answer to its next request. Before a new request
        nothing for this handle can be pending (python-fido2 waits for each
        answer), so the buffer is emptied first, as platforms do.
        """
        while select.select([self.fd], [], [], 0)[0]:
            os.read(self.fd, 64)

    def read_packet(self) -> bytes:
        waited_since = time.monotonic()
        while True:
            if self._closed:
                raise ConnectionAbortedError("connection closed by the test")
            now = time.monotonic()
            if now - self._last_write > self.call_limit:
                raise TimeoutError(f"no final answer {self.call_limit:.0f} s after the last request packet")
            if now - waited_since > self.read_timeout:
                raise TimeoutError(f"no CTAPHID report from the daemon within {self.read_timeout} s")
            # Short slices, so that close() from another thread is noticed.
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(self.fd, 64)
            if len(data) != 64:
                raise AssertionError(f"hidraw gave a {len(data)}-byte report: {data.hex()}")
            if self.medium.ours(data):
                return data
            waited_since = time.monotonic()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            time.sleep(0.15)  # let a reader blocked in select() see the flag
            os.close(self.fd)


def hid_device(endpoint: int | str, **kw) -> CtapHidDevice:
    """python-fido2's CtapHidDevice on a daemon: a UDP port, or a hidraw path."""
    if isinstance(endpoint, str):
        from fido2.hid.linux import get_descriptor

        return CtapHidDevice(get_descriptor(endpoint), HidrawConnection(endpoint, **kw))
    return CtapHidDevice(udp_descriptor(endpoint), UdpConnection(endpoint, **kw))


def udp_descriptor(port: int) -> HidDescriptor:
    """How python-fido2 sees the simulation on 127.0.0.1:PORT: our USB
    vendor/product ids (pid.codes 1209:0001, as the real device has), 64-byte reports."""
    return HidDescriptor(
        path=f"udp:127.0.0.1:{port}",
        vid=0x1209,
        pid=0x0001,
        report_size_in=64,
        report_size_out=64,
        product_name="LocalPasskey (UDP simulation)",
        serial_number=None,
    )


class RawHid:
    """Hand-built CTAPHID reports, over UDP (a port) or hidraw (a path), for
    the framing and bad-input tests."""

    def __init__(self, endpoint: int | str):
        self.endpoint = endpoint
        self.hidraw = isinstance(endpoint, str)
        if self.hidraw:
            self.fd = os.open(endpoint, os.O_RDWR)
            self.medium = SharedMedium()
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.connect(("127.0.0.1", endpoint))

    def close(self):
        if self.hidraw:
            os.close(self.fd)
        else:
            self.sock.close()

    def send_datagram(self, data: bytes) -> None:
        """Bytes as they are: a UDP datagram, or a hidraw write (report id 0 first)."""
        if self.hidraw:
            self.medium.sent(data)
            os.write(self.fd, b"\0" + data)
        else:
            self.sock.send(data)

    def send(self, report: bytes) -> None:
        assert len(report) <= 64
        self.send_datagram(report.ljust(64, b"\0"))

    def recv(self, timeout: float = 5.0) -> bytes | None:
        if not self.hidraw:
            self.sock.settimeout(timeout)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return None
            assert len(data) == 64, f"daemon sent a {len(data)}-byte datagram"
            return data
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            data = os.read(self.fd, 64)
            assert len(data) == 64, f"hidraw gave a {len(data)}-byte report"
            if self.medium.ours(data):
                return data

    def drain(self, quiet: float = 0.2) -> list[bytes]:
        out = []
        while (r := self.recv(quiet)) is not None:
            out.append(r)
        return out

    @staticmethod
    def init_packet(cid: int, cmd: int, length: int, data: bytes = b"") -> bytes:
        return (struct.pack(">IBH", cid, TYPE_INIT | cmd, length) + data[:57]).ljust(64, b"\0")

    @staticmethod
    def cont_packet(cid: int, seq: int, data: bytes = b"") -> bytes:
        return (struct.pack(">IB", cid, seq) + data[:59]).ljust(64, b"\0")

    @staticmethod
    def packets(cid: int, cmd: int, payload: bytes) -> list[bytes]:
        out = [RawHid.init_packet(cid, cmd, len(payload), payload[:57])]
        rest = payload[57:]
        seq = 0
        while rest:
            out.append(RawHid.cont_packet(cid, seq, rest[:59]))
            rest = rest[59:]
            seq += 1
        return out

    def send_message(self, cid: int, cmd: int, payload: bytes) -> None:
        for p in self.packets(cid, cmd, payload):
            self.send(p)

    def read_message(self, cid: int, timeout: float = 10.0, keepalives: list | None = None):
        """Read one whole response on `cid`: returns (cmd, payload).

        Keepalives are skipped (and recorded). Reports on other channels are an error.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no response on channel {cid:08x} within {timeout} s"
            r = self.recv(left)
            assert r is not None, f"no response on channel {cid:08x} within {timeout} s"
            rcid, cmd = struct.unpack_from(">IB", r)
            assert rcid == cid, f"report for channel {rcid:08x}, expected {cid:08x}: {r.hex()}"
            assert cmd & TYPE_INIT, f"continuation packet where an initialisation packet was due: {r.hex()}"
            cmd &= 0x7F
            if cmd == HID_KEEPALIVE:
                if keepalives is not None:
                    keepalives.append(r[7])
                continue
            (length,) = struct.unpack_from(">H", r, 5)
            data = r[7:]
            seq = 0
            while len(data) < length:
                left = deadline - time.monotonic()
                c = self.recv(max(left, 0.01))
                assert c is not None, "response truncated: continuation packet missing"
                ccid, cseq = struct.unpack_from(">IB", c)
                assert ccid == cid and cseq == seq, f"bad continuation {c.hex()}"
                data += c[5:]
                seq += 1
            return cmd, data[:length]

    def init(self, cid: int = BROADCAST_CID, nonce: bytes | None = None) -> int:
        """CTAPHID_INIT on `cid`; returns the channel id the daemon gave."""
        nonce = nonce or os.urandom(8)
        self.send(self.init_packet(cid, HID_INIT, 8, nonce))
        cmd, data = self.read_message(cid, timeout=5.0)
        assert cmd == HID_INIT, f"INIT answered with command 0x{cmd:02x}: {data.hex()}"
        assert len(data) >= 17, f"INIT response of {len(data)} bytes"
        assert data[:8] == nonce, "INIT response with the wrong nonce"
        (new_cid,) = struct.unpack_from(">I", data, 8)
        return new_cid

    def request(self, cid: int, cmd: int, payload: bytes, timeout: float = 10.0, keepalives=None):
        self.send_message(cid, cmd, payload)
        return self.read_message(cid, timeout=timeout, keepalives=keepalives)

    def cbor(self, cid: int, ctap_cmd: int, params: bytes = b"", timeout: float = 10.0) -> tuple[int, bytes]:
        """Send one CTAP2 request (command byte + raw CBOR bytes); returns (status, body)."""
        cmd, data = self.request(cid, HID_CBOR, bytes([ctap_cmd]) + params, timeout=timeout)
        if cmd == HID_ERROR:
            raise AssertionError(f"CTAPHID_ERROR 0x{data[0]:02x} where a CBOR response was due")
        assert cmd == HID_CBOR, f"answered with CTAPHID command 0x{cmd:02x}"
        assert len(data) >= 1, "empty CBOR response"
        return data[0], data[1:]

    def expect_error(self, cid: int, timeout: float = 5.0) -> int:
        cmd, data = self.read_message(cid, timeout=timeout)
        assert cmd == HID_ERROR, f"expected CTAPHID_ERROR, got command 0x{cmd:02x} {data.hex()}"
        assert len(data) == 1, f"CTAPHID_ERROR with {len(data)} bytes of payload"
        return data[0]
