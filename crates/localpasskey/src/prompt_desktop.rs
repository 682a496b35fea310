//! `--presence desktop`: the real `user` seam, a dialog on the person's screen.
//!
//! The dialog is a separate program, `localpasskey-prompt` (crates/
//! localpasskey-prompt), started once per question: the daemon never links
//! GTK, a crash of the UI cannot take the authenticator down, and the PIN
//! crosses only a pipe. One JSON line goes to its stdin
//! (`{action, rp_id, user_name, needs_pin, retries, timeout_ms, accounts}`),
//! one comes back on its stdout (`{"answer":"approve"|"deny"|"timeout",
//! "pin":..., "chosen":...}`).
//!
//! The daemon stays in charge of time and cancellation: it polls every
//! [`POLL`] and kills the dialog when the platform sends CTAPHID_CANCEL or the
//! CTAP timeout passes, whatever the dialog is doing. Anything other than a
//! well-formed approval — a crash, garbage, silence — is a refusal.

use anyhow::{bail, Context, Result};
use localpasskey_prompt_protocol::{self as protocol, Kind};
use lp_core::user::{
    Action, Interaction, NewPin, Presence, PresenceRequest, Refusal, UserPresence, Verification,
};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Names the dialog program explicitly (tests, unusual installs).
pub const PROMPT_ENV: &str = "LOCALPASSKEY_PROMPT";
/// Looked for next to the daemon's own executable, where `cargo build` and
/// the installer put it, so no PATH lookup can substitute another program.
pub const PROMPT_NAME: &str = "localpasskey-prompt";
/// How often cancel and the deadline are checked while the dialog is open;
/// the CTAPHID keepalive period is 80 ms, so a cancel closes it well within one.
const POLL: Duration = Duration::from_millis(20);
/// An answer longer than this is not from our dialog (a PIN is at most 63 bytes).
const MAX_ANSWER_BYTES: usize = 4096;

type EnvLookup = Box<dyn Fn(&str) -> Option<OsString> + Send>;

pub struct DesktopPrompt {
    program: PathBuf,
    /// The environment the display is looked up in; tests replace it.
    env: EnvLookup,
}

/// What the dialog asks for besides a yes or no.
#[derive(Debug, Clone, Copy, Default)]
struct Fields {
    /// The PIN (the current one, with `new_pin`).
    pin: bool,
    retries: Option<u8>,
    /// A new PIN of at least this many characters, typed twice.
    new_pin: Option<u8>,
}

/// How long a report of a failure stays on screen unless closed.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// What came back, before it is mapped onto the seam's answer types.
enum Outcome {
    Approved {
        pin: Option<Zeroizing<String>>,
        chosen: Option<usize>,
        new_pin: Option<Zeroizing<String>>,
    },
    Denied,
    TimedOut,
    Cancelled,
}

/// The dialog's name for what is asked.
fn dialog_action(action: Action) -> protocol::Action {
    match action {
        Action::Register => protocol::Action::Register,
        Action::SignIn => protocol::Action::SignIn,
        Action::AlreadyRegistered => protocol::Action::AlreadyRegistered,
        Action::Reset => protocol::Action::Reset,
        Action::Select => protocol::Action::Select,
        Action::Unlock => protocol::Action::Unlock,
        Action::Delete => protocol::Action::Delete,
        Action::SetPin => protocol::Action::SetPin,
        Action::ChangePin => protocol::Action::ChangePin,
        Action::Failed => protocol::Action::Failed,
    }
}

impl DesktopPrompt {
    /// `$LOCALPASSKEY_PROMPT`, else `localpasskey-prompt` next to this executable.
    pub fn locate() -> Result<Self> {
        let program = match std::env::var_os(PROMPT_ENV).filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .context("cannot find the daemon's own executable")?
                .with_file_name(PROMPT_NAME),
        };
        if !program.is_file() {
            bail!(
                "the desktop prompt {} does not exist: build it (`cargo build --workspace`), \
                 install it next to localpasskey, or name it with {PROMPT_ENV}",
                program.display()
            );
        }
        tracing::info!("desktop prompt: {}", program.display());
        Ok(Self::with_program(program))
    }

    pub fn with_program(program: PathBuf) -> Self {
        Self {
            program,
            env: Box::new(session_var),
        }
    }

    /// Whether there is a display to show the dialog on right now.
    pub fn has_display(&self) -> bool {
        self.display().is_some()
    }

    /// Which display the dialog would appear on, for logs.
    fn display(&self) -> Option<String> {
        ["WAYLAND_DISPLAY", "DISPLAY"].iter().find_map(|name| {
            (self.env)(name)
                .filter(|v| !v.is_empty())
                .map(|v| format!("{name}={}", v.to_string_lossy()))
        })
    }

    /// Starts the dialog with the session's display and sends it `line`
    /// (at most [`protocol::MAX_REQUEST_BYTES`], below a pipe buffer, so the
    /// write cannot block). None, logged, if it cannot be run.
    fn start(&self, line: &str, answer: Stdio) -> Option<Child> {
        let mut cmd = Command::new(&self.program);
        // The session's display variables, wherever they were found.
        for name in SESSION_VARS {
            if let Some(v) = (self.env)(name).filter(|v| !v.is_empty()) {
                cmd.env(name, v);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(answer)
            .stderr(Stdio::inherit())
            // Its own process group, so a kill reaches anything it started.
            .process_group(0);
        // SAFETY: the closure runs between fork and exec and only makes one
        // async-signal-safe system call with integer arguments.
        unsafe {
            // If the daemon dies, the dialog goes with it instead of
            // collecting a PIN for nobody.
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        // ETXTBSY: a just-written program still held open by another
        // thread's child between fork and exec; it passes within milliseconds.
        let mut spawned = cmd.spawn();
        for _ in 0..20 {
            match &spawned {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(10));
                    spawned = cmd.spawn();
                }
                _ => break,
            }
        }
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "cannot start the desktop prompt {}: {e}; denying",
                    self.program.display()
                );
                return None;
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            if let Err(e) = stdin.write_all(line.as_bytes()) {
                tracing::error!("cannot send the request to the desktop prompt: {e}; denying");
                kill(&mut child);
                return None;
            }
        }
        Some(child)
    }

    fn ask(&self, req: &PresenceRequest, fields: Fields, timeout: Duration, io: &dyn Interaction) -> Outcome {
        let needs_pin = fields.pin;
        let deadline = Instant::now() + timeout;
        let action = dialog_action(req.action);
        let Some(screen) = self.display() else {
            tracing::error!(
                action = ?action,
                rp = ?req.rp_id,
                "the desktop prompt cannot be shown: neither DISPLAY nor WAYLAND_DISPLAY is set; denying"
            );
            return Outcome::Denied;
        };
        let mut request = protocol::Request {
            action,
            rp_id: req.rp_id.clone(),
            user_name: req.user_name.clone(),
            needs_pin,
            retries: fields.retries,
            timeout_ms: timeout.as_millis() as u64,
            new_pin_min_length: fields.new_pin,
            message: None,
            accounts: req
                .accounts
                .iter()
                .map(|a| protocol::Account {
                    user_name: a.user_name.clone(),
                    display_name: a.display_name.clone(),
                })
                .collect(),
        };
        let mut line = request.to_line();
        if request.accounts.len() > protocol::MAX_ACCOUNTS || line.len() > protocol::MAX_REQUEST_BYTES {
            // The list is the site's to make long; the sign-in still works,
            // with the platform's chooser instead of ours.
            tracing::warn!(
                accounts = request.accounts.len(),
                bytes = line.len(),
                "too many or too long account names for the dialog's list; the platform will choose"
            );
            request.accounts.clear();
            line = request.to_line();
        }
        let offered = request.accounts.len();

        let Some(mut child) = self.start(&line, Stdio::piped()) else {
            return Outcome::Denied;
        };
        tracing::info!(action = ?action, rp = ?req.rp_id, needs_pin, accounts = offered, %screen, pid = child.id(), "desktop prompt shown");

        let (tx, rx) = mpsc::channel();
        let Some(mut stdout) = child.stdout.take() else {
            tracing::error!("the desktop prompt has no stdout; denying");
            kill(&mut child);
            return Outcome::Denied;
        };
        std::thread::spawn(move || {
            // Preallocated and zeroized on drop: the PIN is never copied by a
            // growing buffer and never left behind in freed memory.
            let mut buf = Zeroizing::new(vec![0u8; MAX_ANSWER_BYTES]);
            let mut n = 0;
            while n < buf.len() {
                match stdout.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            buf.truncate(n);
            let _ = tx.send(buf);
        });

        let answer = loop {
            match rx.recv_timeout(POLL) {
                Ok(bytes) => break bytes,
                Err(mpsc::RecvTimeoutError::Disconnected) => break Zeroizing::new(Vec::new()),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if io.is_cancelled() {
                kill(&mut child);
                tracing::info!(action = ?action, rp = ?req.rp_id, "desktop prompt closed: the platform cancelled");
                return Outcome::Cancelled;
            }
            if Instant::now() >= deadline {
                kill(&mut child);
                tracing::info!(action = ?action, rp = ?req.rp_id, "desktop prompt closed: nobody answered in time");
                return Outcome::TimedOut;
            }
        };
        // Its stdout is closed, so it is exiting; make sure, and reap it.
        let status = kill(&mut child);
        if answer.is_empty() {
            tracing::error!(
                "the desktop prompt ended without an answer ({}); denying",
                status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string())
            );
            return Outcome::Denied;
        }
        let outcome = parse_answer(&answer, fields, offered);
        let said = match &outcome {
            Outcome::Approved { .. } => "approved",
            Outcome::Denied => "denied",
            Outcome::TimedOut => "timed out",
            Outcome::Cancelled => "cancelled",
        };
        tracing::info!(action = ?action, rp = ?req.rp_id, "desktop prompt: {said}");
        outcome
    }
}

/// `offered`: how many accounts the request listed; an approval must then
/// pick one of them, and may pick none otherwise.
fn parse_answer(bytes: &[u8], fields: Fields, offered: usize) -> Outcome {
    let needs_pin = fields.pin;
    let parsed: protocol::Answer = match serde_json::from_slice(bytes) {
        Ok(a) => a,
        Err(e) => {
            // serde_json's message names a position, never the input.
            tracing::error!("the desktop prompt gave a malformed answer ({e}); denying");
            return Outcome::Denied;
        }
    };
    let chosen = parsed.chosen;
    let fits = match chosen {
        Some(i) => i < offered,
        None => offered == 0,
    };
    if parsed.answer == Kind::Approve && !fits {
        tracing::error!(
            offered,
            chosen,
            "the desktop prompt approved without picking one of the accounts it listed, or picked one it was not shown; denying"
        );
        return Outcome::Denied;
    }
    // A new PIN exactly when one was asked for; the dialog checked its
    // length, and the authenticator checks it again.
    let new_pin = parsed.new_pin.filter(|p| !p.is_empty());
    if parsed.answer == Kind::Approve && new_pin.is_some() != fields.new_pin.is_some() {
        tracing::error!(
            "the desktop prompt approved with a new PIN where none was asked for, or without one; denying"
        );
        return Outcome::Denied;
    }
    match (parsed.answer, parsed.pin) {
        (Kind::Approve, Some(pin)) if needs_pin && !pin.is_empty() => Outcome::Approved {
            pin: Some(pin),
            chosen,
            new_pin,
        },
        (Kind::Approve, None) if !needs_pin => Outcome::Approved {
            pin: None,
            chosen,
            new_pin,
        },
        (Kind::Approve, _) => {
            tracing::error!(
                needs_pin,
                "the desktop prompt approved with the wrong fields (a PIN exactly when one was asked for); denying"
            );
            Outcome::Denied
        }
        (Kind::Deny, _) => Outcome::Denied,
        (Kind::Timeout, _) => Outcome::TimedOut,
    }
}

/// Kills the dialog's whole process group and reaps the dialog.
fn kill(child: &mut Child) -> Option<std::process::ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill takes integers only. The group id is our child's pid,
        // which cannot be reused before we reap the child below.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = child.kill();
    child.wait().ok()
}

/// What the dialog needs from the graphical session.
const SESSION_VARS: [&str; 4] = ["WAYLAND_DISPLAY", "DISPLAY", "XAUTHORITY", "XDG_RUNTIME_DIR"];

/// A variable of the graphical session: our own environment first, else the
/// systemd user manager's. The user service starts at login, often before
/// the desktop has told the manager its DISPLAY or WAYLAND_DISPLAY, and a
/// running service never sees that later; asking the manager at each
/// request does.
fn session_var(name: &str) -> Option<OsString> {
    if let Some(v) = std::env::var_os(name).filter(|v| !v.is_empty()) {
        return Some(v);
    }
    let out = Command::new("systemctl")
        .args(["--user", "show-environment"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    manager_var(&String::from_utf8_lossy(&out.stdout), name).map(OsString::from)
}

/// `NAME=value` from `systemctl --user show-environment`; values it had to
/// quote (`$'...'`) are not display names and are skipped.
fn manager_var(listing: &str, name: &str) -> Option<String> {
    listing
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .filter(|v| !v.is_empty() && !v.starts_with("$'"))
        .map(str::to_owned)
}

/// `--presence desktop`: the dialog when there is a display at the moment of
/// the request, else pinentry (a terminal's), each time anew.
pub struct DesktopOrPinentry {
    pub desktop: DesktopPrompt,
    pub pinentry: crate::pinentry::Pinentry,
}

impl DesktopOrPinentry {
    fn pick(&mut self) -> &mut dyn UserPresence {
        if self.desktop.has_display() {
            &mut self.desktop
        } else {
            tracing::warn!(
                "no display (neither DISPLAY nor WAYLAND_DISPLAY) for the dialog: asking through pinentry"
            );
            &mut self.pinentry
        }
    }
}

impl UserPresence for DesktopOrPinentry {
    fn can_verify(&self) -> bool {
        true
    }

    /// Only the dialog lists accounts; should the display go before the
    /// request, pinentry approves without a pick and the platform chooses.
    fn can_choose(&self) -> bool {
        self.desktop.has_display()
    }

    fn request_presence(
        &mut self,
        req: &PresenceRequest,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Presence {
        self.pick().request_presence(req, timeout, io)
    }

    fn request_verification(
        &mut self,
        req: &PresenceRequest,
        retries: u8,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Verification {
        self.pick().request_verification(req, retries, timeout, io)
    }

    fn request_new_pin(
        &mut self,
        req: &PresenceRequest,
        current: bool,
        min_length: u8,
        retries: Option<u8>,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> NewPin {
        self.pick()
            .request_new_pin(req, current, min_length, retries, timeout, io)
    }

    fn report(&mut self, req: &PresenceRequest, message: &str) {
        self.pick().report(req, message)
    }
}

impl UserPresence for DesktopPrompt {
    fn can_verify(&self) -> bool {
        true
    }

    fn can_choose(&self) -> bool {
        true
    }

    fn request_presence(
        &mut self,
        req: &PresenceRequest,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Presence {
        match self.ask(req, Fields::default(), timeout, io) {
            Outcome::Approved { chosen, .. } => Presence::Approved { chosen },
            Outcome::Denied => Presence::Refused(Refusal::Denied),
            Outcome::TimedOut => Presence::Refused(Refusal::TimedOut),
            Outcome::Cancelled => Presence::Refused(Refusal::Cancelled),
        }
    }

    fn request_verification(
        &mut self,
        req: &PresenceRequest,
        retries: u8,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Verification {
        let fields = Fields {
            pin: true,
            retries: Some(retries),
            new_pin: None,
        };
        match self.ask(req, fields, timeout, io) {
            Outcome::Approved {
                pin: Some(pin),
                chosen,
                ..
            } => Verification::Pin { pin, chosen },
            Outcome::Approved { pin: None, .. } | Outcome::Denied => Verification::Refused(Refusal::Denied),
            Outcome::TimedOut => Verification::Refused(Refusal::TimedOut),
            Outcome::Cancelled => Verification::Refused(Refusal::Cancelled),
        }
    }

    fn request_new_pin(
        &mut self,
        req: &PresenceRequest,
        current: bool,
        min_length: u8,
        retries: Option<u8>,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> NewPin {
        let fields = Fields {
            pin: current,
            retries,
            new_pin: Some(min_length),
        };
        match self.ask(req, fields, timeout, io) {
            Outcome::Approved {
                pin,
                new_pin: Some(new),
                ..
            } => NewPin::Typed { current: pin, new },
            Outcome::Approved { .. } | Outcome::Denied => NewPin::Refused(Refusal::Denied),
            Outcome::TimedOut => NewPin::Refused(Refusal::TimedOut),
            Outcome::Cancelled => NewPin::Refused(Refusal::Cancelled),
        }
    }

    /// The dialog with the message and one button; not waited for (a
    /// thread reaps it, and closes it after [`REPORT_TIMEOUT`]).
    fn report(&mut self, req: &PresenceRequest, message: &str) {
        tracing::warn!(rp = ?req.rp_id, "telling the person: {message}");
        let line = protocol::Request {
            action: protocol::Action::Failed,
            rp_id: req.rp_id.clone(),
            user_name: req.user_name.clone(),
            needs_pin: false,
            retries: None,
            timeout_ms: REPORT_TIMEOUT.as_millis() as u64,
            accounts: Vec::new(),
            new_pin_min_length: None,
            message: Some(message.to_owned()),
        }
        .to_line();
        if self.display().is_none() {
            return;
        }
        let Some(mut child) = self.start(&line, Stdio::null()) else {
            return;
        };
        let reaper = std::thread::Builder::new()
            .name("prompt-report".into())
            .spawn(move || {
                let deadline = Instant::now() + REPORT_TIMEOUT;
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                kill(&mut child);
            });
        if let Err(e) = reaper {
            tracing::warn!("the failure message's dialog is not watched: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The daemon side against fake dialogs: tiny shell scripts that answer
    //! (or refuse to) the way a person, a crash or a hang would.
    use super::*;
    use lp_core::user::{KeepaliveStatus, NoInteraction};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    struct Fake {
        dir: tempfile::TempDir,
        prompt: DesktopPrompt,
    }

    /// A prompt whose program is `body` (a /bin/sh script). The script sees
    /// `$D`, a directory for what it wants the test to check.
    fn fake(body: &str) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake-prompt");
        let script = format!("#!/bin/sh\nD='{}'\n{body}\n", dir.path().display());
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut prompt = DesktopPrompt::with_program(path);
        prompt.env = Box::new(|name| (name == "DISPLAY").then(|| ":99".into()));
        Fake { dir, prompt }
    }

    fn sign_in() -> PresenceRequest {
        PresenceRequest {
            action: Action::SignIn,
            rp_id: "example.com".into(),
            user_name: Some("alice".into()),
            accounts: Vec::new(),
        }
    }

    const LONG: Duration = Duration::from_secs(20);

    /// The pid the fake wrote (atomically, by rename) when it started.
    fn pid_of(dir: &Path) -> i32 {
        let s = std::fs::read_to_string(dir.join("pid")).expect("the fake prompt never started");
        s.trim().parse().unwrap()
    }

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    #[test]
    fn approve_sends_the_request_and_gets_presence() {
        let mut f = fake(r#"read -r req; printf '%s\n' "$req" > "$D/req"; echo '{"answer":"approve"}'"#);
        let p = f.prompt.request_presence(&sign_in(), LONG, &NoInteraction);
        assert_eq!(p, Presence::APPROVED);
        let req: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.dir.path().join("req")).unwrap()).unwrap();
        assert_eq!(
            req,
            serde_json::json!({
                "action": "sign_in", "rp_id": "example.com", "user_name": "alice",
                "needs_pin": false, "retries": null, "timeout_ms": 20000
            })
        );
    }

    fn choosing(n: usize, name_len: usize) -> PresenceRequest {
        PresenceRequest {
            action: Action::SignIn,
            rp_id: "example.com".into(),
            user_name: None,
            accounts: (0..n)
                .map(|i| lp_core::user::AccountChoice {
                    user_name: Some(format!("user{i}{}", "x".repeat(name_len))),
                    display_name: (i == 0).then(|| "First".into()),
                })
                .collect(),
        }
    }

    #[test]
    fn a_list_of_accounts_goes_out_and_the_pick_comes_back() {
        let script = r#"read -r req; printf '%s\n' "$req" > "$D/req"; echo '{"answer":"approve","pin":"1234","chosen":1}'"#;
        let mut f = fake(script);
        match f
            .prompt
            .request_verification(&choosing(2, 0), 8, LONG, &NoInteraction)
        {
            Verification::Pin { pin, chosen } => assert_eq!((pin.as_str(), chosen), ("1234", Some(1))),
            other => panic!("{other:?}"),
        }
        let req: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.dir.path().join("req")).unwrap()).unwrap();
        assert_eq!(
            req["accounts"],
            serde_json::json!([{"user_name": "user0", "display_name": "First"}, {"user_name": "user1"}])
        );
        let mut f = fake(r#"read -r req; echo '{"answer":"approve","chosen":0}'"#);
        assert_eq!(
            f.prompt.request_presence(&choosing(3, 0), LONG, &NoInteraction),
            Presence::Approved { chosen: Some(0) }
        );
    }

    #[test]
    fn an_approval_must_pick_exactly_one_of_the_accounts_listed() {
        for (answer, accounts) in [
            (r#"{"answer":"approve"}"#, 2),
            (r#"{"answer":"approve","chosen":2}"#, 2),
            (r#"{"answer":"approve","chosen":18446744073709551615}"#, 2),
            (r#"{"answer":"approve","chosen":0}"#, 0),
        ] {
            let mut f = fake(&format!("read -r req; echo '{answer}'"));
            let req = if accounts == 0 {
                sign_in()
            } else {
                choosing(accounts, 0)
            };
            assert_eq!(
                f.prompt.request_presence(&req, LONG, &NoInteraction),
                Presence::Refused(Refusal::Denied),
                "{answer} to {accounts} accounts"
            );
        }
    }

    #[test]
    fn a_list_too_long_for_the_pipe_is_left_to_the_platform() {
        let script = r#"read -r req; printf '%s\n' "$req" > "$D/req"; echo '{"answer":"approve"}'"#;
        for (n, len) in [
            (protocol::MAX_ACCOUNTS + 1, 0),
            (8, protocol::MAX_REQUEST_BYTES / 8),
        ] {
            let mut f = fake(script);
            assert_eq!(
                f.prompt.request_presence(&choosing(n, len), LONG, &NoInteraction),
                Presence::APPROVED
            );
            let sent = std::fs::read_to_string(f.dir.path().join("req")).unwrap();
            assert!(!sent.contains("accounts"), "{} bytes sent", sent.len());
        }
    }

    #[test]
    fn deny_and_timeout_answers_are_passed_on() {
        let mut f = fake(r#"read -r req; echo '{"answer":"deny"}'"#);
        assert_eq!(
            f.prompt.request_presence(&sign_in(), LONG, &NoInteraction),
            Presence::Refused(Refusal::Denied)
        );
        let mut f = fake(r#"read -r req; echo '{"answer":"timeout"}'"#);
        assert_eq!(
            f.prompt.request_presence(&sign_in(), LONG, &NoInteraction),
            Presence::Refused(Refusal::TimedOut)
        );
        let mut f = fake(r#"read -r req; echo '{"answer":"deny"}'"#);
        assert!(matches!(
            f.prompt.request_verification(&sign_in(), 5, LONG, &NoInteraction),
            Verification::Refused(Refusal::Denied)
        ));
    }

    #[test]
    fn verification_returns_the_typed_pin_and_says_how_many_tries_are_left() {
        let mut f = fake(
            r#"read -r req; printf '%s\n' "$req" > "$D/req"; printf '%s\n' '{"answer":"approve","pin":"12 34\u00e9"}'"#,
        );
        let req = PresenceRequest {
            action: Action::Unlock,
            rp_id: "example.org".into(),
            user_name: None,
            accounts: Vec::new(),
        };
        match f.prompt.request_verification(&req, 3, LONG, &NoInteraction) {
            Verification::Pin { pin, .. } => assert_eq!(pin.as_str(), "12 34é"),
            other => panic!("{other:?}"),
        }
        let sent: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.dir.path().join("req")).unwrap()).unwrap();
        assert_eq!(sent["action"], "unlock");
        assert_eq!(sent["needs_pin"], true);
        assert_eq!(sent["retries"], 3);
        assert_eq!(sent["user_name"], serde_json::Value::Null);
    }

    #[test]
    fn wrong_or_missing_answers_deny() {
        for body in [
            // Crashed before answering.
            "read -r req; exit 3",
            // Garbage, an unknown word, two answers, a smuggled field.
            "read -r req; echo 'yes please'",
            r#"read -r req; echo '{"answer":"sure"}'"#,
            r#"read -r req; echo '{"answer":"deny"}'; echo '{"answer":"approve"}'"#,
            r#"read -r req; echo '{"answer":"approve","up":true}'"#,
            // A PIN where none was asked for.
            r#"read -r req; echo '{"answer":"approve","pin":"1234"}'"#,
        ] {
            let mut f = fake(body);
            assert_eq!(
                f.prompt.request_presence(&sign_in(), LONG, &NoInteraction),
                Presence::Refused(Refusal::Denied),
                "{body}"
            );
        }
        // Approval without the PIN that was asked for, or with an empty one.
        for body in [
            r#"read -r req; echo '{"answer":"approve"}'"#,
            r#"read -r req; echo '{"answer":"approve","pin":""}'"#,
        ] {
            let mut f = fake(body);
            assert!(
                matches!(
                    f.prompt.request_verification(&sign_in(), 8, LONG, &NoInteraction),
                    Verification::Refused(Refusal::Denied)
                ),
                "{body}"
            );
        }
    }

    fn change_pin() -> PresenceRequest {
        PresenceRequest {
            action: Action::ChangePin,
            rp_id: String::new(),
            user_name: None,
            accounts: Vec::new(),
        }
    }

    #[test]
    fn a_new_pin_is_asked_for_and_comes_back_only_when_asked() {
        let mut f = fake(
            r#"read -r req; printf '%s\n' "$req" > "$D/req"; echo '{"answer":"approve","pin":"1111","new_pin":"2222"}'"#,
        );
        match f
            .prompt
            .request_new_pin(&change_pin(), true, 6, Some(7), LONG, &NoInteraction)
        {
            NewPin::Typed { current, new } => {
                assert_eq!(current.as_deref().map(String::as_str), Some("1111"));
                assert_eq!(new.as_str(), "2222");
            }
            other => panic!("{other:?}"),
        }
        let sent: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(f.dir.path().join("req")).unwrap()).unwrap();
        assert_eq!(sent["action"], "change_pin");
        assert_eq!(sent["new_pin_min_length"], 6);
        assert_eq!(sent["needs_pin"], true);
        // No new PIN in the answer, or a current one that was not asked for.
        for body in [
            r#"read -r req; echo '{"answer":"approve","pin":"1111"}'"#,
            r#"read -r req; echo '{"answer":"approve","pin":"1111","new_pin":""}'"#,
        ] {
            let mut f = fake(body);
            assert!(
                matches!(
                    f.prompt
                        .request_new_pin(&change_pin(), true, 6, Some(7), LONG, &NoInteraction),
                    NewPin::Refused(Refusal::Denied)
                ),
                "{body}"
            );
        }
        let mut f = fake(r#"read -r req; echo '{"answer":"approve","pin":"1111","new_pin":"2222"}'"#);
        assert!(matches!(
            f.prompt
                .request_new_pin(&change_pin(), false, 6, None, LONG, &NoInteraction),
            NewPin::Refused(Refusal::Denied)
        ));
        // A sign-in's answer with a new PIN in it is not an approval either.
        let mut f = fake(r#"read -r req; echo '{"answer":"approve","new_pin":"2222"}'"#);
        assert_eq!(
            f.prompt.request_presence(&sign_in(), LONG, &NoInteraction),
            Presence::Refused(Refusal::Denied)
        );
    }

    #[test]
    fn a_report_is_shown_and_not_waited_for() {
        let mut f =
            fake(r#"read -r req; printf '%s\n' "$req" > "$D/req.tmp"; mv "$D/req.tmp" "$D/req"; sleep 30"#);
        let started = Instant::now();
        f.prompt.report(&sign_in(), "The disk is full.");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the report waited for the dialog"
        );
        let path = f.dir.path().join("req");
        while !path.exists() && started.elapsed() < LONG {
            std::thread::sleep(Duration::from_millis(20));
        }
        let sent: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(sent["action"], "failed");
        assert_eq!(sent["message"], "The disk is full.");
        assert_eq!(sent["rp_id"], "example.com");
    }

    #[test]
    fn a_missing_program_denies() {
        let mut p = DesktopPrompt::with_program("/nonexistent/localpasskey-prompt".into());
        p.env = Box::new(|name| (name == "DISPLAY").then(|| ":99".into()));
        assert_eq!(
            p.request_presence(&sign_in(), LONG, &NoInteraction),
            Presence::Refused(Refusal::Denied)
        );
    }

    #[test]
    fn without_a_display_nothing_is_started_and_the_request_is_denied() {
        let mut f = fake(r#"touch "$D/started"; read -r req; echo '{"answer":"approve"}'"#);
        f.prompt.env = Box::new(|_| None);
        assert_eq!(
            f.prompt.request_presence(&sign_in(), LONG, &NoInteraction),
            Presence::Refused(Refusal::Denied)
        );
        assert!(!f.dir.path().join("started").exists());
        // Wayland alone is enough.
        f.prompt.env = Box::new(|name| (name == "WAYLAND_DISPLAY").then(|| "wayland-0".into()));
        assert_eq!(
            f.prompt.request_presence(&sign_in(), LONG, &NoInteraction),
            Presence::APPROVED
        );
    }

    /// Cancels once the fake dialog is up (it wrote its pid) and `after` has passed.
    struct CancelWhenUp {
        dir: PathBuf,
        after: Instant,
    }

    impl Interaction for CancelWhenUp {
        fn is_cancelled(&self) -> bool {
            Instant::now() >= self.after && self.dir.join("pid").exists()
        }
        fn set_status(&self, _: KeepaliveStatus) {}
    }

    /// The fake starts a grandchild too (as a toolkit might): the whole
    /// process group must go.
    const HANG: &str = r#"sleep 60 & echo $! > "$D/grandchild"; echo $$ > "$D/pid.tmp"; mv "$D/pid.tmp" "$D/pid"; read -r req; exec sleep 60"#;

    #[test]
    fn cancel_kills_the_dialog_and_everything_it_started() {
        let mut f = fake(HANG);
        let io = CancelWhenUp {
            dir: f.dir.path().to_owned(),
            after: Instant::now() + Duration::from_millis(200),
        };
        let start = Instant::now();
        let p = f.prompt.request_presence(&sign_in(), LONG, &io);
        let took = start.elapsed();
        assert_eq!(p, Presence::Refused(Refusal::Cancelled));
        assert!(took < Duration::from_secs(5), "took {took:?}");
        let dir = f.dir.path();
        let grandchild: i32 = std::fs::read_to_string(dir.join("grandchild"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!alive(pid_of(dir)), "the dialog survived the cancel");
        // The grandchild is not ours to reap: wait until init has.
        let gone = (0..300).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !alive(grandchild)
        });
        assert!(gone, "a process the dialog started survived the cancel");
    }

    #[test]
    fn cancel_is_honoured_while_asking_for_a_pin() {
        let mut f = fake(HANG);
        let io = CancelWhenUp {
            dir: f.dir.path().to_owned(),
            after: Instant::now(),
        };
        assert!(matches!(
            f.prompt.request_verification(&sign_in(), 8, LONG, &io),
            Verification::Refused(Refusal::Cancelled)
        ));
        assert!(!alive(pid_of(f.dir.path())));
    }

    #[test]
    fn timeout_kills_a_dialog_that_does_not_answer() {
        let mut f = fake(HANG);
        let start = Instant::now();
        let p = f
            .prompt
            .request_presence(&sign_in(), Duration::from_millis(1000), &NoInteraction);
        let took = start.elapsed();
        assert_eq!(p, Presence::Refused(Refusal::TimedOut));
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_secs(5),
            "took {took:?}"
        );
        assert!(!alive(pid_of(f.dir.path())));

        let mut f = fake(HANG);
        assert!(matches!(
            f.prompt
                .request_verification(&sign_in(), 8, Duration::from_millis(100), &NoInteraction),
            Verification::Refused(Refusal::TimedOut)
        ));
    }

    /// Collects what the log subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log lines `run` writes while `f` asks for presence, once at
    /// least `lines` of them came.
    ///
    /// Tried again (up to ten times) when fewer came: with the other tests
    /// of this binary logging from their threads at the same moment,
    /// tracing's per-call-site cache can switch an event off for this
    /// scoped subscriber. A forged line would make more lines, never fewer,
    /// so retrying on too few hides nothing the test is about.
    fn logged(f: &mut Fake, req: &PresenceRequest, lines: usize) -> String {
        let mut out = String::new();
        for _ in 0..10 {
            let capture = Capture::default();
            let writer = capture.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                f.prompt.request_presence(req, LONG, &NoInteraction);
            });
            let bytes = capture.0.lock().unwrap().clone();
            out = String::from_utf8(bytes).unwrap();
            if out.lines().count() >= lines {
                break;
            }
        }
        out
    }

    #[test]
    fn an_rp_id_cannot_forge_log_lines() {
        let req = PresenceRequest {
            action: Action::SignIn,
            rp_id: "evil.example\n2030-01-01T00:00:00Z  INFO forged\r\u{1b}[2J\u{202E}moc".into(),
            user_name: Some("alice".into()),
            accounts: Vec::new(),
        };
        let escaped = r#"rp="evil.example\n2030-01-01T00:00:00Z  INFO forged\r\u{1b}[2J\u{202e}moc""#;
        // Shown and answered: two lines.
        let mut f = fake(r#"read -r req; echo '{"answer":"deny"}'"#);
        let out = logged(&mut f, &req, 2);
        assert_eq!(out.lines().count(), 2, "{out}");
        assert_eq!(out.matches(escaped).count(), 2, "{out}");
        // No display: one line.
        f.prompt.env = Box::new(|_| None);
        let out = logged(&mut f, &req, 1);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains(escaped), "{out}");
        assert!(!out.contains(['\r', '\u{1b}', '\u{202E}']), "{out:?}");
    }

    #[test]
    fn display_variables_from_the_user_manager() {
        let listing = "HOME=/home/a\nDISPLAY=:0\nWAYLAND_DISPLAY=wayland-0\nODD=$'a\\nb'\nEMPTY=\n";
        assert_eq!(manager_var(listing, "DISPLAY").as_deref(), Some(":0"));
        assert_eq!(
            manager_var(listing, "WAYLAND_DISPLAY").as_deref(),
            Some("wayland-0")
        );
        assert_eq!(manager_var(listing, "ODD"), None);
        assert_eq!(manager_var(listing, "EMPTY"), None);
        assert_eq!(manager_var(listing, "XAUTHORITY"), None);
        // A name that is only the start of another is not it.
        assert_eq!(manager_var("DISPLAYX=1\n", "DISPLAY"), None);
    }

    #[test]
    fn locate_honours_the_environment_variable() {
        let f = fake("exit 0");
        let path = f.prompt.program.clone();
        // The only test that touches this variable.
        std::env::set_var(PROMPT_ENV, &path);
        let found = DesktopPrompt::locate().map(|p| p.program);
        std::env::set_var(PROMPT_ENV, "/nonexistent/prompt");
        let missing = DesktopPrompt::locate();
        std::env::remove_var(PROMPT_ENV);
        assert_eq!(found.unwrap(), path);
        assert!(missing.is_err());
    }
}
