"""What CTAP 2.2 adds and needs the real daemon and its store to prove:

- the persistentPinUvAuthToken (`pcmr`) outlives a daemon restart and a
  power cycle, lists passkeys and nothing more, decrypts GetInfo's
  encIdentifier and encCredStoreState, and dies with a PIN change;
- thirdPartyPayment, through python-fido2's client with its payment
  extension, verified by fido2.server, the flag kept across a restart.

Each test runs with TPM custody (own swtpm) and software custody.
"""

from __future__ import annotations

import pytest
from fido2.client import Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, CredentialManagement
from fido2.ctap2.extensions import (
    PaymentCredentialInstrument,
    PaymentCurrencyAmount,
    ThirdPartyPaymentExtension,
)
from fido2.payment import CollectedClientAdditionalPaymentData, PaymentClientDataCollector
from fido2.server import Fido2Server

import lpk

PERM = ClientPin.PERMISSION
R = CredentialManagement.RESULT


def pcmr_token(daemon, protocol: int = 2) -> bytes:
    return ClientPin(daemon.ctap2(), lpk.PROTOCOLS[protocol]()).get_pin_token(
        daemon.pin, PERM.PERSISTENT_CREDENTIAL_MGMT
    )


def readonly(daemon, token: bytes, protocol: int = 2) -> CredentialManagement:
    return CredentialManagement(daemon.ctap2(), lpk.PROTOCOLS[protocol](), token)


def expect(code: int, fn, *args) -> None:
    with pytest.raises(CtapError) as e:
        fn(*args)
    assert e.value.code == code, f"got {e.value.code!r}, expected {code!r}"


@pytest.mark.parametrize("protocol", [1, 2])
def test_the_persistent_token_lists_after_a_restart_and_only_lists(daemon, protocol):
    rp = lpk.RelyingParty("persist.example")
    reg = rp.register(daemon.client(origin="https://persist.example"), resident_key="required")
    token = pcmr_token(daemon, protocol)
    info = daemon.ctap2().get_info()
    ident, state = info.get_identifier(token), info.get_cred_store_state(token)
    assert len(ident) == 16 and len(state) == 16

    for step in ("now", "after a daemon restart", "after a power cycle"):
        if step == "after a daemon restart":
            daemon.restart()
        elif step == "after a power cycle":
            daemon.power_cycle()
        cm = readonly(daemon, token, protocol)
        assert cm.get_metadata()[R.EXISTING_CRED_COUNT] == 1, step
        rps = cm.enumerate_rps()
        assert [r[R.RP]["id"] for r in rps] == ["persist.example"], step
        creds = cm.enumerate_creds(rps[0][R.RP_ID_HASH])
        assert [c[R.CREDENTIAL_ID]["id"] for c in creds] == [reg.credential_id], step
        assert R.LARGE_BLOB_KEY not in creds[0]
        expect(CtapError.ERR.PIN_AUTH_INVALID, cm.delete_cred, {"id": reg.credential_id, "type": "public-key"})
        info = daemon.ctap2().get_info()
        assert (info.get_identifier(token), info.get_cred_store_state(token)) == (ident, state), step

    # The passkey still works, and a new one changes the state.
    assert rp.authenticate(daemon.client(origin="https://persist.example"))[0].credential_id == reg.credential_id
    rp.register(daemon.client(origin="https://persist.example"), user_name="second", resident_key="required")
    assert daemon.ctap2().get_info().get_cred_store_state(token) != state

    daemon.change_pin(daemon.pin, "87654321", protocol)
    expect(CtapError.ERR.PIN_AUTH_INVALID, readonly(daemon, token, protocol).get_metadata)
    assert daemon.ctap2().get_info().enc_identifier is None, "no token, nothing to decrypt with"


def test_pcmr_comes_alone(daemon):
    client_pin = ClientPin(daemon.ctap2(), lpk.PROTOCOLS[2]())
    expect(
        CtapError.ERR.UNAUTHORIZED_PERMISSION,
        client_pin.get_pin_token,
        daemon.pin,
        PERM.PERSISTENT_CREDENTIAL_MGMT | PERM.CREDENTIAL_MGMT,
    )


def payment_client(daemon) -> Fido2Client:
    return Fido2Client(
        daemon.device(),
        client_data_collector=PaymentClientDataCollector("https://pay.example"),
        user_interaction=lpk.RecordingInteraction(daemon.pin),
        extensions=[ThirdPartyPaymentExtension()],
    )


def test_third_party_payment_is_kept_and_reported(daemon):
    server = Fido2Server({"id": "pay.example", "name": "Pay"})
    options, state = server.register_begin(
        {"id": b"payer", "name": "payer"},
        resident_key_requirement="required",
        user_verification="required",
        authenticator_attachment="cross-platform",
    )
    result = payment_client(daemon).make_credential(
        {**options["publicKey"], "extensions": {"payment": {"isPayment": True}}}
    )
    auth_data = server.register_complete(state, result)
    assert auth_data.is_user_verified() and not auth_data.is_backed_up()

    daemon.restart()
    cm = readonly(daemon, pcmr_token(daemon))
    creds = cm.enumerate_creds(cm.enumerate_rps()[0][R.RP_ID_HASH])
    assert creds[0][R.THIRD_PARTY_PAYMENT] is True

    payment = CollectedClientAdditionalPaymentData(
        rp_id="pay.example",
        top_origin="https://shop.example",
        payee_name="A Shop",
        payee_origin="https://shop.example",
        total=PaymentCurrencyAmount(currency="EUR", value="12.50"),
        instrument=PaymentCredentialInstrument(display_name="Card", icon="https://pay.example/card.png"),
    )
    request, _ = server.authenticate_begin([auth_data.credential_data], user_verification="required")
    response = (
        payment_client(daemon)
        .get_assertion({**request["publicKey"], "extensions": {"payment": dict(payment, isPayment=True)}})
        .get_response(0)
    )
    # fido2.server checks for "webauthn.get"; SPC's client data says
    # "payment.get", so the signature is checked with fido2's COSE code.
    assert response.response.client_data.type == "payment.get"
    signed = response.response.authenticator_data
    assert signed.rp_id_hash == server.rp.id_hash and signed.is_user_verified() and not signed.is_backed_up()
    auth_data.credential_data.public_key.verify(
        bytes(signed) + response.response.client_data.hash, response.response.signature
    )
    assert response.response.authenticator_data.extensions == {"thirdPartyPayment": True}
