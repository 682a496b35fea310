//! The pipe protocol between the daemon and its desktop dialog, one type
//! for each side to write and the other to read.
//!
//! stdin of the dialog, one JSON line:
//! `{"action":"sign_in","rp_id":"example.com","user_name":"alice","needs_pin":true,"retries":8,"timeout_ms":30000}`
//! its stdout, one JSON line: `{"answer":"approve"|"deny"|"timeout"}`, plus
//! `"pin"` only when `needs_pin` was true and the person approved.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

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
}

impl Answer {
    pub fn of(answer: Kind) -> Self {
        Self { answer, pin: None }
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
        };
        let back: Request = serde_json::from_str(req.to_line().trim()).unwrap();
        assert_eq!(
            (back.action, back.rp_id.as_str(), back.retries),
            (Action::SignIn, "example.com", Some(8))
        );
        let answer = Answer {
            answer: Kind::Approve,
            pin: Some(Zeroizing::new("1234".into())),
        };
        let back: Answer = serde_json::from_str(answer.to_line().trim()).unwrap();
        assert_eq!(back.answer, Kind::Approve);
        assert_eq!(back.pin.as_deref().map(String::as_str), Some("1234"));
        assert!(serde_json::from_str::<Answer>(r#"{"answer":"maybe"}"#).is_err());
        assert_eq!(
            Answer::of(Kind::Deny).to_line().as_str(),
            "{\"answer\":\"deny\"}\n"
        );
    }
}
