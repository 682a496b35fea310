//! `localpasskey doctor`: find what stops LocalPasskey from working on this
//! machine and say, in plain words, how to fix it.

use crate::cli::normalise_tcti;
use crate::store_sqlite::{SqliteStore, DB_FILE_NAME};
use anyhow::Result;
use lp_core::store::CredentialStore;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, what: &str) {
        println!("  ok    {what}");
    }
    fn info(&self, what: &str) {
        println!("  info  {what}");
    }
    /// Not a fault of the setup, but something the person must know.
    fn warn(&self, what: &str) {
        println!("  WARN  {what}");
    }
    fn bad(&mut self, what: &str, fix: &str) {
        self.problems += 1;
        println!("  FAIL  {what}");
        println!("        fix: {fix}");
    }
}

pub fn run(dir: &Path, tpm: &str, uhid: bool) -> Result<()> {
    let mut r = Report { problems: 0 };
    println!("TPM");
    let mut tpm = check_tpm(&mut r, &normalise_tcti(tpm));
    println!("Data directory ({})", dir.display());
    check_data_dir(&mut r, dir, tpm.as_mut());
    println!("USB HID device (uhid) and setup");
    if uhid {
        check_setup(&mut r);
    } else {
        r.info("not checked: --transport udp (the simulation needs no device)");
    }
    if r.problems == 0 {
        println!("\nNo problems found.");
        Ok(())
    } else {
        anyhow::bail!("{} problem(s) found; see the fixes above", r.problems)
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

/// What scripts/install.sh installs, and where.
pub const UDEV_RULE: &str = "/etc/udev/rules.d/70-localpasskey.rules";
pub const MODULES_LOAD: &str = "/etc/modules-load.d/localpasskey.conf";
const INSTALL: &str = "run scripts/install.sh from the LocalPasskey checkout";

pub fn user_unit_dir() -> Option<std::path::PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|x| !x.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config")))?;
    Some(config.join("systemd/user"))
}

/// Which of the rule lines we need a udev rule file has (comments ignored).
fn udev_rule_lines(text: &str) -> (bool, bool) {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let uhid = lines
        .iter()
        .any(|l| l.contains("KERNEL==\"uhid\"") && l.contains("uaccess"));
    let ids = format!(
        "0003:{:04X}:{:04X}",
        crate::transport::uhid::VENDOR_ID,
        crate::transport::uhid::PRODUCT_ID
    );
    let hidraw = lines
        .iter()
        .any(|l| l.contains("hidraw") && l.contains(&ids) && l.contains("uaccess"));
    (uhid, hidraw)
}

fn check_setup(r: &mut Report) {
    let uhid = Path::new(crate::transport::uhid::UHID_PATH);
    if uhid.exists() {
        match std::fs::OpenOptions::new().read(true).write(true).open(uhid) {
            Ok(_) => r.ok(&format!("{} exists and you may open it", uhid.display())),
            Err(e) => r.bad(
                &format!("{} cannot be opened: {e}", uhid.display()),
                &format!(
                    "the udev rule {UDEV_RULE} gives the logged-in user access ({INSTALL}); \
                     then: sudo udevadm trigger --action=change --sysname-match=uhid"
                ),
            ),
        }
    } else if Path::new("/sys/module/uhid").exists() {
        r.bad(
            &format!("the uhid module is loaded but {} is missing", uhid.display()),
            "is /dev a devtmpfs? sudo udevadm trigger --sysname-match=uhid",
        );
    } else {
        r.bad(
            &format!("{} does not exist: the uhid module is not loaded", uhid.display()),
            &format!("sudo modprobe uhid, and {MODULES_LOAD} loads it at boot ({INSTALL}); if modprobe fails, this kernel lacks CONFIG_UHID"),
        );
    }
    match std::fs::read_to_string(MODULES_LOAD) {
        Ok(t) if t.lines().any(|l| l.trim() == "uhid") => r.ok(&format!("{MODULES_LOAD} loads uhid at boot")),
        Ok(_) => r.bad(
            &format!("{MODULES_LOAD} does not name uhid"),
            &format!("echo uhid | sudo tee {MODULES_LOAD}"),
        ),
        Err(_) => r.bad(
            &format!("{MODULES_LOAD} is missing: uhid is not loaded at boot"),
            &format!("echo uhid | sudo tee {MODULES_LOAD} (scripts/install.sh does it)"),
        ),
    }
    match std::fs::read_to_string(UDEV_RULE) {
        Ok(t) => {
            let (uhid_ok, hidraw_ok) = udev_rule_lines(&t);
            if uhid_ok && hidraw_ok {
                r.ok(&format!(
                    "{UDEV_RULE} gives the logged-in user /dev/uhid and our hidraw node"
                ));
            } else {
                r.bad(
                    &format!(
                        "{UDEV_RULE} lacks the {} line",
                        if uhid_ok {
                            "hidraw (0003:1209:0001) uaccess"
                        } else {
                            "uhid uaccess"
                        }
                    ),
                    &format!("{INSTALL} again (it rewrites the file)"),
                );
            }
        }
        Err(_) => r.bad(
            &format!(
                "{UDEV_RULE} is missing: only root may create the security key, and browsers may not open it"
            ),
            INSTALL,
        ),
    }
    // The security key itself, if a daemon is running.
    let mut found = false;
    if let Ok(entries) = std::fs::read_dir("/sys/class/hidraw") {
        for e in entries.flatten() {
            let uevent = std::fs::read_to_string(e.path().join("device/uevent")).unwrap_or_default();
            if !uevent.lines().any(|l| l == "HID_NAME=LocalPasskey") {
                continue;
            }
            found = true;
            let node = Path::new("/dev").join(e.file_name());
            match std::fs::OpenOptions::new().read(true).write(true).open(&node) {
                Ok(_) => r.ok(&format!(
                    "the security key is up as {} and you may open it",
                    node.display()
                )),
                Err(err) => r.bad(
                    &format!(
                        "the security key is up as {} but you may not open it: {err}",
                        node.display()
                    ),
                    &format!(
                        "browsers need the hidraw uaccess line of {UDEV_RULE} ({INSTALL}), then log in again"
                    ),
                ),
            }
        }
    }
    if !found {
        r.info("no LocalPasskey security key is up right now (the service creates it)");
    }
    // The desktop dialog the service asks through sits next to the daemon.
    match crate::prompt_desktop::DesktopPrompt::locate() {
        Ok(_) => r.ok("the desktop dialog (localpasskey-prompt) is installed next to localpasskey"),
        Err(e) => r.bad(&format!("{e:#}"), INSTALL),
    }
    let Some(dir) = user_unit_dir() else {
        r.info("HOME is not set: cannot look for the systemd user service");
        return;
    };
    let unit = dir.join("localpasskey.service");
    if unit.exists() {
        r.ok(&format!("systemd user service installed ({})", unit.display()));
        if dir.join("default.target.wants/localpasskey.service").exists() {
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
            if state == "active" {
                r.ok("the service is running");
            } else if !state.is_empty() {
                r.info(&format!(
                    "the service is {state}: journalctl --user -u localpasskey.service says why"
                ));
            }
        }
    } else {
        r.bad(
            &format!("no systemd user service ({} is missing)", unit.display()),
            INSTALL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::udev_rule_lines;

    #[test]
    fn udev_rule_needs_both_lines() {
        let good = "# c\nKERNEL==\"uhid\", SUBSYSTEM==\"misc\", TAG+=\"uaccess\"\n\
                    SUBSYSTEM==\"hidraw\", KERNEL==\"hidraw*\", KERNELS==\"0003:1209:0001.*\", TAG+=\"uaccess\"\n";
        assert_eq!(udev_rule_lines(good), (true, true));
        assert_eq!(udev_rule_lines("# KERNEL==\"uhid\" uaccess\n"), (false, false));
        assert_eq!(
            udev_rule_lines(
                "KERNEL==\"uhid\", TAG+=\"uaccess\"\nKERNELS==\"0003:1209:9999.*\" hidraw uaccess"
            ),
            (true, false)
        );
    }

    /// The rule scripts/install.sh writes passes the check.
    #[test]
    fn install_script_rule_passes() {
        let script = include_str!("../../../scripts/install.sh");
        let start = script.find("<<'RULES'\n").unwrap() + "<<'RULES'\n".len();
        let end = script[start..].find("\nRULES\n").unwrap() + start;
        assert_eq!(udev_rule_lines(&script[start..end]), (true, true));
    }
}
