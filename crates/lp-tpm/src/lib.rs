//! # TPM key custody — the file to read to check LocalPasskey's promise
//!
//! Every passkey private key is made inside the TPM 2.0, cannot leave it, and
//! can only be used after the TPM itself has checked the user's PIN. This file
//! (plus the blob/error plumbing in `support.rs`) is all the code that decides
//! how; the templates it gives the TPM are the first thing below.
//!
//! ```text
//! owner hierarchy (its seed never leaves the TPM)
//! └── primary   ECC P-256 storage key, no authValue. Never stored: re-derived
//!     │         with TPM2_CreatePrimary at every open (same template, same
//!     │         seed -> same key).
//!     └── vault ECC P-256 storage key, made with TPM2_Create. authValue =
//!         │     32 bytes the authenticator derives from the PIN. NOT noDA:
//!         │     every wrong value counts toward the TPM's dictionary-attack
//!         │     lockout. Stored by the caller as a TPM-wrapped blob.
//!         ├── credential keys  ECC P-256 ECDSA, one per passkey, made with
//!         │         TPM2_Create under the vault: generated in the TPM
//!         │         (sensitiveDataOrigin), never exportable (fixedTPM |
//!         │         fixedParent: TPM2_Duplicate is refused). Stored by the
//!         │         caller as TPM-wrapped blobs.
//!         └── HMAC keys  KeyedHash HMAC-SHA-256, one per passkey that uses
//!                   hmac-secret (PRF), same attributes and same rules as the
//!                   credential keys: the secret behind every hmac-secret
//!                   output is made by the TPM, is used by TPM2_HMAC, and
//!                   never exists outside it.
//! ```
//!
//! Why the PIN sits on the vault: an authValue on a *primary* protects
//! nothing, because anyone can run TPM2_CreatePrimary with the same template
//! and an authValue of their choice. The vault's authValue is inside its
//! private blob, encrypted by the TPM; only the TPM can test a guess, and it
//! counts the failures. Loading (or creating) a credential key needs the
//! vault's authValue, so without the PIN no credential key can be loaded, and
//! an unloaded key cannot sign (or HMAC). The credential and HMAC keys
//! themselves have an empty authValue: the vault is the single gate.
//!
//! Limits, honestly:
//! * While unlocked, loaded credential and HMAC keys can be used by whoever holds this
//!   TPM connection. With `/dev/tpmrm0` the kernel resource manager isolates
//!   handles per open file, so that is this process only. `lock()` and drop
//!   flush everything.
//! * The salted session protects the PIN from a *passive* bus sniffer. An
//!   active interposer between CPU and TPM could answer TPM2_CreatePrimary
//!   with a key of its own; defending that needs a session salted to an
//!   EK-certified key, which we do not do (yet).
//! * libtss2 keeps the authValue in its own memory while the vault is loaded;
//!   we overwrite that copy before flushing the vault. It also leaves the
//!   HMAC key of the last authorised command (sessionKey || authValue) in its
//!   session state, which safe Rust cannot scrub: the binary should disable
//!   core dumps.
#![forbid(unsafe_code)]

mod support;

use lp_core::custody::{CustodyError, KeyCustody, NewKey, PublicKey};
use sha2::{Digest as _, Sha256};
use std::str::FromStr;
use support::{classify, decode, encode, tpm2b_private, tpm2b_public, HMAC_TAG, KEY_TAG, VAULT_TAG};
use tss_esapi::{
    attributes::{ObjectAttributes, ObjectAttributesBuilder, SessionAttributesBuilder},
    constants::{tss::TPM2_RH_NULL, tss::TPM2_ST_HASHCHECK, PropertyTag, SessionType},
    handles::{KeyHandle, ObjectHandle},
    interface_types::{
        algorithm::{HashingAlgorithm, PublicAlgorithm},
        ecc::EccCurve,
        resource_handles::Hierarchy,
        session_handles::AuthSession,
    },
    structures::{
        Auth, Digest, EccPoint, EccScheme, HashScheme, HashcheckTicket, KeyedHashScheme, MaxBuffer, Private,
        Public, PublicBuilder, PublicEccParameters, PublicEccParametersBuilder, PublicKeyedHashParameters,
        PublicParameters, Signature, SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
    },
    tcti_ldr::TctiNameConf,
    tss2_esys::TPMT_TK_HASHCHECK,
    Context,
};

/// The kernel's resource-managed TPM device.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// The longest message [`TpmCustody::hmac`] takes: one TPM2_HMAC, whose
/// buffer is a TPM2B_MAX_BUFFER (1024 bytes on every TPM we know). The
/// hmac-secret inputs are 32-byte salts, so one command is always enough.
pub const MAX_HMAC_MESSAGE: usize = 1024;

// ===========================================================================
// The templates: every attribute bit we ask the TPM for, set or clear.
// ===========================================================================

/// Primary: the TCG "storage root key" shape. noDA because it has no
/// authValue to guess (so it must never lock anyone out).
fn primary_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(false)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .with_sign_encrypt(false)
        .build()?)
}

/// Vault: the same storage-key shape, but DA-protected (noDA clear), so
/// wrong PINs count toward lockout. adminWithPolicy clear lets the authValue
/// itself authorise TPM2_ObjectChangeAuth (PIN change and PIN check).
fn vault_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(false)
        .with_no_da(false)
        .with_restricted(true)
        .with_decrypt(true)
        .with_sign_encrypt(false)
        .build()?)
}

/// Credential: a plain signing key that can never leave this TPM.
/// fixedTPM | fixedParent: not duplicable, not even to another parent here.
/// sensitiveDataOrigin: the TPM generated the private key, we never had it.
/// sign only: no decrypt, not restricted (it signs WebAuthn data we hash).
fn credential_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(false)
        .with_no_da(false)
        .with_restricted(false)
        .with_decrypt(false)
        .with_sign_encrypt(true)
        .build()?)
}

/// HMAC key (hmac-secret / PRF): exactly the credential key's bits, for
/// the same reasons. fixedTPM | fixedParent: the hmac-secret seed can never
/// be duplicated out, so a disk unlocked with it (systemd-cryptenroll) needs
/// this TPM. sensitiveDataOrigin: the TPM drew the HMAC key itself (we pass
/// no sensitive data, so nobody ever saw it). userWithAuth with an empty
/// authValue: the vault (PIN) is the gate, checked when the key is loaded.
/// sign set, decrypt and restricted clear: an unrestricted signing KeyedHash
/// is what TPM2_HMAC accepts; with decrypt it could also be a derivation
/// parent, and without sign it would be a sealed data object that
/// TPM2_Unseal hands out in the clear.
fn hmac_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(false)
        .with_no_da(false)
        .with_restricted(false)
        .with_decrypt(false)
        .with_sign_encrypt(true)
        .build()?)
}

/// ECC P-256, AES-128-CFB for wrapping children (the most widely supported).
fn storage_parameters() -> Result<PublicEccParameters, TpmError> {
    Ok(PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()?)
}

/// ECC P-256, ECDSA with SHA-256 only (WebAuthn ES256).
fn credential_parameters() -> Result<PublicEccParameters, TpmError> {
    let ecdsa_sha256 = EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256));
    Ok(PublicEccParametersBuilder::new_unrestricted_signing_key(ecdsa_sha256, EccCurve::NistP256).build()?)
}

/// A public template: SHA-256 names, no policy, empty `unique` (so the
/// primary is the same key at every CreatePrimary).
fn template(attrs: ObjectAttributes, params: PublicEccParameters) -> Result<Public, TpmError> {
    Ok(PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(params)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()?)
}

/// The templates, public so tools and the benchmark can print or reuse them.
pub fn primary_template() -> Result<Public, TpmError> {
    template(primary_attributes()?, storage_parameters()?)
}
pub fn vault_template() -> Result<Public, TpmError> {
    template(vault_attributes()?, storage_parameters()?)
}
pub fn credential_template() -> Result<Public, TpmError> {
    template(credential_attributes()?, credential_parameters()?)
}
/// KeyedHash with the HMAC scheme fixed to SHA-256 (TPM2_HMAC refuses any
/// other hash with it), SHA-256 name, no policy, empty `unique`.
pub fn hmac_template() -> Result<Public, TpmError> {
    Ok(PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(hmac_attributes()?)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::HMAC_SHA_256))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()?)
}

/// True if a stored public area was made from `template` (everything but
/// the key itself). We refuse to load anything else, so a planted blob with
/// other attributes (say, a noDA vault) is never used. The TPM binds the
/// public area to the private part, so the attributes we check are real.
fn matches_template(public: &Public, mut template: Public) -> bool {
    match (public, &mut template) {
        (Public::Ecc { unique, .. }, Public::Ecc { unique: u, .. }) => *u = unique.clone(),
        (Public::KeyedHash { unique, .. }, Public::KeyedHash { unique: u, .. }) => *u = unique.clone(),
        _ => {}
    }
    *public == template
}

// ===========================================================================
// Public types
// ===========================================================================

#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The TPM rejected the authValue (TPM_RC_AUTH_FAIL 0x98E / BAD_AUTH); a
    /// DA-protected failure has been counted.
    #[error("TPM authorisation failed (wrong PIN)")]
    AuthFailed,
    /// The TPM is in dictionary-attack lockout (TPM_RC_LOCKOUT 0x921): it
    /// refuses even the right authValue until its recovery time has passed.
    #[error("TPM is in dictionary-attack lockout")]
    Lockout,
    /// The vault is not unlocked.
    #[error("vault is locked")]
    Locked,
    /// A blob that does not parse, is not ours, or the TPM refuses to load
    /// (corrupt, or wrapped by another TPM or another vault).
    #[error("blob rejected")]
    InvalidBlob,
    /// Anything else from the TPM stack. Never contains secrets.
    #[error("TPM failure: {0}")]
    Tss(String),
}

/// The vault's TPM-wrapped blob: marshalled TPM2B_PUBLIC and TPM2B_PRIVATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultBlob {
    pub public: Vec<u8>,
    pub private: Vec<u8>,
}

impl VaultBlob {
    /// `"LPV\x01" || TPM2B_PUBLIC || TPM2B_PRIVATE`.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(VAULT_TAG, &self.public, &self.private)
    }
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TpmError> {
        let (public, private) = support::split(VAULT_TAG, bytes)?;
        Ok(VaultBlob {
            public: public.to_vec(),
            private: private.to_vec(),
        })
    }
    /// Parse, and refuse a vault not made from our template.
    fn parse(&self) -> Result<(Public, Private), TpmError> {
        let public = support::parse_public(&self.public)?;
        if !matches_template(&public, vault_template()?) {
            return Err(TpmError::InvalidBlob);
        }
        Ok((public, support::parse_private(&self.private)?))
    }
}

/// The attribute bits of a stored key's public area (for tests and audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttributes {
    pub raw: u32,
    pub fixed_tpm: bool,
    pub fixed_parent: bool,
    pub sensitive_data_origin: bool,
    pub user_with_auth: bool,
    pub admin_with_policy: bool,
    pub no_da: bool,
    pub encrypted_duplication: bool,
    pub restricted: bool,
    pub decrypt: bool,
    pub sign: bool,
    /// The public area is an ECC key on NIST P-256.
    pub ecc_p256: bool,
    /// The public area is a KeyedHash key with the HMAC-SHA-256 scheme.
    pub hmac_sha256: bool,
}

/// The TPM's dictionary-attack state, read live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaStatus {
    /// Failures counted (TPM_PT_LOCKOUT_COUNTER).
    pub counter: u32,
    /// Failures before lockout (TPM_PT_MAX_AUTH_FAIL).
    pub max_tries: u32,
    /// Seconds after which one failure is forgotten (TPM_PT_LOCKOUT_INTERVAL).
    pub recovery_secs: u32,
    /// Seconds before lockoutAuth may be retried after it failed (TPM_PT_LOCKOUT_RECOVERY).
    pub lockout_auth_recovery_secs: u32,
    /// TPMA_PERMANENT.inLockout.
    pub in_lockout: bool,
}

/// What `localpasskey doctor` prints about the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmDescription {
    /// TPM_PT_MANUFACTURER as text, e.g. "IBM" (swtpm), "INTC", "AMD", "IFX".
    pub manufacturer: String,
    /// TPM_PT_VENDOR_STRING_1..4.
    pub vendor: String,
    /// TPM_PT_FIRMWARE_VERSION_1/2 as `a.b.c.d`.
    pub firmware_version: String,
    /// TPM2_TestParms accepts our credential key (ECC P-256, ECDSA/SHA-256).
    pub ecc_p256: bool,
    /// TPM_PT_HR_TRANSIENT_MIN: transient object slots the TPM guarantees.
    pub transient_slots: Option<u32>,
    /// Credential keys we keep loaded while unlocked.
    pub key_cache_size: usize,
}

// ===========================================================================
// The custody
// ===========================================================================

pub struct TpmCustody {
    ctx: Context,
    primary: KeyHandle,
    /// Salted HMAC session (see `open`), used for every vault-authorised command.
    session: AuthSession,
    /// The loaded vault, with its authValue set in libtss2: "unlocked".
    vault: Option<KeyHandle>,
    /// SHA-256 of the loaded vault's blob, to recognise it on the next unlock.
    vault_id: Option<[u8; 32]>,
    /// Loaded credential and HMAC keys, least recently used first, keyed by SHA-256 of the blob.
    cache: Vec<([u8; 32], KeyHandle)>,
    cache_size: usize,
}

impl TpmCustody {
    /// Connect (`"device:/dev/tpmrm0"`, `"swtpm:host=127.0.0.1,port=P"`, ...),
    /// re-create the primary, and start the salted session.
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        let conf =
            TctiNameConf::from_str(tcti).map_err(|e| TpmError::Tss(format!("bad TCTI {tcti:?}: {e}")))?;
        let mut ctx = Context::new(conf).map_err(|e| TpmError::Tss(format!("cannot open {tcti}: {e}")))?;
        match support::flush_leftovers(&mut ctx) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(n, "flushed objects a previous run left in the TPM"),
            Err(e) => tracing::debug!("could not list leftover TPM objects: {e}"),
        }

        // The owner hierarchy normally has an empty authValue (a password
        // session with an empty password). Deterministic: same template, same key.
        let template = primary_template()?;
        let primary = ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map_err(|e| TpmError::Tss(format!("TPM2_CreatePrimary in the owner hierarchy: {e}")))?
            .key_handle;

        // WHY SALTED: an HMAC session proves knowledge of the authValue with
        // HMAC(sessionKey || authValue, nonces, command). In an *unsalted*,
        // unbound session the sessionKey is empty, so a bus sniffer who
        // records one command can test PIN guesses offline against that
        // HMAC — the DA lockout never sees them. With tpmKey = primary, the
        // session salt is encrypted to the primary (ECDH), only the TPM can
        // recover it, and the sessionKey is secret: every guess has to go
        // through the TPM. decrypt|encrypt add parameter encryption (AES-128-CFB):
        // the first TPM2B parameter travels encrypted, which hides the new
        // authValue in TPM2_Create (vault) and TPM2_ObjectChangeAuth (PIN change).
        let session = ctx
            .execute_without_session(|ctx| {
                ctx.start_auth_session(
                    Some(primary),
                    None,
                    None,
                    SessionType::Hmac,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
            })?
            .ok_or_else(|| TpmError::Tss("TPM2_StartAuthSession returned no session".into()))?;
        let (attrs, mask) = SessionAttributesBuilder::new()
            .with_continue_session(true)
            .with_decrypt(true)
            .with_encrypt(true)
            .build();
        ctx.tr_sess_set_attributes(session, attrs, mask)?;

        // Key cache: the TPM guarantees TPM_PT_HR_TRANSIENT_MIN loaded objects
        // (swtpm: 3); the primary and the vault take two. Keep the rest for
        // credential keys (at least 1, at most 8), so repeated assertions with
        // the same credential cost one TPM2_Sign.
        let slots = support::property(&mut ctx, PropertyTag::HrTransientMin)?.unwrap_or(3);
        let cache_size = (slots as usize).saturating_sub(2).clamp(1, 8);
        tracing::debug!(slots, cache_size, "TPM opened");
        Ok(TpmCustody {
            ctx,
            primary,
            session,
            vault: None,
            vault_id: None,
            cache: Vec::new(),
            cache_size,
        })
    }

    /// Create the vault with this authValue; returns its blob and leaves it unlocked.
    pub fn create_vault(&mut self, auth: &[u8; 32]) -> Result<VaultBlob, TpmError> {
        self.lock();
        let (primary, template) = (self.primary, vault_template()?);
        let auth = Auth::try_from(&auth[..])?;
        let made = self.ctx.execute_with_session(Some(self.session), |ctx| {
            ctx.create(primary, template, Some(auth.clone()), None, None, None)
        })?;
        let blob = VaultBlob {
            public: tpm2b_public(&made.out_public)?,
            private: tpm2b_private(&made.out_private),
        };
        self.load_vault(made.out_public, made.out_private, auth)?;
        Ok(blob)
    }

    /// Load the vault and have the TPM check `auth` now, so a wrong PIN
    /// is reported (and counted) here, not at the next signature.
    pub fn unlock(&mut self, vault: &VaultBlob, auth: &[u8; 32]) -> Result<(), TpmError> {
        let id: [u8; 32] = Sha256::digest(vault.to_bytes()).into();
        let auth = Auth::try_from(&auth[..])?;
        let handle = match self.vault {
            // Already loaded (the platform asks for a new token while the
            // last one is live): check this auth on the loaded vault and keep
            // the cached credential keys, so the next assertion is one
            // TPM2_Sign. Any failure below flushes everything.
            Some(handle) if self.vault_id == Some(id) => {
                if let Err(e) = self.ctx.tr_set_auth(handle.into(), auth.clone()) {
                    self.lock();
                    return Err(e.into());
                }
                handle
            }
            _ => {
                self.lock();
                let (public, private) = vault.parse()?;
                let handle = self.load_vault(public, private, auth.clone())?;
                self.vault_id = Some(id);
                handle
            }
        };
        // THE PIN CHECK: TPM2_ObjectChangeAuth on the vault, to the same value,
        // result discarded. It is one command, needs the vault's authValue
        // (adminWithPolicy is clear), counts a failure against DA like any
        // use would, changes nothing in the TPM, and needs no extra stored
        // object. The alternative (TPM2_Load of a small check object under
        // the vault, then TPM2_FlushContext) is two commands plus a blob to
        // store, and no faster (swtpm p50: 3.4 ms vs 3.9 ms; examples/tpm_bench.rs).
        let primary = self.primary;
        let check = self.ctx.execute_with_session(Some(self.session), |ctx| {
            ctx.object_change_auth(handle.into(), primary.into(), auth)
        });
        if let Err(e) = check {
            self.lock();
            return Err(e.into());
        }
        Ok(())
    }

    /// Flush the vault and every cached key; scrub the authValue copy in libtss2.
    pub fn lock(&mut self) {
        for (_, key) in std::mem::take(&mut self.cache) {
            self.flush(key.into());
        }
        self.vault_id = None;
        if let Some(vault) = self.vault.take() {
            // Overwrite libtss2's copy of the authValue before freeing it.
            if self.ctx.tr_set_auth(vault.into(), Auth::default()).is_err() {
                tracing::warn!("could not scrub the vault authValue in libtss2");
            }
            self.flush(vault.into());
        }
    }

    pub fn is_unlocked(&self) -> bool {
        self.vault.is_some()
    }

    /// PIN change: TPM2_ObjectChangeAuth gives the vault a new private blob
    /// with the new authValue; the credential keys under it are untouched and
    /// keep working. Returns the new blob. The old blob still opens with the
    /// old authValue (the TPM cannot revoke it): the caller must overwrite it,
    /// and a copy kept elsewhere stays usable with the old PIN. Leaves the
    /// vault unlocked with `new` on success, locked on failure.
    pub fn change_auth(
        &mut self,
        vault: &VaultBlob,
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<VaultBlob, TpmError> {
        self.lock();
        let (public, private) = vault.parse()?;
        let (old, new) = (Auth::try_from(&old[..])?, Auth::try_from(&new[..])?);
        let handle = self.load_vault(public.clone(), private, old)?;
        let primary = self.primary;
        let new_private = self.ctx.execute_with_session(Some(self.session), |ctx| {
            ctx.object_change_auth(handle.into(), primary.into(), new.clone())
        });
        // The loaded copy still has the old authValue: always flush it.
        self.lock();
        let new_private = new_private?;
        let blob = VaultBlob {
            public: vault.public.clone(),
            private: tpm2b_private(&new_private),
        };
        self.load_vault(public, new_private, new)?;
        Ok(blob)
    }

    /// Make a credential key under the unlocked vault.
    pub fn create_credential(&mut self) -> Result<NewKey, TpmError> {
        let vault = self.vault.ok_or(TpmError::Locked)?;
        let (session, template) = (self.session, credential_template()?);
        let made = self.with_free_slot(|ctx| {
            ctx.execute_with_session(Some(session), |ctx| {
                ctx.create(vault, template.clone(), None, None, None, None)
            })
        })?;
        let public = match &made.out_public {
            Public::Ecc { unique, .. } => PublicKey {
                x: support::coordinate(unique.x().value())?,
                y: support::coordinate(unique.y().value())?,
            },
            _ => return Err(TpmError::Tss("TPM2_Create returned a non-ECC key".into())),
        };
        let blob = encode(
            KEY_TAG,
            &tpm2b_public(&made.out_public)?,
            &tpm2b_private(&made.out_private),
        );
        Ok(NewKey { blob, public })
    }

    /// ECDSA-sign a SHA-256 digest with a credential key; ASN.1 DER.
    pub fn sign(&mut self, blob: &[u8], digest: &[u8; 32]) -> Result<Vec<u8>, TpmError> {
        let key = self.loaded_key(KEY_TAG, credential_template, blob)?;
        let digest = Digest::try_from(&digest[..])?;
        let scheme = SignatureScheme::EcDsa {
            hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
        };
        // "No ticket": only restricted keys need proof the TPM hashed the data.
        let no_ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })?;
        // The credential key's own authValue is empty (the vault gate was
        // passed at load), so a plain password session is enough.
        let signature = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.sign(key, digest, scheme, no_ticket)
            })?;
        let Signature::EcDsa(sig) = signature else {
            return Err(TpmError::Tss("TPM2_Sign returned a non-ECDSA signature".into()));
        };
        let r = support::coordinate(sig.signature_r().value())?;
        let s = support::coordinate(sig.signature_s().value())?;
        let sig = p256::ecdsa::Signature::from_scalars(r, s)
            .map_err(|_| TpmError::Tss("TPM2_Sign returned an invalid signature".into()))?;
        Ok(sig.to_der().as_bytes().to_vec())
    }

    /// Make a per-credential HMAC-SHA-256 key (hmac-secret) under the
    /// unlocked vault. Returns `"LPH\x01" || TPM2B_PUBLIC || TPM2B_PRIVATE`.
    pub fn create_hmac_key(&mut self) -> Result<Vec<u8>, TpmError> {
        let vault = self.vault.ok_or(TpmError::Locked)?;
        let (session, template) = (self.session, hmac_template()?);
        // No sensitive data: with sensitiveDataOrigin the TPM draws the key.
        let made = self.with_free_slot(|ctx| {
            ctx.execute_with_session(Some(session), |ctx| {
                ctx.create(vault, template.clone(), None, None, None, None)
            })
        })?;
        Ok(encode(
            HMAC_TAG,
            &tpm2b_public(&made.out_public)?,
            &tpm2b_private(&made.out_private),
        ))
    }

    /// HMAC-SHA-256 of `message` (at most [`MAX_HMAC_MESSAGE`] bytes) with
    /// an HMAC key, computed by TPM2_HMAC.
    pub fn hmac(&mut self, blob: &[u8], message: &[u8]) -> Result<[u8; 32], TpmError> {
        if message.len() > MAX_HMAC_MESSAGE {
            return Err(TpmError::Tss(format!(
                "HMAC message of {} bytes (TPM2_HMAC takes at most {MAX_HMAC_MESSAGE})",
                message.len()
            )));
        }
        let key = self.loaded_key(HMAC_TAG, hmac_template, blob)?;
        let buffer = MaxBuffer::try_from(message)?;
        // WHY THE SALTED SESSION, not a password session as for TPM2_Sign:
        // a signature is public, but this output *is* the secret (the
        // hmac-secret output unlocks disks and password databases). The key's
        // authValue is empty, so the salted HMAC session authorises it just
        // as well, and its encrypt attribute makes the TPM send outHMAC
        // encrypted under the session key: a bus sniffer never sees it.
        // (decrypt hides the message too, which costs nothing.) Cost: ~3-4 ms
        // per call on swtpm here, nearly all of it libtss2's session crypto in
        // our process (a password-session TPM2_HMAC is ~0.1 ms); hmac-secret
        // makes one or two calls per assertion.
        let session = self.session;
        let out = self.ctx.execute_with_session(Some(session), |ctx| {
            ctx.hmac(key.into(), buffer, HashingAlgorithm::Sha256)
        })?;
        <[u8; 32]>::try_from(out.value())
            .map_err(|_| TpmError::Tss(format!("TPM2_HMAC returned {} bytes", out.len())))
    }

    /// The attributes of a credential, HMAC or vault blob's public area.
    pub fn public_attributes(blob: &[u8]) -> Result<KeyAttributes, TpmError> {
        let public = [KEY_TAG, HMAC_TAG, VAULT_TAG]
            .into_iter()
            .find_map(|tag| decode(tag, blob).ok())
            .ok_or(TpmError::InvalidBlob)?
            .0;
        let a = public.object_attributes();
        let ecc_p256 = matches!(&public, Public::Ecc { parameters, .. }
            if parameters.ecc_curve() == EccCurve::NistP256);
        let hmac_sha256 = matches!(&public, Public::KeyedHash { parameters, .. }
            if *parameters == PublicKeyedHashParameters::new(KeyedHashScheme::HMAC_SHA_256));
        Ok(KeyAttributes {
            raw: a.0,
            fixed_tpm: a.fixed_tpm(),
            fixed_parent: a.fixed_parent(),
            sensitive_data_origin: a.sensitive_data_origin(),
            user_with_auth: a.user_with_auth(),
            admin_with_policy: a.admin_with_policy(),
            no_da: a.no_da(),
            encrypted_duplication: a.encrypted_duplication(),
            restricted: a.restricted(),
            decrypt: a.decrypt(),
            sign: a.sign_encrypt(),
            ecc_p256,
            hmac_sha256,
        })
    }

    /// Dictionary-attack state, read live with TPM2_GetCapability.
    pub fn da_status(&mut self) -> Result<DaStatus, TpmError> {
        let mut get = |tag| support::property(&mut self.ctx, tag).map(Option::unwrap_or_default);
        Ok(DaStatus {
            counter: get(PropertyTag::LockoutCounter)?,
            max_tries: get(PropertyTag::MaxAuthFail)?,
            recovery_secs: get(PropertyTag::LockoutInterval)?,
            lockout_auth_recovery_secs: get(PropertyTag::LockoutRecovery)?,
            in_lockout: get(PropertyTag::Permanent)? & (1 << 9) != 0,
        })
    }

    /// Identify the TPM for `doctor`.
    pub fn describe(&mut self) -> Result<TpmDescription, TpmError> {
        let mut get = |tag| support::property(&mut self.ctx, tag);
        let manufacturer = support::ascii(get(PropertyTag::Manufacturer)?.unwrap_or(0));
        let mut vendor = String::new();
        for tag in [
            PropertyTag::VendorString1,
            PropertyTag::VendorString2,
            PropertyTag::VendorString3,
            PropertyTag::VendorString4,
        ] {
            vendor += &support::ascii(get(tag)?.unwrap_or(0));
        }
        let fw1 = get(PropertyTag::FirmwareVersion1)?.unwrap_or(0);
        let fw2 = get(PropertyTag::FirmwareVersion2)?.unwrap_or(0);
        let transient_slots = get(PropertyTag::HrTransientMin)?;
        let params = PublicParameters::Ecc(credential_parameters()?);
        let ecc_p256 = self
            .ctx
            .execute_without_session(|ctx| ctx.test_parms(params))
            .is_ok();
        Ok(TpmDescription {
            manufacturer: manufacturer.trim().to_string(),
            vendor: vendor.trim().to_string(),
            firmware_version: format!("{}.{}.{}.{}", fw1 >> 16, fw1 & 0xFFFF, fw2 >> 16, fw2 & 0xFFFF),
            ecc_p256,
            transient_slots,
            key_cache_size: self.cache_size,
        })
    }

    // --- internals ---------------------------------------------------------

    /// TPM2_Load the vault under the primary and give libtss2 its authValue
    /// for the HMACs of later commands. Loading itself needs only the
    /// primary's (empty) auth; the TPM checks the vault's authValue when the
    /// vault is *used*.
    fn load_vault(&mut self, public: Public, private: Private, auth: Auth) -> Result<KeyHandle, TpmError> {
        let primary = self.primary;
        let vault = self
            .ctx
            .execute_with_session(Some(self.session), |ctx| ctx.load(primary, private, public))
            .map_err(|e| classify(e, true))?;
        self.vault = Some(vault);
        if let Err(e) = self.ctx.tr_set_auth(vault.into(), auth) {
            self.lock();
            return Err(e.into());
        }
        Ok(vault)
    }

    /// The loaded handle of a credential or HMAC key (`tag` and `template`
    /// say which): from the cache, or TPM2_Load under the vault (this is
    /// where the vault's authValue is required). Signing and HMAC keys share
    /// the cache; the tag is checked before the cache is, and the cache is
    /// keyed by the whole blob (tag included), so a key loaded as one kind
    /// is never handed out as the other.
    fn loaded_key(
        &mut self,
        tag: [u8; 4],
        template: fn() -> Result<Public, TpmError>,
        blob: &[u8],
    ) -> Result<KeyHandle, TpmError> {
        let vault = self.vault.ok_or(TpmError::Locked)?;
        if !blob.starts_with(&tag) {
            return Err(TpmError::InvalidBlob);
        }
        let id: [u8; 32] = Sha256::digest(blob).into();
        if let Some(i) = self.cache.iter().position(|(k, _)| *k == id) {
            let hit = self.cache.remove(i);
            self.cache.push(hit);
            return Ok(hit.1);
        }
        let (public, private) = decode(tag, blob)?;
        if !matches_template(&public, template()?) {
            return Err(TpmError::InvalidBlob);
        }
        let session = self.session;
        let key = self
            .with_free_slot(|ctx| {
                let (private, public) = (private.clone(), public.clone());
                ctx.execute_with_session(Some(session), |ctx| ctx.load(vault, private, public))
            })
            .map_err(|e| classify(e, true))?;
        self.cache.push((id, key));
        Ok(key)
    }

    /// Run a command that needs a free transient object slot: TPM2_Load, and
    /// TPM2_Create too (the TPM builds the new object in a slot). Evict the
    /// least recently used key if the cache is full; if the TPM is still out
    /// of slots (0x902: someone else holds some, no resource manager), give
    /// back all of ours and retry once.
    fn with_free_slot<T>(
        &mut self,
        command: impl Fn(&mut Context) -> tss_esapi::Result<T>,
    ) -> tss_esapi::Result<T> {
        while self.cache.len() >= self.cache_size {
            let (_, old) = self.cache.remove(0);
            self.flush(old.into());
        }
        match command(&mut self.ctx) {
            Err(e) if support::is_object_memory(&e) => {
                for (_, old) in std::mem::take(&mut self.cache) {
                    self.flush(old.into());
                }
                command(&mut self.ctx)
            }
            other => other,
        }
    }

    fn flush(&mut self, handle: ObjectHandle) {
        if let Err(e) = self.ctx.flush_context(handle) {
            tracing::warn!("TPM2_FlushContext failed: {e}");
        }
    }
}

impl Drop for TpmCustody {
    /// Flush the vault and keys (the primary and the session are flushed by
    /// the `Context`'s own drop).
    fn drop(&mut self) {
        self.lock();
    }
}

impl From<TpmError> for CustodyError {
    fn from(e: TpmError) -> Self {
        match e {
            TpmError::AuthFailed => CustodyError::AuthFailed,
            TpmError::Lockout => CustodyError::Lockout,
            TpmError::Locked => CustodyError::Locked,
            TpmError::InvalidBlob => CustodyError::InvalidBlob,
            TpmError::Tss(msg) => CustodyError::Backend(msg),
        }
    }
}

impl KeyCustody for TpmCustody {
    fn name(&self) -> &'static str {
        "tpm"
    }

    fn is_hardware(&self) -> bool {
        true
    }

    fn create_key(&mut self) -> Result<NewKey, CustodyError> {
        Ok(self.create_credential()?)
    }

    fn sign_digest(&mut self, blob: &[u8], digest: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        Ok(self.sign(blob, digest)?)
    }

    fn create_hmac_key(&mut self) -> Result<Vec<u8>, CustodyError> {
        Ok(TpmCustody::create_hmac_key(self)?)
    }

    fn hmac(&mut self, blob: &[u8], message: &[u8]) -> Result<[u8; 32], CustodyError> {
        Ok(TpmCustody::hmac(self, blob, message)?)
    }

    /// authenticatorReset: lock. The vault blob lives with the caller, who
    /// deletes it together with the credentials; without it no credential
    /// blob can ever be loaded again.
    fn reset(&mut self) -> Result<(), CustodyError> {
        self.lock();
        Ok(())
    }

    fn create_vault(&mut self, auth: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        Ok(TpmCustody::create_vault(self, auth)?.to_bytes())
    }

    fn unlock(&mut self, vault: &[u8], auth: &[u8; 32]) -> Result<(), CustodyError> {
        Ok(TpmCustody::unlock(self, &VaultBlob::from_bytes(vault)?, auth)?)
    }

    fn change_auth(&mut self, vault: &[u8], old: &[u8; 32], new: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        Ok(TpmCustody::change_auth(self, &VaultBlob::from_bytes(vault)?, old, new)?.to_bytes())
    }

    fn lock(&mut self) {
        TpmCustody::lock(self)
    }

    fn is_unlocked(&self) -> bool {
        TpmCustody::is_unlocked(self)
    }
}
