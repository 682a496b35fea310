//! The list of passkeys: search, sort, one group per site.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use adw::prelude::*;

use crate::a11y;
use crate::format;
use crate::grouping::{self, SortBy};
use crate::model::Passkey;
use crate::rows;

type OpenHandler = Rc<dyn Fn(&Passkey)>;

pub struct PasskeysPage {
    pub widget: gtk::Box,
    search: gtk::SearchEntry,
    stack: gtk::Stack,
    groups: gtk::Box,
    no_results: adw::StatusPage,
    passkeys: RefCell<Vec<Passkey>>,
    sort: Cell<SortBy>,
    on_open: RefCell<Option<OpenHandler>>,
}

impl PasskeysPage {
    pub fn new() -> Rc<Self> {
        let search = gtk::SearchEntry::new();
        search.set_placeholder_text(Some("Search sites and accounts"));
        search.set_hexpand(true);
        search.update_property(&[gtk::accessible::Property::Label("Search passkeys")]);

        let sort_box = gtk::Box::new(gtk::Orientation::Horizontal, 0);
        sort_box.add_css_class("linked");
        sort_box.update_property(&[gtk::accessible::Property::Label("Sort by")]);
        let mut first: Option<gtk::ToggleButton> = None;
        let mut buttons = Vec::new();
        for sort in SortBy::ALL {
            let b = gtk::ToggleButton::with_label(sort.label());
            b.set_tooltip_text(Some(&format!("Sort by {}", sort.label().to_lowercase())));
            b.update_property(&[gtk::accessible::Property::Label(&format!(
                "Sort by {}",
                sort.label().to_lowercase()
            ))]);
            match &first {
                Some(f) => b.set_group(Some(f)),
                None => {
                    b.set_active(true);
                    first = Some(b.clone());
                }
            }
            sort_box.append(&b);
            buttons.push((sort, b));
        }

        let bar = gtk::Box::new(gtk::Orientation::Horizontal, 12);
        bar.append(&search);
        bar.append(&sort_box);

        let groups = gtk::Box::new(gtk::Orientation::Vertical, 24);
        let content = gtk::Box::new(gtk::Orientation::Vertical, 24);
        content.append(&bar);
        content.append(&groups);

        let empty = adw::StatusPage::new();
        empty.set_icon_name(Some("dialog-password-symbolic"));
        empty.set_title("No Passkeys Yet");
        empty.set_description(Some(
            "When you create a passkey at a site with LocalPasskey, it appears here.",
        ));
        let no_results = adw::StatusPage::new();
        no_results.set_icon_name(Some("edit-find-symbolic"));
        no_results.set_title("No Matching Passkeys");
        groups.append(&no_results);

        let stack = gtk::Stack::new();
        stack.add_named(&rows::column(&content), Some("list"));
        stack.add_named(&empty, Some("empty"));
        a11y::follow_stack(&stack);

        let widget = gtk::Box::new(gtk::Orientation::Vertical, 0);
        widget.append(&stack);

        let page = Rc::new(Self {
            widget,
            search: search.clone(),
            stack,
            groups,
            no_results,
            passkeys: RefCell::new(Vec::new()),
            sort: Cell::new(SortBy::Site),
            on_open: RefCell::new(None),
        });

        let weak = Rc::downgrade(&page);
        search.connect_search_changed(move |_| {
            if let Some(page) = weak.upgrade() {
                page.refill();
            }
        });
        for (sort, b) in buttons {
            let weak = Rc::downgrade(&page);
            b.connect_toggled(move |b| {
                if let (true, Some(page)) = (b.is_active(), weak.upgrade()) {
                    page.sort.set(sort);
                    page.refill();
                }
            });
        }
        page
    }

    pub fn connect_open(&self, f: impl Fn(&Passkey) + 'static) {
        *self.on_open.borrow_mut() = Some(Rc::new(f));
    }

    /// Lets Ctrl+F and typing anywhere in the window start a search.
    pub fn capture_typing(&self, widget: &impl IsA<gtk::Widget>) {
        self.search.set_key_capture_widget(Some(widget));
    }

    pub fn focus_search(&self) {
        self.search.grab_focus();
    }

    pub fn set_passkeys(&self, passkeys: Vec<Passkey>) {
        *self.passkeys.borrow_mut() = passkeys;
        self.refill();
    }

    pub fn passkey(&self, credential_id: &str) -> Option<Passkey> {
        self.passkeys
            .borrow()
            .iter()
            .find(|p| p.credential_id == credential_id)
            .cloned()
    }

    fn refill(&self) {
        let all = self.passkeys.borrow();
        if all.is_empty() {
            self.stack.set_visible_child_name("empty");
            return;
        }
        self.stack.set_visible_child_name("list");
        rows::clear(&self.groups);
        let query = self.search.text();
        let groups = grouping::group(&all, &query, self.sort.get());
        if groups.is_empty() {
            self.no_results
                .set_description(Some(&gtk::glib::markup_escape_text(&format!(
                    "No site or account matches “{}”.",
                    query.trim()
                ))));
            self.groups.append(&self.no_results);
            return;
        }
        for g in groups {
            let count = match g.passkeys.len() {
                1 => "1 passkey".to_owned(),
                n => format!("{n} passkeys"),
            };
            let group = rows::group(&g.rp_id, Some(&count));
            for p in g.passkeys {
                group.add(&self.row(p));
            }
            self.groups.append(&group);
        }
    }

    fn row(&self, p: Passkey) -> adw::ActionRow {
        let mut subtitle = Vec::new();
        if !p.display_name.is_empty() && p.display_name != p.account() {
            subtitle.push(p.display_name.clone());
        }
        subtitle.push(match p.last_used {
            0 => "Never used".to_owned(),
            t => format!("Last used {}", format::time(t)),
        });
        let row = rows::plain(p.account(), &subtitle.join(" · "));
        let open = gtk::Button::from_icon_name("go-next-symbolic");
        open.add_css_class("flat");
        open.set_valign(gtk::Align::Center);
        let label = format!("Details of {} at {}", p.account(), p.rp_id);
        open.set_tooltip_text(Some(&label));
        open.update_property(&[gtk::accessible::Property::Label(&label)]);
        row.add_suffix(&open);
        row.set_activatable_widget(Some(&open));
        let handler = self.on_open.borrow().clone();
        open.connect_clicked(move |_| {
            if let Some(h) = &handler {
                h(&p);
            }
        });
        row
    }
}
