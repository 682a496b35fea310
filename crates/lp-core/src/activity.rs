//! The local activity log: what this authenticator was asked to do, for whom,
//! and how it ended.
//!
//! A sign-in the person did not expect is how they notice that something on
//! their machine uses their passkeys. So every signature, registration,
//! deletion, PIN change and reset leaves one entry, and so does every request
//! the person refused or that ran out of time. An entry holds no secret and
//! no client data: the time, the RP ID, the account's name, the action and
//! the outcome.

/// Entries older than this many days are trimmed unless the person chose
/// otherwise (`activity.retention_days` in the store's meta table).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// Whatever the retention, the log never holds more entries than this, so a
/// program that hammers the authenticator cannot fill the disk.
pub const MAX_ENTRIES: u64 = 100_000;

/// The meta key of the retention setting (a little-endian u32 of days).
pub const RETENTION_META: &str = "activity.retention_days";

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// What was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Register,
    SignIn,
    /// A signature without the person's presence (up=false): what browsers
    /// send to find out whether a passkey is here. No site may take it as a
    /// sign-in, but it is logged like one: it uses the key.
    Check,
    Delete,
    Rename,
    SetPin,
    ChangePin,
    /// A PIN or built-in verification for a pinUvAuthToken.
    Unlock,
    Reset,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Refused,
    TimedOut,
    Cancelled,
    WrongPin,
    Blocked,
    Failed,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// Unix milliseconds.
    pub time: u64,
    pub act: Act,
    pub outcome: Outcome,
    /// Empty for requests that concern no site (reset, PIN).
    pub rp_id: String,
    /// The user name, else the display name; empty when there is none.
    pub account: String,
}

macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The stable name used in the store, over D-Bus and in `--json`.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some($ty::$variant),)* _ => None }
            }
        }
    };
}

names!(Act {
    Register => "register",
    SignIn => "sign_in",
    Check => "check",
    Delete => "delete",
    Rename => "rename",
    SetPin => "set_pin",
    ChangePin => "change_pin",
    Unlock => "unlock",
    Reset => "reset",
});

names!(Outcome {
    Approved => "approved",
    Refused => "refused",
    TimedOut => "timed_out",
    Cancelled => "cancelled",
    WrongPin => "wrong_pin",
    Blocked => "blocked",
    Failed => "failed",
});

impl Outcome {
    /// How a request that ended with this CTAP status is recorded.
    pub fn of_status(status: crate::status::CtapError) -> Self {
        use crate::status::CtapError as E;
        match status {
            E::OperationDenied => Outcome::Refused,
            E::UserActionTimeout => Outcome::TimedOut,
            E::KeepaliveCancel => Outcome::Cancelled,
            E::PinInvalid => Outcome::WrongPin,
            E::PinBlocked | E::PinAuthBlocked | E::UvBlocked => Outcome::Blocked,
            _ => Outcome::Failed,
        }
    }
}

/// The oldest time an entry may have at `now` under a retention of `days`.
pub fn cutoff(now_unix_ms: u64, days: u32) -> u64 {
    now_unix_ms.saturating_sub(u64::from(days) * DAY_MS)
}

/// The retention stored in meta, if it is a valid one.
pub fn retention_from_meta(value: Option<&[u8]>) -> u32 {
    value
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(u32::from_le_bytes)
        .filter(|d| *d > 0)
        .unwrap_or(DEFAULT_RETENTION_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for act in [
            Act::Register,
            Act::SignIn,
            Act::Check,
            Act::Delete,
            Act::Rename,
            Act::SetPin,
            Act::ChangePin,
            Act::Unlock,
            Act::Reset,
        ] {
            assert_eq!(Act::parse(act.as_str()), Some(act));
        }
        for o in [
            Outcome::Approved,
            Outcome::Refused,
            Outcome::TimedOut,
            Outcome::Cancelled,
            Outcome::WrongPin,
            Outcome::Blocked,
            Outcome::Failed,
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Act::parse("sign-in"), None);
    }

    #[test]
    fn retention() {
        assert_eq!(retention_from_meta(None), DEFAULT_RETENTION_DAYS);
        assert_eq!(retention_from_meta(Some(&7u32.to_le_bytes())), 7);
        assert_eq!(
            retention_from_meta(Some(&0u32.to_le_bytes())),
            DEFAULT_RETENTION_DAYS
        );
        assert_eq!(retention_from_meta(Some(b"x")), DEFAULT_RETENTION_DAYS);
        assert_eq!(cutoff(10 * DAY_MS, 3), 7 * DAY_MS);
        assert_eq!(cutoff(DAY_MS, 3), 0);
    }
}
