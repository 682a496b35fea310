//! localpasskey-manager: the desktop app for LocalPasskey's passkeys. It
//! only talks to the daemon over D-Bus; the daemon owns the TPM and the store.

#![forbid(unsafe_code)]

mod a11y;
mod activity_page;
mod backup;
mod client;
mod details;
mod format;
mod grouping;
mod health_page;
mod model;
mod passkeys_page;
mod pin_page;
mod proxy;
mod rows;
mod shared;
mod toasts;
mod window;

use std::cell::RefCell;
use std::rc::Rc;

use adw::prelude::*;
use gtk::glib;

fn main() -> glib::ExitCode {
    let app = adw::Application::new(Some(window::APP_ID), Default::default());
    app.set_accels_for_action("win.search", &["<Control>f"]);
    app.set_accels_for_action("win.refresh", &["<Control>r", "F5"]);
    app.set_accels_for_action("window.close", &["<Control>w", "<Control>q"]);
    // One window per process: activating the app again presents it.
    let main_window: Rc<RefCell<Option<Rc<window::Window>>>> = Rc::new(RefCell::new(None));
    app.connect_activate(move |app| {
        if let Some(w) = app.active_window() {
            w.present();
            return;
        }
        let w = window::Window::new(app);
        w.present();
        *main_window.borrow_mut() = Some(w);
    });
    app.run()
}
