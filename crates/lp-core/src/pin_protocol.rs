//! PIN/UV auth protocols One and Two, authenticator side (CTAP 2.1 §6.5.4–§6.5.7).
//!
//! Both protocols share the key agreement (ephemeral P-256 ECDH, the shared
//! point's x-coordinate `Z`) and differ in the rest:
//!
//! | | protocol One | protocol Two |
//! |---|---|---|
//! | KDF | `SHA-256(Z)` (one 32-byte key for both uses) | `HKDF-SHA-256(salt = 32×0x00, Z, "CTAP2 HMAC key")` ‖ `HKDF-SHA-256(…, "CTAP2 AES key")` |
//! | encrypt | AES-256-CBC, IV = 0, no padding | AES-256-CBC, random IV sent in front, no padding |
//! | authenticate | `LEFT(HMAC-SHA-256(key, m), 16)` | `HMAC-SHA-256(hmacKey, m)` (32 bytes) |
//!
//! Checked byte-for-byte against python-fido2's `PinProtocolV1`/`PinProtocolV2`
//! (see the `python_fido2_vectors` test and `tests/vectors/gen_pin_vectors.py`).
//!
//! Error codes chosen here (the caller may narrow them further):
//! * an unsupported protocol number → `CTAP1_ERR_INVALID_PARAMETER`;
//! * the platform's COSE_Key: not a map or a member of the wrong CBOR type →
//!   `CTAP2_ERR_CBOR_UNEXPECTED_TYPE`; kty, crv, x or y absent →
//!   `CTAP2_ERR_MISSING_PARAMETER`; a label given twice → `CTAP2_ERR_INVALID_CBOR`;
//!   wrong kty/crv value, a coordinate that is not 32 bytes, or a point not on
//!   P-256 → `CTAP1_ERR_INVALID_PARAMETER` (the spec's answer for a failed
//!   decapsulate);
//! * decrypt of a malformed ciphertext and every failed MAC check →
//!   `CTAP2_ERR_PIN_AUTH_INVALID` (setPIN/changePIN: "if an error results,
//!   return CTAP2_ERR_PIN_AUTH_INVALID");
//! * encrypt of a plaintext that is not whole blocks (a caller bug: the
//!   authenticator only encrypts tokens and hmac-secret outputs) or a failing
//!   OS random generator → `CTAP1_ERR_OTHER`.

use core::fmt;

use aes::Aes256;
use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ciborium::value::{Integer, Value};
use coset::{iana, AsCborValue, CoseError, CoseKey, KeyType, Label};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::{EncodedPoint, FieldBytes, PublicKey, SecretKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::status::CtapError;

type HmacSha256 = Hmac<Sha256>;
type Aes256CbcEnc = cbc::Encryptor<Aes256>;
type Aes256CbcDec = cbc::Decryptor<Aes256>;

/// The AES block length, and protocol Two's IV length.
const BLOCK: usize = 16;
/// Protocol One's pinUvAuthParam: the left half of an HMAC-SHA-256.
const V1_MAC_LEN: usize = 16;
/// Protocol Two's pinUvAuthParam: a whole HMAC-SHA-256.
const V2_MAC_LEN: usize = 32;
const HKDF_SALT: [u8; 32] = [0; 32];
const HKDF_INFO_HMAC: &[u8] = b"CTAP2 HMAC key";
const HKDF_INFO_AES: &[u8] = b"CTAP2 AES key";

// COSE_Key labels and values (RFC 9053, CTAP 2.1 §6.5.6 getPublicKey).
const COSE_KTY: i128 = 1;
const COSE_ALG: i128 = 3;
const COSE_CRV_P256: i128 = 1;
/// ECDH-ES+HKDF-256: what CTAP says to put in `alg`, "although this is NOT the
/// algorithm actually used".
const COSE_ALG_ECDH_ES_HKDF_256: i64 = -25;

/// A PIN/UV auth protocol number (`pinUvAuthProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolVersion {
    One = 1,
    Two = 2,
}

impl ProtocolVersion {
    /// The protocol named by a request's `pinUvAuthProtocol`; anything but 1
    /// or 2 is `CTAP1_ERR_INVALID_PARAMETER`.
    pub fn from_u64(v: u64) -> Result<Self, CtapError> {
        match v {
            1 => Ok(Self::One),
            2 => Ok(Self::Two),
            _ => Err(CtapError::InvalidParameter),
        }
    }

    /// The protocol number as sent on the wire.
    pub fn as_u64(self) -> u64 {
        self as u64
    }

    /// The length of this protocol's pinUvAuthParam.
    fn mac_len(self) -> usize {
        match self {
            Self::One => V1_MAC_LEN,
            Self::Two => V2_MAC_LEN,
        }
    }
}

/// The authenticator's key-agreement state for one power cycle.
///
/// One ephemeral P-256 key serves both protocols (the spec lets them share
/// it). The secret scalar is zeroized when this is dropped or regenerated.
#[derive(Clone)]
pub struct KeyAgreement {
    secret: SecretKey,
    x: [u8; 32],
    y: [u8; 32],
}

impl KeyAgreement {
    /// A fresh key pair from the OS random generator.
    pub fn new() -> Self {
        #[cfg(fuzzing)]
        if let Some(fake) = fuzzing::fake_key() {
            return fake;
        }
        loop {
            // A public key made from a non-zero scalar is never the identity,
            // so this returns the first time round.
            if let Some(ka) = Self::from_secret(SecretKey::random(&mut OsRng)) {
                return ka;
            }
        }
    }

    /// A key pair from a fixed secret scalar (big-endian, 32 bytes). For test
    /// vectors only: a real authenticator uses [`KeyAgreement::new`].
    /// A scalar of zero or not below the group order is `CTAP1_ERR_INVALID_PARAMETER`.
    #[doc(hidden)]
    pub fn from_secret_scalar(bytes: &[u8; 32]) -> Result<Self, CtapError> {
        let secret =
            SecretKey::from_bytes(&FieldBytes::from(*bytes)).map_err(|_| CtapError::InvalidParameter)?;
        Self::from_secret(secret).ok_or(CtapError::InvalidParameter)
    }

    fn from_secret(secret: SecretKey) -> Option<Self> {
        let point = secret.public_key().to_encoded_point(false);
        let x = <[u8; 32]>::try_from(&point.x()?[..]).ok()?;
        let y = <[u8; 32]>::try_from(&point.y()?[..]).ok()?;
        Some(Self { secret, x, y })
    }

    /// A new key pair, replacing (and zeroizing) the old one. Shared secrets
    /// already derived are unaffected.
    pub fn regenerate(&mut self) {
        *self = Self::new();
    }

    /// getKeyAgreement's answer: the COSE_Key
    /// `{1: 2 (EC2), 3: -25 (ECDH-ES+HKDF-256), -1: 1 (P-256), -2: x, -3: y}`
    /// with its members in CTAP2 canonical order.
    pub fn public_cose(&self) -> Value {
        let int = |v: i64| Value::Integer(Integer::from(v));
        Value::Map(vec![
            (int(1), int(2)),
            (int(3), int(COSE_ALG_ECDH_ES_HKDF_256)),
            (int(-1), int(1)),
            (int(-2), Value::Bytes(self.x.to_vec())),
            (int(-3), Value::Bytes(self.y.to_vec())),
        ])
    }

    /// decapsulate (§6.5.6/§6.5.7): parse the platform's key-agreement
    /// COSE_Key, do ECDH with it, and run `version`'s KDF over the shared
    /// point's x-coordinate.
    ///
    /// `alg` is optional and its value is not checked (platforms send -25,
    /// which names no algorithm actually used); kty must be EC2 and crv P-256.
    /// Members with other labels are ignored. Errors: see the module docs.
    pub fn shared_secret(
        &self,
        version: ProtocolVersion,
        platform_key: Value,
    ) -> Result<SharedSecret, CtapError> {
        let peer = parse_platform_key(platform_key)?;
        #[cfg(fuzzing)]
        if fuzzing::is_fake() {
            return SharedSecret::derive(version, &fuzzing::fake_z(&self.x, peer));
        }
        let scalar = Zeroizing::new(self.secret.to_nonzero_scalar());
        // p256's SharedSecret zeroizes itself on drop.
        let z = p256::ecdh::diffie_hellman(*scalar, peer.as_affine());
        SharedSecret::derive(version, &z.raw_secret_bytes()[..])
    }
}

/// Fuzz builds only (`--cfg fuzzing`, which cargo-fuzz sets): a key
/// agreement that costs a hash instead of P-256 scalar multiplications, so
/// the fuzzers spend their time on the protocol. Deterministic and plainly
/// fake: every key is one of a few real key pairs made once, and the shared
/// "point" is a hash of the two public keys. Off until a harness turns it on;
/// never compiled into anything but a fuzzer.
#[cfg(fuzzing)]
pub mod fuzzing {
    use super::{KeyAgreement, PublicKey};
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    static FAKE: AtomicBool = AtomicBool::new(false);
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static KEYS: OnceLock<Vec<KeyAgreement>> = OnceLock::new();

    /// On or off, and back to the first fake key: each input starts from
    /// the same state, as libFuzzer wants.
    pub fn use_fake_key_agreement(on: bool) {
        FAKE.store(on, Ordering::Relaxed);
        NEXT.store(0, Ordering::Relaxed);
    }

    pub(super) fn is_fake() -> bool {
        FAKE.load(Ordering::Relaxed)
    }

    /// The next of eight real key pairs (so a regenerated key still differs
    /// from the last one).
    pub(super) fn fake_key() -> Option<KeyAgreement> {
        if !is_fake() {
            return None;
        }
        let keys = KEYS.get_or_init(|| {
            (1u8..=8)
                .filter_map(|i| KeyAgreement::from_secret_scalar(&[i; 32]).ok())
                .collect()
        });
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        keys.get(i % keys.len().max(1)).cloned()
    }

    /// The same 32 bytes on both sides: a hash of the two x-coordinates in order.
    pub(super) fn fake_z(ours: &[u8; 32], peer: PublicKey) -> [u8; 32] {
        let point = peer.to_encoded_point(false);
        let theirs = point.x().map(|x| x.to_vec()).unwrap_or_default();
        let (a, b) = if ours.as_slice() <= theirs.as_slice() {
            (ours.as_slice(), theirs.as_slice())
        } else {
            (theirs.as_slice(), ours.as_slice())
        };
        Sha256::new().chain_update(a).chain_update(b).finalize().into()
    }
}

impl Default for KeyAgreement {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for KeyAgreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyAgreement")
            .field("x", &HexBytes(&self.x))
            .field("y", &HexBytes(&self.y))
            .finish_non_exhaustive()
    }
}

struct HexBytes<'a>(&'a [u8]);

impl fmt::Debug for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// The platform's keyAgreement, read by coset; what coset rejects is
/// mapped onto the CTAP status codes listed at the top of this file.
fn parse_platform_key(key: Value) -> Result<PublicKey, CtapError> {
    let Value::Map(members) = &key else {
        return Err(CtapError::CborUnexpectedType);
    };
    // COSE lets kty and alg be text too; CTAP's are integers, and anything
    // else is the wrong CBOR type for the platform's key.
    let text_member = members.iter().any(|(label, value)| {
        matches!(label.as_integer().map(i128::from), Some(COSE_KTY | COSE_ALG)) && !value.is_integer()
    });
    if text_member {
        return Err(CtapError::CborUnexpectedType);
    }
    let key = CoseKey::from_cbor_value(key).map_err(|e| match e {
        CoseError::DuplicateMapKey => CtapError::InvalidCbor,
        CoseError::UnexpectedItem("no kty label", _) => CtapError::MissingParameter,
        _ => CtapError::CborUnexpectedType,
    })?;
    let param = |label: i64| {
        key.params
            .iter()
            .find(|(l, _)| *l == Label::Int(label))
            .map(|(_, v)| v)
    };
    let (Some(crv), Some(x), Some(y)) = (
        param(iana::Ec2KeyParameter::Crv as i64),
        param(iana::Ec2KeyParameter::X as i64),
        param(iana::Ec2KeyParameter::Y as i64),
    ) else {
        return Err(CtapError::MissingParameter);
    };
    let crv = as_int(crv)?;
    let (Value::Bytes(x), Value::Bytes(y)) = (x, y) else {
        return Err(CtapError::CborUnexpectedType);
    };
    if key.kty != KeyType::Assigned(iana::KeyType::EC2) || crv != COSE_CRV_P256 {
        return Err(CtapError::InvalidParameter);
    }
    let x = <[u8; 32]>::try_from(x.as_slice()).map_err(|_| CtapError::InvalidParameter)?;
    let y = <[u8; 32]>::try_from(y.as_slice()).map_err(|_| CtapError::InvalidParameter)?;
    let point = EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
    // Rejects coordinates that are not field elements and points off the curve.
    Option::<PublicKey>::from(PublicKey::from_encoded_point(&point)).ok_or(CtapError::InvalidParameter)
}

/// Whether `data` is a whole number of AES blocks (written without `%` so it
/// needs neither `usize::is_multiple_of`, Rust 1.87, nor a clippy allow).
fn is_whole_blocks(data: &[u8]) -> bool {
    data.chunks_exact(BLOCK).remainder().is_empty()
}

fn as_int(v: &Value) -> Result<i128, CtapError> {
    match v {
        Value::Integer(i) => Ok(i128::from(*i)),
        _ => Err(CtapError::CborUnexpectedType),
    }
}

/// The secret shared with the platform after key agreement, bound to one
/// protocol. Zeroized on drop.
pub struct SharedSecret {
    version: ProtocolVersion,
    /// Protocol One: SHA-256(Z). Protocol Two: the "CTAP2 HMAC key" half.
    hmac_key: [u8; 32],
    /// Protocol One: SHA-256(Z) again. Protocol Two: the "CTAP2 AES key" half.
    aes_key: [u8; 32],
}

impl SharedSecret {
    fn derive(version: ProtocolVersion, z: &[u8]) -> Result<Self, CtapError> {
        let mut secret = Self {
            version,
            hmac_key: [0; 32],
            aes_key: [0; 32],
        };
        match version {
            ProtocolVersion::One => {
                let mut digest = Sha256::digest(z);
                secret.hmac_key.copy_from_slice(&digest);
                secret.aes_key.copy_from_slice(&digest);
                digest.zeroize();
            }
            ProtocolVersion::Two => {
                let hk = Hkdf::<Sha256>::new(Some(&HKDF_SALT), z);
                hk.expand(HKDF_INFO_HMAC, &mut secret.hmac_key)
                    .map_err(|_| CtapError::Other)?;
                hk.expand(HKDF_INFO_AES, &mut secret.aes_key)
                    .map_err(|_| CtapError::Other)?;
            }
        }
        Ok(secret)
    }

    /// The protocol this secret was derived for.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// encrypt(sharedSecret, plaintext): AES-256-CBC without padding; protocol
    /// One uses an all-zero IV, protocol Two a random IV sent as the first 16
    /// bytes. `plaintext` must be whole 16-byte blocks (else `CTAP1_ERR_OTHER`:
    /// the authenticator only encrypts fixed-size values).
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, CtapError> {
        if !is_whole_blocks(plaintext) {
            return Err(CtapError::Other);
        }
        let mut iv = [0u8; BLOCK];
        let prefix = match self.version {
            ProtocolVersion::One => 0,
            ProtocolVersion::Two => {
                OsRng.try_fill_bytes(&mut iv).map_err(|_| CtapError::Other)?;
                BLOCK
            }
        };
        // Allocated once at full size so no reallocation leaves a copy of the
        // plaintext behind; wiped if encryption fails.
        let mut out = Zeroizing::new(Vec::with_capacity(prefix + plaintext.len()));
        out.extend_from_slice(&iv[..prefix]);
        out.extend_from_slice(plaintext);
        let cipher = Aes256CbcEnc::new_from_slices(&self.aes_key, &iv).map_err(|_| CtapError::Other)?;
        cipher
            .encrypt_padded_mut::<NoPadding>(&mut out[prefix..], plaintext.len())
            .map_err(|_| CtapError::Other)?;
        Ok(core::mem::take(&mut *out))
    }

    /// decrypt(sharedSecret, ciphertext): the inverse of [`SharedSecret::encrypt`].
    ///
    /// The encrypted part must be one or more whole 16-byte blocks, so
    /// protocol One needs a non-zero multiple of 16 bytes and protocol Two at
    /// least IV + 16 bytes (the spec would allow an empty plaintext; nothing
    /// CTAP encrypts is empty, so it is refused). A malformed ciphertext is
    /// `CTAP2_ERR_PIN_AUTH_INVALID`. CBC is unauthenticated: callers verify the
    /// pinUvAuthParam over the ciphertext *before* decrypting. The plaintext is
    /// secret (a PIN, a PIN hash, a salt): wrap it in `Zeroizing`.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CtapError> {
        let (iv, body): ([u8; BLOCK], &[u8]) = match self.version {
            ProtocolVersion::One => ([0; BLOCK], ciphertext),
            ProtocolVersion::Two => {
                if ciphertext.len() < BLOCK {
                    return Err(CtapError::PinAuthInvalid);
                }
                let (iv, body) = ciphertext.split_at(BLOCK);
                let iv = <[u8; BLOCK]>::try_from(iv).map_err(|_| CtapError::PinAuthInvalid)?;
                (iv, body)
            }
        };
        if body.is_empty() || !is_whole_blocks(body) {
            return Err(CtapError::PinAuthInvalid);
        }
        let cipher = Aes256CbcDec::new_from_slices(&self.aes_key, &iv).map_err(|_| CtapError::Other)?;
        let mut out = body.to_vec();
        cipher
            .decrypt_padded_mut::<NoPadding>(&mut out)
            .map_err(|_| CtapError::PinAuthInvalid)?;
        Ok(out)
    }

    /// authenticate(sharedSecret, message): the platform's side of
    /// [`SharedSecret::verify`] (16 bytes for protocol One, 32 for Two).
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        authenticate_with_key(self.version, &self.hmac_key, message)
    }

    /// verify(sharedSecret, message, signature): protocol One compares the
    /// left 16 bytes of HMAC-SHA-256(sharedSecret, message) and needs a
    /// 16-byte signature; protocol Two compares the whole HMAC under the HMAC
    /// key and needs 32 bytes. Constant-time; any failure is
    /// `CTAP2_ERR_PIN_AUTH_INVALID`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CtapError> {
        verify_with_key(self.version, &self.hmac_key, message, signature)
    }

    #[cfg(test)]
    fn raw(&self) -> Vec<u8> {
        match self.version {
            ProtocolVersion::One => self.hmac_key.to_vec(),
            ProtocolVersion::Two => [self.hmac_key, self.aes_key].concat(),
        }
    }
}

impl Drop for SharedSecret {
    fn drop(&mut self) {
        self.hmac_key.zeroize();
        self.aes_key.zeroize();
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecret")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// verify(pinUvAuthToken, message, signature), as MakeCredential,
/// GetAssertion, credentialManagement etc. check their pinUvAuthParam.
/// Same lengths and comparison as [`SharedSecret::verify`]; any failure is
/// `CTAP2_ERR_PIN_AUTH_INVALID`.
pub fn verify_with_token(
    version: ProtocolVersion,
    token: &[u8; 32],
    message: &[u8],
    signature: &[u8],
) -> Result<(), CtapError> {
    verify_with_key(version, token, message, signature)
}

/// authenticate(pinUvAuthToken, message): the platform's pinUvAuthParam (for
/// tests and platform-side tools).
pub fn authenticate_with_token(version: ProtocolVersion, token: &[u8; 32], message: &[u8]) -> Vec<u8> {
    authenticate_with_key(version, token, message)
}

fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> Zeroizing<[u8; 32]> {
    // HMAC accepts keys of any length; a 32-byte key cannot fail.
    let mut out = Zeroizing::new([0u8; 32]);
    if let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(key) {
        mac.update(message);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

fn authenticate_with_key(version: ProtocolVersion, key: &[u8; 32], message: &[u8]) -> Vec<u8> {
    let tag = hmac_sha256(key, message);
    tag[..version.mac_len()].to_vec()
}

fn verify_with_key(
    version: ProtocolVersion,
    key: &[u8; 32],
    message: &[u8],
    signature: &[u8],
) -> Result<(), CtapError> {
    let len = version.mac_len();
    // The length is public; only the contents are compared in constant time.
    if signature.len() != len {
        return Err(CtapError::PinAuthInvalid);
    }
    let tag = hmac_sha256(key, message);
    if bool::from(tag[..len].ct_eq(signature)) {
        Ok(())
    } else {
        Err(CtapError::PinAuthInvalid)
    }
}

#[cfg(test)]
mod tests;
