//! The key custody seam: who holds the private keys.
//!
//! The authenticator never sees a private key. It asks custody to create a
//! key for an algorithm and gets back an opaque, custody-wrapped blob (stored
//! next to the credential) plus the public key; to sign, it hands the blob
//! back with the message. The real implementation is the TPM (crate `lp-tpm`); the
//! one in [`insecure_software`] keeps keys in process memory and exists only
//! for unit tests and the simulation.

pub mod insecure_software;

/// A signature algorithm a credential key can have, named by its COSE
/// identifier (WebAuthn's `alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256 (COSE -7); every custody has it.
    Es256,
    /// ECDSA on P-384 with SHA-384 (COSE -35).
    Es384,
    /// ECDSA on P-521 with SHA-512 (COSE -36).
    Es512,
    /// RSASSA-PKCS1-v1_5 with SHA-256 on a 2048-bit key (COSE -257).
    Rs256,
    /// RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-byte salt, on a
    /// 2048-bit key (COSE -37, RFC 8230).
    Ps256,
}

impl Algorithm {
    /// Every algorithm any custody may offer, in our order of preference
    /// (used when the platform's list leaves a choice: it never does, its
    /// order wins).
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Es512,
        Algorithm::Rs256,
        Algorithm::Ps256,
    ];

    pub fn cose(self) -> i64 {
        match self {
            Algorithm::Es256 => -7,
            Algorithm::Es384 => -35,
            Algorithm::Es512 => -36,
            Algorithm::Rs256 => -257,
            Algorithm::Ps256 => -37,
        }
    }

    /// The length of a curve coordinate (and of r and s), for the ECDSA ones.
    pub fn coordinate_len(self) -> Option<usize> {
        match self {
            Algorithm::Es256 => Some(32),
            Algorithm::Es384 => Some(48),
            Algorithm::Es512 => Some(66),
            Algorithm::Rs256 | Algorithm::Ps256 => None,
        }
    }

    pub fn from_cose(alg: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.cose() == alg)
    }

    /// The COSE/WebAuthn name ("ES256", ...), as people and RP docs write it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Es512 => "ES512",
            Algorithm::Rs256 => "RS256",
            Algorithm::Ps256 => "PS256",
        }
    }
}

/// A credential's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ES256, ES384 or ES512: the affine coordinates of the point,
    /// big-endian, each as long as the curve's field (32, 48 or 66 bytes).
    Ec2 { alg: Algorithm, x: Vec<u8>, y: Vec<u8> },
    /// RS256 or PS256: modulus and public exponent, big-endian, no leading zeros.
    Rsa { alg: Algorithm, n: Vec<u8>, e: Vec<u8> },
}

impl PublicKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ec2 { alg, .. } | PublicKey::Rsa { alg, .. } => *alg,
        }
    }

    /// Whether `signature` (in WebAuthn's form) is this key's over `message`.
    /// What a relying party checks; the tests of every custody use it.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match self {
            PublicKey::Ec2 {
                alg: Algorithm::Es256,
                x,
                y,
            } => {
                let sec1 = [&[4u8][..], x, y].concat();
                let (Ok(key), Ok(sig)) = (
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1),
                    p256::ecdsa::Signature::from_der(signature),
                ) else {
                    return false;
                };
                key.verify(message, &sig).is_ok()
            }
            PublicKey::Ec2 {
                alg: Algorithm::Es384,
                x,
                y,
            } => {
                let sec1 = [&[4u8][..], x, y].concat();
                let (Ok(key), Ok(sig)) = (
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1),
                    p384::ecdsa::Signature::from_der(signature),
                ) else {
                    return false;
                };
                key.verify(message, &sig).is_ok()
            }
            PublicKey::Ec2 {
                alg: Algorithm::Es512,
                x,
                y,
            } => {
                let sec1 = [&[4u8][..], x, y].concat();
                let (Ok(key), Ok(sig)) = (
                    p521::ecdsa::VerifyingKey::from_sec1_bytes(&sec1),
                    p521::ecdsa::Signature::from_der(signature),
                ) else {
                    return false;
                };
                key.verify(message, &sig).is_ok()
            }
            PublicKey::Ec2 { .. } => false,
            PublicKey::Rsa { alg, n, e } => {
                use sha2::Digest;
                let key =
                    rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(e));
                let Ok(key) = key else { return false };
                let digest = sha2::Sha256::digest(message);
                match alg {
                    Algorithm::Rs256 => key
                        .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, signature)
                        .is_ok(),
                    // RFC 8230: the salt is as long as the hash.
                    Algorithm::Ps256 => key
                        .verify(rsa::Pss::new_with_salt::<sha2::Sha256>(32), &digest, signature)
                        .is_ok(),
                    _ => false,
                }
            }
        }
    }
}

/// What custody returns for a new key: the wrapped blob to store, and the public key.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Opaque to everyone but the custody that made it.
    pub blob: Vec<u8>,
    pub public: PublicKey,
}

/// A TPM2_Certify statement about one credential key, signed by the
/// custody's attestation key: the parts of a WebAuthn `tpm` attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certification {
    /// TPMS_ATTEST, as the attestation key signed it (`certInfo`).
    pub cert_info: Vec<u8>,
    /// The attestation key's ES256 signature over `cert_info`, ASN.1 DER (`sig`).
    pub signature: Vec<u8>,
    /// The certified key's TPMT_PUBLIC (`pubArea`).
    pub public_area: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// The blob is not one this custody made (or it is corrupt).
    #[error("key blob rejected by custody")]
    InvalidBlob,
    /// The custody needs user verification it does not have (wrong or missing PIN).
    #[error("custody refused: authorisation failed")]
    AuthFailed,
    /// The vault is not unlocked: no PIN/UV has been verified for this operation.
    #[error("custody refused: the vault is locked")]
    Locked,
    /// The hardware's own brute-force protection is engaged (TPM lockout):
    /// even the right PIN is refused until it recovers.
    #[error("custody refused: dictionary-attack lockout")]
    Lockout,
    /// The custody's own PIN counter has reached its limit: every PIN is
    /// refused for good, the right one too. Only Reset helps.
    #[error("custody refused: the PIN is blocked")]
    PinBlocked,
    /// The vault was revoked inside the custody (a later PIN change or
    /// Reset): this copy of it opens nothing, ever.
    #[error("custody refused: the vault is revoked")]
    Revoked,
    /// A PIN cannot be protected as promised here (says why and the fix).
    #[error("custody refused: {0}")]
    Unprotected(String),
    /// Anything else (TPM communication failure, ...). Never includes secrets.
    #[error("custody failure: {0}")]
    Backend(String),
}

/// The custody holds keys under a *vault* whose authorisation is derived
/// from the user's PIN. Credential keys can only be created and used while
/// the vault is unlocked, and unlocking is checked by the custody itself (for
/// the TPM: by the TPM, with its dictionary-attack lockout).
pub trait KeyCustody: Send {
    /// A short name for logs, `info` and `doctor` (e.g. "tpm", "insecure-software").
    fn name(&self) -> &'static str;

    /// True only for custody whose keys cannot leave secure hardware.
    fn is_hardware(&self) -> bool;

    /// What keeps this stored key in its custody, as the custody can read
    /// from the blob itself: for a TPM key, the attributes of its public
    /// area that bind it to the TPM ("fixedTPM", "fixedParent",
    /// "sensitiveDataOrigin"). Empty when nothing does.
    fn key_protection(&self, _blob: &[u8]) -> Vec<&'static str> {
        Vec::new()
    }

    /// The algorithms this custody can make keys for (ES256 always), in
    /// our order of preference.
    fn algorithms(&self) -> Vec<Algorithm>;

    /// Create a new signing key for `alg` (one of [`KeyCustody::algorithms`]).
    fn create_key(&mut self, alg: Algorithm) -> Result<NewKey, CustodyError>;

    /// Sign `message` with the key in `blob`, hashing it as the key's
    /// algorithm says, in the form WebAuthn uses: ASN.1 DER for ECDSA, the
    /// raw signature block for RS256 and PS256.
    fn sign(&mut self, blob: &[u8], message: &[u8]) -> Result<Vec<u8>, CustodyError>;

    /// Create a per-credential HMAC-SHA-256 key (for hmac-secret), under the
    /// vault like the signing keys; returns its wrapped blob.
    fn create_hmac_key(&mut self) -> Result<Vec<u8>, CustodyError>;

    /// HMAC-SHA-256 of `message` with the key in `blob`, computed by the custody.
    fn hmac(&mut self, blob: &[u8], message: &[u8]) -> Result<[u8; 32], CustodyError>;

    /// The credential whose key (or HMAC key) is `blob` was deleted: drop
    /// whatever the custody keeps of it to use it quickly (a loaded handle,
    /// a saved context, a parsed key). The blob itself is the store's.
    fn forget_key(&mut self, _blob: &[u8]) {}

    /// Seal a small secret kept with a credential (credBlob, largeBlobKey)
    /// under the unlocked vault; returns the blob to store in its place.
    fn seal(&mut self, data: &[u8]) -> Result<Vec<u8>, CustodyError>;

    /// Read back a sealed secret (the vault must be unlocked).
    fn unseal(&mut self, blob: &[u8]) -> Result<Vec<u8>, CustodyError>;

    /// authenticatorReset: revoke `vault` inside the custody, so that no copy
    /// of it (or of any key under it) works again, and forget everything.
    fn reset(&mut self, vault: Option<&[u8]>) -> Result<(), CustodyError>;

    /// Create a new vault whose authorisation is `auth` and leave it
    /// unlocked. Returns the vault's wrapped blob, for the store.
    fn create_vault(&mut self, auth: &[u8; 32]) -> Result<Vec<u8>, CustodyError>;

    /// Check `auth` against the vault, in the custody, and keep the vault
    /// unlocked until [`KeyCustody::lock`]. A wrong `auth` is `AuthFailed`.
    /// `Some(blob)`: the stored vault must be replaced by this one (the
    /// custody finished an interrupted PIN change, or upgraded the vault).
    fn unlock(&mut self, vault: &[u8], auth: &[u8; 32]) -> Result<Option<Vec<u8>>, CustodyError>;

    /// Wrong PINs the custody itself still allows before it blocks, if it
    /// counts them (the TPM's PIN index does; None: it does not).
    fn pin_retries(&mut self, vault: &[u8]) -> Result<Option<u8>, CustodyError>;

    /// PIN change, step 1: returns a vault that opens with `old` and, once
    /// committed, only with `new`. Store it, then call [`KeyCustody::commit_change`].
    /// Credential keys under the vault stay valid.
    fn change_auth(&mut self, vault: &[u8], old: &[u8; 32], new: &[u8; 32]) -> Result<Vec<u8>, CustodyError>;

    /// PIN change, step 2: make `new` the only PIN (the old one is revoked
    /// in the custody); returns the vault to store.
    fn commit_change(
        &mut self,
        vault: &[u8],
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<Vec<u8>, CustodyError>;

    /// Whether this custody has attestation keys that can certify its
    /// credential keys (enterprise attestation). Only the TPM has.
    fn can_certify(&self) -> bool {
        false
    }

    /// A new credential key for `alg` that [`KeyCustody::certify`] can
    /// describe, or None where this custody cannot certify that algorithm.
    fn create_certifiable_key(&mut self, _alg: Algorithm) -> Result<Option<NewKey>, CustodyError> {
        Ok(None)
    }

    /// Certify the key in `key_blob` with the attestation key in
    /// `attestation_key` over `qualifying_data` (the vault must be unlocked).
    fn certify(
        &mut self,
        _attestation_key: &[u8],
        _key_blob: &[u8],
        _qualifying_data: &[u8],
    ) -> Result<Certification, CustodyError> {
        Err(CustodyError::Backend(
            "this custody has no attestation key".into(),
        ))
    }

    /// Forget the authorisation and unload everything loaded under the vault.
    fn lock(&mut self);

    fn is_unlocked(&self) -> bool;
}
