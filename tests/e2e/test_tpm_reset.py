"""A TPM Reset under the running daemon.

At resume from hibernation a laptop's firmware resets the TPM: every loaded
object and session is gone, NV (the PIN index, the counters) stays. Here
swtpm is stopped and started again on the same state with startup-clear,
which is the same reset. Before the custody learnt to notice, every later
sign-in failed with CTAP2_ERR_OTHER until the daemon was restarted; now the
next command rebuilds the primary, the session and the open vault, and
sign-ins and registrations carry on, each verified by the relying party.
"""

from __future__ import annotations

import pytest

import lpk

pytestmark = pytest.mark.custody("tpm")


def test_sign_in_and_register_after_the_tpm_is_reset_under_the_daemon(daemon, rp):
    client = daemon.client()
    reg = rp.register(client, user_name="alice", resident_key="required")
    rp.authenticate(client, allow=[reg.credential_id])

    daemon.tpm.stop()
    daemon.tpm.start()

    for _ in range(2):
        used = rp.authenticate(client, allow=[reg.credential_id])
        assert [u.credential_id for u in used] == [reg.credential_id]
    assert reg.counters == sorted(set(reg.counters)), "the signature counter went back"
    bob = rp.register(client, user_name="bob", resident_key="required")
    used = rp.authenticate(client, allow=[bob.credential_id])
    assert [u.credential_id for u in used] == [bob.credential_id]
    assert "TPM reset" in daemon.stderr(), "the daemon did not say what happened"
    # The reset spent no PIN try.
    assert daemon.client_pin().get_pin_retries()[0] == 8


def test_a_second_reset_and_a_new_daemon_still_work(make_daemon, rp):
    d = make_daemon()
    client = d.client()
    reg = rp.register(client, user_name="carol", resident_key="required")
    for _ in range(2):
        d.tpm.stop()
        d.tpm.start()
        rp.authenticate(client, allow=[reg.credential_id])
    d.stop()
    d.start()
    rp.authenticate(d.client(), allow=[reg.credential_id])


def test_lpk_swtpm_restart_is_a_reset(make_swtpm):
    """The reset these tests play is a real one: the TPM's resetCount
    (tpm2_readclock) moves."""
    tpm = make_swtpm()

    def reset_count() -> int:
        out = tpm.tool("tpm2_readclock").stdout
        return int(next(l for l in out.splitlines() if "reset_count" in l).split(":")[1])

    before = reset_count()
    tpm.stop()
    tpm.start()
    assert reset_count() == before + 1
