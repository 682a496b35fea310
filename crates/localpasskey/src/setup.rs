//! Where an installation puts its pieces, and how a TPM is named: what
//! `doctor` checks, `uninstall` removes and `run` and `tpm-protect` open,
//! in one place, so none of them depends on another.

/// Accept a bare device path as well as a TCTI string.
pub fn normalise_tcti(tpm: &str) -> String {
    if tpm.starts_with('/') {
        format!("device:{tpm}")
    } else {
        tpm.to_owned()
    }
}

/// Our udev rules (packaging/udev in the source tree; the package puts them
/// in /usr/lib/udev/rules.d).
pub const UDEV_OWNER_RULE: &str = "72-localpasskey.rules";
pub const UDEV_SNAP_RULE: &str = "69-localpasskey-snap.rules";
/// Where udev looks for rules, in its order: a file in an earlier directory
/// hides the one of the same name in a later one.
pub const UDEV_RULE_DIRS: [&str; 4] = [
    "/etc/udev/rules.d",
    "/run/udev/rules.d",
    "/usr/lib/udev/rules.d",
    "/lib/udev/rules.d",
];
/// What an older scripts/install.sh wrote: it gave /dev/uhid to the seat.
pub const OLD_UDEV_RULE: &str = "/etc/udev/rules.d/70-localpasskey.rules";
pub const MODULES_LOAD: &str = "/usr/lib/modules-load.d/localpasskey.conf";

pub fn user_unit_dir() -> Option<std::path::PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|x| !x.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".config")))?;
    Some(config.join("systemd/user"))
}
