"""LocalPasskey as a real USB security key, driven by real clients.

Runs inside the throw-away VM of tests/vm/run.sh (a kernel with uhid, the
host's tree read-only, /tmp a fresh tmpfs, results in --out). It starts udev
(systemd-udevd, with our rules from packaging/udev in /run/udev/rules.d), the
uhid broker as root (socket-activated by systemd-socket-activate), swtpm and
`localpasskey run --transport uhid --custody tpm` as an ordinary uid, which
asks the broker for its device, then checks, against /dev/hidrawN:

- the broker: the daemon's uid may not open /dev/uhid; its second
  connection is refused and makes no second device; another uid's
  keyboard-shaped CREATE2 makes nothing, and its hello gets a FIDO device
  of its own, owned by it; udev gives our node to its owner alone (mode
  0600, no ACL) and another uid cannot open it; ID_FIDO_TOKEN and the snap
  tags are set;

- the kernel device (bus, ids, name, serial, report descriptor);
- libfido2's fido2-token (-L, -I, -S), fido2-cred (-M -r -v, -V) and
  fido2-assert (-G -v, -V); credential management: -L -r lists the RP (with
  its ID hash), -L -k the credential (id, user id, credProtect level), -D -i
  deletes it (then it is neither listed nor usable);
- OpenSSH: ssh-keygen -t ecdsa-sk (non-resident), and -O resident -O
  verify-required, a PIN asked for going through SSH_ASKPASS (listed by
  fido2-token with credProtect userVerificationRequired), -Y sign /
  -Y verify with both; -K recovers the resident key handle, which signs too;
- python-fido2 over hidraw: register and authenticate, verified by
  fido2.server;
- presence refused -> CTAP2_ERR_OPERATION_DENIED, presence timeout ->
  CTAP2_ERR_USER_ACTION_TIMEOUT with keepalives meanwhile;
- SIGTERM removes the device and the daemon exits 0.

Prints one line per check and ends with "N passed, M failed"; exits 1 on any
failure.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

AAGUID = "cb8a205c984c4e7e98eb5800f04355ef"
PIN = "4826-lpk"
RP = "vm.localpasskey.test"
PRESENCE_TIMEOUT_MS = 4000
VENDOR, PRODUCT = 0x1209, 0x0001

# The daemon runs as an ordinary user, as on a desktop: no passwd entry is
# needed for a uid. Another one plays the other local user.
DAEMON_UID = 4242
OTHER_UID = 4243
BROKER_SOCK = "/run/localpasskey/broker.sock"
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/e2e"))
import lpk  # noqa: E402 (the e2e suite's helpers, found through the line above)

ARGS = argparse.Namespace()
WORK = Path("/tmp/lpk")
RESULTS: list[tuple[str, str, str]] = []  # (status, name, detail)
CLIENT_OF: dict[str, str] = {}  # check name -> the client that ran it
STATE: dict = {}


def say(msg: str) -> None:
    print(msg, flush=True)


def check(name: str, client: str, what: str):
    """Decorator: run a check, record PASS/FAIL with what it checked."""

    def wrap(fn):
        def run():
            t0 = time.monotonic()
            try:
                detail = fn() or ""
                status = "PASS"
            except Exception as e:  # noqa: BLE001 - a check's failure is data
                status = "FAIL"
                detail = f"{type(e).__name__}: {e}"
                traceback.print_exc(file=sys.stdout)
            dt = time.monotonic() - t0
            RESULTS.append((status, name, detail))
            CLIENT_OF[name] = client
            say(f"{status:5} [{client}] {name} ({dt:.1f}s): {what}" + (f" -- {detail}" if detail else ""))

        run.__name__ = name
        return run

    return wrap


# ----------------------------------------------------------------- helpers


def run(argv, check_rc=True, timeout=90, env=None, input=None) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode}: {(p.stdout + p.stderr).strip()[-600:]}")
    return p


def run_pty(argv, pin: str = PIN, timeout: float = 120) -> tuple[int, str, int]:
    """Run with a pseudo-terminal as controlling tty (libfido2's tools read the
    PIN from the tty) and type `pin` at every "Enter ... PIN ...:" prompt.
    Returns (exit status, terminal output, number of PIN prompts)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], [str(a) for a in argv])
        finally:
            os._exit(127)
    out = b""
    answered = 0
    deadline = time.monotonic() + timeout
    prompt = re.compile(rb"Enter[^\r\n]*PIN[^\r\n]*: ?")
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"{argv[0]} did not finish in {timeout}s: {out.decode(errors='replace')[-300:]}")
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            while len(prompt.findall(out)) > answered:
                os.write(fd, pin.encode() + b"\n")
                answered += 1
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace"), answered


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def as_uid(uid: int) -> dict:
    """subprocess arguments that run a program as `uid` with no groups."""
    return {"user": uid, "group": uid, "extra_groups": []}


def presence(*lines: str) -> None:
    # Rewritten in place: the file stays the daemon's, which rewrites it too.
    p = WORK / "presence"
    p.write_text("".join(line + "\n" for line in lines))
    if STATE.get("daemon_uid") is not None:
        os.chown(p, STATE["daemon_uid"], STATE["daemon_uid"])


def presence_left() -> list[str]:
    p = WORK / "presence"
    return [x for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


def hidraw() -> str:
    return STATE["hidraw"]


# ------------------------------------------------------------ the services


def start_swtpm(uid: int | None = None) -> None:
    """The e2e suite's swtpm (tests/e2e/lpk): a unix socket in a 0700
    directory, state files 0600, no TCP port; run as `uid` (the daemon's)."""
    tpm = lpk.Swtpm(WORK / "swtpm", uid=uid, log=ARGS.out / "swtpm.log").start()
    STATE["swtpm"] = tpm.proc
    STATE["tcti"] = tpm.tcti
    # FACTS.md: swtpm's default lockout (3 tries, 1000 s) would stop the suite
    # at the first wrong PIN; a real TPM keeps its owner's settings.
    tpm.tool("tpm2_dictionarylockout", "-s", "-n", "32", "-t", "10", "-l", "10")


def broker_bin() -> str:
    return str(Path(ARGS.bin).with_name("localpasskey-broker"))


def start_udev() -> None:
    """systemd-udevd with our rules next to the system's (60-fido-id.rules,
    70-uaccess.rules come from the host's /lib/udev/rules.d)."""
    rules = Path("/run/udev/rules.d")
    rules.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "packaging/udev").glob("*.rules"):
        (rules / f.name).write_text(f.read_text())
    STATE["udevd_log"] = open(ARGS.out / "udevd.log", "wb")
    STATE["udevd"] = subprocess.Popen(["/lib/systemd/systemd-udevd", "--debug"],
                                      stdout=STATE["udevd_log"], stderr=subprocess.STDOUT)
    for _ in range(300):
        if run(["udevadm", "control", "--ping"], check_rc=False).returncode == 0:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError("systemd-udevd does not answer")


def start_broker() -> None:
    """The broker as root, socket-activated as its systemd unit would be:
    systemd-socket-activate binds the socket and hands it over (LISTEN_FDS)."""
    Path(BROKER_SOCK).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    log = open(ARGS.out / "broker.log", "wb")
    STATE["broker"] = subprocess.Popen(
        ["systemd-socket-activate", "-l", BROKER_SOCK, broker_bin()],
        stdout=log, stderr=subprocess.STDOUT)
    for _ in range(600):
        if os.path.exists(BROKER_SOCK):
            # What the socket unit's SocketMode=0666 does: every user may ask.
            os.chmod(BROKER_SOCK, 0o666)
            return
        time.sleep(0.05)
    raise RuntimeError("the broker's socket did not appear")


def our_nodes() -> set[str]:
    found = set()
    for name in os.listdir("/sys/class/hidraw"):
        if "HID_NAME=LocalPasskey" in Path(f"/sys/class/hidraw/{name}/device/uevent").read_text():
            found.add(name)
    return found


def start_daemon(direct: bool = False) -> None:
    """`direct`: root opens /dev/uhid itself (the browser suite); else the
    daemon runs as DAEMON_UID and asks the broker."""
    if not direct:
        STATE["daemon_uid"] = DAEMON_UID
        for d in (WORK, WORK / "data", WORK / "home"):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(WORK / "data", 0o700)
        for d in (WORK / "data", WORK / "home"):
            os.chown(d, DAEMON_UID, DAEMON_UID)
    presence()
    log = open(ARGS.out / "daemon.log", "wb")
    env = dict(os.environ, LOCALPASSKEY_LOG="info,localpasskey=debug,tss_esapi=warn",
               TSS2_LOG="all+none", NO_COLOR="1")
    if direct:
        env["LOCALPASSKEY_UHID_DIRECT"] = "1"
    else:
        env.update(HOME=str(WORK / "home"), LOCALPASSKEY_BROKER=BROKER_SOCK)
    before = set(os.listdir("/sys/class/hidraw")) if os.path.isdir("/sys/class/hidraw") else set()
    STATE["daemon"] = subprocess.Popen(
        [ARGS.bin, "run", "--transport", "uhid", "--custody", "tpm", "--tpm", STATE["tcti"],
         "--data-dir", str(WORK / "data"),
         "--presence", f"script:{WORK / 'presence'}", "--script-pin", PIN,
         "--presence-timeout-ms", str(PRESENCE_TIMEOUT_MS), "--force-insecure-for-tests",
         "--allow-software-tpm"],
        stdout=log, stderr=subprocess.STDOUT, env=env, **({} if direct else as_uid(DAEMON_UID)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if STATE["daemon"].poll() is not None:
            raise RuntimeError("daemon exited: " + (ARGS.out / "daemon.log").read_text()[-2000:])
        for name in sorted(set(os.listdir("/sys/class/hidraw")) - before):
            uevent = Path(f"/sys/class/hidraw/{name}/device/uevent").read_text()
            if "HID_NAME=LocalPasskey" in uevent and os.path.exists(f"/dev/{name}"):
                STATE["hidraw"] = f"/dev/{name}"
                STATE["uevent"] = uevent
                STATE["sysdir"] = Path(f"/sys/class/hidraw/{name}/device")
                if STATE.get("udevd") and STATE.get("daemon_uid") is not None:
                    wait_owner(STATE["hidraw"], STATE["daemon_uid"])
                return
        time.sleep(0.05)
    raise RuntimeError("no hidraw node for LocalPasskey appeared in 30 s")


# ------------------------------------------------------------------ checks


@check("kernel-device", "kernel", "uhid made a USB HID device with our ids, name, ASCII serial and the FIDO descriptor")
def t_kernel_device():
    u = dict(line.split("=", 1) for line in STATE["uevent"].split())
    assert u["HID_ID"] == f"0003:{VENDOR:08X}:{PRODUCT:08X}", u["HID_ID"]
    assert u["HID_NAME"] == "LocalPasskey", u
    uniq = u.get("HID_UNIQ", "")
    assert uniq and uniq.isascii() and uniq.isalnum(), f"HID_UNIQ {uniq!r}"
    assert u["HID_PHYS"] == str(DAEMON_UID), f"HID_PHYS {u.get('HID_PHYS')!r}: the broker names the owner's uid"
    rd = (STATE["sysdir"] / "report_descriptor").read_bytes()
    assert rd[:3] == bytes([0x06, 0xD0, 0xF1]), rd.hex()
    assert bytes([0x95, 0x40, 0x81, 0x02]) in rd and bytes([0x95, 0x40, 0x91, 0x02]) in rd
    return f"{hidraw()} HID_ID={u['HID_ID']} uniq={uniq}"


# ---- the broker and udev: each attack must fail


def py_as(uid: int, code: str, timeout: float = 30) -> str:
    """Runs python `code` as `uid` (no groups); returns its stdout, stripped."""
    # The system's python: the venv's lives where other uids may not look.
    p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, timeout=timeout,
                       **as_uid(uid))
    assert p.returncode == 0, f"python as uid {uid} exited {p.returncode}: {p.stderr.strip()[-400:]}"
    return p.stdout.strip()


OPEN_CODE = """
import os, sys
try:
    os.close(os.open(sys.argv[1] if len(sys.argv) > 1 else {path!r}, os.O_RDWR))
    print("OPENED")
except PermissionError:
    print("DENIED")
"""

BROKER_CODE = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect({sock!r})
s.sendall({payload!r})
a = b""
while len(a) < 64:
    chunk = s.recv(64 - len(a))
    if not chunk:
        break
    a += chunk
print(a[5] if len(a) == 64 and a[:5] == b"LPKB\\x01" else "no-answer:" + a.hex(), flush=True)
if {hold!r}:
    sys.stdin.read()
"""


def wait_owner(node: str, uid: int, seconds: float = 15) -> None:
    """udev applies the owner a moment after the node appears (the event may
    not even be queued yet when `udevadm settle` asks)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and os.stat(node).st_uid != uid:
        time.sleep(0.05)


def hello(serial: bytes) -> bytes:
    return b"LPKB\x01" + bytes([len(serial)]) + serial + bytes(64 - 6 - len(serial))


@check("uhid-root-only", "broker", "/dev/uhid is root's (0600, no ACL): the daemon's uid cannot open it, so cannot "
       "create a keyboard by itself")
def t_uhid_root_only():
    st = os.stat("/dev/uhid")
    assert st.st_uid == 0 and st.st_mode & 0o077 == 0, f"/dev/uhid uid {st.st_uid} mode {st.st_mode & 0o777:o}"
    got = py_as(DAEMON_UID, OPEN_CODE.format(path="/dev/uhid"))
    assert got == "DENIED", f"uid {DAEMON_UID} opening /dev/uhid: {got}"
    return f"uid {DAEMON_UID}: {got}"


@check("broker-one-device-per-uid", "broker", "a second connection of the daemon's uid (another serial) is refused "
       "with Busy and makes no second device")
def t_broker_second_device():
    before = our_nodes()
    got = py_as(DAEMON_UID, BROKER_CODE.format(sock=BROKER_SOCK, payload=hello(b"second"), hold=False))
    assert got == "2", f"the broker answered {got!r}, not Busy (2)"
    time.sleep(0.5)
    assert our_nodes() == before, f"nodes {sorted(before)} became {sorted(our_nodes())}"
    return "Busy; still one device"


def keyboard_create2() -> bytes:
    """A UHID_CREATE2 event for a boot keyboard: what a rogue program with
    /dev/uhid would write. Sent to the broker, it must create nothing."""
    rd = bytes.fromhex("05010906a101050719e029e71500250175019508810295017508810305071900296515002565"
                       "75089506810095057501050819012905910295017503910 1c0".replace(" ", ""))
    name = b"Rogue Keyboard".ljust(128, b"\0")
    req = name + bytes(64) + bytes(64) + len(rd).to_bytes(2, "little") + (3).to_bytes(2, "little")
    req += (0x046D).to_bytes(4, "little") + (0xC31C).to_bytes(4, "little") + bytes(8) + rd.ljust(4096, b"\0")
    return (11).to_bytes(4, "little") + req


@check("broker-no-keyboard", "broker", "another uid sends a keyboard's UHID_CREATE2 instead of a hello: refused "
       "(BadHello), no HID or input device appears")
def t_broker_no_keyboard():
    hid_before, input_before = set(os.listdir("/sys/class/hidraw")), set(os.listdir("/sys/class/input"))
    got = py_as(OTHER_UID, BROKER_CODE.format(sock=BROKER_SOCK, payload=keyboard_create2(), hold=False))
    assert got == "1", f"the broker answered {got!r}, not BadHello (1)"
    time.sleep(0.5)
    assert set(os.listdir("/sys/class/hidraw")) == hid_before, "a HID device appeared"
    assert set(os.listdir("/sys/class/input")) == input_before, "an input device appeared"
    return "BadHello; no new hidraw or input device"


@check("broker-other-uid-own-key", "broker + udev", "another uid's hello gets a FIDO device of its own (our "
       "descriptor, HID_PHYS its uid), owned by it alone: the daemon's uid cannot open it; it goes when it hangs up")
def t_broker_other_uid():
    before = our_nodes()
    p = subprocess.Popen(["/usr/bin/python3", "-c", BROKER_CODE.format(sock=BROKER_SOCK, payload=hello(b"other"),
                                                                   hold=True)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **as_uid(OTHER_UID))
    try:
        answer = p.stdout.readline().strip()
        assert answer == "0", f"the broker answered {answer!r}, not Created (0)"
        node = None
        for _ in range(100):
            new = our_nodes() - before
            if new:
                node = new.pop()
                break
            time.sleep(0.05)
        assert node, "no device appeared"
        wait_owner(f"/dev/{node}", OTHER_UID)
        sysdir = Path(f"/sys/class/hidraw/{node}/device")
        u = dict(line.split("=", 1) for line in (sysdir / "uevent").read_text().split())
        assert u["HID_PHYS"] == str(OTHER_UID) and u["HID_UNIQ"] == "other", u
        assert (sysdir / "report_descriptor").read_bytes() == (STATE["sysdir"] / "report_descriptor").read_bytes()
        st = os.stat(f"/dev/{node}")
        assert st.st_uid == OTHER_UID and st.st_mode & 0o777 == 0o600, f"uid {st.st_uid} mode {st.st_mode:o}"
        assert py_as(DAEMON_UID, OPEN_CODE.format(path=f"/dev/{node}")) == "DENIED", "the daemon's uid opened it"
        assert py_as(OTHER_UID, OPEN_CODE.format(path=f"/dev/{node}")) == "OPENED", "its owner cannot open it"
    finally:
        p.stdin.close()
        p.wait(10)
    for _ in range(100):
        if node not in our_nodes():
            break
        time.sleep(0.05)
    assert node not in our_nodes(), f"/dev/{node} stayed after its owner hung up"
    return f"/dev/{node} uid {OTHER_UID} 0600; gone after the hang-up"


@check("hidraw-owner-only", "udev", "our node belongs to the daemon's uid (0600, no ACL): another uid cannot open "
       "it, the owner can")
def t_hidraw_owner_only():
    st = os.stat(hidraw())
    assert st.st_uid == DAEMON_UID and st.st_mode & 0o777 == 0o600, f"uid {st.st_uid} mode {st.st_mode & 0o777:o}"
    try:
        os.getxattr(hidraw(), "system.posix_acl_access")
        raise AssertionError(f"{hidraw()} has an ACL")
    except OSError as e:
        assert e.errno in (61, 95), e  # ENODATA, EOPNOTSUPP: no ACL
    other = py_as(OTHER_UID, OPEN_CODE.format(path=hidraw()))
    owner = py_as(DAEMON_UID, OPEN_CODE.format(path=hidraw()))
    assert other == "DENIED", f"uid {OTHER_UID}: {other}"
    assert owner == "OPENED", f"uid {DAEMON_UID}: {owner}"
    return f"{hidraw()} uid {DAEMON_UID} mode 0600; uid {OTHER_UID} DENIED, owner OPENED"


@check("udev-fido-id-snap-tags", "udev", "udevadm info: fido_id set ID_FIDO_TOKEN=1 and ID_SECURITY_TOKEN=1, our "
       "rule tagged snap_firefox_firefox and snap_chromium_chromium and took uaccess away")
def t_udev_tags():
    props = dict(line.split("=", 1) for line in
                 run(["udevadm", "info", "--query=property", hidraw()]).stdout.splitlines() if "=" in line)
    assert props.get("ID_FIDO_TOKEN") == "1", props
    assert props.get("ID_SECURITY_TOKEN") == "1", props
    tags = set(props.get("CURRENT_TAGS", props.get("TAGS", "")).strip(":").split(":"))
    assert {"snap_firefox_firefox", "snap_chromium_chromium"} <= tags, tags
    assert "uaccess" not in tags, tags
    return f"ID_FIDO_TOKEN=1; tags {sorted(tags)}"


@check("doctor-ownership", "localpasskey doctor", "doctor, as the owner, sees /dev/uhid root's, the broker, both "
       "udev rules, the node its alone, ID_FIDO_TOKEN and no uaccess tag")
def t_doctor_ownership():
    r = subprocess.run([ARGS.bin, "doctor", "--tpm", STATE["tcti"], "--data-dir", str(WORK / "data")],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, HOME=str(WORK / "home"), TSS2_LOG="all+none"), **as_uid(DAEMON_UID))
    (ARGS.out / "doctor.txt").write_text(r.stdout + r.stderr)
    want = ["ok    /dev/uhid exists and is root's alone", "ok    the uhid broker listens on " + BROKER_SOCK,
            "72-localpasskey.rules gives our node to its owner alone",
            "69-localpasskey-snap.rules tags our node for the Firefox and Chromium snaps",
            f"ok    the security key is up as {hidraw()} and belongs to you alone",
            "ok    udev's fido_id recognises it as a FIDO token"]
    missing = [w for w in want if w not in r.stdout]
    assert not missing, f"missing {missing} in:\n{r.stdout[-3000:]}"
    assert "uaccess tag" not in r.stdout, r.stdout
    return "every ownership line ok (doctor.txt)"


@check("fido2-token-L", "libfido2 fido2-token", "-L lists the device")
def t_token_list():
    out = run(["fido2-token", "-L"]).stdout
    line = next((x for x in out.splitlines() if x.startswith(hidraw())), None)
    assert line, f"{hidraw()} not listed: {out!r}"
    # libfido2 takes manufacturer/product strings from a USB parent device,
    # which a uhid device does not have: they print empty; the ids must match.
    assert "vendor=0x1209" in line and "product=0x0001" in line, line
    return line.strip()


def token_info() -> str:
    return run(["fido2-token", "-I", hidraw()]).stdout


@check("fido2-token-I", "libfido2 fido2-token", "-I shows our AAGUID, options, PIN protocols, algorithms")
def t_token_info():
    info = token_info()
    STATE["info_before_pin"] = info
    (ARGS.out / "fido2-token-I.txt").write_text(info)
    assert f"aaguid: {AAGUID}" in info, info
    opts = re.search(r"^options: (.*)$", info, re.M).group(1)
    for o in ("rk", "up", "noplat", "alwaysUv", "pinUvAuthToken", "noclientPin"):
        assert re.search(rf"(^|, ){o}(,|$)", opts), f"option {o} missing in {opts!r}"
    assert re.search(r"^pin protocols: 2, 1$", info, re.M), info
    assert "es256" in info and "transport strings: usb" in info, info
    return f"options: {opts}"


@check("fido2-token-S", "libfido2 fido2-token", "-S sets the PIN (typed on a pty); -I then shows clientPin")
def t_token_set_pin():
    rc, out, prompts = run_pty(["fido2-token", "-S", hidraw()])
    assert rc == 0, f"exit {rc}: {out}"
    assert prompts == 2, f"{prompts} PIN prompts: {out}"
    opts = re.search(r"^options: (.*)$", token_info(), re.M).group(1)
    assert re.search(r"(^|, )clientPin(,|$)", opts), opts
    STATE["pin_set"] = True
    return "PIN set; options now include clientPin"


@check("localpasskey-pin-status", "localpasskey pin",
       "`localpasskey pin status` with no --to finds our hidraw node by its serial and sees the PIN fido2-token set")
def t_cli_pin_status():
    r = subprocess.run([ARGS.bin, "pin", "status", "--data-dir", str(WORK / "data")], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, HOME=str(WORK / "home")), **as_uid(DAEMON_UID))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"authenticator: {hidraw()}" in r.stderr, r.stderr
    assert "A PIN is set. Tries left: 8 of 8." in r.stdout, r.stdout
    return f"{r.stderr.strip()}; {r.stdout.strip()}"


@check("fido2-cred-M", "libfido2 fido2-cred", "-M -r -v makes a resident ES256 credential (PIN on the tty)")
def t_cred_make():
    user_id = os.urandom(16)
    param = WORK / "cred_param"
    param.write_text(f"{b64(hashlib.sha256(b'vm cred').digest())}\n{RP}\nalice\n{b64(user_id)}\n")
    rc, out, prompts = run_pty(["fido2-cred", "-M", "-r", "-v", "-i", param, "-o", WORK / "cred", hidraw(), "es256"])
    assert rc == 0, f"exit {rc}: {out}"
    lines = (WORK / "cred").read_text().splitlines()
    assert lines[1] == RP and lines[2] == "packed", lines[:3]
    STATE["user_id"] = user_id
    return f"fmt {lines[2]}, credential id {len(base64.b64decode(lines[4]))} bytes, {prompts} PIN prompt(s)"


@check("fido2-cred-V", "libfido2 fido2-cred", "-V -v verifies the packed self-attestation and UV")
def t_cred_verify():
    run(["fido2-cred", "-V", "-v", "-i", WORK / "cred", "-o", WORK / "cred_pub", "es256"])
    lines = (WORK / "cred_pub").read_text().splitlines()
    assert lines[1].startswith("-----BEGIN PUBLIC KEY-----"), lines
    STATE["cred_id"] = lines[0]
    (WORK / "pubkey.pem").write_text("\n".join(lines[1:]) + "\n")
    return "attestation signature and UV flag verified by libfido2"


@check("fido2-assert-G", "libfido2 fido2-assert", "-G -v gets an assertion from the resident credential")
def t_assert_get():
    param = WORK / "assert_param"
    param.write_text(f"{b64(hashlib.sha256(b'vm assert').digest())}\n{RP}\n")
    rc, out, prompts = run_pty(["fido2-assert", "-G", "-r", "-v", "-i", param, "-o", WORK / "assertion", hidraw()])
    assert rc == 0, f"exit {rc}: {out}"
    lines = (WORK / "assertion").read_text().splitlines()
    assert base64.b64decode(lines[4]) == STATE["user_id"], "user id of the resident credential differs"
    return f"discoverable assertion with the right user id, {prompts} PIN prompt(s)"


@check("fido2-assert-V", "libfido2 fido2-assert", "-V -v verifies the signature with the credential's public key")
def t_assert_verify():
    lines = (WORK / "assertion").read_text().splitlines()
    (WORK / "assertion4").write_text("\n".join(lines[:4]) + "\n")
    run(["fido2-assert", "-V", "-v", "-i", WORK / "assertion4", WORK / "pubkey.pem", "es256"])
    auth_data = base64.b64decode(lines[2])
    # authData is a CBOR byte string: skip its header (0x58 len).
    raw = auth_data[2:] if auth_data[0] == 0x58 else auth_data[1:]
    flags = raw[32]
    assert flags & 0x01 and flags & 0x04, f"flags {flags:#x}: want UP and UV"
    assert not flags & 0x18, f"flags {flags:#x}: BE/BS must be 0"
    return f"signature verified; flags {flags:#04x} (UP, UV, BE=0, BS=0)"


def b64_hash(text: str) -> str:
    return b64(hashlib.sha256(text.encode()).digest())


def token_rps() -> dict[str, str]:
    """fido2-token -L -r: {rp id: base64 rpIDHash}. (libfido2 asks the
    authenticator's built-in UV - our prompt - rather than the tty when it
    offers one; a PIN prompt on the tty is answered too.)"""
    rc, out, _ = run_pty(["fido2-token", "-L", "-r", hidraw()], timeout=60)
    assert rc == 0, f"exit {rc}: {out.strip()[-300:]}"
    rps = {}
    for line in out.splitlines():
        m = re.match(r"^\d\d: (\S+) (\S+)\s*$", line.strip())
        if m:
            rps[m.group(2)] = m.group(1)
    return rps


def token_creds(rp_id: str) -> tuple[int, list[str], str]:
    """fido2-token -L -k RP: (exit status, credential lines, whole output)."""
    rc, out, _ = run_pty(["fido2-token", "-L", "-k", rp_id, hidraw()], timeout=60)
    return rc, [x.strip() for x in out.splitlines() if re.match(r"^\d\d: ", x.strip())], out


PROT = {1: ("uvopt", "PROT_UV_OPTIONAL"), 2: ("uvopt+id", "PROT_UV_OPTIONAL_WITH_ID"),
        3: ("uvreq", "PROT_UV_REQUIRED")}


def check_prot(line: str, level: int) -> None:
    assert line.split()[-1] in PROT[level], f"credProtect {line.split()[-1]!r}, expected level {level}: {line}"


@check("fido2-token-L-r", "libfido2 fido2-token", "-L -r lists the relying party and its SHA-256 rpIDHash")
def t_token_list_rps():
    rps = token_rps()
    assert rps == {RP: b64_hash(RP)}, f"listed {rps}, expected only {RP} with hash {b64_hash(RP)}"
    return f"{RP} {rps[RP]}"


@check("fido2-token-L-k", "libfido2 fido2-token",
       "-L -k lists the RP's credential: its id, user id, es256, credProtect 1")
def t_token_list_creds():
    rc, lines, out = token_creds(RP)
    assert rc == 0, f"exit {rc}: {out.strip()[-300:]}"
    assert len(lines) == 1, f"{len(lines)} credentials listed: {out}"
    line = lines[0]
    assert line.split()[1] == STATE["cred_id"], f"credential id differs: {line} vs {STATE['cred_id']}"
    assert b64(STATE["user_id"]) in line, f"user id {b64(STATE['user_id'])} not in {line}"
    assert " es256 " in line, line
    check_prot(line, 1)
    return line


# ---- OpenSSH


def ssh_env() -> dict:
    askpass = WORK / "askpass.sh"
    if not askpass.exists():
        askpass.write_text(f'#!/bin/sh\necho "$1" >>{WORK}/askpass.log\necho "{PIN}"\n')
        askpass.chmod(0o755)
    return dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0",
                SSH_SK_HELPER="/usr/lib/openssh/ssh-sk-helper")


def askpass_prompts() -> int:
    p = WORK / "askpass.log"
    return len(p.read_text().splitlines()) if p.exists() else 0


def ssh_keygen(key: Path, *options: str) -> str:
    before = askpass_prompts()
    opts = [x for o in options for x in ("-O", o)]
    p = run(["ssh-keygen", "-q", "-t", "ecdsa-sk", *opts, "-N", "", "-C", "vm-test", "-f", key],
            env=ssh_env(), timeout=120, input="")
    pub = key.with_suffix(".pub").read_text()
    assert pub.startswith("sk-ecdsa-sha2-nistp256@openssh.com "), pub
    return f"{pub.split()[0]} created; {askpass_prompts() - before} askpass prompt(s) {p.stderr.strip()[:80]}"


def ssh_sign_verify(key: Path) -> str:
    data = WORK / f"{key.name}.txt"
    data.write_text("signed inside the LocalPasskey VM test\n")
    before = askpass_prompts()
    run(["ssh-keygen", "-Y", "sign", "-f", key, "-n", "file", data], env=ssh_env(), timeout=120, input="")
    sig = Path(str(data) + ".sig")
    signers = WORK / "allowed_signers"
    signers.write_text("vm@localpasskey " + key.with_suffix(".pub").read_text())
    with open(data) as f:
        p = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", signers, "-I", "vm@localpasskey", "-n", "file",
                            "-s", sig], stdin=f, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Good" in p.stdout + p.stderr, p.stdout + p.stderr
    return f"{(p.stdout + p.stderr).strip().splitlines()[0]}; {askpass_prompts() - before} askpass prompt(s)"


@check("ssh-keygen-ecdsa-sk", "OpenSSH ssh-keygen", "-t ecdsa-sk makes a device-bound key (non-resident)")
def t_ssh_keygen():
    return ssh_keygen(WORK / "id_plain_sk", "application=ssh:localpasskey-vm-plain")


@check("ssh-keygen-Y-sign-verify", "OpenSSH ssh-keygen", "-Y sign with the ecdsa-sk key, -Y verify")
def t_ssh_sign():
    return ssh_sign_verify(WORK / "id_plain_sk")


SSH_APP = "ssh:localpasskey-vm"


@check("ssh-keygen-resident-verify-required", "OpenSSH ssh-keygen",
       "-t ecdsa-sk -O resident -O verify-required (PIN via SSH_ASKPASS when OpenSSH asks; libfido2 "
       "prefers our built-in UV prompt): a discoverable key, "
       "listed by fido2-token -L -k with credProtect userVerificationRequired")
def t_ssh_keygen_rk():
    detail = ssh_keygen(WORK / "id_ecdsa_sk", "resident", "verify-required", f"application={SSH_APP}")
    rc, lines, out = token_creds(SSH_APP)
    assert rc == 0 and len(lines) == 1, f"exit {rc}, {len(lines)} credentials for {SSH_APP}: {out.strip()[-300:]}"
    check_prot(lines[0], 3)
    STATE["ssh_rk"] = True
    return f"{detail}; fido2-token: {lines[0]}"


@check("ssh-keygen-resident-Y-sign-verify", "OpenSSH ssh-keygen",
       "-Y sign / -Y verify with the resident verify-required key")
def t_ssh_sign_rk():
    assert STATE.get("ssh_rk"), "no resident key was made"
    return ssh_sign_verify(WORK / "id_ecdsa_sk")


@check("ssh-keygen-K", "OpenSSH ssh-keygen",
       "-K recovers the resident key handle: same public key, and it signs (-Y sign, -Y verify)")
def t_ssh_download():
    assert STATE.get("ssh_rk"), "no resident key was made"
    d = WORK / "downloaded"
    d.mkdir(exist_ok=True)
    before = askpass_prompts()
    p = subprocess.run(["ssh-keygen", "-K", "-N", ""], cwd=d, env=ssh_env(), capture_output=True, text=True,
                       timeout=120, input="")
    assert p.returncode == 0, f"ssh-keygen -K exited {p.returncode}: {(p.stdout + p.stderr).strip()[-400:]}"
    got = sorted(d.glob("id_ecdsa_sk_rk*.pub"))
    assert len(got) == 1, f"downloaded {[g.name for g in got]}: {(p.stdout + p.stderr).strip()[-300:]}"
    original = (WORK / "id_ecdsa_sk.pub").read_text().split()[:2]
    recovered = got[0].read_text().split()[:2]
    assert recovered == original, f"recovered {recovered} differs from the original {original}"
    key = got[0].with_suffix("")
    signed = ssh_sign_verify(key)
    return f"{got[0].name} = the original public key; {askpass_prompts() - before} askpass prompt(s); {signed}"


# ---- python-fido2


def fido2_device():
    from fido2.hid import CtapHidDevice

    devs = [d for d in CtapHidDevice.list_devices() if d.descriptor.path == hidraw()]
    assert devs, f"python-fido2 does not list {hidraw()}: {[d.descriptor for d in CtapHidDevice.list_devices()]}"
    return devs[0]


@check("python-fido2", "python-fido2 + fido2.server",
       "CtapHidDevice.list_devices() finds it; Fido2Client registers (resident, UV required) and authenticates; "
       "fido2.server verifies both")
def t_python_fido2():
    from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
    from fido2.server import Fido2Server

    class Pin(UserInteraction):
        def request_pin(self, permissions, rp_id):
            return PIN

        def request_uv(self, permissions, rp_id):
            return True

    dev = fido2_device()
    rp = {"id": "example.com", "name": "Example"}
    server = Fido2Server(rp, attestation="direct")
    client = Fido2Client(dev, DefaultClientDataCollector("https://example.com"), user_interaction=Pin())
    user = {"id": os.urandom(16), "name": "bob", "displayName": "Bob"}
    opts, state = server.register_begin(user, resident_key_requirement="required", user_verification="required")
    reg = client.make_credential(opts.public_key)
    auth_data = server.register_complete(state, reg)
    cd = auth_data.credential_data
    assert cd.aaguid.hex() == AAGUID, cd.aaguid.hex()
    assert auth_data.is_user_verified() and not auth_data.flags & 0x18
    opts, state = server.authenticate_begin(user_verification="required")  # discoverable
    sel = client.get_assertion(opts.public_key)
    resp = sel.get_response(0)
    server.authenticate_complete(state, [cd], resp)
    assert resp.response.user_handle == user["id"]
    dev.close()
    return f"{dev.descriptor.product_name!r} registered + authenticated (UV=1, BE=0, BS=0) and verified"


@check("presence-denied", "python-fido2 Ctap2",
       "presence refused -> CTAP2_ERR_OPERATION_DENIED (authenticatorSelection)")
def t_presence_denied():
    from fido2.ctap import CtapError
    from fido2.ctap2 import Ctap2

    dev = fido2_device()
    presence("deny")
    try:
        Ctap2(dev).selection()
        raise AssertionError("selection succeeded although presence was refused")
    except CtapError as e:
        assert e.code == CtapError.ERR.OPERATION_DENIED, e
    finally:
        dev.close()
    assert presence_left() == [], "the daemon did not ask"
    return "CTAP2_ERR_OPERATION_DENIED"


@check("presence-timeout", "python-fido2 Ctap2",
       f"nobody answers -> CTAP2_ERR_USER_ACTION_TIMEOUT after {PRESENCE_TIMEOUT_MS} ms, UPNEEDED keepalives meanwhile")
def t_presence_timeout():
    from fido2.ctap import STATUS, CtapError
    from fido2.ctap2 import Ctap2

    dev = fido2_device()
    presence("wait")
    # python-fido2 calls on_keepalive only when the status changes: count the
    # KEEPALIVE reports (cmd 0xBB) on the connection itself.
    statuses = []
    conn = dev._connection
    read = conn.read_packet

    def counting_read():
        packet = read()
        if packet[4] == 0x80 | 0x3B:
            statuses.append(STATUS(packet[7]))
        return packet

    conn.read_packet = counting_read
    t0 = time.monotonic()
    try:
        Ctap2(dev).selection()
        raise AssertionError("selection succeeded although nobody answered")
    except CtapError as e:
        assert e.code == CtapError.ERR.USER_ACTION_TIMEOUT, e
    finally:
        dev.close()
    dt = time.monotonic() - t0
    ups = sum(1 for s in statuses if s == STATUS.UPNEEDED)
    assert ups >= 5, f"only {ups} UPNEEDED keepalives in {dt:.1f}s: {statuses}"
    assert dt >= PRESENCE_TIMEOUT_MS / 1000 - 0.5, dt
    return f"timeout after {dt:.1f}s with {ups} UPNEEDED keepalives"


@check("fido2-assert-denied", "libfido2 fido2-assert", "presence refused -> FIDO_ERR_OPERATION_DENIED at the client")
def t_assert_denied():
    presence("deny", "deny")
    param = WORK / "assert_param"
    rc, out, _ = run_pty(["fido2-assert", "-G", "-r", "-v", "-i", param, "-o", WORK / "denied", hidraw()])
    presence()
    assert rc != 0, "assertion succeeded although presence was refused"
    assert "FIDO_ERR_OPERATION_DENIED" in out, out
    return "fido2-assert: FIDO_ERR_OPERATION_DENIED"


@check("fido2-token-D-i", "libfido2 fido2-token",
       "-D -i deletes the resident credential: no longer listed (-L -k, -L -r), no longer signs (fido2-assert)")
def t_token_delete():
    rps = token_rps()
    assert RP in rps, f"{RP} not listed before the deletion: {rps}"
    rc, out, _ = run_pty(["fido2-token", "-D", "-i", STATE["cred_id"], hidraw()], timeout=60)
    assert rc == 0, f"exit {rc}: {out.strip()[-300:]}"
    rc, lines, out = token_creds(RP)
    assert not lines, f"still listed after -D: {lines}"
    after = token_rps()
    assert RP not in after, f"{RP} still listed after its only credential was deleted: {after}"
    assert SSH_APP in after, f"deleting one credential took {SSH_APP} with it: {after}"
    rc, out, _ = run_pty(["fido2-assert", "-G", "-r", "-v", "-i", WORK / "assert_param", "-o", WORK / "gone",
                          hidraw()])
    assert rc != 0, "the deleted credential still signs"
    assert "FIDO_ERR_NO_CREDENTIALS" in out, out.strip()[-300:]
    return f"deleted; -L -k {RP} lists nothing, -L -r lists {sorted(after)}; fido2-assert: FIDO_ERR_NO_CREDENTIALS"


@check("broker-restart", "broker", "the broker restarts (an upgrade): the device goes, the daemon connects again "
       "and the same key comes back (same serial, its owner's), usable by fido2-token")
def t_broker_restart():
    serial = dict(line.split("=", 1) for line in STATE["uevent"].split())["HID_UNIQ"]
    old = hidraw()
    b = STATE["broker"]
    b.terminate()
    b.wait(10)
    Path(BROKER_SOCK).unlink(missing_ok=True)
    for _ in range(100):
        if not os.path.exists(old):
            break
        time.sleep(0.05)
    assert not os.path.exists(old), f"{old} stayed after the broker stopped"
    t0 = time.monotonic()
    start_broker()
    node = None
    while time.monotonic() - t0 < 60 and node is None:
        for name in our_nodes():
            uevent = Path(f"/sys/class/hidraw/{name}/device/uevent").read_text()
            if f"HID_UNIQ={serial}" in uevent.split() and os.path.exists(f"/dev/{name}"):
                node = name
                STATE.update(hidraw=f"/dev/{name}", uevent=uevent, sysdir=Path(f"/sys/class/hidraw/{name}/device"))
        time.sleep(0.1)
    assert node, "the daemon did not bring its key back within 60 s"
    back = time.monotonic() - t0
    wait_owner(hidraw(), DAEMON_UID)
    assert os.stat(hidraw()).st_uid == DAEMON_UID, "the new node is not the owner's"
    assert f"aaguid: {AAGUID}" in token_info()
    assert STATE["daemon"].poll() is None, "the daemon exited"
    return f"{old} gone; {hidraw()} back after {back:.1f}s, serial {serial}"


@check("sigterm", "localpasskey", "SIGTERM removes the device (UHID_DESTROY) and the daemon exits 0")
def t_sigterm():
    d = STATE["daemon"]
    node = hidraw()
    d.send_signal(signal.SIGTERM)
    rc = d.wait(15)
    assert rc == 0, f"exit status {rc}"
    for _ in range(50):
        if not os.path.exists(node):
            break
        time.sleep(0.05)
    assert not os.path.exists(node), f"{node} still exists"
    log = (ARGS.out / "daemon.log").read_text()
    assert "security key removed" in log and "stopped cleanly" in log, log[-500:]
    return f"exit 0, {node} gone"


# The README's compatibility table (scripts/update-compat.py): each client
# family, the version that ran, and its checks.
FAMILIES = {"libfido2": "libfido2 (fido2-tools)", "OpenSSH": "OpenSSH", "python-fido2": "python-fido2"}


def client_versions() -> dict[str, str]:
    from importlib.metadata import version

    lib = run(["dpkg-query", "-W", "-f=${Version}", "libfido2-1"], check_rc=False).stdout.strip()
    ssh = run(["ssh", "-V"], check_rc=False).stderr.strip().split(",")[0]
    return {FAMILIES["libfido2"]: lib or "?", FAMILIES["OpenSSH"]: ssh or "?",
            FAMILIES["python-fido2"]: version("fido2")}


def write_compat() -> None:
    try:
        versions = client_versions()
    except Exception as e:  # noqa: BLE001 - the table is a by-product; say why it is missing
        say(f"guest: no compat.json ({type(e).__name__}: {e})")
        return
    results = []
    for status, name, detail in RESULTS:
        family = FAMILIES.get(CLIENT_OF.get(name, "").split(" ")[0])
        if family:
            results.append({"browser": family, "ceremony": name, "status": status, "detail": detail})
    compat = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "kernel": os.uname().release,
              "browsers": versions, "results": results}
    (ARGS.out / "compat.json").write_text(json.dumps(compat, indent=1) + "\n")


def main() -> int:
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.parse_args(namespace=ARGS)
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    say(f"guest: {os.uname().release}, python {sys.version.split()[0]}")
    try:
        start_udev()
        start_broker()
        start_swtpm(DAEMON_UID)
        start_daemon()
        say(f"guest: swtpm and daemon up in {time.monotonic() - t0:.1f}s; device {hidraw()}")
    except Exception as e:  # noqa: BLE001
        say(f"FAIL  setup: {e}")
        say("0 passed, 1 failed")
        return 1
    checks = [
        t_kernel_device, t_uhid_root_only, t_broker_second_device, t_broker_no_keyboard, t_broker_other_uid,
        t_hidraw_owner_only, t_udev_tags, t_doctor_ownership, t_token_list, t_token_info, t_token_set_pin, t_cli_pin_status,
        t_cred_make, t_cred_verify, t_assert_get, t_assert_verify,
        t_token_list_rps, t_token_list_creds,
        t_ssh_keygen, t_ssh_sign, t_ssh_keygen_rk, t_ssh_sign_rk, t_ssh_download,
        t_python_fido2, t_presence_denied, t_presence_timeout, t_assert_denied,
        t_token_delete, t_broker_restart, t_sigterm,
    ]
    for c in checks:
        c()
    for name in ("daemon", "swtpm", "broker", "udevd"):
        p = STATE.get(name)
        if p and p.poll() is None:
            p.kill()
    passed = sum(1 for s, _, _ in RESULTS if s == "PASS")
    failed = sum(1 for s, _, _ in RESULTS if s == "FAIL")
    with open(ARGS.out / "summary.txt", "w") as f:
        for s, n, d in RESULTS:
            f.write(f"{s}\t{n}\t{d}\n")
    write_compat()
    say(f"guest: checks took {time.monotonic() - t0:.1f}s")
    say(f"vm: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
