//! `localpasskey uninstall`: undo what scripts/install.sh set up: the user
//! service, what an older install.sh left (binaries in ~/.local/bin or
//! /usr/local/bin, /etc udev and modules-load files), and the Debian package
//! (apt-get remove, or purge with `--purge`). The passkeys stay unless
//! `--purge` is given and confirmed: they cannot be made again. The package
//! itself never deletes them: they live in each user's home.

use crate::setup::{user_unit_dir, OLD_UDEV_RULE};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const UNIT: &str = "localpasskey.service";
/// Where an older scripts/install.sh put the modules-load file (the package
/// keeps its own in /usr/lib/modules-load.d).
const OLD_MODULES_LOAD: &str = "/etc/modules-load.d/localpasskey.conf";

/// `root` prefixes the system paths (/etc, /usr/local); "/" but in tests.
pub fn run(data_dir: &Path, purge: bool, yes: bool, root: &Path) -> Result<()> {
    let system = |p: &str| root.join(p.trim_start_matches('/'));

    // 1. The user service: stop it first, so the device goes away cleanly.
    let systemd = quiet(Command::new("systemctl").args(["--user", "show-environment"]));
    if systemd {
        quiet(Command::new("systemctl").args(["--user", "disable", "--now", UNIT]));
    }
    if let Some(dir) = user_unit_dir() {
        for f in [dir.join(UNIT), dir.join("default.target.wants").join(UNIT)] {
            remove(&f, false)?;
        }
    }
    if systemd {
        quiet(Command::new("systemctl").args(["--user", "daemon-reload"]));
    } else {
        say("no systemd user session here: nothing to stop");
    }

    // 2. The binary, wherever install.sh put it.
    let mut bins = Vec::new();
    for name in ["localpasskey", "localpasskey-prompt"] {
        bins.push(system(&format!("/usr/local/bin/{name}")));
        if let Some(home) = std::env::var_os("HOME") {
            bins.push(PathBuf::from(home).join(".local/bin").join(name));
        }
    }
    for b in bins {
        remove(&b, true)?;
    }

    // 3. udev and modules-load (root's files: sudo when we are not root).
    for f in [system(OLD_UDEV_RULE), system(OLD_MODULES_LOAD)] {
        remove(&f, true)?;
    }
    if root == Path::new("/") {
        quiet(as_root("udevadm").args(["control", "--reload"]));
    }
    say("uhid stays loaded until the next boot; you stay in the tss group (`sudo gpasswd -d $USER tss` leaves it)");

    // 4. The passkeys, then 5. the package.
    let purged = purge_data(data_dir, purge, yes)?;
    if root == Path::new("/") && package_installed() {
        let action = if purged { "purge" } else { "remove" };
        say(&format!("removing the localpasskey package (apt-get {action})"));
        let ok = as_root("apt-get")
            .args([action, "-y", "localpasskey"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!("apt-get {action} localpasskey failed");
        }
    }
    Ok(())
}

/// Deletes the passkeys if asked and confirmed; true if they are gone.
fn purge_data(data_dir: &Path, purge: bool, yes: bool) -> Result<bool> {
    if !purge {
        say(&format!(
            "your passkeys stay in {} (--purge deletes them)",
            data_dir.display()
        ));
        return Ok(false);
    }
    if !data_dir.exists() {
        say(&format!("no passkeys at {}", data_dir.display()));
        return Ok(true);
    }
    if !yes && !confirmed(data_dir)? {
        say(&format!("kept {}", data_dir.display()));
        return Ok(false);
    }
    std::fs::remove_dir_all(data_dir).with_context(|| format!("cannot delete {}", data_dir.display()))?;
    say(&format!("deleted {} and every passkey in it", data_dir.display()));
    Ok(true)
}

/// Whether dpkg has the package installed.
fn package_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "localpasskey"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn say(s: &str) {
    println!("==> {s}");
}

/// Runs `cmd` with no output; true if it succeeded.
fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

/// /proc/self belongs to the process's effective user.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// Removes `path` if it exists; with `sudo_ok`, through sudo when we may not.
fn remove(path: &Path, sudo_ok: bool) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && sudo_ok => {
            let ok = as_root("rm")
                .arg("-f")
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                bail!("cannot remove {} (sudo rm failed)", path.display());
            }
        }
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    say(&format!("removed {}", path.display()));
    Ok(())
}

/// The person types `delete` at the terminal; anything else keeps the passkeys.
fn confirmed(data_dir: &Path) -> Result<bool> {
    let prompt = format!(
        "Delete every passkey in {} for good? They cannot be recovered. Type 'delete': ",
        data_dir.display()
    );
    let mut tty = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to confirm on (--yes purges without asking)")?;
    std::io::Write::write_all(&mut tty, prompt.as_bytes())?;
    let mut answer = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(tty), &mut answer)?;
    Ok(answer.trim() == "delete")
}
