//! authenticatorCredentialManagement (0x0A, and the 0x41 prototype that
//! older platforms send), CTAP 2.2 §6.8.

use super::{user_value, SubcommandMap, UserEntity};
use crate::cbor::{self, int_map, text_map};
use crate::status::CtapError;
use ciborium::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subcommand {
    GetCredsMetadata = 0x01,
    EnumerateRpsBegin = 0x02,
    EnumerateRpsGetNextRp = 0x03,
    EnumerateCredentialsBegin = 0x04,
    EnumerateCredentialsGetNextCredential = 0x05,
    DeleteCredential = 0x06,
    UpdateUserInformation = 0x07,
}

impl Subcommand {
    fn from_u64(n: u64) -> Option<Self> {
        use Subcommand::*;
        [
            GetCredsMetadata,
            EnumerateRpsBegin,
            EnumerateRpsGetNextRp,
            EnumerateCredentialsBegin,
            EnumerateCredentialsGetNextCredential,
            DeleteCredential,
            UpdateUserInformation,
        ]
        .into_iter()
        .find(|s| *s as u64 == n)
    }
}

pub struct Request {
    pub subcommand: Subcommand,
    /// As sent: the pinUvAuthParam is made over its encoding.
    pub sub_params: Option<Value>,
    pub protocol: Option<u64>,
    pub pin_uv_auth_param: Option<Vec<u8>>,
}

impl Request {
    pub fn decode(bytes: &[u8]) -> Result<Self, CtapError> {
        let m = SubcommandMap::decode(bytes)?;
        Ok(Self {
            subcommand: Subcommand::from_u64(m.subcommand).ok_or(CtapError::InvalidSubcommand)?,
            sub_params: m.sub_params,
            protocol: m.protocol,
            pin_uv_auth_param: m.pin_uv_auth_param,
        })
    }

    /// What the pinUvAuthParam is made over: subCommand ‖ subCommandParams.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut message = vec![self.subcommand as u8];
        if let Some(p) = &self.sub_params {
            message.extend(cbor::encode(p));
        }
        message
    }
}

/// subCommandParams (§6.8): rpIDHash (1), credentialID (2), user (3).
#[derive(Default)]
pub struct SubParams {
    pub rp_id_hash: Option<Vec<u8>>,
    pub credential_id: Option<Vec<u8>>,
    pub user: Option<UserEntity>,
}

impl SubParams {
    pub fn decode(v: Option<Value>) -> Result<Self, CtapError> {
        let Some(v) = v else { return Ok(Self::default()) };
        let Value::Map(entries) = v else {
            return Err(CtapError::CborUnexpectedType);
        };
        let mut p = Self::default();
        for (k, v) in entries {
            match k.as_integer().and_then(|i| u64::try_from(i).ok()) {
                Some(1) => p.rp_id_hash = Some(cbor::bytes(v)?),
                Some(2) => {
                    let mut d = cbor::text_keyed(v)?;
                    p.credential_id = Some(cbor::bytes(d.remove("id").ok_or(CtapError::MissingParameter)?)?);
                }
                Some(3) => {
                    let mut u = cbor::text_keyed(v)?;
                    p.user = Some(UserEntity {
                        id: cbor::bytes(u.remove("id").ok_or(CtapError::MissingParameter)?)?,
                        name: u.remove("name").map(cbor::text).transpose()?,
                        display_name: u.remove("displayName").map(cbor::text).transpose()?,
                    });
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

/// One listed RP: its id, its name if known, and the hash platforms key by.
pub struct RpEntry {
    pub id: String,
    pub name: Option<String>,
    pub id_hash: Vec<u8>,
}

/// One listed credential.
pub struct CredentialEntry {
    pub user: UserEntity,
    pub credential_id: Vec<u8>,
    /// The COSE_Key, as stored.
    pub public_key: Value,
    pub cred_protect: u8,
    pub large_blob_key: Option<Vec<u8>>,
    pub third_party_payment: bool,
}

/// Every member a credential-management answer may have.
#[derive(Default)]
pub struct Response {
    pub existing_resident_credentials_count: Option<u64>,
    pub max_possible_remaining_resident_credentials_count: Option<u64>,
    pub rp: Option<RpEntry>,
    pub total_rps: Option<usize>,
    pub credential: Option<CredentialEntry>,
    pub total_credentials: Option<usize>,
}

impl From<Response> for Value {
    fn from(r: Response) -> Value {
        let mut m = Vec::new();
        if let Some(n) = r.existing_resident_credentials_count {
            m.push((0x01, Value::Integer(n.into())));
        }
        if let Some(n) = r.max_possible_remaining_resident_credentials_count {
            m.push((0x02, Value::Integer(n.into())));
        }
        if let Some(rp) = r.rp {
            let mut entity = vec![("id", Value::Text(rp.id))];
            if let Some(n) = rp.name {
                entity.push(("name", Value::Text(n)));
            }
            m.push((0x03, text_map(entity)));
            m.push((0x04, Value::Bytes(rp.id_hash)));
        }
        if let Some(n) = r.total_rps {
            m.push((0x05, Value::Integer((n as u64).into())));
        }
        if let Some(c) = r.credential {
            m.push((0x06, user_value(&c.user)));
            m.push((
                0x07,
                text_map([
                    ("id", Value::Bytes(c.credential_id)),
                    ("type", Value::Text("public-key".into())),
                ]),
            ));
            m.push((0x08, c.public_key));
            m.push((0x0A, Value::Integer(c.cred_protect.into())));
            if let Some(k) = c.large_blob_key {
                m.push((0x0B, Value::Bytes(k)));
            }
            m.push((0x0C, Value::Bool(c.third_party_payment)));
        }
        if let Some(n) = r.total_credentials {
            m.push((0x09, Value::Integer((n as u64).into())));
        }
        int_map(m)
    }
}
