//! The wire format of every CTAP command (CTAP 2.2 §6), one module each:
//! its `Request`, decoded from the integer-keyed CBOR map, and its
//! `Response`, encoded in CTAP2 canonical order. Each field's map key is the
//! number the spec gives it; decoding checks the type of every member we use
//! and ignores members we do not know. The handlers in `authenticator/`
//! work with these structs and never with map keys.

use crate::cbor::{self, RequestMap};
use crate::status::CtapError;
use ciborium::value::Value;

pub mod client_pin;
pub mod config;
pub mod credential_management;
pub mod get_assertion;
pub mod get_info;
pub mod large_blobs;
pub mod make_credential;

pub use get_assertion::Request as GetAssertionRequest;
pub use make_credential::Request as MakeCredentialRequest;

/// The CTAP commands (§6), by their command byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    MakeCredential = 0x01,
    GetAssertion = 0x02,
    GetInfo = 0x04,
    ClientPin = 0x06,
    Reset = 0x07,
    GetNextAssertion = 0x08,
    CredentialManagement = 0x0A,
    Selection = 0x0B,
    LargeBlobs = 0x0C,
    Config = 0x0D,
    /// The CTAP 2.1 pre-release number of credential management.
    CredentialManagementPre = 0x41,
}

impl Command {
    pub fn from_byte(b: u8) -> Option<Self> {
        use Command::*;
        [
            MakeCredential,
            GetAssertion,
            GetInfo,
            ClientPin,
            Reset,
            GetNextAssertion,
            CredentialManagement,
            Selection,
            LargeBlobs,
            Config,
            CredentialManagementPre,
        ]
        .into_iter()
        .find(|c| *c as u8 == b)
    }
}

/// The command bytes, for building requests (platform code, tests, fuzzing).
pub mod command {
    use super::Command;
    pub const MAKE_CREDENTIAL: u8 = Command::MakeCredential as u8;
    pub const GET_ASSERTION: u8 = Command::GetAssertion as u8;
    pub const GET_INFO: u8 = Command::GetInfo as u8;
    pub const CLIENT_PIN: u8 = Command::ClientPin as u8;
    pub const RESET: u8 = Command::Reset as u8;
    pub const GET_NEXT_ASSERTION: u8 = Command::GetNextAssertion as u8;
    pub const CREDENTIAL_MANAGEMENT: u8 = Command::CredentialManagement as u8;
    pub const SELECTION: u8 = Command::Selection as u8;
    pub const LARGE_BLOBS: u8 = Command::LargeBlobs as u8;
    pub const CONFIG: u8 = Command::Config as u8;
    pub const CREDENTIAL_MANAGEMENT_PRE: u8 = Command::CredentialManagementPre as u8;
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

pub(crate) fn opt<T>(
    map: &mut RequestMap,
    key: u64,
    f: impl FnOnce(Value) -> Result<T, CtapError>,
) -> Result<Option<T>, CtapError> {
    map.take(key).map(f).transpose()
}

pub(crate) fn rp_entity(v: Value) -> Result<RpEntity, CtapError> {
    let mut m = cbor::text_keyed(v)?;
    let id = cbor::text(m.remove("id").ok_or(CtapError::MissingParameter)?)?;
    let name = m.remove("name").map(cbor::text).transpose()?;
    Ok(RpEntity { id, name })
}

pub(crate) fn user_entity(v: Value) -> Result<UserEntity, CtapError> {
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

pub(crate) fn descriptor(v: Value) -> Result<CredentialDescriptor, CtapError> {
    let mut m = cbor::text_keyed(v)?;
    let kind = cbor::text(m.remove("type").ok_or(CtapError::MissingParameter)?)?;
    let id = cbor::bytes(m.remove("id").ok_or(CtapError::MissingParameter)?)?;
    Ok(CredentialDescriptor { kind, id })
}

pub(crate) fn descriptor_list(v: Value) -> Result<Vec<CredentialDescriptor>, CtapError> {
    cbor::array(v)?.into_iter().map(descriptor).collect()
}

pub(crate) fn cred_params(v: Value) -> Result<Vec<(String, i64)>, CtapError> {
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

pub(crate) fn options(v: Value) -> Result<Options, CtapError> {
    let mut m = cbor::text_keyed(v)?;
    let mut flag = |k: &str| m.remove(k).map(cbor::boolean).transpose();
    Ok(Options {
        rk: flag("rk")?,
        up: flag("up")?,
        uv: flag("uv")?,
    })
}

pub(crate) fn string_list(v: Value) -> Result<Vec<String>, CtapError> {
    cbor::array(v)?.into_iter().map(cbor::text).collect()
}

/// A user entity as responses carry it: id, then name and displayName when known.
pub(crate) fn user_value(u: &UserEntity) -> Value {
    let mut user = vec![("id", Value::Bytes(u.id.clone()))];
    if let Some(n) = &u.name {
        user.push(("name", Value::Text(n.clone())));
    }
    if let Some(d) = &u.display_name {
        user.push(("displayName", Value::Text(d.clone())));
    }
    cbor::text_map(user)
}

/// The map credential management and authenticatorConfig share:
/// subCommand (1), subCommandParams (2), pinUvAuthProtocol (3),
/// pinUvAuthParam (4).
pub(crate) struct SubcommandMap {
    pub subcommand: u64,
    /// As sent: the pinUvAuthParam is made over its encoding.
    pub sub_params: Option<Value>,
    pub protocol: Option<u64>,
    pub pin_uv_auth_param: Option<Vec<u8>>,
}

impl SubcommandMap {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, CtapError> {
        let mut m = RequestMap::parse(bytes)?;
        let subcommand = cbor::unsigned(m.required(0x01)?)?;
        let sub_params = m.take(0x02);
        let protocol = m.take(0x03).map(cbor::unsigned).transpose()?;
        let pin_uv_auth_param = m.take(0x04).map(cbor::bytes).transpose()?;
        Ok(Self {
            subcommand,
            sub_params,
            protocol,
            pin_uv_auth_param,
        })
    }
}
