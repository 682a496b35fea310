//! The command line: `run`, `list`, `delete`, `info`, `pin`, `enterprise`, `power-cycle`, ...

use crate::client::{self, Client};
use crate::daemon;
use crate::doctor;
use crate::manager::{PasskeyRow, Source};
use crate::pinentry::Pinentry;
use crate::presence::FileScript;
use crate::prompt_desktop::{DesktopOrPinentry, DesktopPrompt};
use crate::setup::normalise_tcti;
use crate::store_sqlite::SqliteStore;
use crate::transport::broker::BrokerDevice;
use crate::transport::udp::{Udp, DEFAULT_PORT};
use crate::transport::uhid::{DeviceIdentity, Uhid};
use crate::transport::{Shutdown, Transport};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use lp_core::authenticator::{Authenticator, Config};
use lp_core::clock::{Clock, SystemClock};
use lp_core::custody::insecure_software::InsecureSoftwareCustody;
use lp_core::custody::KeyCustody;
use lp_core::store::CredentialStore;
use lp_core::user::{AlwaysApprove, UserPresence};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
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
    /// While the daemon runs, its prompt asks you to confirm.
    Delete { id_prefix: String },
    /// The local activity log: sign-ins, registrations, deletions, PIN
    /// changes and refusals, newest first.
    Activity {
        #[arg(long)]
        json: bool,
        /// At most this many entries.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Keep entries this many days (default 90), and trim the log now.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        retention_days: Option<u32>,
    },
    /// Describe this installation.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Set, change or inspect the PIN of a running authenticator.
    Pin {
        #[command(subcommand)]
        action: PinAction,
        /// The authenticator: a hidraw node (/dev/hidrawN) or the simulation's
        /// address (127.0.0.1:8111). Default: the hidraw node of the security
        /// key `localpasskey run --transport uhid` made for this data
        /// directory (name and serial must match); never the simulation.
        #[arg(long, global = true)]
        to: Option<client::Target>,
        /// Read PINs from standard input, one per line, instead of the terminal.
        #[arg(long, global = true)]
        pin_stdin: bool,
    },
    /// Check the TPM, the data directory and the setup; say what to fix.
    Doctor {
        /// TPM to check (TCTI, e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321).
        #[arg(long, env = "LOCALPASSKEY_TPM", default_value = lp_tpm::DEFAULT_TCTI)]
        tpm: String,
        /// The transport to check the setup for: uhid (a real security key,
        /// the default) also checks /dev/uhid, the udev rule, the module and
        /// the user unit; udp (simulation) needs none of that.
        #[arg(long, value_enum, default_value_t = TransportKind::Uhid)]
        transport: TransportKind,
    },
    /// Take the TPM's lockout authorisation, so that nobody can reset its
    /// dictionary-attack counter (explains what it changes and asks first).
    TpmProtect {
        /// The TPM (TCTI).
        #[arg(long, env = "LOCALPASSKEY_TPM", default_value = lp_tpm::DEFAULT_TCTI)]
        tpm: String,
        /// Do not ask (for scripts that have shown the explanation themselves).
        #[arg(long)]
        yes: bool,
    },
    /// Enterprise attestation: enrol this TPM's attestation key with an
    /// enterprise CA (docs/enterprise-attestation.md). Stop the daemon first.
    Enterprise {
        #[command(subcommand)]
        action: EnterpriseAction,
        /// The TPM (TCTI), as the daemon uses it.
        #[arg(long, global = true, env = "LOCALPASSKEY_TPM", default_value = lp_tpm::DEFAULT_TCTI)]
        tpm: String,
        /// Read the PIN from standard input instead of the terminal.
        #[arg(long, global = true)]
        pin_stdin: bool,
    },
    /// Time a running daemon end to end (prints figures; see scripts/bench.sh).
    #[command(hide = true)]
    Bench {
        #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
        to: SocketAddr,
        #[arg(long, default_value = "246810")]
        pin: String,
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
    /// Undo scripts/install.sh: the user service, the binary, the udev rule
    /// and modules-load file. Your passkeys stay unless --purge.
    Uninstall {
        /// Also delete every passkey (asks you to type `delete` first).
        #[arg(long)]
        purge: bool,
        /// With --purge: do not ask.
        #[arg(long, requires = "purge")]
        yes: bool,
        /// Prefix for the system paths (/etc, /usr/local), for tests.
        #[arg(long, hide = true, default_value = "/")]
        root: PathBuf,
    },
    /// Simulate unplugging and replugging a running simulation daemon.
    PowerCycle {
        #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
        to: SocketAddr,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum PinAction {
    /// Set the first PIN (4 to 63 bytes, at least 4 characters).
    Set,
    /// Change the PIN (asks for the current one).
    Change,
    /// Whether a PIN is set and how many tries are left.
    Status,
}

#[derive(Subcommand)]
enum EnterpriseAction {
    /// Make an attestation key in the TPM (asks for the PIN) and write the
    /// enrolment request for the enterprise CA.
    Request {
        #[arg(long)]
        out: PathBuf,
    },
    /// Activate the CA's answer in the TPM (asks for the PIN) and install
    /// the certificate, with the RP IDs that get vendor-facilitated
    /// enterprise attestation.
    Install {
        response: PathBuf,
        /// An RP ID (repeat for several).
        #[arg(long = "rp-id")]
        rp_ids: Vec<String>,
    },
    /// Whether this device is enrolled, enabled, and for which RP IDs.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Forget the enrolment (the device gives no enterprise attestation any more).
    Remove,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportKind {
    /// CTAPHID reports over UDP on loopback, for test tools (no kernel device).
    Udp,
    /// A USB HID security key through /dev/uhid: what browsers, libfido2 and
    /// OpenSSH see.
    Uhid,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CustodyKind {
    /// The TPM named by --tpm: keys are created in it and never leave it.
    Tpm,
    /// Keys in process memory and on disk in the clear: tests and simulation
    /// only, never chosen unless asked for by name.
    InsecureSoftware,
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value_t = TransportKind::Udp)]
    transport: TransportKind,
    /// Address for the UDP simulation transport (loopback only).
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))]
    listen: SocketAddr,
    #[arg(long, value_enum, default_value_t = CustodyKind::Tpm)]
    custody: CustodyKind,
    /// The TPM (TCTI): device:/dev/tpmrm0, or swtpm:path=DIR/tpm.sock for a
    /// software TPM (its unix socket, in a directory only you can open).
    #[arg(long, env = "LOCALPASSKEY_TPM", default_value = lp_tpm::DEFAULT_TCTI)]
    tpm: String,
    /// Accept a software TPM (swtpm) with the real USB device (--transport
    /// uhid). A software TPM is a file on disk: whoever can read that file
    /// can copy it, and every key in it, to another machine.
    #[arg(long)]
    allow_software_tpm: bool,
    /// On a TPM that cannot make LocalPasskey's PIN index, set a PIN anyway:
    /// wrong PINs are then bounded by the TPM's dictionary-attack lockout
    /// alone, not counted to 8 by the TPM (said at every start).
    #[arg(long)]
    accept_weak_pin_limit: bool,
    /// With --presence script:FILE, the PIN typed when a verification request
    /// meets an `approve` line (tests only).
    #[arg(long)]
    script_pin: Option<String>,
    /// How presence is confirmed: `desktop` (our dialog on the screen, which
    /// also takes the PIN; the default with uhid, falling back to pinentry
    /// when there is no display), `pinentry` (honouring PINENTRY_PROGRAM),
    /// `approve` (the default with the UDP simulation; no built-in
    /// verification, so the platform asks for the PIN; never with your real
    /// data directory or a hardware TPM, since it approves Reset too) or `script:FILE`
    /// (tests: one of approve/deny/wait/delay <ms>/pin <PIN>/choose <n> per line).
    #[arg(long)]
    presence: Option<PresenceMode>,
    /// How long to wait for the person before CTAP2_ERR_USER_ACTION_TIMEOUT.
    #[arg(long, default_value_t = 30_000)]
    presence_timeout_ms: u64,
    /// TESTS ONLY: accept the insecure software custody and the automatic or
    /// scripted presence with the real USB device (--transport uhid). Any
    /// program on this machine could then use the passkeys without a person.
    #[arg(long)]
    force_insecure_for_tests: bool,
    /// TESTS ONLY: read the boot id from this file instead of the kernel's,
    /// so a test can play a new boot of the machine (a power cycle of the
    /// real device). Simulation or --force-insecure-for-tests only.
    #[arg(long, hide = true)]
    boot_id_file: Option<PathBuf>,
    /// With --transport uhid: the socket of the uhid broker, the root
    /// service that creates the security key for us.
    #[arg(long, env = "LOCALPASSKEY_BROKER", default_value = crate::transport::broker::SOCKET_PATH)]
    broker: PathBuf,
    /// With --transport uhid: open /dev/uhid ourselves instead of asking the
    /// broker. Only root may (/dev/uhid is root's, since it can make any HID
    /// device); for test machines that run several daemons of one uid.
    #[arg(long, env = "LOCALPASSKEY_UHID_DIRECT", value_parser = clap::builder::FalseyValueParser::new())]
    uhid_direct: bool,
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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tss_esapi=warn,zbus=warn"));
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
        Command::List { json } => list(&Source::open(&dir)?, json),
        Command::Delete { id_prefix } => delete(&mut Source::open(&dir)?, &id_prefix),
        Command::Activity {
            json,
            limit,
            retention_days,
        } => match retention_days {
            Some(days) => set_retention(&mut SqliteStore::open(&dir)?, days),
            None => activity(&Source::open(&dir)?, limit, json),
        },
        Command::Info { json } => info(&SqliteStore::open(&dir)?, json),
        Command::Pin {
            action,
            to,
            pin_stdin,
        } => {
            let to = match to {
                Some(to) => to,
                None => client::default_target(our_serial(&dir)?.as_deref(), &dir)?,
            };
            pin(action, to, pin_stdin)
        }
        Command::Doctor { tpm, transport } => doctor::run(&dir, &tpm, transport == TransportKind::Uhid),
        Command::TpmProtect { tpm, yes } => crate::tpm_protect::run(&normalise_tcti(&tpm), yes),
        Command::Uninstall { purge, yes, root } => crate::uninstall::run(&dir, purge, yes, &root),
        Command::Enterprise {
            action,
            tpm,
            pin_stdin,
        } => enterprise(&dir, action, &normalise_tcti(&tpm), pin_stdin),
        Command::Bench { to, pin, rounds } => crate::bench::run(to, &pin, rounds),
        Command::PowerCycle { to } => {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
            socket.send_to(&daemon::POWER_CYCLE_REPORT, to)?;
            println!("power cycle sent to {to}");
            Ok(())
        }
    }
}

/// The PIN-derived vault authorisation lives in this process (and in
/// libtss2's memory) while a token is live: no core dumps, and no ptrace or
/// /proc/PID/mem reads by other processes of the same user.
fn harden_process() {
    // SAFETY: PR_SET_DUMPABLE takes integer arguments only; no memory is shared.
    let dumpable = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit only reads `none`, which outlives the call.
    let core = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    if dumpable != 0 || core != 0 {
        tracing::warn!(
            "could not disable core dumps: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The store key of the per-installation serial number the USB device shows.
const DEVICE_SERIAL_META: &str = "device_serial";

/// A random serial made once per installation (so udev rules and people can
/// tell two installations apart), ASCII hex as HID_UNIQ needs.
fn device_serial(store: &mut SqliteStore) -> Result<String> {
    if let Some(s) = store.get_meta(DEVICE_SERIAL_META)? {
        if let Ok(s) = String::from_utf8(s) {
            return Ok(s);
        }
    }
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let serial = hex::encode_upper(bytes);
    store.set_meta(DEVICE_SERIAL_META, serial.as_bytes())?;
    Ok(serial)
}

/// The kernel boot this store last ran in.
const BOOT_ID_META: &str = "device_boot_id";

/// The machine holds the TPM that is this security key's secure element, so
/// a new boot of the machine is this key's power cycle: it clears the "3
/// wrong PINs in a row" block. A daemon restart in the same boot does not
/// (anything running as the user can restart it), nor does a report on the
/// hidraw node (see `Transport::simulates_power_cycle`).
fn power_up_after_boot(store: &mut SqliteStore, boot_id: Option<String>) -> Result<()> {
    let Some(boot_id) = boot_id else {
        tracing::warn!("cannot read the kernel's boot id: the 3-wrong-PINs block lasts until a PIN is right");
        return Ok(());
    };
    if store.get_meta(BOOT_ID_META)?.as_deref() == Some(boot_id.as_bytes()) {
        return Ok(());
    }
    lp_core::pin::clear_boot_failures(store)?;
    store.set_meta(BOOT_ID_META, boot_id.as_bytes())?;
    tracing::info!("first start in this boot of the machine: the per-boot PIN failures start at 0");
    Ok(())
}

fn kernel_boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The defaults `data_dir` chooses from, read once from the environment.
struct DataHome {
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
}

impl DataHome {
    fn from_env() -> DataHome {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        DataHome {
            xdg_data_home: var("XDG_DATA_HOME"),
            home: var("HOME"),
        }
    }

    /// Both defaults, not only the one `data_dir` would pick now: a daemon
    /// started without XDG_DATA_HOME (a service, an older setup) keeps the
    /// passkeys under HOME.
    fn defaults(&self) -> Vec<PathBuf> {
        let xdg = self.xdg_data_home.iter().map(|x| x.join("localpasskey"));
        let home = self.home.iter().map(|h| h.join(".local/share/localpasskey"));
        xdg.chain(home).collect()
    }
}

/// Which of the user's default data directories `dir` is, however it is
/// spelt (relative, through symlinks, with `.` or `..`), or None.
fn users_data_dir(dir: &Path, home: &DataHome) -> Option<PathBuf> {
    let target = resolve(dir);
    home.defaults().into_iter().find(|d| resolve(d) == target)
}

/// The path with every symlink of its existing part resolved; what does not
/// exist yet is taken as written, so a data directory that `run` would
/// create compares equal too.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => {
                out.push(other);
                if let Ok(real) = out.canonicalize() {
                    out = real;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod data_home_tests {
    use super::*;

    fn home(root: &Path, xdg: bool) -> DataHome {
        DataHome {
            xdg_data_home: xdg.then(|| root.join("xdg")),
            home: Some(root.join("home")),
        }
    }

    #[test]
    fn the_users_data_dir_is_recognised_however_it_is_spelt() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let real = root.join("xdg/localpasskey");
        let h = home(root, true);
        // Not created yet: a daemon would create it.
        assert_eq!(users_data_dir(&real, &h), Some(real.clone()));
        std::fs::create_dir_all(&real).unwrap();
        assert!(users_data_dir(&real, &h).is_some());
        assert!(users_data_dir(&root.join("xdg/./x/../localpasskey/"), &h).is_some());
        std::os::unix::fs::symlink(&real, root.join("link")).unwrap();
        assert!(
            users_data_dir(&root.join("link"), &h).is_some(),
            "through a symlink"
        );
        std::os::unix::fs::symlink(root.join("xdg"), root.join("xdg-link")).unwrap();
        assert!(users_data_dir(&root.join("xdg-link/localpasskey"), &h).is_some());
        // HOME's default counts too while XDG_DATA_HOME points elsewhere.
        assert!(users_data_dir(&root.join("home/.local/share/localpasskey"), &h).is_some());
    }

    #[test]
    fn other_directories_are_not_the_users() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let h = home(root, false);
        for other in [
            "xdg/localpasskey",
            "home/.local/share",
            "home/.local/share/localpasskey/x",
            "sim",
        ] {
            std::fs::create_dir_all(root.join(other)).unwrap();
            assert_eq!(users_data_dir(&root.join(other), &h), None, "{other}");
        }
        assert!(users_data_dir(&root.join("home/.local/share/localpasskey"), &h).is_some());
        let nothing = DataHome {
            xdg_data_home: None,
            home: None,
        };
        assert_eq!(
            users_data_dir(&root.join("home/.local/share/localpasskey"), &nothing),
            None
        );
    }
}

/// `--presence`, parsed by clap.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PresenceMode {
    Desktop,
    Pinentry,
    Approve,
    Script(PathBuf),
}

impl std::str::FromStr for PresenceMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "desktop" => Ok(Self::Desktop),
            "pinentry" => Ok(Self::Pinentry),
            "approve" => Ok(Self::Approve),
            _ => match s.strip_prefix("script:") {
                Some(path) => Ok(Self::Script(PathBuf::from(path))),
                None => Err(format!(
                    "unknown --presence {s:?} (desktop, pinentry, approve, script:FILE)"
                )),
            },
        }
    }
}

impl std::fmt::Display for PresenceMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Desktop => f.write_str("desktop"),
            Self::Pinentry => f.write_str("pinentry"),
            Self::Approve => f.write_str("approve"),
            Self::Script(path) => write!(f, "script:{}", path.display()),
        }
    }
}

fn run(args: RunArgs, dir: PathBuf) -> Result<()> {
    harden_process();
    let simulation = args.transport == TransportKind::Udp;
    // With the real device anything on this machine that can open a hidraw
    // node talks to us, so the test-only parts need a flag that says so.
    let test_only_ok = simulation || args.force_insecure_for_tests;
    let presence_mode = args.presence.clone().unwrap_or(if simulation {
        PresenceMode::Approve
    } else {
        PresenceMode::Desktop
    });
    // `approve` says yes to everything, authenticatorReset included, and in
    // the simulation any local uid can send the power-cycle datagram that
    // opens Reset's window: it must never meet the user's passkeys. Checked
    // before anything opens (or creates) the data directory.
    let auto_approve = presence_mode == PresenceMode::Approve;
    if auto_approve {
        if let Some(real) = users_data_dir(&dir, &DataHome::from_env()) {
            bail!(
                "--presence approve approves every request without a person, Reset included, so \
                 it is refused with your real data directory {}: any local user could use or \
                 erase your passkeys through it. Give the simulation a throw-away one \
                 (--data-dir \"$(mktemp -d)\"; scripts/run.sh does that), or use --presence \
                 pinentry or desktop",
                real.display()
            );
        }
    }
    let boot_id = match &args.boot_id_file {
        None => kernel_boot_id(),
        Some(_) if !test_only_ok => {
            bail!("--boot-id-file is for tests: the real device (--transport uhid) needs --force-insecure-for-tests")
        }
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .trim()
                .to_owned(),
        ),
    };
    if args.force_insecure_for_tests && !simulation {
        tracing::warn!(
            "!!! --force-insecure-for-tests: the USB security key accepts TEST-ONLY settings \
             (insecure software custody or automatic/scripted presence). Any program on this \
             machine can use these passkeys without a person. NEVER USE THIS FOR REAL ACCOUNTS !!!"
        );
    }
    let tcti = normalise_tcti(&args.tpm);
    let custody = open_custody(&args, &tcti, test_only_ok)?;
    let software_tpm = args.custody == CustodyKind::Tpm && !custody.is_hardware();
    // Before /dev/uhid is opened: no browser may see a security key that
    // rests on a file anyone who can read it can copy.
    if software_tpm && !simulation && !args.allow_software_tpm {
        bail!(
            "the TPM at {tcti} is a software TPM (swtpm), not a hardware one: a software TPM \
             is a file on disk, and anyone who can read it can copy it with every key in it. \
             The USB security key (--transport uhid) uses it only with --allow-software-tpm"
        );
    }
    // A hardware TPM holds the user's real keys (and is shared with the rest
    // of the machine): no automatic approval in front of it.
    if auto_approve && custody.is_hardware() {
        bail!(
            "--presence approve (every request approved without a person) is only for a \
             simulation on a software TPM or the insecure software custody; the TPM at {tcti} \
             is a hardware TPM. Use --presence pinentry or desktop, or a software TPM \
             (swtpm) for the simulation"
        );
    }
    let mut store = SqliteStore::open(&dir)?;
    power_up_after_boot(&mut store, boot_id)?;
    let presence = open_presence(&presence_mode, args.script_pin.clone(), test_only_ok)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let config = Config {
        presence_timeout: Duration::from_millis(args.presence_timeout_ms),
        ..Config::default()
    };
    if custody.is_hardware() {
        tracing::info!(
            "KEY CUSTODY: hardware TPM at {tcti} — keys are created in the TPM and cannot leave it; \
             every signature needs the PIN, checked by the TPM"
        );
    } else if software_tpm {
        tracing::warn!(
            "KEY CUSTODY: software TPM (swtpm) at {tcti} — keys are created in it and wrapped by \
             it, but this TPM is a file on disk: whoever can read its state can copy it, with \
             every key in it, and copying it back undoes its PIN counters. Tests and simulation, \
             or a machine without a hardware TPM"
        );
    } else {
        tracing::warn!(
            "KEY CUSTODY: {} — private keys are software keys stored in the clear in {}; \
             this is for tests and simulation only and protects nothing",
            custody.name(),
            dir.display()
        );
    }
    let custody_name = if software_tpm {
        "software TPM (swtpm)"
    } else {
        custody.name()
    };
    let credentials = store.count().unwrap_or(0);
    let serial = device_serial(&mut store)?;
    let ready = |transport: &dyn Fn() -> String| {
        tracing::info!(
            transport = %transport(),
            custody = custody_name,
            presence = %presence_mode,
            data_dir = %dir.display(),
            credentials,
            "LocalPasskey {} ready",
            env!("CARGO_PKG_VERSION")
        );
    };
    let parts = Parts {
        custody,
        store,
        presence,
        clock,
        config,
        data_dir: dir.clone(),
        uhid: args.transport == TransportKind::Uhid,
    };
    let err = match args.transport {
        TransportKind::Udp => {
            let transport =
                Udp::bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
            ready(&|| transport.describe());
            serve(transport, parts)
        }
        TransportKind::Uhid if !args.uhid_direct => {
            let transport = BrokerDevice::create(&args.broker, DeviceIdentity::new(&serial))?;
            ready(&|| transport.describe());
            serve(transport, parts)
        }
        TransportKind::Uhid => {
            let transport = Uhid::create(DeviceIdentity::new(&serial))?;
            ready(&|| transport.describe());
            serve(transport, parts)
        }
    };
    if Shutdown::is(&err) {
        tracing::info!("{err}; stopped cleanly");
        return Ok(());
    }
    Err(err).context("transport failed")
}

/// The key custody `--custody` names (the TPM at `tcti`, or the insecure
/// software one, for tests and the simulation only).
fn open_custody(args: &RunArgs, tcti: &str, test_only_ok: bool) -> Result<Box<dyn KeyCustody>> {
    Ok(match args.custody {
        CustodyKind::Tpm => {
            let mut tpm = lp_tpm::TpmCustody::open(tcti).map_err(|e| {
                anyhow::anyhow!(
                    "cannot use the TPM at {tcti}: {e}\n\
                     `localpasskey doctor` says what is wrong. For a software TPM pass \
                     --tpm swtpm:path=DIR/tpm.sock (swtpm's unix socket); keys without any TPM only \
                     with --custody insecure-software (simulation only, protects nothing)"
                )
            })?;
            tpm.accept_weak_pin_limit(args.accept_weak_pin_limit);
            crate::tpm_protect::announce(&mut tpm, args.accept_weak_pin_limit);
            Box::new(tpm)
        }
        CustodyKind::InsecureSoftware => {
            if !test_only_ok {
                bail!(
                    "the insecure software custody is only for the simulation transport \
                     (or for tests, with --force-insecure-for-tests)"
                );
            }
            Box::new(InsecureSoftwareCustody::new())
        }
    })
}

/// Who confirms presence and takes the PIN, as `--presence` says.
fn open_presence(
    mode: &PresenceMode,
    script_pin: Option<String>,
    test_only_ok: bool,
) -> Result<Box<dyn UserPresence>> {
    if script_pin.is_some() && !matches!(mode, PresenceMode::Script(_)) {
        bail!("--script-pin goes with --presence script:FILE");
    }
    Ok(match mode {
        // The display is looked for at each request (the session's may come
        // later than the service); pinentry when there is none.
        PresenceMode::Desktop => {
            let desktop = DesktopPrompt::locate()?;
            if !desktop.has_display() {
                tracing::warn!(
                    "no display yet (neither DISPLAY nor WAYLAND_DISPLAY): pinentry until there is one"
                );
            }
            let pinentry = Pinentry::from_env();
            tracing::info!(
                "without a display, prompts go through the pinentry program {:?} (PINENTRY_PROGRAM)",
                pinentry.program()
            );
            Box::new(DesktopOrPinentry { desktop, pinentry })
        }
        PresenceMode::Pinentry => {
            let p = Pinentry::from_env();
            tracing::info!(
                "prompts go through the pinentry program {:?} (PINENTRY_PROGRAM)",
                p.program()
            );
            Box::new(p)
        }
        PresenceMode::Approve if test_only_ok => Box::new(AlwaysApprove),
        PresenceMode::Approve => bail!(
            "--presence approve is only accepted with --transport udp \
             (or for tests, with --force-insecure-for-tests)"
        ),
        PresenceMode::Script(path) if test_only_ok => Box::new(FileScript::new(path.clone(), script_pin)),
        PresenceMode::Script(_) => bail!(
            "--presence script: is only accepted with --transport udp \
             (or for tests, with --force-insecure-for-tests)"
        ),
    })
}

/// What the authenticator is made of, whatever the transport.
struct Parts {
    custody: Box<dyn KeyCustody>,
    store: SqliteStore,
    presence: Box<dyn UserPresence>,
    clock: Arc<dyn Clock>,
    config: Config,
    data_dir: PathBuf,
    uhid: bool,
}

/// The authenticator on `transport`, until the transport fails or stops.
fn serve<T: crate::transport::Transport>(transport: T, p: Parts) -> std::io::Error {
    let config = Config {
        max_msg_size: transport.max_message_size(),
        ..p.config
    };
    let context = crate::dbus::Context {
        data_dir: p.data_dir,
        uhid: p.uhid,
        custody: p.custody.name(),
        algorithms: p.custody.algorithms().into_iter().map(|a| a.name()).collect(),
    };
    let mut auth = Authenticator::new(
        p.custody,
        Box::new(p.store),
        p.presence,
        Arc::clone(&p.clock),
        config,
    );
    if let Err(e) = auth.trim_activity() {
        tracing::warn!("the activity log was not trimmed: {e}");
    }
    let (remote, inbox) = daemon::channel();
    let (_service, notices) = match crate::dbus::start(remote, context) {
        Some((service, notices)) => (Some(service), Some(notices)),
        None => (None, None),
    };
    daemon::run(transport, auth, p.clock, inbox, notices)
}

fn fmt_time(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn credential_json(c: &PasskeyRow) -> serde_json::Value {
    let has = |name: &str| c.extensions.iter().any(|e| e == name);
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    serde_json::json!({
        "credential_id": c.credential_id,
        "rp_id": c.rp_id,
        "rp_name": text(&c.rp_name),
        "user_id": c.user_id,
        "user_name": text(&c.user_name),
        "user_display_name": text(&c.display_name),
        "discoverable": c.discoverable,
        "sign_count": c.sign_count,
        "created": fmt_time(c.created),
        "last_used": (c.last_used != 0).then(|| fmt_time(c.last_used)),
        "cred_protect": c.cred_protect,
        "hmac_secret": has("hmac-secret"),
        "cred_blob": has("credBlob"),
        "large_blob_key": has("largeBlobKey"),
        "third_party_payment": has("thirdPartyPayment"),
        "algorithm": c.algorithm,
    })
}

fn list(source: &Source, json: bool) -> Result<()> {
    let rows = source.passkeys()?;
    tracing::debug!(via = source.via(), "listing passkeys");
    if json {
        let items: Vec<_> = rows.iter().map(credential_json).collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("No passkeys stored.");
        return Ok(());
    }
    println!(
        "{:<16}  {:<30}  {:<28}  {:<20}  {:<20}",
        "ID", "RP ID", "USER", "CREATED", "LAST USED"
    );
    for c in &rows {
        let id = &c.credential_id;
        println!(
            "{:<16}  {:<30}  {:<28}  {:<20}  {:<20}",
            &id[..16.min(id.len())],
            c.rp_id,
            if c.user_name.is_empty() { "-" } else { &c.user_name },
            fmt_time(c.created),
            if c.last_used == 0 {
                "never".into()
            } else {
                fmt_time(c.last_used)
            },
        );
    }
    Ok(())
}

fn delete(source: &mut Source, prefix: &str) -> Result<()> {
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("give at least 4 hex digits of the credential id (see `localpasskey list`)");
    }
    let matches = source.passkeys_with_prefix(&prefix)?;
    match matches.as_slice() {
        [] => bail!("no passkey has an id starting with {prefix}"),
        [c] => {
            if source.is_daemon() {
                println!(
                    "confirm the deletion of the passkey for {} in LocalPasskey's prompt",
                    c.rp_id
                );
            }
            source.delete(c)?;
            println!(
                "deleted passkey {} for {} ({})",
                &c.credential_id[..16.min(c.credential_id.len())],
                c.rp_id,
                if c.user_name.is_empty() { "-" } else { &c.user_name }
            );
            Ok(())
        }
        many => bail!(
            "{} passkeys have ids starting with {prefix}; give more digits",
            many.len()
        ),
    }
}

fn activity(source: &Source, limit: u32, json: bool) -> Result<()> {
    let rows = source.activity(limit)?;
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|a| {
                serde_json::json!({
                    "time": fmt_time(a.time),
                    "time_ms": a.time,
                    "action": a.action,
                    "outcome": a.outcome,
                    "rp_id": a.rp_id,
                    "account": a.account,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("No activity recorded.");
        return Ok(());
    }
    println!(
        "{:<20}  {:<10}  {:<9}  {:<30}  ACCOUNT",
        "TIME", "ACTION", "OUTCOME", "RP ID"
    );
    for a in &rows {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        println!(
            "{:<20}  {:<10}  {:<9}  {:<30}  {}",
            fmt_time(a.time),
            a.action,
            a.outcome,
            dash(&a.rp_id),
            dash(&a.account)
        );
    }
    Ok(())
}

/// The retention lives in the store, where the daemon reads it at start;
/// the log is trimmed to it at once.
fn set_retention(store: &mut SqliteStore, days: u32) -> Result<()> {
    store.set_meta(lp_core::activity::RETENTION_META, &days.to_le_bytes())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    store.trim_activity(lp_core::activity::cutoff(now, days))?;
    println!("activity entries are kept {days} days; older ones were removed");
    Ok(())
}

fn info(store: &SqliteStore, json: bool) -> Result<()> {
    let aaguid = lp_core::AAGUID_TEXT;
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
                "custody_available": ["tpm", "insecure-software"],
                "transports_available": ["uhid", "udp"],
            }))?
        );
        return Ok(());
    }
    println!("LocalPasskey {}", env!("CARGO_PKG_VERSION"));
    println!("AAGUID:       {aaguid}");
    println!("Database:     {}", path.unwrap_or_default());
    println!("Passkeys:     {count}");
    println!("Integrity:    {integrity}");
    println!("Key custody:  tpm (insecure-software for tests and simulation only)");
    println!("Transports:   uhid (USB security key), udp simulation");
    Ok(())
}

/// The enterprise commands work on the store and the TPM directly, so the
/// daemon must not hold them (see enterprise.rs).
fn enterprise(dir: &Path, action: EnterpriseAction, tcti: &str, pin_stdin: bool) -> Result<()> {
    if matches!(
        action,
        EnterpriseAction::Request { .. } | EnterpriseAction::Install { .. } | EnterpriseAction::Remove
    ) && Source::open(dir)?.is_daemon()
    {
        bail!(
            "the daemon is running on {}: stop it first (systemctl --user stop localpasskey), \
             the enrolment needs the TPM and the store to itself",
            dir.display()
        );
    }
    if !dir.join(crate::store_sqlite::DB_FILE_NAME).exists() {
        bail!("no LocalPasskey data in {}: set a PIN first", dir.display());
    }
    let mut store = SqliteStore::open(dir)?;
    match action {
        EnterpriseAction::Request { out } => {
            harden_process();
            let pin = read_pin("PIN: ", pin_stdin)?;
            crate::enterprise::request(&mut store, tcti, &pin, &out)
        }
        EnterpriseAction::Install { response, rp_ids } => {
            harden_process();
            let pin = read_pin("PIN: ", pin_stdin)?;
            crate::enterprise::install(&mut store, tcti, &pin, &response, rp_ids)
        }
        EnterpriseAction::Status { json } => crate::enterprise::status(&store, json),
        EnterpriseAction::Remove => crate::enterprise::remove(&mut store),
    }
}

fn read_pin(prompt: &str, from_stdin: bool) -> Result<zeroize::Zeroizing<String>> {
    let line = if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password(prompt)
            .context("cannot read the PIN from the terminal (use --pin-stdin)")?
    };
    Ok(zeroize::Zeroizing::new(line))
}

/// The serial `run` gave the security key it made for `dir`, as the kernel
/// shows it (`HID_UNIQ`), so `pin` can tell our hidraw node from others
/// named LocalPasskey. The store already records it for `run` (so the
/// serial stays the same across restarts), and the CLI knows the data
/// directory, so no other record is needed. `None` when no daemon ever ran
/// with `dir`; nothing is created then.
fn our_serial(dir: &std::path::Path) -> Result<Option<String>> {
    if !dir.join(crate::store_sqlite::DB_FILE_NAME).exists() {
        return Ok(None);
    }
    let store = SqliteStore::open(dir)
        .with_context(|| format!("cannot read our security key's serial from {}", dir.display()))?;
    Ok(store
        .get_meta(DEVICE_SERIAL_META)?
        .and_then(|s| String::from_utf8(s).ok())
        .map(|s| DeviceIdentity::new(&s).uniq().to_owned()))
}

fn pin(action: PinAction, to: client::Target, from_stdin: bool) -> Result<()> {
    eprintln!("authenticator: {to}");
    let mut c = Client::connect(&to)?;
    match action {
        PinAction::Status => {
            let s = client::pin_status(&mut c)?;
            if !s.set {
                println!("No PIN is set: no passkey can be created until one is (`localpasskey pin set`).");
            } else {
                println!(
                    "A PIN is set. Tries left: {} of {}.",
                    s.retries,
                    lp_core::pin::MAX_RETRIES
                );
                if s.retries == 0 {
                    println!("The PIN is blocked for good: only a reset (which erases every passkey) helps.");
                } else if s.power_cycle_needed {
                    println!(
                        "Three wrong PINs in a row: unplug and replug (power-cycle) before the next try."
                    );
                }
            }
            Ok(())
        }
        PinAction::Set => {
            let pin = read_pin("New PIN: ", from_stdin)?;
            let again = read_pin("New PIN again: ", from_stdin)?;
            if *pin != *again {
                bail!("the two PINs differ; nothing changed");
            }
            match client::set_pin(&mut c, &pin)? {
                Ok(()) => {
                    println!("PIN set.");
                    Ok(())
                }
                // CTAP 2.1 §6.5.5.5: setPIN on a PIN that is set is PIN_AUTH_INVALID.
                Err(lp_core::status::CtapError::PinAuthInvalid) => {
                    bail!("a PIN is already set: use `localpasskey pin change`")
                }
                Err(lp_core::status::CtapError::PinPolicyViolation) => {
                    bail!("a PIN needs at least 4 characters and at most 63 bytes")
                }
                Err(e) => bail!("the authenticator refused: {e}"),
            }
        }
        PinAction::Change => {
            let old = read_pin("Current PIN: ", from_stdin)?;
            let new = read_pin("New PIN: ", from_stdin)?;
            let again = read_pin("New PIN again: ", from_stdin)?;
            if *new != *again {
                bail!("the two new PINs differ; nothing changed");
            }
            match client::change_pin(&mut c, &old, &new)? {
                Ok(()) => {
                    println!("PIN changed.");
                    Ok(())
                }
                Err(lp_core::status::CtapError::PinInvalid) => {
                    let s = client::pin_status(&mut c)?;
                    bail!("wrong PIN; {} tries left", s.retries)
                }
                Err(lp_core::status::CtapError::PinAuthBlocked) => {
                    bail!("too many wrong PINs: power-cycle the authenticator before trying again")
                }
                Err(lp_core::status::CtapError::PinBlocked) => bail!("the PIN is blocked for good"),
                Err(lp_core::status::CtapError::PinPolicyViolation) => {
                    bail!("a PIN needs at least 4 characters and at most 63 bytes")
                }
                Err(e) => bail!("the authenticator refused: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lp_core::pin::meta::BOOT_FAILURES;

    #[test]
    fn only_a_new_boot_clears_the_per_boot_pin_failures() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        power_up_after_boot(&mut store, Some("boot-a".into())).unwrap();
        store.set_meta(BOOT_FAILURES, &[3]).unwrap();
        // A restart in the same boot keeps the block.
        power_up_after_boot(&mut store, Some("boot-a".into())).unwrap();
        assert_eq!(store.get_meta(BOOT_FAILURES).unwrap(), Some(vec![3]));
        // So does a start that cannot tell which boot it is.
        power_up_after_boot(&mut store, None).unwrap();
        assert_eq!(store.get_meta(BOOT_FAILURES).unwrap(), Some(vec![3]));
        // A new boot clears it, once.
        power_up_after_boot(&mut store, Some("boot-b".into())).unwrap();
        assert_eq!(store.get_meta(BOOT_FAILURES).unwrap(), Some(vec![0]));
        store.set_meta(BOOT_FAILURES, &[2]).unwrap();
        power_up_after_boot(&mut store, Some("boot-b".into())).unwrap();
        assert_eq!(store.get_meta(BOOT_FAILURES).unwrap(), Some(vec![2]));
    }

    #[test]
    fn this_machine_has_a_boot_id() {
        let id = kernel_boot_id().expect("Linux publishes /proc/sys/kernel/random/boot_id");
        assert_eq!(id.len(), 36, "{id}");
    }
}
