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
    Action, Interaction, KeepaliveStatus, Presence, PresenceRequest, UserPresence, Verification,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Assuan error codes pinentry answers with (gpg-error: GPG_ERR_SOURCE_PINENTRY
/// << 24 | code): 99 canceled, 62 timeout, 83886179/83886142 in full.
const GPG_ERR_CANCELED: u32 = 99;
const GPG_ERR_TIMEOUT: u32 = 62;

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

/// What the person is shown: the RP ID first, since that is what the
/// browser checked.
fn description(req: &PresenceRequest, retries: Option<u8>) -> String {
    let mut d = match req.action {
        Action::Reset => "A program asks to ERASE ALL PASSKEYS on this computer.".to_string(),
        Action::Select => {
            "A program asks to use this computer's passkeys (select this security key).".to_string()
        }
        _ => format!("{} asks to {}.", req.rp_id, req.action.describe()),
    };
    if !req.rp_id.is_empty() {
        d.push_str(&format!("\n\nSite (RP ID): {}", req.rp_id));
    }
    if let Some(user) = &req.user_name {
        d.push_str(&format!("\nAccount: {user}"));
    }
    if let Some(r) = retries {
        d.push_str(&format!("\n\nEnter your LocalPasskey PIN ({r} tries left)."));
    } else {
        d.push_str("\n\nAllow only if you started this yourself.");
    }
    d
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
        let title = match req.action {
            Action::Reset => "LocalPasskey: erase all passkeys?".to_string(),
            _ if req.rp_id.is_empty() => "LocalPasskey".to_string(),
            _ => format!("LocalPasskey: {}", req.rp_id),
        };
        // Options a pinentry does not know are answered with ERR: ignore them.
        self.command(&format!("SETTITLE {}", escape(&title)))?;
        self.command(&format!("SETDESC {}", escape(&description(req, retries))))?;
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
        tracing::info!(rp = %req.rp_id, action = req.action.describe(), "asking through pinentry (presence)");
        let r = with_dialog(&self.program, timeout, io, |s| {
            s.setup(req, None, timeout)?;
            s.command("SETOK Allow")?;
            s.command("SETCANCEL Deny")?;
            s.command("CONFIRM")
        });
        match r {
            Ok(Reply::Ok) | Ok(Reply::Data(_)) => Presence::Approved,
            Ok(Reply::Err(GPG_ERR_TIMEOUT)) | Err(Outcome::TimedOut) => Presence::TimedOut,
            Ok(Reply::Err(_)) | Err(Outcome::Failed) => Presence::Denied,
            Err(Outcome::Cancelled) => Presence::Cancelled,
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
        tracing::info!(rp = %req.rp_id, action = req.action.describe(), "asking through pinentry (PIN)");
        let r = with_dialog(&self.program, timeout, io, |s| {
            s.setup(req, Some(retries), timeout)?;
            s.command("SETPROMPT PIN:")?;
            s.command("SETOK Allow")?;
            s.command("SETCANCEL Deny")?;
            s.command("GETPIN")
        });
        match r {
            Ok(Reply::Data(pin)) => match String::from_utf8(pin.to_vec()) {
                Ok(p) if !p.is_empty() => Verification::Pin(Zeroizing::new(p)),
                _ => Verification::Denied,
            },
            // OK with no data: an empty PIN, which is no answer.
            Ok(Reply::Ok) => Verification::Denied,
            Ok(Reply::Err(GPG_ERR_TIMEOUT)) | Err(Outcome::TimedOut) => Verification::TimedOut,
            Ok(Reply::Err(GPG_ERR_CANCELED)) | Ok(Reply::Err(_)) | Err(Outcome::Failed) => {
                Verification::Denied
            }
            Err(Outcome::Cancelled) => Verification::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lp_core::user::NoInteraction;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// A fake pinentry: logs every command, answers OK, and answers GETPIN
    /// and CONFIRM as its script file says.
    fn fake(dir: &Path, getpin: &str, confirm: &str) -> String {
        let log = dir.join("log");
        let path = dir.join("pinentry");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho 'OK Pleased to meet you'\n\
                 while read -r cmd rest; do\n\
                   echo \"$cmd $rest\" >> '{log}'\n\
                   case \"$cmd\" in\n\
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
        }
    }

    #[test]
    fn getpin_returns_the_pin_and_shows_rp_user_action() {
        let dir = tempfile::tempdir().unwrap();
        let prog = fake(dir.path(), "echo 'D 12%2534'; echo OK", "echo OK");
        let mut p = Pinentry::new(Some(prog));
        let v = p.request_verification(&req(), 7, Duration::from_secs(10), &NoInteraction);
        match v {
            Verification::Pin(pin) => assert_eq!(pin.as_str(), "12%34"),
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

    #[test]
    fn confirm_allow_deny_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Pinentry::new(Some(fake(dir.path(), "echo OK", "echo OK")));
        assert_eq!(
            p.request_presence(&req(), Duration::from_secs(10), &NoInteraction),
            Presence::Approved
        );
        let mut p = Pinentry::new(Some(fake(
            dir.path(),
            "echo OK",
            "echo 'ERR 83886179 Operation cancelled'",
        )));
        assert_eq!(
            p.request_presence(&req(), Duration::from_secs(10), &NoInteraction),
            Presence::Denied
        );
        let mut p = Pinentry::new(Some(fake(dir.path(), "echo 'ERR 83886179 cancelled'", "echo OK")));
        assert!(matches!(
            p.request_verification(&req(), 8, Duration::from_secs(10), &NoInteraction),
            Verification::Denied
        ));
        // Nobody answers: the dialog is killed at the deadline.
        let mut p = Pinentry::new(Some(fake(dir.path(), "sleep 30", "sleep 30")));
        let t = Instant::now();
        assert_eq!(
            p.request_presence(&req(), Duration::from_millis(300), &NoInteraction),
            Presence::TimedOut
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
        assert!(matches!(v, Verification::Cancelled), "{v:?}");
        let mut p = Pinentry::new(Some("/nonexistent/pinentry".into()));
        assert_eq!(
            p.request_presence(&req(), Duration::from_secs(1), &NoInteraction),
            Presence::Denied
        );
    }

    #[test]
    fn escaping_round_trips() {
        assert_eq!(escape("a%b\nc"), "a%25b%0Ac");
        assert_eq!(unescape("a%25b%0Ac%"), b"a%b\nc%");
        assert_eq!(unescape("%zz"), b"%zz");
    }
}
