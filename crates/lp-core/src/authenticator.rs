//! The authenticator: one handler per CTAP command, over the seams.
//!
//! `handle` takes a whole CTAP request (command byte + CBOR parameters) and
//! returns a whole response (status byte + CBOR). It owns the volatile state
//! the spec ties to a power cycle (the GetNextAssertion queue, the reset
//! window) and asks the seams for everything else. It never blocks except
//! inside the user seam, which honours cancel and its own timeout.

use crate::activity::{Act, Activity, Outcome};
use crate::cbor;
use crate::clock::{Clock, Millis};
use crate::custody::{CustodyError, KeyCustody};
use crate::status::{CtapError, CTAP2_OK};
use crate::store::{CredentialStore, StoreError};
use crate::types::Command;
use crate::user::{Action, Interaction, KeepaliveStatus, Presence, PresenceRequest, UserPresence};
use ciborium::value::Value;
use std::sync::Arc;
use std::time::Duration;

/// Length of a credential id: random, 256 bits, nothing else in it.
pub const CREDENTIAL_ID_LEN: usize = 32;

/// CTAP 2.1 §6.3: GetNextAssertion must follow within 30 seconds.
pub const NEXT_ASSERTION_WINDOW_MS: Millis = 30_000;

/// CTAP 2.1 §6.6: Reset is only honoured this soon after power-up.
pub const RESET_WINDOW_MS: Millis = 10_000;

#[derive(Debug, Clone)]
pub struct Config {
    /// How long to wait for the person before CTAP2_ERR_USER_ACTION_TIMEOUT.
    pub presence_timeout: Duration,
    /// GetInfo's maxMsgSize: the longest request the transport takes (at
    /// most [`crate::MAX_MSG_SIZE`]); largeBlobs fragments are 64 bytes less.
    pub max_msg_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            presence_timeout: Duration::from_secs(30),
            max_msg_size: crate::MAX_MSG_SIZE,
        }
    }
}

pub struct Authenticator {
    custody: Box<dyn KeyCustody>,
    store: Box<dyn CredentialStore>,
    user: Box<dyn UserPresence>,
    clock: Arc<dyn Clock>,
    config: Config,
    powered_up_at: Millis,
    pending: Option<PendingAssertions>,
    /// The token and the key agreement; the PIN's persisted state is
    /// reached through [`Authenticator::pin`].
    pin: PinState,
    /// A credential-management listing in progress.
    listing: Option<cred_mgmt::Listing>,
    /// A large-blob write in progress.
    blob_write: Option<large_blobs::PendingWrite>,
    /// What the request being handled asks for, for the activity log.
    subject: Option<Subject>,
    /// Whether the request being handled has logged its outcome already.
    logged: bool,
    /// What happened since the daemon last looked ([`Authenticator::take_notices`]).
    notices: Vec<Notice>,
}

/// What a request is about, as the activity log records it.
struct Subject {
    act: Act,
    rp_id: String,
    account: String,
    /// The person was asked: every ending is theirs to see. Without a
    /// prompt (a platform's PIN), only wrong and blocked PINs are logged.
    prompted: bool,
}

/// Something that a manager watching this authenticator wants to hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An activity-log entry was written.
    Activity(Activity),
    /// A passkey was created, deleted or renamed, or all were erased.
    PasskeysChanged,
}

impl From<StoreError> for CtapError {
    fn from(e: StoreError) -> Self {
        tracing::error!("{e}");
        match e {
            // MakeCredential's word for it (CTAP 2.2 §6.1.2); `handle`
            // answers other commands CTAP1_ERR_OTHER.
            StoreError::Full(_) => CtapError::KeyStoreFull,
            StoreError::Backend(_) => CtapError::Other,
        }
    }
}

impl From<CustodyError> for CtapError {
    fn from(e: CustodyError) -> Self {
        tracing::error!("{e}");
        match e {
            CustodyError::InvalidBlob => CtapError::InvalidCredential,
            CustodyError::AuthFailed | CustodyError::Locked => CtapError::PinAuthInvalid,
            CustodyError::Lockout => CtapError::PinAuthBlocked,
            // Permanent: nothing but Reset makes a PIN work again.
            CustodyError::PinBlocked | CustodyError::Revoked => CtapError::PinBlocked,
            CustodyError::Unprotected(_) => CtapError::NotAllowed,
            CustodyError::Backend(_) => CtapError::Other,
        }
    }
}

type CtapResult = Result<Option<Value>, CtapError>;

impl Authenticator {
    pub fn new(
        custody: Box<dyn KeyCustody>,
        store: Box<dyn CredentialStore>,
        user: Box<dyn UserPresence>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Self {
        let powered_up_at = clock.now();
        Self {
            custody,
            store,
            user,
            clock,
            config,
            powered_up_at,
            pending: None,
            pin: PinState::new(),
            listing: None,
            blob_write: None,
            subject: None,
            logged: false,
            notices: Vec::new(),
        }
    }

    /// A deleted credential: the custody drops what it keeps of its keys
    /// (a loaded handle, a saved context, a parsed key).
    fn forget_keys(&mut self, cred: &crate::store::Credential) {
        self.custody.forget_key(&cred.key_blob);
        if let Some(hmac) = &cred.hmac_key {
            self.custody.forget_key(hmac);
        }
    }

    /// Record one activity-log entry. It is written with the store's next
    /// change (the counter of a signature, a new credential) or at the end of
    /// the request, before the answer leaves.
    fn note(&mut self, act: Act, rp_id: &str, account: Option<&str>, outcome: Outcome) {
        let entry = Activity {
            time: self.clock.unix_millis(),
            act,
            outcome,
            rp_id: rp_id.to_owned(),
            account: account.unwrap_or_default().to_owned(),
        };
        tracing::debug!(action = act.as_str(), outcome = outcome.as_str(), "activity");
        self.store.log(entry.clone());
        self.notices.push(Notice::Activity(entry));
        if outcome == Outcome::Approved
            && matches!(act, Act::Register | Act::Delete | Act::Rename | Act::Reset)
        {
            self.notices.push(Notice::PasskeysChanged);
        }
        self.logged = true;
    }

    /// Name what the request is about, for the log entry its ending leaves.
    fn subject(&mut self, act: Act, rp_id: &str, account: Option<&str>, prompted: bool) {
        self.subject = Some(Subject {
            act,
            rp_id: rp_id.to_owned(),
            account: account.unwrap_or_default().to_owned(),
            prompted,
        });
    }

    /// A refused or failed request leaves its entry here, unless the
    /// handler logged one itself.
    fn log_ending(&mut self, result: &CtapResult) {
        let Err(status) = result else { return };
        let Some(subject) = self.subject.take() else {
            return;
        };
        if self.logged {
            return;
        }
        let outcome = Outcome::of_status(*status);
        if subject.prompted || matches!(outcome, Outcome::WrongPin | Outcome::Blocked) {
            let account = Some(subject.account.as_str()).filter(|a| !a.is_empty());
            self.note(subject.act, &subject.rp_id, account, outcome);
        }
    }

    /// No room for what the person just approved: tell them why, since the
    /// platform shows at best "something went wrong".
    fn report_full(&mut self) {
        let Some(subject) = self.subject.as_ref().filter(|s| s.prompted) else {
            return;
        };
        let full = self
            .store
            .count_discoverable()
            .is_ok_and(|n| n >= cred_mgmt::MAX_DISCOVERABLE);
        let message = if full {
            format!(
                "LocalPasskey already holds {} passkeys, the most it can keep. Delete one you \
                 no longer need and try again.",
                cred_mgmt::MAX_DISCOVERABLE
            )
        } else {
            "The disk that holds LocalPasskey's data is full, so nothing could be saved. \
             Free some space and try again; your passkeys are safe."
                .to_owned()
        };
        let req = PresenceRequest {
            action: Action::Failed,
            rp_id: subject.rp_id.clone(),
            user_name: Some(subject.account.clone()).filter(|a| !a.is_empty()),
            accounts: Vec::new(),
        };
        self.user.report(&req, &message);
    }

    /// What happened since the last call: log entries written and changes
    /// to the passkeys, for the D-Bus signals.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// maxMsgSize as GetInfo says it: the configured size, never above what
    /// CTAPHID can frame, and never below what the spec lets a platform assume.
    pub(crate) fn max_msg_size(&self) -> usize {
        self.config.max_msg_size.clamp(1024, crate::MAX_MSG_SIZE)
    }

    /// Name of the key custody in use, for logs and `info`.
    pub fn custody_name(&self) -> &'static str {
        self.custody.name()
    }

    /// Unplug and replug: volatile state goes, stored credentials stay, and
    /// the reset window opens again.
    pub fn power_cycle(&mut self) {
        self.pending = None;
        self.listing = None;
        self.blob_write = None;
        self.powered_up_at = self.clock.now();
        self.pin.new_boot(&mut *self.store);
        self.custody.lock();
    }

    /// The PIN with the store and the custody it lives in.
    fn pin(&mut self) -> Pin<'_> {
        Pin {
            state: &mut self.pin,
            store: &mut *self.store,
            custody: &mut *self.custody,
        }
    }

    fn meta_u8(&self, key: &str) -> Result<Option<u8>, CtapError> {
        Ok(self.store.get_meta(key)?.and_then(|v| v.first().copied()))
    }

    /// When [`Authenticator::tick`] must next run (a token or an assertion
    /// sequence expiring), so the daemon sleeps until then instead of polling.
    pub fn next_deadline(&self) -> Option<Millis> {
        let pending = self.pending.as_ref().map(|p| p.expires + 1);
        match (self.pin.deadline(), pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time-driven work. The vault stays unlocked only while something the
    /// user verified is still running: a live, unspent token, or the rest of
    /// a GetAssertion sequence (GetNextAssertion signs without asking again).
    /// A spent token keeps at most largeBlobWrite, which needs no key.
    pub fn tick(&mut self) {
        let now = self.clock.now();
        self.pin.token().expire(now);
        if self.pending.as_ref().is_some_and(|p| now > p.expires) {
            self.pending = None;
        }
        let token = self.pin.token();
        let verified = token.is_live(now) && token.grant().is_some_and(|g| g.user_verified);
        if !verified && self.pending.is_none() && self.custody.is_unlocked() {
            tracing::debug!("nothing verified is running: vault locked");
            self.custody.lock();
        }
    }

    /// Process one CTAP request; never panics, whatever the bytes.
    pub fn handle(&mut self, request: &[u8], io: &dyn Interaction) -> Vec<u8> {
        let out = self.answer(request, io);
        self.settle();
        out
    }

    /// [`Authenticator::handle`] up to the answer. A transport calls this,
    /// sends the answer, then calls [`Authenticator::settle`]: the platform
    /// does not wait for the vault to be locked again.
    pub fn answer(&mut self, request: &[u8], io: &dyn Interaction) -> Vec<u8> {
        self.tick();
        self.subject = None;
        self.logged = false;
        let mut result = self.dispatch(request, io);
        if result == Err(CtapError::KeyStoreFull) {
            self.report_full();
            if request.first() != Some(&(Command::MakeCredential as u8)) {
                result = Err(CtapError::Other);
            }
        }
        self.log_ending(&result);
        if let Err(e) = self.store.flush_log() {
            tracing::error!("the activity log could not be written: {e}");
        }
        io.set_status(KeepaliveStatus::Processing);
        match result {
            Ok(None) => vec![CTAP2_OK],
            Ok(Some(v)) => {
                let mut out = Vec::with_capacity(512);
                out.push(CTAP2_OK);
                cbor::encode_into(&v, &mut out);
                out
            }
            Err(e) => {
                tracing::debug!(status = ?e, "request refused");
                vec![e.code()]
            }
        }
    }

    /// What follows an answer: the vault stays unlocked only while a
    /// verified token is live, so a request that spent its token's
    /// verification locks it here (on a TPM, a flush or two). Every request
    /// starts with the same check, so an answer never settled is settled by
    /// the next request before it runs.
    pub fn settle(&mut self) {
        self.tick();
    }

    fn dispatch(&mut self, request: &[u8], io: &dyn Interaction) -> CtapResult {
        let Some((&byte, params)) = request.split_first() else {
            return Err(CtapError::InvalidLength);
        };
        let command = Command::from_byte(byte);
        // Any command but GetNextAssertion ends an assertion sequence, and
        // any command but credential management ends a listing.
        if command != Some(Command::GetNextAssertion) {
            self.pending = None;
        }
        if !matches!(
            command,
            Some(Command::CredentialManagement | Command::CredentialManagementPre)
        ) {
            self.listing = None;
        }
        let Some(command) = command else {
            return Err(CtapError::InvalidCommand);
        };
        match command {
            Command::MakeCredential => self.make_credential(params, io),
            Command::GetAssertion => self.get_assertion(params, io),
            Command::GetInfo => Ok(Some(self.get_info()?)),
            Command::ClientPin => self.client_pin(params, io),
            Command::GetNextAssertion => self.get_next_assertion(),
            Command::Reset => self.reset(io),
            Command::Selection => self.ask(Action::Select, "", None, io).map(|()| None),
            Command::CredentialManagement | Command::CredentialManagementPre => {
                self.credential_management(params)
            }
            Command::LargeBlobs => self.large_blobs(params),
            Command::Config => self.config(params),
        }
    }

    /// Ask the person, mapping every non-approval to its CTAP status.
    fn ask(
        &mut self,
        action: Action,
        rp_id: &str,
        user_name: Option<&str>,
        io: &dyn Interaction,
    ) -> Result<(), CtapError> {
        self.ask_for(&PresenceRequest::new(action, rp_id, user_name), io)
            .map(|_| ())
    }

    /// Ask the person `req`; the answer is the account they chose among
    /// `req.accounts`, if any.
    fn ask_for(&mut self, req: &PresenceRequest, io: &dyn Interaction) -> Result<Option<usize>, CtapError> {
        self.asking(req.action, &req.rp_id, req.user_name.as_deref());
        io.set_status(KeepaliveStatus::UpNeeded);
        let answer = self.user.request_presence(req, self.config.presence_timeout, io);
        io.set_status(KeepaliveStatus::Processing);
        match answer {
            Presence::Approved { chosen } => checked_choice(req, chosen),
            Presence::Refused(r) => Err(r.into()),
        }
    }
}

impl Authenticator {
    /// The person is about to be asked `action`: that is what the request's
    /// log entry will say (choosing an authenticator is not logged).
    fn asking(&mut self, action: Action, rp_id: &str, user_name: Option<&str>) {
        let act = match action {
            Action::Register | Action::AlreadyRegistered => Act::Register,
            Action::SignIn => Act::SignIn,
            Action::Reset => Act::Reset,
            Action::Unlock => Act::Unlock,
            Action::Delete => Act::Delete,
            Action::SetPin => Act::SetPin,
            Action::ChangePin => Act::ChangePin,
            Action::Select | Action::Failed => return,
        };
        self.subject(act, rp_id, user_name, true);
    }
}

/// A choice the request did not offer (an index past its list, or any index
/// when it listed nothing) comes from a prompt that went wrong, and is the
/// person choosing nothing: refused (CTAP 2.1 §6.2.2 step 12.2.3.3), never
/// taken as some other account.
fn checked_choice(req: &PresenceRequest, chosen: Option<usize>) -> Result<Option<usize>, CtapError> {
    match chosen {
        Some(i) if i >= req.accounts.len() => {
            tracing::warn!(
                chosen = i,
                offered = req.accounts.len(),
                "the prompt chose an account it was not offered; refused"
            );
            Err(CtapError::OperationDenied)
        }
        other => Ok(other),
    }
}

use get_assertion::PendingAssertions;
use pin_state::{Pin, PinState};

mod client_pin;
mod config;
mod cred_mgmt;
mod enterprise;
pub use enterprise::unlock_with_pin;
mod get_assertion;
mod get_info;
mod large_blobs;
mod make_credential;
mod manage;
pub use manage::{ManageError, Passkey, PinStatus};
mod pin_state;
mod reset;
#[cfg(test)]
mod tests;
mod verification;
