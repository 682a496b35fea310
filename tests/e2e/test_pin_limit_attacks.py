"""The PIN limit and revocation, attacked through the daemon by someone with
the user's privileges who has read this source: they own the data directory
(and every old copy of it), may restart the daemon at will, and talk to the
TPM with tpm2-tools and the owner's empty authorisation.

Each test fails if the attacker wins, and prints what the attacker got. The
figures are also written to test-output/attack-figures.json for the README.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fido2.ctap import CtapError

import lpk
import tpm_gate

pytestmark = pytest.mark.custody("tpm")

DB = "credentials.sqlite3"
ROOT = Path(__file__).resolve().parents[2]


def record(name: str, value) -> None:
    out = ROOT / "test-output"
    out.mkdir(exist_ok=True)
    f = out / f"attack-figure-{name}.json"
    f.write_text(json.dumps({name: value}))
    print(f"FIGURE {name}: {value}")


def restore(snapshot: Path, data_dir: Path) -> None:
    """Put the data directory back exactly as it was (database, WAL, everything)."""
    shutil.rmtree(data_dir)
    shutil.copytree(snapshot, data_dir)


def snapshot(data_dir: Path, dest: Path) -> Path:
    shutil.copytree(data_dir, dest)
    return dest


def token_status(daemon, pin: str) -> int | None:
    """getPinUvAuthTokenUsingPinWithPermissions: None on success, else the CTAP status."""
    try:
        daemon.client_pin(2).get_pin_token(pin, lpk.PERM_GA, "example.com")
        return None
    except CtapError as e:
        return e.code


def test_rolling_back_the_data_directory_and_resetting_the_lockout_gives_at_most_8_guesses(make_daemon, tmp_path):
    d = make_daemon()
    tpm = d.tpm
    d.stop()
    snap = snapshot(d.data_dir, tmp_path / "snapshot-after-pin-set")
    guesses = 0  # wrong PINs tried, each on a fresh copy of the directory and a cleared lockout
    lockout_resets_refused = 0
    answers = []
    for attempt in range(20):
        restore(snap, d.data_dir)
        # The attacker clears the TPM's DA lockout with the empty lockout auth.
        r = tpm.tool("tpm2_dictionarylockout", "-c", check=False)
        if r.returncode != 0:
            lockout_resets_refused += 1
        d.start()
        # The restored copy says 8; the daemon reports the TPM's own count.
        assert d.pin_retries()[0] == 8 - guesses, "retries shown from the copy, not from the TPM"
        status = token_status(d, "000000")
        d.stop()
        answers.append(lpk.status_name(status) if status else "OK")
        assert status is not None, "a wrong PIN was accepted"
        assert status in (lpk.PIN_INVALID, lpk.PIN_AUTH_BLOCKED, lpk.PIN_BLOCKED), answers
        guesses += 1
        if status == lpk.PIN_BLOCKED:
            break
    print("answers:", answers)
    vault = tpm_gate.parse_vault(tpm_gate.stored_vault(d.data_dir / DB))
    counted, limit = tpm_gate.pin_counts(tpm, vault.pin_index)
    record("rollback_guesses_before_blocked", guesses)
    assert guesses <= 8, f"the attacker got {guesses} wrong guesses"
    assert (counted, limit) == (guesses, 8), "the TPM's PIN index did not count every guess"
    assert answers[-1] == lpk.status_name(lpk.PIN_BLOCKED), "never blocked"
    assert lockout_resets_refused == len(answers), "the empty lockout authorisation still clears DA"
    # The right PIN is refused too, whatever copy of the data directory is used.
    restore(snap, d.data_dir)
    d.start()
    assert token_status(d, lpk.PIN) == lpk.PIN_BLOCKED
    assert d.pin_retries()[0] == 0
    assert tpm_gate.pin_counts(tpm, vault.pin_index) == (8, 8), "the right PIN reset nothing"


def test_the_owner_route_around_the_pin_index_is_bounded_by_the_taken_lockout(make_daemon, tmp_path):
    """tpm2-tools as the attacker: rewrite the PIN index (refused), reset or
    re-parameterise DA (refused), and guess straight at the seal (counted by DA)."""
    d = make_daemon()
    tpm = d.tpm
    d.stop()
    vault = tpm_gate.parse_vault(tpm_gate.stored_vault(d.data_dir / DB))
    idx = f"{vault.pin_index:#x}"
    zeros = tmp_path / "zeros"
    zeros.write_bytes(bytes(8))
    routes = {}
    # 1. Write pinCount back to 0 with the owner's authorisation: no ownerwrite.
    r = tpm.tool("tpm2_nvwrite", "-C", "o", "-i", str(zeros), idx, check=False)
    routes["owner rewrites the PIN index"] = "refused" if r.returncode != 0 else "ALLOWED"
    # 2. ... with the index's own authorisation and a guessed PIN: no authwrite.
    r = tpm.tool("tpm2_nvwrite", "-C", idx, "-P", "hex:" + "00" * 32, "-i", str(zeros), idx, check=False)
    routes["index rewrites itself"] = "refused" if r.returncode != 0 else "ALLOWED"
    # 3. Reset the DA counter, or raise maxTries, with the empty lockout auth.
    r = tpm.tool("tpm2_dictionarylockout", "-c", check=False)
    routes["DA lockout reset"] = "refused" if r.returncode != 0 else "ALLOWED"
    r = tpm.tool("tpm2_dictionarylockout", "-s", "-n", "1000", "-t", "1", "-l", "1", check=False)
    routes["DA re-parameterised"] = "refused" if r.returncode != 0 else "ALLOWED"
    # 4. Delete the PIN index (allowed) and guess through the daemon: the seal
    #    now fails at PolicySecret for every PIN, the right one too (a
    #    denial of service the owner always has), and nothing is unsealed.
    r = tpm.tool("tpm2_nvundefine", "-C", "o", idx, check=False)
    routes["owner deletes the PIN index"] = "allowed" if r.returncode == 0 else "refused"
    d.start()
    status = token_status(d, lpk.PIN)
    routes["right PIN after the index is gone"] = lpk.status_name(status) if status else "OK"
    d.stop()
    print(json.dumps(routes, indent=2))
    record("owner_routes", routes)
    assert routes["owner rewrites the PIN index"] == "refused"
    assert routes["index rewrites itself"] == "refused"
    assert routes["DA lockout reset"] == "refused"
    assert routes["DA re-parameterised"] == "refused"
    assert status is not None, "the vault opened without its PIN index"
    # (Re-creating the index with the same Name and a chosen authValue, then
    # guessing at the seal, is crates/lp-tpm/tests/pin_gate.rs: it gets
    # exactly DA_MAX_TRIES guesses before the TPM locks out.)


def test_after_reset_an_old_copy_of_the_data_directory_and_the_old_pin_sign_nothing(make_daemon, tmp_path):
    d = make_daemon()
    rp = lpk.RelyingParty()
    reg = rp.register(d.client(), resident_key="required")
    assert rp.authenticate(d.client())[0].credential_id == reg.credential_id
    d.stop()
    snap = snapshot(d.data_dir, tmp_path / "before-reset")
    d.start()
    d.presence("approve")
    d.ctap2().reset()
    d.stop()
    # The attacker puts the old directory back and uses the old PIN.
    restore(snap, d.data_dir)
    d.start()
    status = token_status(d, lpk.PIN)
    assert status is not None, "the old PIN still opens the vault after Reset"
    print("old PIN after Reset:", lpk.status_name(status))
    d.presence("pin " + lpk.PIN)
    with pytest.raises(Exception):
        rp.authenticate(d.client(), allow=[reg.credential_id])
    # And no assertion at all, with any token the daemon will hand out.
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError):
        d.ctap2().get_assertion("example.com", cdh, allow_list=[{"type": "public-key", "id": reg.credential_id}])
    record("old_pin_after_reset", lpk.status_name(status))


def test_after_a_pin_change_an_old_copy_and_the_old_pin_sign_nothing(make_daemon, tmp_path):
    d = make_daemon()
    rp = lpk.RelyingParty()
    reg = rp.register(d.client(), resident_key="required")
    d.stop()
    old = snapshot(d.data_dir, tmp_path / "before-change")
    d.start()
    new_pin = "135790"
    d.change_pin(lpk.PIN, new_pin)
    d.stop()
    current = snapshot(d.data_dir, tmp_path / "after-change")
    # The attacker puts the old directory back and uses the old PIN.
    restore(old, d.data_dir)
    d.start()
    status = token_status(d, lpk.PIN)
    assert status is not None, "the old PIN opens the old copy after a PIN change"
    status_new = token_status(d, new_pin)
    assert status_new is not None, "the old copy opened with the new PIN"
    d.presence("pin " + lpk.PIN)
    _, cdh = lpk.client_data_hash()
    with pytest.raises(CtapError):
        d.ctap2().get_assertion("example.com", cdh, allow_list=[{"type": "public-key", "id": reg.credential_id}])
    d.stop()
    print("old copy, old PIN:", lpk.status_name(status), "; old copy, new PIN:", lpk.status_name(status_new))
    record("old_copy_after_pin_change", [lpk.status_name(status), lpk.status_name(status_new)])
    # Positive control: the current directory and the new PIN still sign.
    restore(current, d.data_dir)
    d.start()
    d.pin = new_pin
    assert token_status(d, new_pin) is None
    d.presence("pin " + new_pin)
    assert rp.authenticate(d.client(), allow=[reg.credential_id])[0].credential_id == reg.credential_id


FILLER_FIRST = 0x01A00000


def _fill_nv(tpm) -> list[int]:
    """Define NV indices until the TPM has no room left, not even for 8 bytes."""
    defined = []
    handle = FILLER_FIRST
    for size in (2048, 256, 32, 8, 1):
        while True:
            r = tpm.tool("tpm2_nvdefine", f"{handle:#x}", "-C", "o", "-s", str(size), "-a", "ownerread|ownerwrite",
                         check=False)
            if r.returncode != 0:
                break
            defined.append(handle)
            handle += 1
            assert len(defined) < 2000, "the TPM's NV never filled up"
    return defined


def test_a_tpm_that_cannot_make_the_pin_index_sets_no_pin_unless_the_weaker_guarantee_is_accepted_and_migrates_later(make_daemon):
    d = make_daemon(pin=None)
    tpm = d.tpm
    d.stop()
    fillers = _fill_nv(tpm)
    print("NV indices defined to fill the TPM:", len(fillers))
    d.start()
    with pytest.raises(CtapError) as e:
        d.set_pin(lpk.PIN)
    assert lpk.ctap_error(e) == lpk.NOT_ALLOWED, lpk.status_name(lpk.ctap_error(e))
    assert "PIN index" in d.stderr(), "the daemon did not say why"
    d.stop()
    r = lpk.run_cli("doctor", "--transport", "udp", "--tpm", tpm.tcti, "--data-dir", str(d.data_dir))
    assert "cannot make" in r.stdout and "FAIL" in r.stdout, r.stdout

    weak = make_daemon(name="weak", tpm=tpm, pin=None, extra_args=("--accept-weak-pin-limit",))
    assert "accept-weak-pin-limit" in weak.stderr()
    weak.set_pin(lpk.PIN)
    assert tpm_gate.stored_vault(weak.data_dir / DB)[:4] == b"LPV\x01", "expected a vault without a PIN index"
    before = tpm.variable_property("TPM2_PT_LOCKOUT_COUNTER")
    assert token_status(weak, "000000") == lpk.PIN_INVALID
    assert tpm.variable_property("TPM2_PT_LOCKOUT_COUNTER") == before + 1, "DA is the only bound here"
    r = lpk.run_cli("doctor", "--transport", "udp", "--tpm", tpm.tcti, "--data-dir", str(weak.data_dir))
    assert "dictionary-attack lockout alone" in r.stdout, r.stdout
    assert token_status(weak, lpk.PIN) is None, "doctor disturbed the running daemon"

    # Once the TPM can make the PIN index, the next right PIN moves the vault
    # onto one, and no passkey is lost.
    rp = lpk.RelyingParty()
    reg = rp.register(weak.client(), resident_key="required")
    weak.stop()
    for h in fillers:
        tpm.tool("tpm2_nvundefine", "-C", "o", f"{h:#x}")
    weak.start()
    assert token_status(weak, lpk.PIN) is None
    vault = tpm_gate.parse_vault(tpm_gate.stored_vault(weak.data_dir / DB))
    assert vault.legacy_vault, "migrated from a vault without an epoch policy"
    assert tpm_gate.pin_counts(tpm, vault.pin_index) == (0, 8)
    assert token_status(weak, "000000") == lpk.PIN_INVALID
    assert tpm_gate.pin_counts(tpm, vault.pin_index) == (1, 8), "now counted by the PIN index"
    assert rp.authenticate(weak.client(), allow=[reg.credential_id])[0].credential_id == reg.credential_id
