//! authenticatorMakeCredential (0x01), CTAP 2.2 §6.1.2.

use super::{cred_params, descriptor_list, opt, options, rp_entity, string_list, user_entity};
use super::{CredentialDescriptor, Options, RpEntity, UserEntity};
use crate::cbor::{self, int_map, text_map, RequestMap};
use crate::status::CtapError;
use ciborium::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub client_data_hash: Vec<u8>,
    pub rp: RpEntity,
    pub user: UserEntity,
    /// (type, alg) in the platform's order of preference.
    pub pub_key_cred_params: Vec<(String, i64)>,
    pub exclude_list: Vec<CredentialDescriptor>,
    pub extensions: cbor::TextMap,
    pub options: Options,
    pub pin_uv_auth_param: Option<Vec<u8>>,
    pub pin_uv_auth_protocol: Option<u64>,
    pub enterprise_attestation: Option<u64>,
    /// CTAP 2.2's attestationFormatsPreference (0x0B): "none" first asks for no attestation.
    pub attestation_formats_preference: Option<Vec<String>>,
}

impl Request {
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

/// The attestation object's members (§6.1.2 step 19, §6.5.6).
pub struct Response {
    pub fmt: &'static str,
    pub auth_data: Vec<u8>,
    pub att_stmt: Value,
    /// epAtt (0x04): present, and true, exactly when the statement is an
    /// enterprise attestation (§6.1.2 step 9).
    pub ep_att: bool,
    pub large_blob_key: Option<Vec<u8>>,
}

/// WebAuthn §8.3's `tpm` attestation statement: `ver` "2.0", `alg` (the
/// attestation key's COSE algorithm), `x5c` (its certificate, then the
/// chain), `sig` (the raw signature, DER for ECDSA: not a TPMT_SIGNATURE),
/// `certInfo` (TPMS_ATTEST) and `pubArea` (TPMT_PUBLIC), both without a
/// TPM2B size prefix.
pub fn tpm_attestation_statement(
    alg: i64,
    x5c: &[Vec<u8>],
    sig: Vec<u8>,
    cert_info: Vec<u8>,
    pub_area: Vec<u8>,
) -> Value {
    text_map([
        ("ver", Value::Text("2.0".into())),
        ("alg", Value::Integer(alg.into())),
        (
            "x5c",
            Value::Array(x5c.iter().cloned().map(Value::Bytes).collect()),
        ),
        ("sig", Value::Bytes(sig)),
        ("certInfo", Value::Bytes(cert_info)),
        ("pubArea", Value::Bytes(pub_area)),
    ])
}

impl From<Response> for Value {
    fn from(r: Response) -> Value {
        let mut m = vec![
            (0x01, Value::Text(r.fmt.into())),
            (0x02, Value::Bytes(r.auth_data)),
            (0x03, r.att_stmt),
        ];
        if r.ep_att {
            m.push((0x04, Value::Bool(true)));
        }
        if let Some(k) = r.large_blob_key {
            m.push((0x05, Value::Bytes(k)));
        }
        int_map(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{GetAssertionRequest, Options};
    use cbor::encode;

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
        let r = Request::decode(&mc_map(None)).unwrap();
        assert_eq!(r.rp.id, "example.com");
        assert_eq!(r.user.name.as_deref(), Some("alice"));
        assert_eq!(r.pub_key_cred_params, vec![("public-key".into(), -7)]);
        assert_eq!(r.options, Options::default());
    }

    #[test]
    fn each_missing_required_member_is_reported() {
        for k in 1..=4 {
            assert_eq!(
                Request::decode(&mc_map(Some(k))).unwrap_err(),
                CtapError::MissingParameter,
                "key {k}"
            );
        }
    }

    #[test]
    fn wrong_types_are_unexpected_type() {
        let bad = encode(&int_map([(1, Value::Text("not bytes".into()))]));
        assert_eq!(Request::decode(&bad).unwrap_err(), CtapError::CborUnexpectedType);
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
        assert!(Request::decode(&encode(&m)).is_ok());
    }

    #[test]
    fn the_tpm_statement_is_in_canonical_order() {
        let stmt = tpm_attestation_statement(-7, &[vec![0x30]], vec![1], vec![2], vec![3]);
        let keys: Vec<String> = stmt
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_text().unwrap().to_string())
            .collect();
        assert_eq!(keys, ["alg", "sig", "ver", "x5c", "pubArea", "certInfo"]);
    }

    #[test]
    fn ep_att_is_sent_only_when_true() {
        let r = |ep_att| Response {
            fmt: "packed",
            auth_data: vec![],
            att_stmt: text_map([]),
            ep_att,
            large_blob_key: None,
        };
        let has_4 = |v: Value| {
            v.as_map()
                .unwrap()
                .iter()
                .any(|(k, _)| k.as_integer() == Some(4.into()))
        };
        assert!(has_4(r(true).into()));
        assert!(!has_4(r(false).into()));
    }

    #[test]
    fn user_id_longer_than_64_bytes_is_refused() {
        let bytes = encode(&int_map([
            (1, Value::Bytes(vec![0; 32])),
            (2, text_map([("id", Value::Text("example.com".into()))])),
            (3, text_map([("id", Value::Bytes(vec![1; 65]))])),
            (4, Value::Array(vec![])),
        ]));
        assert_eq!(Request::decode(&bytes).unwrap_err(), CtapError::InvalidLength);
    }
}
