//! The one owner of PIN and user-verification state: the pinUvAuthToken and
//! the key agreement (volatile, new at every power cycle), and what is
//! persisted in the store's meta table (whether a PIN is set, the retry
//! counters, the forced change). Every PIN that arrives is checked here, and
//! only here, by the custody's vault (the TPM), never against anything on disk.

use crate::custody::{CustodyError, KeyCustody};
use crate::pin::{self, Grant, Token};
use crate::pin_protocol::{KeyAgreement, ProtocolVersion};
use crate::status::CtapError;
use crate::store::CredentialStore;
use rand_core::{OsRng, RngCore};

/// The volatile half: what CTAP ties to a power cycle.
pub(crate) struct PinState {
    token: Token,
    key_agreement: KeyAgreement,
}

/// A pinUvAuthParam with the protocol it was made with, as MakeCredential,
/// GetAssertion and the management commands carry it.
pub(crate) struct PinUvAuth {
    pub param: Vec<u8>,
    pub protocol: ProtocolVersion,
}

impl PinState {
    pub(crate) fn new() -> Self {
        Self {
            token: Token::new(),
            key_agreement: KeyAgreement::new(),
        }
    }

    pub(crate) fn token(&mut self) -> &mut Token {
        &mut self.token
    }

    pub(crate) fn key_agreement(&self) -> &KeyAgreement {
        &self.key_agreement
    }

    /// When the live token runs out, for the daemon's timer.
    pub(crate) fn deadline(&self) -> Option<crate::clock::Millis> {
        self.token.deadline()
    }

    /// verify(pinUvAuthToken, message, pinUvAuthParam) with the permission
    /// (and RP, if given) the command needs; every failure is
    /// CTAP2_ERR_PIN_AUTH_INVALID.
    pub(crate) fn verify(
        &mut self,
        auth: &PinUvAuth,
        message: &[u8],
        permission: u8,
        rp_id: Option<&str>,
        now: crate::clock::Millis,
    ) -> Result<&mut Grant, CtapError> {
        self.token
            .check(auth.protocol, message, &auth.param, permission, rp_id, now)
    }

    /// A power cycle: a new key agreement, no token, and (persisted) the
    /// per-boot failures back at 0.
    pub(crate) fn new_boot(&mut self, store: &mut dyn CredentialStore) {
        self.forget();
        if let Err(e) = pin::clear_boot_failures(store) {
            tracing::error!("cannot clear the per-boot PIN failures: {e}");
        }
    }

    /// Reset, or a PIN change: no token made before is worth anything.
    pub(crate) fn forget(&mut self) {
        self.token.revoke();
        self.key_agreement.regenerate();
    }
}

/// The persisted half, borrowed with the store and the custody it lives in.
pub(crate) struct Pin<'a> {
    pub(crate) state: &'a mut PinState,
    pub(crate) store: &'a mut dyn CredentialStore,
    pub(crate) custody: &'a mut dyn KeyCustody,
}

impl Pin<'_> {
    pub(crate) fn is_set(&self) -> Result<bool, CtapError> {
        Ok(self.store.has_meta(pin::meta::VAULT)?)
    }

    fn meta_u8(&self, key: &str) -> Result<Option<u8>, CtapError> {
        Ok(self.store.get_meta(key)?.and_then(|v| v.first().copied()))
    }

    pub(crate) fn boot_failures(&self) -> Result<u8, CtapError> {
        Ok(self.meta_u8(pin::meta::BOOT_FAILURES)?.unwrap_or(0))
    }

    pub(crate) fn must_change(&self) -> Result<bool, CtapError> {
        Ok(self.meta_u8(pin::meta::FORCE_CHANGE)?.unwrap_or(0) != 0)
    }

    /// PIN retries left: the stored counter, and the custody's own where it
    /// counts (the TPM's PIN index), whichever is lower. The TPM's count
    /// being lower means someone tried PINs at the TPM without this daemon:
    /// said in the log, and shown to the person as the retries left.
    pub(crate) fn retries(&mut self) -> Result<u8, CtapError> {
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

    /// The one place a PIN is checked. The stored retry counter is
    /// decremented and persisted *before* the custody sees the PIN, so
    /// killing the process mid-check never refunds a try; a right PIN
    /// restores it afterwards. Where the custody counts too (the TPM's PIN
    /// index), the lower of the two counts is the truth: no copy of the
    /// store brings back a try the TPM has counted.
    pub(crate) fn check(&mut self, hash: &[u8; 16]) -> Result<(), CtapError> {
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
                self.state.key_agreement.regenerate();
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

    /// setPIN's effect: a new vault with a fresh salt. The vault blob goes
    /// last: its presence is what "a PIN is set" means, so a crash part-way
    /// leaves no half-set PIN behind.
    pub(crate) fn install(&mut self, new_pin: &[u8]) -> Result<(), CtapError> {
        let mut salt = [0u8; 32];
        OsRng.fill_bytes(&mut salt);
        let auth = pin::vault_auth(&pin::pin_hash(new_pin), &salt);
        let vault = self.custody.create_vault(&auth)?;
        self.store.set_meta(pin::meta::SALT, &salt)?;
        self.store.set_meta(pin::meta::RETRIES, &[pin::MAX_RETRIES])?;
        self.store.set_meta(pin::meta::BOOT_FAILURES, &[0])?;
        self.store
            .set_meta(pin::meta::CODE_POINTS, &[code_points(new_pin)])?;
        self.store.set_meta(pin::meta::FORCE_CHANGE, &[0])?;
        self.store.set_meta(pin::meta::VAULT, &vault)?;
        // Creating the vault unlocked it; no token is live, so lock it again.
        self.custody.lock();
        tracing::info!("PIN set");
        Ok(())
    }

    /// changePIN's effect, once the old PIN has passed [`Pin::check`]. Two
    /// steps, each stored before the next: a crash anywhere leaves a vault
    /// that opens with the old PIN or the new one (see the custody). The
    /// persistent token was granted by the old PIN: void before the new one
    /// can open the vault, so no crash leaves it alive.
    pub(crate) fn replace(&mut self, old_hash: &[u8; 16], new_pin: &[u8]) -> Result<(), CtapError> {
        let new_hash = pin::pin_hash(new_pin);
        // §6.5.5.6 step 13: a forced change must change the PIN.
        if self.must_change()? && *new_hash == *old_hash {
            return Err(CtapError::PinPolicyViolation);
        }
        let vault = self
            .store
            .get_meta(pin::meta::VAULT)?
            .ok_or(CtapError::PinNotSet)?;
        let salt = self.store.get_meta(pin::meta::SALT)?.ok_or(CtapError::Other)?;
        let old_auth = pin::vault_auth(old_hash, &salt);
        let new_auth = pin::vault_auth(&new_hash, &salt);
        self.store.delete_meta(pin::meta::PERSISTENT_TOKEN)?;
        let prepared = self.custody.change_auth(&vault, &old_auth, &new_auth)?;
        self.store.set_meta(pin::meta::VAULT, &prepared)?;
        let new_vault = self.custody.commit_change(&prepared, &old_auth, &new_auth)?;
        self.store.set_meta(pin::meta::VAULT, &new_vault)?;
        self.store
            .set_meta(pin::meta::CODE_POINTS, &[code_points(new_pin)])?;
        self.store.set_meta(pin::meta::FORCE_CHANGE, &[0])?;
        // Every token made with the old PIN is void.
        self.state.token.revoke();
        self.custody.lock();
        tracing::info!("PIN changed");
        Ok(())
    }
}

/// The PIN's length as authenticatorConfig compares it: Unicode code points
/// (a PIN that parse_new_pin accepted is UTF-8 and at most 63 bytes).
fn code_points(pin: &[u8]) -> u8 {
    std::str::from_utf8(pin).map(|s| s.chars().count()).unwrap_or(0) as u8
}
