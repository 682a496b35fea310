//! The PIN: whether one is set, the tries left, and set or change. The PIN
//! itself is typed into the daemon's own prompt, never into this app.

use std::rc::Rc;

use adw::prelude::*;

use crate::client::DaemonError;
use crate::model::PinStatus;
use crate::rows;
use crate::shared::Shared;

pub struct PinPage {
    pub widget: gtk::ScrolledWindow,
    status: gtk::Box,
    set: gtk::Button,
    change: gtk::Button,
    shared: Rc<Shared>,
}

#[derive(Clone, Copy)]
enum Change {
    Set,
    Change,
}

impl PinPage {
    pub fn new(shared: Rc<Shared>) -> Rc<Self> {
        let content = gtk::Box::new(gtk::Orientation::Vertical, 24);
        let status = gtk::Box::new(gtk::Orientation::Vertical, 0);
        content.append(&status);

        let set = gtk::Button::with_label("Set PIN…");
        let change = gtk::Button::with_label("Change PIN…");
        for b in [&set, &change] {
            b.add_css_class("pill");
            b.add_css_class("suggested-action");
            b.set_halign(gtk::Align::Center);
            b.set_visible(false);
            content.append(b);
        }
        let note = gtk::Label::new(Some(
            "LocalPasskey asks for the PIN in its own window; this app never sees it.",
        ));
        note.add_css_class("dim-label");
        note.set_wrap(true);
        note.set_justify(gtk::Justification::Center);
        content.append(&note);

        let page = Rc::new(Self {
            widget: rows::column(&content),
            status,
            set: set.clone(),
            change: change.clone(),
            shared,
        });
        for (button, what) in [(set, Change::Set), (change, Change::Change)] {
            let weak = Rc::downgrade(&page);
            button.connect_clicked(move |_| {
                if let Some(page) = weak.upgrade() {
                    page.start(what);
                }
            });
        }
        page
    }

    pub fn show(&self, s: &PinStatus) {
        rows::clear(&self.status);
        let group = rows::group(
            "PIN",
            Some("Every sign-in needs this PIN. The TPM itself counts wrong PINs: when no tries are left, the PIN is blocked for good."),
        );
        group.add(&rows::fact("PIN", if s.set { "Set" } else { "Not set" }));
        if s.set {
            group.add(&rows::fact("Tries left", &s.retries.to_string()));
        }
        if s.min_length > 0 {
            group.add(&rows::fact(
                "Minimum length",
                &format!("{} characters", s.min_length),
            ));
        }
        let warning = if s.blocked {
            Some(("PIN blocked", "No tries are left. Only a reset of LocalPasskey, which deletes every passkey, makes it usable again."))
        } else if s.blocked_until_power_cycle {
            Some((
                "PIN paused",
                "Three wrong PINs in a row: restart LocalPasskey before trying again.",
            ))
        } else if s.force_change {
            Some(("PIN must be changed", "Change the PIN before the next sign-in."))
        } else if !s.set {
            Some(("No PIN yet", "No passkey can be created until a PIN is set."))
        } else {
            None
        };
        if let Some((title, text)) = warning {
            let row = rows::plain(title, text);
            row.add_prefix(&rows::status_icon(
                "dialog-warning-symbolic",
                "Warning",
                "warning",
            ));
            group.add(&row);
        }
        self.status.append(&group);
        self.set.set_visible(!s.set);
        self.change.set_visible(s.set && !s.blocked);
    }

    pub fn refresh(self: &Rc<Self>) {
        let Some(client) = self.shared.client() else {
            return;
        };
        let page = Rc::clone(self);
        gtk::glib::spawn_future_local(async move {
            match client.pin_status().await {
                Ok(s) => page.show(&s),
                Err(e) => page.shared.error(&e),
            }
        });
    }

    fn start(self: &Rc<Self>, what: Change) {
        let Some(client) = self.shared.client() else {
            self.shared.toast("LocalPasskey is not running.");
            return;
        };
        self.shared.toast("Type the PIN in LocalPasskey’s window.");
        self.set.set_sensitive(false);
        self.change.set_sensitive(false);
        let page = Rc::clone(self);
        gtk::glib::spawn_future_local(async move {
            let result = match what {
                Change::Set => client.set_pin().await,
                Change::Change => client.change_pin().await,
            };
            page.set.set_sensitive(true);
            page.change.set_sensitive(true);
            match result {
                Ok(()) => page.shared.toast(match what {
                    Change::Set => "PIN set",
                    Change::Change => "PIN changed",
                }),
                Err(e) if e.kind() == Some(DaemonError::PinBlocked) => {
                    page.shared.alert("PIN Blocked", &e.message())
                }
                Err(e) => page.shared.error(&e),
            }
            page.refresh();
        });
    }
}
