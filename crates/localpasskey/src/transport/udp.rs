//! The UDP simulation transport used by CTAP test tools: one datagram is one
//! raw 64-byte CTAPHID report (no report-id byte), answers go back to the
//! sender. Loopback only: it has no access control of its own, so anything
//! that can reach the port can use the authenticator.

use super::{Incoming, Shutdown, Transport};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The port CTAP simulators listen on by convention.
pub const DEFAULT_PORT: u16 = 8111;

pub struct Udp {
    socket: UdpSocket,
    /// The signal that asked us to stop (0: none yet).
    stop: Arc<AtomicI32>,
}

impl Udp {
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to listen on {addr}: the simulation transport is loopback-only"),
            ));
        }
        let socket = UdpSocket::bind(addr)?;
        let stop = Arc::new(AtomicI32::new(0));
        // SIGTERM/SIGINT/SIGHUP: remember the signal and wake `recv` with an
        // empty datagram to ourselves, so the daemon stops cleanly (and the
        // TPM custody is dropped, flushing what it loaded).
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ])?;
        let waker = UdpSocket::bind((addr.ip(), 0))?;
        let target = socket.local_addr()?;
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    flag.store(sig, Ordering::SeqCst);
                    let _ = waker.send_to(&[], target);
                }
            })?;
        Ok(Self { socket, stop })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl Transport for Udp {
    type Peer = SocketAddr;

    fn recv(&self, timeout: Option<Duration>) -> io::Result<Option<Incoming<SocketAddr>>> {
        // A zero timeout means "block" to the socket API; never ask for that by accident.
        let timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        self.socket.set_read_timeout(timeout)?;
        let mut buf = [0u8; 128];
        let received = self.socket.recv_from(&mut buf);
        let sig = self.stop.load(Ordering::SeqCst);
        if sig != 0 {
            tracing::info!("signal {sig} received: stopping");
            return Err(Shutdown::error(sig));
        }
        match received {
            Ok((n, peer)) => Ok(Some(Incoming {
                data: buf[..n].to_vec(),
                peer,
            })),
            // A signal interrupting the wait is not a failure: the signal
            // thread's wake-up datagram ends the next wait.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            // ICMP port unreachable from a client that went away: not our problem.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(&self, peer: SocketAddr, report: &[u8; 64]) -> io::Result<()> {
        self.socket.send_to(report, peer).map(|_| ())
    }

    fn describe(&self) -> String {
        match self.local_addr() {
            Ok(a) => format!("UDP simulation on {a}"),
            Err(_) => "UDP simulation".into(),
        }
    }

    fn simulates_power_cycle(&self) -> bool {
        true
    }
}
