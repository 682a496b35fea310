//! The main window: the daemon's state (connecting, unreachable, connected),
//! the four pages in a view switcher, and the details page a row opens.

use std::cell::RefCell;
use std::rc::Rc;

use adw::prelude::*;
use gtk::{gio, glib};

use crate::a11y;
use crate::activity_page::ActivityPage;
use crate::backup;
use crate::client::{Client, ClientError};
use crate::details::DetailsPage;
use crate::health_page::HealthPage;
use crate::model::{Info, Passkey};
use crate::passkeys_page::PasskeysPage;
use crate::pin_page::PinPage;
use crate::shared::Shared;

pub const APP_ID: &str = "org.localpasskey.Manager";

pub struct Window {
    shared: Rc<Shared>,
    root: gtk::Stack,
    unavailable: adw::StatusPage,
    leaflet: adw::Leaflet,
    tabs: gtk::Box,
    passkeys: Rc<PasskeysPage>,
    details: Rc<DetailsPage>,
    pin: Rc<PinPage>,
    health: Rc<HealthPage>,
    activity: Rc<ActivityPage>,
    info: RefCell<Info>,
}

/// A header bar and a status page, for the states without the daemon.
fn state_page(status: &adw::StatusPage) -> gtk::Box {
    let page = gtk::Box::new(gtk::Orientation::Vertical, 0);
    let header = adw::HeaderBar::new();
    header.set_title_widget(Some(&adw::WindowTitle::new("LocalPasskey", "")));
    page.append(&header);
    status.set_vexpand(true);
    page.append(status);
    page
}

impl Window {
    pub fn new(app: &adw::Application) -> Rc<Self> {
        let window = adw::ApplicationWindow::new(app);
        window.set_title(Some("LocalPasskey"));
        window.set_icon_name(Some(APP_ID));
        window.set_default_size(760, 720);
        let toasts = adw::ToastOverlay::new();
        window.set_content(Some(&toasts));
        let shared = Rc::new(Shared::new(window.clone(), toasts.clone()));

        let connecting = adw::StatusPage::new();
        connecting.set_title("Connecting to LocalPasskey…");
        let spinner = gtk::Spinner::new();
        spinner.set_spinning(true);
        spinner.set_size_request(32, 32);
        connecting.set_child(Some(&spinner));

        let unavailable = adw::StatusPage::new();
        unavailable.set_icon_name(Some("dialog-warning-symbolic"));
        let retry = gtk::Button::with_label("Retry");
        retry.add_css_class("pill");
        retry.add_css_class("suggested-action");
        retry.set_halign(gtk::Align::Center);
        unavailable.set_child(Some(&retry));

        let passkeys = PasskeysPage::new();
        let pin = PinPage::new(Rc::clone(&shared));
        let health = HealthPage::new(Rc::clone(&shared));
        let activity = ActivityPage::new(Rc::clone(&shared));
        let details = DetailsPage::new(Rc::clone(&shared));

        let stack = adw::ViewStack::new();
        stack.set_vexpand(true);
        stack
            .add_titled(&passkeys.widget, Some("passkeys"), "Passkeys")
            .set_icon_name(Some("dialog-password-symbolic"));
        stack
            .add_titled(&pin.widget, Some("pin"), "PIN")
            .set_icon_name(Some("system-lock-screen-symbolic"));
        stack
            .add_titled(&health.widget, Some("health"), "Health")
            .set_icon_name(Some("emblem-ok-symbolic"));
        stack
            .add_titled(&activity.widget, Some("activity"), "Activity")
            .set_icon_name(Some("document-open-recent-symbolic"));

        let switcher_title = adw::ViewSwitcherTitle::new();
        switcher_title.set_stack(Some(&stack));
        switcher_title.set_title("LocalPasskey");
        let switcher_bar = adw::ViewSwitcherBar::new();
        switcher_bar.set_stack(Some(&stack));
        switcher_title
            .bind_property("title-visible", &switcher_bar, "reveal")
            .sync_create()
            .build();

        let menu = gio::Menu::new();
        menu.append(Some("Backup Advice"), Some("win.backup-advice"));
        menu.append(Some("About LocalPasskey"), Some("win.about"));
        let menu_button = gtk::MenuButton::new();
        menu_button.set_icon_name("open-menu-symbolic");
        menu_button.set_menu_model(Some(&menu));
        menu_button.set_tooltip_text(Some("Main Menu"));
        menu_button.update_property(&[gtk::accessible::Property::Label("Main menu")]);

        let header = adw::HeaderBar::new();
        header.set_title_widget(Some(&switcher_title));
        header.pack_end(&menu_button);

        let tabs = gtk::Box::new(gtk::Orientation::Vertical, 0);
        tabs.append(&header);
        tabs.append(&stack);
        tabs.append(&switcher_bar);

        let leaflet = adw::Leaflet::new();
        leaflet.set_can_unfold(false);
        leaflet.set_can_navigate_back(true);
        leaflet.append(&tabs);
        leaflet.append(&details.widget);
        leaflet.set_visible_child(&tabs);

        let root = gtk::Stack::new();
        root.add_named(&state_page(&connecting), Some("connecting"));
        root.add_named(&state_page(&unavailable), Some("unavailable"));
        root.add_named(&leaflet, Some("main"));
        root.set_visible_child_name("connecting");
        toasts.set_child(Some(&root));
        a11y::follow_stack(&root);
        a11y::follow_view_stack(&stack);
        a11y::follow_leaflet(&leaflet);

        let this = Rc::new(Self {
            shared,
            root,
            unavailable,
            leaflet,
            tabs,
            passkeys,
            details,
            pin,
            health,
            activity,
            info: RefCell::new(Info::default()),
        });
        this.passkeys.capture_typing(&window);
        this.wire(&retry);
        this
    }

    fn wire(self: &Rc<Self>, retry: &gtk::Button) {
        let weak = Rc::downgrade(self);
        retry.connect_clicked(move |_| {
            if let Some(w) = weak.upgrade() {
                w.reload();
            }
        });
        let weak = Rc::downgrade(self);
        self.passkeys.connect_open(move |p| {
            if let Some(w) = weak.upgrade() {
                w.open_details(p);
            }
        });
        let weak = Rc::downgrade(self);
        self.details.connect_back(move || {
            if let Some(w) = weak.upgrade() {
                w.leaflet.set_visible_child(&w.tabs);
            }
        });

        let window = &self.shared.window;
        let action = gio::SimpleAction::new("backup-advice", None);
        let parent = window.clone();
        action.connect_activate(move |_, _| backup::show(&parent));
        window.add_action(&action);

        let action = gio::SimpleAction::new("about", None);
        let parent = window.clone();
        action.connect_activate(move |_, _| about(&parent));
        window.add_action(&action);

        let action = gio::SimpleAction::new("search", None);
        let weak = Rc::downgrade(self);
        action.connect_activate(move |_, _| {
            if let Some(w) = weak.upgrade() {
                w.leaflet.set_visible_child(&w.tabs);
                w.passkeys.focus_search();
            }
        });
        window.add_action(&action);

        let action = gio::SimpleAction::new("refresh", None);
        let weak = Rc::downgrade(self);
        action.connect_activate(move |_, _| {
            if let Some(w) = weak.upgrade() {
                w.reload();
            }
        });
        window.add_action(&action);
    }

    pub fn present(self: &Rc<Self>) {
        self.shared.window.present();
        backup::show_on_first_run(&self.shared.window);
        let this = Rc::clone(self);
        glib::spawn_future_local(async move {
            match Client::connect().await {
                Ok(client) => {
                    this.shared.set_client(Some(client.clone()));
                    this.watch(&client);
                    this.reload();
                }
                Err(e) => this.show_unavailable(&e),
            }
        });
    }

    /// Follows the daemon on the bus for as long as the window lives.
    fn watch(self: &Rc<Self>, client: &Client) {
        let weak = Rc::downgrade(self);
        let c = client.clone();
        glib::spawn_future_local(async move {
            let result = c
                .watch_daemon(|running| {
                    if let Some(w) = weak.upgrade() {
                        if running {
                            w.reload();
                        } else {
                            w.show_unavailable(&ClientError::NotRunning);
                        }
                    }
                })
                .await;
            if let Err(e) = result {
                eprintln!("localpasskey-manager: cannot follow the daemon on the bus: {e}");
            }
        });
        let weak = Rc::downgrade(self);
        let c = client.clone();
        glib::spawn_future_local(async move {
            let result = c
                .watch_passkeys(|| {
                    if let Some(w) = weak.upgrade() {
                        w.refresh_passkeys();
                    }
                })
                .await;
            if let Err(e) = result {
                eprintln!("localpasskey-manager: no PasskeysChanged signals: {e}");
            }
        });
        let weak = Rc::downgrade(self);
        let c = client.clone();
        glib::spawn_future_local(async move {
            let result = c
                .watch_activity(|entry| {
                    if let Some(w) = weak.upgrade() {
                        w.activity.prepend(entry);
                    }
                })
                .await;
            if let Err(e) = result {
                eprintln!("localpasskey-manager: no ActivityAdded signals: {e}");
            }
        });
    }

    /// Asks the daemon for everything again; its Info decides whether it is there.
    pub fn reload(self: &Rc<Self>) {
        let Some(client) = self.shared.client() else {
            let this = Rc::clone(self);
            glib::spawn_future_local(async move {
                match Client::connect().await {
                    Ok(client) => {
                        this.shared.set_client(Some(client.clone()));
                        this.watch(&client);
                        this.reload();
                    }
                    Err(e) => this.show_unavailable(&e),
                }
            });
            return;
        };
        let this = Rc::clone(self);
        glib::spawn_future_local(async move {
            match client.info().await {
                Ok(info) => {
                    *this.info.borrow_mut() = info;
                    if this.root.visible_child_name().as_deref() != Some("main") {
                        this.root.set_visible_child_name("main");
                    }
                    this.refresh_passkeys();
                    this.pin.refresh();
                    this.health.refresh();
                    this.activity.refresh();
                }
                Err(e) => this.show_unavailable(&e),
            }
        });
    }

    fn show_unavailable(&self, e: &ClientError) {
        let (title, text) = match e {
            ClientError::NotRunning => (
                "LocalPasskey Is Not Running".to_owned(),
                "This app shows and changes your passkeys through the LocalPasskey service, \
                 which is not running. Start it with “systemctl --user start localpasskey” \
                 (or “localpasskey run”), then retry."
                    .to_owned(),
            ),
            ClientError::NoBus(detail) => (
                "No Session Bus".to_owned(),
                format!(
                    "This app reaches LocalPasskey over the desktop session’s D-Bus, \
                     which could not be opened: {detail}"
                ),
            ),
            other => ("Cannot Reach LocalPasskey".to_owned(), other.message()),
        };
        self.unavailable.set_title(&title);
        self.unavailable
            .set_description(Some(&glib::markup_escape_text(&text)));
        self.root.set_visible_child_name("unavailable");
    }

    fn refresh_passkeys(self: &Rc<Self>) {
        let Some(client) = self.shared.client() else {
            return;
        };
        let this = Rc::clone(self);
        glib::spawn_future_local(async move {
            match client.passkeys().await {
                Ok(list) => {
                    this.passkeys.set_passkeys(list);
                    this.follow_details();
                }
                Err(e) => this.shared.error(&e),
            }
        });
    }

    /// Keeps the details page in step with the list: renamed passkeys show
    /// their new names, deleted ones close it.
    fn follow_details(&self) {
        let Some(id) = self.details.shown() else {
            return;
        };
        match self.passkeys.passkey(&id) {
            Some(p) => {
                let info = self.info.borrow().clone();
                self.details.show(&p, &info);
            }
            None => self.leaflet.set_visible_child(&self.tabs),
        }
    }

    fn open_details(&self, p: &Passkey) {
        let info = self.info.borrow().clone();
        self.details.show(p, &info);
        self.leaflet.set_visible_child(&self.details.widget);
        self.details.focus_back();
    }
}

fn about(parent: &adw::ApplicationWindow) {
    let about = adw::AboutWindow::new();
    about.set_transient_for(Some(parent));
    about.set_application_name("LocalPasskey");
    about.set_application_icon(APP_ID);
    about.set_developer_name("LocalPasskey developers");
    about.set_version(env!("CARGO_PKG_VERSION"));
    about.set_license_type(gtk::License::Apache20);
    about.set_comments(
        "Passkeys that never leave this computer: made and kept in its TPM, used only with your PIN.",
    );
    about.present();
}
