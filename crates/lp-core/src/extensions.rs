//! CTAP 2.1 extensions (§12): parsing their inputs and encoding their
//! outputs. What they *do* lives in the authenticator, next to the command
//! that runs them.

use crate::cbor::{self, text_map};
use crate::status::CtapError;
use ciborium::value::Value;
use std::collections::BTreeMap;

pub const CRED_PROTECT: &str = "credProtect";
pub const HMAC_SECRET: &str = "hmac-secret";
/// CTAP 2.2 §12.7: hmac-secret's output already at MakeCredential.
pub const HMAC_SECRET_MC: &str = "hmac-secret-mc";
pub const CRED_BLOB: &str = "credBlob";
pub const LARGE_BLOB_KEY: &str = "largeBlobKey";
pub const MIN_PIN_LENGTH: &str = "minPinLength";
/// CTAP 2.2 §12.9: a flag kept with the credential, reported at GetAssertion.
pub const THIRD_PARTY_PAYMENT: &str = "thirdPartyPayment";

/// Every extension we implement, as GetInfo lists them.
pub const SUPPORTED: [&str; 7] = [
    CRED_PROTECT,
    HMAC_SECRET,
    HMAC_SECRET_MC,
    CRED_BLOB,
    LARGE_BLOB_KEY,
    MIN_PIN_LENGTH,
    THIRD_PARTY_PAYMENT,
];

/// The most credBlob bytes we keep (GetInfo's maxCredBlobLength; the spec's minimum).
pub const MAX_CRED_BLOB_LEN: usize = 32;

/// credProtect levels (§12.1).
pub mod protect {
    pub const UV_OPTIONAL: u8 = 1;
    pub const UV_OPTIONAL_WITH_ID_LIST: u8 = 2;
    pub const UV_REQUIRED: u8 = 3;
}

/// Whether a credential may be used or revealed (§12.1): level 3 needs user
/// verification; level 2 needs it too unless the platform named the
/// credential in an allowList (or excludeList).
pub fn visible(level: u8, uv: bool, named: bool) -> bool {
    match level {
        protect::UV_REQUIRED => uv,
        protect::UV_OPTIONAL_WITH_ID_LIST => uv || named,
        _ => true,
    }
}

/// MakeCredential extension inputs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct McInputs {
    pub cred_protect: Option<u8>,
    pub hmac_secret: bool,
    /// Salts to evaluate now (only with `hmac_secret`).
    pub hmac_secret_mc: Option<HmacSecretInput>,
    pub cred_blob: Option<Vec<u8>>,
    pub large_blob_key: bool,
    pub min_pin_length: bool,
    pub third_party_payment: bool,
}

impl McInputs {
    /// Unknown extensions are ignored (§12); a known one of the wrong type
    /// is CTAP2_ERR_CBOR_UNEXPECTED_TYPE.
    pub fn parse(mut map: cbor::TextMap) -> Result<Self, CtapError> {
        let cred_protect = match map.remove(CRED_PROTECT).map(cbor::unsigned).transpose()? {
            // An unknown level is ignored, as an unknown extension would be.
            Some(level @ 1..=3) => Some(level as u8),
            _ => None,
        };
        let large_blob_key = map.remove(LARGE_BLOB_KEY).map(cbor::boolean).transpose()?;
        // §12.3: largeBlobKey present and false is an error, not "no".
        if large_blob_key == Some(false) {
            return Err(CtapError::InvalidOption);
        }
        Ok(Self {
            cred_protect,
            hmac_secret: map
                .remove(HMAC_SECRET)
                .map(cbor::boolean)
                .transpose()?
                .unwrap_or(false),
            hmac_secret_mc: map
                .remove(HMAC_SECRET_MC)
                .map(HmacSecretInput::parse)
                .transpose()?,
            cred_blob: map.remove(CRED_BLOB).map(cbor::bytes).transpose()?,
            large_blob_key: large_blob_key.unwrap_or(false),
            min_pin_length: map
                .remove(MIN_PIN_LENGTH)
                .map(cbor::boolean)
                .transpose()?
                .unwrap_or(false),
            third_party_payment: map
                .remove(THIRD_PARTY_PAYMENT)
                .map(cbor::boolean)
                .transpose()?
                .unwrap_or(false),
        })
    }
}

/// hmac-secret's GetAssertion input (§12.5).
#[derive(Debug, Clone, PartialEq)]
pub struct HmacSecretInput {
    pub key_agreement: Value,
    pub salt_enc: Vec<u8>,
    pub salt_auth: Vec<u8>,
    /// Defaults to protocol One when absent.
    pub protocol: u64,
}

impl HmacSecretInput {
    /// `{1: keyAgreement, 2: saltEnc, 3: saltAuth, 4: pinUvAuthProtocol}`,
    /// the same at GetAssertion (hmac-secret) and MakeCredential (hmac-secret-mc).
    fn parse(v: Value) -> Result<Self, CtapError> {
        let Value::Map(entries) = v else {
            return Err(CtapError::CborUnexpectedType);
        };
        let mut m: BTreeMap<u64, Value> = BTreeMap::new();
        for (k, v) in entries {
            if let Some(k) = k.as_integer().and_then(|i| u64::try_from(i).ok()) {
                m.insert(k, v);
            }
        }
        Ok(HmacSecretInput {
            key_agreement: m.remove(&1).ok_or(CtapError::MissingParameter)?,
            salt_enc: cbor::bytes(m.remove(&2).ok_or(CtapError::MissingParameter)?)?,
            salt_auth: cbor::bytes(m.remove(&3).ok_or(CtapError::MissingParameter)?)?,
            protocol: m.remove(&4).map(cbor::unsigned).transpose()?.unwrap_or(1),
        })
    }
}

/// GetAssertion extension inputs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GaInputs {
    pub hmac_secret: Option<HmacSecretInput>,
    pub cred_blob: bool,
    pub large_blob_key: bool,
    pub third_party_payment: bool,
}

impl GaInputs {
    pub fn parse(mut map: cbor::TextMap) -> Result<Self, CtapError> {
        let hmac_secret = map.remove(HMAC_SECRET).map(HmacSecretInput::parse).transpose()?;
        let large_blob_key = map.remove(LARGE_BLOB_KEY).map(cbor::boolean).transpose()?;
        if large_blob_key == Some(false) {
            return Err(CtapError::InvalidOption);
        }
        Ok(Self {
            hmac_secret,
            cred_blob: map
                .remove(CRED_BLOB)
                .map(cbor::boolean)
                .transpose()?
                .unwrap_or(false),
            large_blob_key: large_blob_key.unwrap_or(false),
            third_party_payment: map
                .remove(THIRD_PARTY_PAYMENT)
                .map(cbor::boolean)
                .transpose()?
                .unwrap_or(false),
        })
    }
}

/// The extensions part of authenticator data: a canonical CBOR map, or
/// nothing when no extension produced output (then ED stays 0).
pub fn encode_outputs(outputs: Vec<(&str, Value)>) -> Option<Vec<u8>> {
    if outputs.is_empty() {
        None
    } else {
        Some(cbor::encode(&text_map(outputs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(&str, Value)>) -> cbor::TextMap {
        entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    #[test]
    fn make_credential_inputs() {
        let m = McInputs::parse(map(vec![
            (CRED_PROTECT, Value::Integer(2.into())),
            (HMAC_SECRET, Value::Bool(true)),
            (CRED_BLOB, Value::Bytes(vec![1, 2])),
            ("unknownExt", Value::Null),
        ]))
        .unwrap();
        assert_eq!(m.cred_protect, Some(2));
        assert!(m.hmac_secret);
        assert_eq!(m.cred_blob, Some(vec![1, 2]));
        assert_eq!(
            McInputs::parse(map(vec![(CRED_PROTECT, Value::Integer(9.into()))]))
                .unwrap()
                .cred_protect,
            None
        );
        assert_eq!(
            McInputs::parse(map(vec![(HMAC_SECRET, Value::Integer(1.into()))])).unwrap_err(),
            CtapError::CborUnexpectedType
        );
        assert_eq!(
            McInputs::parse(map(vec![(LARGE_BLOB_KEY, Value::Bool(false))])).unwrap_err(),
            CtapError::InvalidOption
        );
    }

    #[test]
    fn hmac_secret_input_needs_its_members() {
        let full = Value::Map(vec![
            (Value::Integer(1.into()), Value::Map(vec![])),
            (Value::Integer(2.into()), Value::Bytes(vec![0; 32])),
            (Value::Integer(3.into()), Value::Bytes(vec![0; 16])),
        ]);
        let g = GaInputs::parse(map(vec![(HMAC_SECRET, full)])).unwrap();
        assert_eq!(g.hmac_secret.unwrap().protocol, 1);
        let missing = Value::Map(vec![(Value::Integer(1.into()), Value::Map(vec![]))]);
        assert_eq!(
            GaInputs::parse(map(vec![(HMAC_SECRET, missing)])).unwrap_err(),
            CtapError::MissingParameter
        );
        assert_eq!(
            GaInputs::parse(map(vec![(HMAC_SECRET, Value::Bool(true))])).unwrap_err(),
            CtapError::CborUnexpectedType
        );
    }

    #[test]
    fn cred_protect_visibility() {
        assert!(visible(1, false, false));
        assert!(!visible(2, false, false));
        assert!(visible(2, false, true));
        assert!(!visible(3, false, true));
        assert!(visible(3, true, false));
    }
}
