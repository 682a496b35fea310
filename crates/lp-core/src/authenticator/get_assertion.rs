//! authenticatorGetAssertion (0x02) and authenticatorGetNextAssertion
//! (0x08), CTAP 2.2 §6.2 and §6.3.

use super::verification::account_label;
use super::verification::{Account, UserCheck};
use super::{Authenticator, CtapResult, CREDENTIAL_ID_LEN, NEXT_ASSERTION_WINDOW_MS};
use crate::activity::{Act, Outcome};
use crate::authdata::{self, flags};
use crate::clock::Millis;
use crate::extensions;
use crate::pin::permission;
use crate::pin_protocol::ProtocolVersion;
use crate::status::CtapError;
use crate::store::Credential;
use crate::types::get_assertion::{Request as GetAssertionRequest, Response};
use crate::types::{CredentialDescriptor, UserEntity};
use crate::user::{Action, Interaction};
use ciborium::value::Value;
use std::collections::VecDeque;

impl Authenticator {
    pub(super) fn get_assertion(&mut self, params: &[u8], io: &dyn Interaction) -> CtapResult {
        let mut req = GetAssertionRequest::decode(params)?;
        let auth = self.pin_uv_auth(
            req.pin_uv_auth_param.take(),
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
            && auth.is_none()
            && self.pin().is_set()?
            && !creds
                .iter()
                .any(|c| extensions::visible(c.cred_protect, false, from_allow_list))
        {
            return Err(CtapError::NoCredentials);
        }
        // Verification before the answer (§6.2.2 step 6); the search above
        // reveals nothing by itself.
        // With one match, our prompt names its account; with several and no
        // allowList, a prompt that can list them lets the person pick one
        // (step 12.2.3, an authenticator with a display).
        let single: Option<(Vec<u8>, String)> = match (creds.len(), creds.front()) {
            (1, Some(only)) => account_label(only).map(|label| (only.id.clone(), label)),
            _ => None,
        };
        let listed: Vec<Credential> = if up && !from_allow_list && creds.len() > 1 && self.user.can_choose() {
            creds
                .iter()
                .filter(|c| extensions::visible(c.cred_protect, true, false))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let account = match &single {
            Some((id, label)) => Account::Credential(id, label),
            None if listed.len() > 1 => Account::Choice(&listed),
            None => Account::None,
        };
        let check = UserCheck {
            permission: permission::GA,
            action: Action::SignIn,
            rp_id: &req.rp_id,
            client_data_hash: &req.client_data_hash,
            account,
            silent: !up,
        };
        let chooser = matches!(account, Account::Choice(_));
        let mut consent = self
            .verify_user(auth.as_ref(), &check, io)
            .map_err(|e| declined_if_late(chooser, e))?;
        // verify_user succeeded, so the user is verified: credProtect hides
        // nothing here, but the rule is applied all the same (§12.1).
        creds.retain(|c| extensions::visible(c.cred_protect, true, from_allow_list));
        if creds.is_empty() {
            return Err(CtapError::NoCredentials);
        }
        if up {
            self.make_present(&mut consent, Action::SignIn, &check, io)
                .map_err(|e| declined_if_late(chooser, e))?;
            // The person picked one of several accounts in our prompt (here,
            // or when the token was issued): that one answers, alone.
            if !from_allow_list && creds.len() > 1 {
                if let Some(pos) = creds.iter().position(|c| consent.picked(&c.id)) {
                    creds = creds.remove(pos).into_iter().collect();
                }
            }
        }
        // userSelected (§6.2.2, 0x06): only without an allowList, only for a
        // single answer, and only if it is the account the person saw named
        // and approved, or picked; never on an assertion without presence.
        let user_selected = up
            && !from_allow_list
            && creds.len() == 1
            && creds.front().is_some_and(|c| consent.selected(&c.id));
        if up && auth.is_some() {
            self.pin.token().spend();
        }
        // UV is always set: no path above returns without verification.
        let flag_bits = if up && consent.present {
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
    pub(super) fn locate(
        &self,
        rp_id: &str,
        list: &[CredentialDescriptor],
    ) -> Result<VecDeque<Credential>, CtapError> {
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

    pub(super) fn get_next_assertion(&mut self) -> CtapResult {
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
    pub(super) fn assertion(
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
        // Without the person present (up=false) no site may accept the
        // signature as a sign-in; browsers send such checks before one.
        let act = if flag_bits & flags::UP != 0 {
            Act::SignIn
        } else {
            Act::Check
        };
        let account = account_label(cred);
        self.note(act, &cred.rp_id, account.as_deref(), Outcome::Approved);
        let counter = self.store.increment_counter(&cred.id, self.clock.unix_millis())?;
        let auth_data = authdata::build(&cred.rp_id, flag_bits, counter, None, ext_bytes.as_deref());
        let sig = self.sign(&cred.key_blob, &auth_data, client_data_hash)?;
        // §6.2.2: name and displayName only after user verification (which
        // alwaysUv makes the rule); they let the platform offer the account
        // choice when several passkeys match.
        let user = cred.discoverable.then(|| UserEntity {
            id: cred.user_id.clone(),
            name: cred.user_name.clone().filter(|_| uv),
            display_name: cred.user_display_name.clone().filter(|_| uv),
        });
        let large_blob_key = if ext.large_blob_key {
            self.secret_in_clear(cred.large_blob_key.as_deref())?
        } else {
            None
        };
        let response = Response {
            credential: CredentialDescriptor {
                kind: "public-key".into(),
                id: cred.id.clone(),
            },
            auth_data,
            signature: sig,
            user,
            number_of_credentials: count,
            user_selected,
            large_blob_key,
        };
        Ok(response.into())
    }

    /// hmac-secret (§12.5): HMAC-SHA-256 of each salt with the credential's
    /// secret, which the custody holds (for the TPM: a keyed-hash object
    /// under the vault). Verified and unverified uses get different secrets,
    /// as the spec requires (CredRandomWithUV / WithoutUV): the custody's key
    /// is used with a one-byte domain prefix.
    pub(super) fn hmac_secret(
        &mut self,
        input: &extensions::HmacSecretInput,
        key: &[u8],
        uv: bool,
    ) -> Result<Vec<u8>, CtapError> {
        let version = ProtocolVersion::from_u64(input.protocol)?;
        let shared = self
            .pin
            .key_agreement()
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
}

/// CTAP 2.1 §6.2.2 step 12.2.3.3: a person who takes too long to choose an
/// account has declined to choose one.
fn declined_if_late(chooser: bool, e: CtapError) -> CtapError {
    match e {
        CtapError::UserActionTimeout if chooser => CtapError::OperationDenied,
        other => other,
    }
}

/// What GetNextAssertion continues (CTAP 2.1 §6.2 step 14 onwards).
pub(super) struct PendingAssertions {
    pub(super) rp_id: String,
    pub(super) client_data_hash: Vec<u8>,
    pub(super) flags: u8,
    pub(super) ext: extensions::GaInputs,
    pub(super) remaining: VecDeque<Credential>,
    pub(super) expires: Millis,
}
