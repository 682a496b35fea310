//! authenticatorLargeBlobs (0x0C), CTAP 2.2 §6.10.

use crate::cbor::{self, int_map, RequestMap};
use crate::status::CtapError;
use ciborium::value::Value;

pub struct Request {
    pub get: Option<u64>,
    pub set: Option<Vec<u8>>,
    pub offset: usize,
    pub length: Option<u64>,
    pub pin_uv_auth_param: Option<Vec<u8>>,
    pub protocol: Option<u64>,
}

impl Request {
    pub fn decode(bytes: &[u8]) -> Result<Self, CtapError> {
        let mut m = RequestMap::parse(bytes)?;
        let get = m.take(0x01).map(cbor::unsigned).transpose()?;
        let set = m.take(0x02).map(cbor::bytes).transpose()?;
        // §6.10.2: a missing offset is an invalid parameter, not a missing one.
        let offset = cbor::unsigned(m.take(0x03).ok_or(CtapError::InvalidParameter)?)?;
        let length = m.take(0x04).map(cbor::unsigned).transpose()?;
        let pin_uv_auth_param = m.take(0x05).map(cbor::bytes).transpose()?;
        let protocol = m.take(0x06).map(cbor::unsigned).transpose()?;
        Ok(Self {
            get,
            set,
            offset: usize::try_from(offset).map_err(|_| CtapError::InvalidParameter)?,
            length,
            pin_uv_auth_param,
            protocol,
        })
    }
}

/// A read's answer: the fragment (a write answers with nothing).
pub struct Response {
    pub config: Vec<u8>,
}

impl From<Response> for Value {
    fn from(r: Response) -> Value {
        int_map([(0x01, Value::Bytes(r.config))])
    }
}
