"""userSelected (CTAP 2.1 §6.2.2, GetAssertion response key 0x06).

The daemon says the person selected the credential only when its own prompt
showed them that one account (RP ID and account name) and they approved it,
and the assertion is username-less (no allowList) with exactly that one
match. Browsers skip their own account chooser on it (Chromium:
content/browser/webauth/authenticator_common_impl.cc), so a false `true`
would let a site sign someone in as an account nobody chose.
"""

from __future__ import annotations

import os
import re

from fido2.ctap2 import ClientPin

import lpk

RP_ID = "selected.example"
GA, MC = lpk.PERM_GA, lpk.PERM_MC


def _register(ctap2, cp, name: str, rp_id: str = RP_ID) -> tuple:
    """A discoverable credential made with a built-in-UV token. Returns (credential id, COSE key)."""
    token = cp.get_uv_token(MC, rp_id)
    _, cdh = lpk.client_data_hash(origin=f"https://{rp_id}", kind="webauthn.create")
    att = ctap2.make_credential(
        cdh, {"id": rp_id, "name": rp_id}, {"id": os.urandom(16), "name": name, "displayName": name.title()},
        [{"type": "public-key", "alg": lpk.ES256}], options={"rk": True}, **lpk.pin_uv_param(2, token, cdh),
    )
    cose = lpk.verify_attestation_twice(att, cdh)
    return att.auth_data.credential_data.credential_id, cose


def _assert(ctap2, token: bytes | None, allow: list[bytes] | None = None, options=None, rp_id: str = RP_ID):
    _, cdh = lpk.client_data_hash(origin=f"https://{rp_id}")
    auth = lpk.pin_uv_param(2, token, cdh) if token is not None else {}
    a = ctap2.get_assertion(
        rp_id, cdh, allow_list=[{"type": "public-key", "id": i} for i in allow] if allow else None,
        options=options, **auth,
    )
    return a, cdh


def _prompts(daemon) -> list[tuple[str, str]]:
    """(action, account) of every prompt the scripted person was shown, from
    the daemon's log ("-": no account named)."""
    found = re.findall(r'scripted \w+ rp=\S+ account="([^"]*)" action="([^"]*)"', daemon.stderr())
    return [(action, account) for account, action in found]


def test_user_selected_only_when_our_prompt_named_the_one_account(daemon):
    ctap2 = daemon.ctap2()
    cp = ClientPin(ctap2, lpk.PROTOCOLS[2]())
    alice, alice_key = _register(ctap2, cp, "alice")

    # Built-in UV for signing in where alice is the only account: the prompt
    # names her, the person approves, the username-less assertion says so.
    daemon.presence("approve", "deny")
    token = cp.get_uv_token(GA, RP_ID)
    a, cdh = _assert(ctap2, token)
    assert daemon.pending_presence() == ["deny"], "the assertion asked again despite a UV token"
    assert a.credential["id"] == alice
    assert a.user_selected is True, a
    assert a.number_of_credentials is None
    assert a.user["name"] == "alice" and a.user["displayName"] == "Alice"
    lpk.check_flags(a.auth_data, up=True)
    lpk.verify_es256(alice_key, bytes(a.auth_data) + cdh, a.signature)
    assert _prompts(daemon)[-1] == ("sign in", "alice (Alice)"), _prompts(daemon)

    # The same account through an allowList: never userSelected (§6.2.2).
    daemon.presence()
    token = cp.get_uv_token(GA, RP_ID)
    a, _ = _assert(ctap2, token, allow=[alice])
    assert a.user_selected is None, a

    # A token from the PIN (the platform's own PIN entry, no prompt of ours)
    # used silently (up=false): nobody was shown an account.
    token = cp.get_pin_token(daemon.pin, GA, RP_ID)
    a, _ = _assert(ctap2, token, options={"up": False})
    assert a.user_selected is None, a
    lpk.check_flags(a.auth_data, up=False)

    # The uv option (no token): our prompt names alice and she approves.
    a, _ = _assert(ctap2, None, options={"uv": True})
    assert a.user_selected is True, a


def test_no_user_selected_with_two_accounts(daemon):
    ctap2 = daemon.ctap2()
    cp = ClientPin(ctap2, lpk.PROTOCOLS[2]())
    first, _ = _register(ctap2, cp, "carol")
    second, _ = _register(ctap2, cp, "dave")
    # One account elsewhere does not change this RP's count.
    _register(ctap2, cp, "erin", rp_id="other.example")

    token = cp.get_uv_token(GA, RP_ID)
    assert _prompts(daemon)[-1] == ("sign in", "-"), _prompts(daemon)
    a, _ = _assert(ctap2, token)
    assert a.number_of_credentials == 2
    assert a.user_selected is None, "two accounts: the platform must let the person choose"
    nxt = ctap2.get_next_assertion()
    assert {a.credential["id"], nxt.credential["id"]} == {first, second}
    assert nxt.user_selected is None

    # The uv option with two accounts: the prompt names none, nothing is selected.
    a, _ = _assert(ctap2, None, options={"uv": True})
    assert a.number_of_credentials == 2 and a.user_selected is None
