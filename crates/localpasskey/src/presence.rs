//! User-presence implementations the daemon can be started with.

use lp_core::user::{play_step, Interaction, Presence, PresenceRequest, Step, UserPresence};
use std::path::PathBuf;
use std::time::Duration;

/// Scripted from a file, for end-to-end tests driven from another process:
/// each request takes the first line of the file (`approve`, `deny`, `wait`,
/// `delay <ms>`) and rewrites the file without it; an empty or missing file
/// approves. Only accepted with the simulation transport.
pub struct FileScript {
    path: PathBuf,
}

impl FileScript {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
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
        tracing::info!(rp = %req.rp_id, action = req.action.describe(), ?step, "scripted presence");
        play_step(step, timeout, io)
    }
}
