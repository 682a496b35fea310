//! Verifying the user: the pinUvAuthParam of MakeCredential and
//! GetAssertion, our own prompt (built-in UV), and the one place a PIN is
//! checked against the custody, with the retry counters around it.

use super::pin_state::PinUvAuth;
use super::Authenticator;
use crate::custody::CustodyError;
use crate::pin;
use crate::pin_protocol::ProtocolVersion;
use crate::status::CtapError;
use crate::store::Credential;
use crate::user::{AccountChoice, Action, Interaction, KeepaliveStatus, PresenceRequest, Verification};

impl Authenticator {
    /// CTAP 2.1 §6.1.2 steps 1–2 (and §6.2.2's): a zero-length
    /// pinUvAuthParam is the platform asking "touch to select, and tell me
    /// whether a PIN is set"; otherwise the protocol must be given and known.
    pub(super) fn pin_uv_auth(
        &mut self,
        param: Option<Vec<u8>>,
        protocol: Option<u64>,
        action: Action,
        rp_id: &str,
        io: &dyn Interaction,
    ) -> Result<Option<PinUvAuth>, CtapError> {
        let Some(param) = param else { return Ok(None) };
        if param.is_empty() {
            self.ask(action, rp_id, None, io)?;
            return Err(if self.pin().is_set()? {
                CtapError::PinInvalid
            } else {
                CtapError::PinNotSet
            });
        }
        let protocol = ProtocolVersion::from_u64(protocol.ok_or(CtapError::MissingParameter)?)?;
        Ok(Some(PinUvAuth { param, protocol }))
    }

    /// The one discoverable credential of `rp_id` and the account name a
    /// prompt shows for it, if the RP has exactly one here and it has a
    /// name or display name to show.
    pub(super) fn single_account(&self, rp_id: &str) -> Result<Option<(Vec<u8>, String)>, CtapError> {
        let creds = self.store.discoverable_for_rp(rp_id)?;
        Ok(match creds.as_slice() {
            [only] => account_label(only).map(|label| (only.id.clone(), label)),
            _ => None,
        })
    }

    /// Every discoverable credential of `rp_id`, for a prompt to list, when
    /// there are several and the prompt can let the person choose; else
    /// none (one is named instead, or the platform chooses).
    pub(super) fn account_choices(&self, rp_id: &str) -> Result<Vec<Credential>, CtapError> {
        if !self.user.can_choose() {
            return Ok(Vec::new());
        }
        let creds = self.store.discoverable_for_rp(rp_id)?;
        Ok(if creds.len() > 1 { creds } else { Vec::new() })
    }

    /// alwaysUv: every MakeCredential and GetAssertion is verified, by a
    /// pinUvAuthToken the platform got from us or by our own prompt.
    pub(super) fn verify_user(
        &mut self,
        auth: Option<&PinUvAuth>,
        check: &UserCheck<'_>,
        io: &dyn Interaction,
    ) -> Result<Consent, CtapError> {
        if !self.pin().is_set()? {
            // Nothing can verify the user yet: the platform should set a PIN.
            return Err(CtapError::PinNotSet);
        }
        if let Some(auth) = auth {
            let now = self.clock.now();
            let grant = self.pin.verify(
                auth,
                check.client_data_hash,
                check.permission,
                Some(check.rp_id),
                now,
            )?;
            if !grant.user_verified {
                return Err(CtapError::PinAuthInvalid);
            }
            // The account the token's prompt named counts only while the
            // presence that approved it is unspent.
            let consent = Consent {
                present: grant.user_present,
                approved: grant.confirmed_credential.clone().filter(|_| grant.user_present),
                chosen: grant.credential_chosen,
            };
            if !self.custody.is_unlocked() {
                return Err(CtapError::PinAuthInvalid);
            }
            return Ok(consent);
        }
        // No token. A silent request never opens a prompt, and without a
        // prompt that can take a PIN the platform has to bring a token.
        if check.silent || !self.user.can_verify() {
            return Err(CtapError::PuatRequired);
        }
        let chosen = self.verify_with_prompt(&check.request(check.action), io)?;
        Ok(Consent {
            present: true,
            approved: check.approved(chosen),
            chosen: chosen.is_some(),
        })
    }

    /// Collect the person's presence if the verification did not: our
    /// prompt for `action`, naming the check's account (or listing its
    /// accounts), which the person then approved (or chose).
    pub(super) fn make_present(
        &mut self,
        consent: &mut Consent,
        action: Action,
        check: &UserCheck<'_>,
        io: &dyn Interaction,
    ) -> Result<(), CtapError> {
        if !consent.present {
            let chosen = self.ask_for(&check.request(action), io)?;
            consent.present = true;
            consent.approved = check.approved(chosen);
            consent.chosen = chosen.is_some();
        }
        Ok(())
    }

    /// Our own prompt collects the PIN (performBuiltInUv); the custody
    /// checks it. `req` may list accounts: the answer is the one the person
    /// chose, if any.
    pub(super) fn verify_with_prompt(
        &mut self,
        req: &PresenceRequest,
        io: &dyn Interaction,
    ) -> Result<Option<usize>, CtapError> {
        let retries = self.pin().retries()?;
        if retries == 0 {
            return Err(CtapError::UvBlocked);
        }
        if self.pin().boot_failures()? >= pin::MAX_FAILURES_PER_BOOT {
            return Err(CtapError::PinAuthBlocked);
        }
        self.asking(req.action, &req.rp_id, req.user_name.as_deref());
        io.set_status(KeepaliveStatus::UpNeeded);
        let answer = self
            .user
            .request_verification(req, retries, self.config.presence_timeout, io);
        io.set_status(KeepaliveStatus::Processing);
        let (pin, chosen) = match answer {
            Verification::Pin { pin, chosen } => (pin, chosen),
            Verification::Refused(r) => return Err(r.into()),
        };
        // A prompt that chose what it was not offered is refused before its
        // PIN is tried: its answer is not the person's.
        let chosen = super::checked_choice(req, chosen)?;
        match self.pin().check(&pin::pin_hash(pin.as_bytes())) {
            Err(CtapError::PinInvalid) => Err(CtapError::UvInvalid),
            Err(CtapError::PinBlocked) => Err(CtapError::UvBlocked),
            other => other.map(|()| chosen),
        }
    }

    /// A credential's sealed small secret (credBlob, largeBlobKey), in the
    /// clear for one answer. Values stored before they were sealed are the
    /// plain bytes (at most 32), which the custody does not recognise.
    pub(super) fn secret_in_clear(&mut self, stored: Option<&[u8]>) -> Result<Option<Vec<u8>>, CtapError> {
        let Some(stored) = stored else { return Ok(None) };
        match self.custody.unseal(stored) {
            Ok(plain) => Ok(Some(plain)),
            Err(CustodyError::InvalidBlob) if stored.len() <= 32 => Ok(Some(stored.to_vec())),
            Err(e) => Err(e.into()),
        }
    }
}

/// What a command asks the person to verify.
pub(super) struct UserCheck<'a> {
    /// The token permission the command needs (mc or ga).
    pub permission: u8,
    pub action: Action,
    pub rp_id: &'a str,
    /// What a pinUvAuthParam is made over.
    pub client_data_hash: &'a [u8],
    /// The account our prompt names: the user of MakeCredential, the one
    /// credential a sign-in found (its id, then its label), or the several
    /// it lists for the person to choose from.
    pub account: Account<'a>,
    /// `up` false: no prompt may open.
    pub silent: bool,
}

#[derive(Clone, Copy)]
pub(super) enum Account<'a> {
    None,
    Named(&'a str),
    Credential(&'a [u8], &'a str),
    /// Several credentials, most recent first: the prompt lists them, and
    /// the one the person picks is the one they approved.
    Choice(&'a [Credential]),
}

impl UserCheck<'_> {
    fn account_label(&self) -> Option<&str> {
        match self.account {
            Account::None | Account::Choice(_) => None,
            Account::Named(label) | Account::Credential(_, label) => Some(label),
        }
    }

    /// What our prompt shows for `action`.
    fn request(&self, action: Action) -> PresenceRequest {
        let mut req = PresenceRequest::new(action, self.rp_id, self.account_label());
        if let Account::Choice(creds) = self.account {
            req.accounts = creds.iter().map(account_choice).collect();
        }
        req
    }

    /// The credential the person approved, once the prompt answered with
    /// `chosen` (already checked against what it was offered).
    fn approved(&self, chosen: Option<usize>) -> Option<Vec<u8>> {
        match (self.account, chosen) {
            (Account::Credential(id, _), _) => Some(id.to_vec()),
            (Account::Choice(creds), Some(i)) => creds.get(i).map(|c| c.id.clone()),
            _ => None,
        }
    }
}

/// What the person has granted so far for one request; the presence prompt
/// adds to it.
pub(super) struct Consent {
    /// The person's presence was collected (our prompt, or a token that carried it).
    pub present: bool,
    /// The credential whose account a prompt the person approved named, or
    /// the one they picked from its list.
    pub approved: Option<Vec<u8>>,
    /// `approved` was picked from a list of several accounts.
    pub chosen: bool,
}

impl Consent {
    /// CTAP 2.1 §6.2.2 userSelected: the person saw this credential's
    /// account named, and approved it.
    pub(super) fn selected(&self, credential_id: &[u8]) -> bool {
        self.present && self.approved.as_deref() == Some(credential_id)
    }

    /// The person picked this credential among several (§6.2.2 step
    /// 12.2.3): it answers alone, whatever else the RP has here.
    pub(super) fn picked(&self, credential_id: &[u8]) -> bool {
        self.chosen && self.selected(credential_id)
    }
}

/// A credential's account as a prompt lists it among others.
pub(super) fn account_choice(cred: &Credential) -> AccountChoice {
    AccountChoice {
        user_name: cred.user_name.clone(),
        display_name: cred.user_display_name.clone(),
    }
}

/// The account as a prompt shows it: the user name, with the display name
/// when it says something else; `None` when the credential has neither.
pub(super) fn account_label(cred: &Credential) -> Option<String> {
    match (cred.user_name.as_deref(), cred.user_display_name.as_deref()) {
        (Some(name), Some(display)) if !display.is_empty() && display != name => {
            Some(format!("{name} ({display})"))
        }
        (Some(name), _) if !name.is_empty() => Some(name.to_owned()),
        (_, Some(display)) if !display.is_empty() => Some(display.to_owned()),
        _ => None,
    }
}
