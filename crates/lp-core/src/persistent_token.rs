//! CTAP 2.2's persistentPinUvAuthToken: a token with the `pcmr` permission
//! (read-only credential management) that outlives power cycles, so that a
//! passkey manager can list what the authenticator holds without asking for
//! the PIN every time it starts.
//!
//! Unlike the pinUvAuthToken it is kept in the store, because it must
//! survive the daemon and the machine restarting. That costs nothing a copy
//! of the data directory does not already give: the token reads exactly the
//! RP IDs and account names the store holds in clear, and nothing it allows
//! touches the vault, a key or a secret. It is void after a PIN change or a
//! Reset, and a new one replaces the old.
//!
//! It also keys GetInfo's encIdentifier and encCredStoreState: the device
//! identifier and the credential store's state, encrypted so that only the
//! token's holder can read (and correlate) them.

use crate::pin_protocol::{self, ProtocolVersion};
use crate::status::CtapError;
use aes::Aes128;
use cbc::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF info strings of CTAP 2.2 §6.4 (encIdentifier, encCredStoreState).
pub const INFO_IDENTIFIER: &[u8] = b"encIdentifier";
pub const INFO_CRED_STORE_STATE: &[u8] = b"encCredStoreState";

pub struct PersistentToken {
    value: Zeroizing<[u8; 32]>,
    /// The PIN/UV auth protocol it was issued through, the only one its
    /// pinUvAuthParams are accepted with (as for the ordinary token).
    protocol: ProtocolVersion,
}

impl PersistentToken {
    /// A fresh random token (resetPersistentPinUvAuthToken).
    pub fn issue(protocol: ProtocolVersion) -> Self {
        let mut value = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *value);
        Self { value, protocol }
    }

    pub fn value(&self) -> &[u8; 32] {
        &self.value
    }

    /// The stored form: the protocol number, then the 32-byte value.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(33));
        out.push(self.protocol.as_u64() as u8);
        out.extend_from_slice(&*self.value);
        out
    }

    /// `None` for anything that is not what [`PersistentToken::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&protocol, value) = bytes.split_first()?;
        let protocol = ProtocolVersion::from_u64(protocol.into()).ok()?;
        let value: [u8; 32] = value.try_into().ok()?;
        Some(Self {
            value: Zeroizing::new(value),
            protocol,
        })
    }

    /// A pinUvAuthParam over `message` made with this token, through its
    /// own protocol. Any failure is CTAP2_ERR_PIN_AUTH_INVALID.
    pub fn check(&self, version: ProtocolVersion, message: &[u8], param: &[u8]) -> Result<(), CtapError> {
        if version != self.protocol {
            return Err(CtapError::PinAuthInvalid);
        }
        pin_protocol::verify_with_token(version, &self.value, message, param)
    }

    /// IV ‖ AES-128-CBC(HKDF-SHA-256(salt = 32×0x00, token, info), plaintext),
    /// as GetInfo sends encIdentifier and encCredStoreState (CTAP 2.2 §6.4).
    /// A fresh IV each time, so two GetInfo answers cannot be linked by it.
    pub fn encrypt(&self, info: &[u8], plaintext: &[u8; 16]) -> Vec<u8> {
        let mut key = Zeroizing::new([0u8; 16]);
        // 16 bytes is far below HKDF-SHA-256's limit: expand cannot fail.
        let _ = Hkdf::<Sha256>::new(Some(&[0u8; 32]), &*self.value).expand(info, &mut *key);
        let mut iv = [0u8; 16];
        OsRng.fill_bytes(&mut iv);
        let mut block = *plaintext;
        // One whole block and a 16-byte key and IV: this cannot fail.
        let _ = cbc::Encryptor::<Aes128>::new(&(*key).into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut block, 16);
        [iv.as_slice(), block.as_slice()].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cbc::cipher::BlockDecryptMut;

    #[test]
    fn survives_its_stored_form_and_keeps_its_protocol() {
        let t = PersistentToken::issue(ProtocolVersion::Two);
        let back = PersistentToken::from_bytes(&t.to_bytes()).unwrap();
        assert_eq!(back.value(), t.value());
        let param = pin_protocol::authenticate_with_token(ProtocolVersion::Two, t.value(), b"m");
        back.check(ProtocolVersion::Two, b"m", &param).unwrap();
        let one = pin_protocol::authenticate_with_token(ProtocolVersion::One, t.value(), b"m");
        assert_eq!(
            back.check(ProtocolVersion::One, b"m", &one),
            Err(CtapError::PinAuthInvalid)
        );
        assert!(PersistentToken::from_bytes(&[2; 32]).is_none());
        assert!(PersistentToken::from_bytes(&[3; 33]).is_none());
    }

    /// The platform's side, as python-fido2's `Info._decrypt` does it.
    #[test]
    fn encrypted_info_decrypts_with_the_token_and_never_repeats() {
        let t = PersistentToken::issue(ProtocolVersion::One);
        let secret = *b"0123456789abcdef";
        let a = t.encrypt(INFO_IDENTIFIER, &secret);
        let b = t.encrypt(INFO_IDENTIFIER, &secret);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b, "a fresh IV every time");
        let mut key = [0u8; 16];
        Hkdf::<Sha256>::new(Some(&[0u8; 32]), t.value())
            .expand(INFO_IDENTIFIER, &mut key)
            .unwrap();
        let (iv, ct) = a.split_at(16);
        let mut block: [u8; 16] = ct.try_into().unwrap();
        let iv: [u8; 16] = iv.try_into().unwrap();
        cbc::Decryptor::<Aes128>::new(&key.into(), &iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut block)
            .unwrap();
        assert_eq!(block, secret);
    }
}
