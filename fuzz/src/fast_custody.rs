//! A custody for the fuzzers only: the software custody's vault, seals and
//! HMACs (cheap already), with key creation and signing replaced by hashes,
//! so an input costs microseconds instead of P-256 arithmetic. Its keys are
//! plainly fake (a counter) and its "signatures" are SHA-256 digests that no
//! relying party would take; what the harness checks (status codes, CBOR
//! shape, flags, counters) does not depend on them. The `ctap_real` target
//! keeps the real software custody and key agreement.

use lp_core::custody::insecure_software::InsecureSoftwareCustody;
use lp_core::custody::{Algorithm, CustodyError, KeyCustody, NewKey, PublicKey};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

const KEY_TAG: &[u8; 8] = b"FUZZKEY1";

#[derive(Debug, Default)]
pub struct FastCustody {
    inner: InsecureSoftwareCustody,
    made: u64,
}

impl FastCustody {
    /// The real custody's lock rule: sealing nothing fails exactly when it is locked.
    fn require_unlocked(&mut self) -> Result<(), CustodyError> {
        self.inner.seal(&[]).map(|_| ())
    }
}

impl KeyCustody for FastCustody {
    fn name(&self) -> &'static str {
        "fake-for-fuzzing"
    }

    fn is_hardware(&self) -> bool {
        false
    }

    fn algorithms(&self) -> Vec<Algorithm> {
        self.inner.algorithms()
    }

    fn create_key(&mut self, alg: Algorithm) -> Result<NewKey, CustodyError> {
        self.require_unlocked()?;
        self.made += 1;
        let mut blob = KEY_TAG.to_vec();
        blob.extend_from_slice(&alg.cose().to_be_bytes());
        blob.extend_from_slice(&self.made.to_be_bytes());
        let public = match alg.coordinate_len() {
            Some(n) => PublicKey::Ec2 {
                alg,
                x: vec![1; n],
                y: vec![2; n],
            },
            None => PublicKey::Rsa {
                alg,
                n: vec![0xc5; 256],
                e: vec![1, 0, 1],
            },
        };
        Ok(NewKey { blob, public })
    }

    fn sign(&mut self, blob: &[u8], message: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.require_unlocked()?;
        if !blob.starts_with(KEY_TAG) {
            return Err(CustodyError::InvalidBlob);
        }
        let mut h = DefaultHasher::new();
        blob.hash(&mut h);
        message.hash(&mut h);
        Ok(h.finish().to_be_bytes().repeat(8))
    }

    fn create_hmac_key(&mut self) -> Result<Vec<u8>, CustodyError> {
        self.inner.create_hmac_key()
    }

    fn hmac(&mut self, blob: &[u8], message: &[u8]) -> Result<[u8; 32], CustodyError> {
        self.inner.hmac(blob, message)
    }

    fn seal(&mut self, data: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.inner.seal(data)
    }

    fn unseal(&mut self, blob: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.inner.unseal(blob)
    }

    fn reset(&mut self, vault: Option<&[u8]>) -> Result<(), CustodyError> {
        self.inner.reset(vault)
    }

    fn create_vault(&mut self, auth: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        self.inner.create_vault(auth)
    }

    fn unlock(&mut self, vault: &[u8], auth: &[u8; 32]) -> Result<Option<Vec<u8>>, CustodyError> {
        self.inner.unlock(vault, auth)
    }

    fn pin_retries(&mut self, vault: &[u8]) -> Result<Option<u8>, CustodyError> {
        self.inner.pin_retries(vault)
    }

    fn change_auth(&mut self, vault: &[u8], old: &[u8; 32], new: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        self.inner.change_auth(vault, old, new)
    }

    fn commit_change(
        &mut self,
        vault: &[u8],
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<Vec<u8>, CustodyError> {
        self.inner.commit_change(vault, old, new)
    }

    fn lock(&mut self) {
        self.inner.lock();
    }

    fn is_unlocked(&self) -> bool {
        self.inner.is_unlocked()
    }
}
