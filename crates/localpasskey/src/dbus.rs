//! The manager's API on the session bus: `org.localpasskey.Manager1`
//! (dbus/org.localpasskey.Manager1.xml is its contract).
//!
//! The daemon stays the only owner of the TPM and the store: every call is
//! queued to the authenticator's thread through [`Remote`], between CTAP
//! requests, so the desktop app, the CLI and a browser see one state. The
//! bus already refuses other users' connections; each call is checked again
//! against the daemon's own uid, so a bus configured more loosely still
//! serves no one else. Nothing that can delete or change the PIN happens
//! on the caller's word: the person answers in our own prompt.

use crate::daemon::Remote;
use crate::doctor::{self, Finding, Status};
use lp_core::activity::Activity;
use lp_core::authenticator::{Authenticator, ManageError, Notice, Passkey};
use lp_core::user::{NoInteraction, Refusal};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use zbus::message::Header;
use zbus::names::ErrorName;
use zbus::zvariant::{OwnedValue, Value};
use zbus::Connection;

pub const BUS_NAME: &str = "org.localpasskey.LocalPasskey";
pub const OBJECT_PATH: &str = "/org/localpasskey/LocalPasskey";
pub const INTERFACE: &str = "org.localpasskey.Manager1";

/// The most entries one RecentActivity call returns.
const MAX_ACTIVITY_LIMIT: u32 = 10_000;

type Dict = HashMap<String, OwnedValue>;

/// A D-Bus error: one of the interface's own names or a standard one.
#[derive(Debug)]
pub struct Error {
    name: &'static str,
    text: String,
}

impl Error {
    fn new(name: &'static str, text: impl Into<String>) -> Self {
        Self {
            name,
            text: text.into(),
        }
    }
    fn access_denied(text: impl Into<String>) -> Self {
        Self::new("org.freedesktop.DBus.Error.AccessDenied", text)
    }
    fn invalid_args(text: impl Into<String>) -> Self {
        Self::new("org.freedesktop.DBus.Error.InvalidArgs", text)
    }
    fn failed(text: impl Into<String>) -> Self {
        Self::new("org.localpasskey.Error.Failed", text)
    }
    fn stopping() -> Self {
        Self::failed("the authenticator is stopping")
    }
}

impl zbus::DBusError for Error {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<zbus::Message> {
        zbus::Message::error(call, self.name())?.build(&(self.text.as_str(),))
    }
    fn name(&self) -> ErrorName<'_> {
        ErrorName::from_str_unchecked(self.name)
    }
    fn description(&self) -> Option<&str> {
        Some(&self.text)
    }
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Self {
        Self::failed(e.to_string())
    }
}

impl From<zbus::fdo::Error> for Error {
    fn from(e: zbus::fdo::Error) -> Self {
        Self::failed(e.to_string())
    }
}

impl From<ManageError> for Error {
    fn from(e: ManageError) -> Self {
        let name = match &e {
            ManageError::NotFound => "org.localpasskey.Error.NotFound",
            ManageError::Refused(Refusal::TimedOut) => "org.localpasskey.Error.TimedOut",
            ManageError::Refused(_) => "org.localpasskey.Error.Refused",
            ManageError::PinNotSet => "org.localpasskey.Error.PinNotSet",
            ManageError::PinAlreadySet => "org.localpasskey.Error.PinAlreadySet",
            ManageError::PinInvalid => "org.localpasskey.Error.PinInvalid",
            ManageError::PinBlocked => "org.localpasskey.Error.PinBlocked",
            ManageError::PinPolicy => "org.localpasskey.Error.PinPolicy",
            ManageError::Failed(_) => "org.localpasskey.Error.Failed",
        };
        let text = match &e {
            ManageError::Refused(Refusal::TimedOut) => "nobody answered the prompt in time".to_owned(),
            ManageError::Refused(Refusal::Denied) => "the person said no in the prompt".to_owned(),
            other => other.to_string(),
        };
        Self::new(name, text)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.text)
    }
}

impl std::error::Error for Error {}

/// What the daemon knows of itself that the API reports.
pub struct Context {
    pub data_dir: PathBuf,
    pub uhid: bool,
    /// The custody's name ("tpm", "software-tpm", "insecure-software").
    pub custody: &'static str,
    pub algorithms: Vec<&'static str>,
}

impl Context {
    fn backend(&self) -> &'static str {
        match self.custody {
            "tpm" => "TPM 2.0 (hardware)",
            "software-tpm" => "software TPM (swtpm)",
            _ => "no TPM: insecure software keys (simulation only)",
        }
    }

    fn tpm_finding(&self) -> Finding {
        let (status, text) = match self.custody {
            "tpm" => (
                Status::Ok,
                "a hardware TPM 2.0 holds every key; nothing can copy them out",
            ),
            "software-tpm" => (
                Status::Warn,
                "this is a SOFTWARE TPM (swtpm): its state is a file, and whoever can copy that \
                 file copies every key; only a hardware TPM keeps LocalPasskey's promises",
            ),
            _ => (
                Status::Warn,
                "no TPM: keys are in the clear on disk (the simulation's insecure software custody)",
            ),
        };
        Finding {
            check: "TPM".into(),
            status,
            text: text.into(),
            fix: String::new(),
        }
    }
}

pub struct Manager {
    remote: Remote,
    context: Context,
    /// The daemon's own uid: the only one served.
    uid: u32,
}

fn owned(v: Value<'_>) -> OwnedValue {
    // Only file descriptors fail to convert, and none are sent.
    v.try_into_owned().unwrap_or_else(|_| OwnedValue::from(0u8))
}

fn dict<const N: usize>(entries: [(&str, Value<'_>); N]) -> Dict {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), owned(v)))
        .collect()
}

fn passkey_dict(p: &Passkey) -> Dict {
    let c = &p.credential;
    let text = |s: &Option<String>| Value::from(s.clone().unwrap_or_default());
    dict([
        ("credential_id", Value::from(hex::encode(&c.id))),
        ("rp_id", Value::from(c.rp_id.clone())),
        ("rp_name", text(&c.rp_name)),
        ("user_id", Value::from(hex::encode(&c.user_id))),
        ("user_name", text(&c.user_name)),
        ("display_name", text(&c.user_display_name)),
        ("created", Value::from(c.created)),
        ("last_used", Value::from(c.last_used.unwrap_or(0))),
        ("sign_count", Value::from(c.sign_count)),
        ("cred_protect", Value::from(c.cred_protect)),
        ("discoverable", Value::from(c.discoverable)),
        ("extensions", Value::from(p.extensions.clone())),
        (
            "algorithm",
            Value::from(p.algorithm.map(|a| a.name()).unwrap_or("unknown")),
        ),
        ("key_protection", Value::from(p.key_protection.clone())),
    ])
}

pub fn activity_dict(a: &Activity) -> Dict {
    dict([
        ("time", Value::from(a.time)),
        ("action", Value::from(a.act.as_str())),
        ("outcome", Value::from(a.outcome.as_str())),
        ("rp_id", Value::from(a.rp_id.clone())),
        ("account", Value::from(a.account.clone())),
    ])
}

fn finding_dict(f: &Finding) -> Dict {
    dict([
        ("check", Value::from(f.check.clone())),
        ("status", Value::from(f.status.as_str())),
        ("text", Value::from(f.text.clone())),
        ("fix", Value::from(f.fix.clone())),
    ])
}

/// A credential id as the API writes it: lower-case hex of 1 to 1023 bytes.
fn credential_id(hex_id: &str) -> Result<Vec<u8>, Error> {
    let id = hex::decode(hex_id).map_err(|_| Error::invalid_args("credential_id must be hex"))?;
    if id.is_empty() || id.len() > 1023 {
        return Err(Error::invalid_args("credential_id must be 1 to 1023 bytes"));
    }
    Ok(id)
}

impl Manager {
    async fn authorize(&self, header: &Header<'_>, conn: &Connection) -> Result<(), Error> {
        let sender = header
            .sender()
            .ok_or_else(|| Error::access_denied("a call without a sender"))?;
        let bus = zbus::fdo::DBusProxy::new(conn).await?;
        let uid = bus.get_connection_unix_user(sender.clone().into()).await?;
        if uid != self.uid {
            tracing::warn!(caller_uid = uid, "D-Bus call from another user refused");
            return Err(Error::access_denied(
                "LocalPasskey serves only the user who runs it",
            ));
        }
        Ok(())
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Authenticator) -> Result<R, ManageError> + Send + 'static,
    ) -> Result<R, Error> {
        match self.remote.call(f).await {
            Some(r) => r.map_err(Error::from),
            None => Err(Error::stopping()),
        }
    }
}

#[zbus::interface(name = "org.localpasskey.Manager1")]
impl Manager {
    #[zbus(out_args("info"))]
    async fn info(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Dict, Error> {
        self.authorize(&header, conn).await?;
        let c = &self.context;
        Ok(dict([
            ("version", Value::from(env!("CARGO_PKG_VERSION"))),
            ("aaguid", Value::from(lp_core::AAGUID_TEXT)),
            ("backend", Value::from(c.backend())),
            ("hardware", Value::from(c.custody == "tpm")),
            ("backup_eligible", Value::from(false)),
            ("backup_state", Value::from(false)),
            ("attestation", Value::from("packed")),
            ("algorithms", Value::from(c.algorithms.clone())),
            ("data_dir", Value::from(c.data_dir.display().to_string())),
        ]))
    }

    #[zbus(out_args("passkeys"))]
    async fn list_passkeys(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<Dict>, Error> {
        self.authorize(&header, conn).await?;
        let keys = self.call(|a| a.passkeys()).await?;
        Ok(keys.iter().map(passkey_dict).collect())
    }

    async fn delete_passkey(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        credential_id: String,
    ) -> Result<(), Error> {
        self.authorize(&header, conn).await?;
        let id = self::credential_id(&credential_id)?;
        self.call(move |a| a.delete_passkey(&id, &NoInteraction)).await
    }

    async fn rename_user(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        credential_id: String,
        user_name: String,
        display_name: String,
    ) -> Result<(), Error> {
        self.authorize(&header, conn).await?;
        let id = self::credential_id(&credential_id)?;
        // CTAP's own limit on what an RP may store for the account.
        if user_name.len() > 64 || display_name.len() > 64 {
            return Err(Error::invalid_args(
                "user_name and display_name are at most 64 bytes",
            ));
        }
        let some = |s: String| (!s.is_empty()).then_some(s);
        let (name, display) = (some(user_name), some(display_name));
        self.call(move |a| a.rename_user(&id, name.as_deref(), display.as_deref()))
            .await
    }

    #[zbus(out_args("status"))]
    async fn pin_status(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Dict, Error> {
        self.authorize(&header, conn).await?;
        let s = self.call(|a| a.pin_status()).await?;
        Ok(dict([
            ("set", Value::from(s.set)),
            ("retries", Value::from(u32::from(s.retries))),
            ("blocked", Value::from(s.set && s.retries == 0)),
            (
                "blocked_until_power_cycle",
                Value::from(s.blocked_until_power_cycle),
            ),
            ("force_change", Value::from(s.force_change)),
            ("min_length", Value::from(u32::from(s.min_length))),
        ]))
    }

    async fn set_pin(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.authorize(&header, conn).await?;
        self.call(|a| a.set_pin_by_prompt(&NoInteraction)).await
    }

    async fn change_pin(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.authorize(&header, conn).await?;
        self.call(|a| a.change_pin_by_prompt(&NoInteraction)).await
    }

    #[zbus(out_args("findings"))]
    async fn health(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<Dict>, Error> {
        self.authorize(&header, conn).await?;
        let (tx, rx) = futures_channel::oneshot::channel();
        let (dir, tpm, uhid) = (
            self.context.data_dir.clone(),
            self.context.tpm_finding(),
            self.context.uhid,
        );
        // The checks read files and ask udev: off the bus's executor thread.
        std::thread::Builder::new()
            .name("health".into())
            .spawn(move || {
                let _ = tx.send(doctor::findings_in_daemon(&dir, tpm, uhid));
            })
            .map_err(|e| Error::failed(format!("cannot run the checks: {e}")))?;
        let findings = rx.await.map_err(|_| Error::failed("the checks did not finish"))?;
        Ok(findings.iter().map(finding_dict).collect())
    }

    #[zbus(out_args("entries"))]
    async fn recent_activity(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        limit: u32,
    ) -> Result<Vec<Dict>, Error> {
        self.authorize(&header, conn).await?;
        if limit == 0 || limit > MAX_ACTIVITY_LIMIT {
            return Err(Error::invalid_args(format!(
                "limit must be 1 to {MAX_ACTIVITY_LIMIT}"
            )));
        }
        let entries = self.call(move |a| a.recent_activity(limit as usize)).await?;
        Ok(entries.iter().map(activity_dict).collect())
    }

    #[zbus(signal)]
    async fn passkeys_changed(emitter: &zbus::object_server::SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn activity_added(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        entry: Dict,
    ) -> zbus::Result<()>;
}

/// The service while it runs; dropping it leaves the bus.
pub struct Service {
    _connection: zbus::blocking::Connection,
}

/// Serve the API on the session bus, if there is one. Returns the service
/// (keep it) and where the authenticator's notices go; None when there is
/// no session bus or the name is taken: the security key works without it.
pub fn start(remote: Remote, context: Context) -> Option<(Service, mpsc::Sender<Notice>)> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|a| a.is_empty()) {
        tracing::info!("no session bus (DBUS_SESSION_BUS_ADDRESS is unset): the manager's D-Bus API is off");
        return None;
    }
    let manager = Manager {
        remote,
        context,
        uid: rustix::process::geteuid().as_raw(),
    };
    let connection = zbus::blocking::connection::Builder::session()
        .and_then(|b| b.name(BUS_NAME))
        .and_then(|b| b.serve_at(OBJECT_PATH, manager))
        .and_then(|b| b.build());
    let connection = match connection {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("the manager's D-Bus API is off: cannot serve {BUS_NAME} on the session bus: {e}");
            return None;
        }
    };
    let (tx, rx) = mpsc::channel::<Notice>();
    let signals = connection.clone();
    let spawned = std::thread::Builder::new()
        .name("dbus-signals".into())
        .spawn(move || emit_signals(&signals, &rx));
    if let Err(e) = spawned {
        tracing::warn!("the manager's D-Bus signals are off: {e}");
    }
    tracing::info!("manager API on the session bus: {BUS_NAME} {OBJECT_PATH} ({INTERFACE})");
    Some((
        Service {
            _connection: connection,
        },
        tx,
    ))
}

fn emit_signals(conn: &zbus::blocking::Connection, notices: &mpsc::Receiver<Notice>) {
    let iface = match conn.object_server().interface::<_, Manager>(OBJECT_PATH) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("the manager's D-Bus signals are off: {e}");
            return;
        }
    };
    let emitter = iface.signal_emitter();
    for notice in notices {
        let sent = match notice {
            Notice::Activity(a) => zbus::block_on(Manager::activity_added(emitter, activity_dict(&a))),
            Notice::PasskeysChanged => zbus::block_on(Manager::passkeys_changed(emitter)),
        };
        if let Err(e) = sent {
            tracing::debug!("a D-Bus signal was not sent: {e}");
        }
    }
}
