//! The credential store seam.
//!
//! The contract that matters: when a method returns `Ok`, the change is on
//! stable storage. The authenticator answers the client only after that, so
//! nothing acknowledged is lost if the process dies the next instant.

mod memory;
pub use crate::activity::Activity;
pub use memory::MemoryStore;

/// One credential, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Random credential id (32 bytes), the key of the store. Carries no secret.
    pub id: Vec<u8>,
    pub rp_id: String,
    pub rp_name: Option<String>,
    pub user_id: Vec<u8>,
    pub user_name: Option<String>,
    pub user_display_name: Option<String>,
    /// Resident ("discoverable") credential.
    pub discoverable: bool,
    /// The custody-wrapped private key (for the TPM: public and private areas).
    pub key_blob: Vec<u8>,
    /// The COSE_Key public key, as sent in the attested credential data.
    pub public_key_cose: Vec<u8>,
    /// Signature counter: only ever goes up.
    pub sign_count: u32,
    /// Unix milliseconds.
    pub created: u64,
    /// Unix milliseconds of the last assertion, if any.
    pub last_used: Option<u64>,
    /// credProtect level: 1 userVerificationOptional, 2 …WithCredentialIDList,
    /// 3 userVerificationRequired.
    pub cred_protect: u8,
    /// hmac-secret: the custody-wrapped HMAC key (never the key itself).
    pub hmac_key: Option<Vec<u8>>,
    /// credBlob: up to 32 bytes the RP asked us to keep with the credential.
    pub cred_blob: Option<Vec<u8>>,
    /// largeBlobKey: the 32-byte key the platform uses to encrypt this
    /// credential's entry in the large-blob array.
    pub large_blob_key: Option<Vec<u8>>,
    /// CTAP 2.2 thirdPartyPayment: the RP enabled this credential for
    /// payments that another site initiates (Secure Payment Confirmation).
    pub third_party_payment: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store failure: {0}")]
    Backend(String),
    /// No space left where the store lives. Nothing was changed.
    #[error("the disk holding the passkeys is full ({0}); nothing was changed: free some space")]
    Full(String),
}

pub trait CredentialStore: Send {
    /// Store a new credential. If it is discoverable, any discoverable
    /// credential with the same RP ID and user id is removed in the same
    /// atomic step (CTAP 2.1 6.1.2 step 18). Returns the ids removed.
    fn insert(&mut self, cred: &Credential) -> Result<Vec<Vec<u8>>, StoreError>;

    fn get(&self, id: &[u8]) -> Result<Option<Credential>, StoreError>;

    /// Discoverable credentials for an RP, most recently created first.
    fn discoverable_for_rp(&self, rp_id: &str) -> Result<Vec<Credential>, StoreError>;

    /// Increment the credential's signature counter, record `now` as its
    /// last use, and return the new counter value — persisted before returning.
    fn increment_counter(&mut self, id: &[u8], now: u64) -> Result<u32, StoreError>;

    /// Returns false when there was no such credential.
    fn delete(&mut self, id: &[u8]) -> Result<bool, StoreError>;

    /// Remove every credential (authenticatorReset).
    fn delete_all(&mut self) -> Result<(), StoreError>;

    /// Every credential, most recently created first (for `localpasskey list`).
    fn all(&self) -> Result<Vec<Credential>, StoreError>;

    /// Replace a credential's user name and display name (credential
    /// management's updateUserInformation). Returns false if there is no such credential.
    fn update_user(
        &mut self,
        id: &[u8],
        name: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// The RP IDs (and names) that have discoverable credentials, sorted by RP ID.
    fn discoverable_rps(&self) -> Result<Vec<(String, Option<String>)>, StoreError>;

    /// How many discoverable credentials are stored.
    fn count_discoverable(&self) -> Result<u64, StoreError>;

    /// The RP ID with discoverable credentials whose SHA-256 is `hash` (how
    /// credential management names an RP). A store with an index on the
    /// hash answers without hashing every RP ID, as this default does.
    fn discoverable_rp_by_hash(&self, hash: &[u8]) -> Result<Option<String>, StoreError> {
        use sha2::Digest as _;
        Ok(self
            .discoverable_rps()?
            .into_iter()
            .map(|(id, _)| id)
            .find(|id| sha2::Sha256::digest(id.as_bytes())[..] == *hash))
    }

    /// A counter that changes, in the same atomic step, with every change a
    /// credential-management listing would show: a discoverable credential
    /// inserted, deleted or renamed, and [`CredentialStore::delete_all`].
    fn discoverable_generation(&self) -> Result<u64, StoreError>;

    /// Small persistent settings and state (PIN state, retries, large blobs).
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether a setting exists, without copying its value out (the vault
    /// blob is asked for on every verified request only to see it is there).
    fn has_meta(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.get_meta(key)?.is_some())
    }
    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    fn delete_meta(&mut self, key: &str) -> Result<(), StoreError>;

    /// Queue one entry of the activity log. It reaches stable storage in the
    /// same atomic step as the store's next change (a sign-in's counter, a
    /// registration), or at [`CredentialStore::flush_log`]: a logged sign-in
    /// costs no write of its own, and the authenticator flushes before it
    /// answers, so nothing acknowledged is missing from the log after a crash.
    fn log(&mut self, entry: Activity);

    /// Write whatever [`CredentialStore::log`] queued and no change carried.
    fn flush_log(&mut self) -> Result<(), StoreError>;

    /// The newest `limit` entries of the log, newest first.
    fn recent_activity(&self, limit: usize) -> Result<Vec<Activity>, StoreError>;

    /// Remove entries older than `before` (Unix ms) and all but the newest
    /// [`crate::activity::MAX_ENTRIES`]; `before == u64::MAX` empties the log.
    fn trim_activity(&mut self, before: u64) -> Result<(), StoreError>;
}
