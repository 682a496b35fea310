//! authenticatorGetInfo (0x04), CTAP 2.2 §6.4: what this authenticator is
//! and has, and (for the persistent token's holder) who it is.

use super::{config, cred_mgmt, large_blobs, Authenticator, CREDENTIAL_ID_LEN};
use crate::extensions;
use crate::persistent_token::{self, PersistentToken};
use crate::pin;
use crate::status::CtapError;
use crate::types::get_info::Response;
use ciborium::value::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

impl Authenticator {
    pub(super) fn get_info(&mut self) -> Result<Value, CtapError> {
        let pin_set = self.pin().is_set()?;
        let mut options = vec![
            ("rk", true),
            ("up", true),
            ("plat", false),
            ("clientPin", pin_set),
            ("pinUvAuthToken", true),
            // Every signature needs verification; it cannot be turned off.
            ("alwaysUv", true),
            ("makeCredUvNotRqd", false),
            ("credMgmt", true),
            ("credentialMgmtPreview", true),
            ("perCredMgmtRO", true),
            ("largeBlobs", true),
            ("authnrCfg", true),
            ("setMinPINLength", true),
        ];
        // Present only when enrolled (enterprise attestation capable).
        let ep = self.ep_option()?;
        if let Some(enabled) = ep {
            options.push(("ep", enabled));
        }
        if self.user.can_verify() {
            // Built-in verification is our own prompt asking for the PIN, so
            // it is "configured" exactly when a PIN is set.
            options.push(("uv", pin_set));
        }
        // Only the persistent token's holder can read (and so correlate)
        // the device identifier and the credential store's state.
        let (mut enc_identifier, mut enc_cred_store_state) = (None, None);
        if let Some(token) = self.persistent_token()? {
            if let Some(id) = self.device_identifier()? {
                let state = self.cred_store_state(&id)?;
                enc_identifier = Some(token.encrypt(persistent_token::INFO_IDENTIFIER, &id));
                enc_cred_store_state = Some(token.encrypt(persistent_token::INFO_CRED_STORE_STATE, &state));
            }
        }
        let info = Response {
            versions: vec!["FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1", "FIDO_2_2"],
            extensions: extensions::SUPPORTED.to_vec(),
            aaguid: crate::AAGUID,
            options,
            max_msg_size: self.max_msg_size(),
            pin_uv_auth_protocols: vec![2, 1],
            max_credential_id_length: CREDENTIAL_ID_LEN,
            transports: vec!["usb"],
            algorithms: self.custody.algorithms().into_iter().map(|a| a.cose()).collect(),
            max_serialized_large_blob_array: large_blobs::MAX_SERIALIZED_LARGE_BLOB_ARRAY,
            force_pin_change: self.pin().must_change()?,
            min_pin_length: self.min_pin_length()?,
            firmware_version: crate::FIRMWARE_VERSION.into(),
            max_cred_blob_length: extensions::MAX_CRED_BLOB_LEN,
            max_rp_ids_for_set_min_pin_length: config::MAX_MIN_PIN_LENGTH_RPS,
            remaining_discoverable_credentials: cred_mgmt::MAX_DISCOVERABLE
                .saturating_sub(self.store.count_discoverable()?),
            // `tpm` is what an enabled enterprise attestation gives.
            attestation_formats: if ep == Some(true) {
                vec!["packed", "tpm", "none"]
            } else {
                vec!["packed", "none"]
            },
            max_pin_length: pin::MAX_PIN_BYTES,
            enc_identifier,
            enc_cred_store_state,
        };
        Ok(info.into())
    }

    /// The persistentPinUvAuthToken, if one was issued since the last PIN
    /// change or Reset.
    pub(super) fn persistent_token(&self) -> Result<Option<PersistentToken>, CtapError> {
        let stored = self
            .store
            .get_meta(pin::meta::PERSISTENT_TOKEN)?
            .map(Zeroizing::new);
        Ok(stored.as_deref().and_then(|b| PersistentToken::from_bytes(b)))
    }

    pub(super) fn device_identifier(&self) -> Result<Option<[u8; 16]>, CtapError> {
        let stored = self.store.get_meta(pin::meta::IDENTIFIER)?;
        Ok(stored.and_then(|v| <[u8; 16]>::try_from(v.as_slice()).ok()))
    }

    /// 16 bytes that change whenever a credential-management listing would
    /// (CTAP 2.2 §6.4 encCredStoreState), and say nothing else: a hash of
    /// the store's generation under the device identifier.
    pub(super) fn cred_store_state(&self, identifier: &[u8; 16]) -> Result<[u8; 16], CtapError> {
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
}
