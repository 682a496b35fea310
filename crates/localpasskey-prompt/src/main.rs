//! `localpasskey-prompt`: shows ONE question from the LocalPasskey daemon and
//! exits with the answer (the protocol is in protocol.rs).
//!
//! A process of its own, so the daemon never links GTK, a crash here cannot
//! take the authenticator down, and the PIN crosses only a pipe.
//!
//! Presence is never granted without a person's action, so nothing that can
//! happen by accident approves: a dialog that pops up while someone is
//! typing elsewhere must not turn their next Enter into a "yes".
//! - A presence-only dialog starts with the focus on Deny and has no default
//!   button: Enter denies; approving takes Tab to Allow and then Enter or
//!   Space, or a click.
//! - Allow and the PIN field come alive only after [`ARM_DELAY`]: keys and
//!   clicks meant for another window land nowhere (Firefox's security
//!   dialogs do the same). A PIN typed by accident could also cost a try.
//! - With a PIN field, Enter approves only once the field holds a PIN.
//! - With a list of accounts (a sign-in the site left to the person), no
//!   account is picked in advance: approving needs one picked (arrow keys,
//!   Space or a click), so a sign-in never goes to an account by default.
//! - A new PIN is typed twice; Allow waits until the two agree and are long
//!   enough, and the dialog says which of the two is wrong.
//! - A report of a failure has one button and asks nothing.
//! - Escape, closing the window, or a crash of this process all deny.

mod protocol;

use gtk::prelude::*;
use gtk::{gdk, glib};
use protocol::{Action, Answer, Kind, Request};
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long Allow and the PIN field stay dead after the dialog appears.
const ARM_DELAY: Duration = Duration::from_millis(750);

const CSS: &str = "
.lp-brand { font-size: 9pt; opacity: 0.7; }
.lp-headline { font-size: 15pt; font-weight: bold; }
.lp-destructive { color: #c01c28; }
.lp-rp-caption { font-size: 9pt; opacity: 0.7; }
.lp-rp { font-size: 20pt; font-weight: bold; font-family: monospace; }
.lp-warning { color: #9c6e03; font-weight: bold; }
.lp-user { font-size: 11pt; }
.lp-tries-low { color: #c01c28; font-weight: bold; }
.lp-account { padding: 6px 8px; }
";

fn main() -> ExitCode {
    let started = Instant::now();
    harden_process();
    let req = match protocol::read_request(std::io::stdin().lock()) {
        Ok(req) => req,
        Err(e) => {
            eprintln!("localpasskey-prompt: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = gtk::init() {
        eprintln!("localpasskey-prompt: cannot open the display ({e}); no dialog shown");
        return ExitCode::from(3);
    }
    let deadline = started + Duration::from_millis(req.timeout_ms);
    let answer = run_dialog(&req, deadline);
    let mut out = std::io::stdout().lock();
    if out
        .write_all(answer.to_line().as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        // The daemon stopped listening: it has already moved on.
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// The PIN sits in this process until the answer leaves: no core dump of it,
/// and no ptrace or /proc/PID/mem reads by other processes of the user.
fn harden_process() {
    // SAFETY: PR_SET_DUMPABLE takes integer arguments only; no memory is shared.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

fn label(text: &str, class: &str) -> gtk::Label {
    let l = gtk::Label::new(Some(text));
    l.set_wrap(true);
    l.set_xalign(0.0);
    l.set_max_width_chars(48);
    if !class.is_empty() {
        l.add_css_class(class);
    }
    l
}

/// Builds the window, runs until an answer, and returns it.
fn run_dialog(req: &Request, deadline: Instant) -> Answer {
    let provider = gtk::CssProvider::new();
    provider.load_from_data(CSS);
    if let Some(display) = gdk::Display::default() {
        gtk::style_context_add_provider_for_display(
            &display,
            &provider,
            gtk::STYLE_PROVIDER_PRIORITY_APPLICATION,
        );
    }

    let texts = protocol::texts(req.action);
    let rp_id = protocol::displayable_rp_id(&req.rp_id);
    let window = gtk::Window::builder()
        .title(if rp_id.is_empty() {
            "LocalPasskey".to_owned()
        } else {
            format!("LocalPasskey: {rp_id}")
        })
        .resizable(false)
        .default_width(460)
        .build();

    let content = gtk::Box::new(gtk::Orientation::Vertical, 10);
    content.set_margin_top(20);
    content.set_margin_bottom(20);
    content.set_margin_start(24);
    content.set_margin_end(24);
    window.set_child(Some(&content));

    content.append(&label("LocalPasskey security key", "lp-brand"));
    let headline = label(texts.headline, "lp-headline");
    if texts.destructive {
        headline.add_css_class("lp-destructive");
    }
    content.append(&headline);

    // The RP ID is what the browser checked against the page's origin; the
    // RP's self-chosen name is never shown, since any site can claim any name.
    if !rp_id.is_empty() {
        let caption = match req.action {
            Action::Register => "for the site",
            Action::SignIn | Action::Unlock => "to the site",
            _ => "site",
        };
        content.append(&label(caption, "lp-rp-caption"));
        let rp = label(&rp_id, "lp-rp");
        rp.set_wrap_mode(gtk::pango::WrapMode::Char);
        content.append(&rp);
        if let Some(warning) = protocol::rp_id_warning(&req.rp_id) {
            content.append(&label(&warning, "lp-warning"));
        }
    }
    if let Some(user) = req.user_name.as_deref().filter(|u| !u.is_empty()) {
        content.append(&label(
            &format!("Account: {}", protocol::displayable_user(user)),
            "lp-user",
        ));
    }
    let accounts = (!req.accounts.is_empty()).then(|| {
        content.append(&label("Choose the account to sign in with:", "lp-user"));
        let list = gtk::ListBox::new();
        list.set_selection_mode(gtk::SelectionMode::Single);
        list.set_activate_on_single_click(true);
        list.add_css_class("boxed-list");
        for account in &req.accounts {
            let (name, detail) = protocol::account_lines(account);
            let lines = gtk::Box::new(gtk::Orientation::Vertical, 2);
            lines.add_css_class("lp-account");
            let name_label = label(&name, "lp-user");
            name_label.set_wrap_mode(gtk::pango::WrapMode::WordChar);
            lines.append(&name_label);
            if let Some(detail) = detail {
                let detail_label = label(&detail, "lp-brand");
                detail_label.set_wrap_mode(gtk::pango::WrapMode::WordChar);
                lines.append(&detail_label);
            }
            let row = gtk::ListBoxRow::new();
            row.set_child(Some(&lines));
            list.append(&row);
        }
        list.unselect_all();
        list.set_sensitive(false);
        let scroll = gtk::ScrolledWindow::new();
        scroll.set_hscrollbar_policy(gtk::PolicyType::Never);
        scroll.set_propagate_natural_height(true);
        scroll.set_max_content_height(280);
        scroll.set_child(Some(&list));
        content.append(&scroll);
        list
    });
    content.append(&label(texts.explanation, ""));
    let report = req.action == Action::Failed;
    if let Some(message) = req.message.as_deref().filter(|m| !m.is_empty()) {
        content.append(&label(&protocol::displayable_message(message), "lp-user"));
    }
    if !report {
        content.append(&label(
            "If you did not just ask for this, choose Deny.",
            "lp-brand",
        ));
    }

    let pin_entry = req.needs_pin.then(|| {
        let row = gtk::Box::new(gtk::Orientation::Vertical, 4);
        row.set_margin_top(6);
        let entry = gtk::PasswordEntry::new();
        entry.set_show_peek_icon(true);
        entry.set_sensitive(false);
        entry.set_property("placeholder-text", "PIN");
        let pin_label = gtk::Label::new(Some(if req.new_pin_min_length.is_some() {
            "Current PIN"
        } else {
            "PIN of this security key"
        }));
        pin_label.set_xalign(0.0);
        pin_label.set_mnemonic_widget(Some(&entry));
        row.append(&pin_label);
        row.append(&entry);
        if let Some(retries) = req.retries {
            let tries = label(&protocol::tries_left(retries), "lp-brand");
            if retries <= 3 {
                tries.add_css_class("lp-tries-low");
            }
            row.append(&tries);
        }
        content.append(&row);
        entry
    });

    // The new PIN, twice, and what is still wrong with it.
    let new_pin = req.new_pin_min_length.map(|min| {
        let row = gtk::Box::new(gtk::Orientation::Vertical, 4);
        row.set_margin_top(6);
        let entry = |placeholder: &str, text: &str| {
            let e = gtk::PasswordEntry::new();
            e.set_show_peek_icon(true);
            e.set_sensitive(false);
            e.set_property("placeholder-text", placeholder);
            let l = gtk::Label::new(Some(text));
            l.set_xalign(0.0);
            l.set_mnemonic_widget(Some(&e));
            row.append(&l);
            row.append(&e);
            e
        };
        let first = entry("New PIN", &format!("New PIN (at least {min} characters)"));
        let second = entry("New PIN again", "The new PIN again");
        let problem = label("", "lp-brand");
        row.append(&problem);
        content.append(&row);
        NewPinFields {
            first,
            second,
            problem,
            min,
        }
    });

    let countdown = gtk::Box::new(gtk::Orientation::Vertical, 4);
    countdown.set_margin_top(6);
    let time_label = label("", "lp-brand");
    let progress = gtk::ProgressBar::new();
    countdown.append(&time_label);
    countdown.append(&progress);
    content.append(&countdown);

    // Deny first (left), Allow last, neither the window's default widget.
    let buttons = gtk::Box::new(gtk::Orientation::Horizontal, 12);
    buttons.set_halign(gtk::Align::End);
    buttons.set_homogeneous(true);
    buttons.set_margin_top(8);
    let deny = gtk::Button::with_label("Deny");
    let allow = gtk::Button::with_label(texts.allow_label);
    allow.add_css_class(if texts.destructive {
        "destructive-action"
    } else {
        "suggested-action"
    });
    allow.set_sensitive(false);
    if report {
        deny.set_visible(false);
    }
    buttons.append(&deny);
    buttons.append(&allow);
    content.append(&buttons);

    let result: Rc<RefCell<Option<Answer>>> = Rc::new(RefCell::new(None));
    let main_loop = glib::MainLoop::new(None, false);
    let finish = {
        let result = Rc::clone(&result);
        let main_loop = main_loop.clone();
        let window = window.clone();
        Rc::new(move |answer: Answer| {
            if result.borrow().is_none() {
                *result.borrow_mut() = Some(answer);
            }
            window.set_visible(false);
            main_loop.quit();
        })
    };
    let armed = Rc::new(Cell::new(false));

    // Approve with the PIN, if one is needed and typed, and the account
    // picked, if there is a list; else nothing happens.
    let approve = {
        let finish = Rc::clone(&finish);
        let armed = Rc::clone(&armed);
        let pin_entry = pin_entry.clone();
        let accounts = accounts.clone();
        let new_pin = new_pin.clone();
        Rc::new(move || {
            if !armed.get() {
                return;
            }
            let typed_new = match &new_pin {
                None => None,
                Some(f) => match f.checked() {
                    Some(pin) => Some(pin),
                    None => return,
                },
            };
            let chosen = match &accounts {
                None => None,
                Some(list) => match list.selected_row().and_then(|r| usize::try_from(r.index()).ok()) {
                    Some(i) => Some(i),
                    None => return,
                },
            };
            match &pin_entry {
                None => finish(Answer {
                    chosen,
                    new_pin: typed_new,
                    ..Answer::of(Kind::Approve)
                }),
                Some(entry) => {
                    let pin = Zeroizing::new(entry.text().to_string());
                    if pin.is_empty() {
                        return;
                    }
                    entry.set_text("");
                    finish(Answer {
                        answer: Kind::Approve,
                        pin: Some(pin),
                        chosen,
                        new_pin: typed_new,
                    });
                }
            }
        })
    };
    // Allow comes alive once armed, with a PIN typed if one is asked for
    // and an account picked if there is a list.
    let update_allow = {
        let allow = allow.clone();
        let armed = Rc::clone(&armed);
        let pin_entry = pin_entry.clone();
        let accounts = accounts.clone();
        let new_pin = new_pin.clone();
        Rc::new(move || {
            let pin_ok = pin_entry.as_ref().is_none_or(|e| !e.text().is_empty());
            let pick_ok = accounts.as_ref().is_none_or(|l| l.selected_row().is_some());
            let new_ok = new_pin.as_ref().is_none_or(|f| f.show_problem());
            allow.set_sensitive(armed.get() && pin_ok && pick_ok && new_ok);
        })
    };

    {
        let approve = Rc::clone(&approve);
        allow.connect_clicked(move |_| approve());
    }
    {
        let finish = Rc::clone(&finish);
        deny.connect_clicked(move |_| finish(Answer::of(Kind::Deny)));
    }
    match (&pin_entry, &new_pin) {
        // Enter moves on through the fields, and approves at the last one.
        (Some(entry), Some(f)) => {
            let first = f.first.clone();
            entry.connect_activate(move |_| {
                first.grab_focus();
            });
        }
        (Some(entry), None) => {
            let approve = Rc::clone(&approve);
            entry.connect_activate(move |_| approve());
        }
        (None, _) => {}
    }
    if let Some(entry) = &pin_entry {
        let update_allow = Rc::clone(&update_allow);
        entry.connect_changed(move |_| update_allow());
    }
    if let Some(f) = &new_pin {
        let second = f.second.clone();
        f.first.connect_activate(move |_| {
            second.grab_focus();
        });
        let approve = Rc::clone(&approve);
        f.second.connect_activate(move |_| approve());
        for e in [&f.first, &f.second] {
            let update_allow = Rc::clone(&update_allow);
            e.connect_changed(move |_| update_allow());
        }
    }
    if let Some(list) = &accounts {
        let update_allow = Rc::clone(&update_allow);
        list.connect_selected_rows_changed(move |_| update_allow());
        // Picking a row (Enter, Space, a click) takes the keyboard on to
        // the PIN, if one is asked for; never to Allow.
        if let Some(entry) = &pin_entry {
            let entry = entry.clone();
            list.connect_row_activated(move |_, _| {
                entry.grab_focus();
            });
        }
    }
    {
        let finish = Rc::clone(&finish);
        window.connect_close_request(move |_| {
            finish(Answer::of(Kind::Deny));
            glib::Propagation::Proceed
        });
    }
    {
        // Capture phase: Escape must deny even while the PIN field has focus.
        let keys = gtk::EventControllerKey::new();
        keys.set_propagation_phase(gtk::PropagationPhase::Capture);
        let finish = Rc::clone(&finish);
        keys.connect_key_pressed(move |_, key, _, _| {
            if key == gdk::Key::Escape {
                finish(Answer::of(Kind::Deny));
                glib::Propagation::Stop
            } else {
                glib::Propagation::Proceed
            }
        });
        window.add_controller(keys);
    }

    let total = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let tick = {
        let finish = Rc::clone(&finish);
        move || {
            let left = deadline.saturating_duration_since(Instant::now());
            time_label.set_text(&format!(
                "Time left: {}",
                protocol::format_remaining(left.as_millis() as u64)
            ));
            progress.set_fraction(left.as_secs_f64() / total.as_secs_f64());
            if left.is_zero() {
                finish(Answer::of(Kind::Timeout));
                return glib::ControlFlow::Break;
            }
            glib::ControlFlow::Continue
        }
    };
    tick();
    glib::timeout_add_local(Duration::from_millis(100), tick);

    {
        // Counted from when the window is on screen, not from when it was
        // built: the delay is the person's time to see what is asked.
        let armed = Rc::clone(&armed);
        let update_allow = Rc::clone(&update_allow);
        let pin_entry = pin_entry.clone();
        let accounts = accounts.clone();
        let new_pin = new_pin.clone();
        let allow = allow.clone();
        window.connect_map(move |_| {
            let armed = Rc::clone(&armed);
            let update_allow = Rc::clone(&update_allow);
            let pin_entry = pin_entry.clone();
            let accounts = accounts.clone();
            let new_pin = new_pin.clone();
            let allow = allow.clone();
            glib::timeout_add_local_once(ARM_DELAY, move || {
                armed.set(true);
                update_allow();
                if let Some(entry) = &pin_entry {
                    entry.set_sensitive(true);
                }
                if let Some(f) = &new_pin {
                    f.first.set_sensitive(true);
                    f.second.set_sensitive(true);
                    if pin_entry.is_none() {
                        f.first.grab_focus();
                    }
                }
                // The keyboard starts where the first decision is: the list
                // (its first row, not picked), else the PIN field.
                match (&accounts, &pin_entry) {
                    (Some(list), _) => {
                        list.set_sensitive(true);
                        if let Some(first) = list.row_at_index(0) {
                            first.grab_focus();
                        }
                    }
                    (None, Some(entry)) => {
                        entry.grab_focus();
                    }
                    // A report's one button: it asks nothing, so Enter may close it.
                    (None, None) if report => {
                        allow.grab_focus();
                    }
                    (None, None) => {}
                }
            });
        });
    }

    window.set_default_widget(None::<&gtk::Widget>);
    GtkWindowExt::set_focus(&window, Some(&deny));
    window.present();
    deny.grab_focus();

    main_loop.run();
    let answer = result.borrow_mut().take();
    window.destroy();
    answer.unwrap_or_else(|| Answer::of(Kind::Deny))
}

/// The two entries of a new PIN and the line that says what is wrong.
#[derive(Clone)]
struct NewPinFields {
    first: gtk::PasswordEntry,
    second: gtk::PasswordEntry,
    problem: gtk::Label,
    min: u8,
}

impl NewPinFields {
    /// Shows what is still wrong (nothing while the second is empty) and
    /// says whether the new PIN can be taken.
    fn show_problem(&self) -> bool {
        let (a, b) = (self.first.text(), self.second.text());
        let problem = protocol::new_pin_problem(&a, &b, self.min);
        // Nothing to say until the person has begun the second entry.
        let shown = match &problem {
            Some(p) if !b.is_empty() => p.as_str(),
            _ => "",
        };
        self.problem.set_text(shown);
        problem.is_none()
    }

    /// The new PIN, if the two agree and it is long enough; the fields are
    /// emptied once it is taken.
    fn checked(&self) -> Option<Zeroizing<String>> {
        if !self.show_problem() {
            return None;
        }
        let pin = Zeroizing::new(self.first.text().to_string());
        self.first.set_text("");
        self.second.set_text("");
        Some(pin)
    }
}
