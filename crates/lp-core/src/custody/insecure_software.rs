//! INSECURE software key custody, for unit tests and the UDP simulation only.
//!
//! The "blob" this custody hands out *is the private scalar*, so whoever reads
//! the credential store can copy every key. That is exactly what LocalPasskey
//! exists to prevent, which is why this custody is named the way it is, why
//! the daemon prints a warning when it uses it, and why it is refused with the
//! real HID transport unless forced.

use super::{CustodyError, KeyCustody, NewKey, PublicKey};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use rand_core::OsRng;

/// A version tag so a blob from this custody is never mistaken for a TPM blob.
const BLOB_TAG: &[u8; 8] = b"INSECURE";

#[derive(Debug, Default)]
pub struct InsecureSoftwareCustody;

impl InsecureSoftwareCustody {
    pub fn new() -> Self {
        Self
    }
}

impl KeyCustody for InsecureSoftwareCustody {
    fn name(&self) -> &'static str {
        "insecure-software"
    }

    fn is_hardware(&self) -> bool {
        false
    }

    fn create_key(&mut self) -> Result<NewKey, CustodyError> {
        let key = SigningKey::random(&mut OsRng);
        let point = key.verifying_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(CustodyError::Backend("identity point".into()));
        };
        let mut blob = BLOB_TAG.to_vec();
        blob.extend_from_slice(&key.to_bytes());
        Ok(NewKey {
            blob,
            public: PublicKey {
                x: (*x).into(),
                y: (*y).into(),
            },
        })
    }

    fn sign_digest(&mut self, blob: &[u8], digest: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        let scalar = blob
            .strip_prefix(BLOB_TAG.as_slice())
            .ok_or(CustodyError::InvalidBlob)?;
        let key = SigningKey::from_slice(scalar).map_err(|_| CustodyError::InvalidBlob)?;
        let sig: Signature = key
            .sign_prehash(digest)
            .map_err(|_| CustodyError::Backend("sign".into()))?;
        Ok(sig.to_der().as_bytes().to_vec())
    }

    fn reset(&mut self) -> Result<(), CustodyError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::ecdsa::VerifyingKey;
    use p256::EncodedPoint;

    #[test]
    fn signs_with_the_key_it_made() {
        let mut c = InsecureSoftwareCustody::new();
        let k = c.create_key().unwrap();
        let digest = [7u8; 32];
        let der = c.sign_digest(&k.blob, &digest).unwrap();
        let point = EncodedPoint::from_affine_coordinates(&k.public.x.into(), &k.public.y.into(), false);
        let vk = VerifyingKey::from_encoded_point(&point).unwrap();
        let sig = Signature::from_der(&der).unwrap();
        vk.verify_prehash(&digest, &sig).unwrap();
    }

    #[test]
    fn rejects_foreign_blobs() {
        let mut c = InsecureSoftwareCustody::new();
        assert!(matches!(
            c.sign_digest(b"garbage", &[0; 32]),
            Err(CustodyError::InvalidBlob)
        ));
        assert!(matches!(
            c.sign_digest(b"INSECURE\x00", &[0; 32]),
            Err(CustodyError::InvalidBlob)
        ));
    }
}
