//! How times and the log's words read to a person.

use gtk::glib;

/// A Unix-millisecond time in the local time zone; 0 is "Never".
pub fn time(ms: u64) -> String {
    if ms == 0 {
        return "Never".to_owned();
    }
    let Ok(secs) = i64::try_from(ms / 1000) else {
        return "Unknown".to_owned();
    };
    glib::DateTime::from_unix_local(secs)
        .and_then(|t| t.format("%e %b %Y, %H:%M"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "Unknown".to_owned())
}

pub fn action(action: &str) -> &str {
    match action {
        "register" => "Passkey created",
        "sign_in" => "Sign-in",
        "check" => "Passkey looked up",
        "rename" => "Account renamed",
        "delete" => "Passkey deleted",
        "set_pin" => "PIN set",
        "change_pin" => "PIN change",
        "unlock" => "Unlock",
        "reset" => "Reset",
        other => other,
    }
}

pub fn outcome(outcome: &str) -> &str {
    match outcome {
        "approved" => "Approved",
        "refused" => "Refused",
        "timed_out" => "Timed out",
        "cancelled" => "Cancelled",
        "wrong_pin" => "Wrong PIN",
        "blocked" => "Blocked",
        "failed" => "Failed",
        other => other,
    }
}

/// The algorithm's name and what it is, for the details page.
pub fn algorithm(alg: &str) -> String {
    let what = match alg {
        "ES256" => "ECDSA with P-256 and SHA-256",
        "ES384" => "ECDSA with P-384 and SHA-384",
        "ES512" => "ECDSA with P-521 and SHA-512",
        "RS256" => "RSA PKCS#1 v1.5 with SHA-256",
        "PS256" => "RSA-PSS with SHA-256",
        "" => return "Unknown".to_owned(),
        _ => return alg.to_owned(),
    };
    format!("{alg} ({what})")
}

/// What credProtect asks of every use of the passkey.
pub fn cred_protect(level: u64) -> &'static str {
    match level {
        2 => "Level 2: found only when the site names it, unless you verify",
        3 => "Level 3: every use verifies you",
        _ => "Level 1: verification as the site asks",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_and_known_words() {
        assert_eq!(time(0), "Never");
        assert!(time(1_700_000_000_000).contains("2023"));
        assert_eq!(action("sign_in"), "Sign-in");
        assert_eq!(outcome("wrong_pin"), "Wrong PIN");
        assert_eq!(outcome("new_kind"), "new_kind");
        assert_eq!(algorithm("ES256"), "ES256 (ECDSA with P-256 and SHA-256)");
    }
}
