//! `localpasskey doctor`: find what stops LocalPasskey from working on this
//! machine and say, in plain words, how to fix it.

use crate::setup::{
    normalise_tcti, user_unit_dir, MODULES_LOAD, OLD_UDEV_RULE, UDEV_OWNER_RULE, UDEV_RULE_DIRS,
    UDEV_SNAP_RULE,
};
use crate::store_sqlite::{SqliteStore, DB_FILE_NAME};
use anyhow::Result;
use lp_core::store::CredentialStore;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// How one finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Info,
    /// Not a fault of the setup, but something the person must know.
    Warn,
    Fail,
}

impl Status {
    /// The name used over D-Bus (`Health`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One thing doctor found: the same words on the terminal and in the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The part of the setup it is about ("TPM", "Data directory", ...).
    pub check: String,
    pub status: Status,
    pub text: String,
    /// What to do; empty when there is nothing to do.
    pub fix: String,
}

/// Collects findings, and prints each as it comes when a person watches.
struct Report {
    problems: usize,
    section: String,
    findings: Vec<Finding>,
    print: bool,
}

impl Report {
    fn new(print: bool) -> Self {
        Self {
            problems: 0,
            section: String::new(),
            findings: Vec::new(),
            print,
        }
    }
    fn section(&mut self, name: &str, detail: &str) {
        if self.print {
            println!("{name}{detail}");
        }
        self.section = name.to_owned();
    }
    fn add(&mut self, status: Status, what: &str, fix: &str) {
        if self.print {
            let tag = match status {
                Status::Ok => "ok  ",
                Status::Info => "info",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!("  {tag}  {what}");
            if !fix.is_empty() {
                println!("        fix: {fix}");
            }
        }
        self.findings.push(Finding {
            check: self.section.clone(),
            status,
            text: what.to_owned(),
            fix: fix.to_owned(),
        });
    }
    fn ok(&mut self, what: &str) {
        self.add(Status::Ok, what, "");
    }
    fn info(&mut self, what: &str) {
        self.add(Status::Info, what, "");
    }
    fn warn(&mut self, what: &str) {
        self.add(Status::Warn, what, "");
    }
    fn bad(&mut self, what: &str, fix: &str) {
        self.problems += 1;
        self.add(Status::Fail, what, fix);
    }
}

pub fn run(dir: &Path, tpm: &str, uhid: bool) -> Result<()> {
    let mut r = Report::new(true);
    r.section("TPM", "");
    let mut tpm = check_tpm(&mut r, &normalise_tcti(tpm));
    check_rest(&mut r, dir, tpm.as_mut(), uhid);
    if r.problems == 0 {
        println!("\nNo problems found.");
        Ok(())
    } else {
        anyhow::bail!("{} problem(s) found; see the fixes above", r.problems)
    }
}

/// doctor's findings inside a running daemon, which already holds the TPM
/// (a second connection to it could wait for ours to close): the TPM part is
/// what the daemon knows of its own custody, `tpm`, and the rest is checked
/// as the command checks it.
pub fn findings_in_daemon(dir: &Path, tpm: Finding, uhid: bool) -> Vec<Finding> {
    let mut r = Report::new(false);
    r.findings.push(tpm);
    check_rest(&mut r, dir, None, uhid);
    r.findings
}

fn check_rest(r: &mut Report, dir: &Path, tpm: Option<&mut lp_tpm::TpmCustody>, uhid: bool) {
    let software = tpm.as_ref().map(|t| t.is_software());
    r.section("Data directory", &format!(" ({})", dir.display()));
    check_data_dir(r, dir, tpm);
    r.section("USB HID device (uhid) and setup", "");
    if uhid {
        check_setup(r, software);
    } else {
        r.info("not checked: --transport udp (the simulation needs no device)");
    }
}

fn check_tpm(r: &mut Report, tcti: &str) -> Option<lp_tpm::TpmCustody> {
    if let Some(path) = tcti.strip_prefix("device:") {
        let path = Path::new(path);
        if !path.exists() {
            r.bad(
                &format!("{} does not exist: this machine shows no TPM 2.0", path.display()),
                "enable the TPM (often called fTPM, PTT or Security Chip) in the firmware setup; \
                 for testing, run a software TPM (swtpm) and pass --tpm swtpm:path=SOCKET",
            );
            return None;
        }
        match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(_) => r.ok(&format!("{} can be opened", path.display())),
            Err(e) => {
                r.bad(
                    &format!("{} cannot be opened: {e}", path.display()),
                    "add yourself to the `tss` group (sudo usermod -aG tss $USER, then log in again)",
                );
                return None;
            }
        }
    }
    let mut tpm = match lp_tpm::TpmCustody::inspect(tcti) {
        Ok(t) => t,
        Err(e) => {
            r.bad(
                &format!("cannot talk to the TPM at {tcti}: {e}"),
                "check that the TPM (or swtpm) is running and that libtss2 is installed (apt install libtss2-dev)",
            );
            return None;
        }
    };
    r.ok(&format!(
        "TPM at {tcti} answers and re-creates our storage primary"
    ));
    match tpm.describe() {
        Ok(d) => {
            if d.software {
                r.warn(
                    "this is a SOFTWARE TPM (swtpm): its state is a file, and whoever can copy that \
                     file copies every key and rolls back every counter; only a hardware TPM keeps \
                     LocalPasskey's promises",
                );
            }
            r.info(&format!(
                "manufacturer {} ({}), firmware {}, TPM 2.0 library revision {}",
                d.manufacturer, d.vendor, d.firmware_version, d.revision
            ));
            if d.ecc_p256 {
                r.ok("ECDSA P-256 signing keys are supported");
            } else {
                r.bad(
                    "this TPM does not support ECDSA P-256 keys",
                    "LocalPasskey needs a TPM 2.0 with ECC P-256; update the TPM firmware",
                );
            }
            r.info(&format!(
                "{} transient object slots; {}",
                d.transient_slots
                    .map_or("an unknown number of".to_string(), |n| n.to_string()),
                if d.isolated {
                    format!(
                        "{} kept for cached credential keys (the kernel keeps them ours)",
                        d.key_cache_size
                    )
                } else {
                    "credential keys are flushed after each use (other processes can reach this TPM)".into()
                }
            ));
        }
        Err(e) => r.bad(
            &format!("cannot read the TPM's capabilities: {e}"),
            "see the TPM error above",
        ),
    }
    let software = tpm.is_software();
    match tpm.da_status() {
        Ok(da) => check_lockout(r, &da, software),
        Err(e) => r.bad(
            &format!("cannot read the lockout state: {e}"),
            "see the TPM error above",
        ),
    }
    Some(tpm)
}

/// Who holds the lockout authorisation, and the dictionary-attack settings
/// we live under (see lp-tpm's lockout.rs for why they matter).
fn check_lockout(r: &mut Report, da: &lp_tpm::DaStatus, software: bool) {
    if da.lockout_auth_set {
        r.ok("the lockout authorisation is set: nobody without it can reset the dictionary-attack counter");
    } else if software {
        r.info(
            "the lockout authorisation is empty; this software TPM is LocalPasskey's own, so the \
             daemon takes it before the first PIN is set",
        );
    } else {
        r.bad(
            "the lockout authorisation is EMPTY: anyone who can open the TPM may reset its \
             dictionary-attack counter, so the TPM would not bound PIN guesses",
            "localpasskey tpm-protect (it explains what it changes and asks first)",
        );
    }
    let ours = (da.max_tries, da.recovery_secs) == (lp_tpm::DA_MAX_TRIES, lp_tpm::DA_RECOVERY_SECS);
    let line = format!(
        "dictionary-attack settings: {} of {} failures counted, one forgiven every {} s{}",
        da.counter,
        da.max_tries,
        da.recovery_secs,
        if ours { " (LocalPasskey's)" } else { "" }
    );
    if da.in_lockout {
        r.bad(
            &format!("{line}; the TPM is in LOCKOUT and refuses every PIN"),
            "wait: one failure is forgiven every recovery period, and nobody can clear it sooner",
        );
    } else {
        r.ok(&line);
    }
    if da.lockout_auth_set && !ours {
        r.info(&format!(
            "someone else (another OS, or the machine's owner) set these: a guess that goes around \
             the PIN index costs one of {} tries, then one per {} s",
            da.max_tries, da.recovery_secs
        ));
    }
    if da.owner_auth_set {
        r.info("the owner authorisation is set: LocalPasskey cannot make its PIN index without it");
    }
}

/// How the stored PIN is guarded: by the TPM's PIN index (and how many wrong
/// PINs it has counted), or by the dictionary-attack lockout alone.
fn check_pin_gate(r: &mut Report, vault: &[u8], tpm: Option<&mut lp_tpm::TpmCustody>) {
    let Ok(vault) = lp_tpm::VaultBlob::from_bytes(vault) else {
        r.info("a PIN is set (software custody: the TPM is not involved)");
        return;
    };
    if !vault.is_gated() {
        r.warn(
            "a PIN is set, but it is guarded by the dictionary-attack lockout alone (made before \
             the PIN index, or on a TPM without one); it moves onto a PIN index at the next right PIN",
        );
        return;
    }
    let Some(tpm) = tpm else {
        r.info("a PIN is set, counted by a TPM PIN index (the TPM did not answer)");
        return;
    };
    match tpm.pin_counts(&vault) {
        Ok(Some(c)) if c.failures >= c.limit => r.bad(
            "the TPM's PIN index is BLOCKED: no PIN opens this vault any more",
            "only authenticatorReset helps (it erases every passkey): fido2-token -R",
        ),
        Ok(Some(c)) => r.ok(&format!(
            "a PIN is set, counted by the TPM's PIN index: {} wrong since the last right one, {} left",
            c.failures,
            c.limit - c.failures
        )),
        Ok(None) => r.info("a PIN is set, counted by a TPM PIN index whose counts cannot be read here"),
        Err(e) => r.bad(
            &format!("cannot read the PIN index: {e}"),
            "see the TPM error above",
        ),
    }
}

/// Below this, SQLite cannot write its journal: every registration and
/// sign-in fails (CTAP2_ERR_OTHER, nothing acknowledged is lost).
const FULL_BELOW: u64 = 1 << 20;
const LOW_BELOW: u64 = 64 << 20;

/// What to say about `available` free bytes on the data directory's file system.
fn space_verdict(available: u64) -> Option<(bool, String)> {
    let mib = available as f64 / (1 << 20) as f64;
    if available < FULL_BELOW {
        Some((
            true,
            format!(
                "the DISK IS FULL ({} KiB free where the passkeys live): every registration and sign-in \
             fails with CTAP2_ERR_OTHER until space is freed (nothing already acknowledged is lost)",
                available / 1024
            ),
        ))
    } else if available < LOW_BELOW {
        Some((
            false,
            format!("only {mib:.1} MiB free where the passkeys live: the disk is nearly full"),
        ))
    } else {
        None
    }
}

fn check_free_space(r: &mut Report, dir: &Path) {
    let Ok(st) = rustix::fs::statvfs(dir) else {
        return;
    };
    let available = st.f_bavail.saturating_mul(st.f_frsize);
    match space_verdict(available) {
        Some((true, msg)) => r.bad(
            &msg,
            "free some space on that file system (df -h shows which), then try again",
        ),
        Some((false, msg)) => r.warn(&msg),
        None => r.ok(&format!("{} MiB free for the database", available >> 20)),
    }
}

fn check_data_dir(r: &mut Report, dir: &Path, tpm: Option<&mut lp_tpm::TpmCustody>) {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(_) => {
            r.info("does not exist yet; `localpasskey run` creates it (mode 0700)");
            return;
        }
    };
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    if meta.uid() != uid {
        r.bad(
            &format!("owned by uid {}, not by you (uid {uid})", meta.uid()),
            &format!("sudo chown -R $USER {}", dir.display()),
        );
    }
    check_free_space(r, dir);
    let mode = meta.permissions().mode() & 0o777;
    if mode == 0o700 {
        r.ok("mode 0700");
    } else {
        r.bad(
            &format!("mode {mode:o}, not 0700"),
            &format!("chmod 700 {}", dir.display()),
        );
    }
    for suffix in ["", "-wal", "-shm"] {
        let f = dir.join(format!("{DB_FILE_NAME}{suffix}"));
        if let Ok(m) = std::fs::metadata(&f) {
            let mode = m.permissions().mode() & 0o777;
            if mode != 0o600 {
                r.bad(
                    &format!("{} has mode {mode:o}, not 0600", f.display()),
                    &format!("chmod 600 {}", f.display()),
                );
            }
        }
    }
    match SqliteStore::open(dir) {
        Ok(store) => {
            match store.integrity_check() {
                Ok(()) => r.ok("database integrity check passed"),
                Err(e) => r.bad(
                    &format!("database integrity check failed: {e:#}"),
                    "stop the daemon and keep a copy of the directory; report a bug",
                ),
            }
            let all = store.all().unwrap_or_default();
            let software = all.iter().filter(|c| c.key_blob.starts_with(b"INSECURE")).count();
            r.info(&format!("{} passkeys stored", all.len()));
            if software > 0 {
                r.bad(
                    &format!("{software} passkeys were made with the INSECURE software custody"),
                    "they are not protected by any TPM: delete them (`localpasskey delete`) and register again",
                );
            }
            match store.get_meta(lp_core::pin::meta::VAULT) {
                Ok(Some(vault)) => check_pin_gate(r, &vault, tpm),
                _ => {
                    r.info("no PIN is set yet: `localpasskey pin set` while the daemon runs");
                    if let Some(tpm) = tpm {
                        match tpm.probe_pin_index() {
                            Ok(()) => {
                                r.ok("this TPM makes PIN indices: wrong PINs will be counted by the TPM")
                            }
                            Err(e) => r.bad(
                                &format!(
                                    "{e}: wrong PINs could only be counted by the dictionary-attack lockout"
                                ),
                                "a TPM 2.0 with PIN indices and an empty owner authorisation is needed; \
                                 `localpasskey run --accept-weak-pin-limit` accepts the weaker guarantee",
                            ),
                        }
                    }
                }
            }
        }
        Err(e) => r.bad(&format!("cannot open the database: {e:#}"), "see the error above"),
    }
}

const INSTALL: &str = "install the package: scripts/install.sh from the LocalPasskey checkout";

/// Lines of a rules file that are rules (comments and blanks dropped).
fn rule_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Whether an old rules file hands /dev/uhid to the seat's user.
fn gives_uhid_away(text: &str) -> bool {
    rule_lines(text)
        .iter()
        .any(|l| l.contains("KERNEL==\"uhid\"") && l.contains("TAG+=\"uaccess\""))
}

/// Whether the owner rule does its two jobs: our node to the uid in
/// HID_PHYS, and the uaccess tag taken away.
fn owner_rule_ok(text: &str) -> bool {
    let lines = rule_lines(text);
    lines
        .iter()
        .any(|l| l.contains("OWNER=\"$env{HID_PHYS}\"") && l.contains("TAG-=\"uaccess\""))
        && lines.iter().any(|l| l.contains("IMPORT{parent}=\"HID_PHYS\""))
}

fn snap_rule_ok(text: &str) -> bool {
    rule_lines(text).iter().any(|l| {
        l.contains("/devices/virtual/misc/uhid/0003:1209:0001.")
            && l.contains("snap_firefox_firefox")
            && l.contains("snap_chromium_chromium")
    })
}

/// Who the kernel and udev say our node belongs to.
#[derive(Debug, PartialEq, Eq)]
enum Ownership {
    /// Ours alone: owner is us, mode 0600, no ACL.
    Ours,
    /// Made by the broker for someone else (HID_PHYS is another uid).
    Others(u32),
    Wrong(String),
}

fn ownership(me: u32, phys: Option<&str>, owner: u32, mode: u32, acl: bool) -> Ownership {
    let made_for = phys.and_then(|p| p.parse::<u32>().ok());
    match made_for {
        Some(uid) if uid != me => return Ownership::Others(uid),
        Some(_) => {}
        None => {
            return Ownership::Wrong(format!(
                "it was not made by the broker (HID_PHYS {:?}), so udev gives it to nobody",
                phys.unwrap_or("")
            ))
        }
    }
    if owner != me {
        return Ownership::Wrong(format!(
            "it belongs to uid {owner}, not to you: the udev rule {UDEV_OWNER_RULE} did not apply"
        ));
    }
    if mode & 0o077 != 0 {
        return Ownership::Wrong(format!("its mode is {mode:o}: others may open it"));
    }
    if acl {
        return Ownership::Wrong("it has an ACL (uaccess): whoever holds the seat may open it".into());
    }
    Ownership::Ours
}

fn has_acl(path: &Path) -> bool {
    rustix::fs::getxattr(path, "system.posix_acl_access", &mut [0u8; 0][..]).is_ok()
}

/// What `udevadm info` says of a node: its properties, and its current tags.
type UdevInfo = (Vec<(String, String)>, Vec<String>);

fn udev_info(node: &Path) -> Option<UdevInfo> {
    let out = std::process::Command::new("udevadm")
        .args(["info", "--query=property"])
        .arg(node)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(parse_udev_properties(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_udev_properties(text: &str) -> UdevInfo {
    let props: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |k: &str| props.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let tags = get("CURRENT_TAGS")
        .or_else(|| get("TAGS"))
        .unwrap_or_default()
        .split(':')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    (props, tags)
}

fn read_rules(r: &mut Report, name: &str, ok: fn(&str) -> bool, what: &str, missing: &str) {
    let found = UDEV_RULE_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)));
    match found {
        Some((p, t)) if ok(&t) => r.ok(&format!("{} {what}", p.display())),
        Some((p, _)) => r.bad(
            &format!("{} does not have the expected rule", p.display()),
            INSTALL,
        ),
        None => r.bad(&format!("no udev rule {name}: {missing}"), INSTALL),
    }
}

/// `software`: whether the TPM is a software one, when doctor could ask it.
fn check_setup(r: &mut Report, software: Option<bool>) {
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
    let uhid = Path::new(crate::transport::uhid::UHID_PATH);
    match std::fs::metadata(uhid) {
        Ok(m) => {
            let open = std::fs::OpenOptions::new().read(true).write(true).open(uhid).is_ok();
            if open && me != 0 {
                r.bad(
                    &format!(
                        "you may open {}: every program you run can create a keyboard and type into \
                         any window (the lock screen too)",
                        uhid.display()
                    ),
                    &format!(
                        "remove the old rule (sudo rm {OLD_UDEV_RULE}; the broker needs none), then \
                         sudo udevadm trigger --action=change --sysname-match=uhid"
                    ),
                );
            } else if m.uid() == 0 && m.permissions().mode() & 0o077 == 0 && !has_acl(uhid) {
                r.ok(&format!("{} exists and is root's alone (the broker opens it)", uhid.display()));
            } else {
                r.bad(
                    &format!("{} is open to others (mode {:o} or an ACL)", uhid.display(), m.permissions().mode() & 0o777),
                    &format!("{INSTALL}; its rule {UDEV_OWNER_RULE} makes it root's"),
                );
            }
        }
        Err(_) if Path::new("/sys/module/uhid").exists() => r.bad(
            &format!("the uhid module is loaded but {} is missing", uhid.display()),
            "is /dev a devtmpfs? sudo udevadm trigger --sysname-match=uhid",
        ),
        Err(_) => r.bad(
            &format!("{} does not exist: the uhid module is not loaded", uhid.display()),
            &format!("sudo modprobe uhid, and {MODULES_LOAD} loads it at boot ({INSTALL}); if modprobe fails, this kernel lacks CONFIG_UHID"),
        ),
    }
    match std::fs::read_to_string(MODULES_LOAD) {
        Ok(t) if t.lines().any(|l| l.trim() == "uhid") => r.ok(&format!("{MODULES_LOAD} loads uhid at boot")),
        Ok(_) => r.bad(&format!("{MODULES_LOAD} does not name uhid"), INSTALL),
        Err(_) => r.bad(
            &format!("{MODULES_LOAD} is missing: uhid is not loaded at boot"),
            INSTALL,
        ),
    }
    let broker = Path::new(crate::transport::broker::SOCKET_PATH);
    match std::fs::metadata(broker) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) && m.uid() == 0 => r.ok(&format!(
            "the uhid broker listens on {} (root's)",
            broker.display()
        )),
        Ok(m) => r.bad(
            &format!("{} is not root's socket (uid {})", broker.display(), m.uid()),
            "sudo systemctl restart localpasskey-broker.socket",
        ),
        Err(_) => r.bad(
            &format!("the uhid broker's socket {} is missing", broker.display()),
            &format!("sudo systemctl enable --now localpasskey-broker.socket ({INSTALL})"),
        ),
    }
    read_rules(
        r,
        UDEV_OWNER_RULE,
        owner_rule_ok,
        "gives our node to its owner alone",
        "the seat's user, not the owner, would get the node",
    );
    read_rules(
        r,
        UDEV_SNAP_RULE,
        snap_rule_ok,
        "tags our node for the Firefox and Chromium snaps",
        "snap browsers cannot see the key",
    );
    if let Ok(t) = std::fs::read_to_string(OLD_UDEV_RULE) {
        if gives_uhid_away(&t) {
            r.bad(
                &format!("{OLD_UDEV_RULE} (from an older install) gives /dev/uhid to the seat's user"),
                &format!("sudo rm {OLD_UDEV_RULE} && sudo udevadm control --reload"),
            );
        }
    }
    // The security key itself, if a daemon is running.
    let mut found = false;
    let mut snap_tagged = None;
    if let Ok(entries) = std::fs::read_dir("/sys/class/hidraw") {
        for e in entries.flatten() {
            let uevent = std::fs::read_to_string(e.path().join("device/uevent")).unwrap_or_default();
            if !uevent.lines().any(|l| l == "HID_NAME=LocalPasskey") {
                continue;
            }
            let phys = uevent.lines().find_map(|l| l.strip_prefix("HID_PHYS="));
            let node = Path::new("/dev").join(e.file_name());
            let Ok(meta) = std::fs::metadata(&node) else {
                continue;
            };
            match ownership(me, phys, meta.uid(), meta.permissions().mode(), has_acl(&node)) {
                Ownership::Others(uid) => {
                    r.info(&format!("{} is the security key of uid {uid}", node.display()));
                    continue;
                }
                Ownership::Ours => r.ok(&format!(
                    "the security key is up as {} and belongs to you alone (mode 0600, no ACL)",
                    node.display()
                )),
                Ownership::Wrong(why) => r.bad(
                    &format!("the security key is up as {}, but {why}", node.display()),
                    &format!("{INSTALL}; then sudo udevadm trigger --action=change --subsystem-match=hidraw"),
                ),
            }
            found = true;
            if let Some((props, tags)) = udev_info(&node) {
                if props.iter().any(|(k, v)| k == "ID_FIDO_TOKEN" && v == "1") {
                    r.ok("udev's fido_id recognises it as a FIDO token (ID_FIDO_TOKEN=1)");
                } else {
                    r.bad(
                        "udev does not mark it ID_FIDO_TOKEN=1",
                        "check that systemd's 60-fido-id.rules is installed (udev package)",
                    );
                }
                if tags.iter().any(|t| t == "uaccess") {
                    r.bad(
                        "it carries the uaccess tag: the seat's user gets an ACL on it",
                        INSTALL,
                    );
                }
                snap_tagged = Some(
                    tags.iter().any(|t| t == "snap_firefox_firefox")
                        && tags.iter().any(|t| t == "snap_chromium_chromium"),
                );
            }
        }
    }
    if !found {
        r.info("no LocalPasskey security key of yours is up right now (the service creates it)");
    }
    check_browsers(r, snap_tagged);
    // The desktop dialog the service asks through sits next to the daemon.
    match crate::prompt_desktop::DesktopPrompt::locate() {
        Ok(_) => r.ok("the desktop dialog (localpasskey-prompt) is installed next to localpasskey"),
        Err(e) => r.bad(&format!("{e:#}"), INSTALL),
    }
    // The package's unit, enabled for every user; or one of the user's own.
    const PACKAGED: &str = "/usr/lib/systemd/user/localpasskey.service";
    const GLOBAL_WANTS: &str = "/etc/systemd/user/default.target.wants/localpasskey.service";
    let dir = user_unit_dir();
    let own = dir.as_ref().map(|d| d.join("localpasskey.service"));
    let unit = own
        .clone()
        .filter(|u| u.exists())
        .or_else(|| Some(std::path::PathBuf::from(PACKAGED)).filter(|u| u.exists()));
    let Some(unit) = unit else {
        r.bad(
            "no systemd user service (localpasskey.service is not installed)",
            INSTALL,
        );
        return;
    };
    r.ok(&format!("systemd user service installed ({})", unit.display()));
    let enabled = dir
        .map(|d| d.join("default.target.wants/localpasskey.service"))
        .is_some_and(|w| w.exists())
        || Path::new(GLOBAL_WANTS).exists();
    if enabled {
        r.ok("the service starts at login (enabled)");
    } else {
        r.bad(
            "the service is not enabled: it does not start at login",
            "systemctl --user enable --now localpasskey.service",
        );
    }
    if let Ok(out) = std::process::Command::new("systemctl")
        .args(["--user", "is-active", "localpasskey.service"])
        .output()
    {
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let allows = output(
            "systemctl",
            &[
                "--user",
                "show",
                "-p",
                "ExecStart",
                "--value",
                "localpasskey.service",
            ],
        )
        .is_some_and(|x| x.contains("--allow-software-tpm"));
        match service_verdict(&state, software, allows) {
            ServiceVerdict::Running => r.ok("the service is running"),
            ServiceVerdict::RefusesSoftwareTpm => r.bad(
                &format!(
                    "the service is {state}: it refuses this SOFTWARE TPM with the USB security key \
                     (its keys could be copied with the TPM's state file), so no key is up; \
                     journalctl --user -u localpasskey.service shows its reason"
                ),
                "use a machine with a hardware TPM 2.0; to accept this software TPM anyway, add \
                 --allow-software-tpm to the service's command line (systemctl --user edit \
                 localpasskey.service)",
            ),
            ServiceVerdict::Other => r.info(&format!(
                "the service is {state}: journalctl --user -u localpasskey.service says why"
            )),
            ServiceVerdict::Unknown => {}
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ServiceVerdict {
    Running,
    /// The daemon will not start on a software TPM without the flag, so
    /// waiting or restarting cannot help: that is a problem, not a state.
    RefusesSoftwareTpm,
    Other,
    Unknown,
}

fn service_verdict(state: &str, software: Option<bool>, allows_software: bool) -> ServiceVerdict {
    match state {
        "" => ServiceVerdict::Unknown,
        "active" => ServiceVerdict::Running,
        _ if software == Some(true) && !allows_software => ServiceVerdict::RefusesSoftwareTpm,
        _ => ServiceVerdict::Other,
    }
}

/// Whether `snap connections SNAP` shows its u2f-devices plug connected.
fn snap_u2f_connected(text: &str) -> bool {
    text.lines().skip(1).any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.first() == Some(&"u2f-devices") && cols.get(2).is_some_and(|slot| *slot != "-")
    })
}

/// Whether `flatpak info --show-permissions APP` lets the app open devices.
fn flatpak_devices_all(text: &str) -> bool {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("devices="))
        .any(|v| v.split(';').any(|d| d == "all"))
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Snap and Flatpak browsers, and whether each can reach the key.
/// `tagged`: whether our node carries both snap tags (None: no node up).
fn check_browsers(r: &mut Report, tagged: Option<bool>) {
    for snap in ["firefox", "chromium"] {
        if !Path::new("/snap").join(snap).join("current").exists() {
            continue;
        }
        let connected = output("snap", &["connections", snap]).map(|t| snap_u2f_connected(&t));
        match (connected, tagged) {
            (Some(false), _) => r.bad(
                &format!("the {snap} snap's u2f-devices interface is not connected: it cannot open any security key"),
                &format!("sudo snap connect {snap}:u2f-devices"),
            ),
            (_, Some(false)) => r.bad(
                &format!("the {snap} snap is installed but our node lacks its udev tag (snap_{snap}_{snap})"),
                &format!("{INSTALL}; then sudo udevadm trigger --action=change --subsystem-match=hidraw"),
            ),
            (_, Some(true)) => r.ok(&format!("the {snap} snap can reach the key (u2f-devices, udev tag)")),
            (_, None) => r.info(&format!("the {snap} snap is installed; whether it sees the key shows once the key is up")),
        }
    }
    if output("flatpak", &["--version"]).is_none() {
        return;
    }
    for app in [
        "org.mozilla.firefox",
        "org.chromium.Chromium",
        "com.google.Chrome",
        "com.brave.Browser",
    ] {
        let Some(perms) = output("flatpak", &["info", "--show-permissions", app]) else {
            continue;
        };
        if flatpak_devices_all(&perms) {
            r.ok(&format!(
                "the Flatpak {app} may open devices (--device=all): it reaches the key as you"
            ));
        } else {
            r.bad(
                &format!("the Flatpak {app} may not open devices: it cannot see any security key"),
                &format!("flatpak override --user --device=all {app}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules the package installs pass the checks; an old uaccess rule
    /// for /dev/uhid is caught.
    #[test]
    fn packaged_rules_pass() {
        let owner = include_str!("../../../packaging/udev/72-localpasskey.rules");
        let snap = include_str!("../../../packaging/udev/69-localpasskey-snap.rules");
        assert!(owner_rule_ok(owner) && snap_rule_ok(snap));
        assert!(!gives_uhid_away(owner), "our own rule must keep /dev/uhid root's");
        assert!(!owner_rule_ok("# OWNER=\"$env{HID_PHYS}\" TAG-=\"uaccess\"\n"));
        assert!(!snap_rule_ok(owner));
        assert!(gives_uhid_away(
            "KERNEL==\"uhid\", SUBSYSTEM==\"misc\", TAG+=\"uaccess\"\n"
        ));
        assert!(!gives_uhid_away("# KERNEL==\"uhid\", TAG+=\"uaccess\"\n"));
    }

    #[test]
    fn a_service_that_refuses_a_software_tpm_is_a_problem() {
        use ServiceVerdict::*;
        assert_eq!(service_verdict("active", Some(true), false), Running);
        assert_eq!(service_verdict("failed", Some(true), false), RefusesSoftwareTpm);
        assert_eq!(
            service_verdict("activating", Some(true), false),
            RefusesSoftwareTpm
        );
        assert_eq!(service_verdict("failed", Some(true), true), Other);
        assert_eq!(service_verdict("failed", Some(false), false), Other);
        assert_eq!(service_verdict("inactive", None, false), Other);
        assert_eq!(service_verdict("", Some(true), false), Unknown);
    }

    #[test]
    fn a_full_disk_is_named() {
        let (bad, msg) = space_verdict(300 * 1024).unwrap();
        assert!(
            bad && msg.contains("DISK IS FULL") && msg.contains("300 KiB"),
            "{msg}"
        );
        let (bad, msg) = space_verdict(10 << 20).unwrap();
        assert!(!bad && msg.contains("nearly full"), "{msg}");
        assert!(space_verdict(1 << 30).is_none());
    }

    #[test]
    fn ownership_of_the_node() {
        assert_eq!(
            ownership(1000, Some("1000"), 1000, 0o20600, false),
            Ownership::Ours
        );
        assert_eq!(
            ownership(1000, Some("1001"), 1001, 0o20600, false),
            Ownership::Others(1001)
        );
        assert!(matches!(
            ownership(1000, Some("1000"), 0, 0o20600, false),
            Ownership::Wrong(_)
        ));
        assert!(matches!(
            ownership(1000, Some("1000"), 1000, 0o20660, false),
            Ownership::Wrong(_)
        ));
        assert!(matches!(
            ownership(1000, Some("1000"), 1000, 0o20600, true),
            Ownership::Wrong(_)
        ));
        assert!(matches!(
            ownership(1000, Some("localpasskey/uhid"), 0, 0o20600, false),
            Ownership::Wrong(_)
        ));
        assert!(matches!(
            ownership(1000, None, 1000, 0o20600, false),
            Ownership::Wrong(_)
        ));
    }

    #[test]
    fn udev_snap_and_flatpak_outputs() {
        let (props, tags) = parse_udev_properties(
            "DEVNAME=/dev/hidraw0\nID_FIDO_TOKEN=1\nTAGS=:uaccess:snap_firefox_firefox:\n\
             CURRENT_TAGS=:snap_firefox_firefox:snap_chromium_chromium:\n",
        );
        assert!(props.contains(&("ID_FIDO_TOKEN".into(), "1".into())));
        assert_eq!(
            tags,
            ["snap_firefox_firefox", "snap_chromium_chromium"],
            "CURRENT_TAGS wins"
        );
        let connected = "Interface    Plug                 Slot          Notes\n\
                         u2f-devices  firefox:u2f-devices  :u2f-devices  -\n";
        let disconnected = "Interface    Plug                 Slot  Notes\n\
                            u2f-devices  firefox:u2f-devices  -     -\n";
        assert!(snap_u2f_connected(connected) && !snap_u2f_connected(disconnected));
        assert!(flatpak_devices_all(
            "[Context]\nshared=network;ipc;\ndevices=dri;all;\n"
        ));
        assert!(!flatpak_devices_all("[Context]\ndevices=dri;\n"));
    }
}
