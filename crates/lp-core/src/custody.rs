//! The key custody seam: who holds the private keys.
//!
//! The authenticator never sees a private key. It asks custody to create a
//! P-256 key and gets back an opaque, custody-wrapped blob (stored next to the
//! credential) plus the public key; to sign, it hands the blob back with a
//! SHA-256 digest. The real implementation is the TPM (crate `lp-tpm`); the
//! one in [`insecure_software`] keeps keys in process memory and exists only
//! for unit tests and the simulation.

pub mod insecure_software;

/// An uncompressed P-256 public key, as affine coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub x: [u8; 32],
    pub y: [u8; 32],
}

/// What custody returns for a new key: the wrapped blob to store, and the public key.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Opaque to everyone but the custody that made it.
    pub blob: Vec<u8>,
    pub public: PublicKey,
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

    /// Create a new P-256 signing key.
    fn create_key(&mut self) -> Result<NewKey, CustodyError>;

    /// Sign a SHA-256 digest with the key in `blob`; returns an ASN.1 DER
    /// ECDSA signature (the form WebAuthn uses for ES256).
    fn sign_digest(&mut self, blob: &[u8], digest: &[u8; 32]) -> Result<Vec<u8>, CustodyError>;

    /// Create a per-credential HMAC-SHA-256 key (for hmac-secret), under the
    /// vault like the signing keys; returns its wrapped blob.
    fn create_hmac_key(&mut self) -> Result<Vec<u8>, CustodyError>;

    /// HMAC-SHA-256 of `message` with the key in `blob`, computed by the custody.
    fn hmac(&mut self, blob: &[u8], message: &[u8]) -> Result<[u8; 32], CustodyError>;

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

    /// Forget the authorisation and unload everything loaded under the vault.
    fn lock(&mut self);

    fn is_unlocked(&self) -> bool;
}
