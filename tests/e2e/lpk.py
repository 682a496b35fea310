"""Helpers for the LocalPasskey end-to-end suite.

- `Swtpm`: one software TPM 2.0 (swtpm) behind a unix socket in a directory
  only its owner may open: no TCP port, no control channel other uids reach.
- `Daemon`: one `localpasskey run` process on a random loopback UDP port with
  its own data directory, a scripted presence file, TPM custody (its own
  swtpm) or the insecure software custody, and a PIN set through
  python-fido2's `ClientPin` unless a test asks for none.
- `UdpConnection`: a python-fido2 `CtapHidConnection` over the UDP simulation
  transport (one datagram = one raw 64-byte CTAPHID report), so that fido2's
  own `CtapHidDevice`, `Ctap2` and `Fido2Client` talk to the daemon for real.
- `HidrawConnection`: the same over a real kernel HID device (`/dev/hidrawN`
  made by `localpasskey run --transport uhid`), for the run of this suite
  inside the VM of tests/vm (`LPK_TRANSPORT=uhid`).
- `RawHid`: hand-made CTAPHID reports, for the framing and bad-input tests.
- `RelyingParty`: registers and authenticates through `Fido2Client` and checks
  every answer with two relying-party implementations nobody here wrote:
  `fido2.server.Fido2Server` and py_webauthn.
"""

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

REPO = Path(__file__).resolve().parents[2]

# The project's AAGUID (crates/lp-core/src/lib.rs, DESIGN.md promise 4).
AAGUID = bytes.fromhex("cb8a205c984c4e7e98eb5800f04355ef")
AAGUID_STR = "cb8a205c-984c-4e7e-98eb-5800f04355ef"
# GetInfo's maxMsgSize: what CTAPHID frames (UDP), or what the kernel's uhid
# queue holds without pacing (transport/uhid.rs MAX_MESSAGE).
MAX_MSG_SIZE = 1200 if os.environ.get("LPK_TRANSPORT") == "uhid" else 7609

# The simulated power-cycle datagram (FACTS.md, "UDP simulation convention").
POWER_CYCLE = bytes.fromhex(
    "ac1052ca95e569de69e02ebff333485f13f9b2da34c5a8a340526697a9ab2e0b"
    "394d8d04973c134005be1a0140bff6045bb26eb77a73eaa47813f6b49a7250dc"
)

BROADCAST_CID = 0xFFFFFFFF
TYPE_INIT = 0x80

# CTAPHID commands and error codes (CTAP 2.1 section 11.2).
HID_PING = 0x01
HID_MSG = 0x03
HID_LOCK = 0x04
HID_INIT = 0x06
HID_WINK = 0x08
HID_CBOR = 0x10
HID_CANCEL = 0x11
HID_KEEPALIVE = 0x3B
HID_ERROR = 0x3F

ERR_INVALID_CMD = 0x01
ERR_INVALID_PAR = 0x02
ERR_INVALID_LEN = 0x03
ERR_INVALID_SEQ = 0x04
ERR_MSG_TIMEOUT = 0x05
ERR_CHANNEL_BUSY = 0x06
ERR_INVALID_CHANNEL = 0x0B

CAP_WINK = 0x01
CAP_LOCK = 0x02
CAP_CBOR = 0x04
CAP_NMSG = 0x08

# CTAP2 commands and status codes (CTAP 2.1 sections 6 and 8.2).
CMD_MAKE_CREDENTIAL = 0x01
CMD_GET_ASSERTION = 0x02
CMD_GET_INFO = 0x04
CMD_CLIENT_PIN = 0x06
CMD_RESET = 0x07
CMD_GET_NEXT_ASSERTION = 0x08
CMD_SELECTION = 0x0B

CTAP2_OK = 0x00
INVALID_COMMAND = 0x01
INVALID_PARAMETER = 0x02
CBOR_UNEXPECTED_TYPE = 0x11
INVALID_CBOR = 0x12
MISSING_PARAMETER = 0x14
CREDENTIAL_EXCLUDED = 0x19
UNSUPPORTED_ALGORITHM = 0x26
OPERATION_DENIED = 0x27
UNSUPPORTED_OPTION = 0x2B
INVALID_OPTION = 0x2C
KEEPALIVE_CANCEL = 0x2D
NO_CREDENTIALS = 0x2E
USER_ACTION_TIMEOUT = 0x2F
NOT_ALLOWED = 0x30
PIN_INVALID = 0x31
PIN_BLOCKED = 0x32
PIN_AUTH_INVALID = 0x33
PIN_AUTH_BLOCKED = 0x34
PIN_NOT_SET = 0x35
PUAT_REQUIRED = 0x36
PIN_POLICY_VIOLATION = 0x37
UV_BLOCKED = 0x3C
INVALID_SUBCOMMAND = 0x3E
UV_INVALID = 0x3F
UNAUTHORIZED_PERMISSION = 0x40
OTHER = 0x7F

# The PIN every daemon gets unless a test asks otherwise (set by the fixture
# through python-fido2's ClientPin, protocol 2), and the one the scripted
# prompt types when a verification request meets `approve` (--script-pin).
PIN = "246810"
MAX_PIN_RETRIES = 8
PROTOCOLS = {1: PinProtocolV1, 2: PinProtocolV2}
PERM_MC = ClientPin.PERMISSION.MAKE_CREDENTIAL
PERM_GA = ClientPin.PERMISSION.GET_ASSERTION

ES256 = -7
RS256 = -257

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_BE = 0x08
FLAG_BS = 0x10
FLAG_AT = 0x40
FLAG_ED = 0x80

PORT_RANGE = (20000, 31998)

# "udp" (the simulation transport, the default) or "uhid" (a real kernel HID
# device; needs /dev/uhid, so it runs inside the VM of tests/vm/run.sh).
TRANSPORT = os.environ.get("LPK_TRANSPORT", "udp")
assert TRANSPORT in ("udp", "uhid"), f"LPK_TRANSPORT={TRANSPORT!r}: udp or uhid"
UHID = TRANSPORT == "uhid"

# On uhid a power cycle of the device is a new boot of the machine (the
# daemon's boot id); this process plays the machine, so its daemons read the
# boot id from this file (`run --boot-id-file`, test-only), and
# `Daemon.power_cycle` writes a new one and restarts the daemon.
BOOT_ID_FILE = Path(os.environ.get("TMPDIR", "/tmp")) / f"lpk-boot-id-{os.getpid()}"


def new_boot() -> None:
    BOOT_ID_FILE.write_text(os.urandom(16).hex() + "\n")


def binary() -> Path:
    b = Path(os.environ.get("LOCALPASSKEY_BIN", REPO / "target/debug/localpasskey"))
    if not b.is_absolute():
        b = REPO / b
    return b


def status_name(code: int) -> str:
    try:
        return f"0x{code:02X} {CtapError.ERR(code).name}"
    except ValueError:
        return f"0x{code:02X}"


# --------------------------------------------------------------------------
# Transport
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Software TPM
# --------------------------------------------------------------------------


def tss_env() -> dict:
    """Environment for libtss2 users: its ERROR lines on every TPM error are noise."""
    env = dict(os.environ)
    env["TSS2_LOG"] = "all+none"
    return env


class SwtpmError(Exception):
    pass


class Swtpm:
    """One swtpm (TPM 2.0), reached only through a unix socket.

    The socket and its control channel live in a fresh 0700 directory
    (`socket_dir`, short enough for sun_path), the state files (0600) in
    `state_dir` (0700): no other uid can send TPM commands, use what a daemon
    loaded, or save the TPM's state (its seeds) through the control channel,
    as anyone could through swtpm's TCP ports.

    swtpm has no resource manager and only 3 transient object slots, so every
    daemon gets its own (FACTS.md). A daemon restarted in a test reuses the
    same one: key blobs only load in the TPM that made them.
    """

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.socket_dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.log = self.state_dir.parent / f"{self.state_dir.name}.swtpm.log"
        # A daemon that used this TPM has exited (or was killed) since the last flush.
        self.used_by_dead_process = False

    @property
    def socket(self) -> Path:
        assert self.socket_dir is not None, "swtpm not started"
        return self.socket_dir / "tpm.sock"

    @property
    def tcti(self) -> str:
        # libtss2's swtpm TCTI finds the control channel at <path>.ctrl.
        return f"swtpm:path={self.socket}"

    def start(self) -> "Swtpm":
        if self.socket_dir is None:
            self.socket_dir = Path(tempfile.mkdtemp(prefix="lpk-swtpm-"))  # 0700
        elif not self.socket_dir.is_dir():
            # Started again after stop: the same TCTI. mkdir fails if anyone
            # else took the name meanwhile.
            os.mkdir(self.socket_dir, 0o700)
        for stale in (self.socket, Path(f"{self.socket}.ctrl")):
            stale.unlink(missing_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "swtpm", "socket", "--tpm2",
                    "--server", f"type=unixio,path={self.socket},mode=0600",
                    "--ctrl", f"type=unixio,path={self.socket}.ctrl,mode=0600",
                    "--tpmstate", f"dir={self.state_dir},mode=0600",
                    "--flags", "not-need-init,startup-clear",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=lambda: os.umask(0o077),
            )
        # A read-only readiness probe: the TPM's dictionary-attack settings
        # and its lockout authorisation are the daemon's to set.
        last = ""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.proc.poll() is None:
            r = self.tool("tpm2_getcap", "properties-fixed", check=False)
            if r.returncode == 0:
                return self
            last = r.stderr
            time.sleep(0.02)
        self.stop()
        raise SwtpmError(f"could not start swtpm: {last}\n{self.log.read_text(errors='replace')[-2000:]}")

    def tool(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a tpm2-tools command against this TPM."""
        r = subprocess.run(
            [name, *args, "-T", self.tcti], capture_output=True, text=True, timeout=30, env=tss_env()
        )
        if check and r.returncode != 0:
            raise SwtpmError(f"{name} {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r

    def flush_all(self) -> None:
        """Flush every transient object and session.

        What the kernel's resource manager (/dev/tpmrm0) does when a process
        that used the TPM exits. swtpm has none, so when the harness ends a
        daemon it plays that part; otherwise the dead process's primary key,
        vault and session would fill swtpm's 3 object slots.
        """
        if self.proc is None or self.proc.poll() is not None:
            return
        for flag in ("-t", "-l", "-s"):
            self.tool("tpm2_flushcontext", flag, check=False)
        self.used_by_dead_process = False

    def transient_handles(self) -> list[str]:
        r = self.tool("tpm2_getcap", "handles-transient")
        return [l.strip("- ").strip() for l in r.stdout.splitlines() if l.strip()]

    def variable_property(self, name: str) -> int:
        """A TPM2_PT_* value from `tpm2_getcap properties-variable` (e.g. TPM2_PT_LOCKOUT_COUNTER)."""
        r = self.tool("tpm2_getcap", "properties-variable")
        for line in r.stdout.splitlines():
            if line.strip().startswith(name + ":"):
                return int(line.split(":", 1)[1].strip(), 0)
        raise SwtpmError(f"{name} not in tpm2_getcap output:\n{r.stdout}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------


class DaemonStartError(Exception):
    pass


class Daemon:
    """One `localpasskey run` on the UDP simulation transport, or (with
    LPK_TRANSPORT=uhid) as a real kernel HID device, `self.hidraw`.

    Presence is scripted (`--presence script:FILE`, empty file = approve, and
    a verification prompt that meets `approve` types `--script-pin`) unless
    `presence="approve"`, so every test can queue `deny`, `wait`,
    `delay N`, `pin X` answers and check afterwards that the daemon really
    asked (the line was consumed).

    `custody` is "tpm" (keys in `tpm`, a `Swtpm`) or "soft" (the insecure
    software custody). `pin` is set through ClientPin (protocol 2) the first
    time the daemon starts, unless it is None or the store already has one.
    """

    def __init__(
        self,
        workdir: Path,
        data_dir: Path | None = None,
        presence_timeout_ms: int | None = None,
        presence: str | None = None,
        extra_args: tuple[str, ...] = (),
        custody: str = "soft",
        tpm: Swtpm | None = None,
        pin: str | None = PIN,
        script_pin: str = PIN,
    ):
        assert custody in ("tpm", "soft"), custody
        if custody == "tpm" and tpm is None:
            raise ValueError("TPM custody needs a Swtpm")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(data_dir) if data_dir else self.workdir / "data"
        self.script = self.workdir / "presence.txt"
        self.script.write_text("")
        self.presence_mode = presence or f"script:{self.script}"
        self.presence_timeout_ms = presence_timeout_ms
        self.extra_args = extra_args
        self.custody = custody
        self.tpm = tpm if custody == "tpm" else None
        self.initial_pin = pin
        self.script_pin = script_pin
        # The PIN the tests' clients type (None while none is set).
        self.pin: str | None = None
        self._pin_initialised = False
        # Play the kernel resource manager's part for a daemon that ended (see
        # Swtpm.flush_all): flush what it left in the TPM before the next start.
        self.emulate_resource_manager = True
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.hidraw: str | None = None
        self.logs: list[Path] = []
        self.started_at: float | None = None
        self._devices: list[CtapHidDevice] = []

    @property
    def scripted(self) -> bool:
        return self.presence_mode.startswith("script:")

    # ---- process control

    def custody_args(self) -> list[str]:
        if self.custody == "tpm":
            # The real device refuses a software TPM unless told it is one.
            allow = ["--allow-software-tpm"] if UHID else []
            return ["--custody", "tpm", "--tpm", self.tpm.tcti, *allow]
        return ["--custody", "insecure-software"]

    @property
    def endpoint(self) -> int | str:
        """Where clients reach this daemon: its UDP port or its hidraw node."""
        return self.hidraw if UHID else self.port

    @property
    def target(self) -> str:
        """The same for the command line's --to."""
        return self.hidraw if UHID else f"127.0.0.1:{self.port}"

    def command(self, port: int) -> list[str]:
        # On uhid the scripted prompt and the software custody are test-only
        # settings that the real device refuses without this flag.
        transport = (["--transport", "uhid", "--force-insecure-for-tests", "--boot-id-file", str(BOOT_ID_FILE)]
                     if UHID else ["--transport", "udp", "--listen", f"127.0.0.1:{port}"])
        cmd = [
            str(binary()),
            "run",
            *transport,
            "--data-dir", str(self.data_dir),
            *self.custody_args(),
            "--presence", self.presence_mode,
        ]
        if self.scripted:
            cmd += ["--script-pin", self.script_pin]
        if self.presence_timeout_ms is not None:
            cmd += ["--presence-timeout-ms", str(self.presence_timeout_ms)]
        return cmd + list(self.extra_args)

    def start(self, port: int | None = None, ready_timeout: float = 10.0) -> "Daemon":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        b = binary()
        if UHID and not BOOT_ID_FILE.exists():
            new_boot()
        if not b.exists():
            raise DaemonStartError(f"no daemon binary at {b} (set LOCALPASSKEY_BIN or run cargo build)")
        attempts = 1 if port or UHID else 8
        last_err = ""
        for _ in range(attempts):
            if self.tpm is not None and self.tpm.used_by_dead_process and self.emulate_resource_manager:
                self.tpm.flush_all()
            p = port or self._free_port()
            log = self.workdir / f"daemon-{len(self.logs)}.stderr"
            self.logs.append(log)
            env = tss_env()
            env.setdefault("LOCALPASSKEY_LOG", "debug")
            env["NO_COLOR"] = "1"
            with open(log, "wb") as err:
                self.proc = subprocess.Popen(
                    self.command(p),
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    env=env,
                    preexec_fn=lambda: os.umask(0o022),
                )
            self.port = p
            try:
                if UHID:
                    self.hidraw = self._wait_for_hidraw(ready_timeout)
                self._wait_ready(ready_timeout)
                self.started_at = time.monotonic()
                self._initialise_pin()
                return self
            except DaemonStartError as e:
                last_err = str(e)
                exited = self.proc.poll() is not None
                self._terminate()
                text = log.read_text(errors="replace").lower()
                if exited and "in use" in text and not port:
                    continue  # someone took the port between our check and the bind
                raise
        raise DaemonStartError(f"could not start the daemon on a free port: {last_err}")

    @staticmethod
    def _free_port() -> int:
        for _ in range(200):
            p = random.randint(*PORT_RANGE)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            finally:
                s.close()
            return p
        raise DaemonStartError("no free UDP port in 20000-31998")

    def _wait_for_hidraw(self, timeout: float) -> str:
        """The hidraw node of this daemon's device: the one whose HID_UNIQ is
        the serial that its start-up line names."""
        deadline = time.monotonic() + timeout
        serial = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonStartError(f"daemon exited with status {self.proc.returncode}:\n" + self.stderr())
            if serial is None:
                m = re.search(r'USB HID security key ".*?" [0-9a-f:]+ serial (\w+)', self.logs[-1].read_text(errors="replace"))
                serial = m and m.group(1)
            if serial:
                for node in sorted(Path("/sys/class/hidraw").glob("hidraw*")):
                    try:
                        uevent = (node / "device/uevent").read_text()
                    except OSError:
                        continue
                    if f"HID_UNIQ={serial}\n" in uevent and Path(f"/dev/{node.name}").exists():
                        return f"/dev/{node.name}"
            time.sleep(0.02)
        raise DaemonStartError(f"no hidraw node with serial {serial} within {timeout} s:\n" + self.stderr())

    def _wait_ready(self, timeout: float) -> None:
        """Send CTAPHID_INIT every 20 ms until one is answered.

        An answer may come after the next INIT went out: any nonce sent counts,
        or a slow first answer would keep every later one a step behind."""
        deadline = time.monotonic() + timeout
        raw = RawHid(self.endpoint)
        sent: set[bytes] = set()
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise DaemonStartError(
                        f"daemon exited with status {self.proc.returncode} before answering INIT:\n"
                        + self.stderr()
                    )
                nonce = os.urandom(8)
                sent.add(nonce)
                raw.send(RawHid.init_packet(BROADCAST_CID, HID_INIT, 8, nonce))
                try:
                    r = raw.recv(0.02)
                except ConnectionRefusedError:
                    r = None
                    time.sleep(0.01)
                if r and r[:5] == struct.pack(">IB", BROADCAST_CID, TYPE_INIT | HID_INIT) and r[7:15] in sent:
                    return
            raise DaemonStartError(
                f"daemon did not answer CTAPHID_INIT on {self.endpoint} within {timeout} s:\n"
                + self.stderr()
            )
        finally:
            raw.close()

    def _initialise_pin(self) -> None:
        """First start only: set the fixture's PIN, or learn that the store has one."""
        if self._pin_initialised:
            return
        self._pin_initialised = True
        if self.initial_pin is None:
            return
        ctap2 = self.ctap2()
        if ctap2.info.options.get("clientPin"):
            self.pin = self.initial_pin  # a data dir shared with another daemon
        else:
            self.set_pin(self.initial_pin)
        self.close_devices()

    def _terminate(self, sig=signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._after_exit()

    def _after_exit(self) -> None:
        if self.tpm is not None:
            self.tpm.used_by_dead_process = True

    def close_devices(self) -> None:
        for d in self._devices:
            try:
                d.close()
            except Exception:
                pass
        self._devices.clear()

    def stop(self) -> None:
        """Graceful stop (SIGTERM, then SIGKILL after 5 s)."""
        self._terminate(signal.SIGTERM)
        self.close_devices()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
            self._after_exit()
        self.close_devices()

    def restart(self, same_port: bool = False) -> "Daemon":
        self.stop()
        return self.start(port=self.port if same_port else None)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        parts = []
        for i, log in enumerate(self.logs):
            try:
                text = log.read_text(errors="replace")
            except FileNotFoundError:
                text = "(no log)"
            if len(self.logs) > 1:
                parts.append(f"--- daemon start #{i} ---")
            parts.append(text[-20000:])
        return "\n".join(parts)

    # ---- clients

    def device(self, **kw) -> CtapHidDevice:
        dev = hid_device(self.endpoint, **kw)
        self._devices.append(dev)
        return dev

    def ctap2(self, **kw) -> Ctap2:
        return Ctap2(self.device(**kw))

    def client(self, origin: str = "https://example.com", interaction: UserInteraction | None = None,
               extensions=None) -> Fido2Client:
        """A WebAuthn client whose user knows the current PIN and allows built-in UV.
        `extensions`: python-fido2 Ctap2Extension instances (default: fido2's own list)."""
        kw = {} if extensions is None else {"extensions": extensions}
        return Fido2Client(
            self.device(),
            DefaultClientDataCollector(origin),
            user_interaction=interaction or RecordingInteraction(self.pin),
            **kw,
        )

    # ---- PIN (authenticatorClientPIN through python-fido2)

    def client_pin(self, protocol: int = 2, ctap2: Ctap2 | None = None) -> ClientPin:
        return ClientPin(ctap2 or self.ctap2(), PROTOCOLS[protocol]())

    def set_pin(self, pin: str, protocol: int = 2) -> None:
        self.client_pin(protocol).set_pin(pin)
        self.pin = pin

    def change_pin(self, old: str, new: str, protocol: int = 2) -> None:
        self.client_pin(protocol).change_pin(old, new)
        self.pin = new

    def pin_retries(self) -> tuple[int, bool | None]:
        """getPINRetries: (retries, powerCycleState)."""
        return self.client_pin().get_pin_retries()

    def raw(self) -> RawHid:
        return RawHid(self.endpoint)

    def power_cycle(self, via_cli: bool = False) -> None:
        """Unplug and replug. Open a new device afterwards.

        The simulation takes the power-cycle datagram. The real device has no
        such report (anything that opens the node could send it): its power
        cycle is a new boot of the machine, played here with a new boot id
        and a restart of the daemon (`via_cli` makes no difference)."""
        self.close_devices()
        if UHID:
            new_boot()
            self.restart()
            return
        if via_cli:
            r = run_cli("power-cycle", "--to", f"127.0.0.1:{self.port}")
            assert r.returncode == 0, f"power-cycle failed: {r.stderr}"
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(POWER_CYCLE, ("127.0.0.1", self.port))
            s.close()
        # Make sure it has been processed: the next INIT answer comes after it.
        assert_alive(self)

    # ---- presence script

    def presence(self, *lines: str) -> None:
        """Queue answers for the next presence requests (one per line)."""
        self.script.write_text("".join(l + "\n" for l in lines))

    def pending_presence(self) -> list[str]:
        if not self.script.exists():
            return []
        return [l.strip() for l in self.script.read_text().splitlines() if l.strip()]

    # ---- CLI on this daemon's data dir

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = run_cli(args[0], "--data-dir", str(self.data_dir), *args[1:])
        if check:
            assert r.returncode == 0, f"localpasskey {' '.join(args)} exited {r.returncode}:\n{r.stderr}"
        return r

    def list_json(self) -> list[dict]:
        r = self.cli("list", "--json")
        return json.loads(r.stdout)


def run_cli(*args: str, timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess:
    """`localpasskey ARGS`; `input` goes to its stdin (e.g. PINs for --pin-stdin)."""
    env = tss_env()
    env.setdefault("LOCALPASSKEY_LOG", "warn")
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [str(binary()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def assert_alive(daemon: Daemon) -> None:
    """The daemon answers INIT on the broadcast channel, and PING on the new channel."""
    assert daemon.running, "daemon process is gone:\n" + daemon.stderr()
    raw = daemon.raw()
    try:
        cid = raw.init()
        assert cid not in (0, BROADCAST_CID)
        payload = os.urandom(100)
        cmd, data = raw.request(cid, HID_PING, payload)
        assert (cmd, data) == (HID_PING, payload), "PING did not echo"
    finally:
        raw.close()


class RecordingInteraction(UserInteraction):
    """The person at the platform: knows `pin`, allows built-in UV, and counts."""

    def __init__(self, pin: str | None = None, allow_uv: bool = True):
        self.pin = pin
        self.allow_uv = allow_uv
        self.prompts = 0
        self.pin_requests = 0
        self.uv_requests = 0

    def prompt_up(self) -> None:
        self.prompts += 1

    def request_pin(self, permissions, rp_id):
        self.pin_requests += 1
        return self.pin

    def request_uv(self, permissions, rp_id):
        self.uv_requests += 1
        return self.allow_uv


class KeepaliveRecorder:
    """An on_keepalive callback that records statuses and can cancel on UP-needed."""

    def __init__(self, cancel_on_up: threading.Event | None = None):
        self.statuses: list[int] = []
        self.first_up_at: float | None = None
        self._cancel = cancel_on_up

    def __call__(self, status):
        self.statuses.append(int(status))
        if status == STATUS.UPNEEDED and self.first_up_at is None:
            self.first_up_at = time.monotonic()
            if self._cancel is not None:
                self._cancel.set()


# --------------------------------------------------------------------------
# Authenticator data and signatures, checked independently
# --------------------------------------------------------------------------


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
                 algorithms: list[int] | None = None):
        """`algorithms`: pubKeyCredParams in order (fido2's default list, ES256
        first, if None); the authenticator must pick the first it supports."""
        self.rp_id = rp_id
        self.origin = origin or f"https://{rp_id}"
        self.attestation = attestation
        self.server = Fido2Server(
            {"id": rp_id, "name": f"RP {rp_id}"},
            attestation=attestation,
            verify_attestation=verify_packed_self,
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
            v = webauthn.verify_registration_response(
                credential=as_json,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                require_user_presence=True,
                require_user_verification=True,
                supported_pub_key_algs=[COSEAlgorithmIdentifier(self.expected_alg)],
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

