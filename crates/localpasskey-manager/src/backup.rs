//! The backup advice. A device-bound passkey has no copy anywhere, so the
//! person must hear, before they depend on it, that losing this TPM loses
//! the passkey, and what to do about it.

use std::path::PathBuf;

use adw::prelude::*;

use crate::rows;

pub const TITLE: &str = "Keep a Second Way In";

pub const ADVICE: &str = "Your passkeys live only in this computer’s TPM, and no copy of them \
    exists. They are gone for good if the TPM is cleared, the firmware is reset, the \
    motherboard is replaced, or the system is reinstalled without LocalPasskey’s data \
    directory.\n\nFor every account that matters, register a second authenticator at the \
    site too: a security key kept in a safe place, or LocalPasskey on a second computer.";

/// The advice as a group, for the details of every passkey.
pub fn advice_group() -> adw::PreferencesGroup {
    let group = rows::group("Backup", None);
    let row = rows::plain(TITLE, ADVICE);
    row.add_prefix(&rows::status_icon(
        "dialog-information-symbolic",
        "Advice",
        "accent",
    ));
    group.add(&row);
    group
}

/// Where the app remembers that the advice was shown: its own config
/// directory, never the daemon's data.
fn seen_marker() -> PathBuf {
    gtk::glib::user_config_dir()
        .join("localpasskey-manager")
        .join("backup-advice-seen")
}

/// Shows the advice once, the first time the app runs for this user.
pub fn show_on_first_run(parent: &adw::ApplicationWindow) {
    let marker = seen_marker();
    if marker.exists() {
        return;
    }
    let dialog = adw::MessageDialog::new(Some(parent), Some(TITLE), Some(ADVICE));
    dialog.add_response("ok", "I Understand");
    dialog.set_default_response(Some("ok"));
    dialog.set_close_response("ok");
    dialog.connect_response(None, move |_, _| {
        let written = marker
            .parent()
            .map(std::fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|()| std::fs::write(&marker, b""));
        if let Err(e) = written {
            eprintln!(
                "localpasskey-manager: could not remember that the backup advice was shown ({}): {e}",
                marker.display()
            );
        }
    });
    dialog.present();
}

/// The advice on demand, from the main menu.
pub fn show(parent: &adw::ApplicationWindow) {
    let dialog = adw::MessageDialog::new(Some(parent), Some(TITLE), Some(ADVICE));
    dialog.add_response("ok", "Close");
    dialog.set_default_response(Some("ok"));
    dialog.present();
}
