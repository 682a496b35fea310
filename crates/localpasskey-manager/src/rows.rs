//! Row and container helpers shared by the pages. Sites choose account
//! names and the daemon's texts may hold `<` or `&`, so no row here parses
//! Pango markup.

use adw::prelude::*;

/// A row showing one fact: its name as the title, the value underneath.
pub fn fact(title: &str, value: &str) -> adw::ActionRow {
    let row = adw::ActionRow::new();
    row.set_use_markup(false);
    row.set_title(title);
    row.set_subtitle(value);
    row.set_subtitle_lines(0);
    row.add_css_class("property");
    row
}

/// A row with a title and a subtitle, both plain text.
pub fn plain(title: &str, subtitle: &str) -> adw::ActionRow {
    let row = adw::ActionRow::new();
    row.set_use_markup(false);
    row.set_title(title);
    row.set_subtitle(subtitle);
    row.set_title_lines(0);
    row.set_subtitle_lines(0);
    row
}

/// A preferences group whose title and description are plain text.
pub fn group(title: &str, description: Option<&str>) -> adw::PreferencesGroup {
    let group = adw::PreferencesGroup::new();
    group.set_title(&gtk::glib::markup_escape_text(title));
    if let Some(d) = description {
        group.set_description(Some(&gtk::glib::markup_escape_text(d)));
    }
    group
}

/// An icon that says what it means to screen readers too.
pub fn status_icon(icon: &str, meaning: &str, css: &str) -> gtk::Image {
    let image = gtk::Image::from_icon_name(icon);
    image.update_property(&[gtk::accessible::Property::Label(meaning)]);
    image.set_tooltip_text(Some(meaning));
    if !css.is_empty() {
        image.add_css_class(css);
    }
    image
}

/// Removes every child of a box, before it is filled again.
pub fn clear(container: &gtk::Box) {
    while let Some(child) = container.first_child() {
        container.remove(&child);
    }
}

/// A scrolled, width-clamped column, the layout of every page.
pub fn column(content: &impl IsA<gtk::Widget>) -> gtk::ScrolledWindow {
    let clamp = adw::Clamp::new();
    clamp.set_maximum_size(720);
    clamp.set_margin_top(18);
    clamp.set_margin_bottom(18);
    clamp.set_margin_start(12);
    clamp.set_margin_end(12);
    clamp.set_child(Some(content));
    let scrolled = gtk::ScrolledWindow::new();
    scrolled.set_hscrollbar_policy(gtk::PolicyType::Never);
    scrolled.set_vexpand(true);
    scrolled.set_child(Some(&clamp));
    scrolled
}
