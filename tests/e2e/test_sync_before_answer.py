"""Nothing is acknowledged before it is on disk (DESIGN.md promise 5), seen in
the daemon's own system calls.

The crash tests SIGKILL the daemon, and a killed process's writes stay in the
kernel's page cache: they would pass with no fsync at all. Only a power cut
loses what was written but not synced. So this test runs the daemon under
strace and reads, in the order the kernel saw them, the reports it received
and sent and what it wrote to and synced in its data directory. For every
successful MakeCredential, GetAssertion, GetNextAssertion, credential
deletion and setPIN/changePIN, it requires that the store was written after
the request arrived and that every write to the store had been synced
by an fsync or fdatasync that had returned before the answer's first report
left. An answer sent while a store write was not yet synced fails the test,
whatever reached the disk later.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from fido2.ctap2 import ClientPin, CredentialManagement

import lpk

RP_ID = "example.com"

CBOR = 0x90  # CTAPHID_CBOR on an initialisation packet
MAKE_CREDENTIAL, GET_ASSERTION, CLIENT_PIN, GET_NEXT_ASSERTION = 0x01, 0x02, 0x06, 0x08
CREDENTIAL_MANAGEMENT, CREDENTIAL_MANAGEMENT_PRE = 0x0A, 0x41
SET_PIN, CHANGE_PIN = 0x03, 0x04
DELETE_CREDENTIAL = 0x06

pytestmark = pytest.mark.transport("udp", reason="reads the UDP simulation's datagrams in the daemon's "
                                   "system calls")


class TracedDaemon(lpk.Daemon):
    """The daemon under `strace -f`, which also passes it SIGTERM at the end."""

    def __init__(self, *args, trace: Path, **kw):
        super().__init__(*args, **kw)
        self.trace = trace

    def command(self, port: int) -> list[str]:
        return [
            "strace", "-f", "-qq", "-y", "-xx", "-s", "16", "-o", str(self.trace),
            "-e", "trace=recvfrom,recvmsg,recvmmsg,sendto,sendmsg,sendmmsg,"
                  "write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync",
            *super().command(port),
        ]


@dataclass
class Exchange:
    """One CBOR request and what the store saw until its answer."""

    request: bytes  # the init packet's payload, from the command byte
    wrote: bool = False  # a store write since the request arrived


SYSCALL = re.compile(r"^(\d+) +(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")
# With -xx strace writes every string, paths included, as \xNN escapes.
HEX = r"((?:\\x[0-9a-f]{2})*)"
FD_PATH = re.compile(r"^\d+<" + HEX + ">")
FIRST_BYTES = re.compile(r'"' + HEX + '"')


def _unhex(escaped: str) -> bytes:
    return bytes.fromhex(escaped.replace("\\x", ""))


def _path(args: str) -> str:
    """The file (or socket:[inode]) behind a call's first argument."""
    m = FD_PATH.match(args)
    return _unhex(m.group(1)).decode(errors="replace") if m else ""


def _bytes(args: str) -> bytes:
    m = FIRST_BYTES.search(args)
    return _unhex(m.group(1)) if m else b""


def _needs_durability(req: bytes) -> bool:
    """Whether a successful answer to this CBOR request acknowledges a change to the store."""
    cmd = req[0] if req else None
    if cmd in (MAKE_CREDENTIAL, GET_ASSERTION, GET_NEXT_ASSERTION):
        return True
    # {1: subCommand, ...}: a one-byte map header, key 1, the subcommand.
    if cmd in (CREDENTIAL_MANAGEMENT, CREDENTIAL_MANAGEMENT_PRE):
        return req[2:4] == bytes([0x01, DELETE_CREDENTIAL])
    # {1: pinUvAuthProtocol, 2: subCommand, ...}
    if cmd == CLIENT_PIN:
        return len(req) > 5 and req[2] == 0x01 and req[4] == 0x02 and req[5] in (SET_PIN, CHANGE_PIN)
    return False


def check_trace(trace: str, data_dir: Path) -> dict[int, int]:
    """Returns how many acknowledging answers were checked, by command byte."""
    store = str(Path(data_dir).resolve())  # as strace names files: symbolic links resolved
    current: Exchange | None = None
    # Per thread, the fd of a sync that has started but not yet returned.
    pending_sync: dict[str, str] = {}
    unsynced: list[str] = []  # every store write no returned sync covers yet
    checked: dict[int, int] = {}
    for n, line in enumerate(trace.splitlines(), 1):
        m = SYSCALL.match(line)
        if not m:
            continue
        pid, resumed, started, rest = m.group(1), m.group(2), m.group(3), m.group(4)
        name = resumed or started
        unfinished = rest.endswith("<unfinished ...>")
        if name in ("fsync", "fdatasync"):
            if started:
                pending_sync[pid] = _path(rest)
            if not unfinished:
                path = pending_sync.pop(pid, "")
                if rest.rstrip().endswith("= 0") and path.startswith(store):
                    # A sync of one file covers that file's writes.
                    unsynced = [p for p in unsynced if p != path]
            continue
        # What counts is when a receive returned and when a write or a send began.
        receive = name.startswith("recv")
        if (receive and unfinished) or (not receive and not started):
            continue
        path = _path(rest)
        if name in ("write", "pwrite64", "writev", "pwritev", "pwritev2"):
            # Not -shm: SQLite's WAL index, which it never syncs and rebuilds
            # from the WAL when it opens a database after a crash.
            if path.startswith(store) and not path.endswith("-shm"):
                unsynced.append(path)
                if current is not None:
                    current.wrote = True
            continue
        # The clients' datagrams: the only calls with an internet address
        # (swtpm is on a unix socket).
        if "AF_INET" not in rest:
            continue
        report = _bytes(rest)
        if len(report) < 8 or report[4] != CBOR:
            continue
        if receive:
            if "= -1" not in rest:
                current = Exchange(report[7:])
        elif current is not None:
            status = report[7]
            if status == 0 and _needs_durability(current.request):
                cmd = current.request[0]
                assert current.wrote, (
                    f"trace line {n}: command 0x{cmd:02x} acknowledged without a write to the store"
                )
                assert not unsynced, (
                    f"trace line {n}: command 0x{cmd:02x} acknowledged while writes to "
                    f"{sorted(set(unsynced))} were not yet synced"
                )
                checked[cmd] = checked.get(cmd, 0) + 1
            current = None
    return checked


@pytest.mark.custody("tpm", "soft")
def test_every_acknowledged_change_is_synced_before_its_answer(tmp_path, custody, make_swtpm, request):
    assert shutil.which("strace"), "no strace: scripts/install-deps.sh installs it"
    trace = tmp_path / "strace.txt"
    d = TracedDaemon(tmp_path / "d", custody=custody, tpm=make_swtpm() if custody == "tpm" else None,
                     trace=trace)
    request.node._lpk_daemons = [d]
    rp = lpk.RelyingParty(RP_ID)
    try:
        d.start(ready_timeout=30)
        c = d.client()
        regs = [rp.register(c, user_name=f"u{i}", resident_key="required") for i in range(3)]
        regs.append(rp.register(c, user_name="plain", resident_key="discouraged"))
        for r in regs:
            rp.authenticate(c, allow=[r.credential_id])
        # No allow list: three discoverable accounts, so GetNextAssertion too.
        assert len(rp.authenticate(d.client())) == 3
        d.change_pin(lpk.PIN, lpk.PIN + "9")
        ctap2 = d.ctap2()
        cp = ClientPin(ctap2)
        token = cp.get_pin_token(lpk.PIN + "9", ClientPin.PERMISSION.CREDENTIAL_MGMT)
        CredentialManagement(ctap2, cp.protocol, token).delete_cred(
            {"type": "public-key", "id": regs[0].credential_id})
    finally:
        d.stop()
    checked = check_trace(trace.read_text(errors="replace"), d.data_dir)
    # Every kind of answer was seen and checked, or the trace was not read.
    assert checked.get(MAKE_CREDENTIAL) == 4, checked
    # Five asked for, and python-fido2's silent (up=false) check of each allow list.
    assert checked.get(GET_ASSERTION) == 9, checked
    assert checked.get(GET_NEXT_ASSERTION) == 2, checked
    assert checked.get(CLIENT_PIN) == 2, checked  # the fixture's setPIN and our changePIN
    assert checked.get(CREDENTIAL_MANAGEMENT) == 1, checked


def test_the_check_catches_an_answer_before_the_sync(tmp_path):
    """The reader above on traces written by hand: it must not pass an answer
    that left before the sync returned, nor one with no sync at all."""
    data = tmp_path / "data"

    def hexed(b: bytes) -> str:
        return "".join(f"\\x{c:02x}" for c in b)

    wal = hexed(f"{data}/credentials.sqlite3-wal".encode())
    sock = hexed(b"socket:[1]")
    peer = '{sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr("\\x31")}'
    request = hexed(bytes([0, 0, 0, 1, CBOR, 0, 0x10, GET_ASSERTION]))
    ok = hexed(bytes([0, 0, 0, 1, CBOR, 0, 0x05, 0]))
    recv = f'10 recvfrom(5<{sock}>, "{request}"..., 1024, 0, {peer}, [16]) = 64'
    write = f'11 pwrite64(7<{wal}>, "\\x37\\x7f", 4120, 0) = 4120'
    send = f'10 sendto(5<{sock}>, "{ok}"..., 64, MSG_NOSIGNAL, {peer}, 16) = 64'
    synced = "\n".join([recv, write, f"11 fdatasync(7<{wal}>) = 0", send])
    assert check_trace(synced, data) == {GET_ASSERTION: 1}
    late = "\n".join([recv, write, f"11 fdatasync(7<{wal}> <unfinished ...>", send,
                      "11 <... fdatasync resumed>) = 0"])
    with pytest.raises(AssertionError, match="not yet synced"):
        check_trace(late, data)
    with pytest.raises(AssertionError, match="not yet synced"):
        check_trace("\n".join([recv, write, send]), data)
    with pytest.raises(AssertionError, match="without a write"):
        check_trace("\n".join([recv, send]), data)
    failed_sync = "\n".join([recv, write, f"11 fdatasync(7<{wal}>) = -1 EIO (Input/output error)", send])
    with pytest.raises(AssertionError, match="not yet synced"):
        check_trace(failed_sync, data)
    # A request whose last report arrives only when its receive returns.
    resumed = "\n".join([f"10 recvfrom(5<{sock}>,  <unfinished ...>", write, f"11 fdatasync(7<{wal}>) = 0",
                         f'10 <... recvfrom resumed>"{request}"..., 1024, 0, {peer}, [16]) = 64', send])
    with pytest.raises(AssertionError, match="without a write"):
        check_trace(resumed, data)
