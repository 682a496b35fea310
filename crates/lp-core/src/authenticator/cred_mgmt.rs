//! authenticatorCredentialManagement (0x0A, and the 0x41 prototype that
//! older platforms send), CTAP 2.1 §6.8: list, delete and rename passkeys.
//!
//! Every subcommand but the two "next" ones needs a pinUvAuthToken with the
//! cm permission; the "next" ones continue a listing that one started.

use super::verification::account_label;
use super::{Authenticator, CtapResult};
use crate::activity::{Act, Outcome};
use crate::cbor;
use crate::clock::Millis;
use crate::pin::permission;
use crate::pin_protocol::ProtocolVersion;
use crate::status::CtapError;
use crate::store::Credential;
use crate::types::credential_management::{
    CredentialEntry, Request, Response, RpEntry, SubParams, Subcommand,
};
use crate::types::UserEntity;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;

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
        let listing = self.listing.take();
        let req = Request::decode(params)?;
        let read_only = match req.subcommand {
            Subcommand::EnumerateRpsGetNextRp => return self.next_rp(listing),
            Subcommand::EnumerateCredentialsGetNextCredential => return self.next_credential(listing),
            Subcommand::GetCredsMetadata
            | Subcommand::EnumerateRpsBegin
            | Subcommand::EnumerateCredentialsBegin => true,
            Subcommand::DeleteCredential | Subcommand::UpdateUserInformation => false,
        };

        let param = req.pin_uv_auth_param.as_deref().ok_or(CtapError::PuatRequired)?;
        let version = ProtocolVersion::from_u64(req.protocol.ok_or(CtapError::MissingParameter)?)?;
        let message = req.signed_message();
        let now = self.clock.now();
        let (bound_rp, persistent) =
            match self
                .pin
                .token()
                .check(version, &message, param, permission::CM, None, now)
            {
                Ok(grant) => (grant.rp_id.clone(), false),
                // CTAP 2.2: the persistent token (pcmr) reads, and only reads.
                Err(e) if !read_only => return Err(e),
                Err(e) => {
                    let token = self.persistent_token()?.ok_or(e)?;
                    token.check(version, &message, param)?;
                    (None, true)
                }
            };
        let mut p = SubParams::decode(req.sub_params)?;

        let answer = match req.subcommand {
            Subcommand::GetCredsMetadata => {
                // A token bound to one RP may not look at all of them (§6.8.2).
                if bound_rp.is_some() {
                    return Err(CtapError::PinAuthInvalid);
                }
                let count = self.store.count_discoverable()?;
                Response {
                    existing_resident_credentials_count: Some(count),
                    max_possible_remaining_resident_credentials_count: Some(
                        MAX_DISCOVERABLE.saturating_sub(count),
                    ),
                    ..Response::default()
                }
            }
            Subcommand::EnumerateRpsBegin => {
                if bound_rp.is_some() {
                    return Err(CtapError::PinAuthInvalid);
                }
                let mut rps: VecDeque<_> = self.store.discoverable_rps()?.into();
                let total = rps.len();
                let first = rps.pop_front().ok_or(CtapError::NoCredentials)?;
                if !rps.is_empty() {
                    self.listing = Some(Listing::Rps(rps, now + LISTING_WINDOW_MS));
                }
                Response {
                    rp: Some(rp_entry(first)),
                    total_rps: Some(total),
                    ..Response::default()
                }
            }
            Subcommand::EnumerateCredentialsBegin => {
                let hash = p.rp_id_hash.take().ok_or(CtapError::MissingParameter)?;
                if let Some(rp) = &bound_rp {
                    if Sha256::digest(rp.as_bytes())[..] != hash[..] {
                        return Err(CtapError::PinAuthInvalid);
                    }
                }
                let rp_id = self
                    .store
                    .discoverable_rp_by_hash(&hash)?
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
                Response {
                    credential: Some(self.credential_entry(&first, with_secrets)?),
                    total_credentials: Some(total),
                    ..Response::default()
                }
            }
            Subcommand::DeleteCredential => {
                let id = p.credential_id.take().ok_or(CtapError::MissingParameter)?;
                let cred = self.store.get(&id)?.ok_or(CtapError::NoCredentials)?;
                if bound_rp.as_ref().is_some_and(|rp| *rp != cred.rp_id) {
                    return Err(CtapError::PinAuthInvalid);
                }
                // The row holds the wrapped key blobs: deleting it is what
                // makes the credential unusable for good.
                let account = account_label(&cred);
                self.note(Act::Delete, &cred.rp_id, account.as_deref(), Outcome::Approved);
                self.store.delete(&id)?;
                self.forget_keys(&cred);
                tracing::info!(rp = ?cred.rp_id, "credential deleted by the platform");
                return Ok(None);
            }
            Subcommand::UpdateUserInformation => {
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
                let account = user.name.as_deref().or(user.display_name.as_deref());
                self.note(Act::Rename, &cred.rp_id, account, Outcome::Approved);
                self.store
                    .update_user(&id, user.name.as_deref(), user.display_name.as_deref())?;
                return Ok(None);
            }
            Subcommand::EnumerateRpsGetNextRp | Subcommand::EnumerateCredentialsGetNextCredential => {
                return Err(CtapError::InvalidSubcommand)
            }
        };
        Ok(Some(answer.into()))
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
        let answer = Response {
            rp: Some(rp_entry(rp)),
            ..Response::default()
        };
        Ok(Some(answer.into()))
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
        let answer = Response {
            credential: Some(self.credential_entry(&cred, with_secrets)?),
            ..Response::default()
        };
        Ok(Some(answer.into()))
    }

    fn credential_entry(&mut self, c: &Credential, with_secrets: bool) -> Result<CredentialEntry, CtapError> {
        let large_blob_key = if with_secrets {
            self.secret_in_clear(c.large_blob_key.as_deref())?
        } else {
            None
        };
        Ok(CredentialEntry {
            user: UserEntity {
                id: c.user_id.clone(),
                name: c.user_name.clone(),
                display_name: c.user_display_name.clone(),
            },
            credential_id: c.id.clone(),
            public_key: cbor::decode(&c.public_key_cose)?,
            cred_protect: c.cred_protect,
            large_blob_key,
            third_party_payment: c.third_party_payment,
        })
    }
}

fn rp_entry((id, name): (String, Option<String>)) -> RpEntry {
    let id_hash = Sha256::digest(id.as_bytes()).to_vec();
    RpEntry { id, name, id_hash }
}
