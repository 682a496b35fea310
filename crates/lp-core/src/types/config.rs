//! authenticatorConfig (0x0D), CTAP 2.2 §6.11.

use super::SubcommandMap;
use crate::cbor;
use crate::status::CtapError;
use ciborium::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subcommand {
    EnableEnterpriseAttestation = 0x01,
    ToggleAlwaysUv = 0x02,
    SetMinPinLength = 0x03,
}

impl Subcommand {
    pub fn from_byte(b: u8) -> Option<Self> {
        use Subcommand::*;
        [EnableEnterpriseAttestation, ToggleAlwaysUv, SetMinPinLength]
            .into_iter()
            .find(|s| *s as u8 == b)
    }
}

pub struct Request {
    /// Kept as the byte the pinUvAuthParam covers; which subcommand it is
    /// matters only once the token is checked.
    pub subcommand: u8,
    pub sub_params: Option<Value>,
    pub protocol: Option<u64>,
    pub pin_uv_auth_param: Option<Vec<u8>>,
}

impl Request {
    pub fn decode(bytes: &[u8]) -> Result<Self, CtapError> {
        let m = SubcommandMap::decode(bytes)?;
        Ok(Self {
            subcommand: u8::try_from(m.subcommand).map_err(|_| CtapError::InvalidSubcommand)?,
            sub_params: m.sub_params,
            protocol: m.protocol,
            pin_uv_auth_param: m.pin_uv_auth_param,
        })
    }

    /// What the pinUvAuthParam is made over: 32×0xff ‖ 0x0d ‖ subCommand ‖ subCommandParams.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut message = vec![0xff; 32];
        message.push(0x0d);
        message.push(self.subcommand);
        if let Some(p) = &self.sub_params {
            message.extend(cbor::encode(p));
        }
        message
    }
}
