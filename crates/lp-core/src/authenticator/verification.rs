//! Verifying the user: the pinUvAuthParam of MakeCredential and
//! GetAssertion, our own prompt (built-in UV), and the one place a PIN is
//! checked against the custody, with the retry counters around it.

use super::Authenticator;
use crate::custody::CustodyError;
use crate::pin;
use crate::pin_protocol::ProtocolVersion;
use crate::status::CtapError;
use crate::store::Credential;
use crate::user::{Action, Interaction, KeepaliveStatus, PresenceRequest, Verification};

impl Authenticator {
    /// CTAP 2.1 §6.1.2 steps 1–2 (and §6.2.2's): a zero-length
    /// pinUvAuthParam is the platform asking "touch to select, and tell me
    /// whether a PIN is set"; otherwise the protocol must be given and known.
    pub(super) fn check_pin_uv_param(
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
    pub(super) fn single_account(&self, rp_id: &str) -> Result<Option<(Vec<u8>, String)>, CtapError> {
        let creds = self.store.discoverable_for_rp(rp_id)?;
        Ok(match creds.as_slice() {
            [only] => account_label(only).map(|label| (only.id.clone(), label)),
            _ => None,
        })
    }

    /// alwaysUv: every MakeCredential and GetAssertion is verified, by a
    /// pinUvAuthToken the platform got from us or by our own prompt.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn verify_user(
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
    pub(super) fn built_in_uv(
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
    pub(super) fn verify_pin_hash(&mut self, hash: &[u8; 16]) -> Result<(), CtapError> {
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
    pub(super) fn secret_in_clear(&mut self, stored: Option<&[u8]>) -> Result<Option<Vec<u8>>, CtapError> {
        let Some(stored) = stored else { return Ok(None) };
        match self.custody.unseal(stored) {
            Ok(plain) => Ok(Some(plain)),
            Err(CustodyError::InvalidBlob) if stored.len() <= 32 => Ok(Some(stored.to_vec())),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn pin_is_set(&self) -> Result<bool, CtapError> {
        Ok(self.store.get_meta(pin::meta::VAULT)?.is_some())
    }

    pub(super) fn meta_u8(&self, key: &str) -> Result<Option<u8>, CtapError> {
        Ok(self.store.get_meta(key)?.and_then(|v| v.first().copied()))
    }

    /// PIN retries left: the stored counter, and the custody's own where it
    /// counts (the TPM's PIN index), whichever is lower. The TPM's count
    /// being lower means someone tried PINs at the TPM without this daemon:
    /// said in the log, and shown to the person as the retries left.
    pub(super) fn retries(&mut self) -> Result<u8, CtapError> {
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

    pub(super) fn boot_failures(&self) -> Result<u8, CtapError> {
        Ok(self.meta_u8(pin::meta::BOOT_FAILURES)?.unwrap_or(0))
    }
}

/// What verify_user found out.
pub(super) struct Verified {
    /// The person's presence was collected (our prompt, or a token that carried it).
    pub(super) present: bool,
    /// The credential the token's prompt named and the person approved.
    pub(super) confirmed: Option<Vec<u8>>,
    /// Our prompt ran just now, showing the account name it was given.
    pub(super) prompted: bool,
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
