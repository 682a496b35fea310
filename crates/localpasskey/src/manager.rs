//! Where `list`, `delete` and `activity` get their answers: from the running
//! daemon over its D-Bus API when it serves this data directory, else from
//! the store itself. Both paths end in the same rows, printed by the same
//! code, so the answers are the same either way.

use crate::dbus::{BUS_NAME, OBJECT_PATH};
use crate::store_sqlite::SqliteStore;
use anyhow::{bail, Context, Result};
use lp_core::activity::{Act, Activity, Outcome};
use lp_core::authenticator::Passkey;
use lp_core::store::{Credential, CredentialStore};
use std::collections::HashMap;
use std::path::Path;
use zbus::zvariant::OwnedValue;

type Dict = HashMap<String, OwnedValue>;

#[zbus::proxy(
    interface = "org.localpasskey.Manager1",
    default_service = "org.localpasskey.LocalPasskey",
    default_path = "/org/localpasskey/LocalPasskey"
)]
pub trait Manager1 {
    fn info(&self) -> zbus::Result<Dict>;
    fn list_passkeys(&self) -> zbus::Result<Vec<Dict>>;
    fn delete_passkey(&self, credential_id: &str) -> zbus::Result<()>;
    fn recent_activity(&self, limit: u32) -> zbus::Result<Vec<Dict>>;
}

/// One passkey as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRow {
    pub credential_id: String,
    pub rp_id: String,
    pub rp_name: String,
    pub user_id: String,
    pub user_name: String,
    pub display_name: String,
    pub discoverable: bool,
    pub sign_count: u32,
    pub created: u64,
    /// 0: never.
    pub last_used: u64,
    pub cred_protect: u8,
    pub extensions: Vec<String>,
    pub algorithm: String,
}

impl PasskeyRow {
    fn of(p: &Passkey) -> Self {
        let c = &p.credential;
        Self {
            credential_id: hex::encode(&c.id),
            rp_id: c.rp_id.clone(),
            rp_name: c.rp_name.clone().unwrap_or_default(),
            user_id: hex::encode(&c.user_id),
            user_name: c.user_name.clone().unwrap_or_default(),
            display_name: c.user_display_name.clone().unwrap_or_default(),
            discoverable: c.discoverable,
            sign_count: c.sign_count,
            created: c.created,
            last_used: c.last_used.unwrap_or(0),
            cred_protect: c.cred_protect,
            extensions: p.extensions.iter().map(|e| (*e).to_owned()).collect(),
            algorithm: p.algorithm.map(|a| a.name()).unwrap_or("unknown").to_owned(),
        }
    }

    fn from_dict(d: &Dict) -> Result<Self> {
        Ok(Self {
            credential_id: get(d, "credential_id")?,
            rp_id: get(d, "rp_id")?,
            rp_name: get(d, "rp_name")?,
            user_id: get(d, "user_id")?,
            user_name: get(d, "user_name")?,
            display_name: get(d, "display_name")?,
            discoverable: get(d, "discoverable")?,
            sign_count: get(d, "sign_count")?,
            created: get(d, "created")?,
            last_used: get(d, "last_used")?,
            cred_protect: get(d, "cred_protect")?,
            extensions: get(d, "extensions")?,
            algorithm: get(d, "algorithm")?,
        })
    }
}

/// One activity-log entry as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRow {
    pub time: u64,
    pub action: String,
    pub outcome: String,
    pub rp_id: String,
    pub account: String,
}

impl ActivityRow {
    fn of(a: &Activity) -> Self {
        Self {
            time: a.time,
            action: a.act.as_str().to_owned(),
            outcome: a.outcome.as_str().to_owned(),
            rp_id: a.rp_id.clone(),
            account: a.account.clone(),
        }
    }

    fn from_dict(d: &Dict) -> Result<Self> {
        Ok(Self {
            time: get(d, "time")?,
            action: get(d, "action")?,
            outcome: get(d, "outcome")?,
            rp_id: get(d, "rp_id")?,
            account: get(d, "account")?,
        })
    }
}

fn get<T>(d: &Dict, key: &str) -> Result<T>
where
    T: TryFrom<OwnedValue>,
    <T as TryFrom<OwnedValue>>::Error: std::fmt::Display,
{
    let v = d
        .get(key)
        .with_context(|| format!("the daemon's answer lacks {key}"))?
        .try_clone()
        .with_context(|| format!("the daemon's {key} cannot be read"))?;
    T::try_from(v).map_err(|e| anyhow::anyhow!("the daemon's {key} has the wrong type: {e}"))
}

/// The daemon or the store, whichever answers for this data directory.
pub enum Source {
    Daemon(Manager1ProxyBlocking<'static>),
    Store(SqliteStore),
}

impl Source {
    /// The daemon when one serves `dir` on this session's bus, else the store.
    pub fn open(dir: &Path) -> Result<Self> {
        if let Some(proxy) = daemon_for(dir) {
            return Ok(Source::Daemon(proxy));
        }
        Ok(Source::Store(SqliteStore::open(dir)?))
    }

    pub fn is_daemon(&self) -> bool {
        matches!(self, Source::Daemon(_))
    }

    /// The passkeys whose hex id starts with `prefix` (lower-case hex digits).
    pub fn passkeys_with_prefix(&self, prefix: &str) -> Result<Vec<PasskeyRow>> {
        let rows = match self {
            Source::Daemon(_) => self.passkeys()?,
            Source::Store(s) => {
                let even = &prefix[..prefix.len() & !1];
                let bytes = hex::decode(even).context("bad hex")?;
                s.find_by_prefix(&bytes)?
                    .into_iter()
                    .map(|c| PasskeyRow::of(&Passkey::new(c, Vec::new())))
                    .collect()
            }
        };
        Ok(rows
            .into_iter()
            .filter(|r| r.credential_id.starts_with(prefix))
            .collect())
    }

    pub fn via(&self) -> &'static str {
        match self {
            Source::Daemon(_) => "the running daemon",
            Source::Store(_) => "the store",
        }
    }

    pub fn passkeys(&self) -> Result<Vec<PasskeyRow>> {
        match self {
            Source::Daemon(p) => p
                .list_passkeys()
                .context("the daemon did not list its passkeys")?
                .iter()
                .map(PasskeyRow::from_dict)
                .collect(),
            Source::Store(s) => Ok(s
                .all()?
                .into_iter()
                .map(|c| PasskeyRow::of(&Passkey::new(c, Vec::new())))
                .collect()),
        }
    }

    pub fn activity(&self, limit: u32) -> Result<Vec<ActivityRow>> {
        match self {
            Source::Daemon(p) => p
                .recent_activity(limit)
                .context("the daemon did not give its activity log")?
                .iter()
                .map(ActivityRow::from_dict)
                .collect(),
            Source::Store(s) => Ok(s
                .recent_activity(limit as usize)?
                .iter()
                .map(ActivityRow::of)
                .collect()),
        }
    }

    /// Delete one passkey. Through the daemon the person confirms it in the
    /// prompt; without one, typing the command at the terminal is the
    /// confirmation, and the deletion is logged like any other.
    pub fn delete(&mut self, row: &PasskeyRow) -> Result<()> {
        match self {
            Source::Daemon(p) => p.delete_passkey(&row.credential_id).map_err(|e| match e {
                zbus::Error::MethodError(name, Some(text), _) => {
                    anyhow::anyhow!("not deleted: {text} ({name})")
                }
                other => anyhow::anyhow!("not deleted: {other}"),
            }),
            Source::Store(s) => {
                let id = hex::decode(&row.credential_id).context("bad credential id")?;
                let cred: Option<Credential> = s.get(&id)?;
                let Some(cred) = cred else {
                    bail!("no passkey with id {}", row.credential_id);
                };
                s.log(Activity {
                    time: unix_millis(),
                    act: Act::Delete,
                    outcome: Outcome::Approved,
                    rp_id: cred.rp_id.clone(),
                    account: row.user_name.clone(),
                });
                if !s.delete(&id)? {
                    bail!("no passkey with id {}", row.credential_id);
                }
                Ok(())
            }
        }
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A proxy to the daemon on the session bus, if one runs and keeps its
/// passkeys in `dir` (another daemon's answers would be about other passkeys).
fn daemon_for(dir: &Path) -> Option<Manager1ProxyBlocking<'static>> {
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|a| !a.is_empty())?;
    let conn = zbus::blocking::Connection::session().ok()?;
    let bus = zbus::blocking::fdo::DBusProxy::new(&conn).ok()?;
    let name = zbus::names::BusName::try_from(BUS_NAME).ok()?;
    if !bus.name_has_owner(name).ok()? {
        return None;
    }
    let proxy = Manager1ProxyBlocking::builder(&conn)
        .path(OBJECT_PATH)
        .ok()?
        .build()
        .ok()?;
    let info = proxy.info().ok()?;
    let served: String = get(&info, "data_dir").ok()?;
    let same = match (std::fs::canonicalize(&served), std::fs::canonicalize(dir)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    same.then_some(proxy)
}
