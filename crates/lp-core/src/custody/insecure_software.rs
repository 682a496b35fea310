//! INSECURE software key custody, for unit tests and the UDP simulation only.
//!
//! The "blob" this custody hands out *is the private scalar*, so whoever reads
//! the credential store can copy every key; and its "vault" is a verifier
//! anyone can brute-force offline. That is exactly what LocalPasskey exists to
//! prevent, which is why this custody is named the way it is, why the daemon
//! prints a warning when it uses it, and why it is refused with a real HID
//! transport unless forced. It keeps the same rules as the TPM custody (no
//! key creation or signature while the vault is locked) so that the
//! authenticator is tested against the same contract.

use super::{Algorithm, CustodyError, KeyCustody, NewKey, PublicKey};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// A version tag so a blob from this custody is never mistaken for a TPM blob.
const BLOB_TAG: &[u8; 8] = b"INSECURE";
const VAULT_TAG: &[u8; 8] = b"INSVAULT";
const HMAC_TAG: &[u8; 8] = b"INSHMAC1";
const DATA_TAG: &[u8; 8] = b"INSDATA1";
/// The byte after BLOB_TAG that says which kind of key follows.
const ALG_ES256: u8 = 1;
const ALG_ES384: u8 = 2;
const ALG_RS256: u8 = 3;
const ALG_ES512: u8 = 4;
const ALG_PS256: u8 = 5;

/// An uncompressed SEC1 point (`04 || x || y`) as the COSE key's coordinates.
fn ec2(alg: Algorithm, sec1: &[u8]) -> Result<PublicKey, CustodyError> {
    match sec1.split_first() {
        Some((4, xy)) if Some(xy.len()) == alg.coordinate_len().map(|n| 2 * n) => {
            let (x, y) = xy.split_at(xy.len() / 2);
            Ok(PublicKey::Ec2 {
                alg,
                x: x.to_vec(),
                y: y.to_vec(),
            })
        }
        _ => Err(CustodyError::Backend("not an uncompressed point".into())),
    }
}

/// The most parsed keys kept at once; beyond it the cache starts again
/// empty (a parse costs one scalar multiplication, or the RSA precomputation).
const KEY_CACHE_LIMIT: usize = 256;

/// A private key parsed from its blob, ready to sign. Each variant's type
/// zeroizes its secret when dropped.
enum ParsedKey {
    Es256(SigningKey),
    Es384(p384::ecdsa::SigningKey),
    Es512(p521::ecdsa::SigningKey),
    Rs256(rsa::RsaPrivateKey),
    Ps256(rsa::RsaPrivateKey),
}

impl ParsedKey {
    /// Parsing is what costs: for an EC key `from_slice` computes the public
    /// point (a scalar multiplication as dear as the signature), for RSA the
    /// CRT values are checked and precomputed.
    fn parse(blob: &[u8]) -> Result<Self, CustodyError> {
        let body = blob
            .strip_prefix(BLOB_TAG.as_slice())
            .ok_or(CustodyError::InvalidBlob)?;
        // A bare 32-byte scalar: an ES256 key made before there were others.
        let (alg, key) = match body.split_first() {
            _ if body.len() == 32 => (ALG_ES256, body),
            Some((&alg, key)) => (alg, key),
            None => return Err(CustodyError::InvalidBlob),
        };
        let invalid = |_| CustodyError::InvalidBlob;
        Ok(match alg {
            ALG_ES256 => Self::Es256(SigningKey::from_slice(key).map_err(invalid)?),
            ALG_ES384 => Self::Es384(p384::ecdsa::SigningKey::from_slice(key).map_err(invalid)?),
            ALG_ES512 => Self::Es512(p521::ecdsa::SigningKey::from_slice(key).map_err(invalid)?),
            ALG_RS256 | ALG_PS256 => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let key = rsa::RsaPrivateKey::from_pkcs1_der(key).map_err(|_| CustodyError::InvalidBlob)?;
                if alg == ALG_RS256 {
                    Self::Rs256(key)
                } else {
                    Self::Ps256(key)
                }
            }
            _ => return Err(CustodyError::InvalidBlob),
        })
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CustodyError> {
        let failed = |_| CustodyError::Backend("sign".into());
        match self {
            Self::Es256(key) => {
                let digest: [u8; 32] = Sha256::digest(message).into();
                let sig: Signature = key.sign_prehash(&digest).map_err(failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Self::Es384(key) => {
                let digest = sha2::Sha384::digest(message);
                let sig: p384::ecdsa::Signature = key.sign_prehash(&digest).map_err(failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Self::Es512(key) => {
                let digest = sha2::Sha512::digest(message);
                let sig: p521::ecdsa::Signature = key.sign_prehash(&digest).map_err(failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Self::Rs256(key) => key
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
                .map_err(|_| CustodyError::Backend("sign".into())),
            Self::Ps256(key) => key
                .sign_with_rng(
                    &mut OsRng,
                    rsa::Pss::new_with_salt::<Sha256>(32),
                    &Sha256::digest(message),
                )
                .map_err(|_| CustodyError::Backend("sign".into())),
        }
    }
}

#[derive(Default)]
pub struct InsecureSoftwareCustody {
    unlocked: bool,
    /// Parsed keys for the life of one unlock, by SHA-256 of the blob (so
    /// the map holds no copy of a scalar); emptied, and so zeroized, by every
    /// path that locks.
    keys: HashMap<[u8; 32], ParsedKey>,
    /// SHA-256 of the vault this unlock opened: the right PIN again for the
    /// same vault (each getPinUvAuthToken) continues the unlock, and keeps
    /// the parsed keys, as the TPM custody keeps its vault loaded.
    vault_id: Option<[u8; 32]>,
}

/// By hand, so that no key material can reach a log through `{:?}`.
impl std::fmt::Debug for InsecureSoftwareCustody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsecureSoftwareCustody")
            .field("unlocked", &self.unlocked)
            .field("cached_keys", &self.keys.len())
            .field("vault_id", &self.vault_id.is_some())
            .finish()
    }
}

impl InsecureSoftwareCustody {
    pub fn new() -> Self {
        Self::default()
    }

    /// `tag || salt || SHA-256(salt || auth)`: a verifier, nothing more.
    fn vault_for(auth: &[u8; 32], salt: &[u8]) -> Vec<u8> {
        let mut out = VAULT_TAG.to_vec();
        out.extend_from_slice(salt);
        out.extend_from_slice(&Sha256::new().chain_update(salt).chain_update(auth).finalize());
        out
    }

    fn check(vault: &[u8], auth: &[u8; 32]) -> Result<(), CustodyError> {
        let body = vault
            .strip_prefix(VAULT_TAG.as_slice())
            .ok_or(CustodyError::InvalidBlob)?;
        if body.len() != 64 {
            return Err(CustodyError::InvalidBlob);
        }
        if Self::vault_for(auth, &body[..32]) == vault {
            Ok(())
        } else {
            Err(CustodyError::AuthFailed)
        }
    }

    /// Locked again: every parsed key is dropped (their types zeroize on drop).
    fn set_locked(&mut self) {
        self.unlocked = false;
        self.vault_id = None;
        self.keys.clear();
    }

    fn remember(&mut self, blob: &[u8], key: ParsedKey) {
        if self.keys.len() >= KEY_CACHE_LIMIT {
            self.keys.clear();
        }
        self.keys.insert(Sha256::digest(blob).into(), key);
    }

    fn require_unlocked(&self) -> Result<(), CustodyError> {
        if self.unlocked {
            Ok(())
        } else {
            Err(CustodyError::Locked)
        }
    }
}

impl KeyCustody for InsecureSoftwareCustody {
    fn name(&self) -> &'static str {
        "insecure-software"
    }

    fn is_hardware(&self) -> bool {
        false
    }

    fn algorithms(&self) -> Vec<Algorithm> {
        Algorithm::ALL.to_vec()
    }

    /// `tag || algorithm byte || the private key` (scalar, or PKCS#1 DER for RSA).
    fn create_key(&mut self, alg: Algorithm) -> Result<NewKey, CustodyError> {
        self.require_unlocked()?;
        let (tag, private, public, parsed) = match alg {
            Algorithm::Es256 => {
                let key = SigningKey::random(&mut OsRng);
                let point = key.verifying_key().to_encoded_point(false);
                let private = key.to_bytes().to_vec();
                (
                    ALG_ES256,
                    private,
                    ec2(alg, point.as_bytes())?,
                    ParsedKey::Es256(key),
                )
            }
            Algorithm::Es384 => {
                let key = p384::ecdsa::SigningKey::random(&mut OsRng);
                let point = key.verifying_key().to_encoded_point(false);
                let private = key.to_bytes().to_vec();
                (
                    ALG_ES384,
                    private,
                    ec2(alg, point.as_bytes())?,
                    ParsedKey::Es384(key),
                )
            }
            Algorithm::Es512 => {
                let key = p521::ecdsa::SigningKey::random(&mut OsRng);
                let point = p521::ecdsa::VerifyingKey::from(&key).to_encoded_point(false);
                let private = key.to_bytes().to_vec();
                (
                    ALG_ES512,
                    private,
                    ec2(alg, point.as_bytes())?,
                    ParsedKey::Es512(key),
                )
            }
            Algorithm::Rs256 | Algorithm::Ps256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::traits::PublicKeyParts;
                let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048)
                    .map_err(|e| CustodyError::Backend(format!("RSA key generation: {e}")))?;
                let der = key
                    .to_pkcs1_der()
                    .map_err(|e| CustodyError::Backend(format!("RSA key encoding: {e}")))?;
                let public = PublicKey::Rsa {
                    alg,
                    n: key.n().to_bytes_be(),
                    e: key.e().to_bytes_be(),
                };
                let (tag, parsed) = if alg == Algorithm::Rs256 {
                    (ALG_RS256, ParsedKey::Rs256(key))
                } else {
                    (ALG_PS256, ParsedKey::Ps256(key))
                };
                (tag, der.as_bytes().to_vec(), public, parsed)
            }
        };
        let private = zeroize::Zeroizing::new(private);
        let mut blob = BLOB_TAG.to_vec();
        blob.push(tag);
        blob.extend_from_slice(&private);
        // A MakeCredential signs its attestation with the key it just made.
        self.remember(&blob, parsed);
        Ok(NewKey { blob, public })
    }

    fn sign(&mut self, blob: &[u8], message: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.require_unlocked()?;
        let id: [u8; 32] = Sha256::digest(blob).into();
        if let Some(key) = self.keys.get(&id) {
            return key.sign(message);
        }
        let key = ParsedKey::parse(blob)?;
        let signature = key.sign(message);
        self.remember(blob, key);
        signature
    }

    fn forget_key(&mut self, blob: &[u8]) {
        let id: [u8; 32] = Sha256::digest(blob).into();
        self.keys.remove(&id);
    }

    fn create_hmac_key(&mut self) -> Result<Vec<u8>, CustodyError> {
        self.require_unlocked()?;
        let mut blob = HMAC_TAG.to_vec();
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        blob.extend_from_slice(&key);
        Ok(blob)
    }

    fn hmac(&mut self, blob: &[u8], message: &[u8]) -> Result<[u8; 32], CustodyError> {
        use hmac::Mac;
        self.require_unlocked()?;
        let key = blob
            .strip_prefix(HMAC_TAG.as_slice())
            .ok_or(CustodyError::InvalidBlob)?;
        if key.len() != 32 {
            return Err(CustodyError::InvalidBlob);
        }
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).map_err(|_| CustodyError::InvalidBlob)?;
        mac.update(message);
        Ok(mac.finalize().into_bytes().into())
    }

    /// Not sealed at all: the tag says which custody it is for, nothing more.
    fn seal(&mut self, data: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.require_unlocked()?;
        Ok([&DATA_TAG[..], data].concat())
    }

    fn unseal(&mut self, blob: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.require_unlocked()?;
        blob.strip_prefix(&DATA_TAG[..])
            .map(<[u8]>::to_vec)
            .ok_or(CustodyError::InvalidBlob)
    }

    /// Nothing to revoke: this custody has no state outside its blobs, so
    /// an old copy of the database opens again (one reason it is insecure).
    fn reset(&mut self, _vault: Option<&[u8]>) -> Result<(), CustodyError> {
        self.set_locked();
        Ok(())
    }

    fn create_vault(&mut self, auth: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        let mut salt = [0u8; 32];
        OsRng.fill_bytes(&mut salt);
        self.set_locked();
        let vault = Self::vault_for(auth, &salt);
        self.unlocked = true;
        self.vault_id = Some(Sha256::digest(&vault).into());
        Ok(vault)
    }

    fn unlock(&mut self, vault: &[u8], auth: &[u8; 32]) -> Result<Option<Vec<u8>>, CustodyError> {
        let id: [u8; 32] = Sha256::digest(vault).into();
        let continued = self.unlocked && self.vault_id == Some(id);
        let keys = std::mem::take(&mut self.keys);
        self.set_locked();
        Self::check(vault, auth)?;
        if continued {
            self.keys = keys;
        } else {
            drop(keys);
        }
        self.unlocked = true;
        self.vault_id = Some(id);
        Ok(None)
    }

    /// This custody does not count: the authenticator's stored counter does.
    fn pin_retries(&mut self, _vault: &[u8]) -> Result<Option<u8>, CustodyError> {
        Ok(None)
    }

    fn change_auth(&mut self, vault: &[u8], old: &[u8; 32], new: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        Self::check(vault, old)?;
        let salt = &vault[VAULT_TAG.len()..VAULT_TAG.len() + 32];
        Ok(Self::vault_for(new, salt))
    }

    fn commit_change(
        &mut self,
        vault: &[u8],
        _old: &[u8; 32],
        _new: &[u8; 32],
    ) -> Result<Vec<u8>, CustodyError> {
        Ok(vault.to_vec())
    }

    fn lock(&mut self) {
        self.set_locked();
    }

    fn is_unlocked(&self) -> bool {
        self.unlocked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_the_key_it_made_only_while_unlocked() {
        let mut c = InsecureSoftwareCustody::new();
        assert!(matches!(
            c.create_key(Algorithm::Es256),
            Err(CustodyError::Locked)
        ));
        let vault = c.create_vault(&[1; 32]).unwrap();
        for alg in Algorithm::ALL {
            let k = c.create_key(alg).unwrap();
            assert_eq!(k.public.algorithm(), alg);
            let message = b"authenticator data || client data hash";
            let sig = c.sign(&k.blob, message).unwrap();
            assert!(k.public.verifies(message, &sig), "{alg:?}");
            assert!(!k.public.verifies(b"another message", &sig), "{alg:?}");
        }
        let k = c.create_key(Algorithm::Es256).unwrap();
        c.lock();
        assert!(matches!(c.sign(&k.blob, b"m"), Err(CustodyError::Locked)));
        assert!(matches!(
            c.unlock(&vault, &[2; 32]),
            Err(CustodyError::AuthFailed)
        ));
        c.unlock(&vault, &[1; 32]).unwrap();
        assert!(c.sign(&k.blob, b"m").is_ok());
    }

    /// Keys stored before there were several algorithms: a bare scalar.
    #[test]
    fn a_bare_scalar_is_an_es256_key() {
        let mut c = InsecureSoftwareCustody::new();
        c.create_vault(&[1; 32]).unwrap();
        let k = c.create_key(Algorithm::Es256).unwrap();
        let old = [&BLOB_TAG[..], &k.blob[BLOB_TAG.len() + 1..]].concat();
        let sig = c.sign(&old, b"m").unwrap();
        assert!(k.public.verifies(b"m", &sig));
    }

    /// The parsed keys live exactly as long as the unlock: every way out
    /// of it drops them, and a re-parsed key signs as the cached one did.
    #[test]
    fn parsed_keys_go_with_the_lock() {
        let mut c = InsecureSoftwareCustody::new();
        let vault = c.create_vault(&[1; 32]).unwrap();
        let k = c.create_key(Algorithm::Es256).unwrap();
        assert_eq!(c.keys.len(), 1, "a new key is kept for its attestation");
        assert!(k.public.verifies(b"m", &c.sign(&k.blob, b"m").unwrap()));
        c.lock();
        assert!(c.keys.is_empty());
        assert!(matches!(c.sign(&k.blob, b"m"), Err(CustodyError::Locked)));
        c.unlock(&vault, &[1; 32]).unwrap();
        assert!(c.keys.is_empty());
        assert!(k.public.verifies(b"m", &c.sign(&k.blob, b"m").unwrap()));
        assert_eq!(c.keys.len(), 1, "parsed once, then cached");
        c.unlock(&vault, &[1; 32]).unwrap();
        assert_eq!(c.keys.len(), 1, "the right PIN again continues the unlock");
        let other = InsecureSoftwareCustody::new().create_vault(&[1; 32]).unwrap();
        c.unlock(&other, &[1; 32]).unwrap();
        assert!(c.keys.is_empty(), "another vault is another unlock");
        c.unlock(&vault, &[1; 32]).unwrap();
        c.sign(&k.blob, b"m").unwrap();
        assert!(matches!(
            c.unlock(&vault, &[2; 32]),
            Err(CustodyError::AuthFailed)
        ));
        assert!(c.keys.is_empty(), "a wrong PIN locks, and so forgets");
        c.unlock(&vault, &[1; 32]).unwrap();
        c.sign(&k.blob, b"m").unwrap();
        c.reset(None).unwrap();
        assert!(c.keys.is_empty());
        assert!(matches!(c.sign(&k.blob, b"m"), Err(CustodyError::Locked)));
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut c = InsecureSoftwareCustody::new();
        c.create_vault(&[1; 32]).unwrap();
        let keys: Vec<_> = (0..KEY_CACHE_LIMIT + 1)
            .map(|_| c.create_key(Algorithm::Es256).unwrap())
            .collect();
        assert!(c.keys.len() <= KEY_CACHE_LIMIT);
        for k in &keys[..3] {
            assert!(k.public.verifies(b"m", &c.sign(&k.blob, b"m").unwrap()));
        }
    }

    #[test]
    fn change_auth_keeps_keys() {
        let mut c = InsecureSoftwareCustody::new();
        let vault = c.create_vault(&[1; 32]).unwrap();
        let k = c.create_key(Algorithm::Es256).unwrap();
        let vault2 = c.change_auth(&vault, &[1; 32], &[3; 32]).unwrap();
        assert!(matches!(
            c.change_auth(&vault, &[9; 32], &[3; 32]),
            Err(CustodyError::AuthFailed)
        ));
        c.lock();
        assert!(matches!(
            c.unlock(&vault2, &[1; 32]),
            Err(CustodyError::AuthFailed)
        ));
        c.unlock(&vault2, &[3; 32]).unwrap();
        assert!(c.sign(&k.blob, &[0; 32]).is_ok());
    }

    #[test]
    fn rejects_foreign_blobs() {
        let mut c = InsecureSoftwareCustody::new();
        c.create_vault(&[0; 32]).unwrap();
        for bad in [&b"garbage"[..], b"INSECURE\x00", b"INSECURE\x09abc", b"INSECURE"] {
            assert!(matches!(c.sign(bad, &[0; 32]), Err(CustodyError::InvalidBlob)));
        }
        assert!(matches!(
            c.unlock(b"INSVAULTshort", &[0; 32]),
            Err(CustodyError::InvalidBlob)
        ));
    }
}
