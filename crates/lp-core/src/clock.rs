//! The clock seam. Every timeout in the protocol (GetNextAssertion's 30 s,
//! the 10 s reset window, CTAPHID transaction timeouts, later the PIN token's
//! lifetime) is measured against this, so tests move time by hand instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Milliseconds on a monotonic clock whose zero is arbitrary (process start).
pub type Millis = u64;

pub trait Clock: Send + Sync {
    /// Monotonic time, for timeouts.
    fn now(&self) -> Millis;
    /// Wall-clock time in milliseconds since the Unix epoch, for the
    /// "created" and "last used" dates shown to the user; never for timeouts.
    fn unix_millis(&self) -> u64;
}

/// The real clock.
#[derive(Debug)]
pub struct SystemClock {
    start: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            start: std::time::Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }
    fn unix_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn advance(&self, ms: Millis) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
    fn unix_millis(&self) -> u64 {
        1_700_000_000_000 + self.now()
    }
}
