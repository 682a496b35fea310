"""The full-system test, inside the booted Debian 12 guest (tests/system/run.sh).

Runs as root from lpk-system-test.service at every boot of the guest; what
it does depends on the boot:

boot 1: alice is logged in on tty1 by agetty (a logind session on seat0).
    As alice, in a terminal: the README's install step, scripts/install.sh
    with the package built on the host (`--deb`), answering `yes` when
    tpm-protect asks. Then the machine reboots, as install.sh says to (alice
    was added to group tss).
boot 2: the service starts by itself at alice's login; its boot-to-ready
    time is measured. Then, as alice unless said otherwise: the broker's
    socket and the user service are active; the node is alice's alone;
    udevadm shows ID_FIDO_TOKEN and the snap tags; fido2-token -L/-I; a PIN
    set with fido2-token -S; python-fido2 registers and signs in (verified by
    fido2.server); headless Chromium, as alice, registers and signs in on
    the demo relying party (rp/, verified there by py_webauthn) with the
    PIN typed into our prompt; bob logs in on tty2 and becomes the active
    session, and cannot open the node (while the seat's uaccess devices do
    become his); alice cannot open /dev/uhid, and neither she nor bob gets
    a keyboard from the broker; `localpasskey doctor` says ok to
    everything; without the test's --allow-software-tpm the packaged
    service refuses this software TPM and says why, and doctor fails; the
    guest suspends to RAM (the host wakes it) and alice signs in again; it
    hibernates and powers off (the host starts swtpm and qemu again, a TPM
    Reset) and alice signs in again; `localpasskey uninstall` leaves only
    the passkeys (a reinstall signs in with them); `localpasskey uninstall
    --purge` leaves nothing.

Every check prints `[system] PASS|FAIL|BLOCKED name (secs): what -- detail`
on the console (the host's record: it survives a guest whose shares broke)
and in /mnt/out/guest.log. A check whose precondition is missing fails; only
what this VM cannot do at all is BLOCKED, with the reason.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pty
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

SRC = Path("/mnt/src")  # the host's checkout, read-only
STATE_DIR = Path("/var/lib/lpk-system")  # on the guest's disk: survives the reboot
LOCAL = STATE_DIR / "in"  # local copies of the run's inputs (9p may not survive a suspend)
PHASE = STATE_DIR / "phase"
USER, OTHER = "alice", "bob"
PIN = "482613"
BROKER_SOCK = "/run/localpasskey/broker.sock"
AAGUID = "cb8a205c984c4e7e98eb5800f04355ef"

ARGS = argparse.Namespace()
T0 = time.monotonic()


class Blocked(Exception):
    """This VM cannot run the check at all (not: its precondition failed)."""


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


SHARES = {"up": True}  # the host's 9p shares; unplugged around the suspend


def say(line: str) -> None:
    line = f"[system] {line}"
    print(line, flush=True)
    if not SHARES["up"]:
        return
    try:
        with open(ARGS.out / "guest.log", "a") as f:
            f.write(line + "\n")
    except OSError:
        pass  # the console has it


def check(name: str, what: str):
    """Run now; record PASS, FAIL (any exception) or BLOCKED (Blocked)."""

    def wrap(fn):
        t = time.monotonic()
        try:
            detail, status = fn() or "", "PASS"
        except Blocked as e:
            detail, status = str(e), "BLOCKED"
        except Exception as e:  # noqa: BLE001 - a check's failure is its result
            detail, status = f"{type(e).__name__}: {e}", "FAIL"
            for line in traceback.format_exc().splitlines():
                say(f"  | {line}")
        detail = " ".join(str(detail).split())[:900]
        say(f"{status} {name} ({time.monotonic() - t:.1f}s): {what}" + (f" -- {detail}" if detail else ""))
        return fn

    return wrap


# ------------------------------------------------------------------ helpers


def run(argv, check_rc=True, timeout=120, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kw)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode}: {(p.stdout + p.stderr).strip()[-600:]}")
    return p


def user_env(name: str) -> dict:
    pw = pwd.getpwnam(name)
    return {
        "HOME": pw.pw_dir, "USER": name, "LOGNAME": name, "SHELL": pw.pw_shell, "LANG": "C.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin", "TERM": "dumb",
        "XDG_RUNTIME_DIR": f"/run/user/{pw.pw_uid}",
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path=/run/user/{pw.pw_uid}/bus",
        "PYTHONPATH": str(LOCAL / "py"), "LPK_PERSON_PIN_FILE": f"{pw.pw_dir}/.person-pin",
    }


def creds(name: str) -> dict:
    """subprocess arguments: run as `name` with the groups /etc/group gives it now."""
    pw = pwd.getpwnam(name)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": os.getgrouplist(name, pw.pw_gid),
            "cwd": pw.pw_dir, "env": user_env(name)}


def as_user(name: str, argv, **kw) -> subprocess.CompletedProcess:
    return run(argv, **creds(name), **kw)


def pty_as(name: str, argv, answers: list[tuple[str, str]], timeout: float = 300) -> tuple[int, str]:
    """Run as `name` on a pseudo-terminal of its own (a terminal window):
    whenever the output shows answers[i]'s pattern, type its text."""
    c = creds(name)
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.setgroups(c["extra_groups"])
            os.setgid(c["group"])
            os.setuid(c["user"])
            os.chdir(c["cwd"])
            os.execvpe(str(argv[0]), [str(a) for a in argv], c["env"])
        finally:
            os._exit(127)
    out, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"{argv[0]} did not finish in {timeout}s: {out.decode(errors='replace')[-600:]}")
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if pending and re.search(pending[0][0].encode(), out):
                os.write(fd, pending.pop(0)[1].encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def props(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def sessions() -> list[dict]:
    out = run(["loginctl", "list-sessions", "--no-legend"]).stdout
    return [props(run(["loginctl", "show-session", line.split()[0]]).stdout) for line in out.splitlines() if line.strip()]


def wait_session(name: str, tty: str, seconds: float = 180) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for s in sessions():
            if s.get("Name") == name and s.get("TTY") == tty and s.get("State") in ("active", "online"):
                return s
        time.sleep(0.5)
    raise RuntimeError(f"no logind session of {name} on {tty} after {seconds}s: {sessions()}")


def our_nodes() -> list[Path]:
    found = []
    for d in sorted(Path("/sys/class/hidraw").glob("hidraw*")) if Path("/sys/class/hidraw").exists() else []:
        if "HID_NAME=LocalPasskey" in (d / "device/uevent").read_text():
            found.append(Path("/dev") / d.name)
    return found


def the_node() -> Path:
    nodes = our_nodes()
    if len(nodes) != 1:
        raise RuntimeError(f"expected one LocalPasskey node, found {nodes}")
    return nodes[0]


OPEN_CODE = """
import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_RDWR))
    print("OPENED")
except PermissionError:
    print("DENIED")
"""


def try_open(name: str, path) -> str:
    return as_user(name, ["/usr/bin/python3", "-c", OPEN_CODE, path]).stdout.strip()


def has_acl(path) -> bool:
    try:
        os.getxattr(path, "system.posix_acl_access")
        return True
    except OSError:
        return False


def pin_file(name: str) -> None:
    """What the person knows: their PIN (0600 in their home)."""
    pw = pwd.getpwnam(name)
    p = Path(pw.pw_dir) / ".person-pin"
    p.write_text(PIN + "\n")
    os.chown(p, pw.pw_uid, pw.pw_gid)
    os.chmod(p, 0o600)


def person_asked() -> list[str]:
    """What the person was asked so far (person-pinentry's log)."""
    p = Path(pwd.getpwnam(USER).pw_dir) / "person.log"
    return p.read_text().splitlines() if p.exists() else []


def fido2(action: str, timeout: float = 240) -> dict:
    """python-fido2 as alice; the person must have been asked by our service."""
    cred = Path(pwd.getpwnam(USER).pw_dir) / "passkey.json"
    before = len(person_asked())
    p = as_user(USER, ["/usr/bin/python3", LOCAL / "fido2_client.py", action, cred], timeout=timeout)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    asked = [line.split()[1] for line in person_asked()[before:]]
    assert asked, f"the service never asked the person (person.log), yet {action} answered {out}"
    out["person"] = asked
    return out


def user_service(prop: str = "ActiveState") -> str:
    return as_user(USER, ["systemctl", "--user", "show", "-p", prop, "--value", "localpasskey.service"],
                   check_rc=False).stdout.strip()


def package_state() -> str:
    p = run(["dpkg-query", "-W", "-f=${Status}", "localpasskey"], check_rc=False)
    return p.stdout.strip() if p.returncode == 0 else "not known to dpkg"


# ------------------------------------------------------------------ boot 1


def boot1() -> None:
    # mmdebstrap leaves its own dpkg options (no documentation, unsafe I/O)
    # in the image: the package under test is installed without them.
    Path("/etc/dpkg/dpkg.cfg.d/99mmdebstrap").unlink(missing_ok=True)
    # The inputs, copied to the guest's own disk.
    shutil.rmtree(LOCAL, ignore_errors=True)
    # (Not the relying party's Python packages: the site runs while the
    # shares are up, from the share.)
    shutil.copytree(ARGS.out / "in", LOCAL, ignore=lambda d, names: ["rp-py"] if d == str(ARGS.out / "in") else [])
    for f in ("fido2_client.py", "person-pinentry"):
        shutil.copy(SRC / "tests/system" / f, LOCAL / f)
    os.chmod(LOCAL / "person-pinentry", 0o755)
    # Readable by the users (the package, their python-fido2, the person).
    for d, _, files in os.walk(LOCAL):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), os.stat(os.path.join(d, f)).st_mode | 0o444)

    @check("login-session-tty1", "agetty logged alice in on tty1: a logind tty session on seat0, active, local")
    def _():
        s = wait_session(USER, "tty1")
        want = {"Seat": "seat0", "VTNr": "1", "Type": "tty", "Class": "user", "Active": "yes", "Remote": "no"}
        bad = {k: s.get(k) for k, v in want.items() if s.get(k) != v}
        assert not bad, f"session {s.get('Id')}: {bad}"
        return f"session {s['Id']} seat0 tty1 active"

    @check("install", "as alice, in a terminal: scripts/install.sh --deb (apt installs the package, adds her to tss, "
           "tpm-protect asks and she types yes)")
    def _():
        assert package_state() == "not known to dpkg", f"localpasskey already there: {package_state()}"
        rc, out = pty_as(USER, [SRC / "scripts/install.sh", "--deb", LOCAL / "localpasskey.deb"],
                         [(r"Type `yes` to go ahead: ", "yes")], timeout=600)
        (ARGS.out / "install.txt").write_text(out)
        assert rc == 0, f"install.sh exited {rc}: {out[-800:]}"
        assert package_state() == "install ok installed", package_state()
        assert "Done: lockout authorisation set" in out, f"tpm-protect did not run: {out[-800:]}"
        groups = [g.gr_name for g in grp.getgrall() if USER in g.gr_mem]
        assert "tss" in groups, f"alice's groups: {groups}"
        return "package installed, lockout authorisation taken, alice in tss (install.txt)"

    # The person behind the screen: without a display the service asks
    # through pinentry; this one is the test's (PINENTRY_PROGRAM for alice's
    # service only, in her own systemd configuration).
    pw = pwd.getpwnam(USER)
    dropin = Path(pw.pw_dir) / ".config/systemd/user/localpasskey.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    # The VM's TPM is swtpm behind qemu's tpm-tis, and the daemon rightly
    # refuses a software TPM for the real USB key: the packaged command line,
    # plus --allow-software-tpm, is the only other change to the service.
    unit = Path("/usr/lib/systemd/user/localpasskey.service")
    execstart = next((x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")), None) \
        if unit.exists() else None
    (dropin / "software-tpm.conf").write_text(
        f"[Service]\nExecStart=\n{execstart} --allow-software-tpm\n" if execstart else "")
    (dropin / "person.conf").write_text(
        "[Service]\n"
        f"Environment=PINENTRY_PROGRAM={LOCAL / 'person-pinentry'}\n"
        f"Environment=LPK_PERSON_PIN_FILE={pw.pw_dir}/.person-pin\n"
        f"Environment=LPK_PERSON_LOG={pw.pw_dir}/person.log\n")
    for p in [Path(pw.pw_dir) / ".config", *Path(pw.pw_dir, ".config").rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid)
    pin_file(USER)
    PHASE.write_text("2")
    say("boot 1 done: rebooting")


# ------------------------------------------------------------------ boot 2


class ReadyWatch(threading.Thread):
    """Notes the uptime at which alice's security key is up: our node
    exists and belongs to her (udev has applied the rule)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.at = None

    def run(self):
        uid = pwd.getpwnam(USER).pw_uid
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            for n in our_nodes():
                try:
                    if os.stat(n).st_uid == uid:
                        self.at = uptime()
                        return
                except FileNotFoundError:
                    pass
            time.sleep(0.05)


def journal_ready_us() -> int | None:
    """The monotonic time (µs) of the daemon's 'security key created' line."""
    out = run(["journalctl", "-b", "-o", "json", "_SYSTEMD_USER_UNIT=localpasskey.service",
               f"_UID={pwd.getpwnam(USER).pw_uid}"], check_rc=False).stdout
    for line in out.splitlines():
        e = json.loads(line)
        if "security key created through the broker" in str(e.get("MESSAGE", "")):
            return int(e["__MONOTONIC_TIMESTAMP"])
    return None


def boot2(watch: ReadyWatch) -> None:
    uid = pwd.getpwnam(USER).pw_uid
    other_uid = pwd.getpwnam(OTHER).pw_uid

    @check("login-session-tty1-after-reboot", "after the reboot alice is logged in on tty1 again (seat0, active)")
    def _():
        s = wait_session(USER, "tty1")
        assert s.get("Seat") == "seat0" and s.get("Active") == "yes", s
        return f"session {s['Id']}"

    @check("boot-to-ready", "the service starts by itself at login after the reboot: the key is up (node owned "
           "by alice) within 30 s of her login (the figures from kernel start are written down)")
    def _():
        watch.join(200)
        assert watch.at is not None, f"no LocalPasskey node of alice's appeared; nodes {our_nodes()}"
        m = props(run(["systemctl", "show", "-p", "UserspaceTimestampMonotonic", "-p", "FinishTimestampMonotonic"]).stdout)
        s = wait_session(USER, "tty1")
        svc = props(as_user(USER, ["systemctl", "--user", "show", "localpasskey.service", "-p",
                                   "InactiveExitTimestampMonotonic", "-p", "ExecMainStartTimestampMonotonic"]).stdout)
        j = journal_ready_us()
        sec = lambda us: f"{int(us) / 1e6:.1f}"  # noqa: E731
        figures = {
            "userspace (systemd) started": sec(m.get("UserspaceTimestampMonotonic", 0)),
            "boot finished (systemd)": sec(m.get("FinishTimestampMonotonic", 0)),
            "alice's session opened": sec(s.get("TimestampMonotonic", 0)),
            "service started (ExecStartPre)": sec(svc.get("InactiveExitTimestampMonotonic", 0)),
            "daemon started (ExecStart)": sec(svc.get("ExecMainStartTimestampMonotonic", 0)),
            "daemon logged 'security key created'": sec(j) if j else "?",
            "node alice's (udev done)": f"{watch.at:.1f}",
        }
        (ARGS.out / "boot-to-ready.json").write_text(json.dumps(figures, indent=1))
        login = int(s.get("TimestampMonotonic", 0)) / 1e6
        assert login and watch.at - login < 30, f"ready {watch.at - login:.1f}s after the login"
        return "; ".join(f"{k} {v}s" for k, v in figures.items())

    # The site and alice's browser start now, while the checks below run:
    # under TCG Chromium needs a minute or more before its first page.
    early = start_site_and_browser()

    @check("broker-socket-active", "localpasskey-broker.socket is enabled and active; the socket is root's, mode 0666")
    def _():
        active = run(["systemctl", "is-active", "localpasskey-broker.socket"], check_rc=False).stdout.strip()
        enabled = run(["systemctl", "is-enabled", "localpasskey-broker.socket"], check_rc=False).stdout.strip()
        assert (active, enabled) == ("active", "enabled"), f"socket {active}, {enabled}"
        st = os.stat(BROKER_SOCK)
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o666, f"uid {st.st_uid} mode {st.st_mode & 0o777:o}"
        broker = run(["systemctl", "is-active", "localpasskey-broker.service"], check_rc=False).stdout.strip()
        return f"socket active, enabled; broker service {broker}"

    @check("user-service-active", "as alice: localpasskey.service is enabled (for every user) and active, "
           "running as alice with group tss")
    def _():
        state = (user_service("ActiveState"), user_service("UnitFileState"))
        assert state == ("active", "enabled"), f"localpasskey.service {state}: " + \
            as_user(USER, ["systemctl", "--user", "status", "localpasskey.service"], check_rc=False).stdout[-600:]
        pid = int(user_service("MainPID"))
        status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(rf"^Uid:\s+{uid}\s", status, re.M), status
        tss = grp.getgrnam("tss").gr_gid
        groups = re.search(r"^Groups:(.*)$", status, re.M).group(1).split()
        assert str(tss) in groups, f"daemon groups {groups}, tss is {tss}"
        return f"pid {pid}"

    @check("node-owned-by-alice", "the key's hidraw node: owner alice, group root, mode 0600, no ACL, HID_PHYS "
           "her uid; alice can open it")
    def _():
        node = the_node()
        st = os.stat(node)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (uid, 0, 0o600), \
            f"{node} uid {st.st_uid} gid {st.st_gid} mode {st.st_mode & 0o777:o}"
        assert not has_acl(node), f"{node} has an ACL: {run(['getfacl', '-p', node]).stdout}"
        u = props((Path('/sys/class/hidraw') / node.name / 'device/uevent').read_text())
        assert u.get("HID_PHYS") == str(uid), u
        assert try_open(USER, node) == "OPENED", "alice cannot open her own key"
        return f"{node} {uid}:0 0600"

    @check("udevadm-info", "udevadm info: ID_FIDO_TOKEN=1, ID_SECURITY_TOKEN=1, tags snap_firefox_firefox and "
           "snap_chromium_chromium, no uaccess")
    def _():
        p = props(run(["udevadm", "info", "--query=property", the_node()]).stdout)
        assert p.get("ID_FIDO_TOKEN") == "1" and p.get("ID_SECURITY_TOKEN") == "1", p
        # CURRENT_TAGS are the tags of the device now, which logind and
        # snapd act on; TAGS also keeps every tag some rule once added
        # (70-uaccess.rules adds uaccess before our rule takes it away).
        tags = set(p.get("CURRENT_TAGS", "").strip(":").split(":"))
        assert {"snap_firefox_firefox", "snap_chromium_chromium"} <= tags, f"CURRENT_TAGS {tags}"
        assert "uaccess" not in tags, f"CURRENT_TAGS {tags}"
        return f"CURRENT_TAGS {p.get('CURRENT_TAGS')}; TAGS {p.get('TAGS')}"

    @check("fido2-token-L", "as alice: fido2-token -L lists the key (1209:0001)")
    def _():
        out = as_user(USER, ["fido2-token", "-L"]).stdout
        line = next((x for x in out.splitlines() if x.startswith(f"{the_node()}:")), None)
        assert line and "vendor=0x1209" in line and "product=0x0001" in line, out
        return line

    @check("fido2-token-I", "as alice: fido2-token -I shows our AAGUID, FIDO_2_1 and clientPin unset")
    def _():
        info = as_user(USER, ["fido2-token", "-I", the_node()]).stdout
        (ARGS.out / "fido2-token-I.txt").write_text(info)
        assert f"aaguid: {AAGUID}" in info and "FIDO_2_1" in info, info
        assert re.search(r"noclientPin", info), "a PIN is already set"
        return re.search(r"^options: (.*)$", info, re.M).group(1)

    @check("fido2-token-S", "as alice, in a terminal: fido2-token -S sets the PIN (the TPM's lockout "
           "authorisation was taken at install, else the daemon refuses)")
    def _():
        rc, out = pty_as(USER, ["fido2-token", "-S", the_node()],
                         [(r"Enter new PIN[^:]*: ?", PIN), (r"Enter the same PIN[^:]*: ?|again[^:]*: ?", PIN)],
                         timeout=180)
        assert rc == 0, f"fido2-token -S exited {rc}: {out[-400:]}"
        info = as_user(USER, ["fido2-token", "-I", the_node()]).stdout
        assert re.search(r"(^|, )clientPin(,|$)", re.search(r"^options: (.*)$", info, re.M).group(1)), info
        return "clientPin set"

    @check("python-fido2-register", "as alice: python-fido2 registers a resident passkey with UV, verified by "
           "fido2.server (UV=1, BE=0, BS=0, our AAGUID); the person was asked")
    def _():
        r = fido2("register")
        return json.dumps(r)

    @check("python-fido2-sign-in", "as alice: python-fido2 signs in with it (discoverable, UV), verified")
    def _():
        return json.dumps(fido2("sign-in"))

    chromium_checks(early)

    # ---- another user takes the seat
    @check("other-user-active-cannot-open", "bob logs in on tty2 and becomes the active session (chvt 2): the "
           "seat's uaccess devices become his, alice's key does not (no ACL, open refused)")
    def _():
        node = the_node()
        run(["systemctl", "start", "getty@tty2.service"])
        bob = wait_session(OTHER, "tty2")
        run(["chvt", "2"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = {s.get("Name"): s.get("Active") for s in sessions()}
            if now.get(OTHER) == "yes" and now.get(USER) == "no":
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"bob's session never became the active one: {now}")
        time.sleep(1)  # logind applies the seat's ACLs right after the switch
        # The control: a device the seat hands to its active user (DRM card).
        cards = sorted(Path("/dev/dri").glob("card*")) if Path("/dev/dri").exists() else []
        if not cards:
            raise AssertionError("no /dev/dri/card* in the guest: nothing shows that uaccess follows the seat")
        acl = run(["getfacl", "-p", cards[0]]).stdout
        assert f"user:{OTHER}:" in acl, f"bob is active but has no ACL on {cards[0]}: {acl}"
        got = try_open(OTHER, node)
        assert got == "DENIED", f"bob opening alice's key: {got}"
        assert not has_acl(node), run(["getfacl", "-p", node]).stdout
        st = os.stat(node)
        assert st.st_uid == uid and st.st_mode & 0o777 == 0o600, f"uid {st.st_uid} mode {st.st_mode:o}"
        run(["chvt", "1"])
        return f"session {bob['Id']} active; {cards[0]} has bob's ACL; {node}: DENIED, no ACL"

    @check("uhid-not-for-users", "/dev/uhid is root's (0600, no ACL): alice and bob cannot open it")
    def _():
        st = os.stat("/dev/uhid")
        assert st.st_uid == 0 and st.st_mode & 0o077 == 0 and not has_acl("/dev/uhid"), \
            f"/dev/uhid uid {st.st_uid} mode {st.st_mode & 0o777:o} acl {has_acl('/dev/uhid')}"
        got = {u: try_open(u, "/dev/uhid") for u in (USER, OTHER)}
        assert set(got.values()) == {"DENIED"}, got
        return str(got)

    @check("broker-no-keyboard", "alice and bob each send the broker a keyboard's UHID_CREATE2: refused (alice: "
           "Busy, her key exists; bob: BadHello), no hidraw or input device appears")
    def _():
        hid, inp = set(os.listdir("/sys/class/hidraw")), set(os.listdir("/sys/class/input"))
        got = {u: as_user(u, ["/usr/bin/python3", "-c", BROKER_CODE, BROKER_SOCK]).stdout.strip() for u in (USER, OTHER)}
        time.sleep(1)
        assert got == {USER: "2", OTHER: "1"}, f"broker answers {got} (want Busy=2 for alice, BadHello=1 for bob)"
        assert set(os.listdir("/sys/class/hidraw")) == hid, "a HID device appeared"
        assert set(os.listdir("/sys/class/input")) == inp, "an input device appeared"
        return str(got)

    @check("doctor-all-ok", "as alice: `localpasskey doctor` exits 0 and every check is ok, but the one WARN "
           "this VM must get: its TPM is a software TPM")
    def _():
        p = as_user(USER, ["localpasskey", "doctor"], check_rc=False, timeout=180)
        (ARGS.out / "doctor.txt").write_text(p.stdout + p.stderr)
        lines = [x.strip() for x in p.stdout.splitlines()]
        bad = [x for x in lines if re.match(r"(FAIL|WARN)\s", x)]
        swtpm = [x for x in bad if x.startswith("WARN") and "SOFTWARE TPM (swtpm)" in x]
        bad = [x for x in bad if x not in swtpm]
        assert p.returncode == 0 and not bad, f"exit {p.returncode}; {bad or p.stderr[-400:]}"
        assert swtpm, "doctor did not say that the VM's TPM is a software TPM"
        oks = sum(1 for x in lines if re.match(r"ok\s", x))
        assert oks >= 10, f"only {oks} ok lines: {p.stdout[-800:]}"
        return f"{oks} ok, no FAIL, only the software-TPM WARN (doctor.txt)"

    @check("software-tpm-refused", "without the test's --allow-software-tpm the installed service refuses this "
           "VM's TPM (swtpm behind tpm-tis): it does not start (`systemctl --user status`: exit code 1), makes no "
           "key, and says why in her journal; doctor fails and says so; with the flag back it runs again")
    def _():
        dropin = Path(pwd.getpwnam(USER).pw_dir) / ".config/systemd/user/localpasskey.service.d/software-tpm.conf"
        kept = dropin.read_text()
        cursor = run(["journalctl", "--show-cursor", "-n", "0", "-q"]).stdout.strip().split("cursor: ")[-1]
        dropin.unlink()
        try:
            as_user(USER, ["systemctl", "--user", "daemon-reload"])
            execstart = user_service("ExecStart")
            assert "--allow-software-tpm" not in execstart, execstart
            as_user(USER, ["systemctl", "--user", "restart", "--no-block", "localpasskey.service"])
            refusal = None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not refusal:
                j = run(["journalctl", f"--after-cursor={cursor}", "-o", "cat", f"_UID={pwd.getpwnam(USER).pw_uid}",
                         "_SYSTEMD_USER_UNIT=localpasskey.service"], check_rc=False).stdout
                refusal = next((x for x in j.splitlines() if "is a software TPM" in x), None)
                time.sleep(0.5)
            assert refusal, f"the daemon never said it refuses the software TPM: {j[-600:]}"
            time.sleep(1)
            state = (user_service("ActiveState"), user_service("SubState"))
            assert state[0] != "active", f"the service is {state} on a software TPM"
            assert not our_nodes(), f"a key is up: {our_nodes()}"
            st = as_user(USER, ["systemctl", "--user", "status", "--no-pager", "-l", "-n", "20",
                                "localpasskey.service"], check_rc=False)
            jr = as_user(USER, ["journalctl", "--user", "-u", "localpasskey.service", "-n", "30", "--no-pager"],
                         check_rc=False)
            (ARGS.out / "software-tpm-status.txt").write_text(
                f"$ systemctl --user status localpasskey.service\n{st.stdout}{st.stderr}\n"
                f"$ journalctl --user -u localpasskey.service\n{jr.stdout}{jr.stderr}")
            assert "status=1/FAILURE" in st.stdout, st.stdout[-800:]
            assert "is a software TPM" in jr.stdout and "--allow-software-tpm" in jr.stdout, \
                f"alice's own journal does not say why: {(jr.stdout + jr.stderr)[-800:]}"
            in_status = "is a software TPM" in st.stdout
            p = as_user(USER, ["localpasskey", "doctor"], check_rc=False, timeout=180)
            (ARGS.out / "software-tpm-doctor.txt").write_text(p.stdout + p.stderr)
            said = [x.strip() for x in p.stdout.splitlines() if x.strip().startswith("FAIL")]
            assert p.returncode != 0, f"doctor exited 0 with the service refusing: {p.stdout[-600:]}"
            assert any("refuses this SOFTWARE TPM" in x for x in said), f"doctor's FAILs: {said}"
        finally:
            dropin.write_text(kept)
            as_user(USER, ["systemctl", "--user", "daemon-reload"])
            as_user(USER, ["systemctl", "--user", "reset-failed", "localpasskey.service"], check_rc=False)
            as_user(USER, ["systemctl", "--user", "restart", "localpasskey.service"], timeout=180)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (our_nodes() and user_service() == "active"):
                time.sleep(0.3)
        assert user_service() == "active" and our_nodes(), f"not back: {user_service()}, {our_nodes()}"
        return f"{state[0]}/{state[1]}; her journal (journalctl --user) says: {refusal[:200]}" + \
            ("" if in_status else " (systemctl --user status shows the exit code, not the line)") + f"; doctor: {said}"

    @check("suspend-resume-sign-in", "the guest suspends to RAM (echo mem > /sys/power/state; the host wakes it "
           "with system_wakeup); afterwards the key is still alice's and she signs in")
    def _():
        states = Path("/sys/power/state").read_text().split()
        mem_sleep = Path("/sys/power/mem_sleep").read_text().split() if Path("/sys/power/mem_sleep").exists() else []
        if "mem" not in states or not {"deep", "[deep]"} & set(mem_sleep):
            raise Blocked(f"this VM offers no suspend to RAM (state: {states}, mem_sleep: {mem_sleep})")
        # ACPI S3 ("deep"), which qemu reports and wakes; s2idle never leaves the guest.
        Path("/sys/power/mem_sleep").write_text("deep")
        node_before = the_node()
        unplug_shares()
        try:
            t = time.time()
            Path("/sys/power/state").write_text("mem")  # returns after the wake-up
            slept = time.time() - t
        finally:
            plug_shares()
        dmesg = run(["dmesg"]).stdout
        assert "PM: suspend exit" in dmesg, "the kernel did not log a suspend"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (our_nodes() and user_service() == "active"):
            time.sleep(0.5)
        assert user_service() == "active", f"service {user_service()} after resume"
        r = fido2("sign-in")
        return f"slept {slept:.1f}s; {node_before} -> {the_node()}; {json.dumps(r)}"

    @check("hibernate-resume-sign-in", "the guest hibernates (swap on the disk the host gives it, resume= on the "
           "kernel command line, echo disk > /sys/power/state) and powers off; the host starts a fresh swtpm on the "
           "same state and qemu on the same disks, the firmware starts the TPM clear (a TPM reset, as a laptop's "
           "firmware does at resume), the kernel restores the image; the daemon rebuilds its TPM objects and alice "
           "signs in")
    def _():
        states = Path("/sys/power/state").read_text().split()
        modes = Path("/sys/power/disk").read_text().split() if Path("/sys/power/disk").exists() else []
        if "disk" not in states or not {"shutdown", "[shutdown]"} & set(modes):
            raise Blocked(f"this kernel offers no hibernation (state: {states}, disk: {modes})")
        swap = Path("/dev/disk/by-id/virtio-lpk-swap")
        assert swap.exists(), "run.sh gave the guest no swap disk (serial lpk-swap)"
        cmdline = Path("/proc/cmdline").read_text()
        assert "resume=/dev/vdb" in cmdline and swap.resolve() == Path("/dev/vdb"), \
            f"the resume device is not the swap disk: {cmdline}; {swap} -> {swap.resolve()}"
        run(["swapon", swap])  # the host made it a swap area
        Path("/sys/power/disk").write_text("shutdown")
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        node_before = the_node()
        cursor = run(["journalctl", "--show-cursor", "-n", "0", "-q"]).stdout.strip().split("cursor: ")[-1]
        unplug_shares()
        try:
            run(["sync"])
            say("hibernating: power off")  # run.sh starts qemu again when it reads this on the console
            t = time.time()
            Path("/sys/power/state").write_text("disk")  # returns in the restored system
            slept = time.time() - t
        finally:
            plug_shares()
        run(["swapoff", swap], check_rc=False)
        assert Path("/proc/sys/kernel/random/boot_id").read_text().strip() == boot_id, \
            "a new boot id: the machine booted afresh instead of resuming"
        restarts = (ARGS.out / "qemu-restarts").read_text().strip() if (ARGS.out / "qemu-restarts").exists() else "0"
        assert restarts == "1", f"the host says qemu was started again {restarts} times (want 1: powered off)"
        pm = [x.split("] ", 1)[-1] for x in run(["dmesg"]).stdout.splitlines() if "PM: " in x and "hibernat" in x]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (our_nodes() and user_service() == "active"):
            time.sleep(0.5)
        assert user_service() == "active", f"service {user_service()} after the resume"
        r = fido2("sign-in")
        j = run(["journalctl", f"--after-cursor={cursor}", "-o", "cat", f"_UID={uid}",
                 "_SYSTEMD_USER_UNIT=localpasskey.service"], check_rc=False).stdout
        (ARGS.out / "hibernate-daemon.log").write_text(j)
        assert "re-created after the TPM reset" in j, f"the daemon never saw the TPM reset: {j[-600:]}"
        return f"away {slept:.0f}s, same boot {boot_id[:8]}; {node_before} -> {the_node()}; daemon: TPM objects " \
               f"re-created after the reset; {json.dumps(r)}; kernel: {pm[-3:]}"

    # ---- uninstall, reinstall, purge
    @check("uninstall-keeps-passkeys", "as alice: `localpasskey uninstall` removes the package, units, rules and "
           "the key; her passkeys stay")
    def _():
        data = Path(pwd.getpwnam(USER).pw_dir) / ".local/share/localpasskey"
        assert data.is_dir() and any(data.iterdir()), f"no passkeys at {data} before uninstall"
        p = as_user(USER, ["localpasskey", "uninstall"], check_rc=False, timeout=300)
        (ARGS.out / "uninstall.txt").write_text(p.stdout + p.stderr)
        assert p.returncode == 0, f"exit {p.returncode}: {(p.stdout + p.stderr)[-600:]}"
        left = leftovers()
        assert not left, f"left behind: {left}"
        assert data.is_dir() and any(data.iterdir()), f"{data} is gone"
        return f"package {package_state()!r}; {data} kept"

    @check("reinstall-signs-in", "apt installs the package again; alice's service starts and signs in with the "
           "passkey made before the uninstall")
    def _():
        as_user(USER, ["sudo", "apt-get", "install", "-y", LOCAL / "localpasskey.deb"], timeout=300)
        as_user(USER, ["systemctl", "--user", "daemon-reload"])
        as_user(USER, ["systemctl", "--user", "start", "localpasskey.service"], timeout=180)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not our_nodes():
            time.sleep(0.3)
        return json.dumps(fido2("sign-in"))

    @check("purge-removes-everything", "as alice, in a terminal: `localpasskey uninstall --purge`, typing "
           "`delete`: the package is purged and the passkeys are gone too")
    def _():
        data = Path(pwd.getpwnam(USER).pw_dir) / ".local/share/localpasskey"
        rc, out = pty_as(USER, ["localpasskey", "uninstall", "--purge"], [(r"Type 'delete': ", "delete")])
        (ARGS.out / "purge.txt").write_text(out)
        assert rc == 0, f"exit {rc}: {out[-600:]}"
        assert not data.exists(), f"{data} still exists"
        left = leftovers()
        assert not left, f"left behind: {left}"
        assert package_state() in ("not known to dpkg", "unknown ok not-installed"), package_state()
        return f"package {package_state()!r}; {data} gone"


RP_PORT = 8080
RP_ORIGIN = f"http://localhost:{RP_PORT}"


def devtools_module():
    sys.path.append(str(LOCAL / "py"))  # websocket-client (host's .venv)
    sys.path.insert(0, str(SRC / "tests/vm"))
    import devtools  # the browser suite's DevTools driver

    return devtools


def start_site_and_browser() -> dict:
    """The demo relying party (rp/, as root: it is the web site) and alice's
    headless Chromium with a fresh profile in her home, started and not
    waited for."""
    devtools = devtools_module()
    st: dict = {"t0": time.monotonic()}
    out = ARGS.out / "chromium"
    out.mkdir(exist_ok=True)
    try:
        db = STATE_DIR / "rp-credentials.json"
        db.unlink(missing_ok=True)
        st["rp"] = subprocess.Popen(
            ["/usr/bin/python3", "-B", "-m", "lprp", "--port", str(RP_PORT), "--db", db],
            cwd=SRC / "rp", env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ARGS.out / "in/rp-py"), "LANG": "C.UTF-8"},
            stdout=open(out / "rp.log", "wb"), stderr=subprocess.STDOUT)
        profile = Path(pwd.getpwnam(USER).pw_dir) / ".cache/lpk-chromium-profile"
        shutil.rmtree(profile, ignore_errors=True)
        c = creds(USER)
        st["proc"] = devtools.launch_chromium(profile, out / "chromium.log", user=c["user"], group=c["group"],
                                              extra_groups=c["extra_groups"], cwd=c["cwd"], env=c["env"])
    except Exception as e:  # noqa: BLE001 - chromium-start reports it
        st["error"] = f"{type(e).__name__}: {e}"
    return st


def chromium_checks(st: dict) -> None:
    """Headless Chromium as alice, on her own key through the broker and her
    hidraw node, against the demo relying party (rp/, py_webauthn verifies
    on the server). One browser start for both ceremonies."""
    devtools = devtools_module()
    pw = pwd.getpwnam(USER)
    out = ARGS.out / "chromium"

    def rp_state() -> dict:
        return devtools.http_json(f"http://127.0.0.1:{RP_PORT}/api/state")

    def asked_since(before: int) -> list[str]:
        return [line.split()[1] for line in person_asked()[before:]]

    @check("chromium-start", "the demo relying party (rp/, py_webauthn) on http://localhost:8080; as alice, "
           "headless Chromium (Debian's chromium) with a fresh profile in her home opens its page")
    def _():
        assert "error" not in st, st.get("error")
        waited = time.monotonic()
        devtools.wait_for("the demo relying party", rp_state, 120)
        rp_s = time.monotonic() - st["t0"]
        st["cdp"], version = devtools.open_page(st["proc"], out / "chromium.log", out / "screenshots", RP_ORIGIN)
        uid = int(Path(f"/proc/{st['proc'].pid}/status").read_text().split("\nUid:")[1].split()[0])
        assert uid == pw.pw_uid, f"Chromium runs as uid {uid}"
        st["cdp"].screenshot("chromium-page")
        return f"{version}; rp answering {rp_s:.1f}s and the page ready {time.monotonic() - st['t0']:.1f}s after " \
               f"both were started ({time.monotonic() - waited:.1f}s of it waited for here)"

    @check("chromium-register", "as alice: Chromium registers a passkey on the demo site (navigator.credentials."
           "create over her hidraw node); the person typed her PIN in our prompt; the site verified it (UV=1, "
           "BE=0, BS=0, our AAGUID, packed self attestation) and keeps it")
    def _():
        assert "cdp" in st, "Chromium did not start"
        before = len(person_asked())
        r = devtools.js_register(st["cdp"], "alice")
        st["cdp"].screenshot("chromium-register")
        s = devtools.expect_ok(r)
        flags = devtools.check_flags(s)
        assert s["user"] == "alice" and s["attestation_type"] == "self", s
        asked = asked_since(before)
        assert "GETPIN" in asked, f"the person was not asked for the PIN: {asked}"
        kept = [c for c in rp_state()["credentials"] if c["id"] == s["credential_id"]]
        assert len(kept) == 1 and kept[0]["user"] == "alice", f"the site does not keep it: {rp_state()}"
        assert kept[0]["flags_at_registration"]["UV"] and not kept[0]["flags_at_registration"]["BE"], kept
        st["cred"] = s["credential_id"]
        return f"{flags}, {s['attestation_type']} attestation; person asked {asked}; {r['ms']} ms"

    @check("chromium-sign-in", "as alice: Chromium signs in with it (username-less, navigator.credentials.get); "
           "the person typed her PIN; the site verified the signature and the sign count went up")
    def _():
        assert "cred" in st, "no passkey was registered in Chromium"
        before = len(person_asked())
        r = devtools.js_sign_in(st["cdp"], None)
        st["cdp"].screenshot("chromium-sign-in")
        s = devtools.expect_ok(r)
        flags = devtools.check_flags(s)
        assert s["user"] == "alice" and s["username_less"] and s["credential_id"] == st["cred"], s
        assert s["sign_count"] > s["previous_sign_count"], s
        asked = asked_since(before)
        assert "GETPIN" in asked, f"the person was not asked for the PIN: {asked}"
        kept = [c for c in rp_state()["credentials"] if c["id"] == st["cred"]]
        assert kept and kept[0]["sign_count"] == s["sign_count"] and kept[0]["last_used"], kept
        return f"{flags}; sign count {s['previous_sign_count']} -> {s['sign_count']}; person asked {asked}; " \
               f"{r['ms']} ms"

    @check("chromium-no-pin-screen", "Chromium used our built-in user verification (clientPIN 0x06) and never "
           "showed its own PIN screen (its FIDO log)")
    def _():
        assert "cdp" in st, "Chromium did not start"
        return devtools.check_no_pin_screen(out / "chromium.log", out / "chromium-fido.log")

    devtools.stop(st.get("proc"))
    devtools.stop(st.get("rp"))


def unplug_shares() -> None:
    """9p over virtio has no suspend support: a share in use across a
    suspend hangs for good. The shares are the test's plumbing, not part of
    the laptop, so they are unmounted and their devices unbound first."""
    run(["umount", "/mnt/out", "/mnt/src"])
    SHARES["up"] = False
    drv = Path("/sys/bus/virtio/drivers/9pnet_virtio")
    SHARES["devices"] = [d.name for d in drv.iterdir() if d.name.startswith("virtio")]
    for dev in SHARES["devices"]:
        (drv / "unbind").write_text(dev)


def plug_shares() -> None:
    drv = Path("/sys/bus/virtio/drivers/9pnet_virtio")
    for dev in SHARES.get("devices", []):
        (drv / "bind").write_text(dev)
    run(["mount", "/mnt/src"])
    run(["mount", "/mnt/out"])
    SHARES["up"] = True


# Besides the package's own files: what its scripts and units make.
MADE = ["/etc/systemd/user/default.target.wants/localpasskey.service",
        "/etc/systemd/system/sockets.target.wants/localpasskey-broker.socket", BROKER_SOCK]


def packaged_files() -> list[str]:
    """Every file and link the .deb ships (its directories may be shared)."""
    out = run(["dpkg-deb", "--contents", LOCAL / "localpasskey.deb"]).stdout
    return [line.split(None, 5)[5].split(" -> ")[0].lstrip(".") for line in out.splitlines()
            if line[:1] in "-l" and len(line.split(None, 5)) == 6]


def leftovers() -> list[str]:
    """What an uninstall must have removed: files, enablement links, the
    socket, the running units and the key itself."""
    files = packaged_files()
    assert "/usr/bin/localpasskey" in files, f"cannot read the package's file list: {files[:5]}"
    left = [p for p in files + MADE if os.path.lexists(p)]
    if package_state() == "install ok installed":
        left.append("package still installed")
    for unit in ("localpasskey-broker.socket", "localpasskey-broker.service"):
        if run(["systemctl", "is-active", unit], check_rc=False).stdout.strip() in ("active", "activating"):
            left.append(f"{unit} active")
    if user_service() in ("active", "activating"):
        left.append("alice's localpasskey.service active")
    time.sleep(0.5)
    left += [f"node {n}" for n in our_nodes()]
    return left


def keyboard_create2() -> bytes:
    """A UHID_CREATE2 event for a boot keyboard, what a program with
    /dev/uhid would write to make one (tests/vm/guest_tests.py has the same)."""
    rd = bytes.fromhex("05010906a101050719e029e7150025017501950881029501750881030507190029651500256575089506"
                       "8100950575010508190129059102950175039101c0")
    name = b"Rogue Keyboard".ljust(128, b"\0")
    req = name + bytes(64) + bytes(64) + len(rd).to_bytes(2, "little") + (3).to_bytes(2, "little")
    req += (0x046D).to_bytes(4, "little") + (0xC31C).to_bytes(4, "little") + bytes(8) + rd.ljust(4096, b"\0")
    return (11).to_bytes(4, "little") + req


BROKER_CODE = f"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
try:
    s.sendall({keyboard_create2()!r})
except BrokenPipeError:
    pass
a = b""
while len(a) < 64:
    chunk = s.recv(64 - len(a))
    if not chunk:
        break
    a += chunk
print(a[5] if len(a) == 64 and a[:5] == b"LPKB\\x01" else "no-answer:" + a.hex(), flush=True)
"""


def why_not_resumed() -> str:
    """What this fresh boot can tell of the resume that did not happen: the
    kernel's hibernation lines, and the swap disk's signature (S1SUSPEND: an
    image was written and never read; SWAPSPACE2: none was written, or it
    was read and the resume failed after)."""
    pm = [x.split("] ", 1)[-1] for x in run(["dmesg"], check_rc=False).stdout.splitlines()
          if re.search(r"PM: |hibernat|resume", x, re.I)]
    try:
        with open("/dev/disk/by-id/virtio-lpk-swap", "rb") as f:
            sig = f.read(4096)[4086:].decode(errors="replace")
    except OSError as e:
        sig = f"unreadable ({e})"
    return f"swap signature {sig!r}; kernel: {pm[-8:]}"


def diagnostics(boot: str) -> None:
    """The guest's own account of this boot, for whoever reads a failure."""
    with open(ARGS.out / f"boot{boot}-systemd.txt", "w") as f:
        for argv in (["systemd-analyze"], ["systemd-analyze", "critical-chain"], ["systemd-analyze", "blame"],
                     ["systemctl", "--failed", "--no-pager"], ["journalctl", "-b", "--no-pager", "-o", "short-monotonic"]):
            p = run(argv, check_rc=False, timeout=60)
            f.write(f"$ {' '.join(argv)}\n{p.stdout}{p.stderr}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.parse_args(namespace=ARGS)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    phase = PHASE.read_text().strip() if PHASE.exists() else "1"
    say(f"boot {phase}: guest.py started at uptime {uptime():.1f}s")
    if phase == "done":  # a boot too many: the test is over
        subprocess.run(["systemctl", "poweroff"])
        return
    if phase == "1":
        try:
            boot1()
        finally:
            diagnostics("1")
        run(["sync"])
        subprocess.run(["systemctl", "reboot"])
        return
    if phase == "2-started":  # boot 2 was cut short: the guest was off without resuming
        say("FAIL boot-2-interrupted (0.0s): the checks of boot 2 were under way when the guest started afresh "
            f"(a hibernation that did not resume, or a crash) -- {why_not_resumed()}")
        PHASE.write_text("done")
        say("finished: powering off")
        run(["sync"])
        subprocess.run(["systemctl", "poweroff"])
        return
    PHASE.write_text("2-started")
    run(["sync"])
    watch = ReadyWatch()
    watch.start()
    try:
        boot2(watch)
    finally:
        diagnostics("2")
        PHASE.write_text("done")
        say("finished: powering off")
        run(["sync"])
        subprocess.run(["systemctl", "poweroff"])


if __name__ == "__main__":
    main()
