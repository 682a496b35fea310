"""One `localpasskey run` under test, the command line, and the interactions a platform plays."""

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
from .hid import *  # noqa: F403
from .swtpm import *  # noqa: F403

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
        bus: str | None = None,
    ):
        assert custody in ("tpm", "soft"), custody
        # The session bus this daemon serves its manager API on (a test's own
        # dbus-daemon); without one it has none, whatever the caller's session.
        self.bus = bus
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
            with_bus(env, self.bus)
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

    def cli(self, *args: str, check: bool = True, bus: bool = True) -> subprocess.CompletedProcess:
        """The CLI on this daemon's data dir, on its session bus unless `bus=False`."""
        r = run_cli(args[0], "--data-dir", str(self.data_dir), *args[1:], bus=self.bus if bus else None)
        if check:
            assert r.returncode == 0, f"localpasskey {' '.join(args)} exited {r.returncode}:\n{r.stderr}"
        return r

    def list_json(self) -> list[dict]:
        r = self.cli("list", "--json")
        return json.loads(r.stdout)


def with_bus(env: dict, bus: str | None) -> dict:
    """`env` on the session bus `bus`, or on none: the suite never touches the
    session of whoever runs it."""
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    if bus:
        env["DBUS_SESSION_BUS_ADDRESS"] = bus
    return env


def run_cli(*args: str, timeout: float = 30, input: str | None = None,
            bus: str | None = None) -> subprocess.CompletedProcess:
    """`localpasskey ARGS`; `input` goes to its stdin (e.g. PINs for --pin-stdin)."""
    env = tss_env()
    env.setdefault("LOCALPASSKEY_LOG", "warn")
    env["NO_COLOR"] = "1"
    with_bus(env, bus)
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
