//! Keeps the pages a stack is not showing out of the accessibility tree.
//! GTK 4.8 leaves them there, marked visible, so a screen reader would read
//! out a page nobody can see; marking them hidden fixes that.

use adw::prelude::*;

fn mark(pages: impl Iterator<Item = gtk::Widget>, shown: Option<gtk::Widget>) {
    for page in pages {
        let hidden = Some(&page) != shown.as_ref();
        page.update_state(&[gtk::accessible::State::Hidden(hidden)]);
    }
}

fn children(w: &impl IsA<gtk::Widget>) -> impl Iterator<Item = gtk::Widget> {
    let mut next = w.first_child();
    std::iter::from_fn(move || {
        let current = next.take()?;
        next = current.next_sibling();
        Some(current)
    })
}

pub fn follow_stack(stack: &gtk::Stack) {
    let update = |s: &gtk::Stack| mark(children(s), s.visible_child());
    update(stack);
    stack.connect_visible_child_notify(update);
}

pub fn follow_view_stack(stack: &adw::ViewStack) {
    let update = |s: &adw::ViewStack| mark(children(s), s.visible_child());
    update(stack);
    stack.connect_visible_child_notify(update);
}

pub fn follow_leaflet(leaflet: &adw::Leaflet) {
    let update = |l: &adw::Leaflet| mark(children(l), l.visible_child());
    update(leaflet);
    leaflet.connect_visible_child_notify(update);
}
