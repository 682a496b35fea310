//! authenticatorGetAssertion (0x02) and authenticatorGetNextAssertion
//! (0x08), CTAP 2.2 §6.2.2 and §6.3.

use super::{descriptor_list, opt, options, user_value};
use super::{CredentialDescriptor, Options, UserEntity};
use crate::cbor::{self, int_map, RequestMap};
use crate::status::CtapError;
use ciborium::value::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub rp_id: String,
    pub client_data_hash: Vec<u8>,
    pub allow_list: Option<Vec<CredentialDescriptor>>,
    pub extensions: cbor::TextMap,
    pub options: Options,
    pub pin_uv_auth_param: Option<Vec<u8>>,
    pub pin_uv_auth_protocol: Option<u64>,
}

impl Request {
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

/// One assertion, the same for GetAssertion and GetNextAssertion.
pub struct Response {
    pub credential: CredentialDescriptor,
    pub auth_data: Vec<u8>,
    pub signature: Vec<u8>,
    /// For discoverable credentials; name and displayName only once the
    /// user is verified.
    pub user: Option<UserEntity>,
    /// Only in the first answer of a discovery with several matches.
    pub number_of_credentials: Option<usize>,
    pub user_selected: bool,
    pub large_blob_key: Option<Vec<u8>>,
}

impl From<Response> for Value {
    fn from(r: Response) -> Value {
        let mut m = vec![
            (0x01, r.credential.to_value()),
            (0x02, Value::Bytes(r.auth_data)),
            (0x03, Value::Bytes(r.signature)),
        ];
        if let Some(u) = &r.user {
            m.push((0x04, user_value(u)));
        }
        if let Some(n) = r.number_of_credentials {
            m.push((0x05, Value::Integer((n as u64).into())));
        }
        if r.user_selected {
            m.push((0x06, Value::Bool(true)));
        }
        if let Some(k) = r.large_blob_key {
            m.push((0x07, Value::Bytes(k)));
        }
        int_map(m)
    }
}
