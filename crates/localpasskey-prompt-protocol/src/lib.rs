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
}

impl Answer {
    pub fn of(answer: Kind) -> Self {
        Self {
            answer,
            pin: None,
            chosen: None,
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
        };
        let back: Request = serde_json::from_str(req.to_line().trim()).unwrap();
        assert_eq!(back.accounts, req.accounts);
        let answer = Answer {
            answer: Kind::Approve,
            pin: None,
            chosen: Some(1),
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
}
