//! What every page needs from the window: the daemon's client (absent while
//! the daemon is unreachable), the toast overlay, and the window itself as
//! the parent of dialogs.

use std::cell::RefCell;

use adw::prelude::*;

use crate::client::{Client, ClientError};

pub struct Shared {
    pub window: adw::ApplicationWindow,
    toasts: adw::ToastOverlay,
    client: RefCell<Option<Client>>,
    current_toast: RefCell<Option<adw::Toast>>,
}

impl Shared {
    pub fn new(window: adw::ApplicationWindow, toasts: adw::ToastOverlay) -> Self {
        Self {
            window,
            toasts,
            client: RefCell::new(None),
            current_toast: RefCell::new(None),
        }
    }

    pub fn client(&self) -> Option<Client> {
        self.client.borrow().clone()
    }

    pub fn set_client(&self, client: Option<Client>) {
        *self.client.borrow_mut() = client;
    }

    /// Shows `text` at once, dismissing the toast on screen: each toast here
    /// is the latest state of an operation, so an older one is stale. (A
    /// queued or pushed-back toast would come back later, long after the
    /// fact, and toasts wait while the window is inactive.)
    pub fn toast(&self, text: &str) {
        self.show_toast(text, 5);
    }

    fn show_toast(&self, text: &str, seconds: u32) {
        if let Some(old) = self.current_toast.borrow_mut().take() {
            old.dismiss();
        }
        let toast = adw::Toast::new(text);
        toast.set_timeout(seconds);
        self.toasts.add_toast(toast.clone());
        *self.current_toast.borrow_mut() = Some(toast);
    }

    /// Errors of a call: the daemon's words, or that it is not running (the
    /// window then shows its retry page as the bus reports the name gone).
    /// An error stays longer than news: it explains what did not happen.
    pub fn error(&self, err: &ClientError) {
        self.show_toast(&err.message(), 12);
    }

    /// A dialog for errors a person must read before going on.
    pub fn alert(&self, heading: &str, body: &str) {
        let dialog = adw::MessageDialog::new(Some(&self.window), Some(heading), Some(body));
        dialog.add_response("close", "Close");
        dialog.set_default_response(Some("close"));
        dialog.present();
    }
}
