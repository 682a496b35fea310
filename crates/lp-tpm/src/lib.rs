//! # TPM key custody — the file to read to check LocalPasskey's promise
//!
//! Every passkey private key is made inside the TPM 2.0, cannot leave it, and
//! can only be used after the TPM itself has checked the user's PIN and
//! counted the wrong ones. This file, `templates.rs` (every attribute bit of
//! every object), `gate.rs` (the PIN index, the seal and the counters that
//! revoke), `saved.rs` (saved key contexts, sealed under the vault's secret)
//! and `lockout.rs` (the dictionary-attack lockout) are all the code that
//! decides how; `support.rs` is blob and error plumbing.
//!
//! ```text
//! owner hierarchy (its seed never leaves the TPM)
//! └── primary   ECC P-256 storage key, no authValue, noDA. Never stored:
//!     │         re-derived with TPM2_CreatePrimary at every open.
//!     ├── S     sealed secret R (gate.rs): opens only with the PIN, through
//!     │         the PIN index P that counts wrong PINs, within the current
//!     │         PIN generation (NV counter C).
//!     └── V     the vault: ECC P-256 storage key, authValue R, noDA,
//!         │     userWithAuth clear: usable only through its policy, which
//!         │     needs R and the current epoch (NV counter E).
//!         ├── credential keys  ECC P-256 ECDSA, one per passkey, made with
//!         │         TPM2_Create under V: generated in the TPM
//!         │         (sensitiveDataOrigin), never exportable (fixedTPM |
//!         │         fixedParent: TPM2_Duplicate is refused), noDA.
//!         └── HMAC keys  KeyedHash HMAC-SHA-256, one per passkey that uses
//!                   hmac-secret (PRF), same attributes and rules: the secret
//!                   behind every hmac-secret output never leaves the TPM.
//! ```
//!
//! Why the gate is not a password on a key: an authValue on a *primary*
//! protects nothing (anyone runs TPM2_CreatePrimary with an authValue of
//! their choice), and an authValue on a stored key is guarded only by the
//! TPM's dictionary-attack lockout, which anyone may reset while the lockout
//! authorisation is empty, and a stored blob can be copied back forever. The
//! PIN index counts inside the TPM, and the counters revoke inside the TPM:
//! after a PIN change the old PIN opens nothing, after Reset nothing opens,
//! whatever copies of the data directory exist.
//!
//! Limits, honestly:
//! * While unlocked, loaded credential and HMAC keys (empty authValue) can
//!   be used by whoever can reach this TPM's handles. With `/dev/tpmrm0` the
//!   kernel resource manager isolates handles per open file, so that is this
//!   process only, and keys stay cached. Any other TPM (swtpm, mssim) is
//!   reachable by other processes of the same user, so keys are flushed
//!   after the command that needed them; what stays is their saved context
//!   (TPM2_ContextSave), sealed again by us under a key derived from R that
//!   exists only while unlocked (`saved.rs` says why that is safe), so the
//!   next use, after the next unlock too, is TPM2_ContextLoad instead of the
//!   vault's policy and a load. `lock()` and drop flush everything and
//!   forget that key; Reset forgets the saved contexts.
//! * The salted sessions protect the PIN and R from a *passive* bus sniffer.
//!   An active interposer between CPU and TPM could answer TPM2_CreatePrimary
//!   with a key of its own; defending that needs a session salted to an
//!   EK-certified key, which we do not do (yet).
//! * A software TPM (swtpm) is a file on disk: whoever can copy its state
//!   can copy every key and roll back every counter. Only a hardware TPM
//!   makes these promises; `is_hardware()` says which one this is.
//! * libtss2 keeps authValues (the PIN during a check, R while unlocked) in
//!   its own memory; we overwrite them before flushing. It also leaves the
//!   HMAC key of the last authorised command in its session state, which safe
//!   Rust cannot scrub: the binary disables core dumps.
#![forbid(unsafe_code)]

pub mod attestation;
mod gate;
mod lockout;
mod saved;
mod support;
mod templates;

pub use gate::PIN_LIMIT;
pub use lockout::{DaStatus, DA_LOCKOUT_RECOVERY_SECS, DA_MAX_TRIES, DA_RECOVERY_SECS};

use lp_core::custody::{Algorithm, CustodyError, KeyCustody, NewKey, PublicKey};
use saved::{KeyId, SavedContexts};
use sha2::{Digest as _, Sha256};
use std::str::FromStr;
use support::{
    classify, decode, encode, tpm2b_private, tpm2b_public, DATA_TAG, HMAC_TAG, KEY_TAG, VAULT_TAG,
};
use tss_esapi::{
    attributes::SessionAttributesBuilder,
    constants::{
        tss::{TPM2_EO_EQ, TPM2_EO_UNSIGNED_GE, TPM2_EO_UNSIGNED_LE, TPM2_RH_NULL, TPM2_ST_HASHCHECK},
        CapabilityType, CommandCode, PropertyTag, SessionType,
    },
    handles::{AuthHandle, KeyHandle, NvIndexHandle, NvIndexTpmHandle, ObjectHandle, TpmHandle},
    interface_types::{
        algorithm::HashingAlgorithm,
        ecc::EccCurve,
        resource_handles::{Hierarchy, NvAuth, Provision},
        session_handles::{AuthSession, PolicySession},
    },
    structures::{
        Auth, CapabilityData, Digest, DigestList, HashScheme, HashcheckTicket, KeyedHashScheme, MaxBuffer,
        MaxNvBuffer, Nonce, Private, Public, PublicKeyedHashParameters, PublicParameters, SensitiveData,
        Signature, SignatureScheme, SymmetricDefinition,
    },
    tcti_ldr::TctiNameConf,
    tss2_esys::TPMT_TK_HASHCHECK,
    Context,
};
use zeroize::Zeroizing;

/// The kernel's resource-managed TPM device.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// The longest message [`TpmCustody::hmac`] takes: one TPM2_HMAC, whose
/// buffer is a TPM2B_MAX_BUFFER (1024 bytes on every TPM we know). The
/// hmac-secret inputs are 32-byte salts, so one command is always enough.
pub const MAX_HMAC_MESSAGE: usize = 1024;

// The templates (key attributes, parameters, policies): `templates.rs`.
use templates::*;
pub use templates::{credential_template, credential_template_for, hmac_template, primary_template};

// ===========================================================================
// Public types
// ===========================================================================

#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The TPM rejected the PIN: counted by the PIN index (TPM_RC_BAD_AUTH),
    /// or, on the way around it, by the dictionary-attack counter (TPM_RC_AUTH_FAIL).
    #[error("TPM authorisation failed (wrong PIN)")]
    AuthFailed,
    /// The PIN index has counted pinLimit failures (TPM_RC_AUTH_UNAVAILABLE):
    /// the TPM refuses every PIN, the right one too. Only Reset helps.
    #[error("the TPM's PIN index has reached its limit")]
    PinBlocked,
    /// This vault is revoked inside the TPM (a PIN change or Reset moved a
    /// counter past it, or its NV indices are gone): nothing opens it again.
    #[error("vault revoked inside the TPM")]
    Revoked,
    /// The PIN index accepted the PIN but the seal refused it, and the TPM
    /// counted a dictionary-attack failure: the owner replaced the PIN index,
    /// or this is the other seal of an interrupted PIN change.
    #[error("the PIN seal refused the PIN (counted by the dictionary-attack lockout)")]
    SealRefused,
    /// The TPM is in dictionary-attack lockout (TPM_RC_LOCKOUT 0x921): it
    /// refuses even the right authValue until its recovery time has passed.
    #[error("TPM is in dictionary-attack lockout")]
    Lockout,
    /// A PIN cannot be protected here: the lockout authorisation is empty on
    /// a hardware TPM, or the TPM cannot make our PIN index. Says which.
    #[error("{0}")]
    Unprotected(String),
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

/// The NV indices of one installation's PIN gate, and V's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gate {
    /// P: the PIN index.
    pin: u32,
    /// C: the PIN generation counter.
    generation: u32,
    /// E: the epoch counter.
    epoch_counter: u32,
    /// E's value V's policy requires.
    epoch: u64,
    /// V is a legacy vault (made before the PIN index, migrated): it has no
    /// epoch policy and is used with R as its authValue.
    legacy_vault: bool,
}

/// One seal S: R for the PIN of generation `generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seal {
    generation: u64,
    public: Vec<u8>,
    private: Vec<u8>,
}

/// The vault's TPM-wrapped state, as the caller stores it. Nothing in it is
/// secret: V and S are TPM-wrapped, and the rest are NV handles and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultBlob {
    /// None: a vault made before the PIN index (format 1): V's authValue is
    /// the PIN-derived value itself.
    gate: Option<Gate>,
    /// V's TPM2B_PUBLIC and TPM2B_PRIVATE.
    public: Vec<u8>,
    private: Vec<u8>,
    /// One seal, or two while a PIN change is under way (old first).
    seals: Vec<Seal>,
}

/// Tag of the format with a PIN gate.
const GATED_VAULT_TAG: [u8; 4] = *b"LPV\x02";

impl VaultBlob {
    /// Format 1: `"LPV\x01" || TPM2B_PUBLIC || TPM2B_PRIVATE`. Format 2:
    /// `"LPV\x02" || P C E (u32 each) || epoch u64 || legacy u8 || V's
    /// TPM2B_PUBLIC TPM2B_PRIVATE || count u8 || (generation u64 || S's
    /// TPM2B_PUBLIC TPM2B_PRIVATE)*`, big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let Some(g) = self.gate else {
            return encode(VAULT_TAG, &self.public, &self.private);
        };
        let mut out = GATED_VAULT_TAG.to_vec();
        for h in [g.pin, g.generation, g.epoch_counter] {
            out.extend_from_slice(&h.to_be_bytes());
        }
        out.extend_from_slice(&g.epoch.to_be_bytes());
        out.push(u8::from(g.legacy_vault));
        out.extend_from_slice(&self.public);
        out.extend_from_slice(&self.private);
        out.push(self.seals.len() as u8);
        for s in &self.seals {
            out.extend_from_slice(&s.generation.to_be_bytes());
            out.extend_from_slice(&s.public);
            out.extend_from_slice(&s.private);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TpmError> {
        if bytes.starts_with(&VAULT_TAG) {
            let (public, private) = support::split(VAULT_TAG, bytes)?;
            return Ok(VaultBlob {
                gate: None,
                public: public.to_vec(),
                private: private.to_vec(),
                seals: Vec::new(),
            });
        }
        let mut r = support::Reader::new(
            bytes
                .strip_prefix(&GATED_VAULT_TAG)
                .ok_or(TpmError::InvalidBlob)?,
        );
        let gate = Gate {
            pin: r.u32()?,
            generation: r.u32()?,
            epoch_counter: r.u32()?,
            epoch: r.u64()?,
            legacy_vault: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(TpmError::InvalidBlob),
            },
        };
        let (public, private) = (r.tpm2b()?.to_vec(), r.tpm2b()?.to_vec());
        let count = r.u8()?;
        if !(1..=2).contains(&count) {
            return Err(TpmError::InvalidBlob);
        }
        let mut seals = Vec::new();
        for _ in 0..count {
            seals.push(Seal {
                generation: r.u64()?,
                public: r.tpm2b()?.to_vec(),
                private: r.tpm2b()?.to_vec(),
            });
        }
        r.end()?;
        Ok(VaultBlob {
            gate: Some(gate),
            public,
            private,
            seals,
        })
    }

    /// True for a vault whose PIN is counted by a TPM PIN index.
    pub fn is_gated(&self) -> bool {
        self.gate.is_some()
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
    /// The public area carries an authorisation policy.
    pub has_policy: bool,
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
    /// TPM_PT_REVISION as `1.59`.
    pub revision: String,
    /// A software TPM (swtpm or the reference simulator), not a chip.
    pub software: bool,
    /// TPM2_TestParms accepts our credential key (ECC P-256, ECDSA/SHA-256).
    pub ecc_p256: bool,
    /// TPM_PT_HR_TRANSIENT_MIN: transient object slots the TPM guarantees.
    pub transient_slots: Option<u32>,
    /// Credential keys we keep loaded while unlocked.
    pub key_cache_size: usize,
    /// Loaded keys are reachable only by this process (a kernel resource
    /// manager or an exclusively opened device), so they may stay cached.
    pub isolated: bool,
}

/// How credential and HMAC keys were brought back into the TPM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyLoads {
    /// TPM2_ContextLoad of a saved context (no vault policy).
    pub contexts: u64,
    /// Saved contexts the TPM refused (another TPM Reset cycle).
    pub refused: u64,
    /// V's policy and TPM2_Load from the blob.
    pub full: u64,
}

/// The PIN index's counts, read from the TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinCounts {
    /// Failures since the last success.
    pub failures: u32,
    /// Failures allowed.
    pub limit: u32,
}

// ===========================================================================
// The custody
// ===========================================================================

/// How the loaded V authorises its children.
enum VaultUse {
    /// A policy session, re-run for every command: PolicyNV(E == epoch),
    /// PolicyAuthValue (R, set on V's handle).
    Epoch {
        session: PolicySession,
        counter: NvIndexHandle,
        epoch: u64,
    },
    /// A legacy vault: its authValue through the salted HMAC session.
    AuthValue,
}

pub struct TpmCustody {
    ctx: Context,
    primary: KeyHandle,
    /// Salted HMAC session (see `open`), used for every authorised command
    /// that is not a policy: PolicySecret's PIN, loads under the primary.
    session: AuthSession,
    /// The loaded vault V, with its authValue set in libtss2: "unlocked".
    vault: Option<(KeyHandle, VaultUse)>,
    /// SHA-256 of the loaded vault's blob, to recognise it on the next unlock.
    vault_id: Option<[u8; 32]>,
    /// Loaded credential and HMAC keys, least recently used first, keyed by SHA-256 of the blob.
    cache: Vec<([u8; 32], KeyHandle)>,
    /// On a TPM others reach: the saved contexts of keys flushed while the
    /// vault was open, keyed like `cache`, sealed under a key derived from
    /// R that only an unlock gives (`saved.rs`). Kept across locks, dropped
    /// at Reset; the TPM refuses them after a TPM Reset.
    saved: SavedContexts,
    /// How keys were brought back into the TPM (for tests and the benchmark).
    loads: KeyLoads,
    cache_size: usize,
    /// Other processes cannot reach our handles (kernel resource manager).
    isolated: bool,
    /// swtpm or the reference simulator: a TPM that is a file.
    software: bool,
    /// The credential algorithms this TPM accepts (TPM2_TestParms), ES256 first.
    algorithms: Vec<Algorithm>,
    /// The person accepted a PIN guarded by the DA lockout alone where the
    /// TPM cannot make our PIN index (`accept_weak_pin_limit`).
    allow_unguarded: bool,
    /// Where the TPM is, to reach it again after a TPM Reset.
    tcti: String,
    /// While unlocked: the vault and its authValue, so that a TPM Reset
    /// under us (resume from hibernation, a restarted swtpm), which drops
    /// every loaded object and session, can be undone without the PIN.
    /// libtss2 holds the same authValue for as long; both go at `lock`.
    restore: Option<(VaultBlob, Auth)>,
}

impl TpmCustody {
    /// Connect (`"device:/dev/tpmrm0"`, `"swtpm:path=/run/user/1000/lpk/tpm.sock"`, ...),
    /// re-create the primary, and start the salted session.
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        Self::connect(tcti, true)
    }

    /// [`TpmCustody::open`] for a look at the TPM (`doctor`, `tpm-protect`)
    /// while a daemon may be using it: leaves whatever is loaded alone.
    pub fn inspect(tcti: &str) -> Result<Self, TpmError> {
        Self::connect(tcti, false)
    }

    /// A connection to the TPM, and nothing made on it yet.
    fn open_context(tcti: &str) -> Result<Context, TpmError> {
        let conf =
            TctiNameConf::from_str(tcti).map_err(|e| TpmError::Tss(format!("bad TCTI {tcti:?}: {e}")))?;
        Context::new(conf).map_err(|e| TpmError::Tss(format!("cannot open {tcti}: {e}")))
    }

    fn connect(tcti: &str, owner: bool) -> Result<Self, TpmError> {
        let mut ctx = Self::open_context(tcti)?;
        // Only a device node is private to us: /dev/tpmrm0 gives each open
        // file its own handles, /dev/tpm0 is opened exclusively. A socket
        // (swtpm, mssim) serves whoever connects, between our commands too.
        let isolated = tcti.starts_with("device");
        if owner && !isolated {
            match support::flush_leftovers(&mut ctx) {
                Ok(0) => {}
                Ok(n) => tracing::warn!(n, "flushed objects a previous run left in the TPM"),
                Err(e) => tracing::debug!("could not list leftover TPM objects: {e}"),
            }
        }
        let manufacturer =
            support::ascii(support::property(&mut ctx, PropertyTag::Manufacturer)?.unwrap_or(0));
        let vendor = support::ascii(support::property(&mut ctx, PropertyTag::VendorString1)?.unwrap_or(0));
        // swtpm and IBM's simulator say manufacturer "IBM", vendor "SW  ";
        // no TPM chip does.
        let software = tcti.starts_with("swtpm")
            || tcti.starts_with("mssim")
            || manufacturer.trim() == "IBM"
            || vendor.trim() == "SW";

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
        // HMAC — neither the PIN index nor DA would see them. With tpmKey =
        // primary, the salt is encrypted to the primary (ECDH), only the TPM
        // can recover it, and the sessionKey is secret: every guess has to
        // go through the TPM. decrypt|encrypt add parameter encryption
        // (AES-128-CFB): the first TPM2B parameter travels encrypted, which
        // hides authValues and sealed data in TPM2_Create and
        // TPM2_NV_DefineSpace, and the new lockout authorisation.
        let session = salted_session(&mut ctx, primary, SessionType::Hmac)?;

        // Key cache: the TPM guarantees TPM_PT_HR_TRANSIENT_MIN loaded objects
        // (swtpm: 3); the primary and the vault take two. Keep the rest for
        // credential keys (at least 1, at most 8), so repeated assertions with
        // the same credential cost one TPM2_Sign, where nobody else can use them.
        let slots = support::property(&mut ctx, PropertyTag::HrTransientMin)?.unwrap_or(3);
        let cache_size = (slots as usize).saturating_sub(2).clamp(1, 8);
        let algorithms = supported_algorithms(&mut ctx);
        tracing::debug!(slots, cache_size, isolated, software, ?algorithms, "TPM opened");
        Ok(TpmCustody {
            ctx,
            primary,
            session,
            vault: None,
            vault_id: None,
            cache: Vec::new(),
            saved: SavedContexts::default(),
            loads: KeyLoads::default(),
            cache_size,
            isolated,
            software,
            algorithms,
            allow_unguarded: false,
            tcti: tcti.to_string(),
            restore: None,
        })
    }

    /// True if the TPM no longer has our primary: after a TPM Reset every
    /// transient object and session is gone and each command fails. One
    /// TPM2_ReadPublic, asked only after a command failed.
    fn lost_objects(&mut self) -> bool {
        let primary = self.primary;
        self.ctx
            .execute_without_session(|ctx| ctx.read_public(primary))
            .is_err()
    }

    /// Rebuilds what a TPM Reset took: a new connection, the primary (the
    /// same key: its template is deterministic), the salted session, and
    /// the vault if it was open, loaded again with its authValue (the PIN
    /// opened it before the reset; no try of the PIN index is spent).
    /// Loaded credential keys are simply forgotten.
    fn rebuild(&mut self) -> Result<(), TpmError> {
        tracing::warn!(
            "the TPM lost our objects and sessions (a TPM reset: a power cycle, resume from \
             hibernation, a restarted TPM): re-creating the primary, the session and the vault"
        );
        let restore = self.restore.take();
        self.forget_handles();
        // The old connection is closed before the new one starts its
        // session. Behind the kernel's resource manager, closing a connection
        // flushes the sessions it recorded by their handle numbers, and after
        // a reset the TPM hands those numbers out again: closed later, it
        // would flush the new session (measured: every command after the
        // rebuild then failed). A bare connection holds its place meanwhile.
        let bare = Self::open_context(&self.tcti)?;
        drop(std::mem::replace(&mut self.ctx, bare));
        let mut fresh = Self::connect(&self.tcti, true)?;
        fresh.allow_unguarded = self.allow_unguarded;
        // Useless now (the TPM refuses contexts of another reset cycle) and
        // harmless (sealed): the first use of each finds out and loads the
        // key the normal way.
        fresh.saved = self.saved.take_entries();
        fresh.loads = self.loads;
        drop(std::mem::replace(self, fresh));
        if let Some((vault, auth)) = restore {
            let (public, private) = self.parse_vault(&vault)?;
            self.load_vault(&vault, public, private, auth)?;
            self.vault_id = Some(Sha256::digest(vault.to_bytes()).into());
        }
        tracing::info!("TPM objects re-created after the TPM reset; carrying on");
        Ok(())
    }

    /// Drops libtss2's records of our objects and sessions without a TPM
    /// command. After a reset the TPM hands the same handle numbers to the
    /// new primary and session, which the old `Context` would otherwise
    /// flush when it is dropped.
    fn forget_handles(&mut self) {
        let close = |ctx: &mut Context, mut h: ObjectHandle| {
            let _ = ctx.tr_close(&mut h);
        };
        for (_, key) in std::mem::take(&mut self.cache) {
            close(&mut self.ctx, key.into());
        }
        if let Some((vault, how)) = self.vault.take() {
            close(&mut self.ctx, vault.into());
            if let VaultUse::Epoch { session, .. } = how {
                let h: tss_esapi::handles::SessionHandle = session.into();
                close(&mut self.ctx, h.into());
            }
        }
        self.vault_id = None;
        self.restore = None;
        let session: tss_esapi::handles::SessionHandle = self.session.into();
        close(&mut self.ctx, session.into());
        close(&mut self.ctx, self.primary.into());
    }

    /// Runs `op`; if it failed because the TPM was reset under us, rebuilds
    /// and runs it once more. A PIN the TPM judged is an answer, not a lost
    /// TPM: those errors are returned as they are.
    fn surviving_reset<T>(&mut self, op: impl Fn(&mut Self) -> Result<T, TpmError>) -> Result<T, TpmError> {
        match op(self) {
            Err(
                e @ (TpmError::AuthFailed | TpmError::PinBlocked | TpmError::Revoked | TpmError::InvalidBlob),
            ) => Err(e),
            Err(e) if self.lost_objects() => {
                tracing::debug!("command failed after a TPM reset: {e}");
                self.rebuild()?;
                op(self)
            }
            other => other,
        }
    }

    /// Where this TPM cannot make our PIN index, let a PIN be set anyway,
    /// guarded by the dictionary-attack lockout alone (the person said so
    /// explicitly; the daemon says so at every start).
    pub fn accept_weak_pin_limit(&mut self, yes: bool) {
        self.allow_unguarded = yes;
    }

    /// A software TPM (swtpm): its promises hold only as far as its state
    /// file is out of reach.
    pub fn is_software(&self) -> bool {
        self.software
    }

    /// Create the vault for this PIN-derived authValue; returns its blob and
    /// leaves it unlocked. Refuses (`Unprotected`) where the PIN could not be
    /// protected: a hardware TPM whose lockout authorisation is empty (see
    /// `lockout.rs`; `take_lockout` fixes it), or a TPM that cannot make our
    /// PIN index, unless `allow_legacy` accepts a vault guarded by DA alone.
    pub fn create_vault_with(&mut self, auth: &[u8; 32], allow_legacy: bool) -> Result<VaultBlob, TpmError> {
        self.lock();
        self.saved.clear();
        let da = self.da_status()?;
        if !da.lockout_auth_set {
            if !self.software {
                return Err(TpmError::Unprotected(
                    "the TPM's lockout authorisation is empty, so anyone may reset its \
                     dictionary-attack counter: run `localpasskey tpm-protect` first"
                        .into(),
                ));
            }
            // Our own software TPM: nothing else uses it, so take it.
            tracing::warn!("software TPM: taking its lockout authorisation (it was empty)");
            self.take_lockout()?;
        }
        let auth = Auth::try_from(&auth[..])?;
        match self.define_gate(&auth) {
            Ok((gate, names)) => {
                let r = self.random_secret()?;
                let seal = self.make_seal(&gate, &names, names.generation_value, &auth, &r)?;
                let vault_policy = gate::vault_policy(&names.epoch, gate.epoch);
                let (primary, template) = (self.primary, vault_template(&vault_policy)?);
                let r_auth = Auth::try_from(&r[..])?;
                let made = self.ctx.execute_with_session(Some(self.session), |ctx| {
                    ctx.create(primary, template, Some(r_auth.clone()), None, None, None)
                })?;
                let blob = VaultBlob {
                    gate: Some(gate),
                    public: tpm2b_public(&made.out_public)?,
                    private: tpm2b_private(&made.out_private),
                    seals: vec![seal],
                };
                self.load_vault(&blob, made.out_public, made.out_private, r_auth)?;
                Ok(blob)
            }
            Err(TpmError::Unprotected(why)) if allow_legacy => {
                tracing::warn!("{why}; the PIN is guarded by the dictionary-attack lockout alone");
                self.create_unguarded_vault(&auth)
            }
            Err(e) => Err(e),
        }
    }

    /// A vault without a PIN index (format 1): V's authValue is the
    /// PIN-derived value, guarded by the dictionary-attack lockout alone.
    /// What installations made before the PIN index have, and what a TPM
    /// without PIN indices gets when the person accepts it; public so the
    /// tests can make one and watch it migrate.
    pub fn create_unguarded_vault(&mut self, auth: &Auth) -> Result<VaultBlob, TpmError> {
        self.lock();
        let (primary, template) = (self.primary, legacy_vault_template()?);
        let made = self.ctx.execute_with_session(Some(self.session), |ctx| {
            ctx.create(primary, template, Some(auth.clone()), None, None, None)
        })?;
        let blob = VaultBlob {
            gate: None,
            public: tpm2b_public(&made.out_public)?,
            private: tpm2b_private(&made.out_private),
            seals: Vec::new(),
        };
        self.load_vault(&blob, made.out_public, made.out_private, auth.clone())?;
        Ok(blob)
    }

    /// [`TpmCustody::create_vault_with`], refusing a vault without a PIN index.
    pub fn create_vault(&mut self, auth: &[u8; 32]) -> Result<VaultBlob, TpmError> {
        self.create_vault_with(auth, false)
    }

    /// Open the vault with this PIN-derived authValue. A wrong one is
    /// counted by the TPM (the PIN index). Returns a new blob when opening it
    /// changed what must be stored: a PIN change interrupted by a crash was
    /// finished or rolled back, or a vault made before the PIN index was
    /// moved onto one (the caller must store it).
    pub fn unlock(&mut self, vault: &VaultBlob, auth: &[u8; 32]) -> Result<Option<VaultBlob>, TpmError> {
        let id: [u8; 32] = Sha256::digest(vault.to_bytes()).into();
        let auth = Auth::try_from(&auth[..])?;
        let Some(gate) = vault.gate else {
            self.unlock_legacy(vault, id, auth.clone())?;
            return self.migrate(vault, &auth);
        };
        // Any failure locks: a wrong PIN never leaves an earlier unlock standing.
        let (r, opened) = match self.open_seal(&gate, &vault.seals, &auth) {
            Ok(opened) => opened,
            Err(e) => {
                self.lock();
                return Err(e);
            }
        };
        let settled = self.settle(vault, &gate, opened)?;
        let current = settled.as_ref().unwrap_or(vault);
        let (public, private) = self.parse_vault(current)?;
        self.lock();
        self.load_vault(current, public, private, Auth::try_from(&r[..])?)?;
        self.vault_id = Some(Sha256::digest(current.to_bytes()).into());
        Ok(settled)
    }

    /// How many wrong PINs the TPM still allows (None: this vault has no PIN
    /// index, or its counts cannot be read, e.g. the owner authorisation is
    /// set by someone else).
    pub fn pin_counts(&mut self, vault: &VaultBlob) -> Result<Option<PinCounts>, TpmError> {
        let Some(gate) = vault.gate else { return Ok(None) };
        let p = match self.nv(gate.pin) {
            Ok(p) => p,
            // The index is gone (the TPM was cleared, or someone deleted it):
            // nothing can open this vault any more.
            Err(TpmError::Revoked) => {
                return Ok(Some(PinCounts {
                    failures: PIN_LIMIT,
                    limit: PIN_LIMIT,
                }))
            }
            // Not an answer about the index: the TPM could not be asked (after
            // a TPM Reset behind the kernel's resource manager every command
            // on the old connection fails). Calling that "blocked" would tell
            // the person to reset a key that is fine.
            Err(e) => return Err(e),
        };
        let read = self.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.nv_read(NvAuth::Owner, p, 8, 0)
        });
        match read {
            Ok(data) if data.len() == 8 => {
                let d = data.value();
                Ok(Some(PinCounts {
                    failures: u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
                    limit: u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
                }))
            }
            Ok(_) => Err(TpmError::Tss("the PIN index holds no pin counter".into())),
            Err(e) => {
                tracing::warn!("cannot read the PIN index's counts: {e}");
                Ok(None)
            }
        }
    }

    /// Flush the vault and every cached key; scrub the authValue copies in libtss2.
    pub fn lock(&mut self) {
        self.flush_cache();
        self.saved.close();
        self.vault_id = None;
        self.restore = None;
        if let Some((vault, how)) = self.vault.take() {
            // Overwrite libtss2's copy of R before freeing it.
            if self.ctx.tr_set_auth(vault.into(), Auth::default()).is_err() {
                tracing::warn!("could not scrub the vault authValue in libtss2");
            }
            self.flush(vault.into());
            if let VaultUse::Epoch { session, .. } = how {
                self.flush_session(session);
            }
        }
    }

    pub fn is_unlocked(&self) -> bool {
        self.vault.is_some()
    }

    /// PIN change, step 1: seal R again for the new PIN under the next
    /// generation. The returned blob holds both seals: store it before
    /// [`TpmCustody::commit_change`], so a crash in between leaves a vault
    /// that opens with the old PIN (or the new one, once P has it).
    pub fn change_auth(
        &mut self,
        vault: &VaultBlob,
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<VaultBlob, TpmError> {
        let (old, new) = (Auth::try_from(&old[..])?, Auth::try_from(&new[..])?);
        let Some(gate) = vault.gate else {
            return self.change_legacy(vault, old, new);
        };
        self.lock();
        let (r, opened) = self.open_seal(&gate, &vault.seals, &old)?;
        let names = self.gate_names(&gate)?;
        let next = vault.seals[opened].generation + 1;
        let seal = self.make_seal(&gate, &names, next, &new, &r)?;
        Ok(VaultBlob {
            seals: vec![vault.seals[opened].clone(), seal],
            ..vault.clone()
        })
    }

    /// PIN change, step 2, once the blob from [`TpmCustody::change_auth`] is
    /// stored: give the PIN index the new PIN (one atomic
    /// TPM2_NV_ChangeAuth), then increment C, which revokes the old seal
    /// and with it the old PIN, in every copy of the data directory.
    pub fn commit_change(
        &mut self,
        vault: &VaultBlob,
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<VaultBlob, TpmError> {
        let Some(gate) = vault.gate else {
            return Ok(vault.clone());
        };
        let [_, newest] = vault.seals.as_slice() else {
            return Ok(vault.clone());
        };
        let (old, new) = (Auth::try_from(&old[..])?, Auth::try_from(&new[..])?);
        self.lock();
        let p = self.nv(gate.pin)?;
        let changed = self.change_pin_index(p, &old, &new);
        changed?;
        self.increment(gate.generation)?;
        Ok(VaultBlob {
            seals: vec![newest.clone()],
            ..vault.clone()
        })
    }

    /// authenticatorReset inside the TPM: increment E, so V (and every key
    /// under it) never loads again, whatever copy of it exists; increment C
    /// twice, so no seal of this vault opens either; then free the indices.
    /// A vault made before the PIN index cannot be revoked (its V needs only
    /// its authValue): its blob must simply never come back.
    pub fn revoke(&mut self, vault: &VaultBlob) -> Result<(), TpmError> {
        self.lock();
        // A saved context loads without V's epoch check: none may outlive Reset.
        self.saved.clear();
        let Some(gate) = vault.gate else { return Ok(()) };
        let revoked = self.increment(gate.epoch_counter).and_then(|()| {
            self.increment(gate.generation)?;
            self.increment(gate.generation)
        });
        match revoked {
            Ok(()) => {}
            // Already gone: the TPM was cleared, or a previous Reset got this far.
            Err(TpmError::Revoked) => {}
            Err(e) => return Err(e),
        }
        for index in [gate.pin, gate.generation, gate.epoch_counter] {
            if let Ok(h) = self.nv(index) {
                let undefined = self.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.nv_undefine_space(Provision::Owner, h)
                });
                if let Err(e) = undefined {
                    tracing::warn!(
                        index = format!("{index:#010x}"),
                        "could not free an NV index: {e}"
                    );
                }
            }
        }
        Ok(())
    }

    /// Make a credential key for `alg` under the unlocked vault.
    pub fn create_credential(&mut self, alg: Algorithm) -> Result<NewKey, TpmError> {
        if !self.algorithms.contains(&alg) {
            return Err(TpmError::Tss(format!("this TPM cannot make {alg:?} keys")));
        }
        let template = credential_template_for(alg)?;
        let (key, private, out_public) = self.create_loaded(template)?;
        let blob = encode(KEY_TAG, &tpm2b_public(&out_public)?, &tpm2b_private(&private));
        // The new key is loaded: MakeCredential's self-attestation signs
        // with it next, without V's policy and a TPM2_Load. Where others
        // reach this TPM it is saved (sealed) and flushed at once, as after
        // every signature; the attestation then costs a TPM2_ContextLoad.
        self.cache.push((Sha256::digest(&blob).into(), key));
        self.release_keys();
        let public = match &out_public {
            Public::Ecc { unique, .. } => PublicKey::Ec2 {
                alg,
                x: support::left_pad(unique.x().value(), alg)?,
                y: support::left_pad(unique.y().value(), alg)?,
            },
            Public::Rsa {
                unique, parameters, ..
            } => PublicKey::Rsa {
                alg,
                n: unique.value().to_vec(),
                // TPM2B exponent 0 means the default, 65537 (Part 2, 12.2.3.5).
                e: match parameters.exponent().value() {
                    0 => 65537u32,
                    e => e,
                }
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect(),
            },
            _ => {
                return Err(TpmError::Tss(
                    "TPM2_CreateLoaded returned another kind of key".into(),
                ))
            }
        };
        Ok(NewKey { blob, public })
    }

    /// TPM2_CreateLoaded of a child of V from `template` (V's policy is
    /// asserted first, as for TPM2_Create): the new object is left loaded.
    fn create_loaded(&mut self, template: Public) -> Result<(KeyHandle, Private, Public), TpmError> {
        self.vault_command(|ctx, vault| ctx.create_loaded(vault, template.clone(), None, None))
    }

    /// Sign `message` with a credential key: hashed here as the key's
    /// algorithm says (an unrestricted key needs no TPM hash ticket), signed
    /// by TPM2_Sign; ASN.1 DER for ECDSA, the raw signature block for RSA.
    pub fn sign(&mut self, blob: &[u8], message: &[u8]) -> Result<Vec<u8>, TpmError> {
        let (public, _) = decode(KEY_TAG, blob)?;
        let alg = credential_algorithm(&public)?.ok_or(TpmError::InvalidBlob)?;
        let hash = |h| HashScheme::new(h);
        let (digest, scheme) = match alg {
            Algorithm::Es256 => (
                Sha256::digest(message).to_vec(),
                SignatureScheme::EcDsa {
                    hash_scheme: hash(HashingAlgorithm::Sha256),
                },
            ),
            Algorithm::Es384 => (
                sha2::Sha384::digest(message).to_vec(),
                SignatureScheme::EcDsa {
                    hash_scheme: hash(HashingAlgorithm::Sha384),
                },
            ),
            Algorithm::Es512 => (
                sha2::Sha512::digest(message).to_vec(),
                SignatureScheme::EcDsa {
                    hash_scheme: hash(HashingAlgorithm::Sha512),
                },
            ),
            Algorithm::Rs256 => (
                Sha256::digest(message).to_vec(),
                SignatureScheme::RsaSsa {
                    hash_scheme: hash(HashingAlgorithm::Sha256),
                },
            ),
            Algorithm::Ps256 => (
                Sha256::digest(message).to_vec(),
                SignatureScheme::RsaPss {
                    hash_scheme: hash(HashingAlgorithm::Sha256),
                },
            ),
        };
        let mut templates = vec![credential_template_for(alg)?, legacy_credential_template()?];
        templates.extend(attestation::certifiable_template(alg)?);
        let key = self.loaded_key(KEY_TAG, &templates, blob)?;
        let digest = Digest::try_from(digest)?;
        // "No ticket": only restricted keys need proof the TPM hashed the data.
        let no_ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })?;
        // The credential key's own authValue is empty (the vault gate was
        // passed at load), so a plain password session is enough.
        let signature = self.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.sign(key, digest, scheme, no_ticket)
        });
        self.release_keys();
        match (signature?, alg) {
            (Signature::EcDsa(sig), Algorithm::Es256 | Algorithm::Es384 | Algorithm::Es512) => {
                let r = support::left_pad(sig.signature_r().value(), alg)?;
                let s = support::left_pad(sig.signature_s().value(), alg)?;
                support::ecdsa_der(alg, &r, &s)
            }
            (Signature::RsaSsa(sig), Algorithm::Rs256) | (Signature::RsaPss(sig), Algorithm::Ps256) => {
                Ok(sig.signature().value().to_vec())
            }
            _ => Err(TpmError::Tss(
                "TPM2_Sign returned another kind of signature".into(),
            )),
        }
    }

    /// Make a per-credential HMAC-SHA-256 key (hmac-secret) under the
    /// unlocked vault. Returns `"LPH\x01" || TPM2B_PUBLIC || TPM2B_PRIVATE`.
    pub fn create_hmac_key(&mut self) -> Result<Vec<u8>, TpmError> {
        // No sensitive data: with sensitiveDataOrigin the TPM draws the key.
        let (key, private, public) = self.create_loaded(hmac_template()?)?;
        let blob = encode(HMAC_TAG, &tpm2b_public(&public)?, &tpm2b_private(&private));
        // Its first TPM2_HMAC (at the first assertion) is then a ContextLoad.
        self.cache.push((Sha256::digest(&blob).into(), key));
        self.release_keys();
        Ok(blob)
    }

    /// A credential is deleted: drop its key's saved context and cached
    /// handle, so nothing of it stays in the TPM or in memory.
    pub fn forget_key(&mut self, blob: &[u8]) {
        let id: KeyId = Sha256::digest(blob).into();
        self.saved.forget(&id);
        if let Some(i) = self.cache.iter().position(|(k, _)| *k == id) {
            let (_, key) = self.cache.remove(i);
            self.flush(key.into());
        }
    }

    /// How keys were brought back into the TPM since this custody opened.
    pub fn key_loads(&self) -> KeyLoads {
        self.loads
    }

    /// What this process's memory holds of saved key contexts, per key
    /// (SHA-256 of its blob): the sealed bytes, nonce first. For the attack
    /// tests: after lock, nothing here can sign.
    pub fn sealed_contexts(&self) -> Vec<([u8; 32], Vec<u8>)> {
        self.saved.sealed()
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
        let key = self.loaded_key(HMAC_TAG, &[hmac_template()?, legacy_hmac_template()?], blob)?;
        let buffer = MaxBuffer::try_from(message)?;
        // WHY THE SALTED SESSION, not a password session as for TPM2_Sign:
        // a signature is public, but this output *is* the secret (the
        // hmac-secret output unlocks disks and password databases). The key's
        // authValue is empty, so the salted HMAC session authorises it just
        // as well, and its encrypt attribute makes the TPM send outHMAC
        // encrypted under the session key: a bus sniffer never sees it.
        let session = self.session;
        let out = self.ctx.execute_with_session(Some(session), |ctx| {
            ctx.hmac(key.into(), buffer, HashingAlgorithm::Sha256)
        });
        self.release_keys();
        let out = out?;
        <[u8; 32]>::try_from(out.value())
            .map_err(|_| TpmError::Tss(format!("TPM2_HMAC returned {} bytes", out.len())))
    }

    /// Seal up to 128 bytes under the unlocked vault. Returns
    /// `"LPD\x01" || TPM2B_PUBLIC || TPM2B_PRIVATE`.
    pub fn seal_data(&mut self, data: &[u8]) -> Result<Vec<u8>, TpmError> {
        let template = data_template()?;
        let data = SensitiveData::try_from(data)?;
        let made = self.vault_command(|ctx, vault| {
            ctx.create(vault, template.clone(), None, Some(data.clone()), None, None)
        })?;
        Ok(encode(
            DATA_TAG,
            &tpm2b_public(&made.out_public)?,
            &tpm2b_private(&made.out_private),
        ))
    }

    /// Read back what [`TpmCustody::seal_data`] sealed (the vault must be
    /// unlocked). The salted session encrypts the response on the bus.
    pub fn unseal_data(&mut self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let (public, private) = decode(DATA_TAG, blob)?;
        if !matches_template(&public, &[data_template()?]) {
            return Err(TpmError::InvalidBlob);
        }
        let object = self.vault_command(|ctx, vault| ctx.load(vault, private.clone(), public.clone()))?;
        let session = self.session;
        let out = self
            .ctx
            .execute_with_session(Some(session), |ctx| ctx.unseal(object.into()));
        self.flush(object.into());
        Ok(Zeroizing::new(out?.value().to_vec()))
    }

    /// The attributes of a credential, HMAC or vault blob's public area.
    pub fn public_attributes(blob: &[u8]) -> Result<KeyAttributes, TpmError> {
        let public = match VaultBlob::from_bytes(blob) {
            Ok(v) => support::parse_public(&v.public)?,
            Err(_) => {
                [KEY_TAG, HMAC_TAG]
                    .into_iter()
                    .find_map(|tag| decode(tag, blob).ok())
                    .ok_or(TpmError::InvalidBlob)?
                    .0
            }
        };
        Ok(key_attributes(&public))
    }

    /// The attributes of each seal of a vault blob (for tests and audit).
    pub fn seal_attributes(vault: &VaultBlob) -> Result<Vec<KeyAttributes>, TpmError> {
        vault
            .seals
            .iter()
            .map(|s| Ok(key_attributes(&support::parse_public(&s.public)?)))
            .collect()
    }

    /// Dictionary-attack state, read live with TPM2_GetCapability.
    pub fn da_status(&mut self) -> Result<DaStatus, TpmError> {
        lockout::status(&mut self.ctx)
    }

    /// Set our dictionary-attack parameters and take the lockout
    /// authorisation (see `lockout.rs` for what that changes). Refused by
    /// the TPM if someone else holds it already.
    pub fn take_lockout(&mut self) -> Result<(), TpmError> {
        let taken = lockout::take(&mut self.ctx, self.session);
        // libtss2 remembers the new authorisation for ESYS_TR_RH_LOCKOUT: forget it.
        let _ = self.ctx.tr_set_auth(ObjectHandle::Lockout, Auth::default());
        taken
    }

    /// Whether this TPM makes our PIN index: define one and free it again.
    /// Needs the owner authorisation to be empty, as the real one does.
    pub fn probe_pin_index(&mut self) -> Result<(), TpmError> {
        let public = gate::pin_index_public(self.free_nv_handle()?)?;
        let defined = self.ctx.execute_with_session(Some(self.session), |ctx| {
            ctx.nv_define_space(Provision::Owner, Some(Auth::default()), public)
        });
        let h =
            defined.map_err(|e| TpmError::Unprotected(format!("this TPM cannot make a PIN index ({e})")))?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.nv_undefine_space(Provision::Owner, h)
            })?;
        Ok(())
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
        let revision = get(PropertyTag::Revision)?.unwrap_or(0);
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
            revision: format!("{}.{:02}", revision / 100, revision % 100),
            software: self.software,
            ecc_p256,
            transient_slots,
            key_cache_size: self.cache_size,
            isolated: self.isolated,
        })
    }
}

/// The Names of a gate's NV indices (they enter the policies) and C's value.
struct GateNames {
    pin: Vec<u8>,
    generation: Vec<u8>,
    epoch: Vec<u8>,
    generation_value: u64,
}

/// A salted policy or HMAC session: its salt is encrypted to the primary,
/// and it encrypts the first parameter each way (see `open`).
fn salted_session(ctx: &mut Context, primary: KeyHandle, kind: SessionType) -> Result<AuthSession, TpmError> {
    let session = ctx
        .execute_without_session(|ctx| {
            ctx.start_auth_session(
                Some(primary),
                None,
                None,
                kind,
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
    Ok(session)
}

/// The credential algorithms this TPM can make keys for: each template's
/// parameters offered to TPM2_TestParms. EdDSA is never listed: TPM 2.0
/// chips of today have no Ed25519, and a software fallback would put a key
/// outside the TPM.
fn supported_algorithms(ctx: &mut Context) -> Vec<Algorithm> {
    Algorithm::ALL
        .into_iter()
        .filter(|alg| {
            let params = match alg {
                Algorithm::Es256 => credential_parameters().map(PublicParameters::Ecc),
                Algorithm::Es384 => p384_parameters().map(PublicParameters::Ecc),
                Algorithm::Es512 => p521_parameters().map(PublicParameters::Ecc),
                Algorithm::Rs256 => rsa_parameters().map(PublicParameters::Rsa),
                Algorithm::Ps256 => rsa_pss_parameters().map(PublicParameters::Rsa),
            };
            params.is_ok_and(|p| ctx.execute_without_session(|ctx| ctx.test_parms(p)).is_ok())
        })
        .collect()
}

fn key_attributes(public: &Public) -> KeyAttributes {
    let a = public.object_attributes();
    let ecc_p256 = matches!(public, Public::Ecc { parameters, .. }
        if parameters.ecc_curve() == EccCurve::NistP256);
    let hmac_sha256 = matches!(public, Public::KeyedHash { parameters, .. }
        if *parameters == PublicKeyedHashParameters::new(KeyedHashScheme::HMAC_SHA_256));
    let has_policy = !public.auth_policy().is_empty();
    KeyAttributes {
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
        has_policy,
    }
}

impl TpmCustody {
    // --- the PIN gate ------------------------------------------------------

    /// Define P (with this PIN), C and E at free handles, write P's initial
    /// counts and start both counters. Undefines what it made if any step fails.
    fn define_gate(&mut self, auth: &Auth) -> Result<(Gate, GateNames), TpmError> {
        let mut made: Vec<NvIndexHandle> = Vec::new();
        let result = self.define_gate_into(auth, &mut made);
        if result.is_err() {
            for h in made {
                let _ = self.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.nv_undefine_space(Provision::Owner, h)
                });
            }
        }
        result
    }

    fn define_gate_into(
        &mut self,
        auth: &Auth,
        made: &mut Vec<NvIndexHandle>,
    ) -> Result<(Gate, GateNames), TpmError> {
        let pin = self.free_nv_handle()?;
        let public = gate::pin_index_public(pin)?;
        let p = self
            .ctx
            .execute_with_session(Some(self.session), |ctx| {
                ctx.nv_define_space(Provision::Owner, Some(auth.clone()), public.clone())
            })
            .map_err(|e| TpmError::Unprotected(format!("this TPM cannot make our PIN index ({e})")))?;
        made.push(p);
        // The one write P's policy allows: pinCount 0, pinLimit 8.
        let counts = [0u32.to_be_bytes(), PIN_LIMIT.to_be_bytes()].concat();
        let ps = self.policy_session()?;
        let written = (|| {
            self.ctx.execute_without_session(|ctx| {
                ctx.policy_nv_written(ps, false)?;
                ctx.policy_command_code(ps, CommandCode::NvWrite)
            })?;
            self.pin_index_or(ps)?;
            let data = MaxNvBuffer::try_from(counts.clone())?;
            self.ctx.execute_with_session(Some(ps.into()), |ctx| {
                ctx.nv_write(NvAuth::NvIndex(p), p, data, 0)
            })?;
            Ok::<(), TpmError>(())
        })();
        self.flush_session(ps);
        written?;

        let generation = self.free_nv_handle()?;
        made.push(self.define_counter(generation)?);
        let epoch_counter = self.free_nv_handle()?;
        made.push(self.define_counter(epoch_counter)?);
        let mut gate = Gate {
            pin,
            generation,
            epoch_counter,
            epoch: 0,
            legacy_vault: false,
        };
        let names = self.gate_names(&gate)?;
        gate.epoch = self.counter_value(epoch_counter)?;
        Ok((gate, names))
    }

    /// PolicyOR over P's two branches (the session has just run one of them).
    fn pin_index_or(&mut self, ps: PolicySession) -> Result<(), TpmError> {
        let (a, b) = gate::pin_index_branches();
        let mut list = DigestList::new();
        list.add(a.digest()?)?;
        list.add(b.digest()?)?;
        self.ctx
            .execute_without_session(|ctx| ctx.policy_or(ps, list.clone()))?;
        Ok(())
    }

    fn define_counter(&mut self, index: u32) -> Result<NvIndexHandle, TpmError> {
        let public = gate::counter_public(index)?;
        let h = self.ctx.execute_with_session(Some(self.session), |ctx| {
            ctx.nv_define_space(Provision::Owner, None, public.clone())
        })?;
        // A counter has no value until its first increment.
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.nv_increment(NvAuth::NvIndex(h), h)
            })?;
        Ok(h)
    }

    /// A random unused handle in the owner range (each user of this TPM has
    /// their own gate).
    fn free_nv_handle(&mut self) -> Result<u32, TpmError> {
        for _ in 0..32 {
            let random = self.ctx.execute_without_session(|ctx| ctx.get_random(4))?;
            let v = random.value();
            let n = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
            let handle = gate::NV_OWNER_FIRST + n % (gate::NV_OWNER_LAST - gate::NV_OWNER_FIRST + 1);
            if !self.nv_defined(handle)? {
                return Ok(handle);
            }
        }
        Err(TpmError::Tss("no free NV index found in the owner range".into()))
    }

    fn gate_names(&mut self, gate: &Gate) -> Result<GateNames, TpmError> {
        let mut name = |index: u32| -> Result<Vec<u8>, TpmError> {
            let h = self.nv(index)?;
            let read = self.ctx.execute_without_session(|ctx| ctx.nv_read_public(h));
            Ok(read?.1.value().to_vec())
        };
        Ok(GateNames {
            pin: name(gate.pin)?,
            generation: name(gate.generation)?,
            epoch: name(gate.epoch_counter)?,
            generation_value: self.counter_value(gate.generation)?,
        })
    }

    fn counter_value(&mut self, index: u32) -> Result<u64, TpmError> {
        let h = self.nv(index)?;
        let read = self.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.nv_read(NvAuth::NvIndex(h), h, 8, 0)
        });
        let data = read?;
        let bytes =
            <[u8; 8]>::try_from(data.value()).map_err(|_| TpmError::Tss("counter is not 8 bytes".into()))?;
        Ok(u64::from_be_bytes(bytes))
    }

    fn increment(&mut self, index: u32) -> Result<(), TpmError> {
        let h = self.nv(index)?;
        let done = self.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.nv_increment(NvAuth::NvIndex(h), h)
        });
        Ok(done?)
    }

    /// libtss2's object for an NV index; a missing index is `Revoked`.
    /// libtss2 hands out one object per index and keeps it until the index
    /// is undefined, so these are never closed: closing one would close it
    /// for every holder (the loaded vault keeps E's).
    fn nv(&mut self, index: u32) -> Result<NvIndexHandle, TpmError> {
        if !self.nv_defined(index)? {
            return Err(TpmError::Revoked);
        }
        let tpm = TpmHandle::NvIndex(NvIndexTpmHandle::new(index)?);
        self.ctx
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(tpm))
            .map(NvIndexHandle::from)
            .map_err(|_| TpmError::Revoked)
    }

    /// Whether an NV index exists, asked without an error if it does not.
    fn nv_defined(&mut self, index: u32) -> Result<bool, TpmError> {
        let (data, _) = self
            .ctx
            .execute_without_session(|ctx| ctx.get_capability(CapabilityType::Handles, index, 1))?;
        Ok(matches!(data, CapabilityData::Handles(list) if list.iter().any(|h| u32::from(*h) == index)))
    }

    /// Seal R for the PIN of generation `g`.
    fn make_seal(
        &mut self,
        _gate: &Gate,
        names: &GateNames,
        g: u64,
        auth: &Auth,
        r: &[u8; 32],
    ) -> Result<Seal, TpmError> {
        let policy = gate::seal_policy(&names.pin, &names.generation, g);
        let (primary, template) = (self.primary, seal_template(&policy)?);
        let data = SensitiveData::try_from(&r[..])?;
        let made = self.ctx.execute_with_session(Some(self.session), |ctx| {
            ctx.create(
                primary,
                template,
                Some(auth.clone()),
                Some(data.clone()),
                None,
                None,
            )
        })?;
        Ok(Seal {
            generation: g,
            public: tpm2b_public(&made.out_public)?,
            private: tpm2b_private(&made.out_private),
        })
    }

    /// Unseal R with this PIN: the seals valid for C's current value, oldest
    /// first. Returns R and which seal opened.
    fn open_seal(
        &mut self,
        gate: &Gate,
        seals: &[Seal],
        auth: &Auth,
    ) -> Result<(Zeroizing<[u8; 32]>, usize), TpmError> {
        let names = self.gate_names(gate)?;
        let c = names.generation_value;
        let valid: Vec<usize> = (0..seals.len())
            .filter(|&i| seals[i].generation.saturating_sub(1) <= c && c <= seals[i].generation)
            .collect();
        if valid.is_empty() {
            return Err(TpmError::Revoked);
        }
        let mut last = TpmError::Revoked;
        for i in valid {
            match self.unseal(gate, &names, &seals[i], auth) {
                Ok(r) => return Ok((r, i)),
                // The right PIN for P but not for this seal: the other seal of
                // an interrupted PIN change (or P was replaced by the owner).
                Err(TpmError::SealRefused) => last = TpmError::SealRefused,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// One unseal, in the order of `gate::seal_policy`.
    fn unseal(
        &mut self,
        gate: &Gate,
        names: &GateNames,
        seal: &Seal,
        auth: &Auth,
    ) -> Result<Zeroizing<[u8; 32]>, TpmError> {
        let public = support::parse_public(&seal.public)?;
        let expected = seal_template(&gate::seal_policy(&names.pin, &names.generation, seal.generation))?;
        if !matches_template(&public, &[expected]) {
            return Err(TpmError::InvalidBlob);
        }
        let private = support::parse_private(&seal.private)?;
        let p = self.nv(gate.pin)?;
        let c = self.nv(gate.generation)?;
        let ps = self.policy_session();
        let result = ps.and_then(|ps| {
            let out = self.unseal_with(ps, p, c, seal.generation, auth, public, private);
            self.flush_session(ps);
            out
        });
        // Forget the PIN in libtss2's copy of P.
        let _ = self.ctx.tr_set_auth(p.into(), Auth::default());
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn unseal_with(
        &mut self,
        ps: PolicySession,
        p: NvIndexHandle,
        c: NvIndexHandle,
        g: u64,
        auth: &Auth,
        public: Public,
        private: Private,
    ) -> Result<Zeroizing<[u8; 32]>, TpmError> {
        // 1. The generation window: a revoked seal fails here, before any PIN is spent.
        for (operand, op) in [
            (g.saturating_sub(1), TPM2_EO_UNSIGNED_GE),
            (g, TPM2_EO_UNSIGNED_LE),
        ] {
            let operand = Digest::try_from(&operand.to_be_bytes()[..])?;
            self.ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.policy_nv(ps, NvAuth::NvIndex(c).into(), c, operand.clone(), 0, op)
                })
                .map_err(|e| match support::tpm_rc(&e) {
                    Some(support::RC_POLICY) => TpmError::Revoked,
                    _ => TpmError::from(e),
                })?;
        }
        // 2. THE PIN CHECK THE TPM COUNTS: PolicySecret with P's authValue.
        // A wrong PIN is TPM_RC_BAD_AUTH and pinCount + 1; at pinLimit the
        // TPM answers TPM_RC_AUTH_UNAVAILABLE to the right PIN too.
        self.ctx.tr_set_auth(p.into(), auth.clone())?;
        let session = self.session;
        self.ctx.execute_with_session(Some(session), |ctx| {
            ctx.policy_secret(
                ps,
                AuthHandle::from(NvAuth::NvIndex(p)),
                Nonce::default(),
                Digest::default(),
                Nonce::default(),
                None,
            )
        })?;
        // 3. The PIN again, against S's DA-protected authValue; Unseal only.
        self.ctx.execute_without_session(|ctx| {
            ctx.policy_auth_value(ps)?;
            ctx.policy_command_code(ps, CommandCode::Unseal)
        })?;
        let primary = self.primary;
        let s = self
            .ctx
            .execute_with_session(Some(session), |ctx| ctx.load(primary, private, public))
            .map_err(|e| classify(e, true))?;
        let opened = self
            .ctx
            .tr_set_auth(s.into(), auth.clone())
            .map_err(TpmError::from)
            .and_then(|()| {
                // The policy session encrypts the response: R never crosses the bus in clear.
                Ok(self
                    .ctx
                    .execute_with_session(Some(ps.into()), |ctx| ctx.unseal(s.into()))?)
            });
        self.flush(s.into());
        let data = opened.map_err(|e| match e {
            TpmError::AuthFailed => TpmError::SealRefused,
            other => other,
        })?;
        let r = <[u8; 32]>::try_from(data.value()).map_err(|_| TpmError::InvalidBlob)?;
        Ok(Zeroizing::new(r))
    }

    /// After a PIN change was interrupted (two seals, `opened` is the one
    /// that took this PIN), finish or roll it back. Returns the blob to store.
    fn settle(
        &mut self,
        vault: &VaultBlob,
        gate: &Gate,
        opened: usize,
    ) -> Result<Option<VaultBlob>, TpmError> {
        if vault.seals.len() < 2 {
            return Ok(None);
        }
        if opened == 1 {
            // P already has the new PIN: finish, revoking the old seal.
            self.increment(gate.generation)?;
        }
        // Else P still has the old PIN: drop the new seal, nothing changed.
        Ok(Some(VaultBlob {
            seals: vec![vault.seals[opened].clone()],
            ..vault.clone()
        }))
    }

    /// TPM2_NV_ChangeAuth on P through its change-auth branch (needs the
    /// current PIN, so a failure is counted like any wrong PIN).
    fn change_pin_index(&mut self, p: NvIndexHandle, old: &Auth, new: &Auth) -> Result<(), TpmError> {
        let ps = self.policy_session()?;
        let result = (|| {
            self.ctx.execute_without_session(|ctx| {
                ctx.policy_auth_value(ps)?;
                ctx.policy_command_code(ps, CommandCode::NvChangeAuth)
            })?;
            self.pin_index_or(ps)?;
            self.ctx.tr_set_auth(p.into(), old.clone())?;
            self.ctx
                .execute_with_session(Some(ps.into()), |ctx| ctx.nv_change_auth(p, new.clone()))?;
            Ok(())
        })();
        let _ = self.ctx.tr_set_auth(p.into(), Auth::default());
        self.flush_session(ps);
        result
    }

    fn policy_session(&mut self) -> Result<PolicySession, TpmError> {
        let s = salted_session(&mut self.ctx, self.primary, SessionType::Policy)?;
        PolicySession::try_from(s).map_err(TpmError::from)
    }

    fn random_secret(&mut self) -> Result<Zeroizing<[u8; 32]>, TpmError> {
        let random = self.ctx.execute_without_session(|ctx| ctx.get_random(32))?;
        let r = <[u8; 32]>::try_from(random.value()).map_err(|_| TpmError::Tss("short random".into()))?;
        Ok(Zeroizing::new(r))
    }

    // --- the vault ---------------------------------------------------------

    /// V's public and private parts, refusing any V not made from the
    /// template this blob calls for (the epoch policy included).
    fn parse_vault(&mut self, vault: &VaultBlob) -> Result<(Public, Private), TpmError> {
        let public = support::parse_public(&vault.public)?;
        let expected = match vault.gate {
            None => legacy_vault_template()?,
            Some(g) if g.legacy_vault => legacy_vault_template()?,
            Some(g) => {
                let names = self.gate_names(&g)?;
                vault_template(&gate::vault_policy(&names.epoch, g.epoch))?
            }
        };
        if !matches_template(&public, &[expected]) {
            return Err(TpmError::InvalidBlob);
        }
        Ok((public, support::parse_private(&vault.private)?))
    }

    /// TPM2_Load V under the primary and give libtss2 its authValue for the
    /// HMACs of later commands. Loading needs only the primary's (empty)
    /// auth; V's policy is checked when V is *used*.
    fn load_vault(
        &mut self,
        vault: &VaultBlob,
        public: Public,
        private: Private,
        auth: Auth,
    ) -> Result<(), TpmError> {
        let primary = self.primary;
        let handle = self
            .ctx
            .execute_with_session(Some(self.session), |ctx| ctx.load(primary, private, public))
            .map_err(|e| classify(e, true))?;
        let how = match vault.gate {
            Some(g) if !g.legacy_vault => {
                let counter = self.nv(g.epoch_counter);
                let session = counter.and_then(|c| match self.policy_session() {
                    Ok(s) => Ok((c, s)),
                    Err(e) => Err(e),
                });
                match session {
                    Ok((counter, session)) => VaultUse::Epoch {
                        session,
                        counter,
                        epoch: g.epoch,
                    },
                    Err(e) => {
                        self.flush(handle.into());
                        return Err(e);
                    }
                }
            }
            _ => VaultUse::AuthValue,
        };
        self.vault = Some((handle, how));
        if let Err(e) = self.ctx.tr_set_auth(handle.into(), auth.clone()) {
            self.lock();
            return Err(e.into());
        }
        // V's own blob names the V the saved contexts belong to: it does not
        // change at a PIN change (the same R is sealed again), it does at
        // Reset and at a legacy vault's PIN change or migration.
        let v_id: [u8; 32] = Sha256::digest([&vault.public[..], &vault.private[..]].concat()).into();
        self.saved.open(v_id, auth.value());
        self.restore = Some((vault.clone(), auth));
        Ok(())
    }

    /// Run a command that V authorises (TPM2_Load or TPM2_Create of a
    /// child) in a free object slot: V's policy is asserted again first
    /// (PolicyRestart, PolicyNV(E == epoch), PolicyAuthValue). After Reset
    /// PolicyNV fails, so no child of a revoked V is ever loaded again.
    fn vault_command<T>(
        &mut self,
        command: impl Fn(&mut Context, KeyHandle) -> tss_esapi::Result<T>,
    ) -> Result<T, TpmError> {
        let (vault, session, gate) = match &self.vault {
            None => return Err(TpmError::Locked),
            Some((v, VaultUse::AuthValue)) => (*v, self.session, None),
            Some((
                v,
                VaultUse::Epoch {
                    session,
                    counter,
                    epoch,
                },
            )) => (
                *v,
                AuthSession::from(*session),
                Some((*session, *counter, *epoch)),
            ),
        };
        let run = |ctx: &mut Context| -> tss_esapi::Result<T> {
            if let Some((ps, counter, epoch)) = gate {
                ctx.execute_without_session(|ctx| ctx.policy_restart(ps))?;
                let operand = Digest::try_from(&epoch.to_be_bytes()[..])?;
                ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.policy_nv(
                        ps,
                        NvAuth::NvIndex(counter).into(),
                        counter,
                        operand,
                        0,
                        TPM2_EO_EQ,
                    )
                })?;
                ctx.execute_without_session(|ctx| ctx.policy_auth_value(ps))?;
            }
            ctx.execute_with_session(Some(session), |ctx| command(ctx, vault))
        };
        self.with_free_slot(run).map_err(|e| match support::tpm_rc(&e) {
            Some(support::RC_POLICY) => TpmError::Revoked,
            _ => classify(e, true),
        })
    }

    /// A vault made before the PIN index: its authValue is the PIN-derived
    /// value. THE PIN CHECK there is TPM2_ObjectChangeAuth to the same value
    /// (needs the authValue, counts against DA, changes nothing).
    fn unlock_legacy(&mut self, vault: &VaultBlob, id: [u8; 32], auth: Auth) -> Result<(), TpmError> {
        if !(self.vault.is_some() && self.vault_id == Some(id)) {
            self.lock();
            let (public, private) = self.parse_vault(vault)?;
            self.load_vault(vault, public, private, auth.clone())?;
            self.vault_id = Some(id);
        }
        let Some((handle, _)) = &self.vault else {
            return Err(TpmError::Locked);
        };
        let handle = *handle;
        self.ctx.tr_set_auth(handle.into(), auth.clone())?;
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

    /// Move a vault made before the PIN index onto one, with the PIN just
    /// checked: V's authValue becomes a random R sealed behind a new gate.
    /// Where that cannot be done (lockout not taken, no PIN index), the
    /// vault stays as it was and this says why in the log.
    fn migrate(&mut self, vault: &VaultBlob, auth: &Auth) -> Result<Option<VaultBlob>, TpmError> {
        match self.da_status() {
            Ok(da) if da.lockout_auth_set => {}
            _ => {
                tracing::warn!("vault not moved onto a PIN index: the TPM's lockout authorisation is empty");
                return Ok(None);
            }
        }
        let (gate, names) = match self.define_gate(auth) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("vault not moved onto a PIN index: {e}");
                return Ok(None);
            }
        };
        let gate = Gate {
            legacy_vault: true,
            ..gate
        };
        let r = self.random_secret()?;
        let seal = self.make_seal(&gate, &names, names.generation_value, auth, &r)?;
        let Some((handle, _)) = &self.vault else {
            return Err(TpmError::Locked);
        };
        let handle = *handle;
        let primary = self.primary;
        let r_auth = Auth::try_from(&r[..])?;
        let new_private = self.ctx.execute_with_session(Some(self.session), |ctx| {
            ctx.object_change_auth(handle.into(), primary.into(), r_auth.clone())
        })?;
        let migrated = VaultBlob {
            gate: Some(gate),
            public: vault.public.clone(),
            private: tpm2b_private(&new_private),
            seals: vec![seal],
        };
        self.lock();
        let (public, private) = self.parse_vault(&migrated)?;
        self.load_vault(&migrated, public, private, r_auth)?;
        self.vault_id = Some(Sha256::digest(migrated.to_bytes()).into());
        tracing::info!("vault moved onto a TPM PIN index");
        Ok(Some(migrated))
    }

    /// PIN change of a vault without a PIN index: TPM2_ObjectChangeAuth.
    /// The old blob still opens with the old PIN (the TPM cannot revoke it).
    fn change_legacy(&mut self, vault: &VaultBlob, old: Auth, new: Auth) -> Result<VaultBlob, TpmError> {
        self.lock();
        let (public, private) = self.parse_vault(vault)?;
        self.load_vault(vault, public, private, old)?;
        let Some((handle, _)) = &self.vault else {
            return Err(TpmError::Locked);
        };
        let handle = *handle;
        let primary = self.primary;
        let new_private = self.ctx.execute_with_session(Some(self.session), |ctx| {
            ctx.object_change_auth(handle.into(), primary.into(), new)
        });
        self.lock();
        Ok(VaultBlob {
            private: tpm2b_private(&new_private?),
            ..vault.clone()
        })
    }

    // --- loaded keys -------------------------------------------------------

    /// The loaded handle of a credential or HMAC key (`tag` and `templates`
    /// say which): from the cache, or TPM2_Load under the vault (this is
    /// where V's policy is required). Signing and HMAC keys share the cache;
    /// the tag is checked before the cache is, and the cache is keyed by the
    /// whole blob (tag included), so a key loaded as one kind is never
    /// handed out as the other.
    fn loaded_key(&mut self, tag: [u8; 4], templates: &[Public], blob: &[u8]) -> Result<KeyHandle, TpmError> {
        if self.vault.is_none() {
            return Err(TpmError::Locked);
        }
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
        if !matches_template(&public, templates) {
            return Err(TpmError::InvalidBlob);
        }
        if let Some(context) = self.saved.get(&id) {
            match self.with_free_slot(|ctx| ctx.context_load(context.clone())) {
                Ok(handle) => {
                    let key = KeyHandle::from(handle);
                    self.cache.push((id, key));
                    self.loads.contexts += 1;
                    return Ok(key);
                }
                // The TPM was reset since (or cleared): load it afresh.
                Err(e) => {
                    tracing::debug!("saved key context not loadable: {e}");
                    self.saved.forget(&id);
                    self.loads.refused += 1;
                }
            }
        }
        let key = self.vault_command(|ctx, vault| ctx.load(vault, private.clone(), public.clone()))?;
        self.cache.push((id, key));
        self.loads.full += 1;
        Ok(key)
    }

    /// After a signature or HMAC: keys stay loaded only where nobody else can
    /// reach them (see the limits at the top of this file). Elsewhere each
    /// key's context is saved before it is flushed.
    fn release_keys(&mut self) {
        if self.isolated {
            return;
        }
        for (id, key) in std::mem::take(&mut self.cache) {
            if self.saved.is_open() && !self.saved.contains(&id) {
                match self.ctx.context_save(key.into()) {
                    Ok(context) => self.saved.put(id, context),
                    Err(e) => tracing::debug!("TPM2_ContextSave failed: {e}"),
                }
            }
            self.flush(key.into());
        }
    }

    fn flush_cache(&mut self) {
        for (_, key) in std::mem::take(&mut self.cache) {
            self.flush(key.into());
        }
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
        while !self.cache.is_empty() && self.cache.len() >= self.cache_size {
            let (_, old) = self.cache.remove(0);
            self.flush(old.into());
        }
        match command(&mut self.ctx) {
            Err(e) if support::is_object_memory(&e) => {
                self.flush_cache();
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

    fn flush_session(&mut self, session: PolicySession) {
        let handle: tss_esapi::handles::SessionHandle = session.into();
        self.flush(handle.into());
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
            TpmError::AuthFailed | TpmError::SealRefused => CustodyError::AuthFailed,
            TpmError::PinBlocked => CustodyError::PinBlocked,
            TpmError::Revoked => CustodyError::Revoked,
            TpmError::Lockout => CustodyError::Lockout,
            TpmError::Unprotected(why) => CustodyError::Unprotected(why),
            TpmError::Locked => CustodyError::Locked,
            TpmError::InvalidBlob => CustodyError::InvalidBlob,
            TpmError::Tss(msg) => CustodyError::Backend(msg),
        }
    }
}

impl KeyCustody for TpmCustody {
    fn name(&self) -> &'static str {
        if self.software {
            "software-tpm"
        } else {
            "tpm"
        }
    }

    fn is_hardware(&self) -> bool {
        !self.software
    }

    fn key_protection(&self, blob: &[u8]) -> Vec<&'static str> {
        let Ok(a) = Self::public_attributes(blob) else {
            return Vec::new();
        };
        [
            (a.fixed_tpm, "fixedTPM"),
            (a.fixed_parent, "fixedParent"),
            (a.sensitive_data_origin, "sensitiveDataOrigin"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }

    fn algorithms(&self) -> Vec<Algorithm> {
        self.algorithms.clone()
    }

    fn create_key(&mut self, alg: Algorithm) -> Result<NewKey, CustodyError> {
        Ok(self.surviving_reset(|s| s.create_credential(alg))?)
    }

    fn sign(&mut self, blob: &[u8], message: &[u8]) -> Result<Vec<u8>, CustodyError> {
        Ok(self.surviving_reset(|s| TpmCustody::sign(s, blob, message))?)
    }

    fn create_hmac_key(&mut self) -> Result<Vec<u8>, CustodyError> {
        Ok(self.surviving_reset(TpmCustody::create_hmac_key)?)
    }

    fn forget_key(&mut self, blob: &[u8]) {
        TpmCustody::forget_key(self, blob)
    }

    fn hmac(&mut self, blob: &[u8], message: &[u8]) -> Result<[u8; 32], CustodyError> {
        Ok(self.surviving_reset(|s| TpmCustody::hmac(s, blob, message))?)
    }

    fn seal(&mut self, data: &[u8]) -> Result<Vec<u8>, CustodyError> {
        Ok(self.surviving_reset(|s| s.seal_data(data))?)
    }

    fn unseal(&mut self, blob: &[u8]) -> Result<Vec<u8>, CustodyError> {
        Ok(self.surviving_reset(|s| s.unseal_data(blob))?.to_vec())
    }

    fn reset(&mut self, vault: Option<&[u8]>) -> Result<(), CustodyError> {
        self.lock();
        // Whatever the stored vault is, no saved context outlives Reset.
        self.saved.clear();
        match vault.map(VaultBlob::from_bytes) {
            Some(Ok(v)) => Ok(self.surviving_reset(|s| s.revoke(&v))?),
            // An unreadable blob revokes nothing, and nothing can open it either.
            Some(Err(_)) | None => Ok(()),
        }
    }

    fn create_vault(&mut self, auth: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        let allow = self.allow_unguarded;
        Ok(self
            .surviving_reset(|s| TpmCustody::create_vault_with(s, auth, allow))?
            .to_bytes())
    }

    fn unlock(&mut self, vault: &[u8], auth: &[u8; 32]) -> Result<Option<Vec<u8>>, CustodyError> {
        let vault = VaultBlob::from_bytes(vault)?;
        Ok(self
            .surviving_reset(|s| TpmCustody::unlock(s, &vault, auth))?
            .map(|v| v.to_bytes()))
    }

    fn pin_retries(&mut self, vault: &[u8]) -> Result<Option<u8>, CustodyError> {
        let vault = VaultBlob::from_bytes(vault)?;
        // Often the first TPM command after a resume: it must notice a reset.
        Ok(self
            .surviving_reset(|s| TpmCustody::pin_counts(s, &vault))?
            .map(|c| c.limit.saturating_sub(c.failures).min(u8::MAX as u32) as u8))
    }

    fn change_auth(&mut self, vault: &[u8], old: &[u8; 32], new: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        let vault = VaultBlob::from_bytes(vault)?;
        Ok(self
            .surviving_reset(|s| TpmCustody::change_auth(s, &vault, old, new))?
            .to_bytes())
    }

    fn commit_change(
        &mut self,
        vault: &[u8],
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<Vec<u8>, CustodyError> {
        let vault = VaultBlob::from_bytes(vault)?;
        Ok(self
            .surviving_reset(|s| TpmCustody::commit_change(s, &vault, old, new))?
            .to_bytes())
    }

    fn can_certify(&self) -> bool {
        true
    }

    fn create_certifiable_key(&mut self, alg: Algorithm) -> Result<Option<NewKey>, CustodyError> {
        if attestation::certifiable_template(alg)?.is_none() {
            return Ok(None);
        }
        Ok(Some(
            self.surviving_reset(|s| s.create_certifiable_credential(alg))?,
        ))
    }

    fn certify(
        &mut self,
        attestation_key: &[u8],
        key_blob: &[u8],
        qualifying_data: &[u8],
    ) -> Result<lp_core::custody::Certification, CustodyError> {
        let c =
            self.surviving_reset(|s| TpmCustody::certify(s, attestation_key, key_blob, qualifying_data))?;
        Ok(lp_core::custody::Certification {
            cert_info: c.cert_info,
            signature: c.signature,
            public_area: c.public_area,
        })
    }

    fn lock(&mut self) {
        TpmCustody::lock(self)
    }

    fn is_unlocked(&self) -> bool {
        TpmCustody::is_unlocked(self)
    }
}
