//! What every page needs from the window: the daemon's client (absent while
//! the daemon is unreachable), the toast overlay, and the window itself as
//! the parent of dialogs.

use std::cell::RefCell;

use adw::prelude::*;

use crate::client::{Client, ClientError};
use crate::toasts::Toasts;

pub struct Shared {
    pub window: adw::ApplicationWindow,
    toasts: Toasts,
    client: RefCell<Option<Client>>,
}

impl Shared {
    pub fn new(window: adw::ApplicationWindow, toasts: adw::ToastOverlay) -> Self {
        Self {
            window,
            toasts: Toasts::new(toasts),
            client: RefCell::new(None),
        }
    }

    pub fn client(&self) -> Option<Client> {
        self.client.borrow().clone()
    }

    pub fn set_client(&self, client: Option<Client>) {
        *self.client.borrow_mut() = client;
    }

    /// News of an operation, in place of the toast on screen.
    pub fn toast(&self, text: &str) {
        self.toasts.show(text, 5);
    }

    /// Errors of a call: the daemon's words, or that it is not running (the
    /// window then shows its retry page as the bus reports the name gone).
    /// An error stays longer than news: it explains what did not happen.
    pub fn error(&self, err: &ClientError) {
        self.toasts.show(&err.message(), 12);
    }

    /// A dialog for errors a person must read before going on.
    pub fn alert(&self, heading: &str, body: &str) {
        let dialog = adw::MessageDialog::new(Some(&self.window), Some(heading), Some(body));
        dialog.add_response("close", "Close");
        dialog.set_default_response(Some("close"));
        dialog.present();
    }
}
