//! `--presence pinentry`: asks the person through a `pinentry` program (the
//! dialog GnuPG uses), for desktops without our own dialog and as its
//! fallback. Honours `PINENTRY_PROGRAM`; default `pinentry`.
//!
//! pinentry speaks the Assuan protocol on its stdin/stdout: we set a title, a
//! description naming the RP ID (what the browser verified, never only the
//! RP's own name), the account and the action, then `CONFIRM` (presence: the
//! person must press Allow) or `GETPIN` (verification: the PIN is the
//! person's presence too). The dialog is killed when the platform cancels or
//! the CTAP timeout passes. Nothing is ever approved without an answer from
//! the dialog, and the PIN is never logged.

use lp_core::user::{
    Action, Interaction, KeepaliveStatus, NewPin, Presence, PresenceRequest, Refusal, UserPresence,
    Verification,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

#[path = "../../localpasskey-prompt/src/display_text.rs"]
mod display_text;
use display_text::{displayable, MAX_RP_ID_CHARS, MAX_USER_NAME_CHARS, NON_ASCII_RP_ID_WARNING};

/// Assuan error codes pinentry answers with (gpg-error: GPG_ERR_SOURCE_PINENTRY
/// << 24 | code): 99 canceled, 62 timeout, 83886179/83886142 in full.
const GPG_ERR_CANCELED: u32 = 99;
const GPG_ERR_TIMEOUT: u32 = 62;

/// How long a failure message stays up unless the person closes it.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Pinentry {
    program: String,
}

impl Pinentry {
    /// `program`: PINENTRY_PROGRAM if set, else `pinentry`.
    pub fn new(program: Option<String>) -> Self {
        let program = program
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "pinentry".into());
        Self { program }
    }

    pub fn from_env() -> Self {
        Self::new(std::env::var("PINENTRY_PROGRAM").ok())
    }

    pub fn program(&self) -> &str {
        &self.program
    }
}

/// Percent-escape an Assuan parameter (%, CR, LF and other controls).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' | '\r' | '\n' => out.push_str(&format!("%{:02X}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Decode a percent-escaped Assuan data line.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// libassuan's line limit (`ASSUAN_LINELENGTH` less CR LF): pinentry
/// refuses a longer line, and a refused SETDESC would leave the person asked
/// for the PIN without being told which site wants it.
const MAX_LINE: usize = 1000;

/// The request's text as pinentry shows it, sanitised by the dialog's rules.
struct Shown {
    rp_id: String,
    user: Option<String>,
}

impl Shown {
    /// `shrink` halves the dialog's length limits that many times: a limit
    /// in characters is not one in bytes, and escapes are up to 9 bytes.
    fn new(req: &PresenceRequest, shrink: u32) -> Self {
        Self {
            rp_id: displayable(&req.rp_id, MAX_RP_ID_CHARS >> shrink),
            user: req
                .user_name
                .as_deref()
                .map(|u| displayable(u, MAX_USER_NAME_CHARS >> shrink)),
        }
    }
}

fn title(req: &PresenceRequest, shown: &Shown) -> String {
    match req.action {
        Action::Reset => "LocalPasskey: erase all passkeys?".to_string(),
        _ if req.rp_id.is_empty() => "LocalPasskey".to_string(),
        _ => format!("LocalPasskey: {}", shown.rp_id),
    }
}

/// What the person is shown: the RP ID first, since that is what the
/// browser checked.
fn description(req: &PresenceRequest, shown: &Shown, retries: Option<u8>) -> String {
    let mut d = match req.action {
        Action::Reset => "A program asks to ERASE ALL PASSKEYS on this computer.".to_string(),
        Action::Select => {
            "A program asks to use this computer's passkeys (select this security key).".to_string()
        }
        _ if req.rp_id.is_empty() => format!("A program asks to {}.", req.action.describe()),
        _ => format!("{} asks to {}.", shown.rp_id, req.action.describe()),
    };
    if !req.rp_id.is_empty() {
        d.push_str(&format!("\n\nSite (RP ID): {}", shown.rp_id));
        if !req.rp_id.is_ascii() {
            d.push_str(&format!("\n{NON_ASCII_RP_ID_WARNING}"));
        }
    }
    if let Some(user) = &shown.user {
        d.push_str(&format!("\nAccount: {user}"));
    }
    if let Some(r) = retries {
        d.push_str(&format!("\n\nEnter your LocalPasskey PIN ({r} tries left)."));
    } else {
        d.push_str("\n\nAllow only if you started this yourself.");
    }
    d
}

/// An Assuan command with a text parameter, if it fits on one line.
fn text_command(command: &str, text: &str) -> Option<String> {
    let line = format!("{command} {}", escape(text));
    (line.len() <= MAX_LINE).then_some(line)
}

/// The SETTITLE and SETDESC lines: with the dialog's length limits when they
/// fit, else with tighter ones (each cut still says how much is hidden). At
/// the tightest, 16 characters of RP ID and 8 of user name, the worst case
/// (every character a 9-byte escape) is well under the limit.
fn title_and_description(req: &PresenceRequest, retries: Option<u8>) -> std::io::Result<(String, String)> {
    (0..=4)
        .find_map(|shrink| {
            let shown = Shown::new(req, shrink);
            Some((
                text_command("SETTITLE", &title(req, &shown))?,
                text_command("SETDESC", &description(req, &shown, retries))?,
            ))
        })
        .ok_or_else(|| std::io::Error::other("the request's text does not fit a pinentry line"))
}

enum Reply {
    Ok,
    Data(Zeroizing<Vec<u8>>),
    Err(u32),
}

struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    fn start(program: &str) -> std::io::Result<Self> {
        // Its own process group, so a kill reaches whatever it started too.
        let spawn = || {
            Command::new(program)
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
        };
        // ETXTBSY: the program was just written and another thread's child,
        // between fork and exec, still holds it open for writing. It passes
        // within milliseconds; a refusal here would deny the person's request.
        let mut child = spawn();
        for _ in 0..20 {
            match &child {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    child = spawn();
                }
                _ => break,
            }
        }
        let mut child = child?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| std::io::Error::other("no stdout"))?,
        );
        let mut s = Self { child, stdin, stdout };
        match s.read_reply()? {
            Reply::Ok => Ok(s),
            _ => Err(std::io::Error::other("pinentry did not greet with OK")),
        }
    }

    /// Read until OK or ERR, collecting D lines; comments and status lines skipped.
    fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut data: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
        let mut got_data = false;
        loop {
            let mut line = Zeroizing::new(String::new());
            if self.stdout.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("pinentry closed its output"));
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l == "OK" || l.starts_with("OK ") {
                return Ok(if got_data { Reply::Data(data) } else { Reply::Ok });
            } else if let Some(rest) = l.strip_prefix("ERR ") {
                let code = rest
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse::<u32>().ok())
                    .unwrap_or(0);
                return Ok(Reply::Err(code & 0xffff));
            } else if let Some(d) = l.strip_prefix("D ") {
                data.extend_from_slice(&unescape(d));
                got_data = true;
            }
            // "S ...", "# ..." and INQUIRE (answered by nothing we send) are skipped.
        }
    }

    fn command(&mut self, line: &str) -> std::io::Result<Reply> {
        self.stdin.write_all(line.as_bytes())?;
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()?;
        self.read_reply()
    }

    fn setup(
        &mut self,
        req: &PresenceRequest,
        retries: Option<u8>,
        timeout: Duration,
    ) -> std::io::Result<()> {
        let (title, desc) = title_and_description(req, retries)?;
        // Options a pinentry does not know are answered with ERR: ignore
        // them, except the description, without which the person would not
        // know what they allow.
        self.command(&title)?;
        if !matches!(self.command(&desc)?, Reply::Ok) {
            return Err(std::io::Error::other(
                "pinentry refused the description (the site and the account)",
            ));
        }
        self.command(&format!("SETTIMEOUT {}", timeout.as_secs().max(1)))?;
        Ok(())
    }
}

/// Run `talk` against a fresh pinentry while watching for cancel and the
/// deadline; the dialog is killed on either. Returns `None` if the platform
/// cancelled, `Some(Err)` on timeout or when pinentry could not be run.
fn with_dialog<T: Send>(
    program: &str,
    timeout: Duration,
    io: &dyn Interaction,
    talk: impl FnOnce(&mut Session) -> std::io::Result<T> + Send,
) -> Result<T, Outcome> {
    io.set_status(KeepaliveStatus::UpNeeded);
    let mut session = match Session::start(program) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "cannot run the pinentry program {program:?}: {e}; set PINENTRY_PROGRAM \
                 (e.g. pinentry-gnome3) or install pinentry. Request refused."
            );
            return Err(Outcome::Failed);
        }
    };
    let pid = session.child.id();
    let done = AtomicBool::new(false);
    let killed_for = std::sync::Mutex::new(None::<Outcome>);
    let deadline = Instant::now() + timeout;
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let why = if io.is_cancelled() {
                    Some(Outcome::Cancelled)
                } else if Instant::now() >= deadline {
                    Some(Outcome::TimedOut)
                } else {
                    None
                };
                if let Some(why) = why {
                    *killed_for.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                    kill(pid);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let r = talk(&mut session);
        done.store(true, Ordering::SeqCst);
        r
    });
    if killed_for.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
        let _ = session.command("BYE");
    }
    let _ = session.child.kill();
    let _ = session.child.wait();
    if let Some(why) = killed_for.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(why);
    }
    result.map_err(|e| {
        tracing::error!("pinentry {program:?} failed: {e}; request refused");
        Outcome::Failed
    })
}

fn kill(pid: u32) {
    // SAFETY: kill(2) takes plain integers. The target is the process group
    // our child leads (process_group(0)); the child is not yet reaped (we wait
    // for it only after this watcher has ended), so the id cannot be reused.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGTERM);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Cancelled,
    TimedOut,
    Failed,
}

impl UserPresence for Pinentry {
    fn request_presence(
        &mut self,
        req: &PresenceRequest,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Presence {
        tracing::info!(rp = ?req.rp_id, action = req.action.describe(), "asking through pinentry (presence)");
        let r = with_dialog(&self.program, timeout, io, |s| {
            s.setup(req, None, timeout)?;
            s.command("SETOK Allow")?;
            s.command("SETCANCEL Deny")?;
            s.command("CONFIRM")
        });
        match r {
            Ok(Reply::Ok) | Ok(Reply::Data(_)) => Presence::APPROVED,
            Ok(Reply::Err(GPG_ERR_TIMEOUT)) | Err(Outcome::TimedOut) => Presence::Refused(Refusal::TimedOut),
            Ok(Reply::Err(_)) | Err(Outcome::Failed) => Presence::Refused(Refusal::Denied),
            Err(Outcome::Cancelled) => Presence::Refused(Refusal::Cancelled),
        }
    }

    fn can_verify(&self) -> bool {
        true
    }

    fn request_verification(
        &mut self,
        req: &PresenceRequest,
        retries: u8,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Verification {
        tracing::info!(rp = ?req.rp_id, action = req.action.describe(), "asking through pinentry (PIN)");
        let r = with_dialog(&self.program, timeout, io, |s| {
            s.setup(req, Some(retries), timeout)?;
            s.command("SETPROMPT PIN:")?;
            s.command("SETOK Allow")?;
            s.command("SETCANCEL Deny")?;
            s.command("GETPIN")
        });
        match r {
            Ok(Reply::Data(pin)) => match String::from_utf8(pin.to_vec()) {
                Ok(p) if !p.is_empty() => Verification::pin(Zeroizing::new(p)),
                _ => Verification::Refused(Refusal::Denied),
            },
            // OK with no data: an empty PIN, which is no answer.
            Ok(Reply::Ok) => Verification::Refused(Refusal::Denied),
            Ok(Reply::Err(GPG_ERR_TIMEOUT)) | Err(Outcome::TimedOut) => {
                Verification::Refused(Refusal::TimedOut)
            }
            Ok(Reply::Err(GPG_ERR_CANCELED)) | Ok(Reply::Err(_)) | Err(Outcome::Failed) => {
                Verification::Refused(Refusal::Denied)
            }
            Err(Outcome::Cancelled) => Verification::Refused(Refusal::Cancelled),
        }
    }

    /// pinentry's MESSAGE dialog, on a thread of its own so the platform's
    /// answer is not held up; it closes itself after a minute.
    fn report(&mut self, req: &PresenceRequest, message: &str) {
        tracing::warn!(rp = ?req.rp_id, "telling the person: {message}");
        let (program, req, message) = (self.program.clone(), req.clone(), message.to_owned());
        let spawned = std::thread::Builder::new()
            .name("pinentry-report".into())
            .spawn(move || {
                let shown = with_dialog(&program, REPORT_TIMEOUT, &lp_core::user::NoInteraction, |s| {
                    let (title, _) = title_and_description(&req, None)?;
                    s.command(&title)?;
                    let desc = text_command("SETDESC", &message)
                        .ok_or_else(|| std::io::Error::other("the message does not fit a pinentry line"))?;
                    s.command(&desc)?;
                    s.command(&format!("SETTIMEOUT {}", REPORT_TIMEOUT.as_secs()))?;
                    s.command("MESSAGE")
                });
                if shown.is_err() {
                    tracing::debug!("the failure message was not shown through pinentry");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot show the failure message: {e}");
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
        tracing::info!(
            action = req.action.describe(),
            "asking through pinentry (new PIN)"
        );
        let r = with_dialog(&self.program, timeout, io, |s| {
            s.setup(req, retries, timeout)?;
            Self::new_pin_dialog(s, current, min_length)
        });
        match r {
            Ok(Ok((current, new))) => NewPin::Typed { current, new },
            Ok(Err(Reply::Err(GPG_ERR_TIMEOUT))) | Err(Outcome::TimedOut) => {
                NewPin::Refused(Refusal::TimedOut)
            }
            Ok(Err(_)) | Err(Outcome::Failed) => NewPin::Refused(Refusal::Denied),
            Err(Outcome::Cancelled) => NewPin::Refused(Refusal::Cancelled),
        }
    }
}

/// A PIN out of a GETPIN answer, or the reply that is not one.
fn typed_pin(reply: Reply) -> Result<Zeroizing<String>, Reply> {
    match reply {
        Reply::Data(pin) => match String::from_utf8(pin.to_vec()) {
            Ok(p) if !p.is_empty() => Ok(Zeroizing::new(p)),
            _ => Err(Reply::Ok),
        },
        other => Err(other),
    }
}

type NewPinReply = Result<(Option<Zeroizing<String>>, Zeroizing<String>), Reply>;

impl Pinentry {
    /// The current PIN (if asked) and the new one twice, in one dialog.
    /// pinentry compares the two itself when it knows SETREPEAT; otherwise
    /// we ask again and compare.
    fn new_pin_dialog(s: &mut Session, current: bool, min_length: u8) -> std::io::Result<NewPinReply> {
        s.command("SETOK OK")?;
        s.command("SETCANCEL Cancel")?;
        let current = if current {
            s.command("SETPROMPT Current PIN:")?;
            match typed_pin(s.command("GETPIN")?) {
                Ok(p) => Some(p),
                Err(r) => return Ok(Err(r)),
            }
        } else {
            None
        };
        s.command(&format!("SETPROMPT New PIN (at least {min_length} characters):"))?;
        let repeats = matches!(s.command("SETREPEAT Repeat the new PIN:")?, Reply::Ok);
        if repeats {
            s.command("SETREPEATERROR The two PINs differ")?;
        }
        let new = match typed_pin(s.command("GETPIN")?) {
            Ok(p) => p,
            Err(r) => return Ok(Err(r)),
        };
        if !repeats {
            s.command("SETPROMPT Repeat the new PIN:")?;
            match typed_pin(s.command("GETPIN")?) {
                Ok(again) if again == new => {}
                Ok(_) => {
                    tracing::info!("the two new PINs typed into pinentry differ; nothing changed");
                    return Ok(Err(Reply::Ok));
                }
                Err(r) => return Ok(Err(r)),
            }
        }
        Ok(Ok((current, new)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lp_core::user::NoInteraction;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// A fake pinentry: logs every line it is sent byte for byte, answers
    /// OK, and answers GETPIN and CONFIRM as its script file says.
    fn fake(dir: &Path, getpin: &str, confirm: &str) -> String {
        let log = dir.join("log");
        let path = dir.join("pinentry");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho 'OK Pleased to meet you'\n\
                 while IFS= read -r line; do\n\
                   printf '%s\\n' \"$line\" >> '{log}'\n\
                   case \"${{line%% *}}\" in\n\
                     GETPIN) {getpin} ;;\n\
                     CONFIRM) {confirm} ;;\n\
                     BYE) echo OK; exit 0 ;;\n\
                     *) echo OK ;;\n\
                   esac\n\
                 done\n",
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn req() -> PresenceRequest {
        PresenceRequest {
            action: Action::SignIn,
            rp_id: "example.com".into(),
            user_name: Some("alice".into()),
            accounts: Vec::new(),
        }
    }

    #[test]
    fn getpin_returns_the_pin_and_shows_rp_user_action() {
        let dir = tempfile::tempdir().unwrap();
        let prog = fake(dir.path(), "echo 'D 12%2534'; echo OK", "echo OK");
        let mut p = Pinentry::new(Some(prog));
        let v = p.request_verification(&req(), 7, Duration::from_secs(10), &NoInteraction);
        match v {
            Verification::Pin { pin, .. } => assert_eq!(pin.as_str(), "12%34"),
            other => panic!("{other:?}"),
        }
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert!(
            log.contains(
                "SETDESC example.com asks to sign in.%0A%0ASite (RP ID): example.com%0AAccount: alice"
            ),
            "{log}"
        );
        assert!(log.contains("7 tries left"), "{log}");
        assert!(log.contains("SETPROMPT PIN:"), "{log}");
        assert!(log.contains("SETTITLE LocalPasskey: example.com"), "{log}");
    }

    /// A fake pinentry that answers the n-th GETPIN with `pins[n]` and
    /// SETREPEAT with `repeat` ("OK", or an ERR line for one that lacks it).
    fn fake_new_pin(dir: &Path, pins: &[&str], repeat: &str) -> String {
        let log = dir.join("log");
        let path = dir.join("pinentry");
        let answers: String = pins
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}) echo 'D {p}'; echo OK ;; ", i + 1))
            .collect();
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho 'OK Pleased to meet you'\nn=0\n\
                 while IFS= read -r line; do\n\
                   printf '%s\\n' \"$line\" >> '{log}'\n\
                   case \"${{line%% *}}\" in\n\
                     GETPIN) n=$((n+1)); case $n in {answers} *) echo 'ERR 83886179 canceled' ;; esac ;;\n\
                     SETREPEAT) echo '{repeat}' ;;\n\
                     BYE) echo OK; exit 0 ;;\n\
                     *) echo OK ;;\n\
                   esac\n\
                 done\n",
                log = log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn new_pin_req(action: Action) -> PresenceRequest {
        PresenceRequest {
            action,
            rp_id: String::new(),
            user_name: None,
            accounts: Vec::new(),
        }
    }

    #[test]
    fn new_pin_with_a_pinentry_that_repeats_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pinentry::new(Some(fake_new_pin(dir.path(), &["1111", "2222"], "OK")));
        let t = Duration::from_secs(10);
        match p.request_new_pin(
            &new_pin_req(Action::ChangePin),
            true,
            4,
            Some(7),
            t,
            &NoInteraction,
        ) {
            NewPin::Typed { current, new } => {
                assert_eq!(current.as_deref().map(String::as_str), Some("1111"));
                assert_eq!(new.as_str(), "2222");
            }
            other => panic!("{other:?}"),
        }
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert!(log.contains("SETPROMPT Current PIN:"), "{log}");
        assert!(
            log.contains("SETPROMPT New PIN (at least 4 characters):"),
            "{log}"
        );
        assert!(log.contains("SETREPEATERROR"), "{log}");
        assert!(log.contains("7 tries left"), "{log}");
        assert!(log.contains("asks to change the PIN"), "{log}");
    }

    #[test]
    fn new_pin_typed_twice_when_pinentry_cannot_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(10);
        let no_repeat = "ERR 536871187 Unknown IPC command";
        let mut p = Pinentry::new(Some(fake_new_pin(dir.path(), &["5678", "5678"], no_repeat)));
        match p.request_new_pin(&new_pin_req(Action::SetPin), false, 4, None, t, &NoInteraction) {
            NewPin::Typed { current, new } => assert!(current.is_none() && new.as_str() == "5678"),
            other => panic!("{other:?}"),
        }
        // Two different PINs: nothing is set.
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pinentry::new(Some(fake_new_pin(dir.path(), &["5678", "8765"], no_repeat)));
        assert!(matches!(
            p.request_new_pin(&new_pin_req(Action::SetPin), false, 4, None, t, &NoInteraction),
            NewPin::Refused(Refusal::Denied)
        ));
        // Cancel at the first field.
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pinentry::new(Some(fake_new_pin(dir.path(), &[], "OK")));
        assert!(matches!(
            p.request_new_pin(
                &new_pin_req(Action::ChangePin),
                true,
                4,
                Some(8),
                t,
                &NoInteraction
            ),
            NewPin::Refused(Refusal::Denied)
        ));
    }

    #[test]
    fn confirm_allow_deny_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pinentry::new(Some(fake(dir.path(), "echo OK", "echo OK")));
        assert_eq!(
            p.request_presence(&req(), Duration::from_secs(10), &NoInteraction),
            Presence::APPROVED
        );
        let mut p = Pinentry::new(Some(fake(
            dir.path(),
            "echo OK",
            "echo 'ERR 83886179 Operation cancelled'",
        )));
        assert_eq!(
            p.request_presence(&req(), Duration::from_secs(10), &NoInteraction),
            Presence::Refused(Refusal::Denied)
        );
        let mut p = Pinentry::new(Some(fake(dir.path(), "echo 'ERR 83886179 cancelled'", "echo OK")));
        assert!(matches!(
            p.request_verification(&req(), 8, Duration::from_secs(10), &NoInteraction),
            Verification::Refused(Refusal::Denied)
        ));
        // Nobody answers: the dialog is killed at the deadline.
        let mut p = Pinentry::new(Some(fake(dir.path(), "sleep 30", "sleep 30")));
        let t = Instant::now();
        assert_eq!(
            p.request_presence(&req(), Duration::from_millis(300), &NoInteraction),
            Presence::Refused(Refusal::TimedOut)
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    struct CancelSoon(Instant);
    impl Interaction for CancelSoon {
        fn is_cancelled(&self) -> bool {
            self.0.elapsed() > Duration::from_millis(200)
        }
        fn set_status(&self, _: KeepaliveStatus) {}
    }

    #[test]
    fn cancel_kills_the_dialog_and_a_missing_program_denies() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pinentry::new(Some(fake(dir.path(), "sleep 30", "sleep 30")));
        let v = p.request_verification(&req(), 8, Duration::from_secs(20), &CancelSoon(Instant::now()));
        assert!(matches!(v, Verification::Refused(Refusal::Cancelled)), "{v:?}");
        let mut p = Pinentry::new(Some("/nonexistent/pinentry".into()));
        assert_eq!(
            p.request_presence(&req(), Duration::from_secs(1), &NoInteraction),
            Presence::Refused(Refusal::Denied)
        );
    }

    /// The lines a fake pinentry got, exactly as sent (without the LF).
    fn sent_lines(dir: &Path) -> Vec<Vec<u8>> {
        let log = std::fs::read(dir.join("log")).unwrap();
        let mut lines: Vec<Vec<u8>> = log.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        assert_eq!(lines.pop(), Some(vec![]), "the log ends with a newline");
        lines
    }

    /// What the Assuan protocol allows on a line: no control bytes (a CR or
    /// LF would end the line and start a command of the sender's choosing),
    /// `%` only as the start of an escape, at most [`MAX_LINE`] bytes.
    fn assert_wire_safe(line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        assert!(line.len() <= MAX_LINE, "{} bytes: {text}", line.len());
        assert!(
            !line.iter().any(|&b| b < 0x20 || b == 0x7f),
            "control byte in {text:?}"
        );
        for (i, _) in line.iter().enumerate().filter(|(_, &b)| b == b'%') {
            let esc = line.get(i + 1..i + 3).unwrap_or_default();
            assert!(
                esc.len() == 2 && esc.iter().all(u8::is_ascii_hexdigit),
                "bare % at {i} in {text:?}"
            );
        }
        // No bidi override, raw or smuggled as an escape.
        assert!(!text.contains('\u{202E}'), "U+202E in {text:?}");
        assert!(
            !unescape(&text).windows(3).any(|w| w == "\u{202E}".as_bytes()),
            "{text:?}"
        );
        // No C1 control (CSI, U+009B), which a terminal pinentry would obey.
        assert!(!text.contains('\u{9B}'), "{text:?}");
    }

    fn hostile(rp_id: &str, user: &str) -> PresenceRequest {
        PresenceRequest {
            action: Action::SignIn,
            rp_id: rp_id.into(),
            user_name: Some(user.into()),
            accounts: Vec::new(),
        }
    }

    #[test]
    fn hostile_rp_id_and_user_name_reach_pinentry_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let prog = fake(dir.path(), "echo 'D 1234'; echo OK", "echo OK");
        let rp = "evil.example\nSETOK Allow\r%0A\u{1b}[2J\u{202E}moc.elgoog";
        let user = "bob\n\nSite (RP ID): google.com\u{9b}31m%";
        let mut p = Pinentry::new(Some(prog));
        let v = p.request_verification(&hostile(rp, user), 5, Duration::from_secs(10), &NoInteraction);
        assert!(matches!(v, Verification::Pin { .. }), "{v:?}");
        let lines = sent_lines(dir.path());
        for l in &lines {
            assert_wire_safe(l);
        }
        let shown_rp = "evil.example\\u{000A}SETOK Allow\\u{000D}%250A\\u{001B}[2J\\u{202E}moc.elgoog";
        let shown_user = "bob\\u{000A}\\u{000A}Site (RP ID): google.com\\u{009B}31m%25";
        let expected: Vec<Vec<u8>> = [
            format!("SETTITLE LocalPasskey: {shown_rp}"),
            format!(
                "SETDESC {shown_rp} asks to sign in.%0A%0ASite (RP ID): {shown_rp}%0A\
                 {NON_ASCII_RP_ID_WARNING}%0AAccount: {shown_user}%0A%0AEnter your LocalPasskey PIN (5 tries left)."
            ),
            "SETTIMEOUT 10".into(),
            "SETPROMPT PIN:".into(),
            "SETOK Allow".into(),
            "SETCANCEL Deny".into(),
            "GETPIN".into(),
            "BYE".into(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect();
        let readable: Vec<_> = lines.iter().map(|l| String::from_utf8_lossy(l)).collect();
        assert_eq!(lines, expected, "{readable:#?}");
    }

    #[test]
    fn ten_kilobytes_of_text_are_cut_to_fit_one_line_and_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let prog = fake(dir.path(), "echo 'D 1234'; echo OK", "echo OK");
        let cases = [
            ("a".repeat(10_000), "b".repeat(10_000)),
            ("%".repeat(10_000), "\n".repeat(10_000)),
            ("\u{202E}".repeat(10_000), "\u{E0001}".repeat(10_000)),
            (format!("{}.example", "é".repeat(10_000)), "\u{1b}".repeat(10_000)),
        ];
        for (rp, user) in &cases {
            let mut p = Pinentry::new(Some(prog.clone()));
            let v = p.request_verification(&hostile(rp, user), 8, Duration::from_secs(10), &NoInteraction);
            assert!(matches!(v, Verification::Pin { .. }), "{v:?}");
            let lines = sent_lines(dir.path());
            std::fs::remove_file(dir.path().join("log")).unwrap();
            for l in &lines {
                assert_wire_safe(l);
            }
            let title = String::from_utf8(lines[0].clone()).unwrap();
            let desc = String::from_utf8(lines[1].clone()).unwrap();
            assert!(title.starts_with("SETTITLE LocalPasskey: "), "{title}");
            assert!(title.contains(" more characters)"), "{title}");
            assert!(desc.starts_with("SETDESC "), "{desc}");
            // Both fields were cut, each with a note, and nothing after them was lost.
            assert_eq!(desc.matches(" more characters)").count(), 3, "{desc}");
            assert!(
                desc.ends_with("%0A%0AEnter your LocalPasskey PIN (8 tries left)."),
                "{desc}"
            );
            assert_eq!(lines.len(), 8, "{lines:?}");
        }
        // The dialog's limits are kept when they fit: 256 characters of RP ID.
        let shown = Shown::new(&hostile(&cases[0].0, &cases[0].1), 0);
        assert_eq!(
            shown.rp_id,
            format!("{}… (9744 more characters)", "a".repeat(256))
        );
        let (title, _) = title_and_description(&hostile(&cases[0].0, "bob"), None).unwrap();
        assert_eq!(title, format!("SETTITLE LocalPasskey: {}", shown.rp_id));
    }

    #[test]
    fn the_worst_text_still_fits_at_the_tightest_limits() {
        let rp = "\u{E0001}".repeat(10_000);
        let req = hostile(&rp, &rp);
        let (title_line, desc_line) = title_and_description(&req, Some(8)).unwrap();
        assert!(title_line.len() <= MAX_LINE && desc_line.len() <= MAX_LINE);
        let tightest = Shown::new(&req, 4);
        assert!(text_command("SETTITLE", &title(&req, &tightest)).is_some());
        assert!(text_command("SETDESC", &description(&req, &tightest, Some(8))).is_some());
    }

    #[test]
    fn non_ascii_rp_ids_are_flagged() {
        let look_alike = hostile("g\u{043E}\u{043E}gle.com", "alice");
        let (_, desc) = title_and_description(&look_alike, None).unwrap();
        assert!(
            desc.contains(&format!("%0A{NON_ASCII_RP_ID_WARNING}%0A")),
            "{desc}"
        );
        let (_, desc) = title_and_description(&req(), None).unwrap();
        assert!(!desc.contains(NON_ASCII_RP_ID_WARNING), "{desc}");
    }

    #[test]
    fn a_pinentry_that_refuses_the_description_is_not_asked_for_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pinentry");
        std::fs::write(
            &path,
            "#!/bin/sh\necho OK\nwhile IFS= read -r line; do\n\
               case \"$line\" in SETDESC*) echo 'ERR 536870918 Line too long' ;; \
               GETPIN) echo 'D 1234'; echo OK ;; *) echo OK ;; esac\ndone\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut p = Pinentry::new(Some(path.display().to_string()));
        let v = p.request_verification(&req(), 8, Duration::from_secs(10), &NoInteraction);
        assert!(matches!(v, Verification::Refused(Refusal::Denied)), "{v:?}");
    }

    #[test]
    fn escaping_round_trips() {
        assert_eq!(escape("a%b\nc"), "a%25b%0Ac");
        assert_eq!(unescape("a%25b%0Ac%"), b"a%b\nc%");
        assert_eq!(unescape("%zz"), b"%zz");
    }
}
