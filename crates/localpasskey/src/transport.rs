//! Transports: thin adapters that move 64-byte CTAPHID reports.
//!
//! Everything protocol-shaped lives in `lp_core::ctaphid`; a transport only
//! receives a report with an address to answer and sends reports back.

pub mod broker;
pub mod udp;
pub mod uhid;

use std::io;
use std::time::Duration;

/// A report from the host and who sent it.
#[derive(Debug)]
pub struct Incoming<P> {
    pub data: Vec<u8>,
    pub peer: P,
}

pub trait Transport: Send + Sync + 'static {
    /// Where a report came from and where its answers go.
    type Peer: Copy + Eq + std::hash::Hash + Send + std::fmt::Debug + 'static;

    /// Wait at most `timeout` (forever if None) for one report.
    fn recv(&self, timeout: Option<Duration>) -> io::Result<Option<Incoming<Self::Peer>>>;

    fn send(&self, peer: Self::Peer, report: &[u8; 64]) -> io::Result<()>;

    /// A human-readable description for the start-up log.
    fn describe(&self) -> String;

    /// Whether the simulated power-cycle report stands for unplugging the
    /// device. Only the simulation says yes: on the real device any program
    /// that can open the hidraw node could send it, and a power cycle clears
    /// the "3 wrong PINs in a row" block that a person's unplugging should.
    fn simulates_power_cycle(&self) -> bool {
        false
    }

    /// The longest request this transport carries without losing reports
    /// (GetInfo's maxMsgSize).
    fn max_message_size(&self) -> usize {
        lp_core::MAX_MSG_SIZE
    }
}

/// A transport's way to say "a signal asked us to stop, and the device is
/// already cleaned up": `recv` returns it inside an `io::Error`.
#[derive(Debug)]
pub struct Shutdown(pub i32);

impl std::fmt::Display for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by signal {}", self.0)
    }
}

impl std::error::Error for Shutdown {}

impl Shutdown {
    pub fn error(signal: i32) -> io::Error {
        io::Error::other(Shutdown(signal))
    }

    /// True if `e` is a clean stop rather than a failure.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<Shutdown>())
    }
}

/// Turns SIGTERM, SIGINT and SIGHUP into calls of `deliver` on a thread of
/// their own (signal-hook's self-pipe), until `deliver` returns false: the
/// devices remove themselves cleanly instead of dying with the process.
pub fn forward_signals(deliver: impl Fn(i32) -> bool + Send + 'static) -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if !deliver(sig) {
                    return;
                }
            }
        })?;
    Ok(())
}
