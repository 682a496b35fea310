"""The account chooser in our own prompt (CTAP 2.1 §6.2.2, step 12.2.3:
an authenticator with a display).

A username-less sign-in (no allowList) at a site with several discoverable
passkeys lists them in our prompt (RP ID, user name, display name); the
person picks one and verifies, and the answer is that one credential with
userSelected and without numberOfCredentials, so the platform has nothing
left to ask. The scripted person (`--presence script:FILE`) picks with
`choose <n>`, the n-th account shown; its other steps approve without a
pick, as a prompt that cannot show the list would, and then the platform
chooses as before (numberOfCredentials, GetNextAssertion).
"""

from __future__ import annotations

import os
import re
import stat
import textwrap

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin

import lpk

RP_ID = "chooser.example"
GA = lpk.PERM_GA


def _register(ctap2, cp, name: str, rp_id: str = RP_ID) -> tuple[bytes, bytes]:
    """A discoverable credential made with a built-in-UV token. Returns (credential id, COSE key)."""
    token = cp.get_uv_token(lpk.PERM_MC, rp_id)
    _, cdh = lpk.client_data_hash(origin=f"https://{rp_id}", kind="webauthn.create")
    att = ctap2.make_credential(
        cdh, {"id": rp_id, "name": rp_id}, {"id": os.urandom(16), "name": name, "displayName": name.title()},
        [{"type": "public-key", "alg": lpk.ES256}], options={"rk": True}, **lpk.pin_uv_param(2, token, cdh),
    )
    cose = lpk.verify_attestation_twice(att, cdh)
    return att.auth_data.credential_data.credential_id, cose


def _assert(ctap2, token: bytes | None = None, allow: list[bytes] | None = None, options=None):
    _, cdh = lpk.client_data_hash(origin=f"https://{RP_ID}")
    auth = lpk.pin_uv_param(2, token, cdh) if token is not None else {}
    a = ctap2.get_assertion(
        RP_ID, cdh, allow_list=[{"type": "public-key", "id": i} for i in allow] if allow else None,
        options=options, **auth,
    )
    return a, cdh


def _status(fn, *args, **kw) -> int:
    with pytest.raises(CtapError) as e:
        fn(*args, **kw)
    return lpk.ctap_error(e)


def _listed(daemon) -> list[str]:
    """The account list of every prompt the scripted person was shown ("-": none)."""
    return re.findall(r'scripted \w+ rp=.*? accounts=("[^"]*"|-)', daemon.stderr())


def _three(daemon):
    ctap2 = daemon.ctap2()
    cp = ClientPin(ctap2, lpk.PROTOCOLS[2]())
    made = {name: _register(ctap2, cp, name) for name in ("alice", "bob", "carol")}
    # Another site's account is never offered here.
    _register(ctap2, cp, "zed", rp_id="other.example")
    return ctap2, cp, made


SHOWN = '"carol (Carol)|bob (Bob)|alice (Alice)"'  # most recent first


def test_the_account_picked_in_our_prompt_is_the_one_answer(daemon):
    ctap2, cp, made = _three(daemon)

    # The uv option, no token: one prompt lists the three, takes the PIN
    # and the pick; the second shown is bob.
    daemon.presence("choose 2")
    a, cdh = _assert(ctap2, options={"uv": True})
    assert _listed(daemon)[-1] == SHOWN, _listed(daemon)
    bob, bob_key = made["bob"]
    assert a.credential["id"] == bob
    assert a.user_selected is True, a
    assert a.number_of_credentials is None, a
    assert a.user["name"] == "bob" and a.user["displayName"] == "Bob"
    lpk.check_flags(a.auth_data, up=True)
    lpk.verify_es256(bob_key, bytes(a.auth_data) + cdh, a.signature)
    assert _status(ctap2.get_next_assertion) == lpk.NOT_ALLOWED

    # A built-in-UV token for signing in (what browsers ask for): its prompt
    # lists them, the pick travels with the token, and the assertion asks
    # nothing more.
    daemon.presence("choose 3", "deny")
    token = cp.get_uv_token(GA, RP_ID)
    assert _listed(daemon)[-1] == SHOWN
    a, cdh = _assert(ctap2, token)
    assert daemon.pending_presence() == ["deny"], "the assertion asked again despite the token's pick"
    alice, alice_key = made["alice"]
    assert (a.credential["id"], a.user_selected, a.number_of_credentials) == (alice, True, None)
    lpk.verify_es256(alice_key, bytes(a.auth_data) + cdh, a.signature)
    assert _status(ctap2.get_next_assertion) == lpk.NOT_ALLOWED
    daemon.presence()

    # A token from the platform's own PIN entry carries no presence: the
    # presence prompt lists them.
    token = cp.get_pin_token(daemon.pin, GA, RP_ID)
    daemon.presence("choose 1")
    a, cdh = _assert(ctap2, token)
    assert _listed(daemon)[-1] == SHOWN
    carol, carol_key = made["carol"]
    assert (a.credential["id"], a.user_selected, a.number_of_credentials) == (carol, True, None)
    lpk.verify_es256(carol_key, bytes(a.auth_data) + cdh, a.signature)
    lpk.assert_alive(daemon)


def test_the_pick_through_a_webauthn_client_verifies_at_the_relying_party(daemon):
    rp = lpk.RelyingParty(RP_ID)
    client = daemon.client(f"https://{RP_ID}")
    regs = [rp.register(client, user_name=n, resident_key="required") for n in ("dora", "eve")]
    # python-fido2's client takes a built-in-UV token (our prompt: the pick),
    # then signs in; fido2.server and py_webauthn verify the one answer.
    daemon.presence("choose 2")
    used = rp.authenticate(client, allow=None)
    assert [u.credential_id for u in used] == [regs[0].credential_id], "the second shown is the older one"
    assert _listed(daemon)[-1] == '"eve (Eve)|dora (Dora)"', _listed(daemon)


def test_a_refused_late_or_impossible_pick_signs_nothing(make_daemon):
    daemon = make_daemon(presence_timeout_ms=1500)
    ctap2 = daemon.ctap2()
    cp = ClientPin(ctap2, lpk.PROTOCOLS[2]())
    for name in ("frank", "grace"):
        _register(ctap2, cp, name)
    retries = daemon.pin_retries()[0]

    daemon.presence("deny")
    assert _status(_assert, ctap2, options={"uv": True}) == lpk.OPERATION_DENIED
    # Taking too long to choose is declining to (§6.2.2 step 12.2.3.3).
    daemon.presence("wait")
    assert _status(_assert, ctap2, options={"uv": True}) == lpk.OPERATION_DENIED
    # A pick past the list: refused, from either prompt, and never a panic.
    daemon.presence("choose 3")
    assert _status(_assert, ctap2, options={"uv": True}) == lpk.OPERATION_DENIED
    daemon.presence("choose 99")
    assert _status(cp.get_uv_token, GA, RP_ID) == lpk.OPERATION_DENIED
    token = cp.get_pin_token(daemon.pin, GA, RP_ID)
    daemon.presence("choose 3")
    assert _status(_assert, ctap2, token) == lpk.OPERATION_DENIED
    assert _status(ctap2.get_next_assertion) == lpk.NOT_ALLOWED
    assert daemon.pending_presence() == []
    # None of it cost a PIN try, and the daemon is fine.
    assert daemon.pin_retries()[0] == retries
    lpk.assert_alive(daemon)
    daemon.presence("choose 1")
    a, _ = _assert(ctap2, options={"uv": True})
    assert a.user_selected is True and a.user["name"] == "grace"


def test_one_account_an_allow_list_or_no_pick_are_as_before(daemon):
    ctap2 = daemon.ctap2()
    cp = ClientPin(ctap2, lpk.PROTOCOLS[2]())
    first, _ = _register(ctap2, cp, "heidi")

    # One account: named, not listed; approving it selects it.
    a, _ = _assert(ctap2, options={"uv": True})
    assert _listed(daemon)[-1] == "-"
    assert (a.credential["id"], a.user_selected, a.number_of_credentials) == (first, True, None)
    # `choose` where nothing was listed is a prompt gone wrong: refused.
    daemon.presence("choose 1")
    assert _status(_assert, ctap2, options={"uv": True}) == lpk.OPERATION_DENIED

    second, _ = _register(ctap2, cp, "ivan")
    # An allowList: the site chose, nothing is listed, the first match answers.
    a, _ = _assert(ctap2, options={"uv": True}, allow=[first, second])
    assert _listed(daemon)[-1] == "-"
    assert (a.credential["id"], a.user_selected, a.number_of_credentials) == (first, None, None)

    # Listed but approved without a pick: the platform chooses.
    a, _ = _assert(ctap2, options={"uv": True})
    assert _listed(daemon)[-1] == '"ivan (Ivan)|heidi (Heidi)"'
    assert a.number_of_credentials == 2 and a.user_selected is None
    nxt = ctap2.get_next_assertion()
    assert {a.credential["id"], nxt.credential["id"]} == {first, second}


FAKE_PINENTRY = textwrap.dedent("""\
    #!/bin/sh
    # A person at pinentry: types the PIN, approves, and notes what they were shown.
    echo 'OK Pleased to meet you'
    while IFS= read -r line; do
      printf '%s\\n' "$line" >> '{log}'
      case "${{line%% *}}" in
        GETPIN) echo 'D {pin}'; echo OK ;;
        BYE) echo OK; exit 0 ;;
        *) echo OK ;;
      esac
    done
""")


@pytest.mark.custody("soft")
def test_pinentry_cannot_list_accounts_and_the_platform_chooses(make_daemon, tmp_path, monkeypatch):
    log = tmp_path / "pinentry.log"
    fake = tmp_path / "pinentry"
    fake.write_text(FAKE_PINENTRY.format(log=log, pin=lpk.PIN))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PINENTRY_PROGRAM", str(fake))
    daemon = make_daemon(presence="pinentry")
    ctap2 = daemon.ctap2()
    cp = ClientPin(ctap2, lpk.PROTOCOLS[2]())
    ids = {_register(ctap2, cp, name)[0] for name in ("judy", "ken")}

    log.write_text("")
    token = cp.get_uv_token(GA, RP_ID)
    shown = log.read_text()
    assert "unlock passkeys" in shown.lower(), shown
    assert "judy" not in shown and "ken" not in shown, shown
    a, _ = _assert(ctap2, token)
    assert a.number_of_credentials == 2 and a.user_selected is None, a
    nxt = ctap2.get_next_assertion()
    assert {a.credential["id"], nxt.credential["id"]} == ids
    assert nxt.user_selected is None
