//! The real transport: a virtual USB HID security key through `/dev/uhid`.
//!
//! The kernel's uhid driver lets a process create a HID device: we write a
//! `UHID_CREATE2` event carrying the FIDO report descriptor, and from then on
//! browsers, libfido2 and OpenSSH see a `/dev/hidrawN` node like any USB
//! security key. Reports the host writes reach us as `UHID_OUTPUT` events;
//! we answer with `UHID_INPUT2` events.
//!
//! The event structures below mirror `linux/uhid.h` field for field
//! (`#[repr(C, packed)]`, sizes checked at compile time), and are turned into
//! and out of bytes with `zerocopy`, which proves at compile time that the
//! conversion is sound. So this module has no `unsafe` at all: `/dev/uhid` is
//! an ordinary character device read and written with `std::fs::File`.
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
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// The device node of the kernel's uhid driver.
pub const UHID_PATH: &str = "/dev/uhid";

/// USB vendor id: 0x1209 is pid.codes, the vendor id shared by open-source
/// hardware projects.
pub const VENDOR_ID: u32 = 0x1209;
/// Product id 0x0001 is pid.codes' "Test PID", set aside for testing and
/// private use (not for products sold to others). LocalPasskey uses it until
/// it registers a product id of its own; the udev rule and `doctor` match it.
pub const PRODUCT_ID: u32 = 0x0001;
/// The product name every client shows.
pub const DEVICE_NAME: &str = "LocalPasskey";

/// The FIDO HID report descriptor (FIDO CTAP 2.1, section 11.2.8.1): usage
/// page 0xF1D0 (FIDO Alliance), usage 0x01 (CTAPHID), one 64-byte input
/// report (usage 0x20) and one 64-byte output report (usage 0x21), no report
/// ids. Clients find security keys by this usage page.
pub const REPORT_DESCRIPTOR: [u8; 34] = [
    0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance)
    0x09, 0x01, // Usage (CTAPHID)
    0xa1, 0x01, // Collection (Application)
    0x09, 0x20, //   Usage (Input Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x81, 0x02, //   Input (Data, Variable, Absolute)
    0x09, 0x21, //   Usage (Output Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x91, 0x02, //   Output (Data, Variable, Absolute)
    0xc0, // End Collection
];

// ------------------------------------------------------------ linux/uhid.h

/// `BUS_USB` from linux/input.h: libfido2 ignores HID devices on other buses.
const BUS_USB: u16 = 0x03;
/// `HID_MAX_DESCRIPTOR_SIZE` from linux/hid.h.
const HID_MAX_DESCRIPTOR_SIZE: usize = 4096;
/// `UHID_DATA_MAX`.
const UHID_DATA_MAX: usize = 4096;

/// `enum uhid_event_type` (the legacy values keep their slots).
mod ev {
    pub const DESTROY: u32 = 1;
    pub const START: u32 = 2;
    pub const STOP: u32 = 3;
    pub const OPEN: u32 = 4;
    pub const CLOSE: u32 = 5;
    pub const OUTPUT: u32 = 6;
    pub const GET_REPORT: u32 = 9;
    pub const GET_REPORT_REPLY: u32 = 10;
    pub const CREATE2: u32 = 11;
    pub const INPUT2: u32 = 12;
    pub const SET_REPORT: u32 = 13;
    pub const SET_REPORT_REPLY: u32 = 14;
}

/// `enum uhid_report_type`: UHID_OUTPUT_REPORT.
const UHID_OUTPUT_REPORT: u8 = 1;

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

/// `struct uhid_create2_req`.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
struct Create2Req {
    name: [u8; 128],
    phys: [u8; 64],
    uniq: [u8; 64],
    rd_size: u16,
    bus: u16,
    vendor: u32,
    product: u32,
    version: u32,
    country: u32,
    rd_data: [u8; HID_MAX_DESCRIPTOR_SIZE],
}

/// `struct uhid_input2_req`.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
struct Input2Req {
    size: u16,
    data: [u8; UHID_DATA_MAX],
}

/// `struct uhid_output_req`.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
struct OutputReq {
    data: [u8; UHID_DATA_MAX],
    size: u16,
    rtype: u8,
}

/// `struct uhid_get_report_req`.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
struct GetReportReq {
    id: u32,
    rnum: u8,
    rtype: u8,
}

/// `struct uhid_get_report_reply_req`.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
struct GetReportReplyReq {
    id: u32,
    err: u16,
    size: u16,
    data: [u8; UHID_DATA_MAX],
}

/// `struct uhid_set_report_req` (its data is never read; only the header).
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
struct SetReportHeader {
    id: u32,
    rnum: u8,
    rtype: u8,
    size: u16,
}

/// `struct uhid_set_report_reply_req`.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
struct SetReportReplyReq {
    id: u32,
    err: u16,
}

/// `sizeof(struct uhid_event)`: a `__u32 type` and the union of the requests,
/// whose largest member is `uhid_create2_req`.
const EVENT_SIZE: usize = 4 + std::mem::size_of::<Create2Req>();

// The sizes the kernel header gives (packed structs, so no padding anywhere).
const _: () = assert!(std::mem::size_of::<Create2Req>() == 128 + 64 + 64 + 2 + 2 + 4 * 4 + 4096);
const _: () = assert!(std::mem::size_of::<Input2Req>() == 2 + 4096);
const _: () = assert!(std::mem::size_of::<OutputReq>() == 4096 + 2 + 1);
const _: () = assert!(std::mem::size_of::<GetReportReq>() == 6);
const _: () = assert!(std::mem::size_of::<GetReportReplyReq>() == 4 + 2 + 2 + 4096);
const _: () = assert!(std::mem::size_of::<SetReportReplyReq>() == 6);
const _: () = assert!(EVENT_SIZE == 4376);
const _: () = assert!(REPORT_DESCRIPTOR.len() <= HID_MAX_DESCRIPTOR_SIZE);

/// One event as the kernel reads or writes it: the type, then the request,
/// zero-padded to `sizeof(struct uhid_event)`.
fn event_bytes(kind: u32, req: &[u8]) -> Box<[u8; EVENT_SIZE]> {
    let mut buf = Box::new([0u8; EVENT_SIZE]);
    buf[..4].copy_from_slice(&kind.to_ne_bytes());
    buf[4..4 + req.len()].copy_from_slice(req);
    buf
}

fn copy_str(dst: &mut [u8], s: &str) {
    // Leave room for the terminating NUL the kernel expects.
    let n = s.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// What the created device calls itself.
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    pub name: String,
    /// Shown as the HID "serial number" (`HID_UNIQ`). ASCII only: udev rules
    /// and libfido2 choke on arbitrary bytes here.
    pub uniq: String,
    pub vendor: u32,
    pub product: u32,
    pub version: u32,
}

impl DeviceIdentity {
    /// Our name and ids, with a per-installation serial.
    pub fn new(uniq: &str) -> Self {
        let uniq: String = uniq
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(63)
            .collect();
        let v = |s: &str| s.parse::<u32>().unwrap_or(0);
        let version = (v(env!("CARGO_PKG_VERSION_MAJOR")) << 8) | v(env!("CARGO_PKG_VERSION_MINOR"));
        Self {
            name: DEVICE_NAME.into(),
            uniq,
            vendor: VENDOR_ID,
            product: PRODUCT_ID,
            version,
        }
    }

    fn create2(&self) -> Box<[u8; EVENT_SIZE]> {
        let mut req = Create2Req::new_zeroed();
        copy_str(&mut req.name, &self.name);
        copy_str(&mut req.phys, "localpasskey/uhid");
        copy_str(&mut req.uniq, &self.uniq);
        req.rd_size = REPORT_DESCRIPTOR.len() as u16;
        req.bus = BUS_USB;
        req.vendor = self.vendor;
        req.product = self.product;
        req.version = self.version;
        req.country = 0;
        req.rd_data[..REPORT_DESCRIPTOR.len()].copy_from_slice(&REPORT_DESCRIPTOR);
        event_bytes(ev::CREATE2, req.as_bytes())
    }
}

/// What the host sent, decoded from one event.
#[derive(Debug, PartialEq, Eq)]
enum HostEvent {
    /// A 64-byte CTAPHID report (report-id byte already removed).
    Report([u8; 64]),
    /// An output report of the wrong size or type: dropped.
    BadReport(usize),
    Lifecycle(&'static str),
    GetReport {
        id: u32,
    },
    SetReport {
        id: u32,
    },
    Other(u32),
}

fn decode(buf: &[u8]) -> Option<HostEvent> {
    let kind = u32::from_ne_bytes(buf.get(..4)?.try_into().ok()?);
    let body = &buf[4..];
    Some(match kind {
        ev::START => HostEvent::Lifecycle("start"),
        ev::STOP => HostEvent::Lifecycle("stop"),
        ev::OPEN => HostEvent::Lifecycle("open"),
        ev::CLOSE => HostEvent::Lifecycle("close"),
        ev::OUTPUT => {
            let (out, _) = OutputReq::read_from_prefix(body).ok()?;
            let size = usize::from(out.size).min(UHID_DATA_MAX);
            let data = &out.data[..size];
            // Our descriptor has no report ids, so hidraw passes the report-id
            // byte 0 the host wrote in front of the 64 bytes.
            let report = match data {
                [0, rest @ ..] if rest.len() == 64 => rest,
                _ if data.len() == 64 => data,
                _ => return Some(HostEvent::BadReport(size)),
            };
            if out.rtype != UHID_OUTPUT_REPORT {
                return Some(HostEvent::BadReport(size));
            }
            HostEvent::Report(report.try_into().ok()?)
        }
        ev::GET_REPORT => {
            let (req, _) = GetReportReq::read_from_prefix(body).ok()?;
            HostEvent::GetReport { id: req.id }
        }
        ev::SET_REPORT => {
            let (req, _) = SetReportHeader::read_from_prefix(body).ok()?;
            HostEvent::SetReport { id: req.id }
        }
        other => HostEvent::Other(other),
    })
}

fn input2(report: &[u8; 64]) -> Box<[u8; EVENT_SIZE]> {
    let mut req = Input2Req::new_zeroed();
    req.size = 64;
    req.data[..64].copy_from_slice(report);
    event_bytes(ev::INPUT2, req.as_bytes())
}

/// EIO: we have no feature reports to get or set.
const EIO: u16 = 5;

fn get_report_reply(id: u32) -> Box<[u8; EVENT_SIZE]> {
    let mut req = GetReportReplyReq::new_zeroed();
    req.id = id;
    req.err = EIO;
    event_bytes(ev::GET_REPORT_REPLY, req.as_bytes())
}

fn set_report_reply(id: u32) -> Box<[u8; EVENT_SIZE]> {
    let req = SetReportReplyReq { id, err: EIO };
    event_bytes(ev::SET_REPORT_REPLY, req.as_bytes())
}

fn destroy() -> Box<[u8; EVENT_SIZE]> {
    event_bytes(ev::DESTROY, &[])
}

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
            name = %identity.name,
            vendor = format!("{:04x}", identity.vendor),
            product = format!("{:04x}", identity.product),
            uniq = %identity.uniq,
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

    /// signal-hook's own self-pipe wakes a thread that tells `recv` to stop.
    fn stop_on_signals(&self) -> io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ])?;
        let tx = self.tx.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(Msg::Signal(sig)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(())
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
            self.identity.name, self.identity.vendor, self.identity.product, self.identity.uniq, self.where_
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// Offsets from linux/uhid.h (counted by hand from the packed layout).
    #[test]
    fn layouts_match_the_kernel_header() {
        assert_eq!(offset_of!(Create2Req, name), 0);
        assert_eq!(offset_of!(Create2Req, phys), 128);
        assert_eq!(offset_of!(Create2Req, uniq), 192);
        assert_eq!(offset_of!(Create2Req, rd_size), 256);
        assert_eq!(offset_of!(Create2Req, bus), 258);
        assert_eq!(offset_of!(Create2Req, vendor), 260);
        assert_eq!(offset_of!(Create2Req, product), 264);
        assert_eq!(offset_of!(Create2Req, version), 268);
        assert_eq!(offset_of!(Create2Req, country), 272);
        assert_eq!(offset_of!(Create2Req, rd_data), 276);
        assert_eq!(offset_of!(OutputReq, size), 4096);
        assert_eq!(offset_of!(OutputReq, rtype), 4098);
        assert_eq!(offset_of!(GetReportReplyReq, data), 8);
    }

    #[test]
    fn create2_event_carries_descriptor_and_ids() {
        let id = DeviceIdentity::new("ab12-cd34\u{1}é");
        assert_eq!(id.uniq, "ab12cd34");
        let ev = id.create2();
        assert_eq!(u32::from_ne_bytes(ev[..4].try_into().unwrap()), ev::CREATE2);
        let body = &ev[4..];
        assert_eq!(&body[..12], b"LocalPasskey");
        assert_eq!(body[12], 0);
        assert_eq!(&body[192..200], b"ab12cd34");
        assert_eq!(u16::from_ne_bytes([body[256], body[257]]), 34);
        assert_eq!(u16::from_ne_bytes([body[258], body[259]]), BUS_USB);
        assert_eq!(u32::from_ne_bytes(body[260..264].try_into().unwrap()), VENDOR_ID);
        assert_eq!(u32::from_ne_bytes(body[264..268].try_into().unwrap()), PRODUCT_ID);
        assert_eq!(&body[276..276 + 34], &REPORT_DESCRIPTOR);
        assert_eq!(&body[276..279], &[0x06, 0xd0, 0xf1]);
    }

    fn output_event(data: &[u8], rtype: u8) -> Vec<u8> {
        let mut req = OutputReq::new_zeroed();
        req.data[..data.len()].copy_from_slice(data);
        req.size = data.len() as u16;
        req.rtype = rtype;
        event_bytes(ev::OUTPUT, req.as_bytes()).to_vec()
    }

    #[test]
    fn output_reports_lose_their_report_id_byte() {
        let mut with_id = vec![0u8];
        with_id.extend((0..64).map(|i| i as u8 + 1));
        let expect: [u8; 64] = with_id[1..].try_into().unwrap();
        assert_eq!(
            decode(&output_event(&with_id, UHID_OUTPUT_REPORT)),
            Some(HostEvent::Report(expect))
        );
        assert_eq!(
            decode(&output_event(&expect, UHID_OUTPUT_REPORT)),
            Some(HostEvent::Report(expect))
        );
        assert_eq!(
            decode(&output_event(&[1, 2, 3], UHID_OUTPUT_REPORT)),
            Some(HostEvent::BadReport(3))
        );
        assert_eq!(decode(&output_event(&with_id, 0)), Some(HostEvent::BadReport(65)));
        // The kernel never sends short events, but they must not panic either.
        assert_eq!(decode(&[6, 0]), None);
        assert_eq!(decode(&output_event(&with_id, 1)[..100]), None);
    }

    #[test]
    fn lifecycle_and_feature_requests() {
        for (kind, name) in [(2, "start"), (3, "stop"), (4, "open"), (5, "close")] {
            assert_eq!(
                decode(&event_bytes(kind, &[])[..]),
                Some(HostEvent::Lifecycle(name))
            );
        }
        let get = event_bytes(ev::GET_REPORT, &[7, 0, 0, 0, 0, 0]);
        assert_eq!(decode(&get[..]), Some(HostEvent::GetReport { id: 7 }));
        let reply = get_report_reply(7);
        assert_eq!(
            u32::from_ne_bytes(reply[..4].try_into().unwrap()),
            ev::GET_REPORT_REPLY
        );
        assert_eq!(&reply[4..10], &[7, 0, 0, 0, EIO as u8, 0]);
        let input = input2(&[0xaa; 64]);
        assert_eq!(&input[4..6], &64u16.to_ne_bytes());
        assert_eq!(&input[6..70], &[0xaa; 64]);
        assert_eq!(input[70], 0);
    }

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
        kernel.send(&output_event(&with_id, UHID_OUTPUT_REPORT)).unwrap();
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
