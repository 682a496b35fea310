//! User-presence implementations the daemon can be started with.

use lp_core::user::{
    play_step, play_verification, Interaction, NewPin, Presence, PresenceRequest, Refusal, Step,
    UserPresence, Verification,
};
use std::path::PathBuf;
use std::time::Duration;

/// Scripted from a file, for end-to-end tests driven from another process:
/// each request takes the first line of the file (`approve`, `deny`, `wait`,
/// `delay <ms>`, `pin <PIN>`, `choose <n>`) and rewrites the file without
/// it; an empty or missing file approves, and a verification request that
/// meets `approve` or `choose` types `default_pin` (if there is none, it is
/// refused). It can list accounts: `choose <n>` picks the n-th one shown
/// (from 1), and the other steps approve without a pick, as a prompt that
/// cannot show the list would, so the platform chooses. Only accepted with
/// the simulation transport.
pub struct FileScript {
    path: PathBuf,
    default_pin: Option<String>,
}

impl FileScript {
    pub fn new(path: PathBuf, default_pin: Option<String>) -> Self {
        Self { path, default_pin }
    }

    /// The script's first line, removed from the file; None when it is empty.
    fn next_line(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let first = lines.next()?.to_owned();
        let rest: Vec<&str> = lines.collect();
        let mut rest = rest.join("\n");
        if !rest.is_empty() {
            rest.push('\n');
        }
        if let Err(e) = std::fs::write(&self.path, rest) {
            tracing::error!("cannot rewrite presence script {}: {e}", self.path.display());
        }
        Some(first)
    }

    fn next_step(&self) -> Step {
        let Some(first) = self.next_line() else {
            return Step::Approve;
        };
        match first.trim().parse() {
            Ok(step) => step,
            Err(e) => {
                // A broken script must not approve by accident.
                tracing::error!("{e}; denying");
                Step::Deny
            }
        }
    }
}

impl UserPresence for FileScript {
    fn request_presence(
        &mut self,
        req: &PresenceRequest,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Presence {
        let step = self.next_step();
        tracing::info!(
            rp = ?req.rp_id,
            account = req.user_name.as_deref().unwrap_or("-"),
            action = req.action.describe(),
            step = step_name(&step),
            accounts = %listed(req),
            "scripted presence"
        );
        play_step(&step, timeout, io)
    }

    fn can_verify(&self) -> bool {
        true
    }

    fn can_choose(&self) -> bool {
        true
    }

    fn request_verification(
        &mut self,
        req: &PresenceRequest,
        retries: u8,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> Verification {
        let step = self.next_step();
        tracing::info!(
            rp = ?req.rp_id,
            account = req.user_name.as_deref().unwrap_or("-"),
            action = req.action.describe(),
            retries,
            step = step_name(&step),
            accounts = %listed(req),
            "scripted verification"
        );
        play_verification(&step, self.default_pin.as_deref(), timeout, io)
    }

    fn report(&mut self, req: &PresenceRequest, message: &str) {
        tracing::info!(rp = ?req.rp_id, "scripted report: {message}");
    }

    fn request_new_pin(
        &mut self,
        req: &PresenceRequest,
        current: bool,
        _min_length: u8,
        _retries: Option<u8>,
        timeout: Duration,
        io: &dyn Interaction,
    ) -> NewPin {
        let answer = self.new_pin(current, timeout, io);
        tracing::info!(action = req.action.describe(), answer = ?answer, "scripted new PIN");
        answer
    }
}

impl FileScript {
    /// `new-pin NEW` types a first PIN (twice), `change-pin CURRENT NEW` the
    /// current PIN and a new one; any other step plays as for presence and
    /// can only refuse. An empty script refuses: no PIN is made up.
    fn new_pin(&self, current: bool, timeout: Duration, io: &dyn Interaction) -> NewPin {
        let Some(line) = self.next_line() else {
            return NewPin::Refused(Refusal::Denied);
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let typed = |c: Option<&str>, n: &str| NewPin::Typed {
            current: c.map(|c| zeroize::Zeroizing::new(c.to_owned())),
            new: zeroize::Zeroizing::new(n.to_owned()),
        };
        match (words.as_slice(), current) {
            (["new-pin", new], false) => typed(None, new),
            (["change-pin", cur, new], true) => typed(Some(cur), new),
            _ => match line.trim().parse::<Step>() {
                Ok(step) => match play_step(&step, timeout, io) {
                    Presence::Refused(r) => NewPin::Refused(r),
                    Presence::Approved { .. } => NewPin::Refused(Refusal::Denied),
                },
                Err(e) => {
                    tracing::error!("{e}; denying");
                    NewPin::Refused(Refusal::Denied)
                }
            },
        }
    }
}

/// For logs: never the PIN itself.
fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Approve => "approve",
        Step::Deny => "deny",
        Step::DelayThenApprove(_) => "delay",
        Step::NoAnswer => "wait",
        Step::Pin(_) => "pin",
        Step::Choose(_) => "choose",
    }
}

/// The accounts a request listed, for tests to read in the log:
/// `"bob (Bob Builder)|alice"` (the display name when it differs), or `-`.
fn listed(req: &PresenceRequest) -> String {
    if req.accounts.is_empty() {
        return "-".into();
    }
    let one = |a: &lp_core::user::AccountChoice| match (a.user_name.as_deref(), a.display_name.as_deref()) {
        (Some(n), Some(d)) if !d.is_empty() && d != n => format!("{n} ({d})"),
        (Some(n), _) => n.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => "?".into(),
    };
    let all: Vec<String> = req.accounts.iter().map(one).collect();
    format!("{:?}", all.join("|"))
}
