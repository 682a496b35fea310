"""A software TPM is a file on disk and a process anyone may talk to unless we
close it off; the automatically approving simulation must never meet the
user's passkeys.

1. The harness's swtpm (the one every TPM test, the soak and scripts/run.sh
   start the same way) is reached only by its owner: another uid can neither
   send it TPM commands, nor reach its control channel (`swtpm_ioctl --save
   permanent` would hand out the TPM's seeds), nor read or list its state;
   it has no TCP socket at all; directories are 0700, files 0600.
2. The daemon tells a software TPM from a hardware one: the real USB device
   (--transport uhid) refuses it without --allow-software-tpm, before
   /dev/uhid is opened.
3. `--presence approve` (which approves authenticatorReset too, and which any
   local uid can drive through the simulation's power-cycle datagram) refuses
   the user's real data directory however it is named.

The other-uid checks run as `nobody` through setpriv, so they need root (CI
runs as root).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lpk

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def as_nobody(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NOBODY, *cmd], capture_output=True, text=True, timeout=30, env=lpk.tss_env())


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to uid nobody needs root (CI runs these tests as root)")


CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "try:\n"
    "    s.connect(sys.argv[1])\n"
    "except OSError as e:\n"
    "    print(type(e).__name__, e)\n"
    "    sys.exit(3)\n"
    "print('connected')\n"
)


def connect(path: Path, nobody: bool) -> subprocess.CompletedProcess:
    """Open a connection to a unix socket (as `nobody` or as ourselves)."""
    cmd = [sys.executable, "-I", "-c", CONNECT, str(path)]
    if nobody:
        # The system python: the suite's venv may sit in a directory nobody cannot open.
        cmd[0] = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
        cmd = [*NOBODY, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def proc_net(kind: str) -> dict[str, str]:
    """inode -> the line of /proc/net/<kind> (tcp, tcp6, udp, udp6, unix)."""
    out = {}
    lines = Path(f"/proc/net/{kind}").read_text().splitlines()[1:]
    for line in lines:
        fields = line.split()
        inode = fields[6] if kind == "unix" else fields[9]
        out[inode] = line
    return out


def wait_for_init(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Until the daemon on 127.0.0.1:PORT answers CTAPHID_INIT (any of the
    nonces sent: a slow answer may come after the next INIT went out)."""
    raw = lpk.RawHid(port)
    deadline = time.monotonic() + timeout
    sent: set[bytes] = set()
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"daemon exited {proc.returncode}: {proc.stderr.read()}"
            nonce = os.urandom(8)
            sent.add(nonce)
            raw.send(lpk.RawHid.init_packet(lpk.BROADCAST_CID, lpk.HID_INIT, 8, nonce))
            try:
                r = raw.recv(0.05)
            except ConnectionRefusedError:
                r = None
                time.sleep(0.02)
            if r and r[7:15] in sent:
                return
        pytest.fail(f"no answer to CTAPHID_INIT on port {port} within {timeout} s")
    finally:
        raw.close()


# --------------------------------------------------------------------------- 1. the swtpm


def test_only_its_owner_reaches_the_software_tpm(make_swtpm, tmp_path):
    need_root()
    tpm = make_swtpm()
    ctrl = Path(f"{tpm.socket}.ctrl")
    state_files = sorted(p for p in tpm.state_dir.iterdir() if p.is_file())
    assert any(p.name.startswith("tpm2-") for p in state_files), f"no swtpm state in {tpm.state_dir}"

    # The owner (positive controls: the checks below can fail).
    assert tpm.tool("tpm2_getcap", "properties-fixed").returncode == 0
    assert connect(ctrl, nobody=False).stdout.strip() == "connected"
    saved = tmp_path / "owner-saved-permanent"
    r = subprocess.run(["swtpm_ioctl", "--unix", str(ctrl), "--save", "permanent", str(saved)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and saved.stat().st_size > 0, f"the owner's swtpm_ioctl --save failed: {r.stderr}"
    # nobody can run these programs at all (so their failures below are the TPM's doing).
    r = as_nobody("tpm2_getcap", "--version")
    assert r.returncode == 0, f"nobody cannot even run tpm2_getcap: {r.stderr}"
    assert as_nobody("cat", "/etc/passwd").returncode == 0

    # Another uid.
    r = as_nobody("tpm2_getcap", "-T", tpm.tcti, "properties-fixed")
    assert r.returncode != 0, f"uid nobody sent TPM commands to the swtpm:\n{r.stdout[:500]}"
    for sock in (tpm.socket, ctrl):
        r = connect(sock, nobody=True)
        assert r.returncode == 3 and "PermissionError" in r.stdout, f"nobody and {sock}: {r.stdout}{r.stderr}"
    stolen = Path("/tmp") / f"lpk-stolen-{os.getpid()}"
    r = as_nobody("swtpm_ioctl", "--unix", str(ctrl), "--save", "permanent", str(stolen))
    try:
        assert r.returncode != 0, "uid nobody saved the TPM's permanent state (its seeds)"
        assert not stolen.exists() or stolen.stat().st_size == 0
    finally:
        stolen.unlink(missing_ok=True)
    for d in (tpm.state_dir, tpm.socket_dir):
        r = as_nobody("ls", str(d))
        assert r.returncode != 0, f"uid nobody listed {d}: {r.stdout}"
    for f in state_files:
        r = as_nobody("cat", str(f))
        assert r.returncode != 0, f"uid nobody read {f}"

    # No TCP or UDP socket at all; the unix ones are there (the fd scan works).
    mine = socket_inodes(tpm.proc.pid)
    for kind in ("tcp", "tcp6", "udp", "udp6"):
        found = [line for inode, line in proc_net(kind).items() if inode in mine]
        assert not found, f"swtpm has {kind} sockets: {found}"
    unix = [line.split()[-1] for inode, line in proc_net("unix").items() if inode in mine and len(line.split()) > 7]
    assert str(tpm.socket) in unix and str(ctrl) in unix, f"swtpm's unix sockets: {unix}"
    ss = subprocess.run(["ss", "-ltnup"], capture_output=True, text=True, timeout=30)
    assert ss.returncode == 0 and f"pid={tpm.proc.pid}," not in ss.stdout, ss.stdout

    # Modes.
    for d in (tpm.state_dir, tpm.socket_dir):
        st = os.stat(d)
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid(), f"{d}: {oct(st.st_mode)}"
    # After a write to NV, as well as at start.
    tpm.tool("tpm2_nvdefine", "0x01500017", "-C", "o", "-s", "8", "-a", "ownerread|ownerwrite")
    files = [p for p in tpm.state_dir.iterdir()]
    assert files, "empty state directory"
    for f in files:
        mode = stat.S_IMODE(os.lstat(f).st_mode)
        assert mode == 0o600, f"{f}: {oct(mode)}"
    for sock in (tpm.socket, ctrl):
        mode = stat.S_IMODE(os.lstat(sock).st_mode)
        assert mode & 0o077 == 0, f"{sock}: {oct(mode)}"


# --------------------------------------------------------------------------- 2. uhid and a software TPM


@pytest.mark.transport("udp", reason="on the host /dev/uhid is missing: the refusal must come before it is opened")
def test_the_usb_device_refuses_a_software_tpm_unless_allowed(make_swtpm, tmp_path):
    assert not Path("/dev/uhid").exists(), "this test expects a machine without /dev/uhid"
    tpm = make_swtpm()
    data = tmp_path / "data"
    base = ["run", "--transport", "uhid", "--custody", "tpm", "--tpm", tpm.tcti,
            "--data-dir", str(data), "--presence", "pinentry"]

    r = lpk.run_cli(*base)
    out = r.stderr
    assert r.returncode != 0, out
    assert "software TPM (swtpm)" in out and "--allow-software-tpm" in out, out
    assert "file on disk" in out and "copy" in out, out
    assert "uhid:" not in out.lower() and "/dev/uhid" not in out, f"/dev/uhid was opened first:\n{out}"
    assert "broker" not in out.lower(), f"the uhid broker was asked first:\n{out}"
    assert not data.exists(), "the data directory was created before the refusal"

    # With the flag the software TPM passes and the next step, the security
    # key through the uhid broker, fails here (no broker on this machine).
    r = lpk.run_cli(*base, "--allow-software-tpm")
    out = r.stderr
    assert r.returncode != 0, out
    assert "--allow-software-tpm" not in out, out
    assert "broker" in out.lower(), out


@pytest.mark.custody("tpm")
def test_the_daemon_names_a_software_tpm(make_daemon):
    """The start-up lines say "software TPM (swtpm)" and never that keys cannot leave it."""
    d = make_daemon(custody="tpm")
    log = d.stderr()
    assert "software TPM (swtpm)" in log, log
    assert "cannot leave" not in log, log
    assert 'custody="software TPM (swtpm)"' in log, log


# --------------------------------------------------------------------------- 3. approve and the real data dir


def run_refused(args: list[str], env: dict, what: str) -> str:
    """`localpasskey run ARGS` must exit on its own, with an error."""
    try:
        r = subprocess.run([str(lpk.binary()), "run", *args], capture_output=True, text=True, timeout=15,
                           env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what}: the daemon started")
    assert r.returncode != 0, f"{what}: exited 0\n{r.stderr}"
    assert "--presence approve" in r.stderr and "real data directory" in r.stderr, f"{what}:\n{r.stderr}"
    return r.stderr


def test_approve_refuses_the_users_real_data_dir(custody, make_swtpm, tmp_path):
    xdg = tmp_path / "xdg"
    home = tmp_path / "home"
    home.mkdir()
    real = xdg / "localpasskey"
    env = lpk.tss_env()
    env.update(XDG_DATA_HOME=str(xdg), HOME=str(home), NO_COLOR="1", LOCALPASSKEY_LOG="warn")
    env.pop("LOCALPASSKEY_DATA_DIR", None)
    if custody == "tpm":
        custody_args = ["--custody", "tpm", "--tpm", make_swtpm().tcti]
    else:
        custody_args = ["--custody", "insecure-software"]
    port = lpk.Daemon._free_port()
    udp = ["--transport", "udp", "--listen", f"127.0.0.1:{port}", *custody_args]

    # Not there yet, named explicitly: refused, and not created.
    err = run_refused([*udp, "--presence", "approve", "--data-dir", str(real)], env, "explicit")
    assert str(real) in err, err
    assert not real.exists(), "the refused daemon created the real data directory"
    # approve is the simulation's default presence, and the data dir's default is the real one.
    run_refused(udp, env, "all defaults")
    assert not real.exists()
    # Existing, holding passkeys, reached through a symlink, `..` or a relative path.
    real.mkdir(parents=True)
    (real / "marker").write_text("the user's passkeys")
    (tmp_path / "link").symlink_to(real)
    run_refused([*udp, "--data-dir", str(tmp_path / "link")], env, "symlink")
    run_refused([*udp, "--data-dir", str(xdg / "x" / ".." / "localpasskey")], env, "dot-dot")
    rel = os.path.relpath(real)
    run_refused([*udp, "--data-dir", rel], env, "relative")
    # HOME's default is the user's too, whatever XDG_DATA_HOME says.
    run_refused([*udp, "--data-dir", str(home / ".local/share/localpasskey")], env, "HOME's default")
    env_dir = dict(env, LOCALPASSKEY_DATA_DIR=str(real))
    run_refused(udp, env_dir, "LOCALPASSKEY_DATA_DIR")
    assert sorted(p.name for p in real.iterdir()) == ["marker"], "the real data directory was touched"

    # Positive control: the same command with a throw-away data dir starts.
    sim = tmp_path / "sim"
    proc = subprocess.Popen([str(lpk.binary()), "run", *udp, "--presence", "approve", "--data-dir", str(sim)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        wait_for_init(port, proc, timeout=30)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert (sim / "credentials.sqlite3").exists(), f"the simulation has no store in {sim}"


@pytest.mark.custody("tpm")
def test_approve_with_a_throwaway_data_dir_and_swtpm_serves(make_daemon, rp):
    d = make_daemon(presence="approve")
    reg = rp.register(d.client())
    rp.authenticate(d.client(), [reg.credential_id])
