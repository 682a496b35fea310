//! authenticatorGetInfo (0x04), CTAP 2.2 §6.4: what this authenticator is
//! and has, and (for the persistent token's holder) who it is.

use super::{config, cred_mgmt, large_blobs, Authenticator, CREDENTIAL_ID_LEN};
use crate::cbor::{int_map, text_map};
use crate::extensions;
use crate::persistent_token::{self, PersistentToken};
use crate::pin;
use crate::status::CtapError;
use ciborium::value::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

impl Authenticator {
    pub(super) fn get_info(&mut self) -> Result<Value, CtapError> {
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
        let pin_set = self.pin().is_set()?;
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
        let force_change = self.pin().must_change()?;
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
