//! Saved key contexts, kept across locks and usable only while unlocked.
//!
//! On a TPM other processes reach (swtpm, mssim: no resource manager),
//! credential and HMAC keys are flushed after every command, because a
//! loaded key with an empty authValue could be used by whoever reaches the
//! TPM. Loading one again the normal way costs the vault's policy session
//! (PolicyNV + PolicyAuthValue on V) and TPM2_Load: about 5 ms on swtpm
//! against 0.5 ms for the signature. TPM2_ContextSave gives a blob that
//! TPM2_ContextLoad turns back into the loaded key in one cheap command, with
//! no policy. Such a blob is therefore a *signing capability*: whoever holds
//! it and reaches this TPM can load the key and sign, without the PIN.
//!
//! So this module never holds one in the clear between commands. Each saved
//! context is sealed with AES-256-GCM (a fresh random 96-bit nonce each, the
//! key's identity — SHA-256 of its blob — as associated data) under a key
//! derived from the vault's authValue R by HKDF-SHA-256 with its own label.
//! That key exists only while the vault is unlocked: it is derived when V is
//! loaded with R (R comes from the PIN-gated unseal of S) and zeroized at
//! lock, with libtss2's copy of R. The sealed contexts themselves stay in
//! memory across locks, so the first signature after the next unlock (every
//! browser sign-in brings a fresh PIN/UV token, i.e. a fresh unlock) is a
//! decryption (microseconds) and a ContextLoad instead of the vault's policy
//! and a TPM2_Load.
//!
//! Why this does not weaken the promises:
//! * After lock, the process holds sealed contexts and no key to open them:
//!   nothing it holds can sign. A memory image taken after lock (swap, a
//!   crash dump, ptrace by a same-user process where the daemon's
//!   non-dumpable flag is undone) gives ciphertexts whose key needs R, and R
//!   needs the PIN, counted by the TPM's PIN index.
//! * With R, nothing new opens: R is V's authValue, and V with R (and the
//!   current epoch) already loads every credential key from its blob on
//!   disk. A decrypted context is no more than that, and less: it loads only
//!   on this TPM (sealed by the TPM's own context key, derived from the
//!   owner hierarchy's proof, which never leaves the TPM and changes at
//!   TPM2_Clear) and only in this TPM Reset cycle (the TPM binds object
//!   contexts to its reset count): after a reboot, a resume from
//!   hibernation or a restarted swtpm, ContextLoad is refused and the key is
//!   loaded the normal way, through V's policy.
//! * The one thing a context skips is V's epoch check (PolicyNV(E == epoch)),
//!   which is how authenticatorReset revokes inside the TPM. So Reset (and
//!   making a new vault) drops every saved context, and a context saved
//!   under one V is never opened under another: they are kept for one V (its
//!   blob's SHA-256) and dropped when another is loaded. A new vault has a
//!   new R, so an old context would not decrypt anyway.
//! * A PIN change keeps R (S is re-sealed for the new PIN around the same R,
//!   V does not change), so the contexts stay valid, as V's blob does.
//! * Deleting a credential drops its context ([`SavedContexts::forget`]).
//! * Memory only: nothing here is ever written to disk. A daemon restart
//!   starts empty.
//!
//! Limits, honestly: the plaintext context exists briefly between
//! TPM2_ContextSave and the sealing, and between opening and
//! TPM2_ContextLoad; libtss2 and tss-esapi copy it through their own heap
//! and free it without scrubbing (as libtss2 does with R while unlocked).
//! Our own plaintext buffers are zeroized.
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use tss_esapi::tss2_esys::{TPM2B_CONTEXT_DATA, TPMS_CONTEXT};
use tss_esapi::utils::TpmsContext;
use zeroize::{Zeroize, Zeroizing};

/// HKDF info: this key is used for nothing else R derives.
const LABEL: &[u8] = b"LocalPasskey TPM custody v1: saved key contexts";

/// How many sealed contexts are kept (under 2 KB each), oldest dropped first.
pub(crate) const MAX_SAVED_CONTEXTS: usize = 256;

/// The identity of a key: SHA-256 of its whole blob (tag included).
pub(crate) type KeyId = [u8; 32];

/// One sealed context: `nonce (12) || AES-256-GCM(TPMS_CONTEXT) || tag (16)`.
type Sealed = Vec<u8>;

#[derive(Default)]
pub(crate) struct SavedContexts {
    /// The sealing key, HKDF-SHA-256(R): present only while unlocked.
    key: Option<Zeroizing<[u8; 32]>>,
    /// SHA-256 of the V whose children the entries are.
    vault: Option<[u8; 32]>,
    /// Sealed contexts, oldest first.
    entries: Vec<(KeyId, Sealed)>,
}

impl SavedContexts {
    /// V was loaded with its authValue `auth` (R): derive the sealing key.
    /// Entries saved under another V are dropped.
    pub(crate) fn open(&mut self, vault: [u8; 32], auth: &[u8]) {
        if self.vault != Some(vault) {
            self.entries.clear();
            self.vault = Some(vault);
        }
        self.key = derive(auth);
    }

    /// Lock: forget the sealing key (zeroized on drop). The entries stay,
    /// useless until the next unlock derives the key again.
    pub(crate) fn close(&mut self) {
        self.key = None;
    }

    /// Reset or a new vault: drop everything.
    pub(crate) fn clear(&mut self) {
        self.key = None;
        self.vault = None;
        self.entries.clear();
    }

    /// A deleted credential, or a context the TPM refused: drop its entry.
    pub(crate) fn forget(&mut self, id: &KeyId) {
        self.entries.retain(|(k, _)| k != id);
    }

    pub(crate) fn contains(&self, id: &KeyId) -> bool {
        self.entries.iter().any(|(k, _)| k == id)
    }

    /// Seal and keep `context` for key `id` (replacing an older one). Does
    /// nothing while locked: there is no key to seal with.
    pub(crate) fn put(&mut self, id: KeyId, context: TpmsContext) {
        let Some(key) = &self.key else { return };
        let plain = marshal(context);
        let Some(sealed) = seal(key, &id, &plain) else {
            return;
        };
        self.forget(&id);
        if self.entries.len() >= MAX_SAVED_CONTEXTS {
            self.entries.remove(0);
        }
        self.entries.push((id, sealed));
    }

    /// The context saved for key `id`, opened; None while locked, when there
    /// is none, or when it does not open (then it is dropped).
    pub(crate) fn get(&mut self, id: &KeyId) -> Option<TpmsContext> {
        let key = self.key.as_ref()?;
        let i = self.entries.iter().position(|(k, _)| k == id)?;
        let opened = open(key, id, &self.entries[i].1).and_then(|plain| unmarshal(&plain));
        if opened.is_none() {
            self.entries.remove(i);
        }
        opened
    }

    /// What this process's memory holds of saved contexts: the sealed bytes
    /// per key (for the attack tests and audit).
    pub(crate) fn sealed(&self) -> Vec<(KeyId, Vec<u8>)> {
        self.entries.clone()
    }

    pub(crate) fn is_open(&self) -> bool {
        self.key.is_some()
    }

    /// Take the entries (and the V they belong to) into another custody
    /// (after a TPM Reset: the TPM will refuse them, and the normal load
    /// takes over).
    pub(crate) fn take_entries(&mut self) -> SavedContexts {
        SavedContexts {
            key: None,
            vault: self.vault.take(),
            entries: std::mem::take(&mut self.entries),
        }
    }
}

/// HKDF-SHA-256 of `auth` with this module's label. 32 bytes is far below
/// HKDF-SHA-256's limit (255 × 32), so it never fails in practice.
fn derive(auth: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, auth).expand(LABEL, &mut key[..]).ok()?;
    Some(key)
}

fn seal(key: &[u8; 32], id: &KeyId, plain: &[u8]) -> Option<Sealed> {
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let mut nonce = [0u8; 12];
    OsRng.try_fill_bytes(&mut nonce).ok()?;
    let ct = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad: id })
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Some(out)
}

fn open(key: &[u8; 32], id: &KeyId, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = sealed.split_at(12);
    let nonce = Nonce::from(<[u8; 12]>::try_from(nonce).ok()?);
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    cipher
        .decrypt(&nonce, Payload { msg: ct, aad: id })
        .ok()
        .map(Zeroizing::new)
}

/// `sequence u64 || savedHandle u32 || hierarchy u32 || contextBlob`, big-endian.
fn marshal(context: TpmsContext) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    if let Ok(mut raw) = TPMS_CONTEXT::try_from(context) {
        out.extend_from_slice(&raw.sequence.to_be_bytes());
        out.extend_from_slice(&raw.savedHandle.to_be_bytes());
        out.extend_from_slice(&raw.hierarchy.to_be_bytes());
        let n = usize::from(raw.contextBlob.size).min(raw.contextBlob.buffer.len());
        out.extend_from_slice(&raw.contextBlob.buffer[..n]);
        raw.contextBlob.buffer.zeroize();
    }
    out
}

fn unmarshal(plain: &[u8]) -> Option<TpmsContext> {
    let (head, blob) = (plain.get(..16)?, plain.get(16..)?);
    let mut raw = TPMS_CONTEXT {
        sequence: u64::from_be_bytes(head[..8].try_into().ok()?),
        savedHandle: u32::from_be_bytes(head[8..12].try_into().ok()?),
        hierarchy: u32::from_be_bytes(head[12..16].try_into().ok()?),
        contextBlob: TPM2B_CONTEXT_DATA {
            size: u16::try_from(blob.len()).ok()?,
            buffer: [0; 5188],
        },
    };
    raw.contextBlob
        .buffer
        .get_mut(..blob.len())?
        .copy_from_slice(blob);
    let context = TpmsContext::try_from(raw).ok();
    raw.contextBlob.buffer.zeroize();
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(blob: &[u8]) -> TpmsContext {
        unmarshal(&[&[0, 0, 0, 0, 0, 0, 0, 7, 0x80, 0, 0, 1, 0x40, 0, 0, 1][..], blob].concat()).unwrap()
    }

    #[test]
    fn contexts_open_only_while_unlocked_with_the_same_authvalue() {
        let (r, id) = ([1u8; 32], [9u8; 32]);
        let mut saved = SavedContexts::default();
        saved.put(id, context(b"locked"));
        assert!(!saved.contains(&id), "sealed without a key");
        saved.open([0; 32], &r);
        saved.put(id, context(b"the context"));
        assert_eq!(saved.get(&id).unwrap().context_blob(), b"the context");

        saved.close();
        assert!(saved.get(&id).is_none(), "opened after lock");
        let sealed = saved.sealed();
        assert_eq!(sealed.len(), 1, "the sealed context is kept across the lock");
        assert!(
            !sealed[0].1.windows(11).any(|w| w == b"the context"),
            "the context is held in the clear"
        );

        // Another authValue (another vault, or a guess) opens nothing, and
        // the entry it cannot open is dropped.
        saved.open([0; 32], &[2u8; 32]);
        assert!(saved.get(&id).is_none(), "opened with another R");
        assert!(saved.sealed().is_empty());

        saved.open([0; 32], &r);
        saved.put(id, context(b"again"));
        saved.close();
        saved.open([0; 32], &r);
        assert_eq!(saved.get(&id).unwrap().context_blob(), b"again");
    }

    #[test]
    fn a_context_is_bound_to_its_key_and_its_vault() {
        let r = [1u8; 32];
        let key = derive(&r).unwrap();
        let sealed = seal(&key, &[9; 32], b"ctx").unwrap();
        assert!(open(&key, &[9; 32], &sealed).is_some());
        assert!(open(&key, &[8; 32], &sealed).is_none(), "opened for another key");
        let mut tampered = sealed.clone();
        tampered[14] ^= 1;
        assert!(open(&key, &[9; 32], &tampered).is_none(), "tampered and opened");
        assert!(open(&derive(&[2; 32]).unwrap(), &[9; 32], &sealed).is_none());
        assert_ne!(
            seal(&key, &[9; 32], b"ctx").unwrap()[..12],
            sealed[..12],
            "nonce reused"
        );

        // Loading another V drops what was saved under the first.
        let mut saved = SavedContexts::default();
        saved.open([1; 32], &r);
        saved.put([9; 32], context(b"x"));
        saved.close();
        saved.open([2; 32], &r);
        assert!(saved.sealed().is_empty());
        saved.put([9; 32], context(b"x"));
        saved.forget(&[9; 32]);
        assert!(saved.sealed().is_empty());
        saved.put([9; 32], context(b"x"));
        saved.clear();
        assert!(saved.sealed().is_empty() && !saved.is_open());
    }
}
