"""The TPM custody's promises (DESIGN.md 1 and 2), checked from the outside:

1. no file under the data directory holds a private key the TPM did not wrap
   (a scanner that provably finds software keys finds none here);
2. the stored key blobs are TPM objects with fixedTPM | fixedParent |
   sensitiveDataOrigin | userWithAuth | sign, read by tpm2-tools' own decoder;
3. the blobs work only in the TPM that made them;
4. a wrong PIN is counted by the TPM itself (its PIN index, not the
   dictionary-attack counter); no PIN or PIN hash is on disk;
5. `localpasskey doctor` checks the TPM and says how to fix what is missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin

import lpk
import tpm_gate

pytestmark = pytest.mark.custody("tpm")

# The order of the P-256 group: a private scalar is in [1, n-1].
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
DB = "credentials.sqlite3"

# TPMA_OBJECT names as tpm2_print spells them.
# noDA: a DA lockout, which anyone can cause, must never stop a signature.
CREDENTIAL_ATTRIBUTES = {"fixedtpm", "fixedparent", "sensitivedataorigin", "userwithauth", "noda", "sign"}
# The vault: usable only through its policy (no userwithauth), its authValue never changeable.
VAULT_ATTRIBUTES = {"fixedtpm", "fixedparent", "sensitivedataorigin", "adminwithpolicy", "noda", "restricted", "decrypt"}
# The seal in front of it: policy only, and DA-protected (no noda).
SEAL_ATTRIBUTES = {"fixedtpm", "fixedparent", "adminwithpolicy"}


# --------------------------------------------------------------------------- helpers


def _register_two(daemon) -> list[lpk.Registered]:
    rp = lpk.RelyingParty()
    client = daemon.client()
    regs = [
        rp.register(client, user_name="scan-a", resident_key="required"),
        rp.register(client, user_name="scan-b", resident_key="discouraged"),
    ]
    for r in regs:  # and each signs
        assert rp.authenticate(client, allow=[r.credential_id])[0].credential_id == r.credential_id
    return regs


def _public_point(reg: lpk.Registered) -> tuple[int, int]:
    pk = reg.credential_data.public_key  # fido2 CoseKey: -2 x, -3 y
    return int.from_bytes(pk[-2], "big"), int.from_bytes(pk[-3], "big")


def checkpointed_copy(data_dir: Path, dest: Path) -> Path:
    """Copy the data dir and fold the copy's WAL into its database file."""
    shutil.copytree(data_dir, dest)
    con = sqlite3.connect(str(dest / DB))
    try:
        busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "checkpoint of the copy did not complete"
    finally:
        con.close()
    wal = dest / f"{DB}-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "WAL not truncated"
    return dest


def find_private_keys(directory: Path, points: set[tuple[int, int]]) -> tuple[list[tuple], int]:
    """Every 32-byte window of every file, read as a big- and a little-endian
    integer d (0 < d < n), is tried as a P-256 private key: d·G compared with
    the credentials' public keys. Returns (hits as (file, offset, byte order,
    public point), distinct scalars tried)."""
    hits, tried, done = [], 0, set()
    curve = ec.SECP256R1()
    for f in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = f.read_bytes()
        for i in range(len(data) - 31):
            w = data[i:i + 32]
            for order in ("big", "little"):
                d = int.from_bytes(w, order)
                if d == 0 or d >= P256_N or d in done:
                    continue
                done.add(d)
                tried += 1
                pn = ec.derive_private_key(d, curve).public_key().public_numbers()
                if (pn.x, pn.y) in points:
                    hits.append((f.name, i, order, (pn.x, pn.y)))
    return hits, tried


def _rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(str(db))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _split_blob(blob: bytes, tag: bytes) -> tuple[bytes, bytes]:
    """`tag || TPM2B_PUBLIC || TPM2B_PRIVATE` -> (TPM2B_PUBLIC, TPM2B_PRIVATE), sizes included."""
    assert blob[:4] == tag, f"blob starts with {blob[:4]!r}, expected {tag!r}"
    n = int.from_bytes(blob[4:6], "big")
    public = blob[4:6 + n]
    private = blob[6 + n:]
    m = int.from_bytes(private[:2], "big")
    assert len(private) == 2 + m, f"TPM2B_PRIVATE of {len(private)} bytes declares {m}"
    return public, private


def tpm2_print_public(public: bytes, tmp: Path) -> dict[str, str]:
    """Decode a TPM2B_PUBLIC with `tpm2_print -t TPM2B_PUBLIC` (tpm2-tools, not our code).

    Its output is YAML-like: `name:` then indented `value:` / `raw:` lines, or `name: value`."""
    f = tmp / f"public-{hashlib.sha256(public).hexdigest()[:8]}.bin"
    f.write_bytes(public)
    r = subprocess.run(["tpm2_print", "-t", "TPM2B_PUBLIC", str(f)], capture_output=True, text=True,
                       timeout=30, env=lpk.tss_env())
    assert r.returncode == 0, f"tpm2_print failed: {r.stderr}"
    out: dict[str, str] = {}
    section = None
    for line in r.stdout.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            key, _, value = line.partition(":")
            section = key.strip()
            if value.strip():
                out[section] = value.strip()
        elif line.strip().startswith("value:") and section:
            out[section] = line.split(":", 1)[1].strip()
        elif line.strip().startswith("raw:") and section:
            out[section + ".raw"] = line.split(":", 1)[1].strip()
    return out


# --------------------------------------------------------------------------- 1. no unwrapped key on disk


def test_no_private_key_on_disk_and_the_scanner_can_fail(make_daemon, tmp_path):
    tpm_daemon = make_daemon(name="tpm")
    soft_daemon = make_daemon(name="soft", custody="soft")  # the positive control
    results = {}
    for d in (tpm_daemon, soft_daemon):
        regs = _register_two(d)
        copy = checkpointed_copy(d.data_dir, tmp_path / f"copy-{d.custody}")
        points = {_public_point(r) for r in regs}
        assert len(points) == 2
        start = time.monotonic()
        hits, tried = find_private_keys(copy, points)
        results[d.custody] = (hits, tried, time.monotonic() - start, sum(f.stat().st_size for f in copy.iterdir()))
        if d.custody == "soft":
            soft_points = points
    print("scan:", {k: f"{len(v[0])} hits, {v[1]} windows, {v[3]} bytes, {v[2]:.1f} s" for k, v in results.items()})
    soft_hits, soft_tried, _, _ = results["soft"]
    # The scanner works: with software keys it finds both private keys.
    assert {h[3] for h in soft_hits} == soft_points, f"the scanner missed software keys: {soft_hits}"
    # With the TPM: nothing, although as many windows were tried.
    tpm_hits, tpm_tried, _, _ = results["tpm"]
    assert tpm_tried > 1000 and tpm_tried > soft_tried // 4, (tpm_tried, soft_tried)
    assert tpm_hits == [], f"private keys in the clear under the TPM custody's data dir: {tpm_hits}"


# --------------------------------------------------------------------------- 2. the blobs are TPM objects


def test_key_blobs_are_non_exportable_tpm_objects(daemon, tmp_path):
    regs = _register_two(daemon)
    copy = checkpointed_copy(daemon.data_dir, tmp_path / "copy")
    rows = _rows(copy / DB, "SELECT id, key_blob FROM credentials")
    assert {bytes(r[0]) for r in rows} == {r.credential_id for r in regs}
    by_id = {r.credential_id: r for r in regs}
    for cred_id, blob in rows:
        blob = bytes(blob)
        public, private = _split_blob(blob, b"LPK\x01")
        assert len(private) > 2, "no TPM2B_PRIVATE"
        p = tpm2_print_public(public, tmp_path)
        attrs = set(p["attributes"].split("|"))
        assert attrs == CREDENTIAL_ATTRIBUTES, f"credential key attributes {sorted(attrs)}"
        assert "decrypt" not in attrs and "restricted" not in attrs
        assert p["type"] == "ecc" and p["curve-id"] == "NIST p256", p
        assert p["scheme"] == "ecdsa" and p["scheme-halg"] == "sha256", p
        # The public area is the credential's public key, as the RP registered it.
        x, y = _public_point(by_id[bytes(cred_id)])
        assert int(p["x"], 16) == x and int(p["y"], 16) == y, "TPM public area is another key"
    # The vault: a storage key that only its policy (epoch counter + R) opens,
    # behind a seal that only the PIN index and the PIN open.
    vault = tpm_gate.parse_vault(tpm_gate.stored_vault(copy / DB))
    v = tpm2_print_public(vault.public, tmp_path)
    attrs = set(v["attributes"].split("|"))
    assert attrs == VAULT_ATTRIBUTES, f"vault attributes {sorted(attrs)}"
    assert "userwithauth" not in attrs
    assert len(vault.seals) == 1
    s = tpm2_print_public(vault.seals[0][1], tmp_path)
    attrs = set(s["attributes"].split("|"))
    assert attrs == SEAL_ATTRIBUTES, f"seal attributes {sorted(attrs)}"
    assert "noda" not in attrs and "userwithauth" not in attrs
    assert s["type"] == "keyedhash", s


# --------------------------------------------------------------------------- 3. only in the TPM that made them


def test_blobs_work_only_in_their_own_tpm(make_daemon, make_swtpm, tmp_path):
    d = make_daemon()
    rp = lpk.RelyingParty()
    reg = rp.register(d.client(), resident_key="required")
    d.stop()
    moved = tmp_path / "moved-data"
    shutil.copytree(d.data_dir, moved)

    other_tpm = make_swtpm()
    assert other_tpm.tcti != d.tpm.tcti
    d2 = make_daemon(name="elsewhere", tpm=other_tpm, data_dir=moved)
    assert d2.pin == lpk.PIN, "the moved store should already have its PIN"
    assert [c["credential_id"] for c in d2.list_json()] == [reg.credential_id.hex()]
    ctap2 = d2.ctap2()
    _, cdh = lpk.client_data_hash()
    for allow in (None, [{"type": "public-key", "id": reg.credential_id}]):
        with pytest.raises(CtapError) as e:
            ctap2.get_assertion("example.com", cdh, allow_list=allow)
        code = lpk.ctap_error(e)
        print(f"GetAssertion in another TPM: {lpk.status_name(code)}")
        assert code not in (lpk.NO_CREDENTIALS, lpk.PIN_NOT_SET), (
            f"{lpk.status_name(code)}: the moved store was not used, the test proves nothing"
        )
    with pytest.raises(CtapError):
        d2.client_pin(2, ctap2).get_pin_token(lpk.PIN, lpk.PERM_GA, "example.com")
    d2.stop()

    # Positive control: back in its own TPM, the same store signs.
    d.start()
    assert rp.authenticate(d.client())[0].credential_id == reg.credential_id


# --------------------------------------------------------------------------- 4. the PIN is the TPM's business


def test_wrong_pin_is_counted_by_the_tpm_and_no_pin_is_on_disk(daemon, tmp_path):
    tpm = daemon.tpm
    vault = tpm_gate.parse_vault(tpm_gate.stored_vault(daemon.data_dir / DB))
    assert tpm_gate.pin_counts(tpm, vault.pin_index) == (0, 8)
    assert tpm.variable_property("TPM2_PT_MAX_AUTH_FAIL") == 4, "the daemon set the DA parameters"
    before = tpm.variable_property("TPM2_PT_LOCKOUT_COUNTER")
    cp = daemon.client_pin(2)
    cp.get_pin_token(daemon.pin, lpk.PERM_GA, "example.com")
    with pytest.raises(CtapError) as e:
        cp.get_pin_token("999999", lpk.PERM_GA, "example.com")
    assert lpk.ctap_error(e) == lpk.PIN_INVALID
    assert tpm_gate.pin_counts(tpm, vault.pin_index) == (1, 8), "the TPM's PIN index did not count it"
    # Built-in UV goes through the TPM the same way.
    daemon.presence("pin 888888")
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError) as e:
        daemon.ctap2().make_credential(cdh, {"id": "example.com"}, {"id": b"u", "name": "u"},
                                       [{"type": "public-key", "alg": -7}])
    assert lpk.ctap_error(e) == lpk.UV_INVALID
    assert tpm_gate.pin_counts(tpm, vault.pin_index) == (2, 8)
    assert daemon.pin_retries()[0] == 6
    assert tpm.variable_property("TPM2_PT_LOCKOUT_COUNTER") == before, "typing mistakes reached DA"
    cp.get_pin_token(daemon.pin, lpk.PERM_GA, "example.com")
    assert tpm_gate.pin_counts(tpm, vault.pin_index) == (0, 8), "a right PIN resets the count"

    # Nothing on disk to guess the PIN from offline: not the PIN, nor its
    # CTAP hash (LEFT(SHA-256(PIN), 16)), nor SHA-256(PIN).
    _register_two(daemon)
    copy = checkpointed_copy(daemon.data_dir, tmp_path / "copy")
    pin = daemon.pin.encode()
    needles = {"PIN": pin, "pinHash": hashlib.sha256(pin).digest()[:16], "SHA-256(PIN)": hashlib.sha256(pin).digest()}
    for f in copy.iterdir():
        data = f.read_bytes()
        for name, needle in needles.items():
            assert needle not in data, f"{name} found in {f.name}"


# --------------------------------------------------------------------------- 5. a clean exit


def test_sigterm_leaves_no_objects_in_the_tpm(daemon):
    """A daemon stopped with SIGTERM flushes what it loaded. Without a
    resource manager (swtpm, as in tests and simulation) leftovers would fill
    the TPM's 3 object slots and the next daemon would fail (TPM_RC_OBJECT_MEMORY)."""
    rp = lpk.RelyingParty()
    reg = rp.register(daemon.client(), resident_key="required")
    daemon.emulate_resource_manager = False  # no help from the harness this time
    daemon.stop()
    left = daemon.tpm.transient_handles()
    try:
        daemon.start()
        used = rp.authenticate(daemon.client())
        err = None
    except Exception as e:  # noqa: BLE001 - reported below with what was left
        used, err = [], e
    if isinstance(err, lpk.DaemonStartError):
        what = "the next daemon did not start: " + str(err).strip().splitlines()[-2][:200]
    elif err is not None:
        cause = getattr(err, "cause", err)
        what = "the next daemon's GetAssertion: " + (
            lpk.status_name(int(cause.code)) if isinstance(cause, CtapError) else repr(err))
    else:
        what = "the next daemon worked"
    assert left == [] and err is None, f"after SIGTERM the TPM still holds transient objects {left}; {what}"
    assert used[0].credential_id == reg.credential_id


# --------------------------------------------------------------------------- 6. doctor


def test_doctor(make_swtpm, tmp_path):
    tpm = make_swtpm()
    data = tmp_path / "doctor-data"
    r = lpk.run_cli("doctor", "--transport", "udp", "--tpm", tpm.tcti, "--data-dir", str(data))
    assert r.returncode == 0, f"doctor found problems with a working swtpm:\n{r.stdout}\n{r.stderr}"
    out = r.stdout
    assert "P-256" in out and "supported" in out.lower(), out
    assert "FAIL" not in out, out
    assert not data.exists(), "doctor created the data directory"

    missing = "/dev/tpmrm0"
    assert not Path(missing).exists(), "this test expects a machine without a TPM device"
    r = lpk.run_cli("doctor", "--tpm", f"device:{missing}", "--data-dir", str(data))
    assert r.returncode != 0, f"doctor passed without a TPM:\n{r.stdout}"
    assert "FAIL" in r.stdout, r.stdout
    assert any(l.strip().startswith("fix:") for l in r.stdout.splitlines()), f"no fix line:\n{r.stdout}"
    assert "panicked" not in r.stderr, r.stderr


# --------------------------------------------------------------------------- 7. small secrets sealed


def test_cred_blob_and_large_blob_key_are_not_in_the_data_directory(daemon, tmp_path):
    """credBlob and largeBlobKey are sealed by the TPM under the vault: a copy
    of the data directory holds neither (a scanner that finds them in the
    software custody's store shows the scan works)."""
    from test_ctap21 import raw_assert, raw_register

    rp = lpk.RelyingParty()
    blob = b"credBlob-secret-" + os.urandom(16)
    reg, _ = raw_register(daemon, rp, "sealed", extensions={"credBlob": blob, "largeBlobKey": True}, ed=True)
    a = raw_assert(daemon, rp, reg, {"credBlob": True, "largeBlobKey": True}, ed=True)
    key = a.large_blob_key
    assert key is not None and len(key) == 32
    assert a.auth_data.extensions["credBlob"] == blob, "credBlob did not come back"
    copy = checkpointed_copy(daemon.data_dir, tmp_path / "copy")
    for f in copy.iterdir():
        data = f.read_bytes()
        assert blob not in data, f"credBlob in the clear in {f.name}"
        assert key not in data, f"largeBlobKey in the clear in {f.name}"
    # After a restart (vault locked, then unlocked by a new token) both still come back.
    daemon.restart()
    a = raw_assert(daemon, rp, reg, {"credBlob": True, "largeBlobKey": True}, ed=True)
    assert a.large_blob_key == key and a.auth_data.extensions["credBlob"] == blob


# --------------------------------------------------------------------------- 8. nothing left loaded


def test_after_a_sign_in_no_key_stays_loaded_in_a_tpm_others_can_reach(daemon):
    """swtpm has no resource manager: another process of the user could use a
    loaded key with its empty authValue. After the assertion the token is
    spent, so the vault is locked and only the primary (no authValue to
    guess, no children of its own) stays loaded."""
    rp = lpk.RelyingParty()
    reg = rp.register(daemon.client(), resident_key="required")
    before = daemon.tpm.transient_handles()
    assert rp.authenticate(daemon.client(), allow=[reg.credential_id])[0].credential_id == reg.credential_id
    after = daemon.tpm.transient_handles()
    print("transient objects before/after the sign-in:", before, after)
    assert len(after) == 1, f"objects left loaded after the sign-in: {after}"
