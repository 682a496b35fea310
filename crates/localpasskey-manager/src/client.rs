//! The app's only way to the passkeys: the daemon's D-Bus API on the session
//! bus. The daemon alone owns the TPM and the store, so nothing here opens
//! either, and no PIN passes through this process.

use futures_util::StreamExt;
use zbus::fdo;

use crate::model::{Activity, Finding, Info, Passkey, PinStatus};
use crate::proxy::Manager1Proxy;

/// What went wrong, in the words the window shows.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ClientError {
    #[error("LocalPasskey is not running")]
    NotRunning,
    #[error("there is no session bus: {0}")]
    NoBus(String),
    #[error("{0}")]
    Daemon(DaemonError, String),
    #[error("{0}")]
    Other(String),
}

/// The daemon's own errors (org.localpasskey.Error.*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonError {
    NotFound,
    Refused,
    TimedOut,
    PinNotSet,
    PinAlreadySet,
    PinInvalid,
    PinBlocked,
    PinPolicy,
    AccessDenied,
    Failed,
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NotFound => "That passkey is no longer on this computer.",
            Self::Refused => "You declined in LocalPasskey’s window. Nothing was changed.",
            Self::TimedOut => "Nobody answered LocalPasskey’s window in time. Nothing was changed.",
            Self::PinNotSet => "No PIN is set yet.",
            Self::PinAlreadySet => "A PIN is already set. Change it instead.",
            Self::PinInvalid => "The current PIN was wrong. Nothing was changed.",
            Self::PinBlocked => "The PIN is blocked: no tries are left.",
            Self::PinPolicy => "The new PIN was refused: it is too short or too simple.",
            Self::AccessDenied => "LocalPasskey refused this app’s request.",
            Self::Failed => "LocalPasskey could not do that.",
        })
    }
}

impl ClientError {
    /// The daemon's error name and message; the message is the daemon's own
    /// text and carries no secret (the API never sees a PIN).
    fn from_method_error(name: &str, message: Option<&str>) -> Self {
        let kind = match name {
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner"
            | "org.freedesktop.DBus.Error.NoReply" => return Self::NotRunning,
            "org.freedesktop.DBus.Error.AccessDenied" => DaemonError::AccessDenied,
            "org.localpasskey.Error.NotFound" => DaemonError::NotFound,
            "org.localpasskey.Error.Refused" => DaemonError::Refused,
            "org.localpasskey.Error.TimedOut" => DaemonError::TimedOut,
            "org.localpasskey.Error.PinNotSet" => DaemonError::PinNotSet,
            "org.localpasskey.Error.PinAlreadySet" => DaemonError::PinAlreadySet,
            "org.localpasskey.Error.PinInvalid" => DaemonError::PinInvalid,
            "org.localpasskey.Error.PinBlocked" => DaemonError::PinBlocked,
            "org.localpasskey.Error.PinPolicy" => DaemonError::PinPolicy,
            _ => DaemonError::Failed,
        };
        Self::Daemon(kind, message.unwrap_or_default().to_owned())
    }

    /// One sentence for a toast or a dialog.
    pub fn message(&self) -> String {
        match self {
            Self::NotRunning => "LocalPasskey is not running.".to_owned(),
            Self::NoBus(_) => "This desktop session has no D-Bus session bus.".to_owned(),
            Self::Daemon(DaemonError::Failed, detail) if !detail.is_empty() => {
                format!("LocalPasskey could not do that: {detail}")
            }
            Self::Daemon(kind, _) => kind.to_string(),
            Self::Other(detail) => format!("Could not talk to LocalPasskey: {detail}"),
        }
    }

    pub fn kind(&self) -> Option<DaemonError> {
        match self {
            Self::Daemon(kind, _) => Some(*kind),
            _ => None,
        }
    }
}

impl From<zbus::Error> for ClientError {
    fn from(e: zbus::Error) -> Self {
        match e {
            zbus::Error::MethodError(name, message, _) => {
                Self::from_method_error(name.as_str(), message.as_deref())
            }
            zbus::Error::FDO(e) => match *e {
                fdo::Error::ServiceUnknown(_) | fdo::Error::NameHasNoOwner(_) | fdo::Error::NoReply(_) => {
                    Self::NotRunning
                }
                fdo::Error::AccessDenied(m) => Self::Daemon(DaemonError::AccessDenied, m),
                other => Self::Other(other.to_string()),
            },
            other => Self::Other(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A connection to the session bus and a proxy of the daemon; cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    proxy: Manager1Proxy<'static>,
}

impl Client {
    /// Connects to the session bus; the daemon need not be running yet.
    pub async fn connect() -> Result<Self> {
        let conn = zbus::Connection::session()
            .await
            .map_err(|e| ClientError::NoBus(e.to_string()))?;
        let proxy = Manager1Proxy::builder(&conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        Ok(Self { proxy })
    }

    pub async fn info(&self) -> Result<Info> {
        Ok(Info::from_dict(&self.proxy.info().await?))
    }

    pub async fn passkeys(&self) -> Result<Vec<Passkey>> {
        let list = self.proxy.list_passkeys().await?;
        Ok(list.iter().map(Passkey::from_dict).collect())
    }

    pub async fn delete(&self, credential_id: &str) -> Result<()> {
        Ok(self.proxy.delete_passkey(credential_id).await?)
    }

    pub async fn pin_status(&self) -> Result<PinStatus> {
        Ok(PinStatus::from_dict(&self.proxy.pin_status().await?))
    }

    pub async fn set_pin(&self) -> Result<()> {
        Ok(self.proxy.set_pin().await?)
    }

    pub async fn change_pin(&self) -> Result<()> {
        Ok(self.proxy.change_pin().await?)
    }

    pub async fn health(&self) -> Result<Vec<Finding>> {
        let list = self.proxy.health().await?;
        Ok(list.iter().map(Finding::from_dict).collect())
    }

    pub async fn activity(&self, limit: u32) -> Result<Vec<Activity>> {
        let list = self.proxy.recent_activity(limit).await?;
        Ok(list.iter().map(Activity::from_dict).collect())
    }

    /// Calls `on_change` after every PasskeysChanged, until the connection ends.
    pub async fn watch_passkeys(&self, on_change: impl Fn()) -> Result<()> {
        let mut stream = self.proxy.receive_passkeys_changed().await?;
        while stream.next().await.is_some() {
            on_change();
        }
        Ok(())
    }

    /// Calls `on_entry` with every ActivityAdded entry.
    pub async fn watch_activity(&self, on_entry: impl Fn(Activity)) -> Result<()> {
        let mut stream = self.proxy.receive_activity_added().await?;
        while let Some(signal) = stream.next().await {
            if let Ok(args) = signal.args() {
                on_entry(Activity::from_dict(&args.entry));
            }
        }
        Ok(())
    }

    /// Calls `on_owner` with true when the daemon takes its bus name and
    /// false when it leaves, so the window follows a daemon that starts or
    /// stops while it is open.
    pub async fn watch_daemon(&self, on_owner: impl Fn(bool)) -> Result<()> {
        let mut stream = self.proxy.inner().receive_owner_changed().await?;
        while let Some(owner) = stream.next().await {
            on_owner(owner.is_some());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_errors_map_to_their_kinds() {
        let e = ClientError::from_method_error("org.localpasskey.Error.Refused", Some("no"));
        assert_eq!(e.kind(), Some(DaemonError::Refused));
        assert!(e.message().contains("declined"));
        let e = ClientError::from_method_error("org.localpasskey.Error.Failed", Some("disk full"));
        assert_eq!(e.message(), "LocalPasskey could not do that: disk full");
        let e = ClientError::from_method_error("org.localpasskey.Error.Whatever", None);
        assert_eq!(e.kind(), Some(DaemonError::Failed));
    }

    #[test]
    fn a_missing_daemon_is_not_running() {
        for name in [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
        ] {
            assert_eq!(
                ClientError::from_method_error(name, None),
                ClientError::NotRunning
            );
        }
    }
}
