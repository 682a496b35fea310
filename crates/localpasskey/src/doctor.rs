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
    fn bad(&mut self, what: &str, fix: &str) {
        self.problems += 1;
        println!("  FAIL  {what}");
        println!("        fix: {fix}");
    }
}

pub fn run(dir: &Path, tpm: &str) -> Result<()> {
    let mut r = Report { problems: 0 };
    println!("TPM");
    check_tpm(&mut r, &normalise_tcti(tpm));
    println!("Data directory ({})", dir.display());
    check_data_dir(&mut r, dir);
    println!("USB HID device (uhid)");
    r.info("the uhid transport is not built yet: only the UDP simulation transport exists");
    if r.problems == 0 {
        println!("\nNo problems found.");
        Ok(())
    } else {
        anyhow::bail!("{} problem(s) found; see the fixes above", r.problems)
    }
}

fn check_tpm(r: &mut Report, tcti: &str) {
    if let Some(path) = tcti.strip_prefix("device:") {
        let path = Path::new(path);
        if !path.exists() {
            r.bad(
                &format!("{} does not exist: this machine shows no TPM 2.0", path.display()),
                "enable the TPM (often called fTPM, PTT or Security Chip) in the firmware setup; \
                 for testing, run a software TPM (swtpm) and pass --tpm swtpm:host=127.0.0.1,port=PORT",
            );
            return;
        }
        match std::fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(_) => r.ok(&format!("{} can be opened", path.display())),
            Err(e) => {
                r.bad(
                    &format!("{} cannot be opened: {e}", path.display()),
                    "add yourself to the `tss` group (sudo usermod -aG tss $USER, then log in again)",
                );
                return;
            }
        }
    }
    let mut tpm = match lp_tpm::TpmCustody::open(tcti) {
        Ok(t) => t,
        Err(e) => {
            r.bad(
                &format!("cannot talk to the TPM at {tcti}: {e}"),
                "check that the TPM (or swtpm) is running and that libtss2 is installed (apt install libtss2-dev)",
            );
            return;
        }
    };
    r.ok(&format!(
        "TPM at {tcti} answers and re-creates our storage primary"
    ));
    match tpm.describe() {
        Ok(d) => {
            r.info(&format!(
                "manufacturer {} ({}), firmware {}",
                d.manufacturer, d.vendor, d.firmware_version
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
                "{} transient object slots; {} kept for cached credential keys",
                d.transient_slots
                    .map_or("an unknown number of".to_string(), |n| n.to_string()),
                d.key_cache_size
            ));
        }
        Err(e) => r.bad(
            &format!("cannot read the TPM's capabilities: {e}"),
            "see the TPM error above",
        ),
    }
    match tpm.da_status() {
        Ok(da) => {
            let line = format!(
                "dictionary-attack protection: {} of {} failures counted, one forgiven every {} s",
                da.counter, da.max_tries, da.recovery_secs
            );
            if da.in_lockout {
                r.bad(
                    &format!("{line}; the TPM is in LOCKOUT and refuses every PIN"),
                    "wait for the recovery time to pass (or clear it with the lockout authorisation: tpm2_dictionarylockout -c)",
                );
            } else {
                r.ok(&line);
            }
            if da.max_tries < 8 {
                r.info(&format!(
                    "the TPM locks out after {} wrong PINs, before LocalPasskey's own limit of 8",
                    da.max_tries
                ));
            }
        }
        Err(e) => r.bad(
            &format!("cannot read the lockout state: {e}"),
            "see the TPM error above",
        ),
    }
}

fn check_data_dir(r: &mut Report, dir: &Path) {
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
                Ok(Some(_)) => r.ok("a PIN is set"),
                _ => r.info("no PIN is set yet: `localpasskey pin set` while the daemon runs"),
            }
        }
        Err(e) => r.bad(&format!("cannot open the database: {e:#}"), "see the error above"),
    }
}
