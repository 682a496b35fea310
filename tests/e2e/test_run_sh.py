"""scripts/run.sh without /dev/uhid (this machine): a simulation that cannot
touch the user's passkeys.

The simulation approves every request by itself and any local uid can send
it the power-cycle datagram and then authenticatorReset. So run.sh gives it
a throw-away data directory and its own throw-away swtpm in a fresh 0700
directory, removed when it stops, and never opens the user's data directory.
Here HOME and XDG_DATA_HOME point at fake real data directories holding a
marker; the test registers a passkey, plays the attacker's power cycle and
Reset, stops the script like Ctrl-C (or a kill of the script alone), and
checks that the fake real directories are exactly as they were, that the
throw-away directory is gone and that no process of it is left.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap2 import ClientPin, Ctap2, PinProtocolV2

import lpk
from test_software_tpm import wait_for_init

pytestmark = pytest.mark.transport("udp", reason="run.sh picks the real USB device where /dev/uhid exists")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root: mode, size, mtime and content hash."""
    out = {}
    for p in sorted([root, *root.rglob("*")]):
        st = os.lstat(p)
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def processes_mentioning(text: str) -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{d.name}: {cmdline}")
    return found


def _as_from_a_terminal() -> None:
    """A shell started from a terminal has SIGINT at its default; a test
    runner's worker may ignore it, and a script cannot trap a signal it was
    started ignoring (so its Ctrl-C trap would never run)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop", ["ctrl-c", "kill-script"])
def test_run_sh_simulation_never_touches_the_users_passkeys(tmp_path, stop):
    assert not Path("/dev/uhid").exists(), "this test expects a machine without /dev/uhid"
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    # Short: swtpm's socket paths must fit in sun_path.
    tmp = Path(tempfile.mkdtemp(prefix="lpk-runsh-"))
    try:
        run_and_check(home, xdg, tmp, tmp_path, stop)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_and_check(home: Path, xdg: Path, tmp: Path, tmp_path: Path, stop: str) -> None:
    real = [xdg / "localpasskey", home / ".local/share/localpasskey"]
    for r in real:
        r.mkdir(parents=True, mode=0o700)
        (r / "credentials.sqlite3").write_bytes(b"the user's real passkeys " + os.urandom(16))
        (r / "swtpm").mkdir(mode=0o700)
        (r / "swtpm" / "tpm2-00.permall").write_bytes(os.urandom(64))
    before = {str(r): snapshot(r) for r in real}

    port = lpk.Daemon._free_port()
    env = lpk.tss_env()
    for var in ("LOCALPASSKEY_DATA_DIR", "LOCALPASSKEY_TPM"):
        env.pop(var, None)
    env.update(HOME=str(home), XDG_DATA_HOME=str(xdg), TMPDIR=str(tmp), LOCALPASSKEY_BIN=str(lpk.binary()),
               NO_COLOR="1")
    log = tmp_path / "run.sh.stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen(["bash", str(lpk.REPO / "scripts/run.sh"), "--listen", f"127.0.0.1:{port}"],
                                cwd=lpk.REPO, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True, preexec_fn=_as_from_a_terminal)
    try:
        # The stderr of `proc` is a file: give wait_for_init something to read on failure.
        proc.stderr = open(log)
        wait_for_init(port, proc, timeout=30)
        said = log.read_text()
        assert "SIMULATION: a throw-away authenticator; your passkeys are not used." in said, said
        m = re.search(r"software TPM live in (\S+),", said)
        assert m, said
        work = Path(m.group(1))
        assert work.parent == tmp and work.is_dir(), work
        assert stat.S_IMODE(work.stat().st_mode) == 0o700, oct(work.stat().st_mode)
        assert f"swtpm:path={work}/tpm.sock" in said, "the daemon is not on the throw-away swtpm"
        assert f"data_dir={work}/data" in said, said

        r = lpk.run_cli("pin", "status", "--to", f"127.0.0.1:{port}")
        assert r.returncode == 0 and "No PIN is set" in r.stdout, (r.stdout, r.stderr)

        dev = lpk.hid_device(port)
        ClientPin(Ctap2(dev), PinProtocolV2()).set_pin(lpk.PIN)
        client = Fido2Client(dev, DefaultClientDataCollector("https://example.com"),
                             user_interaction=lpk.RecordingInteraction(lpk.PIN))
        rp = lpk.RelyingParty()
        reg = rp.register(client, resident_key="required")
        rp.authenticate(client, [reg.credential_id])
        listed = lpk.run_cli("list", "--json", "--data-dir", str(work / "data"))
        assert reg.credential_id.hex() in listed.stdout, listed.stdout + listed.stderr
        dev.close()

        # What any local uid can do to the simulation: power cycle, then Reset (approved by itself).
        assert lpk.run_cli("power-cycle", "--to", f"127.0.0.1:{port}").returncode == 0
        dev = lpk.hid_device(port)
        Ctap2(dev).reset()
        dev.close()
        listed = lpk.run_cli("list", "--json", "--data-dir", str(work / "data"))
        assert reg.credential_id.hex() not in listed.stdout, "Reset did not reach the simulation's store"

        if stop == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stderr.close()
    said = log.read_text()
    assert rc in (130, 143), f"run.sh exited {rc}:\n{said}"
    assert "stopped cleanly" in said, said

    deadline = time.monotonic() + 5
    while processes_mentioning(str(work)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_mentioning(str(work)) == [], "run.sh left processes behind"
    assert not work.exists(), f"the throw-away directory {work} is still there"
    assert list(tmp.iterdir()) == [], f"left in TMPDIR: {list(tmp.iterdir())}"
    assert {str(r): snapshot(r) for r in real} == before, "the user's real data directory was touched"
    assert str(real[0]) not in said and str(real[1]) not in said, said
