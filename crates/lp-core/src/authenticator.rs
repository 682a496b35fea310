//! The authenticator: one handler per CTAP command, over the seams.
//!
//! `handle` takes a whole CTAP request (command byte + CBOR parameters) and
//! returns a whole response (status byte + CBOR). It owns the volatile state
//! the spec ties to a power cycle (the GetNextAssertion queue, the reset
//! window) and asks the seams for everything else. It never blocks except
//! inside the user seam, which honours cancel and its own timeout.

use crate::authdata::{self, flags};
use crate::cbor::{self, int_map, text_map};
use crate::clock::{Clock, Millis};
use crate::custody::{Algorithm, CustodyError, KeyCustody, PublicKey};
use crate::extensions;
use crate::persistent_token::{self, PersistentToken};
use crate::pin::{self, permission, Token};
use crate::pin_protocol::{KeyAgreement, ProtocolVersion};
use crate::status::{CtapError, CTAP2_OK};
use crate::store::{Credential, CredentialStore, StoreError};
use crate::types::{command, CredentialDescriptor, GetAssertionRequest, MakeCredentialRequest};
use crate::user::{
    Action, Interaction, KeepaliveStatus, Presence, PresenceRequest, UserPresence, Verification,
};
use ciborium::value::Value;
use coset::iana;
use coset::CborSerializable;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

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

/// What GetNextAssertion continues (CTAP 2.1 §6.2 step 14 onwards).
struct PendingAssertions {
    rp_id: String,
    client_data_hash: Vec<u8>,
    flags: u8,
    ext: extensions::GaInputs,
    remaining: VecDeque<Credential>,
    expires: Millis,
}

pub struct Authenticator {
    custody: Box<dyn KeyCustody>,
    store: Box<dyn CredentialStore>,
    user: Box<dyn UserPresence>,
    clock: Arc<dyn Clock>,
    config: Config,
    powered_up_at: Millis,
    pending: Option<PendingAssertions>,
    /// clientPIN key agreement, new at every power cycle and after a wrong PIN.
    key_agreement: KeyAgreement,
    token: Token,
    /// A credential-management listing in progress.
    listing: Option<cred_mgmt::Listing>,
    /// A large-blob write in progress.
    blob_write: Option<large_blobs::PendingWrite>,
}

impl From<StoreError> for CtapError {
    fn from(e: StoreError) -> Self {
        tracing::error!("{e}");
        CtapError::Other
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
            key_agreement: KeyAgreement::new(),
            token: Token::new(),
            listing: None,
            blob_write: None,
        }
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
        self.key_agreement.regenerate();
        self.token.revoke();
        self.custody.lock();
        if let Err(e) = self.store.set_meta(pin::meta::BOOT_FAILURES, &[0]) {
            tracing::error!("cannot clear the per-boot PIN failures: {e}");
        }
    }

    /// When [`Authenticator::tick`] must next run (a token or an assertion
    /// sequence expiring), so the daemon sleeps until then instead of polling.
    pub fn next_deadline(&self) -> Option<Millis> {
        let pending = self.pending.as_ref().map(|p| p.expires + 1);
        match (self.token.deadline(), pending) {
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
        self.token.expire(now);
        if self.pending.as_ref().is_some_and(|p| now > p.expires) {
            self.pending = None;
        }
        let verified = self.token.is_live(now) && self.token.grant().is_some_and(|g| g.user_verified);
        if !verified && self.pending.is_none() && self.custody.is_unlocked() {
            tracing::debug!("nothing verified is running: vault locked");
            self.custody.lock();
        }
    }

    /// Process one CTAP request; never panics, whatever the bytes.
    pub fn handle(&mut self, request: &[u8], io: &dyn Interaction) -> Vec<u8> {
        self.tick();
        let result = self.dispatch(request, io);
        // The vault stays unlocked only while a token is live.
        self.tick();
        io.set_status(KeepaliveStatus::Processing);
        match result {
            Ok(None) => vec![CTAP2_OK],
            Ok(Some(v)) => {
                let mut out = vec![CTAP2_OK];
                out.extend(cbor::encode(&v));
                out
            }
            Err(e) => {
                tracing::debug!(status = ?e, "request refused");
                vec![e.code()]
            }
        }
    }

    fn dispatch(&mut self, request: &[u8], io: &dyn Interaction) -> CtapResult {
        let Some((&cmd, params)) = request.split_first() else {
            return Err(CtapError::InvalidLength);
        };
        // Any command but GetNextAssertion ends an assertion sequence, and
        // any command but credential management ends a listing.
        if cmd != command::GET_NEXT_ASSERTION {
            self.pending = None;
        }
        if cmd != command::CREDENTIAL_MANAGEMENT && cmd != command::CREDENTIAL_MANAGEMENT_PRE {
            self.listing = None;
        }
        match cmd {
            command::MAKE_CREDENTIAL => self.make_credential(params, io),
            command::GET_ASSERTION => self.get_assertion(params, io),
            command::GET_INFO => Ok(Some(self.get_info()?)),
            command::CLIENT_PIN => self.client_pin(params, io),
            command::GET_NEXT_ASSERTION => self.get_next_assertion(),
            command::RESET => self.reset(io),
            command::SELECTION => self.ask(Action::Select, "", None, io).map(|()| None),
            command::CREDENTIAL_MANAGEMENT | command::CREDENTIAL_MANAGEMENT_PRE => {
                self.credential_management(params)
            }
            command::LARGE_BLOBS => self.large_blobs(params),
            command::CONFIG => self.config(params),
            _ => Err(CtapError::InvalidCommand),
        }
    }

    fn get_info(&self) -> Result<Value, CtapError> {
        let algorithms = Value::Array(
            self.custody
                .algorithms()
                .into_iter()
                .map(|a| {
                    text_map([
                        ("alg", Value::Integer(a.cose().into())),
                        ("type", Value::Text("public-key".into())),
                    ])
                })
                .collect(),
        );
        let pin_set = self.pin_is_set()?;
        let mut options = vec![
            ("rk", Value::Bool(true)),
            ("up", Value::Bool(true)),
            ("plat", Value::Bool(false)),
            ("clientPin", Value::Bool(pin_set)),
            ("pinUvAuthToken", Value::Bool(true)),
            // Every signature needs verification; it cannot be turned off.
            ("alwaysUv", Value::Bool(true)),
            ("makeCredUvNotRqd", Value::Bool(false)),
            ("credMgmt", Value::Bool(true)),
            ("credentialMgmtPreview", Value::Bool(true)),
            ("perCredMgmtRO", Value::Bool(true)),
            ("largeBlobs", Value::Bool(true)),
            ("authnrCfg", Value::Bool(true)),
            ("setMinPINLength", Value::Bool(true)),
        ];
        if self.user.can_verify() {
            // Built-in verification is our own prompt asking for the PIN, so
            // it is "configured" exactly when a PIN is set.
            options.push(("uv", Value::Bool(pin_set)));
        }
        let force_change = self.meta_u8(pin::meta::FORCE_CHANGE)?.unwrap_or(0) != 0;
        let remaining = cred_mgmt::MAX_DISCOVERABLE.saturating_sub(self.store.count_discoverable()?);
        let mut fields = vec![
            (
                0x01,
                Value::Array(
                    ["FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1", "FIDO_2_2"]
                        .into_iter()
                        .map(|v| Value::Text(v.into()))
                        .collect(),
                ),
            ),
            (
                0x02,
                Value::Array(
                    extensions::SUPPORTED
                        .into_iter()
                        .map(|e| Value::Text(e.into()))
                        .collect(),
                ),
            ),
            (0x03, Value::Bytes(crate::AAGUID.to_vec())),
            (0x04, text_map(options)),
            (0x05, Value::Integer((self.max_msg_size() as u64).into())),
            (
                0x06,
                Value::Array(vec![Value::Integer(2.into()), Value::Integer(1.into())]),
            ),
            (0x08, Value::Integer((CREDENTIAL_ID_LEN as u64).into())),
            (0x09, Value::Array(vec![Value::Text("usb".into())])),
            (0x0A, algorithms),
            (
                0x0B,
                Value::Integer((large_blobs::MAX_SERIALIZED_LARGE_BLOB_ARRAY as u64).into()),
            ),
            (0x0C, Value::Bool(force_change)),
            (0x0D, Value::Integer(self.min_pin_length()?.into())),
            (0x0E, Value::Integer(crate::FIRMWARE_VERSION.into())),
            (
                0x0F,
                Value::Integer((extensions::MAX_CRED_BLOB_LEN as u64).into()),
            ),
            (
                0x10,
                Value::Integer((config::MAX_MIN_PIN_LENGTH_RPS as u64).into()),
            ),
            (0x14, Value::Integer(remaining.into())),
            (
                0x16,
                Value::Array(vec![Value::Text("packed".into()), Value::Text("none".into())]),
            ),
            (0x1D, Value::Integer((pin::MAX_PIN_BYTES as u64).into())),
        ];
        // Only the persistent token's holder can read (and so correlate)
        // the device identifier and the credential store's state.
        if let Some(token) = self.persistent_token()? {
            if let Some(id) = self.device_identifier()? {
                let state = self.cred_store_state(&id)?;
                fields.push((
                    0x19,
                    Value::Bytes(token.encrypt(persistent_token::INFO_IDENTIFIER, &id)),
                ));
                fields.push((
                    0x1E,
                    Value::Bytes(token.encrypt(persistent_token::INFO_CRED_STORE_STATE, &state)),
                ));
            }
        }
        Ok(int_map(fields))
    }

    /// The persistentPinUvAuthToken, if one was issued since the last PIN
    /// change or Reset.
    fn persistent_token(&self) -> Result<Option<PersistentToken>, CtapError> {
        let stored = self
            .store
            .get_meta(pin::meta::PERSISTENT_TOKEN)?
            .map(Zeroizing::new);
        Ok(stored.as_deref().and_then(|b| PersistentToken::from_bytes(b)))
    }

    fn device_identifier(&self) -> Result<Option<[u8; 16]>, CtapError> {
        let stored = self.store.get_meta(pin::meta::IDENTIFIER)?;
        Ok(stored.and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok()))
    }

    /// 16 bytes that change whenever a credential-management listing would
    /// (CTAP 2.2 §6.4 encCredStoreState), and say nothing else: a hash of
    /// the store's generation under the device identifier.
    fn cred_store_state(&self, identifier: &[u8; 16]) -> Result<[u8; 16], CtapError> {
        let generation = self.store.discoverable_generation()?;
        let digest = Sha256::new()
            .chain_update(b"LocalPasskey credential store state")
            .chain_update(identifier)
            .chain_update(generation.to_be_bytes())
            .finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Ok(out)
    }

    /// Ask the person, mapping every non-approval to its CTAP status.
    fn ask(
        &mut self,
        action: Action,
        rp_id: &str,
        user_name: Option<&str>,
        io: &dyn Interaction,
    ) -> Result<(), CtapError> {
        io.set_status(KeepaliveStatus::UpNeeded);
        let req = PresenceRequest {
            action,
            rp_id: rp_id.to_owned(),
            user_name: user_name.map(str::to_owned),
        };
        let answer = self.user.request_presence(&req, self.config.presence_timeout, io);
        io.set_status(KeepaliveStatus::Processing);
        match answer {
            Presence::Approved => Ok(()),
            Presence::Denied => Err(CtapError::OperationDenied),
            Presence::TimedOut => Err(CtapError::UserActionTimeout),
            Presence::Cancelled => Err(CtapError::KeepaliveCancel),
        }
    }

    /// CTAP 2.1 §6.1.2 steps 1–2 (and §6.2.2's): a zero-length
    /// pinUvAuthParam is the platform asking "touch to select, and tell me
    /// whether a PIN is set"; otherwise the protocol must be given and known.
    fn check_pin_uv_param(
        &mut self,
        param: &Option<Vec<u8>>,
        protocol: Option<u64>,
        action: Action,
        rp_id: &str,
        io: &dyn Interaction,
    ) -> Result<Option<ProtocolVersion>, CtapError> {
        let Some(param) = param else { return Ok(None) };
        if param.is_empty() {
            self.ask(action, rp_id, None, io)?;
            return Err(if self.pin_is_set()? {
                CtapError::PinInvalid
            } else {
                CtapError::PinNotSet
            });
        }
        let protocol = protocol.ok_or(CtapError::MissingParameter)?;
        ProtocolVersion::from_u64(protocol).map(Some)
    }

    /// The one discoverable credential of `rp_id` and the account name a
    /// prompt shows for it, if the RP has exactly one here and it has a
    /// name or display name to show.
    fn single_account(&self, rp_id: &str) -> Result<Option<(Vec<u8>, String)>, CtapError> {
        let creds = self.store.discoverable_for_rp(rp_id)?;
        Ok(match creds.as_slice() {
            [only] => account_label(only).map(|label| (only.id.clone(), label)),
            _ => None,
        })
    }

    /// alwaysUv: every MakeCredential and GetAssertion is verified, by a
    /// pinUvAuthToken the platform got from us or by our own prompt.
    #[allow(clippy::too_many_arguments)]
    fn verify_user(
        &mut self,
        version: Option<ProtocolVersion>,
        param: Option<&[u8]>,
        client_data_hash: &[u8],
        perm: u8,
        action: Action,
        rp_id: &str,
        user_name: Option<&str>,
        silent: bool,
        io: &dyn Interaction,
    ) -> Result<Verified, CtapError> {
        if !self.pin_is_set()? {
            // Nothing can verify the user yet: the platform should set a PIN.
            return Err(CtapError::PinNotSet);
        }
        if let (Some(version), Some(param)) = (version, param) {
            let now = self.clock.now();
            let grant = self
                .token
                .check(version, client_data_hash, param, perm, Some(rp_id), now)?;
            if !grant.user_verified {
                return Err(CtapError::PinAuthInvalid);
            }
            let present = grant.user_present;
            // The account the token's prompt named counts only while the
            // presence that approved it is unspent.
            let confirmed = grant.confirmed_credential.clone().filter(|_| grant.user_present);
            if !self.custody.is_unlocked() {
                return Err(CtapError::PinAuthInvalid);
            }
            return Ok(Verified {
                present,
                confirmed,
                prompted: false,
            });
        }
        // No token. A silent request never opens a prompt, and without a
        // prompt that can take a PIN the platform has to bring a token.
        if silent || !self.user.can_verify() {
            return Err(CtapError::PuatRequired);
        }
        self.built_in_uv(action, rp_id, user_name, io)?;
        Ok(Verified {
            present: true,
            confirmed: None,
            prompted: true,
        })
    }

    /// Our own prompt collects the PIN (performBuiltInUv); the custody checks it.
    fn built_in_uv(
        &mut self,
        action: Action,
        rp_id: &str,
        user_name: Option<&str>,
        io: &dyn Interaction,
    ) -> Result<(), CtapError> {
        let retries = self.retries()?;
        if retries == 0 {
            return Err(CtapError::UvBlocked);
        }
        if self.boot_failures()? >= pin::MAX_FAILURES_PER_BOOT {
            return Err(CtapError::PinAuthBlocked);
        }
        io.set_status(KeepaliveStatus::UpNeeded);
        let req = PresenceRequest {
            action,
            rp_id: rp_id.to_owned(),
            user_name: user_name.map(str::to_owned),
        };
        let answer = self
            .user
            .request_verification(&req, retries, self.config.presence_timeout, io);
        io.set_status(KeepaliveStatus::Processing);
        let pin = match answer {
            Verification::Pin(pin) => pin,
            Verification::Denied => return Err(CtapError::OperationDenied),
            Verification::TimedOut => return Err(CtapError::UserActionTimeout),
            Verification::Cancelled => return Err(CtapError::KeepaliveCancel),
        };
        match self.verify_pin_hash(&pin::pin_hash(pin.as_bytes())) {
            Err(CtapError::PinInvalid) => Err(CtapError::UvInvalid),
            Err(CtapError::PinBlocked) => Err(CtapError::UvBlocked),
            other => other,
        }
    }

    /// The one place a PIN is checked. The stored retry counter is
    /// decremented and persisted *before* the custody sees the PIN, so
    /// killing the process mid-check never refunds a try; a right PIN
    /// restores it afterwards. Where the custody counts too (the TPM's PIN
    /// index), the lower of the two counts is the truth: no copy of the
    /// store brings back a try the TPM has counted.
    fn verify_pin_hash(&mut self, hash: &[u8; 16]) -> Result<(), CtapError> {
        let vault = self
            .store
            .get_meta(pin::meta::VAULT)?
            .ok_or(CtapError::PinNotSet)?;
        let salt = self.store.get_meta(pin::meta::SALT)?.ok_or(CtapError::Other)?;
        let retries = self.retries()?;
        if retries == 0 {
            return Err(CtapError::PinBlocked);
        }
        let failures = self.boot_failures()?;
        if failures >= pin::MAX_FAILURES_PER_BOOT {
            return Err(CtapError::PinAuthBlocked);
        }
        self.store.set_meta(pin::meta::RETRIES, &[retries - 1])?;
        match self.custody.unlock(&vault, &pin::vault_auth(hash, &salt)) {
            Ok(replaced) => {
                if let Some(vault) = replaced {
                    self.store.set_meta(pin::meta::VAULT, &vault)?;
                }
                self.store.set_meta(pin::meta::RETRIES, &[pin::MAX_RETRIES])?;
                self.store.set_meta(pin::meta::BOOT_FAILURES, &[0])?;
                Ok(())
            }
            Err(CustodyError::AuthFailed) => {
                self.key_agreement.regenerate();
                self.store.set_meta(pin::meta::BOOT_FAILURES, &[failures + 1])?;
                tracing::warn!(retries_left = retries - 1, "wrong PIN");
                if retries - 1 == 0 {
                    Err(CtapError::PinBlocked)
                } else if failures + 1 >= pin::MAX_FAILURES_PER_BOOT {
                    Err(CtapError::PinAuthBlocked)
                } else {
                    Err(CtapError::PinInvalid)
                }
            }
            // The custody says no PIN will ever open this vault again.
            Err(e @ (CustodyError::PinBlocked | CustodyError::Revoked)) => {
                self.store.set_meta(pin::meta::RETRIES, &[0])?;
                Err(e.into())
            }
            // The custody never judged the PIN (TPM lockout, a broken blob, a
            // TPM error): the try was not used, so it is given back. A crash
            // before this line keeps it spent, which errs on the safe side.
            Err(e) => {
                self.store.set_meta(pin::meta::RETRIES, &[retries])?;
                Err(e.into())
            }
        }
    }

    /// A credential's sealed small secret (credBlob, largeBlobKey), in the
    /// clear for one answer. Values stored before they were sealed are the
    /// plain bytes (at most 32), which the custody does not recognise.
    fn secret_in_clear(&mut self, stored: Option<&[u8]>) -> Result<Option<Vec<u8>>, CtapError> {
        let Some(stored) = stored else { return Ok(None) };
        match self.custody.unseal(stored) {
            Ok(plain) => Ok(Some(plain)),
            Err(CustodyError::InvalidBlob) if stored.len() <= 32 => Ok(Some(stored.to_vec())),
            Err(e) => Err(e.into()),
        }
    }

    fn pin_is_set(&self) -> Result<bool, CtapError> {
        Ok(self.store.get_meta(pin::meta::VAULT)?.is_some())
    }

    fn meta_u8(&self, key: &str) -> Result<Option<u8>, CtapError> {
        Ok(self.store.get_meta(key)?.and_then(|v| v.first().copied()))
    }

    /// PIN retries left: the stored counter, and the custody's own where it
    /// counts (the TPM's PIN index), whichever is lower. The TPM's count
    /// being lower means someone tried PINs at the TPM without this daemon:
    /// said in the log, and shown to the person as the retries left.
    fn retries(&mut self) -> Result<u8, CtapError> {
        let Some(vault) = self.store.get_meta(pin::meta::VAULT)? else {
            return Ok(pin::MAX_RETRIES);
        };
        let stored = self.meta_u8(pin::meta::RETRIES)?.unwrap_or(pin::MAX_RETRIES);
        match self.custody.pin_retries(&vault) {
            Ok(Some(counted)) if counted < stored => {
                tracing::warn!(
                    tpm = counted,
                    ours = stored,
                    "the TPM counted wrong PINs that did not come through this authenticator"
                );
                Ok(counted)
            }
            Ok(_) => Ok(stored),
            Err(e) => Err(e.into()),
        }
    }

    fn boot_failures(&self) -> Result<u8, CtapError> {
        Ok(self.meta_u8(pin::meta::BOOT_FAILURES)?.unwrap_or(0))
    }

    fn make_credential(&mut self, params: &[u8], io: &dyn Interaction) -> CtapResult {
        let req = MakeCredentialRequest::decode(params)?;
        let version = self.check_pin_uv_param(
            &req.pin_uv_auth_param,
            req.pin_uv_auth_protocol,
            Action::Register,
            &req.rp.id,
            io,
        )?;
        // §6.1.2 step 3: the first of the platform's algorithms we support.
        let supported = self.custody.algorithms();
        let alg = req
            .pub_key_cred_params
            .iter()
            .filter(|(kind, _)| kind == "public-key")
            .find_map(|(_, alg)| Algorithm::from_cose(*alg).filter(|a| supported.contains(a)))
            .ok_or(CtapError::UnsupportedAlgorithm)?;
        // §6.1.2 step 5: "up" false is invalid for MakeCredential; "uv" true
        // needs built-in user verification.
        if req.options.up == Some(false) || (req.options.uv == Some(true) && !self.user.can_verify()) {
            return Err(CtapError::InvalidOption);
        }
        // We are not enterprise-attestation capable (§6.1.2 step 9).
        if req.enterprise_attestation.is_some() {
            return Err(CtapError::InvalidParameter);
        }
        let discoverable = req.options.rk.unwrap_or(false);
        let ext = extensions::McInputs::parse(req.extensions.clone())?;
        if discoverable && self.store.count_discoverable()? >= cred_mgmt::MAX_DISCOVERABLE {
            return Err(CtapError::KeyStoreFull);
        }
        // §12.3: a largeBlobKey belongs to a discoverable credential.
        if ext.large_blob_key && !discoverable {
            return Err(CtapError::InvalidOption);
        }
        let with_token = req.pin_uv_auth_param.is_some();
        let mut present = self
            .verify_user(
                version,
                req.pin_uv_auth_param.as_deref(),
                &req.client_data_hash,
                permission::MC,
                Action::Register,
                &req.rp.id,
                req.user.name.as_deref(),
                false,
                io,
            )?
            .present;

        // §6.1.2 step 12: a matching excludeList entry is only revealed after
        // user presence, so a page cannot probe silently.
        for d in req.exclude_list.iter().filter(|d| d.is_public_key()) {
            if let Some(c) = self.store.get(&d.id)? {
                // verify_user succeeded: the user is verified, so every credProtect level is visible.
                if c.rp_id == req.rp.id && extensions::visible(c.cred_protect, true, true) {
                    if !present {
                        self.ask(
                            Action::AlreadyRegistered,
                            &req.rp.id,
                            req.user.name.as_deref(),
                            io,
                        )?;
                    }
                    return Err(CtapError::CredentialExcluded);
                }
            }
        }

        if !present {
            self.ask(Action::Register, &req.rp.id, req.user.name.as_deref(), io)?;
            present = true;
        }
        if with_token && present {
            self.token.spend();
        }

        let key = self.custody.create_key(alg)?;
        let cose_key = cose_public_key(&key.public)?;
        let mut id = vec![0u8; CREDENTIAL_ID_LEN];
        OsRng.fill_bytes(&mut id);

        // Extensions (§12). Each one that was asked for says how it went.
        let mut outputs: Vec<(&str, Value)> = Vec::new();
        let cred_protect = ext.cred_protect.unwrap_or(extensions::protect::UV_OPTIONAL);
        if let Some(level) = ext.cred_protect {
            outputs.push((extensions::CRED_PROTECT, Value::Integer(level.into())));
        }
        let hmac_key = if ext.hmac_secret {
            outputs.push((extensions::HMAC_SECRET, Value::Bool(true)));
            Some(self.custody.create_hmac_key()?)
        } else {
            None
        };
        // CTAP 2.2 hmac-secret-mc: the first outputs now, computed exactly as
        // GetAssertion would with this (verified) user.
        if let (Some(input), Some(key)) = (&ext.hmac_secret_mc, &hmac_key) {
            let out = self.hmac_secret(input, key, true)?;
            outputs.push((extensions::HMAC_SECRET_MC, Value::Bytes(out)));
        }
        // credBlob and largeBlobKey are stored sealed by the custody under
        // the vault: a copy of the database alone reveals neither.
        let cred_blob = match ext.cred_blob {
            Some(blob) => {
                let fits = blob.len() <= extensions::MAX_CRED_BLOB_LEN;
                outputs.push((extensions::CRED_BLOB, Value::Bool(fits)));
                fits.then(|| self.custody.seal(&blob)).transpose()?
            }
            None => None,
        };
        let large_blob_key = ext.large_blob_key.then(|| {
            let mut k = vec![0u8; 32];
            OsRng.fill_bytes(&mut k);
            k
        });
        let sealed_large_blob_key = large_blob_key
            .as_deref()
            .map(|k| self.custody.seal(k))
            .transpose()?;
        if ext.min_pin_length {
            let min = self.min_pin_length()?;
            if self.min_pin_length_rps()?.contains(&req.rp.id) {
                outputs.push((extensions::MIN_PIN_LENGTH, Value::Integer(min.into())));
            }
        }
        let ext_bytes = extensions::encode_outputs(outputs);

        let cred = Credential {
            id,
            rp_id: req.rp.id.clone(),
            rp_name: req.rp.name.clone(),
            user_id: req.user.id.clone(),
            user_name: req.user.name.clone(),
            user_display_name: req.user.display_name.clone(),
            discoverable,
            key_blob: key.blob,
            public_key_cose: cose_key,
            sign_count: 0,
            created: self.clock.unix_millis(),
            last_used: None,
            cred_protect,
            hmac_key,
            cred_blob,
            large_blob_key: sealed_large_blob_key,
            // §12.9: recorded now, reported at GetAssertion; no output here.
            third_party_payment: ext.third_party_payment,
        };
        let auth_data = authdata::build(
            &cred.rp_id,
            flags::UP | flags::UV,
            cred.sign_count,
            Some((&cred.id, &cred.public_key_cose)),
            ext_bytes.as_deref(),
        );
        let wants_none = req
            .attestation_formats_preference
            .as_ref()
            .and_then(|p| p.first())
            .is_some_and(|f| f == "none");
        let (fmt, att_stmt) = if wants_none {
            ("none", text_map([]))
        } else {
            // Packed self-attestation: signed by the credential's own key, no
            // certificate, so it vouches for nothing but the key itself.
            let sig = self.sign(&cred.key_blob, &auth_data, &req.client_data_hash)?;
            (
                "packed",
                text_map([
                    ("alg", Value::Integer(alg.cose().into())),
                    ("sig", Value::Bytes(sig)),
                ]),
            )
        };
        // Stored (durably) before the answer leaves: an acknowledged credential is never lost.
        let replaced = self.store.insert(&cred)?;
        tracing::info!(rp = ?cred.rp_id, discoverable, replaced = replaced.len(), "credential created");
        let mut response = vec![
            (0x01, Value::Text(fmt.into())),
            (0x02, Value::Bytes(auth_data)),
            (0x03, att_stmt),
        ];
        if let Some(k) = large_blob_key {
            response.push((0x05, Value::Bytes(k)));
        }
        Ok(Some(int_map(response)))
    }

    /// WebAuthn's signature: over authenticatorData || clientDataHash, hashed
    /// as the key's algorithm says (the custody knows its keys).
    fn sign(&mut self, blob: &[u8], auth_data: &[u8], client_data_hash: &[u8]) -> Result<Vec<u8>, CtapError> {
        let message = [auth_data, client_data_hash].concat();
        Ok(self.custody.sign(blob, &message)?)
    }

    fn get_assertion(&mut self, params: &[u8], io: &dyn Interaction) -> CtapResult {
        let req = GetAssertionRequest::decode(params)?;
        let version = self.check_pin_uv_param(
            &req.pin_uv_auth_param,
            req.pin_uv_auth_protocol,
            Action::SignIn,
            &req.rp_id,
            io,
        )?;
        if req.options.rk.is_some() {
            return Err(CtapError::UnsupportedOption);
        }
        if req.options.uv == Some(true) && !self.user.can_verify() {
            return Err(CtapError::InvalidOption);
        }
        let up = req.options.up.unwrap_or(true);
        let with_token = req.pin_uv_auth_param.is_some();
        let ext = extensions::GaInputs::parse(req.extensions.clone())?;

        let from_allow_list = req.allow_list.as_ref().is_some_and(|l| !l.is_empty());
        let mut creds: VecDeque<Credential> = if from_allow_list {
            self.locate(&req.rp_id, req.allow_list.as_deref().unwrap_or_default())?
        } else {
            self.store.discoverable_for_rp(&req.rp_id)?.into()
        };
        // A silent pre-flight without a token (platforms probe allowLists and
        // excludeLists this way) learns only what credProtect lets anyone
        // learn: "none here" is answered as such; for anything else we would
        // need a signature, which needs verification (PUAT_REQUIRED below).
        if !up
            && !with_token
            && self.pin_is_set()?
            && !creds
                .iter()
                .any(|c| extensions::visible(c.cred_protect, false, from_allow_list))
        {
            return Err(CtapError::NoCredentials);
        }
        // Verification before the answer (§6.2.2 step 6); the search above
        // reveals nothing by itself.
        // With one match, our prompt names its account.
        let single: Option<(Vec<u8>, String)> = match (creds.len(), creds.front()) {
            (1, Some(only)) => account_label(only).map(|label| (only.id.clone(), label)),
            _ => None,
        };
        let single_name = single.as_ref().map(|(_, label)| label.as_str());
        let verified = self.verify_user(
            version,
            req.pin_uv_auth_param.as_deref(),
            &req.client_data_hash,
            permission::GA,
            Action::SignIn,
            &req.rp_id,
            single_name,
            !up,
            io,
        )?;
        let mut present = verified.present;
        // The credential whose account a prompt the person approved showed
        // them: the token's, or ours just now.
        let mut confirmed = if verified.prompted {
            single.as_ref().map(|(id, _)| id.clone())
        } else {
            verified.confirmed
        };
        // verify_user succeeded, so the user is verified: credProtect hides
        // nothing here, but the rule is applied all the same (§12.1).
        creds.retain(|c| extensions::visible(c.cred_protect, true, from_allow_list));
        if creds.is_empty() {
            return Err(CtapError::NoCredentials);
        }
        if up && !present {
            self.ask(Action::SignIn, &req.rp_id, single_name, io)?;
            present = true;
            confirmed = single.as_ref().map(|(id, _)| id.clone());
        }
        // userSelected (§6.2.2, 0x06): only without an allowList, only for a
        // single match, and only if that match is the account the person saw
        // named and approved; never on an assertion without presence.
        let user_selected = up
            && present
            && !from_allow_list
            && creds.len() == 1
            && confirmed.is_some_and(|id| creds.front().is_some_and(|c| c.id == id));
        if up && with_token {
            self.token.spend();
        }
        // UV is always set: no path above returns without verification.
        let flag_bits = if up && present {
            flags::UP | flags::UV
        } else {
            flags::UV
        };
        // With an allowList the first match answers; only discovery offers the rest.
        if from_allow_list {
            creds.truncate(1);
        }
        let total = creds.len();
        let Some(first) = creds.pop_front() else {
            return Err(CtapError::NoCredentials);
        };
        let response = self.assertion(
            &first,
            &req.client_data_hash,
            flag_bits,
            &ext,
            (total > 1).then_some(total),
            user_selected,
        )?;
        if !creds.is_empty() {
            self.pending = Some(PendingAssertions {
                rp_id: req.rp_id,
                client_data_hash: req.client_data_hash,
                flags: flag_bits,
                ext,
                remaining: creds,
                expires: self.clock.now() + NEXT_ASSERTION_WINDOW_MS,
            });
        }
        Ok(Some(response))
    }

    /// The allowList entries that are ours and bound to this RP, in list order, without repeats.
    fn locate(&self, rp_id: &str, list: &[CredentialDescriptor]) -> Result<VecDeque<Credential>, CtapError> {
        let mut found: VecDeque<Credential> = VecDeque::new();
        for d in list.iter().filter(|d| d.is_public_key()) {
            if d.id.len() != CREDENTIAL_ID_LEN || found.iter().any(|c| c.id == d.id) {
                continue;
            }
            if let Some(c) = self.store.get(&d.id)? {
                if c.rp_id == rp_id {
                    found.push_back(c);
                }
            }
        }
        Ok(found)
    }

    fn get_next_assertion(&mut self) -> CtapResult {
        let now = self.clock.now();
        let Some(mut pending) = self.pending.take() else {
            return Err(CtapError::NotAllowed);
        };
        if now > pending.expires {
            return Err(CtapError::NotAllowed);
        }
        let Some(cred) = pending.remaining.pop_front() else {
            return Err(CtapError::NotAllowed);
        };
        let response = self.assertion(
            &cred,
            &pending.client_data_hash,
            pending.flags,
            &pending.ext,
            None,
            false,
        )?;
        tracing::debug!(rp = ?pending.rp_id, left = pending.remaining.len(), "next assertion");
        if !pending.remaining.is_empty() {
            pending.expires = now + NEXT_ASSERTION_WINDOW_MS;
            self.pending = Some(pending);
        }
        Ok(Some(response))
    }

    /// Sign one assertion. The counter is incremented and persisted before
    /// the signature is made, so a counter value is never handed out twice.
    fn assertion(
        &mut self,
        cred: &Credential,
        client_data_hash: &[u8],
        flag_bits: u8,
        ext: &extensions::GaInputs,
        count: Option<usize>,
        user_selected: bool,
    ) -> Result<Value, CtapError> {
        let uv = flag_bits & flags::UV != 0;
        let mut outputs: Vec<(&str, Value)> = Vec::new();
        if let (Some(input), Some(key)) = (&ext.hmac_secret, &cred.hmac_key) {
            outputs.push((
                extensions::HMAC_SECRET,
                Value::Bytes(self.hmac_secret(input, key, uv)?),
            ));
        }
        if ext.cred_blob {
            let blob = self.secret_in_clear(cred.cred_blob.as_deref())?;
            outputs.push((extensions::CRED_BLOB, Value::Bytes(blob.unwrap_or_default())));
        }
        if ext.third_party_payment {
            outputs.push((
                extensions::THIRD_PARTY_PAYMENT,
                Value::Bool(cred.third_party_payment),
            ));
        }
        let ext_bytes = extensions::encode_outputs(outputs);
        let counter = self.store.increment_counter(&cred.id, self.clock.unix_millis())?;
        let auth_data = authdata::build(&cred.rp_id, flag_bits, counter, None, ext_bytes.as_deref());
        let sig = self.sign(&cred.key_blob, &auth_data, client_data_hash)?;
        let descriptor = CredentialDescriptor {
            kind: "public-key".into(),
            id: cred.id.clone(),
        };
        let mut entries = vec![
            (0x01, descriptor.to_value()),
            (0x02, Value::Bytes(auth_data)),
            (0x03, Value::Bytes(sig)),
        ];
        if cred.discoverable {
            // §6.2.2: name and displayName only after user verification
            // (which alwaysUv makes the rule); they let the platform offer
            // the account choice when several passkeys match.
            let mut user = vec![("id", Value::Bytes(cred.user_id.clone()))];
            if uv {
                if let Some(n) = &cred.user_name {
                    user.push(("name", Value::Text(n.clone())));
                }
                if let Some(d) = &cred.user_display_name {
                    user.push(("displayName", Value::Text(d.clone())));
                }
            }
            entries.push((0x04, text_map(user)));
        }
        if let Some(n) = count {
            entries.push((0x05, Value::Integer((n as u64).into())));
        }
        if user_selected {
            entries.push((0x06, Value::Bool(true)));
        }
        if ext.large_blob_key {
            if let Some(k) = self.secret_in_clear(cred.large_blob_key.as_deref())? {
                entries.push((0x07, Value::Bytes(k)));
            }
        }
        Ok(int_map(entries))
    }

    /// hmac-secret (§12.5): HMAC-SHA-256 of each salt with the credential's
    /// secret, which the custody holds (for the TPM: a keyed-hash object
    /// under the vault). Verified and unverified uses get different secrets,
    /// as the spec requires (CredRandomWithUV / WithoutUV): the custody's key
    /// is used with a one-byte domain prefix.
    fn hmac_secret(
        &mut self,
        input: &extensions::HmacSecretInput,
        key: &[u8],
        uv: bool,
    ) -> Result<Vec<u8>, CtapError> {
        let version = ProtocolVersion::from_u64(input.protocol)?;
        let shared = self
            .key_agreement
            .shared_secret(version, input.key_agreement.clone())?;
        shared.verify(&input.salt_enc, &input.salt_auth)?;
        let salts = zeroize::Zeroizing::new(shared.decrypt(&input.salt_enc)?);
        if salts.len() != 32 && salts.len() != 64 {
            return Err(CtapError::InvalidLength);
        }
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(64));
        for salt in salts.chunks(32) {
            let mut msg = Vec::with_capacity(33);
            msg.push(u8::from(uv));
            msg.extend_from_slice(salt);
            out.extend_from_slice(&self.custody.hmac(key, &msg)?);
        }
        shared.encrypt(&out)
    }

    fn reset(&mut self, io: &dyn Interaction) -> CtapResult {
        if self.clock.now().saturating_sub(self.powered_up_at) > RESET_WINDOW_MS {
            return Err(CtapError::NotAllowed);
        }
        self.ask(Action::Reset, "", None, io)?;
        // Revoke inside the custody first: if that fails nothing is erased,
        // so no copy of the data directory outlives a Reset that succeeded.
        let vault = self.store.get_meta(pin::meta::VAULT)?;
        self.custody.reset(vault.as_deref())?;
        self.store.delete_all()?;
        for key in pin::meta::ALL {
            self.store.delete_meta(key)?;
        }
        self.forget_large_blobs()?;
        self.token.revoke();
        self.key_agreement.regenerate();
        self.listing = None;
        tracing::warn!("authenticator reset: every credential erased");
        Ok(None)
    }
}

/// What verify_user found out.
struct Verified {
    /// The person's presence was collected (our prompt, or a token that carried it).
    present: bool,
    /// The credential the token's prompt named and the person approved.
    confirmed: Option<Vec<u8>>,
    /// Our prompt ran just now, showing the account name it was given.
    prompted: bool,
}

/// The account as a prompt shows it: the user name, with the display name
/// when it says something else; `None` when the credential has neither.
fn account_label(cred: &Credential) -> Option<String> {
    match (cred.user_name.as_deref(), cred.user_display_name.as_deref()) {
        (Some(name), Some(display)) if !display.is_empty() && display != name => {
            Some(format!("{name} ({display})"))
        }
        (Some(name), _) if !name.is_empty() => Some(name.to_owned()),
        (_, Some(display)) if !display.is_empty() => Some(display.to_owned()),
        _ => None,
    }
}

/// The COSE_Key of a credential's public key. coset emits kty(1), alg(3),
/// then the key parameters in the order given (-1, -2, -3): CTAP2 canonical order.
fn cose_public_key(public: &PublicKey) -> Result<Vec<u8>, CtapError> {
    let key = match public {
        PublicKey::Ec2 { alg, x, y } => {
            let (curve, cose_alg) = match alg {
                Algorithm::Es256 => (iana::EllipticCurve::P_256, iana::Algorithm::ES256),
                Algorithm::Es384 => (iana::EllipticCurve::P_384, iana::Algorithm::ES384),
                Algorithm::Es512 => (iana::EllipticCurve::P_521, iana::Algorithm::ES512),
                Algorithm::Rs256 | Algorithm::Ps256 => return Err(CtapError::Other),
            };
            coset::CoseKeyBuilder::new_ec2_pub_key(curve, x.clone(), y.clone())
                .algorithm(cose_alg)
                .build()
        }
        // RFC 8230: kty RSA (3), n (-1), e (-2).
        PublicKey::Rsa { alg, n, e } => coset::CoseKeyBuilder::new()
            .key_type(iana::KeyType::RSA)
            .algorithm(match alg {
                Algorithm::Ps256 => iana::Algorithm::PS256,
                _ => iana::Algorithm::RS256,
            })
            .param(iana::RsaKeyParameter::N as i64, Value::Bytes(n.clone()))
            .param(iana::RsaKeyParameter::E as i64, Value::Bytes(e.clone()))
            .build(),
    };
    key.to_vec().map_err(|_| CtapError::Other)
}

mod client_pin;
mod config;
mod cred_mgmt;
mod large_blobs;
#[cfg(test)]
mod tests;
