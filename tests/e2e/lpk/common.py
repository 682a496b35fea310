"""Constants of the wire formats and the run, and the small helpers every part of lpk uses."""

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


REPO = Path(__file__).resolve().parents[3]

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
