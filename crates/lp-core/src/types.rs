//! Typed CTAP 2.1 requests (§6), decoded from their integer-keyed CBOR maps.
//!
//! Each field's map key is the number the spec gives it; decoding checks the
//! type of every member we use and ignores members we do not know.

use crate::cbor::{self, RequestMap};
use crate::status::CtapError;
use ciborium::value::Value;
use std::collections::BTreeMap;

/// CTAP command bytes (§6).
pub mod command {
    pub const MAKE_CREDENTIAL: u8 = 0x01;
    pub const GET_ASSERTION: u8 = 0x02;
    pub const GET_INFO: u8 = 0x04;
    pub const CLIENT_PIN: u8 = 0x06;
    pub const RESET: u8 = 0x07;
    pub const GET_NEXT_ASSERTION: u8 = 0x08;
    pub const CREDENTIAL_MANAGEMENT: u8 = 0x0A;
    pub const SELECTION: u8 = 0x0B;
    pub const LARGE_BLOBS: u8 = 0x0C;
    pub const CONFIG: u8 = 0x0D;
    /// The CTAP 2.1 pre-release number of credential management.
    pub const CREDENTIAL_MANAGEMENT_PRE: u8 = 0x41;
}

/// COSE algorithm identifier for ECDSA with P-256 and SHA-256.
pub const ES256: i64 = -7;

/// The longest user.id WebAuthn allows.
pub const MAX_USER_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpEntity {
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntity {
    pub id: Vec<u8>,
    pub name: Option<String>,
    pub display_name: Option<String>,
}

/// A PublicKeyCredentialDescriptor. Descriptors of a type other than
/// "public-key" are kept (so lists keep their shape) but never match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialDescriptor {
    pub kind: String,
    pub id: Vec<u8>,
}

impl CredentialDescriptor {
    pub fn is_public_key(&self) -> bool {
        self.kind == "public-key"
    }

    pub fn to_value(&self) -> Value {
        cbor::text_map([
            ("id", Value::Bytes(self.id.clone())),
            ("type", Value::Text(self.kind.clone())),
        ])
    }
}

/// The options map: absent means "the platform did not say".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub rk: Option<bool>,
    pub up: Option<bool>,
    pub uv: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MakeCredentialRequest {
    pub client_data_hash: Vec<u8>,
    pub rp: RpEntity,
    pub user: UserEntity,
    /// (type, alg) in the platform's order of preference.
    pub pub_key_cred_params: Vec<(String, i64)>,
    pub exclude_list: Vec<CredentialDescriptor>,
    pub extensions: BTreeMap<String, Value>,
    pub options: Options,
    pub pin_uv_auth_param: Option<Vec<u8>>,
    pub pin_uv_auth_protocol: Option<u64>,
    pub enterprise_attestation: Option<u64>,
    /// CTAP 2.2's attestationFormatsPreference (0x0B): "none" first asks for no attestation.
    pub attestation_formats_preference: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GetAssertionRequest {
    pub rp_id: String,
    pub client_data_hash: Vec<u8>,
    pub allow_list: Option<Vec<CredentialDescriptor>>,
    pub extensions: BTreeMap<String, Value>,
    pub options: Options,
    pub pin_uv_auth_param: Option<Vec<u8>>,
    pub pin_uv_auth_protocol: Option<u64>,
}

fn opt<T>(
    map: &mut RequestMap,
    key: u64,
    f: impl FnOnce(Value) -> Result<T, CtapError>,
) -> Result<Option<T>, CtapError> {
    map.take(key).map(f).transpose()
}

fn rp_entity(v: Value) -> Result<RpEntity, CtapError> {
    let mut m = cbor::text_keyed(v)?;
    let id = cbor::text(m.remove("id").ok_or(CtapError::MissingParameter)?)?;
    let name = m.remove("name").map(cbor::text).transpose()?;
    Ok(RpEntity { id, name })
}

fn user_entity(v: Value) -> Result<UserEntity, CtapError> {
    let mut m = cbor::text_keyed(v)?;
    let id = cbor::bytes(m.remove("id").ok_or(CtapError::MissingParameter)?)?;
    if id.len() > MAX_USER_ID_LEN {
        return Err(CtapError::InvalidLength);
    }
    let name = m.remove("name").map(cbor::text).transpose()?;
    let display_name = m.remove("displayName").map(cbor::text).transpose()?;
    Ok(UserEntity {
        id,
        name,
        display_name,
    })
}

fn descriptor(v: Value) -> Result<CredentialDescriptor, CtapError> {
    let mut m = cbor::text_keyed(v)?;
    let kind = cbor::text(m.remove("type").ok_or(CtapError::MissingParameter)?)?;
    let id = cbor::bytes(m.remove("id").ok_or(CtapError::MissingParameter)?)?;
    Ok(CredentialDescriptor { kind, id })
}

fn descriptor_list(v: Value) -> Result<Vec<CredentialDescriptor>, CtapError> {
    cbor::array(v)?.into_iter().map(descriptor).collect()
}

fn cred_params(v: Value) -> Result<Vec<(String, i64)>, CtapError> {
    cbor::array(v)?
        .into_iter()
        .map(|p| {
            let mut m = cbor::text_keyed(p)?;
            let kind = cbor::text(m.remove("type").ok_or(CtapError::MissingParameter)?)?;
            let alg = cbor::integer(m.remove("alg").ok_or(CtapError::MissingParameter)?)?;
            // An algorithm outside i64 is one we do not support, not malformed CBOR.
            Ok((kind, i64::try_from(alg).unwrap_or(i64::MIN)))
        })
        .collect()
}

fn options(v: Value) -> Result<Options, CtapError> {
    let mut m = cbor::text_keyed(v)?;
    let mut flag = |k: &str| m.remove(k).map(cbor::boolean).transpose();
    Ok(Options {
        rk: flag("rk")?,
        up: flag("up")?,
        uv: flag("uv")?,
    })
}

fn string_list(v: Value) -> Result<Vec<String>, CtapError> {
    cbor::array(v)?.into_iter().map(cbor::text).collect()
}

impl MakeCredentialRequest {
    pub fn decode(params: &[u8]) -> Result<Self, CtapError> {
        let mut m = RequestMap::parse(params)?;
        // Required members first, in key order, so a request missing several
        // gets the same answer every time.
        let client_data_hash = cbor::bytes(m.required(0x01)?)?;
        let rp = rp_entity(m.required(0x02)?)?;
        let user = user_entity(m.required(0x03)?)?;
        let pub_key_cred_params = cred_params(m.required(0x04)?)?;
        Ok(Self {
            client_data_hash,
            rp,
            user,
            pub_key_cred_params,
            exclude_list: opt(&mut m, 0x05, descriptor_list)?.unwrap_or_default(),
            extensions: opt(&mut m, 0x06, cbor::text_keyed)?.unwrap_or_default(),
            options: opt(&mut m, 0x07, options)?.unwrap_or_default(),
            pin_uv_auth_param: opt(&mut m, 0x08, cbor::bytes)?,
            pin_uv_auth_protocol: opt(&mut m, 0x09, cbor::unsigned)?,
            enterprise_attestation: opt(&mut m, 0x0A, cbor::unsigned)?,
            attestation_formats_preference: opt(&mut m, 0x0B, string_list)?,
        })
    }
}

impl GetAssertionRequest {
    pub fn decode(params: &[u8]) -> Result<Self, CtapError> {
        let mut m = RequestMap::parse(params)?;
        let rp_id = cbor::text(m.required(0x01)?)?;
        let client_data_hash = cbor::bytes(m.required(0x02)?)?;
        Ok(Self {
            rp_id,
            client_data_hash,
            allow_list: opt(&mut m, 0x03, descriptor_list)?,
            extensions: opt(&mut m, 0x04, cbor::text_keyed)?.unwrap_or_default(),
            options: opt(&mut m, 0x05, options)?.unwrap_or_default(),
            pin_uv_auth_param: opt(&mut m, 0x06, cbor::bytes)?,
            pin_uv_auth_protocol: opt(&mut m, 0x07, cbor::unsigned)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbor::{encode, int_map, text_map};

    fn mc_map(skip: Option<u64>) -> Vec<u8> {
        let entries = [
            (1, Value::Bytes(vec![0; 32])),
            (2, text_map([("id", Value::Text("example.com".into()))])),
            (
                3,
                text_map([
                    ("id", Value::Bytes(vec![1, 2, 3])),
                    ("name", Value::Text("alice".into())),
                ]),
            ),
            (
                4,
                Value::Array(vec![text_map([
                    ("alg", Value::Integer((-7).into())),
                    ("type", Value::Text("public-key".into())),
                ])]),
            ),
        ];
        encode(&int_map(entries.into_iter().filter(|(k, _)| Some(*k) != skip)))
    }

    #[test]
    fn decodes_minimal_make_credential() {
        let r = MakeCredentialRequest::decode(&mc_map(None)).unwrap();
        assert_eq!(r.rp.id, "example.com");
        assert_eq!(r.user.name.as_deref(), Some("alice"));
        assert_eq!(r.pub_key_cred_params, vec![("public-key".into(), -7)]);
        assert_eq!(r.options, Options::default());
    }

    #[test]
    fn each_missing_required_member_is_reported() {
        for k in 1..=4 {
            assert_eq!(
                MakeCredentialRequest::decode(&mc_map(Some(k))).unwrap_err(),
                CtapError::MissingParameter,
                "key {k}"
            );
        }
    }

    #[test]
    fn wrong_types_are_unexpected_type() {
        let bad = encode(&int_map([(1, Value::Text("not bytes".into()))]));
        assert_eq!(
            MakeCredentialRequest::decode(&bad).unwrap_err(),
            CtapError::CborUnexpectedType
        );
        let bad = encode(&int_map([
            (1, Value::Text("example.com".into())),
            (2, Value::Bytes(vec![0; 32])),
            (5, text_map([("up", Value::Integer(1.into()))])),
        ]));
        assert_eq!(
            GetAssertionRequest::decode(&bad).unwrap_err(),
            CtapError::CborUnexpectedType
        );
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let mut m = ciborium::from_reader::<Value, _>(mc_map(None).as_slice()).unwrap();
        if let Value::Map(e) = &mut m {
            e.push((Value::Integer(99.into()), Value::Text("future".into())));
            e.push((Value::Text("odd".into()), Value::Null));
        }
        assert!(MakeCredentialRequest::decode(&encode(&m)).is_ok());
    }

    #[test]
    fn user_id_longer_than_64_bytes_is_refused() {
        let bytes = encode(&int_map([
            (1, Value::Bytes(vec![0; 32])),
            (2, text_map([("id", Value::Text("example.com".into()))])),
            (3, text_map([("id", Value::Bytes(vec![1; 65]))])),
            (4, Value::Array(vec![])),
        ]));
        assert_eq!(
            MakeCredentialRequest::decode(&bytes).unwrap_err(),
            CtapError::InvalidLength
        );
    }
}
