//! The platform's half of clientPIN (CTAP 2.2 §6.5): what a browser or
//! libfido2 does before it sends a PIN. One implementation, built on the
//! request types the authenticator decodes (`types::client_pin`), for our
//! CLI, the benchmark, the fuzzers and the unit tests.
//!
//! Each constructor returns the [`Request`]; `encode` makes the bytes. A
//! caller that wants a broken request (the fuzzers) changes a field first.

use crate::pin;
use crate::pin_protocol::{self, KeyAgreement, ProtocolVersion, SharedSecret};
use crate::status::CtapError;
use crate::types::client_pin::{Request, Response, Subcommand};
use zeroize::Zeroizing;

/// getKeyAgreement: the first step of everything below.
pub fn get_key_agreement(version: ProtocolVersion) -> Request {
    Request::new(Some(version), Subcommand::GetKeyAgreement)
}

/// getPINRetries (no protocol needed).
pub fn get_pin_retries() -> Request {
    Request::new(None, Subcommand::GetPinRetries)
}

/// The 64-byte zero-padded block setPIN and changePIN encrypt; a PIN over
/// 63 bytes cannot be sent (CTAP2_ERR_PIN_POLICY_VIOLATION, as the
/// authenticator would answer).
pub fn padded_pin(pin: &[u8]) -> Result<Zeroizing<Vec<u8>>, CtapError> {
    if pin.len() > pin::MAX_PIN_BYTES {
        return Err(CtapError::PinPolicyViolation);
    }
    let mut p = Zeroizing::new(pin.to_vec());
    p.resize(64, 0);
    Ok(p)
}

/// pinUvAuthParam for MakeCredential and GetAssertion: authenticate(token,
/// clientDataHash).
pub fn pin_uv_auth_param(version: ProtocolVersion, token: &[u8; 32], client_data_hash: &[u8]) -> Vec<u8> {
    pin_protocol::authenticate_with_token(version, token, client_data_hash)
}

/// Our ephemeral key and the secret it shares with the authenticator.
pub struct PinSession {
    ours: KeyAgreement,
    shared: SharedSecret,
}

impl PinSession {
    /// From getKeyAgreement's answer (its body after the status byte).
    pub fn from_answer(version: ProtocolVersion, body: &[u8]) -> Result<Self, CtapError> {
        Self::with_key(KeyAgreement::new(), version, body)
    }

    /// The same with a key of the caller's (the fuzzers fix theirs).
    pub fn with_key(ours: KeyAgreement, version: ProtocolVersion, body: &[u8]) -> Result<Self, CtapError> {
        let theirs = Response::decode(body)?
            .key_agreement
            .ok_or(CtapError::MissingParameter)?;
        // ECDH is symmetric: our secret with their public key.
        let shared = ours.shared_secret(version, theirs)?;
        Ok(Self { ours, shared })
    }

    pub fn version(&self) -> ProtocolVersion {
        self.shared.version()
    }

    pub fn shared(&self) -> &SharedSecret {
        &self.shared
    }

    fn request(&self, subcommand: Subcommand) -> Request {
        let mut r = Request::new(Some(self.version()), subcommand);
        r.key_agreement = Some(self.ours.public_cose());
        r
    }

    /// setPIN with a padded block (see [`padded_pin`]).
    pub fn set_pin(&self, padded: &[u8]) -> Result<Request, CtapError> {
        let enc = self.shared.encrypt(padded)?;
        let mut r = self.request(Subcommand::SetPin);
        r.pin_uv_auth_param = Some(self.shared.authenticate(&enc));
        r.new_pin_enc = Some(enc);
        Ok(r)
    }

    /// changePIN from `old_pin` to the padded new one.
    pub fn change_pin(&self, old_pin: &[u8], padded_new: &[u8]) -> Result<Request, CtapError> {
        let new_enc = self.shared.encrypt(padded_new)?;
        let hash_enc = self.shared.encrypt(&pin::pin_hash(old_pin)[..])?;
        let mut r = self.request(Subcommand::ChangePin);
        r.pin_uv_auth_param = Some(self.shared.authenticate(&[&new_enc[..], &hash_enc[..]].concat()));
        r.new_pin_enc = Some(new_enc);
        r.pin_hash_enc = Some(hash_enc);
        Ok(r)
    }

    /// getPinToken (`permissions` None) or
    /// getPinUvAuthTokenUsingPinWithPermissions.
    pub fn pin_token(
        &self,
        pin: &[u8],
        permissions: Option<(u8, Option<&str>)>,
    ) -> Result<Request, CtapError> {
        let hash_enc = self.shared.encrypt(&pin::pin_hash(pin)[..])?;
        let mut r = match permissions {
            None => self.request(Subcommand::GetPinToken),
            Some((perms, rp_id)) => {
                let mut r = self.request(Subcommand::GetPinUvAuthTokenUsingPinWithPermissions);
                r.permissions = Some(perms.into());
                r.rp_id = rp_id.map(str::to_owned);
                r
            }
        };
        r.pin_hash_enc = Some(hash_enc);
        Ok(r)
    }

    /// getPinUvAuthTokenUsingUvWithPermissions: the authenticator's own
    /// prompt verifies the person.
    pub fn uv_token(&self, permissions: u8, rp_id: Option<&str>) -> Request {
        let mut r = self.request(Subcommand::GetPinUvAuthTokenUsingUvWithPermissions);
        r.permissions = Some(permissions.into());
        r.rp_id = rp_id.map(str::to_owned);
        r
    }

    /// The token in a token answer's body, decrypted.
    pub fn token(&self, body: &[u8]) -> Result<Zeroizing<[u8; 32]>, CtapError> {
        let enc = Response::decode(body)?
            .pin_uv_auth_token
            .ok_or(CtapError::MissingParameter)?;
        let plain = Zeroizing::new(self.shared.decrypt(&enc)?);
        let token: [u8; 32] = plain
            .as_slice()
            .try_into()
            .map_err(|_| CtapError::InvalidLength)?;
        Ok(Zeroizing::new(token))
    }
}

/// The platform side against our own authenticator: every request the
/// constructors make is one the authenticator takes.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::{Authenticator, Config};
    use crate::clock::ManualClock;
    use crate::custody::insecure_software::InsecureSoftwareCustody;
    use crate::pin::permission;
    use crate::store::MemoryStore;
    use crate::user::{AlwaysApprove, NoInteraction};
    use std::sync::Arc;

    fn call(auth: &mut Authenticator, r: &Request) -> Result<Vec<u8>, u8> {
        let resp = auth.handle(&r.encode(), &NoInteraction);
        match resp.split_first() {
            Some((0, body)) => Ok(body.to_vec()),
            Some((&code, _)) => Err(code),
            None => Err(0xff),
        }
    }

    #[test]
    fn set_change_and_use_a_pin_with_both_protocols() {
        for v in [ProtocolVersion::One, ProtocolVersion::Two] {
            let mut auth = Authenticator::new(
                Box::new(InsecureSoftwareCustody::new()),
                Box::new(MemoryStore::new()),
                Box::new(AlwaysApprove),
                Arc::new(ManualClock::new()),
                Config::default(),
            );
            let session = |auth: &mut Authenticator| {
                let body = call(auth, &get_key_agreement(v)).unwrap();
                PinSession::from_answer(v, &body).unwrap()
            };
            let s = session(&mut auth);
            call(&mut auth, &s.set_pin(&padded_pin(b"1234").unwrap()).unwrap()).unwrap();
            let s = session(&mut auth);
            call(
                &mut auth,
                &s.change_pin(b"1234", &padded_pin(b"5678").unwrap()).unwrap(),
            )
            .unwrap();
            let s = session(&mut auth);
            let wrong = call(&mut auth, &s.pin_token(b"1234", None).unwrap());
            assert_eq!(wrong, Err(CtapError::PinInvalid.code()), "{v:?}");
            let s = session(&mut auth);
            let body = call(
                &mut auth,
                &s.pin_token(b"5678", Some((permission::GA, Some("example.com"))))
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(s.token(&body).unwrap().len(), 32);
            let retries = Response::decode(&call(&mut auth, &get_pin_retries()).unwrap()).unwrap();
            assert_eq!(retries.pin_retries, Some(pin::MAX_RETRIES));
        }
        assert_eq!(
            padded_pin(&[b'1'; 64]).unwrap_err(),
            CtapError::PinPolicyViolation
        );
    }
}
