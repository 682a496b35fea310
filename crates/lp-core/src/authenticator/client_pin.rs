//! authenticatorClientPIN (0x06), CTAP 2.1 §6.5.5: the platform side of the
//! PIN, protocols One and Two.
//!
//! Every PIN that arrives is checked by `verify_pin_hash`, i.e. by the
//! custody's vault (the TPM), never against anything stored on disk.

use super::verification::account_choice;
use super::{Authenticator, CtapResult};
use crate::activity::{Act, Outcome};
use crate::persistent_token::PersistentToken;
use crate::pin::{self, permission};
use crate::pin_protocol::SharedSecret;
use crate::status::CtapError;
use crate::types::client_pin::{Request, Response, Subcommand};
use crate::user::{Action, Interaction, PresenceRequest};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// The permissions this authenticator can grant. Bio enrolment (be) is
/// refused with CTAP2_ERR_UNAUTHORIZED_PERMISSION: there are no biometrics.
const SUPPORTED_PERMISSIONS: u8 =
    permission::MC | permission::GA | permission::CM | permission::LBW | permission::ACFG | permission::PCMR;

impl Authenticator {
    pub(super) fn client_pin(&mut self, params: &[u8], io: &dyn Interaction) -> CtapResult {
        let p = Request::decode(params)?;
        match p.subcommand {
            Subcommand::SetPin => self.subject(Act::SetPin, "", None, false),
            Subcommand::ChangePin => self.subject(Act::ChangePin, "", None, false),
            Subcommand::GetPinToken | Subcommand::GetPinUvAuthTokenUsingPinWithPermissions => {
                let rp_id = p.rp_id.clone().unwrap_or_default();
                self.subject(Act::Unlock, &rp_id, None, false);
            }
            _ => {}
        }
        let answer = match p.subcommand {
            Subcommand::GetPinRetries => Response {
                pin_retries: Some(self.pin().retries()?),
                power_cycle_state: Some(self.pin().boot_failures()? >= pin::MAX_FAILURES_PER_BOOT),
                ..Response::default()
            },
            // Built-in verification *is* the PIN typed into our prompt, so
            // it shares the PIN's counter.
            Subcommand::GetUvRetries => Response {
                uv_retries: Some(self.pin().retries()?),
                ..Response::default()
            },
            Subcommand::GetKeyAgreement => {
                p.version()?;
                Response {
                    key_agreement: Some(self.pin.key_agreement().public_cose()),
                    ..Response::default()
                }
            }
            Subcommand::SetPin => return self.set_pin(p),
            Subcommand::ChangePin => return self.change_pin(p),
            Subcommand::GetPinToken => {
                if p.permissions.is_some() || p.rp_id.is_some() {
                    return Err(CtapError::InvalidParameter);
                }
                // The legacy command grants what a CTAP 2.0 token could do.
                // A right PIN that must change: CTAP2_ERR_PIN_INVALID
                // (§6.5.5.7.1 step 11).
                let perms = permission::MC | permission::GA;
                self.token_using_pin(p, perms, None, CtapError::PinInvalid)?
            }
            Subcommand::GetPinUvAuthTokenUsingPinWithPermissions => {
                let (perms, rp_id) = Self::requested_permissions(&p)?;
                // Here the answer tells the platform to ask for a new PIN
                // (§6.5.5.7.2 step 11).
                self.token_using_pin(p, perms, rp_id, CtapError::PinPolicyViolation)?
            }
            Subcommand::GetPinUvAuthTokenUsingUvWithPermissions => self.token_using_uv(p, io)?,
        };
        Ok(Some(answer.into()))
    }

    fn shared_secret(&self, p: &mut Request) -> Result<SharedSecret, CtapError> {
        let version = p.version()?;
        let platform_key = p.key_agreement.take().ok_or(CtapError::MissingParameter)?;
        self.pin.key_agreement().shared_secret(version, platform_key)
    }

    /// §6.5.5.7: permissions must be present and non-zero; mc and ga need an RP ID.
    fn requested_permissions(p: &Request) -> Result<(u8, Option<String>), CtapError> {
        let perms = p.permissions.ok_or(CtapError::MissingParameter)?;
        if perms == 0 {
            return Err(CtapError::InvalidParameter);
        }
        let perms = u8::try_from(perms).map_err(|_| CtapError::UnauthorizedPermission)?;
        if perms & !SUPPORTED_PERMISSIONS != 0 {
            return Err(CtapError::UnauthorizedPermission);
        }
        // pcmr makes the persistent token, which carries nothing else: a
        // long-lived grant must not widen into one that writes or signs.
        if perms & permission::PCMR != 0 && perms != permission::PCMR {
            return Err(CtapError::UnauthorizedPermission);
        }
        if perms & (permission::MC | permission::GA) != 0 && p.rp_id.is_none() {
            return Err(CtapError::MissingParameter);
        }
        Ok((perms, p.rp_id.clone()))
    }

    fn set_pin(&mut self, mut p: Request) -> CtapResult {
        let (Some(new_pin_enc), Some(param)) = (p.new_pin_enc.take(), p.pin_uv_auth_param.take()) else {
            p.version()?;
            return Err(CtapError::MissingParameter);
        };
        p.version()?;
        // §6.5.5.5 step 3, before the key agreement is even looked at.
        if self.pin().is_set()? {
            return Err(CtapError::PinAuthInvalid);
        }
        let shared = self.shared_secret(&mut p)?;
        shared.verify(&new_pin_enc, &param)?;
        let padded = Zeroizing::new(shared.decrypt(&new_pin_enc)?);
        let new_pin = pin::parse_new_pin(&padded, self.min_pin_length()? as usize)?;
        self.pin().install(&new_pin)?;
        self.note(Act::SetPin, "", None, Outcome::Approved);
        Ok(None)
    }

    fn change_pin(&mut self, mut p: Request) -> CtapResult {
        let (Some(new_pin_enc), Some(pin_hash_enc), Some(param)) = (
            p.new_pin_enc.take(),
            p.pin_hash_enc.take(),
            p.pin_uv_auth_param.take(),
        ) else {
            p.version()?;
            return Err(CtapError::MissingParameter);
        };
        let shared = self.shared_secret(&mut p)?;
        if !self.pin().is_set()? {
            return Err(CtapError::PinNotSet);
        }
        if self.pin().retries()? == 0 {
            return Err(CtapError::PinBlocked);
        }
        let mut message = new_pin_enc.clone();
        message.extend_from_slice(&pin_hash_enc);
        shared.verify(&message, &param)?;
        let old_hash = Self::decrypt_pin_hash(&shared, &pin_hash_enc)?;
        self.pin().check(&old_hash)?;

        let padded = Zeroizing::new(shared.decrypt(&new_pin_enc)?);
        let new_pin = pin::parse_new_pin(&padded, self.min_pin_length()? as usize)?;
        self.pin().replace(&old_hash, &new_pin)?;
        self.note(Act::ChangePin, "", None, Outcome::Approved);
        Ok(None)
    }

    fn decrypt_pin_hash(shared: &SharedSecret, pin_hash_enc: &[u8]) -> Result<[u8; 16], CtapError> {
        let plain = Zeroizing::new(shared.decrypt(pin_hash_enc)?);
        <[u8; 16]>::try_from(plain.as_slice()).map_err(|_| CtapError::PinAuthInvalid)
    }

    /// `must_change` is the subcommand's answer to the right PIN while
    /// forcePINChange is set. The PIN was verified all the same, so the
    /// retry counters stay reset (step 10 comes before step 11) and no
    /// token is issued.
    fn token_using_pin(
        &mut self,
        mut p: Request,
        perms: u8,
        rp_id: Option<String>,
        must_change: CtapError,
    ) -> Result<Response, CtapError> {
        let pin_hash_enc = p.pin_hash_enc.take();
        let shared = self.shared_secret(&mut p)?;
        let pin_hash_enc = pin_hash_enc.ok_or(CtapError::MissingParameter)?;
        if !self.pin().is_set()? {
            return Err(CtapError::PinNotSet);
        }
        if self.pin().retries()? == 0 {
            return Err(CtapError::PinBlocked);
        }
        let hash = Self::decrypt_pin_hash(&shared, &pin_hash_enc)?;
        self.pin().check(&hash)?;
        if self.pin().must_change()? {
            tracing::info!("right PIN, but it must be changed first (forcePINChange)");
            return Err(must_change);
        }
        if perms == permission::PCMR {
            return self.issue_persistent_token(&shared);
        }
        let now = self.clock.now();
        let token = *self.pin.token().issue(shared.version(), perms, rp_id, false, now);
        token_response(&shared, &token)
    }

    /// A new persistentPinUvAuthToken replaces the last one. The ordinary
    /// token is left as it is, and the vault locks again once nothing
    /// verified is running: reading the store needs no key.
    fn issue_persistent_token(&mut self, shared: &SharedSecret) -> Result<Response, CtapError> {
        if self.device_identifier()?.is_none() {
            let mut id = [0u8; 16];
            OsRng.fill_bytes(&mut id);
            self.store.set_meta(pin::meta::IDENTIFIER, &id)?;
        }
        let token = PersistentToken::issue(shared.version());
        self.store
            .set_meta(pin::meta::PERSISTENT_TOKEN, &token.to_bytes())?;
        tracing::info!("persistent token issued (read-only credential management)");
        token_response(shared, token.value())
    }

    fn token_using_uv(&mut self, mut p: Request, io: &dyn Interaction) -> Result<Response, CtapError> {
        let shared = self.shared_secret(&mut p)?;
        let (perms, rp_id) = Self::requested_permissions(&p)?;
        if !self.user.can_verify() || !self.pin().is_set()? {
            return Err(CtapError::NotAllowed);
        }
        if self.pin().retries()? == 0 {
            return Err(CtapError::UvBlocked);
        }
        // A token for signing in at an RP that has exactly one passkey here:
        // the prompt names that account, so approving it is the person
        // choosing it (what `userSelected` reports at GetAssertion).
        let named = match (&rp_id, perms & permission::GA != 0) {
            (Some(rp), true) => self.single_account(rp)?,
            _ => None,
        };
        // A token only for signing in at an RP with several: a prompt that
        // can list them lets the person pick the account here, and the
        // token remembers the pick as it would the one named account.
        let choices = match (&rp_id, named.is_none() && perms & permission::GA != 0) {
            (Some(rp), true) if perms & permission::MC == 0 => self.account_choices(rp)?,
            _ => Vec::new(),
        };
        // A token only for signing in, with the account named: the prompt
        // says exactly that ("sign in", this site, this account).
        let action = if (named.is_some() || !choices.is_empty()) && perms & permission::MC == 0 {
            Action::SignIn
        } else {
            Action::Unlock
        };
        let mut req = PresenceRequest::new(
            action,
            rp_id.as_deref().unwrap_or(""),
            named.as_ref().map(|(_, label)| label.as_str()),
        );
        req.accounts = choices.iter().map(account_choice).collect();
        let chosen = self.verify_with_prompt(&req, io)?;
        if perms == permission::PCMR {
            return self.issue_persistent_token(&shared);
        }
        let now = self.clock.now();
        // The person typed their PIN into our prompt: they were present.
        let token = *self.pin.token().issue(shared.version(), perms, rp_id, true, now);
        if let Some((id, _)) = named {
            self.pin.token().confirm_credential(id);
        } else if let Some(picked) = chosen.and_then(|i| choices.get(i)) {
            self.pin.token().choose_credential(picked.id.clone());
        }
        token_response(&shared, &token)
    }
}

/// The token, encrypted to the platform's shared secret.
fn token_response(shared: &SharedSecret, token: &[u8; 32]) -> Result<Response, CtapError> {
    Ok(Response {
        pin_uv_auth_token: Some(shared.encrypt(token)?),
        ..Response::default()
    })
}
