//! The window's one toast: the latest state of an operation.
//!
//! libadwaita 1.2, the one Debian 12 ships, frees a toast's bookkeeping when
//! its hide animation ends, and the end of its show animation then writes
//! through the freed pointer (libadwaita fixed it in 1.3, commit 1674ebc9).
//! The hide ends first only when a toast is dismissed while it is still
//! sliding in, which is what replacing "confirm in LocalPasskey's window"
//! with the daemon's quick answer does: the app crashed. So a toast here is
//! never dismissed before a frame has passed the end of its show animation;
//! a newer text that comes sooner replaces its title in place. Toasts carry
//! no libadwaita timeout: a timer here hides them, restarted when the title
//! changes, so the last text gets its whole time on screen.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use adw::prelude::*;
use gtk::glib;

/// libadwaita 1.2's longest show animation (500 ms, when the toast replaces
/// another), with a margin, in frame-clock microseconds.
const SHOW_ANIMATION_US: i64 = 600_000;

struct Shown {
    toast: adw::Toast,
    /// A frame has passed the end of the show animation: dismissing is safe.
    settled: bool,
    /// Its time is up, but it had not settled yet: it goes when it does.
    expired: bool,
    hide: Option<glib::SourceId>,
}

#[derive(Clone)]
pub struct Toasts {
    overlay: adw::ToastOverlay,
    shown: Rc<RefCell<Option<Shown>>>,
}

impl Toasts {
    pub fn new(overlay: adw::ToastOverlay) -> Self {
        Self {
            overlay,
            shown: Rc::new(RefCell::new(None)),
        }
    }

    /// Shows `text` for `seconds` in place of the toast on screen: each
    /// text is the latest state of an operation, so an older one is stale.
    /// (A queued toast would come back long after the fact.)
    pub fn show(&self, text: &str, seconds: u32) {
        let markup = glib::markup_escape_text(text);
        let replaced = {
            let mut shown = self.shown.borrow_mut();
            match shown.as_mut() {
                Some(s) if !s.settled => {
                    s.toast.set_title(&markup);
                    s.expired = false;
                    if let Some(id) = s.hide.take() {
                        id.remove();
                    }
                    s.hide = Some(self.hide_after(&s.toast, seconds));
                    return;
                }
                _ => shown.take(),
            }
        };
        if let Some(old) = replaced {
            self.dismiss(old);
        }
        let toast = adw::Toast::new(&markup);
        toast.set_timeout(0);
        let this = self.clone();
        toast.connect_dismissed(move |toast| {
            // The person closed it, or it was replaced: forget it.
            let gone = {
                let mut shown = this.shown.borrow_mut();
                match shown.as_ref() {
                    Some(s) if &s.toast == toast => shown.take(),
                    _ => None,
                }
            };
            if let Some(id) = gone.and_then(|s| s.hide) {
                id.remove();
            }
        });
        let start = self.overlay.frame_clock().map(|c| c.frame_time());
        self.overlay.add_toast(toast.clone());
        // Unmapped, or without animations, libadwaita ends the show
        // animation inside add_toast.
        let animated = self.overlay.is_mapped() && self.overlay.settings().is_gtk_enable_animations();
        let settled = !animated || start.is_none();
        let hide = self.hide_after(&toast, seconds);
        *self.shown.borrow_mut() = Some(Shown {
            toast: toast.clone(),
            settled,
            expired: false,
            hide: Some(hide),
        });
        if let (false, Some(start)) = (settled, start) {
            self.settle_after(&toast, start + SHOW_ANIMATION_US);
        }
    }

    /// Marks `toast` settled at the first frame past `end`. The show
    /// animation's own tick runs in that same frame, so anything done after
    /// it (from the main loop, not from inside the frame) comes after the
    /// animation ended.
    fn settle_after(&self, toast: &adw::Toast, end: i64) {
        let this = self.clone();
        let toast = toast.clone();
        self.overlay.add_tick_callback(move |_, clock| {
            if clock.frame_time() < end {
                return glib::ControlFlow::Continue;
            }
            let expired = match this.shown.borrow_mut().as_mut() {
                Some(s) if s.toast == toast => {
                    s.settled = true;
                    s.expired
                }
                _ => false,
            };
            if expired {
                let this = this.clone();
                let toast = toast.clone();
                glib::idle_add_local_once(move || this.hide(&toast));
            }
            glib::ControlFlow::Break
        });
    }

    fn hide_after(&self, toast: &adw::Toast, seconds: u32) -> glib::SourceId {
        let this = self.clone();
        let toast = toast.clone();
        glib::timeout_add_local_once(Duration::from_secs(seconds.into()), move || {
            if let Some(s) = this.shown.borrow_mut().as_mut() {
                if s.toast == toast {
                    // This timer has fired: its id must not be removed again.
                    s.hide = None;
                    s.expired = true;
                }
            }
            this.hide(&toast);
        })
    }

    /// Dismisses `toast` if it is still the one on screen and has settled.
    fn hide(&self, toast: &adw::Toast) {
        let gone = {
            let mut shown = self.shown.borrow_mut();
            match shown.as_ref() {
                Some(s) if &s.toast == toast && s.settled => shown.take(),
                _ => None,
            }
        };
        if let Some(s) = gone {
            self.dismiss(s);
        }
    }

    /// Dismisses a toast no longer in `shown` (its dismissed handler then
    /// finds nothing to forget).
    fn dismiss(&self, s: Shown) {
        if let Some(id) = s.hide {
            id.remove();
        }
        s.toast.dismiss();
    }
}
