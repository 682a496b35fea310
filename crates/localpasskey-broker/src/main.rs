//! `localpasskey-broker`: the root service that alone opens /dev/uhid (see
//! lib.rs). Started by systemd's `localpasskey-broker.socket`, which hands
//! it the listening socket; `--listen PATH` binds one itself where there is
//! no systemd (the test VM).

#![deny(unsafe_code)]

use clap::Parser;
use localpasskey_broker::relay::{self, Registry};
use localpasskey_broker::uhid::UHID_PATH;
use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    version,
    about = "Creates one FIDO security key per user through /dev/uhid and relays its reports"
)]
struct Args {
    /// Bind this socket (mode 0666: every local user may ask for a key of
    /// their own) instead of taking the one systemd passes.
    #[arg(long)]
    listen: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOCALPASSKEY_BROKER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .init();
    let args = Args::parse();
    let listener = match listener(&args) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let registry = Arc::new(Registry::default());
    tracing::info!("localpasskey-broker {} ready", env!("CARGO_PKG_VERSION"));
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        // The kernel's record of who connected: the peer cannot forge it.
        let uid = match rustix::net::sockopt::socket_peercred(&conn) {
            Ok(cred) => cred.uid.as_raw(),
            Err(e) => {
                tracing::warn!("no peer credentials on a connection: {e}");
                continue;
            }
        };
        let registry = Arc::clone(&registry);
        let spawned = std::thread::Builder::new()
            .name(format!("uid-{uid}"))
            .spawn(move || {
                // std opens with O_CLOEXEC: the descriptor reaches no other program.
                let open = || OpenOptions::new().read(true).write(true).open(UHID_PATH);
                match relay::serve(conn, uid, &registry, &open) {
                    Ok(()) => tracing::info!(uid, "connection ended"),
                    Err(e) => tracing::info!(uid, "connection ended: {e}"),
                }
            });
        if let Err(e) = spawned {
            tracing::error!(uid, "cannot start a thread for the connection: {e}");
        }
    }
    ExitCode::SUCCESS
}

fn listener(args: &Args) -> Result<UnixListener, String> {
    if let Some(path) = &args.listen {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
        return Ok(l);
    }
    activation::listener()
}

/// systemd's socket activation (sd_listen_fds(3)): the listening socket is
/// descriptor 3 when LISTEN_PID is our pid and LISTEN_FDS is 1.
mod activation {
    #![allow(unsafe_code)]
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::net::UnixListener;

    const SD_LISTEN_FDS_START: i32 = 3;

    pub fn listener() -> Result<UnixListener, String> {
        let pid = std::env::var("LISTEN_PID").ok();
        let fds = std::env::var("LISTEN_FDS").ok();
        if pid.as_deref() != Some(&rustix::process::getpid().as_raw_nonzero().get().to_string()) {
            return Err("no socket from systemd (LISTEN_PID is not ours) and no --listen PATH".into());
        }
        if fds.as_deref() != Some("1") {
            return Err(format!(
                "systemd passed {fds:?} sockets; the unit gives exactly one"
            ));
        }
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
        // SAFETY: by the sd_listen_fds protocol just checked, descriptor 3 is
        // open and was handed to this process; this is the only place that
        // takes it, once, so nothing else owns or closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };
        let kind =
            rustix::net::sockopt::socket_type(&fd).map_err(|e| format!("descriptor 3 is no socket: {e}"))?;
        if kind != rustix::net::SocketType::STREAM {
            return Err("descriptor 3 is not a stream socket (the unit wants ListenStream=)".into());
        }
        let listener = UnixListener::from(fd);
        listener
            .local_addr()
            .ok()
            .filter(|a| a.as_pathname().is_some())
            .ok_or("descriptor 3 is not a unix socket with a path")?;
        Ok(listener)
    }
}
