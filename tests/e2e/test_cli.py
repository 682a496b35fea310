"""`localpasskey list / delete / info`, which authenticator `localpasskey pin`
finds by itself, and the data files' permissions."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from datetime import datetime

import pytest
from fido2.client import ClientError
from fido2.ctap import CtapError

import lpk


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_list_json_fields(daemon, rp):
    assert daemon.list_json() == []
    client = daemon.client()
    t0 = time.time()
    disc = rp.register(client, user_id=b"\x01\x02user-1", user_name="alice@example.com", resident_key="required")
    nondisc = rp.register(client, user_id=b"\x09user-2", user_name="bob", resident_key="discouraged")
    rp.authenticate(client, allow=[disc.credential_id])
    rp.authenticate(client, allow=[disc.credential_id])
    # While the daemon runs: the CLI reads the live store.
    items = {c["credential_id"]: c for c in daemon.list_json()}
    assert set(items) == {disc.credential_id.hex(), nondisc.credential_id.hex()}
    for c in items.values():
        for key in ("credential_id", "rp_id", "user_name", "user_id", "created", "last_used", "sign_count", "discoverable"):
            assert key in c, f"list --json lacks {key}: {c}"
    d = items[disc.credential_id.hex()]
    n = items[nondisc.credential_id.hex()]
    assert d["rp_id"] == n["rp_id"] == "example.com"
    assert d["user_id"] == b"\x01\x02user-1".hex()
    assert n["user_id"] == b"\x09user-2".hex()
    assert d["user_name"] == "alice@example.com"
    assert n["user_name"] == "bob"
    assert d["discoverable"] is True and n["discoverable"] is False
    assert d["sign_count"] == disc.sign_count == disc.counters[-1]
    assert n["sign_count"] == 0
    assert n["last_used"] in (None, "", "never")
    assert d["last_used"] not in (None, "", "never")
    for c in (d, n):
        created = _parse_time(c["created"])
        assert abs(created - t0) < 120, f"created {c['created']} is not now"
    assert _parse_time(d["last_used"]) >= _parse_time(d["created"])
    # No key material in the listing.
    blob = json.dumps(list(items.values())).lower()
    assert "private" not in blob and "key_blob" not in blob


def _parse_time(v) -> float:
    if isinstance(v, (int, float)):
        return v / 1000 if v > 1e11 else float(v)
    return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()


def test_list_text(daemon, rp):
    r = daemon.cli("list")
    assert r.stdout.strip(), "list printed nothing for an empty store"
    reg = rp.register(daemon.client(), user_name="text-user", resident_key="required")
    r = daemon.cli("list")
    assert "example.com" in r.stdout and "text-user" in r.stdout
    assert reg.credential_id.hex()[:8] in r.stdout


def test_delete_by_prefix_then_no_credentials(daemon, rp):
    client = daemon.client()
    keep = rp.register(client, user_name="keep", resident_key="required")
    gone = rp.register(client, user_name="gone", resident_key="required")
    r = daemon.cli("delete", gone.credential_id.hex()[:12])
    assert r.returncode == 0
    ids = [c["credential_id"] for c in daemon.list_json()]
    assert ids == [keep.credential_id.hex()]
    # The running daemon sees the deletion at once.
    with pytest.raises(ClientError) as e:
        rp.authenticate(client, allow=[gone.credential_id])
    assert lpk.ctap_error(e) == lpk.NO_CREDENTIALS, lpk.status_name(lpk.ctap_error(e))
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh, allow_list=[{"type": "public-key", "id": gone.credential_id}])
    assert lpk.ctap_error(e) == lpk.NO_CREDENTIALS
    a = ctap2.get_assertion("example.com", cdh)
    assert a.credential["id"] == keep.credential_id and a.number_of_credentials in (None, 1)
    # The full id (any case) works too.
    daemon.cli("delete", keep.credential_id.hex().upper())
    assert daemon.list_json() == []


def test_delete_unknown_prefix_fails(daemon, rp):
    reg = rp.register(daemon.client())
    other = "0" * 8 if not reg.credential_id.hex().startswith("0" * 8) else "f" * 8
    r = daemon.cli("delete", other, check=False)
    assert r.returncode != 0
    assert r.stderr.strip(), "no error message"
    assert len(daemon.list_json()) == 1
    r = daemon.cli("delete", "not-hex!", check=False)
    assert r.returncode != 0 and len(daemon.list_json()) == 1


@pytest.mark.slow
def test_delete_refuses_ambiguous_prefix(daemon):
    """Make credentials until two ids share their first 4 hex digits, then delete by that prefix."""
    ctap2 = daemon.ctap2()
    _, cdh = lpk.client_data_hash()
    seen: dict[str, bytes] = {}
    clash = None
    deadline = time.monotonic() + 240
    while clash is None:
        assert time.monotonic() < deadline, f"no 4-hex-digit prefix collision among {len(seen)} credentials"
        att = ctap2.make_credential(cdh, {"id": "example.com"}, {"id": os.urandom(8), "name": "n"},
                                    [{"type": "public-key", "alg": -7}])
        cid = att.auth_data.credential_data.credential_id
        p = cid.hex()[:4]
        if p in seen:
            clash = (p, seen[p], cid)
        seen[p] = cid
    prefix, a, b = clash
    # Use the longest common prefix (at least 4 digits).
    ha, hb = a.hex(), b.hex()
    n = 4
    while ha[n] == hb[n]:
        n += 1
    count = len(daemon.list_json())
    r = daemon.cli("delete", ha[:n], check=False)
    assert r.returncode != 0, f"ambiguous prefix {ha[:n]} accepted: {r.stdout}"
    assert "ambiguous" in r.stderr.lower() or "2" in r.stderr, f"unclear error: {r.stderr!r}"
    assert len(daemon.list_json()) == count, "an ambiguous delete removed something"
    # One more digit picks exactly one.
    daemon.cli("delete", ha[: n + 1])
    ids = {c["credential_id"] for c in daemon.list_json()}
    assert ha not in ids and hb in ids and len(ids) == count - 1


def test_info(daemon, rp):
    r = daemon.cli("info", "--json")
    info = json.loads(r.stdout)
    assert info["aaguid"].lower() == lpk.AAGUID_STR
    assert info["credentials"] == 0
    rp.register(daemon.client(), resident_key="required")
    rp.register(daemon.client(), resident_key="discouraged")
    info = json.loads(daemon.cli("info", "--json").stdout)
    assert info["credentials"] == 2
    text = daemon.cli("info").stdout
    assert lpk.AAGUID_STR in text.lower()
    # It names the custodies truthfully: the TPM custody exists now, and the
    # software one is called insecure.
    assert "tpm" in info["custody_available"], f"custody_available {info['custody_available']}"
    custody_lines = [l for l in text.splitlines() if "custody" in l.lower()]
    assert custody_lines, f"no custody line in `info`:\n{text}"
    assert any("tpm" in l.lower() for l in custody_lines), f"`info` does not mention TPM custody: {custody_lines}"
    assert not any("not built yet" in l.lower() for l in custody_lines), f"stale custody line: {custody_lines}"


def test_file_permissions(make_daemon, tmp_path):
    # The data dir does not exist yet: the daemon creates it.
    daemon = make_daemon(start=False)
    assert not daemon.data_dir.exists()
    daemon.start()
    rp = lpk.RelyingParty()
    rp.register(daemon.client(), resident_key="required")
    assert daemon.data_dir.is_dir()
    assert _mode(daemon.data_dir) == 0o700, oct(_mode(daemon.data_dir))
    db = daemon.data_dir / "credentials.sqlite3"
    assert db.exists(), f"no {db}: {sorted(p.name for p in daemon.data_dir.iterdir())}"
    files = list(daemon.data_dir.iterdir())
    for f in files:
        assert _mode(f) & 0o077 == 0, f"{f.name} has mode {oct(_mode(f))}"
    assert _mode(db) == 0o600, oct(_mode(db))
    for suffix in ("-wal", "-shm"):
        p = daemon.data_dir / f"credentials.sqlite3{suffix}"
        if p.exists():
            assert _mode(p) == 0o600, f"{p.name} {oct(_mode(p))}"
    # A data dir that exists with loose permissions is tightened (or refused).
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    d2 = make_daemon(name="loose", start=False, data_dir=loose)
    try:
        d2.start()
    except lpk.DaemonStartError:
        return  # refusing a world-readable data dir is fine too
    assert _mode(loose) == 0o700, f"existing data dir left at {oct(_mode(loose))}"


def test_cli_on_missing_data_dir_does_not_crash(tmp_path):
    r = lpk.run_cli("list", "--json", "--data-dir", str(tmp_path / "nothing-here"))
    assert "panicked" not in r.stderr, r.stderr
    if r.returncode == 0:
        assert json.loads(r.stdout) == []
    else:
        assert r.stderr.strip(), "failed without a message"


@pytest.mark.skipif(lpk.UHID, reason="the simulation's fallback; over hidraw the node is found")
def test_pin_without_to_never_falls_back_to_the_simulation(daemon):
    """With no --to and no hidraw node of ours, `pin` fails and says how to
    reach the simulation, instead of sending the PIN to whoever listens on
    127.0.0.1:8111 (any local user may). An explicit --to still works."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        listener.bind(("127.0.0.1", 8111))
    except OSError:
        listener.close()
        listener = None  # something else has the port: still check the message
    try:
        r = daemon.cli("pin", "status", check=False)
        assert r.returncode != 0, r.stdout
        assert "panicked" not in r.stderr, r.stderr
        assert "no LocalPasskey security key found" in r.stderr, r.stderr
        assert "--to 127.0.0.1:8111" in r.stderr, r.stderr
        assert "authenticator:" not in r.stderr, r.stderr
        if listener is not None:
            # The CLI has exited: anything it sent is queued by now.
            listener.settimeout(0.2)
            try:
                data = listener.recv(100)
            except socket.timeout:
                data = None
            assert data is None, f"`pin status` sent {data!r} to 127.0.0.1:8111"
    finally:
        if listener is not None:
            listener.close()
    r = daemon.cli("pin", "status", "--to", daemon.target)
    assert f"authenticator: {daemon.target}" in r.stderr, r.stderr
    assert "A PIN is set" in r.stdout, r.stdout


def test_pin_without_to_and_without_a_data_dir_creates_nothing(tmp_path):
    missing = tmp_path / "never-ran"
    r = lpk.run_cli("pin", "status", "--data-dir", str(missing))
    assert r.returncode != 0, r.stdout
    assert "panicked" not in r.stderr, r.stderr
    assert "no LocalPasskey security key found" in r.stderr, r.stderr
    assert not missing.exists(), "`pin` created a data directory"


@pytest.mark.skipif(not lpk.UHID, reason="needs the daemon's hidraw node (LPK_TRANSPORT=uhid)")
def test_pin_without_to_finds_the_node_with_our_serial(daemon, make_daemon):
    r = daemon.cli("pin", "status")
    assert f"authenticator: {daemon.hidraw}" in r.stderr, r.stderr
    assert "A PIN is set" in r.stdout, r.stdout
    # A second device named LocalPasskey, with another serial: still ours only.
    other = make_daemon(name="other")
    r = daemon.cli("pin", "status")
    assert f"authenticator: {daemon.hidraw}" in r.stderr, r.stderr
    r = other.cli("pin", "status")
    assert f"authenticator: {other.hidraw}" in r.stderr, r.stderr


def test_uninstall_removes_the_setup_and_keeps_the_passkeys_unless_purged(tmp_path):
    """`localpasskey uninstall` undoes scripts/install.sh's files (system ones
    under --root here), stops nothing it cannot find, and deletes the data
    only with --purge (--yes instead of typing `delete`)."""
    root, home = tmp_path / "root", tmp_path / "home"
    files = [root / "etc/udev/rules.d/70-localpasskey.rules", root / "etc/modules-load.d/localpasskey.conf",
             root / "usr/local/bin/localpasskey", home / ".local/bin/localpasskey",
             root / "usr/local/bin/localpasskey-prompt", home / ".local/bin/localpasskey-prompt",
             home / ".config/systemd/user/localpasskey.service"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    wants = home / ".config/systemd/user/default.target.wants/localpasskey.service"
    wants.parent.mkdir(parents=True)
    wants.symlink_to(files[-1])
    unrelated = root / "etc/udev/rules.d/60-other.rules"
    unrelated.write_text("keep")
    data = home / ".local/share/localpasskey"
    data.mkdir(parents=True)
    (data / "localpasskey.db").write_text("passkeys")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), LOCALPASSKEY_LOG="warn")

    def uninstall(*args):
        return subprocess.run([str(lpk.binary()), "uninstall", "--root", str(root), *args], env=env,
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                              start_new_session=True)  # no terminal: --purge cannot ask

    r = uninstall()
    assert r.returncode == 0, r.stderr
    for f in files + [wants]:
        assert not os.path.lexists(f), f"{f} left behind:\n{r.stdout}"
        assert f"removed {f}" in r.stdout, r.stdout
    assert unrelated.read_text() == "keep"
    assert (data / "localpasskey.db").read_text() == "passkeys", "uninstall without --purge touched the passkeys"
    assert "passkeys stay" in r.stdout, r.stdout

    # Again: nothing left to do is not an error.
    assert uninstall().returncode == 0

    # --purge without a terminal to confirm on keeps them and says why.
    r = uninstall("--purge")
    assert r.returncode != 0 and "--yes" in r.stderr, (r.stdout, r.stderr)
    assert data.exists()
    r = uninstall("--purge", "--yes")
    assert r.returncode == 0, r.stderr
    assert not data.exists()


def test_the_user_unit_passes_systemd_analyze_and_its_command_line_parses(tmp_path):
    """The unit scripts/install.sh writes, checked by systemd's own parser
    (every key known, ExecStart= an executable), and its ExecStart= accepted
    by the daemon's argument parser."""
    env = dict(os.environ, LOCALPASSKEY_BIN=str(lpk.binary()))
    unit = subprocess.run([str(lpk.REPO / "scripts/install.sh"), "--print-unit"], env=env,
                          capture_output=True, text=True, timeout=30, check=True).stdout
    path = tmp_path / "localpasskey.service"
    path.write_text(unit)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    r = subprocess.run(["systemd-analyze", "verify", "--user", str(path)], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, XDG_RUNTIME_DIR=str(runtime)))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert not [l for l in out.splitlines() if "localpasskey.service" in l], out
    exec_start = next(l for l in unit.splitlines() if l.startswith("ExecStart="))[len("ExecStart="):].split()
    assert exec_start[0] == str(lpk.binary()) and "--presence" in exec_start, exec_start
    r = subprocess.run(exec_start + ["--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{exec_start}: {r.stderr}"
