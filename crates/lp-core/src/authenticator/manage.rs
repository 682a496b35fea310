//! What the passkey manager (the daemon's D-Bus API) asks of the
//! authenticator besides CTAP: the same store, custody and prompt, so a
//! deletion from the desktop app and one from a browser's settings page
//! leave the same trace and need the same person.

use super::verification::account_label;
use super::Authenticator;
use crate::activity::{self, Act, Activity, Outcome};
use crate::custody::{Algorithm, CustodyError};
use crate::pin;
use crate::status::CtapError;
use crate::store::{Credential, StoreError};
use crate::user::{Action, Interaction, KeepaliveStatus, NewPin, PresenceRequest, Refusal};
use zeroize::Zeroizing;

/// One passkey as the manager shows it: everything but the key material.
#[derive(Debug, Clone)]
pub struct Passkey {
    pub credential: Credential,
    /// From the stored COSE key; None for a key this build does not know.
    pub algorithm: Option<Algorithm>,
    /// What keeps the private key in its custody (see `KeyCustody::key_protection`).
    pub key_protection: Vec<&'static str>,
    /// The extensions this credential holds data for.
    pub extensions: Vec<&'static str>,
}

/// The PIN as the manager shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinStatus {
    pub set: bool,
    pub retries: u8,
    pub blocked_until_power_cycle: bool,
    pub force_change: bool,
    pub min_length: u8,
}

/// Why a manager request did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManageError {
    #[error("no passkey with that credential id")]
    NotFound,
    #[error("refused in the prompt")]
    Refused(Refusal),
    #[error("no PIN is set")]
    PinNotSet,
    #[error("a PIN is already set")]
    PinAlreadySet,
    #[error("the current PIN is wrong")]
    PinInvalid,
    #[error("no PIN tries are left")]
    PinBlocked,
    #[error("the new PIN does not meet the PIN policy")]
    PinPolicy,
    #[error("{0}")]
    Failed(String),
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        ManageError::Failed(e.to_string())
    }
}

impl From<CtapError> for ManageError {
    fn from(e: CtapError) -> Self {
        match e {
            CtapError::PinInvalid => ManageError::PinInvalid,
            CtapError::PinBlocked | CtapError::PinAuthBlocked | CtapError::UvBlocked => {
                ManageError::PinBlocked
            }
            CtapError::PinPolicyViolation => ManageError::PinPolicy,
            CtapError::PinNotSet => ManageError::PinNotSet,
            CtapError::OperationDenied => ManageError::Refused(Refusal::Denied),
            CtapError::UserActionTimeout => ManageError::Refused(Refusal::TimedOut),
            CtapError::KeepaliveCancel => ManageError::Refused(Refusal::Cancelled),
            other => ManageError::Failed(format!("{other:?}")),
        }
    }
}

impl From<CustodyError> for ManageError {
    fn from(e: CustodyError) -> Self {
        CtapError::from(e).into()
    }
}

/// The COSE algorithm (label 3) of a stored public key.
fn cose_algorithm(cose_key: &[u8]) -> Option<Algorithm> {
    let value: ciborium::value::Value = ciborium::de::from_reader(cose_key).ok()?;
    let alg = value.as_map()?.iter().find_map(|(k, v)| {
        (k.as_integer() == Some(3.into()))
            .then(|| v.as_integer())
            .flatten()
    })?;
    Algorithm::from_cose(i64::try_from(alg).ok()?)
}

fn extensions_of(c: &Credential) -> Vec<&'static str> {
    [
        (c.hmac_key.is_some(), "hmac-secret"),
        (c.cred_blob.is_some(), "credBlob"),
        (c.large_blob_key.is_some(), "largeBlobKey"),
        (c.third_party_payment, "thirdPartyPayment"),
    ]
    .into_iter()
    .filter_map(|(has, name)| has.then_some(name))
    .collect()
}

/// A PIN the person typed, as the 64-byte block `parse_new_pin` checks.
fn checked_new_pin(typed: &str, min_length: u8) -> Result<Zeroizing<Vec<u8>>, ManageError> {
    let bytes = typed.as_bytes();
    if bytes.len() > pin::MAX_PIN_BYTES || bytes.contains(&0) {
        return Err(ManageError::PinPolicy);
    }
    let mut padded = Zeroizing::new([0u8; 64]);
    padded[..bytes.len()].copy_from_slice(bytes);
    Ok(pin::parse_new_pin(&*padded, usize::from(min_length))?)
}

impl Passkey {
    /// `key_protection` as the custody reads it from the key blob.
    pub fn new(credential: Credential, key_protection: Vec<&'static str>) -> Self {
        Self {
            algorithm: cose_algorithm(&credential.public_key_cose),
            extensions: extensions_of(&credential),
            key_protection,
            credential,
        }
    }
}

impl Authenticator {
    /// Every stored passkey, most recently created first.
    pub fn passkeys(&self) -> Result<Vec<Passkey>, ManageError> {
        Ok(self
            .store
            .all()?
            .into_iter()
            .map(|c| {
                let protection = self.custody.key_protection(&c.key_blob);
                Passkey::new(c, protection)
            })
            .collect())
    }

    /// Delete one passkey once the person confirms it in our prompt, which
    /// names the site and the account: whoever calls cannot do it alone.
    pub fn delete_passkey(&mut self, id: &[u8], io: &dyn Interaction) -> Result<(), ManageError> {
        let cred = self.store.get(id)?.ok_or(ManageError::NotFound)?;
        let account = account_label(&cred);
        let answer = self.ask(Action::Delete, &cred.rp_id, account.as_deref(), io);
        self.end_managed(
            Act::Delete,
            &cred.rp_id,
            account.as_deref(),
            answer.map_err(ManageError::from),
        )?;
        // The entry rides the deletion's own commit.
        self.store.delete(id)?;
        self.forget_keys(&cred);
        tracing::info!(rp = ?cred.rp_id, "credential deleted through the manager");
        Ok(())
    }

    /// Replace the account's names, as credential management's
    /// updateUserInformation does; `None` removes one.
    pub fn rename_user(
        &mut self,
        id: &[u8],
        name: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<(), ManageError> {
        let cred = self.store.get(id)?.ok_or(ManageError::NotFound)?;
        self.note(Act::Rename, &cred.rp_id, name.or(display_name), Outcome::Approved);
        if !self.store.update_user(id, name, display_name)? {
            return Err(ManageError::NotFound);
        }
        Ok(())
    }

    pub fn pin_status(&mut self) -> Result<PinStatus, ManageError> {
        let set = self.pin().is_set()?;
        Ok(PinStatus {
            set,
            retries: if set {
                self.pin().retries()?
            } else {
                pin::MAX_RETRIES
            },
            blocked_until_power_cycle: set && self.pin().boot_failures()? >= pin::MAX_FAILURES_PER_BOOT,
            force_change: set && self.pin().must_change()?,
            min_length: self.min_pin_length()?,
        })
    }

    /// Set the first PIN, typed by the person into our own prompt: no PIN
    /// crosses D-Bus or any other program.
    pub fn set_pin_by_prompt(&mut self, io: &dyn Interaction) -> Result<(), ManageError> {
        let result = self.set_pin_inner(io);
        self.end_managed(Act::SetPin, "", None, result)
    }

    fn set_pin_inner(&mut self, io: &dyn Interaction) -> Result<(), ManageError> {
        if self.pin().is_set()? {
            return Err(ManageError::PinAlreadySet);
        }
        let min = self.min_pin_length()?;
        let (_, new) = self.ask_new_pin(Action::SetPin, false, min, None, io)?;
        let new = checked_new_pin(&new, min)?;
        self.pin().install(&new)?;
        Ok(())
    }

    /// Change the PIN: the current one and the new one, both typed into our prompt.
    pub fn change_pin_by_prompt(&mut self, io: &dyn Interaction) -> Result<(), ManageError> {
        let result = self.change_pin_inner(io);
        self.end_managed(Act::ChangePin, "", None, result)
    }

    fn change_pin_inner(&mut self, io: &dyn Interaction) -> Result<(), ManageError> {
        if !self.pin().is_set()? {
            return Err(ManageError::PinNotSet);
        }
        let retries = self.pin().retries()?;
        if retries == 0 || self.pin().boot_failures()? >= pin::MAX_FAILURES_PER_BOOT {
            return Err(ManageError::PinBlocked);
        }
        let min = self.min_pin_length()?;
        let (current, new) = self.ask_new_pin(Action::ChangePin, true, min, Some(retries), io)?;
        let current = current.ok_or(ManageError::PinInvalid)?;
        let old_hash = pin::pin_hash(current.as_bytes());
        self.pin().check(&old_hash)?;
        let new = checked_new_pin(&new, min)?;
        self.pin().replace(&old_hash, &new)?;
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn ask_new_pin(
        &mut self,
        action: Action,
        current: bool,
        min_length: u8,
        retries: Option<u8>,
        io: &dyn Interaction,
    ) -> Result<(Option<Zeroizing<String>>, Zeroizing<String>), ManageError> {
        io.set_status(KeepaliveStatus::UpNeeded);
        let req = PresenceRequest {
            action,
            rp_id: String::new(),
            user_name: None,
            accounts: Vec::new(),
        };
        let timeout = self.config.presence_timeout;
        let answer = self
            .user
            .request_new_pin(&req, current, min_length, retries, timeout, io);
        io.set_status(KeepaliveStatus::Processing);
        match answer {
            NewPin::Typed { current, new } => Ok((current, new)),
            NewPin::Refused(r) => Err(ManageError::Refused(r)),
        }
    }

    /// Log how a manager request ended (an approval that still has a write
    /// to do is logged with that write) and pass the result on.
    fn end_managed(
        &mut self,
        act: Act,
        rp_id: &str,
        account: Option<&str>,
        result: Result<(), ManageError>,
    ) -> Result<(), ManageError> {
        let outcome = match &result {
            // Nothing was asked or tried: nothing to tell the person.
            Err(ManageError::NotFound | ManageError::PinAlreadySet | ManageError::PinNotSet) => {
                return result
            }
            Ok(()) => Outcome::Approved,
            Err(ManageError::Refused(Refusal::Denied)) => Outcome::Refused,
            Err(ManageError::Refused(Refusal::TimedOut)) => Outcome::TimedOut,
            Err(ManageError::Refused(Refusal::Cancelled)) => Outcome::Cancelled,
            Err(ManageError::PinInvalid) => Outcome::WrongPin,
            Err(ManageError::PinBlocked) => Outcome::Blocked,
            Err(_) => Outcome::Failed,
        };
        self.note(act, rp_id, account, outcome);
        if result.is_err() || act != Act::Delete {
            self.store.flush_log()?;
        }
        result
    }

    /// The newest `limit` entries of the activity log.
    pub fn recent_activity(&self, limit: usize) -> Result<Vec<Activity>, ManageError> {
        Ok(self.store.recent_activity(limit)?)
    }

    /// Drop log entries older than the retention the person chose (90 days
    /// unless they changed it).
    pub fn trim_activity(&mut self) -> Result<(), ManageError> {
        let days = activity::retention_from_meta(self.store.get_meta(activity::RETENTION_META)?.as_deref());
        let before = activity::cutoff(self.clock.unix_millis(), days);
        Ok(self.store.trim_activity(before)?)
    }
}
