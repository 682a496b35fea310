//! PIN and pinUvAuthToken state (CTAP 2.1 §6.5).
//!
//! What must survive a crash is persisted through the store's meta table:
//! whether a PIN is set (the custody's vault blob), the per-installation
//! salt, the retry counters. What the spec ties to a power cycle (the token,
//! the key-agreement key) lives here in memory.
//!
//! There is deliberately no PIN hash on disk. The PIN is checked by the
//! custody: its hash, through a KDF with the installation salt, *is* the
//! vault's authorisation, so for the TPM custody the TPM itself decides
//! whether a PIN is right and counts wrong ones against its lockout. A
//! stored hash of a 4-digit PIN would be guessed offline in microseconds.

use crate::clock::Millis;
use crate::pin_protocol::{self, ProtocolVersion};
use crate::status::CtapError;
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// pinUvAuthToken permissions (CTAP 2.1 §6.5.5.7).
pub mod permission {
    pub const MC: u8 = 0x01;
    pub const GA: u8 = 0x02;
    pub const CM: u8 = 0x04;
    pub const BE: u8 = 0x08;
    pub const LBW: u8 = 0x10;
    pub const ACFG: u8 = 0x20;
    /// CTAP 2.2: persistent credential management, read-only.
    pub const PCMR: u8 = 0x40;
}

/// Wrong PINs allowed in total before the PIN is blocked for good.
pub const MAX_RETRIES: u8 = 8;
/// Consecutive wrong PINs allowed before a power cycle is needed.
pub const MAX_FAILURES_PER_BOOT: u8 = 3;
/// The spec's minimum, in Unicode code points.
pub const MIN_PIN_CODE_POINTS: usize = 4;
/// 64 bytes of padded PIN, at least one of them a terminating zero.
pub const MAX_PIN_BYTES: usize = 63;

/// A token nobody has used expires after this long (the spec's "initial
/// usage time limit"); every use extends it by as much again.
pub const TOKEN_IDLE_MS: Millis = 30_000;
/// No token lives longer than this, however often it is used.
pub const TOKEN_MAX_LIFETIME_MS: Millis = 600_000;
/// CTAP 2.1 §6.5.2.1 userPresentTimeLimit: the presence a token carries
/// counts for this long after it was collected, not for the token's life.
pub const USER_PRESENT_TIME_LIMIT_MS: Millis = 30_000;

/// Keys in the store's meta table.
pub mod meta {
    /// The custody's vault blob; its presence means "a PIN is set".
    pub const VAULT: &str = "pin.vault";
    pub const SALT: &str = "pin.salt";
    pub const RETRIES: &str = "pin.retries";
    /// Consecutive failures since the last power cycle. Persisted, so that
    /// restarting the daemon (or killing it mid-check) is not a way to get
    /// fresh tries; only a power cycle clears it.
    pub const BOOT_FAILURES: &str = "pin.boot_failures";
    pub const CODE_POINTS: &str = "pin.code_points";
    pub const FORCE_CHANGE: &str = "pin.force_change";
    /// authenticatorConfig's minimum PIN length, and the RPs that may read it.
    pub const MIN_LENGTH: &str = "pin.min_length";
    pub const MIN_LENGTH_RPS: &str = "pin.min_length_rps";
    /// The persistentPinUvAuthToken (see `persistent_token`).
    pub const PERSISTENT_TOKEN: &str = "pin.persistent_token";
    /// GetInfo's device identifier (encrypted to the persistent token's
    /// holder): random, made when first needed, new after a Reset.
    pub const IDENTIFIER: &str = "device.identifier";
    pub const ALL: [&str; 10] = [
        VAULT,
        SALT,
        RETRIES,
        BOOT_FAILURES,
        CODE_POINTS,
        FORCE_CHANGE,
        MIN_LENGTH,
        MIN_LENGTH_RPS,
        PERSISTENT_TOKEN,
        IDENTIFIER,
    ];
}

/// A power cycle clears the "3 wrong PINs in a row" block (the daemon's
/// first start in a new boot of the machine is the real device's).
pub fn clear_boot_failures(
    store: &mut dyn crate::store::CredentialStore,
) -> Result<(), crate::store::StoreError> {
    store.set_meta(meta::BOOT_FAILURES, &[0])
}

/// LEFT(SHA-256(pin), 16): what the platform sends for an existing PIN.
pub fn pin_hash(pin: &[u8]) -> Zeroizing<[u8; 16]> {
    let digest = Sha256::digest(pin);
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&digest[..16]);
    out
}

/// The vault's authorisation value: HKDF over the PIN hash with the
/// installation's random salt, so the same PIN on two machines (or after a
/// reset) gives unrelated vault secrets.
pub fn vault_auth(pin_hash: &[u8; 16], salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA-256's 8160-byte limit: expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), pin_hash).expand(b"LocalPasskey vault authValue v1", &mut *out);
    out
}

/// Checks a new PIN from the 64-byte padded block the platform encrypted.
pub fn parse_new_pin(padded: &[u8], min_code_points: usize) -> Result<Zeroizing<Vec<u8>>, CtapError> {
    if padded.len() != 64 {
        return Err(CtapError::InvalidParameter);
    }
    let len = padded.iter().position(|&b| b == 0).unwrap_or(padded.len());
    let pin = Zeroizing::new(padded[..len].to_vec());
    if pin.len() > MAX_PIN_BYTES {
        return Err(CtapError::PinPolicyViolation);
    }
    let text = std::str::from_utf8(&pin).map_err(|_| CtapError::PinPolicyViolation)?;
    if text.chars().count() < min_code_points {
        return Err(CtapError::PinPolicyViolation);
    }
    Ok(pin)
}

/// What a live token allows.
#[derive(Debug, Clone)]
pub struct Grant {
    pub permissions: u8,
    /// The permissions RP ID: set at issue, or bound at first use.
    pub rp_id: Option<String>,
    /// The token was obtained with the person present (built-in UV).
    pub user_present: bool,
    pub user_verified: bool,
    /// The credential our own prompt named (RP ID and account) when the
    /// person verified for this token, i.e. the account they approved. A
    /// GetAssertion that finds exactly this credential, and no other, may
    /// then say `userSelected` (CTAP 2.1 §6.2.2). Spent with the presence.
    pub confirmed_credential: Option<Vec<u8>>,
    /// The person picked `confirmed_credential` from a list of several
    /// accounts, rather than approving the one account named: only a pick
    /// stands for a choice against the RP's other credentials.
    pub credential_chosen: bool,
    /// The PIN/UV auth protocol the token was issued through: the only one
    /// its pinUvAuthParams are accepted with.
    protocol: ProtocolVersion,
    issued: Millis,
    expires: Millis,
}

/// The pinUvAuthToken. Its value is random, regenerated whenever a token is
/// issued, and never leaves this struct except encrypted to the platform.
pub struct Token {
    value: Zeroizing<[u8; 32]>,
    grant: Option<Grant>,
}

impl Default for Token {
    fn default() -> Self {
        Self::new()
    }
}

impl Token {
    pub fn new() -> Self {
        let mut value = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *value);
        Self { value, grant: None }
    }

    /// Issue a fresh token value with these rights (resetPinUvAuthToken +
    /// beginUsingPinUvAuthToken).
    pub fn issue(
        &mut self,
        protocol: ProtocolVersion,
        permissions: u8,
        rp_id: Option<String>,
        user_present: bool,
        now: Millis,
    ) -> &[u8; 32] {
        OsRng.fill_bytes(&mut *self.value);
        self.grant = Some(Grant {
            permissions,
            rp_id,
            user_present,
            user_verified: true,
            confirmed_credential: None,
            credential_chosen: false,
            protocol,
            issued: now,
            expires: now + TOKEN_IDLE_MS,
        });
        &self.value
    }

    /// Records that the prompt which verified the person for the live token
    /// named this credential's account, and the person approved it.
    pub fn confirm_credential(&mut self, id: Vec<u8>) {
        if let Some(g) = self.grant.as_mut() {
            g.confirmed_credential = Some(id);
            g.credential_chosen = false;
        }
    }

    /// Records that the person picked this credential's account from the
    /// several the prompt listed when it verified them for the live token.
    pub fn choose_credential(&mut self, id: Vec<u8>) {
        if let Some(g) = self.grant.as_mut() {
            g.confirmed_credential = Some(id);
            g.credential_chosen = true;
        }
    }

    /// stopUsingPinUvAuthToken, and a new value so the old one is worthless.
    pub fn revoke(&mut self) {
        self.grant = None;
        self.value.zeroize();
        OsRng.fill_bytes(&mut *self.value);
    }

    /// Drops the grant if its time is up, and its presence once the
    /// userPresentTimeLimit has passed. Returns true if the grant just expired.
    pub fn expire(&mut self, now: Millis) -> bool {
        if self.grant.as_ref().is_some_and(|g| now >= g.expires) {
            self.revoke();
            return true;
        }
        if let Some(g) = self.grant.as_mut() {
            if now >= g.issued + USER_PRESENT_TIME_LIMIT_MS {
                g.user_present = false;
                g.confirmed_credential = None;
                g.credential_chosen = false;
            }
        }
        false
    }

    pub fn is_live(&self, now: Millis) -> bool {
        self.grant.as_ref().is_some_and(|g| now < g.expires)
    }

    /// When the grant runs out, for the daemon's timer.
    pub fn deadline(&self) -> Option<Millis> {
        self.grant.as_ref().map(|g| g.expires)
    }

    /// Verify a pinUvAuthParam made with this token over `message`, and that
    /// the token carries `permission`, bound to `rp_id` if given. Every
    /// failure is CTAP2_ERR_PIN_AUTH_INVALID, as the spec prescribes.
    pub fn check(
        &mut self,
        version: ProtocolVersion,
        message: &[u8],
        param: &[u8],
        permission: u8,
        rp_id: Option<&str>,
        now: Millis,
    ) -> Result<&mut Grant, CtapError> {
        self.expire(now);
        let Some(grant) = self.grant.as_mut() else {
            return Err(CtapError::PinAuthInvalid);
        };
        if grant.protocol != version {
            return Err(CtapError::PinAuthInvalid);
        }
        pin_protocol::verify_with_token(version, &self.value, message, param)?;
        // The userVerified flag matters to MakeCredential and GetAssertion
        // only (they check it); a spent token keeps its lbw permission.
        if grant.permissions & permission == 0 {
            return Err(CtapError::PinAuthInvalid);
        }
        if let (Some(bound), Some(rp)) = (grant.rp_id.as_deref(), rp_id) {
            if bound != rp {
                return Err(CtapError::PinAuthInvalid);
            }
        }
        if grant.rp_id.is_none() {
            grant.rp_id = rp_id.map(str::to_owned);
        }
        grant.expires = (now + TOKEN_IDLE_MS).min(grant.issued + TOKEN_MAX_LIFETIME_MS);
        Ok(grant)
    }

    /// After MakeCredential or GetAssertion used the token (CTAP 2.1 §6.1.2
    /// step 19, §6.2.2 step 12): the presence it carried is spent, and only
    /// the largeBlobWrite permission survives.
    pub fn spend(&mut self) {
        if let Some(g) = self.grant.as_mut() {
            g.user_present = false;
            g.user_verified = false;
            g.confirmed_credential = None;
            g.credential_chosen = false;
            g.permissions &= permission::LBW;
        }
    }

    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(token: &Token, v: ProtocolVersion, msg: &[u8]) -> Vec<u8> {
        pin_protocol::authenticate_with_token(v, &token.value, msg)
    }

    #[test]
    fn new_pin_rules() {
        let pad = |s: &[u8]| {
            let mut v = s.to_vec();
            v.resize(64, 0);
            v
        };
        assert!(parse_new_pin(&pad(b"1234"), 4).is_ok());
        assert_eq!(
            parse_new_pin(&pad(b"123"), 4).unwrap_err(),
            CtapError::PinPolicyViolation
        );
        // Four code points, eight bytes: long enough.
        assert!(parse_new_pin(&pad("ääää".as_bytes()), 4).is_ok());
        assert_eq!(
            parse_new_pin(&[b'1'; 64], 4).unwrap_err(),
            CtapError::PinPolicyViolation
        );
        assert!(parse_new_pin(&pad(&[b'1'; 63]), 4).is_ok());
        assert_eq!(
            parse_new_pin(&pad(&[0xff, 0xfe, 0xfd, 0xfc]), 4).unwrap_err(),
            CtapError::PinPolicyViolation
        );
        assert_eq!(
            parse_new_pin(&[b'1'; 32], 4).unwrap_err(),
            CtapError::InvalidParameter
        );
    }

    /// CTAP 2.1 §6.5.2.1: userPresent is cleared after userPresentTimeLimit,
    /// while the token itself (and its verification) lives on.
    #[test]
    fn presence_ends_at_the_user_present_time_limit() {
        let v = ProtocolVersion::Two;
        let mut t = Token::new();
        t.issue(v, permission::GA, Some("a.example".into()), true, 0);
        t.confirm_credential(vec![1; 32]);
        let msg = [2u8; 32];
        let p = param(&t, v, &msg);
        let g = t
            .check(
                v,
                &msg,
                &p,
                permission::GA,
                Some("a.example"),
                USER_PRESENT_TIME_LIMIT_MS - 1,
            )
            .unwrap();
        assert!(g.user_present && g.confirmed_credential.is_some());
        let g = t
            .check(
                v,
                &msg,
                &p,
                permission::GA,
                Some("a.example"),
                USER_PRESENT_TIME_LIMIT_MS + 1,
            )
            .unwrap();
        assert!(!g.user_present && g.user_verified);
        assert_eq!(g.confirmed_credential, None);
    }

    /// A token is bound to the PIN/UV auth protocol that issued it.
    #[test]
    fn a_token_is_accepted_only_with_its_own_protocol() {
        let mut t = Token::new();
        t.issue(ProtocolVersion::Two, permission::MC, None, false, 0);
        let msg = [3u8; 32];
        let p1 = param(&t, ProtocolVersion::One, &msg);
        assert_eq!(
            t.check(ProtocolVersion::One, &msg, &p1, permission::MC, None, 1)
                .unwrap_err(),
            CtapError::PinAuthInvalid
        );
        let p2 = param(&t, ProtocolVersion::Two, &msg);
        assert!(t
            .check(ProtocolVersion::Two, &msg, &p2, permission::MC, None, 1)
            .is_ok());
    }

    #[test]
    fn vault_auth_depends_on_pin_and_salt() {
        let a = vault_auth(&pin_hash(b"1234"), &[1; 32]);
        assert_ne!(*a, *vault_auth(&pin_hash(b"1235"), &[1; 32]));
        assert_ne!(*a, *vault_auth(&pin_hash(b"1234"), &[2; 32]));
        assert_eq!(*a, *vault_auth(&pin_hash(b"1234"), &[1; 32]));
    }

    #[test]
    fn token_checks_mac_permission_rp_and_time() {
        let v = ProtocolVersion::Two;
        let mut t = Token::new();
        let msg = [5u8; 32];
        assert_eq!(
            t.check(v, &msg, &[0; 32], permission::MC, None, 0).unwrap_err(),
            CtapError::PinAuthInvalid
        );
        t.issue(v, permission::MC, None, false, 0);
        let p = param(&t, v, &msg);
        assert_eq!(
            t.check(v, &msg, &p, permission::GA, Some("a.example"), 1)
                .unwrap_err(),
            CtapError::PinAuthInvalid
        );
        assert!(t.check(v, &msg, &p, permission::MC, Some("a.example"), 1).is_ok());
        // Now bound to a.example.
        assert_eq!(
            t.check(v, &msg, &p, permission::MC, Some("b.example"), 2)
                .unwrap_err(),
            CtapError::PinAuthInvalid
        );
        let mut bad = p.clone();
        bad[0] ^= 1;
        assert_eq!(
            t.check(v, &msg, &bad, permission::MC, Some("a.example"), 3)
                .unwrap_err(),
            CtapError::PinAuthInvalid
        );
        // Idle too long.
        assert_eq!(
            t.check(v, &msg, &p, permission::MC, Some("a.example"), 3 + TOKEN_IDLE_MS)
                .unwrap_err(),
            CtapError::PinAuthInvalid
        );
        assert!(!t.is_live(3 + TOKEN_IDLE_MS));
    }

    #[test]
    fn token_lifetime_is_capped_and_spending_keeps_only_lbw() {
        let v = ProtocolVersion::One;
        let mut t = Token::new();
        t.issue(
            v,
            permission::GA | permission::LBW,
            Some("a.example".into()),
            true,
            0,
        );
        let msg = [1u8; 32];
        let p = param(&t, v, &msg);
        let mut now = 0;
        while now + TOKEN_IDLE_MS / 2 < TOKEN_MAX_LIFETIME_MS {
            now += TOKEN_IDLE_MS / 2;
            assert!(
                t.check(v, &msg, &p, permission::GA, Some("a.example"), now)
                    .is_ok(),
                "at {now}"
            );
        }
        assert!(t
            .check(
                v,
                &msg,
                &p,
                permission::GA,
                Some("a.example"),
                TOKEN_MAX_LIFETIME_MS
            )
            .is_err());
        t.issue(v, permission::GA | permission::LBW, None, true, 0);
        t.confirm_credential(vec![7; 32]);
        assert_eq!(
            t.grant().unwrap().confirmed_credential.as_deref(),
            Some(&[7u8; 32][..])
        );
        t.spend();
        let g = t.grant().unwrap();
        assert_eq!(g.permissions, permission::LBW);
        assert!(!g.user_present);
        assert_eq!(
            g.confirmed_credential, None,
            "the approval is spent with the presence"
        );
    }
}
