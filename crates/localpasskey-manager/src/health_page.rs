//! `doctor`'s findings, problems first, each with its fix.

use std::rc::Rc;

use adw::prelude::*;

use crate::model::{Finding, Status};
use crate::rows;
use crate::shared::Shared;

pub struct HealthPage {
    pub widget: gtk::ScrolledWindow,
    content: gtk::Box,
    shared: Rc<Shared>,
}

impl HealthPage {
    pub fn new(shared: Rc<Shared>) -> Rc<Self> {
        let content = gtk::Box::new(gtk::Orientation::Vertical, 24);
        Rc::new(Self {
            widget: rows::column(&content),
            content,
            shared,
        })
    }

    pub fn show(self: &Rc<Self>, findings: &[Finding]) {
        rows::clear(&self.content);
        let mut findings = findings.to_vec();
        findings.sort_by_key(|f| f.status);
        let problems = findings.iter().filter(|f| f.status == Status::Fail).count();
        let warnings = findings.iter().filter(|f| f.status == Status::Warn).count();
        let summary = match (problems, warnings) {
            (0, 0) => "Everything LocalPasskey checks is in order.".to_owned(),
            (0, w) => format!("{w} {} worth a look.", plural(w, "warning", "warnings")),
            (p, 0) => format!("{p} {} to fix.", plural(p, "problem", "problems")),
            (p, w) => format!(
                "{p} {} to fix, {w} {}.",
                plural(p, "problem", "problems"),
                plural(w, "warning", "warnings")
            ),
        };
        let refresh = gtk::Button::from_icon_name("view-refresh-symbolic");
        refresh.add_css_class("flat");
        refresh.set_tooltip_text(Some("Check Again"));
        refresh.update_property(&[gtk::accessible::Property::Label("Check again")]);
        let weak = Rc::downgrade(self);
        refresh.connect_clicked(move |_| {
            if let Some(page) = weak.upgrade() {
                page.refresh();
            }
        });

        let group = rows::group("Health", Some(&summary));
        group.set_header_suffix(Some(&refresh));
        for f in &findings {
            let (icon, meaning, css) = match f.status {
                Status::Ok => ("emblem-ok-symbolic", "OK", "success"),
                Status::Warn => ("dialog-warning-symbolic", "Warning", "warning"),
                Status::Note => ("dialog-information-symbolic", "Note", ""),
                Status::Fail => ("dialog-error-symbolic", "Problem", "error"),
            };
            let subtitle = if f.fix.is_empty() {
                f.check.clone()
            } else {
                format!("Fix: {}", f.fix)
            };
            let row = rows::plain(&f.text, &subtitle);
            row.add_prefix(&rows::status_icon(icon, meaning, css));
            group.add(&row);
        }
        if findings.is_empty() {
            group.add(&rows::plain("No findings", "LocalPasskey reported nothing."));
        }
        self.content.append(&group);
    }

    pub fn refresh(self: &Rc<Self>) {
        let Some(client) = self.shared.client() else {
            return;
        };
        let page = Rc::clone(self);
        gtk::glib::spawn_future_local(async move {
            match client.health().await {
                Ok(findings) => page.show(&findings),
                Err(e) => page.shared.error(&e),
            }
        });
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
