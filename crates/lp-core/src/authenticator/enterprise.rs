//! Enterprise attestation in the authenticator: the state GetInfo,
//! authenticatorConfig and MakeCredential read, the `tpm` statement, and the
//! PIN check the enrolment tools use.

use super::manage::ManageError;
use super::pin_state::{Pin, PinState};
use super::Authenticator;
use crate::custody::{Algorithm, KeyCustody};
use crate::enterprise::{self, meta, Enrolment};
use crate::pin;
use crate::status::CtapError;
use crate::store::CredentialStore;
use crate::types::make_credential::tpm_attestation_statement;
use ciborium::value::Value;
use sha2::{Digest, Sha256};

/// The attestation key's algorithm: every AK we make is ECC P-256 (ES256).
const AK_ALGORITHM: Algorithm = Algorithm::Es256;

impl Authenticator {
    /// The installed enrolment, if this custody can use one (the software
    /// custody never can: it has no attestation key).
    pub(super) fn enrolment(&self) -> Result<Option<Enrolment>, CtapError> {
        if !self.custody.can_certify() {
            return Ok(None);
        }
        let Some(bytes) = self.store.get_meta(meta::ENROLMENT)? else {
            return Ok(None);
        };
        match Enrolment::from_bytes(&bytes) {
            Ok(e) => Ok(Some(e)),
            Err(_) => {
                tracing::error!("the stored enterprise enrolment does not parse: ignored");
                Ok(None)
            }
        }
    }

    /// GetInfo's `ep`: None (absent) when not enterprise attestation
    /// capable, else whether it is enabled.
    pub(super) fn ep_option(&self) -> Result<Option<bool>, CtapError> {
        if self.enrolment()?.is_none() {
            return Ok(None);
        }
        Ok(Some(
            self.store.get_meta(meta::ENABLED)?.as_deref() == Some(&[1][..]),
        ))
    }

    /// authenticatorConfig enableEnterpriseAttestation (§6.11.1), token checked.
    pub(super) fn enable_enterprise_attestation(&mut self) -> Result<Option<Value>, CtapError> {
        if self.enrolment()?.is_none() {
            return Err(CtapError::InvalidSubcommand);
        }
        self.store.set_meta(meta::ENABLED, &[1])?;
        tracing::info!("enterprise attestation enabled");
        Ok(None)
    }

    /// §6.1.2 step 9 for this request, with the enrolment it would use.
    pub(super) fn enterprise_decision(
        &self,
        requested: Option<u64>,
        rp_id: &str,
    ) -> Result<Option<Enrolment>, CtapError> {
        if requested.is_none() {
            return Ok(None);
        }
        let enrolment = self.enrolment()?;
        let enabled = self.ep_option()? == Some(true);
        let capability = enrolment.as_ref().map(|e| enterprise::Capability {
            enabled,
            rp_ids: &e.rp_ids,
        });
        let give = enterprise::decide(requested, capability, rp_id)?;
        Ok(enrolment.filter(|_| give))
    }

    /// The `tpm` statement (WebAuthn §8.3): TPM2_Certify of the new
    /// credential key by the attestation key, over SHA-256(authData ||
    /// clientDataHash) (the AK's algorithm's hash).
    pub(super) fn enterprise_statement(
        &mut self,
        enrolment: &Enrolment,
        key_blob: &[u8],
        auth_data: &[u8],
        client_data_hash: &[u8],
    ) -> Result<Value, CtapError> {
        let qualifying = Sha256::new()
            .chain_update(auth_data)
            .chain_update(client_data_hash)
            .finalize();
        let c = self
            .custody
            .certify(&enrolment.attestation_key, key_blob, &qualifying)?;
        Ok(tpm_attestation_statement(
            AK_ALGORITHM.cose(),
            &enrolment.certificates,
            c.signature,
            c.cert_info,
            c.public_area,
        ))
    }
}

/// Check `pin` and leave the custody's vault unlocked, outside CTAP (the
/// `enterprise` commands, which need the vault for the attestation key):
/// the same retry counters, per-boot failures and custody check as
/// clientPIN, so this is no way around the PIN limit.
pub fn unlock_with_pin(
    store: &mut dyn CredentialStore,
    custody: &mut dyn KeyCustody,
    typed: &str,
) -> Result<(), ManageError> {
    let mut state = PinState::new();
    let mut p = Pin {
        state: &mut state,
        store,
        custody,
    };
    if !p.is_set()? {
        return Err(ManageError::PinNotSet);
    }
    Ok(p.check(&pin::pin_hash(typed.as_bytes()))?)
}
