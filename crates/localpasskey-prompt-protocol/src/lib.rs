//! The pipe protocol between the daemon and its desktop dialog, one type
//! for each side to write and the other to read.
//!
//! stdin of the dialog, one JSON line:
//! `{"action":"sign_in","rp_id":"example.com","user_name":"alice","needs_pin":true,"retries":8,"timeout_ms":30000}`
//! its stdout, one JSON line: `{"answer":"approve"|"deny"|"timeout"}`, plus
//! `"pin"` only when `needs_pin` was true and the person approved.
//!
//! A username-less sign-in with several passkeys adds
//! `"accounts":[{"user_name":"alice","display_name":"Alice"},…]` to the
//! request, and an approval then says which one the person picked:
//! `"chosen":1` (an index into that list).
//!
//! A new PIN (the passkey manager's set and change) adds
//! `"new_pin_min_length":4`; the dialog then asks for it twice, checks the two
//! agree and are long enough, and answers `"new_pin"` (and `"pin"`, the
//! current one, when `needs_pin`). A report of a failure is the action
//! `failed` with `"message"`, and one button.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The longest request line either side accepts. Below the 64 KiB of a
/// Linux pipe buffer, so the daemon's write never waits for the dialog:
/// a dialog that hangs before reading cannot hang the daemon.
pub const MAX_REQUEST_BYTES: usize = 60 * 1024;

/// The most accounts a request lists; a site with more leaves the choice
/// to the platform.
pub const MAX_ACCOUNTS: usize = 64;

/// One account to choose from, in the site's own words (the dialog
/// sanitises them like the user name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Register,
    SignIn,
    AlreadyRegistered,
    Reset,
    Select,
    Unlock,
    ChangePin,
    Delete,
    SetPin,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub action: Action,
    #[serde(default)]
    pub rp_id: String,
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub needs_pin: bool,
    #[serde(default)]
    pub retries: Option<u8>,
    pub timeout_ms: u64,
    /// The accounts the person picks one of, most recent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<Account>,
    /// Ask for a new PIN of at least this many characters, typed twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_pin_min_length: Option<u8>,
    /// What to tell the person (the `failed` action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Request {
    /// The line the daemon writes, newline included.
    pub fn to_line(&self) -> String {
        // A plain struct of strings and numbers always serialises.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Approve,
    Deny,
    Timeout,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub answer: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<Zeroizing<String>>,
    /// With an approval of a request that listed accounts: the index of
    /// the one picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<usize>,
    /// With an approval of a request that asked for a new PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_pin: Option<Zeroizing<String>>,
}

impl Answer {
    pub fn of(answer: Kind) -> Self {
        Self {
            answer,
            pin: None,
            chosen: None,
            new_pin: None,
        }
    }

    /// The line the dialog writes, newline included.
    pub fn to_line(&self) -> Zeroizing<String> {
        // Serialising a plain struct cannot fail; if it ever did, the daemon
        // would read an empty line as "no answer" and deny: never a panic.
        let mut line = Zeroizing::new(serde_json::to_string(self).unwrap_or_default());
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_one_side_writes_the_other_reads() {
        let req = Request {
            action: Action::SignIn,
            rp_id: "example.com".into(),
            user_name: Some("alice".into()),
            needs_pin: true,
            retries: Some(8),
            timeout_ms: 30_000,
            accounts: vec![],
            new_pin_min_length: None,
            message: None,
        };
        assert!(!req.to_line().contains("accounts"), "no list, no field");
        let back: Request = serde_json::from_str(req.to_line().trim()).unwrap();
        assert_eq!(
            (back.action, back.rp_id.as_str(), back.retries),
            (Action::SignIn, "example.com", Some(8))
        );
        let answer = Answer {
            answer: Kind::Approve,
            pin: Some(Zeroizing::new("1234".into())),
            chosen: None,
            new_pin: None,
        };
        let back: Answer = serde_json::from_str(answer.to_line().trim()).unwrap();
        assert_eq!(back.answer, Kind::Approve);
        assert_eq!(back.pin.as_deref().map(String::as_str), Some("1234"));
        assert_eq!(back.chosen, None);
        assert!(serde_json::from_str::<Answer>(r#"{"answer":"maybe"}"#).is_err());
        assert_eq!(
            Answer::of(Kind::Deny).to_line().as_str(),
            "{\"answer\":\"deny\"}\n"
        );
    }

    #[test]
    fn a_choice_of_accounts_and_the_pick_cross_the_pipe() {
        let req = Request {
            action: Action::SignIn,
            rp_id: "example.com".into(),
            user_name: None,
            needs_pin: true,
            retries: Some(8),
            timeout_ms: 30_000,
            accounts: vec![
                Account {
                    user_name: Some("bob".into()),
                    display_name: Some("Bob".into()),
                },
                Account {
                    user_name: None,
                    display_name: Some("Alice".into()),
                },
            ],
            new_pin_min_length: None,
            message: None,
        };
        let back: Request = serde_json::from_str(req.to_line().trim()).unwrap();
        assert_eq!(back.accounts, req.accounts);
        let answer = Answer {
            chosen: Some(1),
            ..Answer::of(Kind::Approve)
        };
        assert_eq!(&*answer.to_line(), "{\"answer\":\"approve\",\"chosen\":1}\n");
        let back: Answer = serde_json::from_str(answer.to_line().trim()).unwrap();
        assert_eq!(back.chosen, Some(1));
        for bad in [
            r#"{"answer":"approve","chosen":-1}"#,
            r#"{"answer":"approve","chosen":"1"}"#,
            r#"{"answer":"approve","chosen":1,"also":2}"#,
        ] {
            assert!(serde_json::from_str::<Answer>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Request>(
            r#"{"action":"sign_in","timeout_ms":1,"accounts":[{"user_name":"a","admin":true}]}"#
        )
        .is_err());
    }

    #[test]
    fn a_new_pin_crosses_the_pipe() {
        let req: Request = serde_json::from_str(
            r#"{"action":"change_pin","needs_pin":true,"retries":7,"timeout_ms":30000,"new_pin_min_length":6}"#,
        )
        .unwrap();
        assert_eq!((req.new_pin_min_length, req.needs_pin), (Some(6), true));
        let answer = Answer {
            pin: Some(Zeroizing::new("123456".into())),
            new_pin: Some(Zeroizing::new("654321".into())),
            ..Answer::of(Kind::Approve)
        };
        let back: Answer = serde_json::from_str(answer.to_line().trim()).unwrap();
        assert_eq!(back.new_pin.as_deref().map(String::as_str), Some("654321"));
        let failed: Request =
            serde_json::from_str(r#"{"action":"failed","timeout_ms":60000,"message":"The disk is full."}"#)
                .unwrap();
        assert_eq!(failed.message.as_deref(), Some("The disk is full."));
    }
}
