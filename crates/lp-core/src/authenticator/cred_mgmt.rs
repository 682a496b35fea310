//! authenticatorCredentialManagement (0x0A, and the 0x41 prototype that
//! older platforms send), CTAP 2.1 §6.8: list, delete and rename passkeys.
//!
//! Every subcommand but the two "next" ones needs a pinUvAuthToken with the
//! cm permission; the "next" ones continue a listing that one started.

use super::{Authenticator, CtapResult};
use crate::cbor::{self, int_map, text_map, RequestMap};
use crate::clock::Millis;
use crate::pin::permission;
use crate::pin_protocol::ProtocolVersion;
use crate::status::CtapError;
use crate::store::Credential;
use ciborium::value::Value;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;

mod sub {
    pub const GET_CREDS_METADATA: u64 = 0x01;
    pub const ENUMERATE_RPS_BEGIN: u64 = 0x02;
    pub const ENUMERATE_RPS_NEXT: u64 = 0x03;
    pub const ENUMERATE_CREDS_BEGIN: u64 = 0x04;
    pub const ENUMERATE_CREDS_NEXT: u64 = 0x05;
    pub const DELETE_CREDENTIAL: u64 = 0x06;
    pub const UPDATE_USER_INFORMATION: u64 = 0x07;
}

/// How many discoverable credentials we are willing to hold.
pub const MAX_DISCOVERABLE: u64 = 1_000_000;

/// How long a listing may wait for its next "next" (as for GetNextAssertion).
const LISTING_WINDOW_MS: Millis = 30_000;

/// An enumeration in progress.
pub(super) enum Listing {
    Rps(VecDeque<(String, Option<String>)>, Millis),
    /// The flag: whether largeBlobKeys are listed (not for the persistent token).
    Credentials(VecDeque<Credential>, bool, Millis),
}

impl Authenticator {
    pub(super) fn credential_management(&mut self, params: &[u8]) -> CtapResult {
        let mut m = RequestMap::parse(params)?;
        let subcommand = cbor::unsigned(m.required(0x01)?)?;
        let sub_params = m.take(0x02);
        let protocol = m.take(0x03).map(cbor::unsigned).transpose()?;
        let param = m.take(0x04).map(cbor::bytes).transpose()?;
        let listing = self.listing.take();

        match subcommand {
            sub::ENUMERATE_RPS_NEXT => return self.next_rp(listing),
            sub::ENUMERATE_CREDS_NEXT => return self.next_credential(listing),
            sub::GET_CREDS_METADATA
            | sub::ENUMERATE_RPS_BEGIN
            | sub::ENUMERATE_CREDS_BEGIN
            | sub::DELETE_CREDENTIAL
            | sub::UPDATE_USER_INFORMATION => {}
            _ => return Err(CtapError::InvalidSubcommand),
        }

        let param = param.ok_or(CtapError::PuatRequired)?;
        let version = ProtocolVersion::from_u64(protocol.ok_or(CtapError::MissingParameter)?)?;
        let mut message = vec![subcommand as u8];
        if let Some(p) = &sub_params {
            message.extend(cbor::encode(p));
        }
        let now = self.clock.now();
        let read_only = matches!(
            subcommand,
            sub::GET_CREDS_METADATA | sub::ENUMERATE_RPS_BEGIN | sub::ENUMERATE_CREDS_BEGIN
        );
        let (bound_rp, persistent) =
            match self
                .pin
                .token()
                .check(version, &message, &param, permission::CM, None, now)
            {
                Ok(grant) => (grant.rp_id.clone(), false),
                // CTAP 2.2: the persistent token (pcmr) reads, and only reads.
                Err(e) if !read_only => return Err(e),
                Err(e) => {
                    let token = self.persistent_token()?.ok_or(e)?;
                    token.check(version, &message, &param)?;
                    (None, true)
                }
            };
        let mut p = SubParams::decode(sub_params)?;

        match subcommand {
            sub::GET_CREDS_METADATA => {
                // A token bound to one RP may not look at all of them (§6.8.2).
                if bound_rp.is_some() {
                    return Err(CtapError::PinAuthInvalid);
                }
                let count = self.store.count_discoverable()?;
                Ok(Some(int_map([
                    (0x01, Value::Integer(count.into())),
                    (
                        0x02,
                        Value::Integer(MAX_DISCOVERABLE.saturating_sub(count).into()),
                    ),
                ])))
            }
            sub::ENUMERATE_RPS_BEGIN => {
                if bound_rp.is_some() {
                    return Err(CtapError::PinAuthInvalid);
                }
                let mut rps: VecDeque<_> = self.store.discoverable_rps()?.into();
                let total = rps.len();
                let first = rps.pop_front().ok_or(CtapError::NoCredentials)?;
                if !rps.is_empty() {
                    self.listing = Some(Listing::Rps(rps, now + LISTING_WINDOW_MS));
                }
                let mut out = rp_entries(&first);
                out.push((0x05, Value::Integer((total as u64).into())));
                Ok(Some(int_map(out)))
            }
            sub::ENUMERATE_CREDS_BEGIN => {
                let hash = p.rp_id_hash.take().ok_or(CtapError::MissingParameter)?;
                if let Some(rp) = &bound_rp {
                    if Sha256::digest(rp.as_bytes())[..] != hash[..] {
                        return Err(CtapError::PinAuthInvalid);
                    }
                }
                let rp_id = self
                    .store
                    .discoverable_rps()?
                    .into_iter()
                    .map(|(id, _)| id)
                    .find(|id| Sha256::digest(id.as_bytes())[..] == hash[..])
                    .ok_or(CtapError::NoCredentials)?;
                let mut creds: VecDeque<_> = self.store.discoverable_for_rp(&rp_id)?.into();
                let total = creds.len();
                let first = creds.pop_front().ok_or(CtapError::NoCredentials)?;
                // The largeBlobKey is a secret sealed in the vault: it goes
                // to a platform that has just verified the person, never to
                // the long-lived persistent token.
                let with_secrets = !persistent;
                if !creds.is_empty() {
                    self.listing = Some(Listing::Credentials(creds, with_secrets, now + LISTING_WINDOW_MS));
                }
                let key = self.listing_secret(&first, with_secrets)?;
                let mut out = credential_entries(&first, key)?;
                out.push((0x09, Value::Integer((total as u64).into())));
                Ok(Some(int_map(out)))
            }
            sub::DELETE_CREDENTIAL => {
                let id = p.credential_id.take().ok_or(CtapError::MissingParameter)?;
                let cred = self.store.get(&id)?.ok_or(CtapError::NoCredentials)?;
                if bound_rp.as_ref().is_some_and(|rp| *rp != cred.rp_id) {
                    return Err(CtapError::PinAuthInvalid);
                }
                // The row holds the wrapped key blobs: deleting it is what
                // makes the credential unusable for good.
                self.store.delete(&id)?;
                tracing::info!(rp = ?cred.rp_id, "credential deleted by the platform");
                Ok(None)
            }
            sub::UPDATE_USER_INFORMATION => {
                let id = p.credential_id.take().ok_or(CtapError::MissingParameter)?;
                let user = p.user.take().ok_or(CtapError::MissingParameter)?;
                let cred = self.store.get(&id)?.ok_or(CtapError::NoCredentials)?;
                if bound_rp.as_ref().is_some_and(|rp| *rp != cred.rp_id) {
                    return Err(CtapError::PinAuthInvalid);
                }
                if user.id != cred.user_id {
                    return Err(CtapError::InvalidParameter);
                }
                // §6.8.6: absent members are removed, present ones replaced.
                self.store
                    .update_user(&id, user.name.as_deref(), user.display_name.as_deref())?;
                Ok(None)
            }
            _ => Err(CtapError::InvalidSubcommand),
        }
    }

    fn next_rp(&mut self, listing: Option<Listing>) -> CtapResult {
        let now = self.clock.now();
        let Some(Listing::Rps(mut rps, expires)) = listing else {
            return Err(CtapError::NotAllowed);
        };
        if now > expires {
            return Err(CtapError::NotAllowed);
        }
        let rp = rps.pop_front().ok_or(CtapError::NotAllowed)?;
        if !rps.is_empty() {
            self.listing = Some(Listing::Rps(rps, now + LISTING_WINDOW_MS));
        }
        Ok(Some(int_map(rp_entries(&rp))))
    }

    fn next_credential(&mut self, listing: Option<Listing>) -> CtapResult {
        let now = self.clock.now();
        let Some(Listing::Credentials(mut creds, with_secrets, expires)) = listing else {
            return Err(CtapError::NotAllowed);
        };
        if now > expires {
            return Err(CtapError::NotAllowed);
        }
        let cred = creds.pop_front().ok_or(CtapError::NotAllowed)?;
        if !creds.is_empty() {
            self.listing = Some(Listing::Credentials(creds, with_secrets, now + LISTING_WINDOW_MS));
        }
        let key = self.listing_secret(&cred, with_secrets)?;
        Ok(Some(int_map(credential_entries(&cred, key)?)))
    }

    fn listing_secret(
        &mut self,
        cred: &Credential,
        with_secrets: bool,
    ) -> Result<Option<Vec<u8>>, CtapError> {
        if !with_secrets {
            return Ok(None);
        }
        self.secret_in_clear(cred.large_blob_key.as_deref())
    }
}

/// subCommandParams (§6.8): rpIDHash (1), credentialID (2), user (3).
#[derive(Default)]
struct SubParams {
    rp_id_hash: Option<Vec<u8>>,
    credential_id: Option<Vec<u8>>,
    user: Option<crate::types::UserEntity>,
}

impl SubParams {
    fn decode(v: Option<Value>) -> Result<Self, CtapError> {
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
                    p.user = Some(crate::types::UserEntity {
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

fn rp_entries((id, name): &(String, Option<String>)) -> Vec<(u64, Value)> {
    let mut rp = vec![("id", Value::Text(id.clone()))];
    if let Some(n) = name {
        rp.push(("name", Value::Text(n.clone())));
    }
    vec![
        (0x03, text_map(rp)),
        (0x04, Value::Bytes(Sha256::digest(id.as_bytes()).to_vec())),
    ]
}

fn credential_entries(
    c: &Credential,
    large_blob_key: Option<Vec<u8>>,
) -> Result<Vec<(u64, Value)>, CtapError> {
    let mut user = vec![("id", Value::Bytes(c.user_id.clone()))];
    if let Some(n) = &c.user_name {
        user.push(("name", Value::Text(n.clone())));
    }
    if let Some(d) = &c.user_display_name {
        user.push(("displayName", Value::Text(d.clone())));
    }
    let descriptor = text_map([
        ("id", Value::Bytes(c.id.clone())),
        ("type", Value::Text("public-key".into())),
    ]);
    let public_key = cbor::decode(&c.public_key_cose)?;
    let mut out = vec![
        (0x06, text_map(user)),
        (0x07, descriptor),
        (0x08, public_key),
        (0x0A, Value::Integer(c.cred_protect.into())),
    ];
    if let Some(k) = large_blob_key {
        out.push((0x0B, Value::Bytes(k)));
    }
    out.push((0x0C, Value::Bool(c.third_party_payment)));
    Ok(out)
}
