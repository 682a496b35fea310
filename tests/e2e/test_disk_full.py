"""A full disk: refused with the right status, the person told why, nothing
acknowledged lost, and everything back once there is space.

The data directory is a 4 MiB tmpfs of the test's own, filled to the last
byte by a file the test then removes.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from fido2.client import ClientError
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin

import lpk
from ctap_common import EXTENSIONS

pytestmark = pytest.mark.custody("soft")


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small file system")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path) -> None:
    """Write until the file system has not one byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    if os.write(fd, b"\0" * size) < size:
                        break
                except OSError:
                    break
    finally:
        os.close(fd)


def _code(e: ClientError) -> int:
    assert isinstance(e.cause, CtapError), e
    return e.cause.code


def test_a_full_disk_refuses_says_why_and_loses_nothing(make_daemon, rp, small_disk):
    d = make_daemon(data_dir=small_disk / "data")
    client = lambda: d.client(extensions=EXTENSIONS)  # noqa: E731
    alice = rp.register(client(), user_name="alice", resident_key="required")
    rp.authenticate(client(), allow=[alice.credential_id])
    counter_before = max(alice.counters)

    # A token from before the disk filled: checking a PIN writes its
    # counters, which a full disk refuses too.
    ctap2 = d.ctap2()
    cp = ClientPin(ctap2, lpk.PROTOCOLS[2]())
    token = cp.get_pin_token(d.pin, ClientPin.PERMISSION.MAKE_CREDENTIAL | ClientPin.PERMISSION.GET_ASSERTION,
                             "example.com")

    filler = small_disk / "filler"
    _fill(filler)
    # A sign-in cannot write its counter: it is refused, not answered with
    # a counter that a crash could take back.
    _, cdh = lpk.client_data_hash(origin="https://example.com")
    with pytest.raises(CtapError) as e:
        ctap2.get_assertion("example.com", cdh, allow_list=[{"type": "public-key", "id": alice.credential_id}],
                            **lpk.pin_uv_param(2, token, cdh))
    assert e.value.code == CtapError.ERR.OTHER
    # A registration has no room: MakeCredential's own status for it (with
    # a token taken while there was space again).
    filler.unlink()
    token = cp.get_pin_token(d.pin, ClientPin.PERMISSION.MAKE_CREDENTIAL, "example.com")
    _fill(filler)
    _, cdh = lpk.client_data_hash(origin="https://example.com", kind="webauthn.create")
    with pytest.raises(CtapError) as e:
        ctap2.make_credential(cdh, {"id": "example.com", "name": "Example"},
                              {"id": os.urandom(16), "name": "bob", "displayName": "Bob"},
                              [{"type": "public-key", "alg": lpk.ES256}], options={"rk": True},
                              **lpk.pin_uv_param(2, token, cdh))
    assert e.value.code == CtapError.ERR.KEY_STORE_FULL
    # A browser's whole ceremony stops at the PIN check, with the same status.
    with pytest.raises(ClientError) as ce:
        rp.authenticate(client(), allow=[alice.credential_id])
    assert _code(ce.value) == CtapError.ERR.OTHER
    log = d.stderr()
    assert "the disk holding the passkeys is full" in log, "the daemon's log does not say why"
    reports = log.count("scripted report: The disk that holds LocalPasskey's data is full")
    assert reports >= 2, f"the person was told {reports} times"
    assert lpk.assert_alive(d) is None

    filler.unlink()
    # Space again: the passkey made before still signs, its counter goes on.
    rp.authenticate(client(), allow=[alice.credential_id])
    assert max(alice.counters) > counter_before
    bob = rp.register(client(), user_name="bob", resident_key="required")
    # And all of it survives a crash.
    d.kill()
    d.start()
    rp.authenticate(client(), allow=[alice.credential_id])
    rp.authenticate(client(), allow=[bob.credential_id])
    names = {c["user_name"] for c in d.list_json()}
    assert names == {"alice", "bob"}
