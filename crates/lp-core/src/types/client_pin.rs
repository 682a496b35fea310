//! authenticatorClientPIN (0x06), CTAP 2.2 §6.5.5.

use crate::cbor::{self, int_map, RequestMap};
use crate::pin_protocol::ProtocolVersion;
use crate::status::CtapError;
use ciborium::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subcommand {
    GetPinRetries = 0x01,
    GetKeyAgreement = 0x02,
    SetPin = 0x03,
    ChangePin = 0x04,
    GetPinToken = 0x05,
    GetPinUvAuthTokenUsingUvWithPermissions = 0x06,
    GetUvRetries = 0x07,
    GetPinUvAuthTokenUsingPinWithPermissions = 0x09,
}

impl Subcommand {
    fn from_u64(n: u64) -> Option<Self> {
        use Subcommand::*;
        [
            GetPinRetries,
            GetKeyAgreement,
            SetPin,
            ChangePin,
            GetPinToken,
            GetPinUvAuthTokenUsingUvWithPermissions,
            GetUvRetries,
            GetPinUvAuthTokenUsingPinWithPermissions,
        ]
        .into_iter()
        .find(|s| *s as u64 == n)
    }
}

/// The parameters (§6.5.5.1); each subcommand checks what it needs.
pub struct Request {
    pub protocol: Option<u64>,
    pub subcommand: Subcommand,
    pub key_agreement: Option<Value>,
    pub pin_uv_auth_param: Option<Vec<u8>>,
    pub new_pin_enc: Option<Vec<u8>>,
    pub pin_hash_enc: Option<Vec<u8>>,
    pub permissions: Option<u64>,
    pub rp_id: Option<String>,
}

impl Request {
    /// An unknown subcommand is CTAP2_ERR_INVALID_SUBCOMMAND, once the map
    /// itself is well-formed.
    pub fn decode(bytes: &[u8]) -> Result<Self, CtapError> {
        let mut m = RequestMap::parse(bytes)?;
        let protocol = m.take(0x01).map(cbor::unsigned).transpose()?;
        let subcommand = cbor::unsigned(m.required(0x02)?)?;
        let request = Self {
            protocol,
            subcommand: Subcommand::GetPinRetries,
            key_agreement: m.take(0x03),
            pin_uv_auth_param: m.take(0x04).map(cbor::bytes).transpose()?,
            new_pin_enc: m.take(0x05).map(cbor::bytes).transpose()?,
            pin_hash_enc: m.take(0x06).map(cbor::bytes).transpose()?,
            permissions: m.take(0x09).map(cbor::unsigned).transpose()?,
            rp_id: m.take(0x0A).map(cbor::text).transpose()?,
        };
        let subcommand = Subcommand::from_u64(subcommand).ok_or(CtapError::InvalidSubcommand)?;
        Ok(Self {
            subcommand,
            ..request
        })
    }

    pub fn version(&self) -> Result<ProtocolVersion, CtapError> {
        ProtocolVersion::from_u64(self.protocol.ok_or(CtapError::MissingParameter)?)
    }
}

/// Every member a clientPIN answer may have; each subcommand sets its own.
#[derive(Default)]
pub struct Response {
    pub key_agreement: Option<Value>,
    /// Encrypted to the platform's shared secret.
    pub pin_uv_auth_token: Option<Vec<u8>>,
    pub pin_retries: Option<u8>,
    pub power_cycle_state: Option<bool>,
    pub uv_retries: Option<u8>,
}

impl From<Response> for Value {
    fn from(r: Response) -> Value {
        let mut m = Vec::new();
        if let Some(k) = r.key_agreement {
            m.push((0x01, k));
        }
        if let Some(t) = r.pin_uv_auth_token {
            m.push((0x02, Value::Bytes(t)));
        }
        if let Some(n) = r.pin_retries {
            m.push((0x03, Value::Integer(n.into())));
        }
        if let Some(b) = r.power_cycle_state {
            m.push((0x04, Value::Bool(b)));
        }
        if let Some(n) = r.uv_retries {
            m.push((0x05, Value::Integer(n.into())));
        }
        int_map(m)
    }
}

impl Request {
    /// A request with only these two members; the platform's constructors
    /// (`crate::platform`) fill in the rest.
    pub fn new(protocol: Option<ProtocolVersion>, subcommand: Subcommand) -> Self {
        Self {
            protocol: protocol.map(ProtocolVersion::as_u64),
            subcommand,
            key_agreement: None,
            pin_uv_auth_param: None,
            new_pin_enc: None,
            pin_hash_enc: None,
            permissions: None,
            rp_id: None,
        }
    }

    /// The whole CTAP request: the command byte, then the parameters.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = vec![(0x02, Value::Integer((self.subcommand as u64).into()))];
        if let Some(p) = self.protocol {
            m.push((0x01, Value::Integer(p.into())));
        }
        if let Some(k) = &self.key_agreement {
            m.push((0x03, k.clone()));
        }
        let bytes = [
            (0x04, &self.pin_uv_auth_param),
            (0x05, &self.new_pin_enc),
            (0x06, &self.pin_hash_enc),
        ];
        for (key, value) in bytes {
            if let Some(b) = value {
                m.push((key, Value::Bytes(b.clone())));
            }
        }
        if let Some(p) = self.permissions {
            m.push((0x09, Value::Integer(p.into())));
        }
        if let Some(rp) = &self.rp_id {
            m.push((0x0A, Value::Text(rp.clone())));
        }
        let mut out = vec![super::command::CLIENT_PIN];
        out.extend(cbor::encode(&int_map(m)));
        out
    }
}

impl Response {
    /// The platform's reading of an answer's map (CTAP2_ERR_INVALID_CBOR
    /// for anything that is not one, a member of the wrong type
    /// CTAP2_ERR_CBOR_UNEXPECTED_TYPE).
    pub fn decode(body: &[u8]) -> Result<Self, CtapError> {
        if body.is_empty() {
            return Ok(Self::default());
        }
        let mut m = RequestMap::parse(body)?;
        let small = |v: Value| -> Result<u8, CtapError> {
            u8::try_from(cbor::unsigned(v)?).map_err(|_| CtapError::InvalidCbor)
        };
        Ok(Self {
            key_agreement: m.take(0x01),
            pin_uv_auth_token: m.take(0x02).map(cbor::bytes).transpose()?,
            pin_retries: m.take(0x03).map(small).transpose()?,
            power_cycle_state: m.take(0x04).map(cbor::boolean).transpose()?,
            uv_retries: m.take(0x05).map(small).transpose()?,
        })
    }
}
