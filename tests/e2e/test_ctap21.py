"""GetInfo lists exactly what is implemented, and python-fido2's feature
probes agree. The commands themselves are in test_credential_management.py,
test_extensions.py, test_large_blobs.py and test_config.py; each test runs
with TPM custody (own swtpm) and software custody."""

from __future__ import annotations

import pytest

from ctap_common import *  # noqa: F403 (the shared helpers and constants)


# --------------------------------------------------------------------------- GetInfo


def test_get_info_lists_exactly_what_is_implemented(daemon):
    ctap2 = daemon.ctap2()
    raw = ctap2.send_cbor(Ctap2.CMD.GET_INFO)
    assert raw[0x01] == EXPECTED_VERSIONS, f"versions {raw[0x01]}"
    assert "U2F_V2" not in raw[0x01]
    assert len(raw[0x02]) == len(set(raw[0x02])) and set(raw[0x02]) == EXPECTED_EXTENSIONS, f"extensions {raw[0x02]}"
    assert raw[0x04] == EXPECTED_OPTIONS, f"options {raw[0x04]}"
    for absent in ("ep", "bioEnroll", "uvBioEnroll", "userVerificationMgmtPreview",
                   "noMcGaPermissionsWithClientPin", "uvAcfg"):
        assert absent not in raw[0x04], f"option {absent} claimed"
    assert raw[0x0B] == MAX_LARGE_BLOB_ARRAY and raw[0x0B] >= 1024, "maxSerializedLargeBlobArray"
    assert raw[0x0F] == 32, "maxCredBlobLength (at least 32 when credBlob is listed)"
    assert raw[0x10] == 8, "maxRPIDsForSetMinPINLength (at least 1 with setMinPINLength)"
    assert raw[0x14] == MAX_DISCOVERABLE, "remainingDiscoverableCredentials"
    assert raw[0x0C] is False and raw[0x0D] == 4
    assert raw[0x16] == ["packed", "none"] and raw[0x1D] == 63, "attestationFormats, maxPINLength"
    # Nothing else: no vendorPrototypeConfigCommands, no certifications, no
    # uvModality (our UV is a PIN prompt); no encIdentifier or
    # encCredStoreState before a persistent token exists.
    assert set(raw) == {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
                        0x0F, 0x10, 0x14, 0x16, 0x1D}, f"GetInfo keys {sorted(raw)}"
    # python-fido2's feature probes agree.
    info = ctap2.get_info()
    assert CredentialManagement.is_supported(info) and CredentialManagement.is_update_supported(info)
    assert CredentialManagement.is_readonly_supported(info)
    assert LargeBlobs.is_supported(info) and Config.is_supported(info)
    assert info.max_cred_blob_length == 32 and info.max_large_blob == MAX_LARGE_BLOB_ARRAY
    assert info.max_rpids_for_min_pin == 8 and info.remaining_disc_creds == MAX_DISCOVERABLE
    assert info.authenticator_config_commands is None and not info.vendor_prototype_config_commands
    assert all(e.is_supported(ctap2) for e in EXTENSIONS)
