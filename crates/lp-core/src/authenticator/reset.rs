//! authenticatorReset (0x07), CTAP 2.2 §6.6.

use super::{Authenticator, CtapResult, RESET_WINDOW_MS};
use crate::activity::{Act, Outcome};
use crate::pin;
use crate::status::CtapError;
use crate::user::{Action, Interaction};

impl Authenticator {
    pub(super) fn reset(&mut self, io: &dyn Interaction) -> CtapResult {
        if self.clock.now().saturating_sub(self.powered_up_at) > RESET_WINDOW_MS {
            return Err(CtapError::NotAllowed);
        }
        self.ask(Action::Reset, "", None, io)?;
        // Revoke inside the custody first: if that fails nothing is erased,
        // so no copy of the data directory outlives a Reset that succeeded.
        let vault = self.store.get_meta(pin::meta::VAULT)?;
        self.custody.reset(vault.as_deref())?;
        self.store.delete_all()?;
        // A factory reset: the log of what the erased passkeys did goes too,
        // and the reset itself is its first entry.
        self.store.trim_activity(u64::MAX)?;
        self.note(Act::Reset, "", None, Outcome::Approved);
        for key in pin::meta::ALL {
            self.store.delete_meta(key)?;
        }
        // The attestation key was the revoked vault's child: the enrolment
        // is gone with it, and `ep` with it (a Reset makes the device
        // anonymous again; the administrator enrols it anew).
        for key in crate::enterprise::meta::ALL {
            self.store.delete_meta(key)?;
        }
        self.forget_large_blobs()?;
        self.pin.forget();
        self.listing = None;
        tracing::warn!("authenticator reset: every credential erased");
        Ok(None)
    }
}
