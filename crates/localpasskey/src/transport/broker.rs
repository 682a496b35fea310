//! The real USB security key as a desktop user gets it: through the uhid
//! broker (`localpasskey-broker`, a root service), never through /dev/uhid.
//!
//! Whoever may open /dev/uhid can create any HID device, a keyboard too, so
//! the daemon does not ask for it. It connects to the broker's socket, says
//! its serial, and the broker creates the one FIDO device its uid may have
//! and relays 64-byte reports; see `localpasskey_broker::protocol`.
//!
//! The broker must be root's: a socket that someone else answers could
//! swallow the PIN protocol's traffic, so the peer's uid (SO_PEERCRED, set
//! by the kernel) must be 0. If the broker restarts (an upgrade), the
//! connection ends and the reader connects again with a backoff: the device
//! comes back with the same serial.

use super::{Incoming, Transport};
use localpasskey_broker::protocol::{self, Status, RECORD};
use localpasskey_broker::uhid::DeviceIdentity;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use localpasskey_broker::SOCKET_PATH;

/// How long the broker may take to answer the hello.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the reader tries to reach a restarted broker before it gives up
/// (backoff 0.2 s doubling to 5 s: about a minute in all).
const RECONNECTS: u32 = 16;

enum Msg {
    Report([u8; RECORD]),
    Signal(i32),
    Fatal(io::Error),
}

pub struct BrokerDevice {
    path: PathBuf,
    identity: DeviceIdentity,
    conn: Arc<RwLock<Arc<UnixStream>>>,
    rx: Mutex<mpsc::Receiver<Msg>>,
    tx: mpsc::Sender<Msg>,
    stopping: Arc<AtomicBool>,
}

/// Connects, checks that root answers, greets, and waits for the device.
fn connect(path: &Path, serial: &str) -> io::Result<UnixStream> {
    let mut conn = UnixStream::connect(path)?;
    let peer = rustix::net::sockopt::socket_peercred(&conn)?;
    if peer.uid.as_raw() != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is served by uid {}, not root: refusing to use it",
                path.display(),
                peer.uid.as_raw()
            ),
        ));
    }
    let hello = protocol::hello(serial).ok_or_else(|| io::Error::other("the device serial is empty"))?;
    conn.write_all(&hello)?;
    conn.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut answer = [0u8; RECORD];
    conn.read_exact(&mut answer)?;
    conn.set_read_timeout(None)?;
    match protocol::parse_answer(&answer) {
        Some(Status::Created) => Ok(conn),
        Some(status) => Err(io::Error::other(status.explain())),
        None => Err(io::Error::other(
            "the broker's answer makes no sense (a version mismatch?)",
        )),
    }
}

impl BrokerDevice {
    /// Asks the broker at `path` for our device and starts the reader; stops
    /// cleanly on SIGTERM, SIGINT and SIGHUP.
    pub fn create(path: &Path, identity: DeviceIdentity) -> io::Result<Self> {
        let dev = Self::start(path, identity)?;
        let tx = dev.tx.clone();
        super::forward_signals(move |sig| tx.send(Msg::Signal(sig)).is_ok())?;
        Ok(dev)
    }

    fn start(path: &Path, identity: DeviceIdentity) -> io::Result<Self> {
        let conn = connect(path, identity.uniq()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create the security key through the broker at {}: {e} \
                     (is localpasskey-broker.socket active? `localpasskey doctor` says)",
                    path.display()
                ),
            )
        })?;
        tracing::info!(uniq = %identity.uniq(), broker = %path.display(), "uhid: security key created through the broker");
        let conn = Arc::new(RwLock::new(Arc::new(conn)));
        let stopping = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        {
            let (conn, stopping, tx) = (Arc::clone(&conn), Arc::clone(&stopping), tx.clone());
            let (path, serial) = (path.to_path_buf(), identity.uniq().to_string());
            std::thread::Builder::new()
                .name("broker-reader".into())
                .spawn(move || reader(&path, &serial, &conn, &stopping, &tx))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            identity,
            conn,
            rx: Mutex::new(rx),
            tx,
            stopping,
        })
    }

    fn current(&self) -> Arc<UnixStream> {
        Arc::clone(&self.conn.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Hanging up makes the broker destroy the device (idempotent).
    fn destroy(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.current().shutdown(std::net::Shutdown::Both);
        tracing::info!("uhid: security key removed");
    }
}

impl Drop for BrokerDevice {
    fn drop(&mut self) {
        self.destroy();
    }
}

fn reader(
    path: &Path,
    serial: &str,
    conn: &RwLock<Arc<UnixStream>>,
    stopping: &AtomicBool,
    tx: &mpsc::Sender<Msg>,
) {
    let mut report = [0u8; RECORD];
    loop {
        let c = Arc::clone(&conn.read().unwrap_or_else(|e| e.into_inner()));
        let result = (&*c).read_exact(&mut report);
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        match result {
            Ok(()) => {
                if tx.send(Msg::Report(report)).is_err() {
                    return;
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => tracing::error!("uhid: the broker connection ended ({e}); connecting again"),
        }
        drop(c);
        let mut last = None;
        for attempt in 0..RECONNECTS {
            std::thread::sleep(Duration::from_millis((200u64 << attempt.min(5)).min(5000)));
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            match connect(path, serial) {
                Ok(new) => {
                    *conn.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
                    tracing::info!("uhid: security key re-created through the broker");
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            let _ = tx.send(Msg::Fatal(io::Error::new(
                e.kind(),
                format!("the broker at {} is gone: {e}", path.display()),
            )));
            return;
        }
    }
}

impl Transport for BrokerDevice {
    type Peer = ();

    fn max_message_size(&self) -> usize {
        // The kernel's queues are the same behind the broker.
        super::uhid::MAX_MESSAGE
    }

    fn recv(&self, timeout: Option<Duration>) -> io::Result<Option<Incoming<()>>> {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let gone = || io::Error::other("broker reader thread stopped");
        let msg = match timeout {
            Some(t) => match rx.recv_timeout(t) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(None),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(gone()),
            },
            None => rx.recv().map_err(|_| gone())?,
        };
        match msg {
            Msg::Report(report) => Ok(Some(Incoming {
                data: report.to_vec(),
                peer: (),
            })),
            Msg::Signal(sig) => {
                tracing::info!("signal {sig} received: removing the security key and stopping");
                self.destroy();
                Err(super::Shutdown::error(sig))
            }
            Msg::Fatal(e) => Err(e),
        }
    }

    fn send(&self, _peer: (), report: &[u8; 64]) -> io::Result<()> {
        if self.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        match (&*self.current()).write_all(report) {
            // The reader is re-connecting; the host will retry.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    fn describe(&self) -> String {
        format!(
            "USB HID security key \"{}\" {:04x}:{:04x} serial {} through the broker at {}",
            self.identity.name(),
            super::uhid::VENDOR_ID,
            super::uhid::PRODUCT_ID,
            self.identity.uniq(),
            self.path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use localpasskey_broker::relay::{serve, Registry};
    use localpasskey_broker::uhid::{ev, output_event, EVENT_SIZE, UHID_OUTPUT_REPORT};
    use std::fs::File;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::{UnixDatagram, UnixListener};

    fn kind(event: &[u8]) -> u32 {
        u32::from_ne_bytes(event[..4].try_into().unwrap())
    }

    /// The daemon's side against the real broker code, with a datagram
    /// socket pair standing in for /dev/uhid.
    #[test]
    fn through_the_broker_and_away_on_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (ours, kernel) = UnixDatagram::pair().unwrap();
        let broker = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let uid = rustix::net::sockopt::socket_peercred(&conn).unwrap().uid.as_raw();
            let ours = Mutex::new(Some(ours));
            let open = move || Ok(File::from(OwnedFd::from(ours.lock().unwrap().take().unwrap())));
            serve(conn, uid, &Registry::default(), &open)
        });
        if !rustix::process::getuid().is_root() {
            // The test's broker is not root's: the daemon must refuse it.
            let err = BrokerDevice::start(&path, DeviceIdentity::new("t1"))
                .err()
                .unwrap();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
            return;
        }
        let dev = BrokerDevice::start(&path, DeviceIdentity::new("t1")).unwrap();
        let mut buf = vec![0u8; EVENT_SIZE + 10];
        assert_eq!(kernel.recv(&mut buf).unwrap(), EVENT_SIZE);
        assert_eq!(kind(&buf), ev::CREATE2);
        assert_eq!(&buf[4 + 192..4 + 195], b"t1\0");

        let mut with_id = vec![0u8];
        with_id.extend([0x42; 64]);
        kernel
            .send(&output_event(&with_id, UHID_OUTPUT_REPORT)[..])
            .unwrap();
        let got = dev.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
        assert_eq!(got.data, vec![0x42; 64]);
        dev.send((), &[0x11; 64]).unwrap();
        kernel.recv(&mut buf).unwrap();
        assert_eq!(kind(&buf), ev::INPUT2);
        assert_eq!(&buf[6..70], &[0x11; 64]);

        dev.tx.send(Msg::Signal(15)).unwrap();
        let err = dev.recv(None).unwrap_err();
        assert!(super::super::Shutdown::is(&err));
        kernel.recv(&mut buf).unwrap();
        assert_eq!(
            kind(&buf),
            ev::DESTROY,
            "hanging up made the broker remove the device"
        );
        broker.join().unwrap().unwrap();
    }
}
