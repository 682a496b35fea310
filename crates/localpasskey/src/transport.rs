//! Transports: thin adapters that move 64-byte CTAPHID reports.
//!
//! Everything protocol-shaped lives in `lp_core::ctaphid`; a transport only
//! receives a report with an address to answer and sends reports back.

pub mod udp;

use std::io;
use std::time::Duration;

/// A report from the host and who sent it.
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
}
