//! The local log of sign-ins, registrations and refusals, newest first: a
//! sign-in the person did not expect is how they notice misuse.

use std::cell::RefCell;
use std::rc::Rc;

use adw::prelude::*;

use crate::a11y;
use crate::format;
use crate::model::Activity;
use crate::rows;
use crate::shared::Shared;

/// How many entries the page asks for and keeps.
pub const LIMIT: u32 = 200;

pub struct ActivityPage {
    pub widget: gtk::Stack,
    list: gtk::ListBox,
    entries: RefCell<Vec<Activity>>,
    shared: Rc<Shared>,
}

impl ActivityPage {
    pub fn new(shared: Rc<Shared>) -> Rc<Self> {
        let list = gtk::ListBox::new();
        list.add_css_class("boxed-list");
        list.set_selection_mode(gtk::SelectionMode::None);
        list.update_property(&[gtk::accessible::Property::Label("Activity")]);
        let content = gtk::Box::new(gtk::Orientation::Vertical, 12);
        let heading = gtk::Label::new(Some("Recent Activity"));
        heading.add_css_class("heading");
        heading.set_halign(gtk::Align::Start);
        let note = gtk::Label::new(Some(
            "Kept on this computer only. A sign-in you did not expect is worth a look.",
        ));
        note.add_css_class("dim-label");
        note.set_halign(gtk::Align::Start);
        note.set_wrap(true);
        content.append(&heading);
        content.append(&note);
        content.append(&list);

        let empty = adw::StatusPage::new();
        empty.set_icon_name(Some("document-open-recent-symbolic"));
        empty.set_title("No Activity Yet");
        empty.set_description(Some("Sign-ins, new passkeys and refusals will be listed here."));

        let widget = gtk::Stack::new();
        widget.add_named(&rows::column(&content), Some("list"));
        widget.add_named(&empty, Some("empty"));
        widget.set_visible_child_name("empty");
        a11y::follow_stack(&widget);
        Rc::new(Self {
            widget,
            list,
            entries: RefCell::new(Vec::new()),
            shared,
        })
    }

    pub fn show(&self, entries: Vec<Activity>) {
        *self.entries.borrow_mut() = entries;
        self.refill();
    }

    /// A live entry from ActivityAdded.
    pub fn prepend(&self, entry: Activity) {
        {
            let mut entries = self.entries.borrow_mut();
            entries.insert(0, entry);
            entries.truncate(LIMIT as usize);
        }
        self.refill();
    }

    fn refill(&self) {
        while let Some(child) = self.list.first_child() {
            self.list.remove(&child);
        }
        let entries = self.entries.borrow();
        self.widget
            .set_visible_child_name(if entries.is_empty() { "empty" } else { "list" });
        for e in entries.iter() {
            self.list.append(&row(e));
        }
    }

    pub fn refresh(self: &Rc<Self>) {
        let Some(client) = self.shared.client() else {
            return;
        };
        let page = Rc::clone(self);
        gtk::glib::spawn_future_local(async move {
            match client.activity(LIMIT).await {
                Ok(entries) => page.show(entries),
                Err(e) => page.shared.error(&e),
            }
        });
    }
}

fn row(e: &Activity) -> adw::ActionRow {
    let title = if e.rp_id.is_empty() {
        format::action(&e.action).to_owned()
    } else {
        format!("{} · {}", format::action(&e.action), e.rp_id)
    };
    let mut subtitle = vec![format::outcome(&e.outcome).to_owned()];
    if !e.account.is_empty() {
        subtitle.push(e.account.clone());
    }
    subtitle.push(format::time(e.time));
    let row = rows::plain(&title, &subtitle.join(" · "));
    let (icon, meaning, css) = match e.outcome.as_str() {
        "approved" => ("emblem-ok-symbolic", "Approved", "success"),
        "refused" | "cancelled" | "timed_out" => ("action-unavailable-symbolic", "Not done", ""),
        _ => ("dialog-warning-symbolic", "Warning", "warning"),
    };
    row.add_prefix(&rows::status_icon(icon, meaning, css));
    row
}
