"""One software TPM 2.0 (swtpm) behind a unix socket in a directory only its owner may open."""

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

def tss_env() -> dict:
    """Environment for libtss2 users: its ERROR lines on every TPM error are noise."""
    env = dict(os.environ)
    env["TSS2_LOG"] = "all+none"
    return env


class SwtpmError(Exception):
    pass


def provision_ek_certificate(state_dir: Path, ca_dir: Path) -> None:
    """Manufacture a TPM state in `state_dir` with EK certificates from the
    local CA in `ca_dir` (a private swtpm_setup/swtpm_localca configuration:
    nothing of /etc or /var/lib is used)."""
    ca_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    conf = ca_dir / "swtpm-localca.conf"
    conf.write_text(
        f"statedir = {ca_dir}\nsigningkey = {ca_dir}/signkey.pem\n"
        f"issuercert = {ca_dir}/issuercert.pem\ncertserial = {ca_dir}/certserial\n"
    )
    options = ca_dir / "swtpm-localca.options"
    options.write_text("--platform-manufacturer LocalPasskeyTests\n--platform-version 1\n--platform-model swtpm\n")
    setup = ca_dir / "swtpm_setup.conf"
    setup.write_text(
        "create_certs_tool = /usr/bin/swtpm_localca\n"
        f"create_certs_tool_config = {conf}\ncreate_certs_tool_options = {options}\n"
        "active_pcr_banks = sha256\n"
    )
    r = subprocess.run(
        ["swtpm_setup", "--tpm2", "--tpmstate", str(state_dir), "--create-ek-cert",
         "--create-platform-cert", "--config", str(setup), "--overwrite"],
        capture_output=True, text=True, timeout=60, env=tss_env(),
    )
    if r.returncode != 0:
        raise SwtpmError(f"swtpm_setup failed: {r.stdout}{r.stderr}")
    for f in state_dir.iterdir():
        os.chmod(f, 0o600)


def ek_roots(ca_dir: Path) -> list[Path]:
    """The local TPM-maker CA's certificates: its root and its issuing CA."""
    return [Path(ca_dir) / "swtpm-localca-rootca-cert.pem", Path(ca_dir) / "issuercert.pem"]


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

    def __init__(self, state_dir: Path, uid: int | None = None, log: Path | None = None,
                 ek_ca: Path | None = None):
        """`uid`: run swtpm as that user (its directories are then that
        user's), as a daemon of another uid than the test's needs.

        `ek_ca`: a directory for a local TPM-maker CA (swtpm_localca makes
        it on first use; several TPMs may share it). The TPM is then
        manufactured with `swtpm_setup --create-ek-cert`: an RSA EK
        certificate at NV 0x01C00002 issued by that CA, whose certificates
        `ek_roots(ek_ca)` lists."""
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        if ek_ca is not None and not any(self.state_dir.iterdir()):
            provision_ek_certificate(self.state_dir, Path(ek_ca))
        self.uid = uid
        self.socket_dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.log = log or self.state_dir.parent / f"{self.state_dir.name}.swtpm.log"
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
        as_user = {}
        if self.uid is not None:
            for d in (self.state_dir, self.socket_dir):
                os.chown(d, self.uid, self.uid)
            as_user = {"user": self.uid, "group": self.uid, "extra_groups": []}
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
                **as_user,
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
