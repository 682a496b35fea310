//! User-presence implementations the daemon can be started with.

use lp_core::user::{
    play_step, play_verification, Interaction, Presence, PresenceRequest, Step, UserPresence, Verification,
};
use std::path::PathBuf;
use std::time::Duration;

/// Scripted from a file, for end-to-end tests driven from another process:
/// each request takes the first line of the file (`approve`, `deny`, `wait`,
/// `delay <ms>`, `pin <PIN>`) and rewrites the file without it; an empty or
/// missing file approves, and a verification request that meets `approve`
/// types `default_pin` (if there is none, it is refused). Only accepted with
/// the simulation transport.
pub struct FileScript {
    path: PathBuf,
    default_pin: Option<String>,
}

impl FileScript {
    pub fn new(path: PathBuf, default_pin: Option<String>) -> Self {
        Self { path, default_pin }
    }

    fn next_step(&self) -> Step {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Step::Approve;
        };
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let Some(first) = lines.next() else {
            return Step::Approve;
        };
        let rest: Vec<&str> = lines.collect();
        let mut rest = rest.join("\n");
        if !rest.is_empty() {
            rest.push('\n');
        }
        if let Err(e) = std::fs::write(&self.path, rest) {
            tracing::error!("cannot rewrite presence script {}: {e}", self.path.display());
        }
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
            "scripted presence"
        );
        play_step(&step, timeout, io)
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
        let step = self.next_step();
        tracing::info!(
            rp = ?req.rp_id,
            account = req.user_name.as_deref().unwrap_or("-"),
            action = req.action.describe(),
            retries,
            step = step_name(&step),
            "scripted verification"
        );
        play_verification(&step, self.default_pin.as_deref(), timeout, io)
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
    }
}
