"""Every algorithm the custody has (ES256, ES384, ES512, RS256 and PS256
on swtpm and in the software custody), registered and used through python-fido2's client and
verified by both relying-party libraries (fido2.server and py_webauthn);
the platform's order of preference decides (CTAP 2.1 §6.1.2 step 3)."""

from __future__ import annotations

import pytest
from fido2.ctap import CtapError

import lpk

ES256, ES384, ES512, RS256, PS256, EDDSA = -7, -35, -36, -257, -37, -8


def test_get_info_lists_exactly_the_algorithms_the_custody_has(daemon):
    info = daemon.ctap2().get_info()
    algs = [p["alg"] for p in info.algorithms]
    assert algs == [ES256, ES384, ES512, RS256, PS256], algs
    assert all(p["type"] == "public-key" for p in info.algorithms)


@pytest.mark.parametrize("alg", [ES384, ES512, RS256, PS256, ES256])
def test_each_algorithm_registers_and_signs_in(daemon, alg):
    rp = lpk.RelyingParty(algorithms=[alg])
    client = daemon.client()
    reg = rp.register(client, resident_key="required")
    assert reg.credential_data.public_key[3] == alg
    for _ in range(2):
        assert rp.authenticate(client, allow=[reg.credential_id])[0].credential_id == reg.credential_id
    assert rp.authenticate(client)[0].credential_id == reg.credential_id


def test_the_platforms_order_decides(daemon):
    rp = lpk.RelyingParty(algorithms=[EDDSA, RS256, ES256])
    rp.expected_alg = RS256  # EdDSA is not offered: the first we have is RS256
    reg = rp.register(daemon.client())
    assert reg.credential_data.public_key[3] == RS256


def test_no_supported_algorithm_is_refused(daemon):
    _, cdh = lpk.client_data_hash(kind="webauthn.create")
    daemon.presence("approve")
    with pytest.raises(CtapError) as e:
        daemon.ctap2().make_credential(cdh, {"id": "example.com"}, {"id": b"u", "name": "u"},
                                       [{"type": "public-key", "alg": EDDSA}])
    assert lpk.ctap_error(e) == CtapError.ERR.UNSUPPORTED_ALGORITHM
