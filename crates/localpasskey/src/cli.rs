//! The command line: `run`, `list`, `delete`, `info`, `power-cycle`.

use crate::daemon;
use crate::presence::FileScript;
use crate::store_sqlite::SqliteStore;
use crate::transport::udp::{Udp, DEFAULT_PORT};
use crate::transport::Transport;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use lp_core::authenticator::{Authenticator, Config};
use lp_core::clock::{Clock, SystemClock};
use lp_core::custody::insecure_software::InsecureSoftwareCustody;
use lp_core::custody::KeyCustody;
use lp_core::store::{Credential, CredentialStore};
use lp_core::user::{AlwaysApprove, UserPresence};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "localpasskey",
    version,
    about = "Passkeys that never leave this device"
)]
struct Cli {
    /// Where passkeys are stored [default: $XDG_DATA_HOME/localpasskey]
    #[arg(long, global = true, env = "LOCALPASSKEY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the authenticator.
    Run(RunArgs),
    /// List stored passkeys.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete one passkey, named by the start of its credential id (hex).
    Delete { id_prefix: String },
    /// Describe this installation.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Simulate unplugging and replugging a running simulation daemon.
    PowerCycle {
        #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
        to: SocketAddr,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportKind {
    /// CTAPHID reports over UDP on loopback, for test tools (no kernel device).
    Udp,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CustodyKind {
    /// The best custody available. Until TPM custody lands this is the
    /// insecure software custody, and only with the simulation transport.
    Auto,
    /// Keys in process memory and on disk in the clear: tests and simulation only.
    InsecureSoftware,
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value_t = TransportKind::Udp)]
    transport: TransportKind,
    /// Address for the UDP simulation transport (loopback only).
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,
    #[arg(long, value_enum, default_value_t = CustodyKind::Auto)]
    custody: CustodyKind,
    /// How presence is confirmed: `approve` (simulation only) or
    /// `script:FILE` (tests: one of approve/deny/wait/delay <ms> per line).
    #[arg(long, default_value = "approve")]
    presence: String,
    /// How long to wait for the person before CTAP2_ERR_USER_ACTION_TIMEOUT.
    #[arg(long, default_value_t = 30_000)]
    presence_timeout_ms: u64,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("localpasskey: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCALPASSKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn data_dir(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = explicit {
        return Ok(d);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("localpasskey"));
    }
    let home = std::env::var_os("HOME").context("neither --data-dir, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/localpasskey"))
}

fn dispatch(cli: Cli) -> Result<()> {
    let dir = data_dir(cli.data_dir)?;
    match cli.command {
        Command::Run(args) => run(args, dir),
        Command::List { json } => list(&SqliteStore::open(&dir)?, json),
        Command::Delete { id_prefix } => delete(&mut SqliteStore::open(&dir)?, &id_prefix),
        Command::Info { json } => info(&SqliteStore::open(&dir)?, json),
        Command::PowerCycle { to } => {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
            socket.send_to(&daemon::POWER_CYCLE_REPORT, to)?;
            println!("power cycle sent to {to}");
            Ok(())
        }
    }
}

fn run(args: RunArgs, dir: PathBuf) -> Result<()> {
    let store = SqliteStore::open(&dir)?;
    let simulation = args.transport == TransportKind::Udp;
    let custody: Box<dyn KeyCustody> = match args.custody {
        CustodyKind::Auto | CustodyKind::InsecureSoftware => {
            if !simulation {
                bail!("the insecure software custody is only for the simulation transport");
            }
            Box::new(InsecureSoftwareCustody::new())
        }
    };
    let presence: Box<dyn UserPresence> = match args.presence.as_str() {
        "approve" if simulation => Box::new(AlwaysApprove),
        "approve" => bail!("--presence approve is only accepted with --transport udp"),
        p => match p.strip_prefix("script:") {
            Some(path) if simulation => Box::new(FileScript::new(PathBuf::from(path))),
            Some(_) => bail!("--presence script: is only accepted with --transport udp"),
            None => bail!("unknown --presence {p:?} (approve, script:FILE)"),
        },
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let config = Config {
        presence_timeout: Duration::from_millis(args.presence_timeout_ms),
    };
    let transport = match args.transport {
        TransportKind::Udp => {
            Udp::bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?
        }
    };
    if !custody.is_hardware() {
        tracing::warn!(
            "KEY CUSTODY: {} — private keys are software keys stored in the clear in {}; \
             this is for tests and simulation only and protects nothing",
            custody.name(),
            dir.display()
        );
    }
    tracing::info!(
        transport = %transport.describe(),
        custody = custody.name(),
        presence = %args.presence,
        data_dir = %dir.display(),
        credentials = store.count().unwrap_or(0),
        "LocalPasskey {} ready",
        env!("CARGO_PKG_VERSION")
    );
    let auth = Authenticator::new(custody, Box::new(store), presence, Arc::clone(&clock), config);
    let err = daemon::run(transport, auth, clock);
    Err(err).context("transport failed")
}

fn fmt_time(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn credential_json(c: &Credential) -> serde_json::Value {
    serde_json::json!({
        "credential_id": hex::encode(&c.id),
        "rp_id": c.rp_id,
        "rp_name": c.rp_name,
        "user_id": hex::encode(&c.user_id),
        "user_name": c.user_name,
        "user_display_name": c.user_display_name,
        "discoverable": c.discoverable,
        "sign_count": c.sign_count,
        "created": fmt_time(c.created),
        "last_used": c.last_used.map(fmt_time),
        "cred_protect": c.cred_protect,
    })
}

fn list(store: &SqliteStore, json: bool) -> Result<()> {
    let creds = store.all()?;
    if json {
        let items: Vec<_> = creds.iter().map(credential_json).collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if creds.is_empty() {
        println!("No passkeys stored.");
        return Ok(());
    }
    println!(
        "{:<16}  {:<30}  {:<28}  {:<20}  {:<20}",
        "ID", "RP ID", "USER", "CREATED", "LAST USED"
    );
    for c in &creds {
        let id = hex::encode(&c.id);
        println!(
            "{:<16}  {:<30}  {:<28}  {:<20}  {:<20}",
            &id[..16.min(id.len())],
            c.rp_id,
            c.user_name.as_deref().unwrap_or("-"),
            fmt_time(c.created),
            c.last_used.map(fmt_time).unwrap_or_else(|| "never".into()),
        );
    }
    Ok(())
}

fn delete(store: &mut SqliteStore, prefix: &str) -> Result<()> {
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("give at least 4 hex digits of the credential id (see `localpasskey list`)");
    }
    let even = &prefix[..prefix.len() & !1];
    let bytes = hex::decode(even).context("bad hex")?;
    let matches: Vec<Credential> = store
        .find_by_prefix(&bytes)?
        .into_iter()
        .filter(|c| hex::encode(&c.id).starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [] => bail!("no passkey has an id starting with {prefix}"),
        [c] => {
            store.delete(&c.id)?;
            println!(
                "deleted passkey {} for {} ({})",
                &hex::encode(&c.id)[..16],
                c.rp_id,
                c.user_name.as_deref().unwrap_or("-")
            );
            Ok(())
        }
        many => bail!(
            "{} passkeys have ids starting with {prefix}; give more digits",
            many.len()
        ),
    }
}

fn info(store: &SqliteStore, json: bool) -> Result<()> {
    let aaguid = hex::encode(lp_core::AAGUID);
    let aaguid = format!(
        "{}-{}-{}-{}-{}",
        &aaguid[..8],
        &aaguid[8..12],
        &aaguid[12..16],
        &aaguid[16..20],
        &aaguid[20..]
    );
    let count = store.count()?;
    let integrity = match store.integrity_check() {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("FAILED: {e:#}"),
    };
    let path = store.path().map(|p| p.display().to_string());
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "aaguid": aaguid,
                "database": path,
                "credentials": count,
                "database_integrity": integrity,
                "custody_available": ["insecure-software"],
                "transports_available": ["udp"],
            }))?
        );
        return Ok(());
    }
    println!("LocalPasskey {}", env!("CARGO_PKG_VERSION"));
    println!("AAGUID:       {aaguid}");
    println!("Database:     {}", path.unwrap_or_default());
    println!("Passkeys:     {count}");
    println!("Integrity:    {integrity}");
    println!("Key custody:  insecure-software only (TPM custody is not built yet: keys are software keys)");
    println!("Transports:   udp simulation (uhid is not built yet)");
    Ok(())
}
