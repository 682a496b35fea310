"""authenticatorLargeBlobs through `fido2.ctap2.LargeBlobs` and raw
fragments: integrity, offsets and sequence, the lbw permission. Both custodies."""

from __future__ import annotations

import pytest

from ctap_common import *  # noqa: F403 (the shared helpers and constants)


# --------------------------------------------------------------------------- large blobs


def test_large_blob_extension_write_then_read_in_another_client(daemon):
    """The WebAuthn largeBlob extension as python-fido2 (and Chrome) run it:
    GetAssertion with a token that also carries lbw, then the write with that
    same token; a second client reads it back."""
    rp = lpk.RelyingParty("webauthn-blob.example")
    c = client(daemon, rp.rp_id)
    reg = rp.register(c, user_name="b", resident_key="required", extensions={"largeBlob": {"support": "required"}},
                      expect_ed=False)
    assert reg.client_extensions.large_blob.supported is True
    data = b"a certificate, say " + os.urandom(200)
    rp.authenticate(c, allow=[reg.credential_id], extensions={"largeBlob": {"write": data}}, expect_ed=False)
    assert rp.last_responses[0].client_extension_results.large_blob.written is True
    rp.authenticate(client(daemon, rp.rp_id), allow=[reg.credential_id], extensions={"largeBlob": {"read": True}},
                    expect_ed=False)
    assert rp.last_responses[0].client_extension_results.large_blob.blob == data


def test_large_blobs_per_credential_with_fido2s_class(daemon):
    rp = lpk.RelyingParty("blobs.example")
    c = client(daemon, rp.rp_id)
    a = rp.register(c, user_name="a", resident_key="required", extensions={"largeBlob": {"support": "required"}},
                    expect_ed=False)
    b = rp.register(c, user_name="b", resident_key="required", extensions={"largeBlob": {"support": "required"}},
                    expect_ed=False)
    key_a = raw_assert(daemon, rp, a, {"largeBlobKey": True}).large_blob_key
    key_b = raw_assert(daemon, rp, b, {"largeBlobKey": True}).large_blob_key
    assert len(key_a) == len(key_b) == 32 and key_a != key_b

    # A fresh authenticator has the spec's empty array.
    reader = LargeBlobs(daemon.ctap2())
    assert reader.ctap.large_blobs(0, get=1024)[1] == INITIAL_ARRAY
    assert reader.read_blob_array() == []

    data_a, data_b = os.urandom(500), b"b" * 1000  # the second compresses well
    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    writer = LargeBlobs(ctap2, proto, token)
    writer.put_blob(key_a, data_a)
    writer.put_blob(key_b, data_b)
    # Another client object (another channel), no token needed to read.
    reader = LargeBlobs(daemon.ctap2())
    assert reader.get_blob(key_a) == data_a and reader.get_blob(key_b) == data_b
    assert len(reader.read_blob_array()) == 2
    raw = reader.ctap.large_blobs(0, get=MAX_FRAGMENT)[1]
    assert raw[-16:] == sha256(raw[:-16])[:16], "stored array without its integrity hash"
    # The WebAuthn read path finds it too.
    rp.authenticate(client(daemon, rp.rp_id), allow=[a.credential_id], extensions={"largeBlob": {"read": True}},
                    expect_ed=False)
    assert rp.last_responses[0].client_extension_results.large_blob.blob == data_a

    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    LargeBlobs(ctap2, proto, token).delete_blob(key_a)
    reader = LargeBlobs(daemon.ctap2())
    assert reader.get_blob(key_a) is None and reader.get_blob(key_b) == data_b
    assert len(reader.read_blob_array()) == 1

    # Writing needs a token with lbw.
    ctap2, proto, token = fresh_token(daemon, PERM.CREDENTIAL_MGMT)
    expect_status(lpk.PIN_AUTH_INVALID, LargeBlobs(ctap2, proto, token).put_blob, key_b, b"x")
    expect_status(lpk.PUAT_REQUIRED, LargeBlobs(daemon.ctap2()).put_blob, key_b, b"x")
    # More than maxSerializedLargeBlobArray.
    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    expect_status(LARGE_BLOB_STORAGE_FULL, LargeBlobs(ctap2, proto, token).write_blob_array,
                  [{1: os.urandom(MAX_LARGE_BLOB_ARRAY), 2: os.urandom(12), 3: 1}])
    assert LargeBlobs(daemon.ctap2()).get_blob(key_b) == data_b


def test_large_blob_fragments_integrity_and_errors(daemon):
    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    V = proto.VERSION

    def read_all(c=ctap2) -> bytes:
        return c.large_blobs(0, get=MAX_FRAGMENT)[1]

    def write(offset, fragment, length=None, tok=token, pr=proto):
        return ctap2.large_blobs(offset, set=fragment, length=length, pin_uv_param=lb_param(pr, tok, offset, fragment),
                                 pin_uv_protocol=pr.VERSION)

    entry = {1: os.urandom(100), 2: os.urandom(12), 3: 100}
    array = serialized([entry])
    n, half = len(array), len(array) // 2

    # Two fragments; until the last one the old array stays.
    write(0, array[:half], length=n)
    assert read_all(daemon.ctap2()) == INITIAL_ARRAY, "a half-written array is visible"
    write(half, array[half:])
    assert read_all() == array
    assert LargeBlobs(daemon.ctap2()).read_blob_array() == [entry]
    # Reads at offsets: a substring; at the very end, empty.
    assert ctap2.large_blobs(5, get=10)[1] == array[5:15]
    assert ctap2.large_blobs(n - 3, get=10)[1] == array[-3:]
    assert ctap2.large_blobs(n, get=10)[1] == b""

    # Integrity: a complete array whose hash is wrong is refused; the old one stays.
    body = cbor.encode([entry, entry])
    expect_status(INTEGRITY_FAILURE, write, 0, body + bytes(16), len(body) + 16)
    bad = bytearray(serialized([entry, entry]))
    bad[3] ^= 1
    write(0, bytes(bad[:40]), length=len(bad))
    expect_status(INTEGRITY_FAILURE, write, 40, bytes(bad[40:]))
    assert read_all() == array

    # Sequence: a fragment at the wrong offset; the right one still continues.
    array2 = serialized([entry, {1: b"x" * 40, 2: b"y" * 12, 3: 40}])
    write(0, array2[:50], length=len(array2))
    expect_status(INVALID_SEQ, write, 51, array2[51:])
    expect_status(INVALID_SEQ, write, 49, array2[49:])
    write(50, array2[50:])
    assert read_all() == array2
    # A continuation with no write in progress.
    expect_status(INVALID_SEQ, write, 10, b"abc")
    # A fragment running past the announced length.
    write(0, array[:half], length=n)
    expect_status(lpk.INVALID_PARAMETER, write, half, array[half:] + b"!")
    assert read_all() == array2

    def raw_status(params) -> int:
        try:
            ctap2.send_cbor(CMD_LARGE_BLOBS, params)
            return lpk.CTAP2_OK
        except CtapError as e:
            return int(e.code)

    frag = array[:20]
    p0 = lb_param(proto, token, 0, frag)
    cases = [
        ("neither get nor set", {3: 0}, lpk.INVALID_PARAMETER),
        ("both get and set", {1: 10, 2: frag, 3: 0, 4: n, 5: p0, 6: V}, lpk.INVALID_PARAMETER),
        ("offset missing (get)", {1: 10}, lpk.INVALID_PARAMETER),
        ("offset missing (set)", {2: frag, 4: n, 5: p0, 6: V}, lpk.INVALID_PARAMETER),
        ("get with length", {1: 10, 3: 0, 4: 10}, lpk.INVALID_PARAMETER),
        ("get with pinUvAuthParam", {1: 10, 3: 0, 5: p0, 6: V}, lpk.INVALID_PARAMETER),
        ("get more than maxFragmentLength", {1: MAX_FRAGMENT + 1, 3: 0}, INVALID_LENGTH),
        ("get past the end", {1: 10, 3: len(array2) + 1}, lpk.INVALID_PARAMETER),
        ("offset as text", {1: 10, 3: "0"}, lpk.CBOR_UNEXPECTED_TYPE),
        ("set as text", {2: "abc", 3: 0, 4: n, 5: p0, 6: V}, lpk.CBOR_UNEXPECTED_TYPE),
        ("set at offset 0 without length", {2: frag, 3: 0, 5: p0, 6: V}, lpk.INVALID_PARAMETER),
        ("set at offset 0, length < 17", {2: frag[:16], 3: 0, 4: 16, 5: lb_param(proto, token, 0, frag[:16]), 6: V},
         lpk.INVALID_PARAMETER),
        ("set with length > maxSerializedLargeBlobArray", {2: frag, 3: 0, 4: MAX_LARGE_BLOB_ARRAY + 1, 5: p0, 6: V},
         LARGE_BLOB_STORAGE_FULL),
        ("set longer than maxFragmentLength",
         {2: bytes(MAX_FRAGMENT + 1), 3: 0, 4: MAX_FRAGMENT + 1,
          5: lb_param(proto, token, 0, bytes(MAX_FRAGMENT + 1)), 6: V}, INVALID_LENGTH),
        ("length with a non-zero offset", {2: frag, 3: 20, 4: n, 5: lb_param(proto, token, 20, frag), 6: V},
         lpk.INVALID_PARAMETER),
        ("set without pinUvAuthParam", {2: frag, 3: 0, 4: n}, lpk.PUAT_REQUIRED),
        ("set without pinUvAuthProtocol", {2: frag, 3: 0, 4: n, 5: p0}, lpk.MISSING_PARAMETER),
        ("set with pinUvAuthProtocol 9", {2: frag, 3: 0, 4: n, 5: p0, 6: 9}, lpk.INVALID_PARAMETER),
        ("set with a wrong pinUvAuthParam", {2: frag, 3: 0, 4: n, 5: bytes(len(p0)), 6: V}, lpk.PIN_AUTH_INVALID),
        ("set with a param for another offset", {2: frag, 3: 0, 4: n, 5: lb_param(proto, token, 1, frag), 6: V},
         lpk.PIN_AUTH_INVALID),
    ]
    wrong = []
    for name, params, expected in cases:
        got = raw_status(params)
        if got != expected:
            wrong.append(f"{name}: {lpk.status_name(got)}, expected {lpk.status_name(expected)}")
    # A token without lbw.
    ctap2b, protob, tok_cm = fresh_token(daemon, PERM.CREDENTIAL_MGMT)
    got = code_of(ctap2b.large_blobs, 0, set=array, length=n, pin_uv_param=lb_param(protob, tok_cm, 0, array),
                  pin_uv_protocol=protob.VERSION)
    if got != lpk.PIN_AUTH_INVALID:
        wrong.append(f"token without lbw: {lpk.status_name(got)}, expected PIN_AUTH_INVALID")
    assert not wrong, "\n".join(wrong)
    # All of that left the stored array alone, and a good write still works.
    assert read_all(daemon.ctap2()) == array2
    ctap2, proto, token = fresh_token(daemon, PERM.LARGE_BLOB_WRITE)
    ctap2.large_blobs(0, set=array, length=n, pin_uv_param=lb_param(proto, token, 0, array),
                      pin_uv_protocol=proto.VERSION)
    assert read_all() == array
