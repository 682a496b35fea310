//! Authenticator data (WebAuthn §6.1): the bytes the signature covers.

use crate::AAGUID;
use sha2::{Digest, Sha256};

/// Flag bits of the authenticator data.
pub mod flags {
    pub const UP: u8 = 0x01;
    pub const UV: u8 = 0x04;
    /// Backup eligibility. Never set: a LocalPasskey credential cannot be synced.
    pub const BE: u8 = 0x08;
    /// Backup state. Never set, for the same reason.
    pub const BS: u8 = 0x10;
    pub const AT: u8 = 0x40;
    pub const ED: u8 = 0x80;
}

/// Assemble authenticator data. `attested` is (credential id, COSE public key)
/// for MakeCredential; `extensions` is already-encoded CBOR.
pub fn build(
    rp_id: &str,
    flag_bits: u8,
    sign_count: u32,
    attested: Option<(&[u8], &[u8])>,
    extensions: Option<&[u8]>,
) -> Vec<u8> {
    // BE and BS are masked here, in the one place every authenticator data
    // is made, so no code path can ever claim a credential is synced.
    let mut f = flag_bits & !(flags::BE | flags::BS | flags::AT | flags::ED);
    if attested.is_some() {
        f |= flags::AT;
    }
    if extensions.is_some() {
        f |= flags::ED;
    }
    let mut out = Vec::with_capacity(37 + 18 + 32 + 80);
    out.extend_from_slice(&Sha256::digest(rp_id.as_bytes()));
    out.push(f);
    out.extend_from_slice(&sign_count.to_be_bytes());
    if let Some((cred_id, cose_key)) = attested {
        out.extend_from_slice(&AAGUID);
        // Credential ids are 32 bytes; the length always fits in u16.
        out.extend_from_slice(&(cred_id.len() as u16).to_be_bytes());
        out.extend_from_slice(cred_id);
        out.extend_from_slice(cose_key);
    }
    if let Some(ext) = extensions {
        out.extend_from_slice(ext);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_flags_can_never_be_set() {
        let d = build("example.com", 0xff, 1, None, None);
        assert_eq!(d[32] & (flags::BE | flags::BS), 0);
        assert_eq!(
            d[32] & (flags::AT | flags::ED),
            0,
            "AT/ED follow the content, not the caller"
        );
        assert_eq!(d.len(), 37);
        assert_eq!(&d[33..37], &[0, 0, 0, 1]);
    }

    #[test]
    fn attested_layout() {
        let d = build("example.com", flags::UP, 0, Some((&[9; 32], &[0xa0])), None);
        assert_eq!(d[32], flags::UP | flags::AT);
        assert_eq!(&d[37..53], &AAGUID);
        assert_eq!(&d[53..55], &[0, 32]);
        assert_eq!(d.len(), 37 + 16 + 2 + 32 + 1);
    }
}
