//! The real transport: a virtual USB HID security key through `/dev/uhid`.
//!
//! The kernel's uhid driver lets a process create a HID device: we write a
//! `UHID_CREATE2` event carrying the FIDO report descriptor, and from then on
//! browsers, libfido2 and OpenSSH see a `/dev/hidrawN` node like any USB
//! security key. Reports the host writes reach us as `UHID_OUTPUT` events;
//! we answer with `UHID_INPUT2` events.
//!
//! On a desktop the daemon never opens `/dev/uhid`: the broker does
//! (`transport/broker.rs`), since whoever holds it can create a keyboard.
//! Opening it directly (`--uhid-direct`) is for root only, /dev/uhid being
//! root's: the test VM's end-to-end suite runs several daemons of one uid at
//! once, which the broker (one device per uid) would refuse. The event
//! layout is the broker crate's (`localpasskey_broker::uhid`), so both paths
//! make the same device.
//!
//! Threads: a reader thread blocks in `read(2)` on the device and forwards
//! output reports to `recv`; a signal thread (signal-hook) turns SIGTERM,
//! SIGINT and SIGHUP into a clean stop: `UHID_DESTROY`, then `recv` returns
//! [`super::Shutdown`]. If the device fails, the reader re-creates it with a
//! backoff. Closing the file also destroys the device in the kernel, so even
//! a crash leaves no stale security key behind.

use super::{Incoming, Transport};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use localpasskey_broker::uhid::{
    decode, destroy, get_report_reply, input2, set_report_reply, HostEvent, EVENT_SIZE,
};
pub use localpasskey_broker::uhid::{DeviceIdentity, DEVICE_NAME, PRODUCT_ID, UHID_PATH, VENDOR_ID};

/// The kernel queues output reports for us in a ring of 32 slots
/// (`UHID_BUFSIZE`; one stays empty, so 31 events) and drops the next ones
/// when we fall behind; hidraw keeps 64 input reports per reader. USB would
/// pace the host; uhid cannot. So a request must fit in that queue even if
/// this process is not scheduled while the host writes it, with room to spare
/// for a second client and the kernel's own events: 1200 bytes (21 reports,
/// the size YubiKeys advertise). Measured under load in the VM: 129-report
/// requests lost reports (ERR_INVALID_SEQ), and so did 32-report ones (the
/// last report dropped, ERR_MSG_TIMEOUT).
pub const MAX_MESSAGE: usize = 1200;

// ------------------------------------------------------------- the device

enum Msg {
    Report([u8; 64]),
    Signal(i32),
    Fatal(io::Error),
}

/// Opens the device node (a function, so tests can hand in a socket).
type Opener = Arc<dyn Fn() -> io::Result<File> + Send + Sync>;

/// A virtual FIDO security key. The peer is `()`: there is one host.
pub struct Uhid {
    where_: String,
    identity: DeviceIdentity,
    /// The open device; replaced when it is re-created.
    dev: Arc<RwLock<Arc<File>>>,
    rx: Mutex<mpsc::Receiver<Msg>>,
    tx: mpsc::Sender<Msg>,
    stopping: Arc<AtomicBool>,
}

fn write_event(dev: &File, event: &[u8; EVENT_SIZE]) -> io::Result<()> {
    let mut dev = dev;
    let n = dev.write(event)?;
    if n != EVENT_SIZE {
        return Err(io::Error::other(format!("short write to uhid: {n} bytes")));
    }
    Ok(())
}

fn open_and_create(open: &Opener, identity: &DeviceIdentity) -> io::Result<File> {
    let dev = open()?;
    write_event(&dev, &identity.create2())?;
    Ok(dev)
}

impl Uhid {
    /// Create the device through /dev/uhid, start the reader thread, and
    /// stop cleanly on SIGTERM, SIGINT and SIGHUP.
    pub fn create(identity: DeviceIdentity) -> io::Result<Self> {
        let open: Opener = Arc::new(|| OpenOptions::new().read(true).write(true).open(UHID_PATH));
        let dev = Self::start(UHID_PATH.into(), identity, open).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create the security key through {UHID_PATH}: {e} \
                     (is the uhid module loaded, and may you open it? `localpasskey doctor` says)"
                ),
            )
        })?;
        dev.stop_on_signals()?;
        Ok(dev)
    }

    fn start(where_: String, identity: DeviceIdentity, open: Opener) -> io::Result<Self> {
        let dev = open_and_create(&open, &identity)?;
        tracing::info!(
            name = %identity.name(),
            vendor = format!("{VENDOR_ID:04x}"),
            product = format!("{PRODUCT_ID:04x}"),
            uniq = %identity.uniq(),
            "uhid: security key created"
        );
        let dev = Arc::new(RwLock::new(Arc::new(dev)));
        let stopping = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        {
            let dev = Arc::clone(&dev);
            let stopping = Arc::clone(&stopping);
            let identity = identity.clone();
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("uhid-reader".into())
                .spawn(move || reader(open, identity, dev, stopping, tx))?;
        }
        Ok(Self {
            where_,
            identity,
            dev,
            rx: Mutex::new(rx),
            tx,
            stopping,
        })
    }

    fn stop_on_signals(&self) -> io::Result<()> {
        let tx = self.tx.clone();
        super::forward_signals(move |sig| tx.send(Msg::Signal(sig)).is_ok())
    }

    fn current(&self) -> Arc<File> {
        Arc::clone(&self.dev.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Remove the device from the kernel (idempotent).
    fn destroy(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        match write_event(&self.current(), &destroy()) {
            Ok(()) => tracing::info!("uhid: security key removed"),
            Err(e) => tracing::warn!("uhid: UHID_DESTROY failed: {e}"),
        }
    }
}

impl Drop for Uhid {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Blocks in read(2); forwards reports; answers what the kernel waits for;
/// re-creates the device when it fails.
fn reader(
    open: Opener,
    identity: DeviceIdentity,
    dev: Arc<RwLock<Arc<File>>>,
    stopping: Arc<AtomicBool>,
    tx: mpsc::Sender<Msg>,
) {
    let mut buf = vec![0u8; EVENT_SIZE];
    let mut failures = 0u32;
    loop {
        let file = Arc::clone(&dev.read().unwrap_or_else(|e| e.into_inner()));
        let result = (&*file).read(&mut buf);
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let n = match result {
            // The kernel never answers a read with 0 bytes; a closed stand-in does.
            Ok(0) => {
                tracing::info!("uhid: device closed");
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                failures += 1;
                tracing::error!("uhid: reading the device failed ({e}); re-creating it (attempt {failures})");
                drop(file);
                if let Err(e) = recreate(&open, &identity, &dev, failures) {
                    if failures >= 8 {
                        let _ = tx.send(Msg::Fatal(e));
                        return;
                    }
                    tracing::error!("uhid: re-creating the device failed: {e}");
                }
                continue;
            }
        };
        failures = 0;
        match decode(&buf[..n]) {
            Some(HostEvent::Report(report)) => {
                if tx.send(Msg::Report(report)).is_err() {
                    return;
                }
            }
            Some(HostEvent::BadReport(size)) => {
                tracing::debug!(size, "uhid: output report of the wrong size or type dropped")
            }
            Some(HostEvent::Lifecycle(what)) => tracing::info!("uhid: {what}"),
            Some(HostEvent::GetReport { id }) => {
                tracing::debug!("uhid: GET_REPORT refused (no feature reports)");
                if let Err(e) = write_event(&file, &get_report_reply(id)) {
                    tracing::warn!("uhid: GET_REPORT_REPLY failed: {e}");
                }
            }
            Some(HostEvent::SetReport { id }) => {
                tracing::debug!("uhid: SET_REPORT refused (no feature reports)");
                if let Err(e) = write_event(&file, &set_report_reply(id)) {
                    tracing::warn!("uhid: SET_REPORT_REPLY failed: {e}");
                }
            }
            Some(HostEvent::Other(kind)) => tracing::debug!(kind, "uhid: event ignored"),
            None => tracing::debug!(n, "uhid: short event ignored"),
        }
    }
}

fn recreate(
    open: &Opener,
    identity: &DeviceIdentity,
    dev: &RwLock<Arc<File>>,
    attempt: u32,
) -> io::Result<()> {
    let backoff = Duration::from_millis(100u64 << attempt.min(6));
    std::thread::sleep(backoff);
    let new = open_and_create(open, identity)?;
    // Replacing the last reference closes the old file, which destroys the old
    // device in the kernel.
    *dev.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
    tracing::info!("uhid: security key re-created");
    Ok(())
}

impl Transport for Uhid {
    type Peer = ();

    fn max_message_size(&self) -> usize {
        MAX_MESSAGE
    }

    fn recv(&self, timeout: Option<Duration>) -> io::Result<Option<Incoming<()>>> {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let msg = match timeout {
            Some(t) => match rx.recv_timeout(t) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => return Ok(None),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other("uhid reader thread stopped"))
                }
            },
            None => rx
                .recv()
                .map_err(|_| io::Error::other("uhid reader thread stopped"))?,
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
        write_event(&self.current(), &input2(report))
    }

    fn describe(&self) -> String {
        format!(
            "USB HID security key \"{}\" {:04x}:{:04x} serial {} through {}",
            self.identity.name(),
            VENDOR_ID,
            PRODUCT_ID,
            self.identity.uniq(),
            self.where_
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use localpasskey_broker::uhid::{ev, event_bytes, output_event, UHID_OUTPUT_REPORT};

    /// The whole life of a device against a stand-in for /dev/uhid: one end
    /// of a datagram socket pair, which keeps event boundaries like uhid.
    #[test]
    fn device_life_over_a_socket_pair() {
        use std::os::fd::OwnedFd;
        use std::os::unix::net::UnixDatagram;
        let (ours, kernel) = UnixDatagram::pair().unwrap();
        let ours = Mutex::new(Some(ours));
        let open: Opener = Arc::new(move || {
            let s = ours
                .lock()
                .unwrap()
                .take()
                .ok_or_else(|| io::Error::other("once"))?;
            Ok(File::from(OwnedFd::from(s)))
        });
        let dev = Uhid::start("test".into(), DeviceIdentity::new("t1"), open).unwrap();
        let mut buf = vec![0u8; EVENT_SIZE + 10];
        let n = kernel.recv(&mut buf).unwrap();
        assert_eq!(n, EVENT_SIZE);
        assert_eq!(u32::from_ne_bytes(buf[..4].try_into().unwrap()), ev::CREATE2);

        // Lifecycle events are only logged; the report after them arrives.
        kernel.send(&event_bytes(ev::OPEN, &[])[..]).unwrap();
        let mut with_id = vec![0u8];
        with_id.extend([0x42; 64]);
        kernel
            .send(&output_event(&with_id, UHID_OUTPUT_REPORT)[..])
            .unwrap();
        let got = dev.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
        assert_eq!(got.data, vec![0x42; 64]);
        assert!(dev.recv(Some(Duration::from_millis(20))).unwrap().is_none());

        // GET_REPORT is answered, so the kernel does not wait 5 s for us.
        kernel
            .send(&event_bytes(ev::GET_REPORT, &[9, 0, 0, 0, 0, 0])[..])
            .unwrap();
        let n = kernel.recv(&mut buf).unwrap();
        assert_eq!(n, EVENT_SIZE);
        assert_eq!(
            u32::from_ne_bytes(buf[..4].try_into().unwrap()),
            ev::GET_REPORT_REPLY
        );

        dev.send((), &[0x11; 64]).unwrap();
        kernel.recv(&mut buf).unwrap();
        assert_eq!(u32::from_ne_bytes(buf[..4].try_into().unwrap()), ev::INPUT2);
        assert_eq!(&buf[6..70], &[0x11; 64]);

        // A signal: the device is destroyed and recv says "shutdown".
        dev.tx.send(Msg::Signal(15)).unwrap();
        let err = dev.recv(None).unwrap_err();
        assert!(super::super::Shutdown::is(&err));
        kernel.recv(&mut buf).unwrap();
        assert_eq!(u32::from_ne_bytes(buf[..4].try_into().unwrap()), ev::DESTROY);
        drop(dev); // no second DESTROY
        kernel.set_nonblocking(true).unwrap();
        assert!(kernel.recv(&mut buf).is_err());
    }
}
