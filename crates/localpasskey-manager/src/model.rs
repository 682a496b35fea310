//! The daemon's answers as plain Rust values. The API sends dictionaries so
//! that it can grow without breaking old clients: a missing or mistyped key
//! reads as empty here rather than failing the whole page.

use zbus::zvariant::Value;

use crate::proxy::Dict;

fn string(d: &Dict, key: &str) -> String {
    match d.get(key).map(|v| &**v) {
        Some(Value::Str(s)) => s.as_str().to_owned(),
        _ => String::new(),
    }
}

fn number(d: &Dict, key: &str) -> u64 {
    match d.get(key).map(|v| &**v) {
        Some(Value::U8(n)) => u64::from(*n),
        Some(Value::U16(n)) => u64::from(*n),
        Some(Value::U32(n)) => u64::from(*n),
        Some(Value::U64(n)) => *n,
        Some(Value::I32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Value::I64(n)) => u64::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

fn boolean(d: &Dict, key: &str) -> bool {
    matches!(d.get(key).map(|v| &**v), Some(Value::Bool(true)))
}

fn strings(d: &Dict, key: &str) -> Vec<String> {
    match d.get(key).map(|v| &**v) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                Value::Str(s) => Some(s.as_str().to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What every site sees of this authenticator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Info {
    pub version: String,
    pub aaguid: String,
    pub backend: String,
    pub hardware: bool,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub attestation: String,
    pub algorithms: Vec<String>,
}

impl Info {
    pub fn from_dict(d: &Dict) -> Self {
        Self {
            version: string(d, "version"),
            aaguid: string(d, "aaguid"),
            backend: string(d, "backend"),
            hardware: boolean(d, "hardware"),
            backup_eligible: boolean(d, "backup_eligible"),
            backup_state: boolean(d, "backup_state"),
            attestation: string(d, "attestation"),
            algorithms: strings(d, "algorithms"),
        }
    }
}

/// One passkey; times are Unix milliseconds, 0 for never.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Passkey {
    pub credential_id: String,
    pub rp_id: String,
    pub rp_name: String,
    pub user_id: String,
    pub user_name: String,
    pub display_name: String,
    pub created: u64,
    pub last_used: u64,
    pub sign_count: u64,
    pub cred_protect: u64,
    pub discoverable: bool,
    pub extensions: Vec<String>,
    pub algorithm: String,
    pub key_protection: Vec<String>,
}

impl Passkey {
    pub fn from_dict(d: &Dict) -> Self {
        Self {
            credential_id: string(d, "credential_id"),
            rp_id: string(d, "rp_id"),
            rp_name: string(d, "rp_name"),
            user_id: string(d, "user_id"),
            user_name: string(d, "user_name"),
            display_name: string(d, "display_name"),
            created: number(d, "created"),
            last_used: number(d, "last_used"),
            sign_count: number(d, "sign_count"),
            cred_protect: number(d, "cred_protect"),
            discoverable: boolean(d, "discoverable"),
            extensions: strings(d, "extensions"),
            algorithm: string(d, "algorithm"),
            key_protection: strings(d, "key_protection"),
        }
    }

    /// The name a person knows the account by: sites may leave either out.
    pub fn account(&self) -> &str {
        if !self.user_name.is_empty() {
            &self.user_name
        } else if !self.display_name.is_empty() {
            &self.display_name
        } else {
            "Unnamed account"
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PinStatus {
    pub set: bool,
    pub retries: u64,
    pub blocked: bool,
    pub blocked_until_power_cycle: bool,
    pub force_change: bool,
    pub min_length: u64,
}

impl PinStatus {
    pub fn from_dict(d: &Dict) -> Self {
        Self {
            set: boolean(d, "set"),
            retries: number(d, "retries"),
            blocked: boolean(d, "blocked"),
            blocked_until_power_cycle: boolean(d, "blocked_until_power_cycle"),
            force_change: boolean(d, "force_change"),
            min_length: number(d, "min_length"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Sorted first: problems lead the health page.
    Fail,
    Warn,
    /// A fact worth knowing, nothing to fix (e.g. which TPM is used).
    Note,
    Ok,
}

/// One of `doctor`'s findings.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub check: String,
    pub status: Status,
    pub text: String,
    pub fix: String,
}

impl Finding {
    pub fn from_dict(d: &Dict) -> Self {
        let status = match string(d, "status").as_str() {
            "ok" => Status::Ok,
            "warn" => Status::Warn,
            "info" => Status::Note,
            // An unknown status is shown as a problem rather than hidden.
            _ => Status::Fail,
        };
        Self {
            check: string(d, "check"),
            status,
            text: string(d, "text"),
            fix: string(d, "fix"),
        }
    }
}

/// One entry of the local activity log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    pub time: u64,
    pub action: String,
    pub outcome: String,
    pub rp_id: String,
    pub account: String,
}

impl Activity {
    pub fn from_dict(d: &Dict) -> Self {
        Self {
            time: number(d, "time"),
            action: string(d, "action"),
            outcome: string(d, "outcome"),
            rp_id: string(d, "rp_id"),
            account: string(d, "account"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::OwnedValue;

    fn dict(entries: Vec<(&str, Value<'static>)>) -> Dict {
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v).unwrap()))
            .collect()
    }

    #[test]
    fn passkey_from_a_full_dict() {
        let d = dict(vec![
            ("credential_id", Value::from("00ff")),
            ("rp_id", Value::from("example.com")),
            ("user_name", Value::from("alice")),
            ("display_name", Value::from("Alice")),
            ("created", Value::from(1_700_000_000_000u64)),
            ("last_used", Value::from(0u64)),
            ("sign_count", Value::from(7u32)),
            ("cred_protect", Value::from(2u8)),
            ("discoverable", Value::from(true)),
            ("extensions", Value::from(vec!["hmac-secret"])),
            ("algorithm", Value::from("ES256")),
            (
                "key_protection",
                Value::from(vec!["fixedTPM", "fixedParent", "sensitiveDataOrigin"]),
            ),
        ]);
        let p = Passkey::from_dict(&d);
        assert_eq!(p.rp_id, "example.com");
        assert_eq!(p.account(), "alice");
        assert_eq!(p.created, 1_700_000_000_000);
        assert_eq!(p.sign_count, 7);
        assert_eq!(p.cred_protect, 2);
        assert!(p.discoverable);
        assert_eq!(p.extensions, ["hmac-secret"]);
        assert_eq!(p.key_protection.len(), 3);
    }

    #[test]
    fn missing_or_mistyped_keys_read_as_empty() {
        let d = dict(vec![
            ("rp_id", Value::from(5u32)),
            ("display_name", Value::from("Bob")),
        ]);
        let p = Passkey::from_dict(&d);
        assert_eq!(p.rp_id, "");
        assert_eq!(p.account(), "Bob");
        assert_eq!(Passkey::default().account(), "Unnamed account");
    }

    #[test]
    fn unknown_health_status_is_a_problem() {
        let d = dict(vec![("status", Value::from("maybe"))]);
        assert_eq!(Finding::from_dict(&d).status, Status::Fail);
        let d = dict(vec![("status", Value::from("ok"))]);
        assert_eq!(Finding::from_dict(&d).status, Status::Ok);
        let d = dict(vec![("status", Value::from("info"))]);
        assert_eq!(Finding::from_dict(&d).status, Status::Note);
    }

    #[test]
    fn pin_status_and_activity() {
        let d = dict(vec![("set", Value::from(true)), ("retries", Value::from(8u32))]);
        let s = PinStatus::from_dict(&d);
        assert!(s.set && !s.blocked);
        assert_eq!(s.retries, 8);
        let d = dict(vec![
            ("time", Value::from(5u64)),
            ("action", Value::from("sign_in")),
            ("outcome", Value::from("refused")),
        ]);
        let a = Activity::from_dict(&d);
        assert_eq!((a.time, a.action.as_str()), (5, "sign_in"));
    }
}
