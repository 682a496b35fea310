//! The pipe protocol between the daemon and this dialog, and the words the
//! dialog shows. No GTK here, so all of it is unit-tested without a display.
//!
//! The messages themselves are the crate localpasskey-prompt-protocol's,
//! shared with the daemon (crates/localpasskey/src/prompt_desktop.rs),
//! which holds the other end.

use std::io::BufRead;

/// A request that is longer than this is not from our daemon.
const MAX_REQUEST_BYTES: u64 = localpasskey_prompt_protocol::MAX_REQUEST_BYTES as u64;

#[path = "display_text.rs"]
mod display_text;
use display_text::{displayable, MAX_RP_ID_CHARS, MAX_USER_NAME_CHARS, NON_ASCII_RP_ID_WARNING};

pub use localpasskey_prompt_protocol::{Account, Action, Answer, Kind, Request, MAX_ACCOUNTS};

pub fn read_request(input: impl BufRead) -> Result<Request, String> {
    let mut line = String::new();
    input
        .take(MAX_REQUEST_BYTES)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the request: {e}"))?;
    if !line.ends_with('\n') && line.len() as u64 >= MAX_REQUEST_BYTES {
        return Err("the request is too long".into());
    }
    let req: Request = serde_json::from_str(line.trim()).map_err(|e| format!("bad request: {e}"))?;
    if req.timeout_ms == 0 {
        return Err("bad request: timeout_ms is 0".into());
    }
    if req.accounts.len() > MAX_ACCOUNTS {
        return Err(format!("bad request: more than {MAX_ACCOUNTS} accounts"));
    }
    Ok(req)
}

/// The words of one dialog.
#[derive(Debug, PartialEq, Eq)]
pub struct Texts {
    /// The question, e.g. "Sign in?".
    pub headline: &'static str,
    /// What saying yes does, in one or two sentences.
    pub explanation: &'static str,
    /// Whether saying yes destroys something (shown in red).
    pub destructive: bool,
    pub allow_label: &'static str,
}

/// What the dialog says for `action`.
pub fn texts(action: Action) -> Texts {
    {
        let (headline, explanation, destructive, allow_label) = match action {
            Action::Register => (
                "Create a passkey",
                "A new passkey for this site will be made on this security key.",
                false,
                "Allow",
            ),
            Action::SignIn => (
                "Sign in",
                "Your passkey for this site will sign in.",
                false,
                "Allow",
            ),
            Action::AlreadyRegistered => (
                "A passkey already exists here",
                "The site will be told that this security key already holds a passkey for it.",
                false,
                "Allow",
            ),
            Action::Reset => (
                "ERASE ALL PASSKEYS",
                "Every passkey on this security key and its PIN will be deleted for good. \
                 You will lose access to every account that relies on them.",
                true,
                "Erase all",
            ),
            Action::Select => (
                "Select this security key",
                "A program wants to use LocalPasskey among your security keys.",
                false,
                "Allow",
            ),
            Action::Unlock => (
                "Unlock passkeys",
                "A program wants to use your passkeys for this site with your PIN.",
                false,
                "Allow",
            ),
            Action::ChangePin => (
                "Change the PIN",
                "A program wants to change the PIN of this security key.",
                true,
                "Allow",
            ),
            Action::SetPin => (
                "Set a PIN",
                "A program wants to set the first PIN of this security key.",
                false,
                "Allow",
            ),
            Action::Failed => (
                "It did not work",
                "What you allowed could not be done.",
                false,
                "OK",
            ),
            Action::Delete => (
                "Delete this passkey",
                "The site will no longer accept this passkey, and it cannot be brought back. \
                 Sign in there another way first if it is your only one.",
                true,
                "Delete",
            ),
        };
        Texts {
            headline,
            explanation,
            destructive,
            allow_label,
        }
    }
}

pub fn displayable_rp_id(rp_id: &str) -> String {
    displayable(rp_id, MAX_RP_ID_CHARS)
}

pub fn displayable_user(user: &str) -> String {
    displayable(user, MAX_USER_NAME_CHARS)
}

/// An account of a choice as its row shows it: the user name, and under it
/// the display name when it says something else, both sanitised like any
/// user name (the site chose them).
pub fn account_lines(account: &Account) -> (String, Option<String>) {
    let name = account.user_name.as_deref().filter(|n| !n.is_empty());
    let display = account.display_name.as_deref().filter(|d| !d.is_empty());
    match (name, display) {
        (Some(n), Some(d)) if d != n => (displayable_user(n), Some(displayable_user(d))),
        (Some(n), _) => (displayable_user(n), None),
        (None, Some(d)) => (displayable_user(d), None),
        (None, None) => ("(an account without a name)".into(), None),
    }
}

/// A non-ASCII RP ID may imitate another site with look-alike letters
/// ("gооgle.com" with Cyrillic o). Instead of guessing which ones are
/// dangerous, the dialog warns about every one and shows the ASCII (`xn--`)
/// form, which cannot look like anything it is not.
pub fn rp_id_warning(rp_id: &str) -> Option<String> {
    if rp_id.is_ascii() {
        return None;
    }
    let first = NON_ASCII_RP_ID_WARNING;
    Some(match idna::domain_to_ascii(rp_id) {
        Ok(ascii) if !ascii.is_empty() => format!("{first} Written in ASCII it is: {ascii}"),
        _ => format!("{first} It is not a valid domain name."),
    })
}

/// "29 s", "1:05": whole seconds, rounded up so 0 appears only at the end.
pub fn format_remaining(ms: u64) -> String {
    let secs = ms.div_ceil(1000);
    if secs >= 60 {
        format!("{}:{:02}", secs / 60, secs % 60)
    } else {
        format!("{secs} s")
    }
}

/// The daemon's own words for a failure, shown as text and no longer than
/// a dialog can hold.
pub fn displayable_message(message: &str) -> String {
    displayable(message, 600)
}

/// Why the two new PINs cannot be taken yet (None: they can). Counted in
/// characters, as CTAP counts a PIN's length; at most 63 bytes (CTAP's limit).
pub fn new_pin_problem(first: &str, second: &str, min_length: u8) -> Option<String> {
    if first.chars().count() < usize::from(min_length) {
        return Some(format!("At least {min_length} characters."));
    }
    if first.len() > 63 {
        return Some("At most 63 bytes.".into());
    }
    if first != second {
        return Some("The two PINs differ.".into());
    }
    None
}

pub fn tries_left(retries: u8) -> String {
    match retries {
        1 => "1 try left: a wrong PIN now blocks the PIN for good".into(),
        n => format!("{n} tries left"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_pin_is_taken_only_when_long_enough_and_typed_twice_alike() {
        use super::new_pin_problem;
        assert_eq!(
            new_pin_problem("123", "123", 4).as_deref(),
            Some("At least 4 characters.")
        );
        assert_eq!(
            new_pin_problem("1234", "1243", 4).as_deref(),
            Some("The two PINs differ.")
        );
        assert_eq!(new_pin_problem("1234", "1234", 4), None);
        // Characters, not bytes: four of them in twelve bytes is enough.
        assert_eq!(new_pin_problem("ジジジジ", "ジジジジ", 4), None);
        let long = "x".repeat(64);
        assert_eq!(
            new_pin_problem(&long, &long, 4).as_deref(),
            Some("At most 63 bytes.")
        );
    }

    use super::*;
    use zeroize::Zeroizing;

    #[test]
    fn reads_a_full_request() {
        let line = br#"{"action":"sign_in","rp_id":"example.com","user_name":"alice","needs_pin":true,"retries":7,"timeout_ms":30000}
"#;
        let req = read_request(&line[..]).unwrap();
        assert_eq!(req.action, Action::SignIn);
        assert_eq!(req.rp_id, "example.com");
        assert_eq!(req.user_name.as_deref(), Some("alice"));
        assert!(req.needs_pin);
        assert_eq!(req.retries, Some(7));
        assert_eq!(req.timeout_ms, 30000);
    }

    #[test]
    fn optional_fields_default_to_presence_only() {
        let req = read_request(&br#"{"action":"reset","timeout_ms":10}"#[..]).unwrap();
        assert_eq!(req.action, Action::Reset);
        assert_eq!(req.rp_id, "");
        assert!(!req.needs_pin);
        assert_eq!(req.user_name, None);
    }

    #[test]
    fn refuses_bad_requests() {
        for bad in [
            &b""[..],
            b"{}",
            b"not json",
            br#"{"action":"format_disk","timeout_ms":10}"#,
            br#"{"action":"sign_in","timeout_ms":0}"#,
            br#"{"action":"sign_in","timeout_ms":10,"approve":true}"#,
        ] {
            assert!(read_request(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long = format!("{{\"action\":\"sign_in\",\"rp_id\":\"{}\"", "a".repeat(20_000));
        assert!(read_request(long.as_bytes()).is_err());
    }

    #[test]
    fn answers_carry_a_pin_only_when_given() {
        assert_eq!(&*Answer::of(Kind::Deny).to_line(), "{\"answer\":\"deny\"}\n");
        assert_eq!(
            &*Answer::of(Kind::Timeout).to_line(),
            "{\"answer\":\"timeout\"}\n"
        );
        let a = Answer {
            answer: Kind::Approve,
            pin: Some(Zeroizing::new("12\"34".into())),
            chosen: None,
            new_pin: None,
        };
        assert_eq!(&*a.to_line(), "{\"answer\":\"approve\",\"pin\":\"12\\\"34\"}\n");
    }

    #[test]
    fn a_list_of_accounts_is_read_and_bounded() {
        let line = br#"{"action":"sign_in","rp_id":"example.com","needs_pin":true,"timeout_ms":30000,"accounts":[{"user_name":"bob","display_name":"Bob"},{"display_name":"Alice"}]}"#;
        let req = read_request(&line[..]).unwrap();
        assert_eq!(req.accounts.len(), 2);
        assert_eq!(
            account_lines(&req.accounts[0]),
            ("bob".into(), Some("Bob".into()))
        );
        assert_eq!(account_lines(&req.accounts[1]), ("Alice".into(), None));
        let many = format!(
            r#"{{"action":"sign_in","timeout_ms":10,"accounts":[{}]}}"#,
            vec![r#"{"user_name":"a"}"#; MAX_ACCOUNTS + 1].join(",")
        );
        assert!(read_request(many.as_bytes()).is_err());
        let long = format!(
            r#"{{"action":"sign_in","timeout_ms":10,"accounts":[{{"user_name":"{}"}}]}}"#,
            "a".repeat(MAX_REQUEST_BYTES as usize)
        );
        assert!(read_request(long.as_bytes()).is_err());
    }

    #[test]
    fn account_names_are_shown_as_any_user_name() {
        let hostile = Account {
            user_name: Some("\u{202E}nimda".into()),
            display_name: Some("Bob\nAccount: admin".into()),
        };
        assert_eq!(
            account_lines(&hostile),
            ("\\u{202E}nimda".into(), Some("Bob\\u{000A}Account: admin".into()))
        );
        let long = Account {
            user_name: Some("x".repeat(500)),
            display_name: None,
        };
        assert!(account_lines(&long).0.ends_with("… (372 more characters)"));
        let nameless = Account {
            user_name: None,
            display_name: Some(String::new()),
        };
        assert!(account_lines(&nameless).0.contains("without a name"));
    }

    #[test]
    fn reordering_and_invisible_characters_are_shown_as_escapes() {
        assert_eq!(displayable_rp_id("example.com"), "example.com");
        assert_eq!(displayable_rp_id("\u{202E}moc.elgoog"), "\\u{202E}moc.elgoog");
        assert_eq!(displayable_user("a\u{200B}b\nc"), "a\\u{200B}b\\u{000A}c");
        assert_eq!(displayable_user("josé"), "josé");
    }

    #[test]
    fn non_ascii_rp_ids_are_flagged_with_their_ascii_form() {
        assert_eq!(rp_id_warning("example.com"), None);
        let w = rp_id_warning("g\u{043E}\u{043E}gle.com").unwrap();
        assert!(w.ends_with("Written in ASCII it is: xn--ggle-55da.com"), "{w}");
        let w = rp_id_warning("\u{202E}moc.elgoog").unwrap();
        assert!(w.ends_with("not a valid domain name."), "{w}");
    }

    #[test]
    fn countdown_rounds_up() {
        assert_eq!(format_remaining(30_000), "30 s");
        assert_eq!(format_remaining(29_001), "30 s");
        assert_eq!(format_remaining(1), "1 s");
        assert_eq!(format_remaining(0), "0 s");
        assert_eq!(format_remaining(65_000), "1:05");
    }

    #[test]
    fn every_action_has_words() {
        for a in [
            Action::Register,
            Action::SignIn,
            Action::AlreadyRegistered,
            Action::Reset,
            Action::Select,
            Action::Unlock,
            Action::ChangePin,
            Action::SetPin,
            Action::Delete,
            Action::Failed,
        ] {
            let t = texts(a);
            assert!(!t.headline.is_empty() && !t.explanation.is_empty());
        }
        assert!(texts(Action::Reset).destructive);
    }
}
