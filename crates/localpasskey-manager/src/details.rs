//! One passkey: what a site sees of it, what the TPM guarantees for its key,
//! its use, the backup advice, and deletion.

use std::cell::RefCell;
use std::rc::Rc;

use adw::prelude::*;

use crate::backup;
use crate::format;
use crate::model::{Info, Passkey};
use crate::rows;
use crate::shared::Shared;

type Handler = Rc<dyn Fn()>;

pub struct DetailsPage {
    pub widget: gtk::Box,
    title: adw::WindowTitle,
    content: gtk::Box,
    back: gtk::Button,
    shared: Rc<Shared>,
    shown: RefCell<Option<Passkey>>,
    on_back: RefCell<Option<Handler>>,
}

/// What each TPM attribute of the key's public area promises.
fn attribute_meaning(attribute: &str) -> &str {
    match attribute {
        "fixedTPM" => "The private key can never leave this TPM, not even wrapped",
        "fixedParent" => "The key cannot be moved under another key, so it cannot be duplicated",
        "sensitiveDataOrigin" => "The TPM generated the private key itself; nobody ever saw it",
        _ => "A TPM attribute of this key",
    }
}

impl DetailsPage {
    pub fn new(shared: Rc<Shared>) -> Rc<Self> {
        let title = adw::WindowTitle::new("Passkey", "");
        let back = gtk::Button::from_icon_name("go-previous-symbolic");
        back.set_tooltip_text(Some("Back"));
        back.update_property(&[gtk::accessible::Property::Label("Back")]);
        let header = adw::HeaderBar::new();
        header.set_title_widget(Some(&title));
        header.pack_start(&back);

        let content = gtk::Box::new(gtk::Orientation::Vertical, 24);
        let widget = gtk::Box::new(gtk::Orientation::Vertical, 0);
        widget.append(&header);
        widget.append(&rows::column(&content));

        let page = Rc::new(Self {
            widget,
            title,
            content,
            back: back.clone(),
            shared,
            shown: RefCell::new(None),
            on_back: RefCell::new(None),
        });
        let weak = Rc::downgrade(&page);
        back.connect_clicked(move |_| {
            if let Some(page) = weak.upgrade() {
                page.go_back();
            }
        });
        page
    }

    pub fn connect_back(&self, f: impl Fn() + 'static) {
        *self.on_back.borrow_mut() = Some(Rc::new(f));
    }

    fn go_back(&self) {
        *self.shown.borrow_mut() = None;
        let handler = self.on_back.borrow().clone();
        if let Some(h) = handler {
            h();
        }
    }

    pub fn shown(&self) -> Option<String> {
        self.shown.borrow().as_ref().map(|p| p.credential_id.clone())
    }

    pub fn focus_back(&self) {
        self.back.grab_focus();
    }

    pub fn show(self: &Rc<Self>, p: &Passkey, info: &Info) {
        *self.shown.borrow_mut() = Some(p.clone());
        self.title.set_title(p.account());
        self.title.set_subtitle(&p.rp_id);
        rows::clear(&self.content);

        let sees = rows::group(
            &format!("What {} Sees", p.rp_id),
            Some("The site stores only the public key and these facts."),
        );
        sees.add(&rows::fact("Site", &p.rp_id));
        if !p.rp_name.is_empty() {
            sees.add(&rows::fact("Site’s name for itself", &p.rp_name));
        }
        sees.add(&rows::fact("Account", p.account()));
        if !p.display_name.is_empty() {
            sees.add(&rows::fact("Display name", &p.display_name));
        }
        sees.add(&rows::fact(
            "Authenticator (AAGUID)",
            &format!("{} — LocalPasskey for Linux", or_unknown(&info.aaguid)),
        ));
        sees.add(&rows::fact(
            "Backup eligible",
            if info.backup_eligible {
                "Yes (BE=1)"
            } else {
                "No (BE=0): this passkey can never be copied or synced"
            },
        ));
        sees.add(&rows::fact(
            "Backed up",
            if info.backup_state {
                "Yes (BS=1)"
            } else {
                "No (BS=0): no copy of it exists anywhere"
            },
        ));
        sees.add(&rows::fact("Algorithm", &format::algorithm(&p.algorithm)));
        sees.add(&rows::fact(
            "Attestation",
            &match info.attestation.as_str() {
                "packed" => {
                    "Packed self-attestation: signed by the passkey itself, no vendor certificate".to_owned()
                }
                "" => "Unknown".to_owned(),
                other => other.to_owned(),
            },
        ));
        self.content.append(&sees);

        let tpm = rows::group(
            "What the TPM Guarantees",
            Some("Attributes of this key’s public area, which the TPM enforces whatever runs on this computer."),
        );
        if p.key_protection.is_empty() {
            let row = rows::plain(
                "No TPM protection",
                "This passkey is held by the insecure software custody, meant only for tests: its key is a file.",
            );
            row.add_prefix(&rows::status_icon(
                "dialog-warning-symbolic",
                "Warning",
                "warning",
            ));
            tpm.add(&row);
        }
        for attribute in &p.key_protection {
            let row = rows::plain(attribute, attribute_meaning(attribute));
            row.add_prefix(&rows::status_icon("emblem-ok-symbolic", "Guaranteed", "success"));
            tpm.add(&row);
        }
        tpm.add(&rows::fact("Where the key lives", or_unknown(&info.backend)));
        self.content.append(&tpm);

        let usage = rows::group("Use", None);
        usage.add(&rows::fact("Created", &format::time(p.created)));
        usage.add(&rows::fact("Last used", &format::time(p.last_used)));
        usage.add(&rows::fact("Sign count", &p.sign_count.to_string()));
        usage.add(&rows::fact(
            "Credential protection",
            format::cred_protect(p.cred_protect),
        ));
        usage.add(&rows::fact(
            "Discoverable",
            if p.discoverable {
                "Yes: the site can sign you in without asking for your account name"
            } else {
                "No: the site names it when you sign in"
            },
        ));
        if !p.extensions.is_empty() {
            usage.add(&rows::fact("Extensions", &p.extensions.join(", ")));
        }
        self.content.append(&usage);

        self.content.append(&backup::advice_group());

        let delete = gtk::Button::with_label("Delete Passkey…");
        delete.add_css_class("destructive-action");
        delete.add_css_class("pill");
        delete.set_halign(gtk::Align::Center);
        let weak = Rc::downgrade(self);
        let passkey = p.clone();
        delete.connect_clicked(move |_| {
            if let Some(page) = weak.upgrade() {
                page.confirm_delete(&passkey);
            }
        });
        self.content.append(&delete);
    }

    fn confirm_delete(self: &Rc<Self>, p: &Passkey) {
        let heading = format!("Delete Passkey for {}?", p.rp_id);
        let body = format!(
            "The passkey of {} at {} will be deleted from this computer. {} will no longer \
             accept this passkey: you will need another passkey or another way to sign in there. \
             This cannot be undone.\n\nLocalPasskey will ask you to confirm once more in its own window.",
            p.account(),
            p.rp_id,
            p.rp_id,
        );
        let dialog = adw::MessageDialog::new(Some(&self.shared.window), Some(&heading), Some(&body));
        dialog.add_response("cancel", "Cancel");
        dialog.add_response("delete", "Delete");
        dialog.set_response_appearance("delete", adw::ResponseAppearance::Destructive);
        dialog.set_default_response(Some("cancel"));
        dialog.set_close_response("cancel");
        let weak = Rc::downgrade(self);
        let passkey = p.clone();
        dialog.connect_response(None, move |_, response| {
            if response != "delete" {
                return;
            }
            if let Some(page) = weak.upgrade() {
                page.delete(passkey.clone());
            }
        });
        dialog.present();
    }

    fn delete(self: &Rc<Self>, p: Passkey) {
        let Some(client) = self.shared.client() else {
            self.shared.toast("LocalPasskey is not running.");
            return;
        };
        self.shared
            .toast("Confirm the deletion in LocalPasskey’s window.");
        let page = Rc::clone(self);
        gtk::glib::spawn_future_local(async move {
            match client.delete(&p.credential_id).await {
                Ok(()) => {
                    page.shared
                        .toast(&format!("Deleted the passkey of {} at {}", p.account(), p.rp_id));
                    if page.shown().as_deref() == Some(p.credential_id.as_str()) {
                        page.go_back();
                    }
                }
                Err(e) => page.shared.error(&e),
            }
        });
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "Unknown"
    } else {
        s
    }
}
