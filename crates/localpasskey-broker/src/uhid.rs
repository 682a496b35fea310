//! The kernel's uhid interface (`linux/uhid.h`), as bytes.
//!
//! The event structures mirror the header field for field (`#[repr(C,
//! packed)]`, sizes checked at compile time) and are turned into and out of
//! bytes with `zerocopy`, which proves the conversions sound at compile time:
//! no `unsafe` here. Both the broker and the daemon's direct mode (root in
//! the test VM) build their events with these functions, so there is one
//! description of our device.

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
pub const BUS_USB: u16 = 0x03;
/// `HID_MAX_DESCRIPTOR_SIZE` from linux/hid.h.
const HID_MAX_DESCRIPTOR_SIZE: usize = 4096;
/// `UHID_DATA_MAX`.
const UHID_DATA_MAX: usize = 4096;

/// `enum uhid_event_type` (the legacy values keep their slots).
pub mod ev {
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
pub const UHID_OUTPUT_REPORT: u8 = 1;

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
pub const EVENT_SIZE: usize = 4 + std::mem::size_of::<Create2Req>();

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
pub fn event_bytes(kind: u32, req: &[u8]) -> Box<[u8; EVENT_SIZE]> {
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

/// What the created device calls itself. Only the serial and the owner vary:
/// name, ids, bus and report descriptor are fixed, so nobody who asks the
/// broker for a device can make it anything but a FIDO security key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Shown as the HID "serial number" (`HID_UNIQ`). ASCII only: udev rules
    /// and libfido2 choke on arbitrary bytes here.
    uniq: String,
    /// `HID_PHYS`. For a device the broker made, the owner's uid in decimal:
    /// the udev rule reads it (`OWNER="$env{HID_PHYS}"`) to give the hidraw
    /// node to that uid alone. Only root can write a CREATE2, so only root
    /// chooses it.
    phys: String,
}

/// The serial as the device may carry it: ASCII letters and digits, at most
/// [`MAX_SERIAL`] of them.
pub fn clean_serial(uniq: &str) -> String {
    uniq.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(MAX_SERIAL)
        .collect()
}

/// The longest serial we accept; the kernel field has 64 bytes with a NUL.
pub const MAX_SERIAL: usize = 48;

/// What a device made without the broker says it is (`HID_PHYS`): nothing a
/// udev rule takes for an owner.
pub const DIRECT_PHYS: &str = "localpasskey/uhid";

impl DeviceIdentity {
    /// A device made by whoever holds /dev/uhid itself (root; tests).
    pub fn new(uniq: &str) -> Self {
        Self {
            uniq: clean_serial(uniq),
            phys: DIRECT_PHYS.into(),
        }
    }

    /// A device the broker makes for `uid`.
    pub fn for_owner(uniq: &str, uid: u32) -> Self {
        Self {
            uniq: clean_serial(uniq),
            phys: uid.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        DEVICE_NAME
    }

    pub fn uniq(&self) -> &str {
        &self.uniq
    }

    pub fn phys(&self) -> &str {
        &self.phys
    }

    /// Major and minor of our version, as HID devices carry it.
    pub fn version() -> u32 {
        let v = |s: &str| s.parse::<u32>().unwrap_or(0);
        (v(env!("CARGO_PKG_VERSION_MAJOR")) << 8) | v(env!("CARGO_PKG_VERSION_MINOR"))
    }

    pub fn create2(&self) -> Box<[u8; EVENT_SIZE]> {
        let mut req = Create2Req::new_zeroed();
        copy_str(&mut req.name, DEVICE_NAME);
        copy_str(&mut req.phys, &self.phys);
        copy_str(&mut req.uniq, &self.uniq);
        req.rd_size = REPORT_DESCRIPTOR.len() as u16;
        req.bus = BUS_USB;
        req.vendor = VENDOR_ID;
        req.product = PRODUCT_ID;
        req.version = Self::version();
        req.country = 0;
        req.rd_data[..REPORT_DESCRIPTOR.len()].copy_from_slice(&REPORT_DESCRIPTOR);
        event_bytes(ev::CREATE2, req.as_bytes())
    }
}

/// An output event as the kernel writes it (tests and the fuzz target).
pub fn output_event(data: &[u8], rtype: u8) -> Box<[u8; EVENT_SIZE]> {
    let mut req = OutputReq::new_zeroed();
    let n = data.len().min(UHID_DATA_MAX);
    req.data[..n].copy_from_slice(&data[..n]);
    req.size = n as u16;
    req.rtype = rtype;
    event_bytes(ev::OUTPUT, req.as_bytes())
}

/// What the host sent, decoded from one event.
#[derive(Debug, PartialEq, Eq)]
pub enum HostEvent {
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

pub fn decode(buf: &[u8]) -> Option<HostEvent> {
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

pub fn input2(report: &[u8; 64]) -> Box<[u8; EVENT_SIZE]> {
    let mut req = Input2Req::new_zeroed();
    req.size = 64;
    req.data[..64].copy_from_slice(report);
    event_bytes(ev::INPUT2, req.as_bytes())
}

/// EIO: we have no feature reports to get or set.
pub const EIO: u16 = 5;

pub fn get_report_reply(id: u32) -> Box<[u8; EVENT_SIZE]> {
    let mut req = GetReportReplyReq::new_zeroed();
    req.id = id;
    req.err = EIO;
    event_bytes(ev::GET_REPORT_REPLY, req.as_bytes())
}

pub fn set_report_reply(id: u32) -> Box<[u8; EVENT_SIZE]> {
    let req = SetReportReplyReq { id, err: EIO };
    event_bytes(ev::SET_REPORT_REPLY, req.as_bytes())
}

pub fn destroy() -> Box<[u8; EVENT_SIZE]> {
    event_bytes(ev::DESTROY, &[])
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
        assert_eq!(id.uniq(), "ab12cd34");
        let ev = id.create2();
        assert_eq!(u32::from_ne_bytes(ev[..4].try_into().unwrap()), ev::CREATE2);
        let body = &ev[4..];
        assert_eq!(&body[..12], b"LocalPasskey");
        assert_eq!(body[12], 0);
        assert_eq!(&body[128..128 + DIRECT_PHYS.len()], DIRECT_PHYS.as_bytes());
        assert_eq!(&body[192..200], b"ab12cd34");
        assert_eq!(u16::from_ne_bytes([body[256], body[257]]), 34);
        assert_eq!(u16::from_ne_bytes([body[258], body[259]]), BUS_USB);
        assert_eq!(u32::from_ne_bytes(body[260..264].try_into().unwrap()), VENDOR_ID);
        assert_eq!(u32::from_ne_bytes(body[264..268].try_into().unwrap()), PRODUCT_ID);
        assert_eq!(&body[276..276 + 34], &REPORT_DESCRIPTOR);
        assert_eq!(&body[276..279], &[0x06, 0xd0, 0xf1]);
    }

    #[test]
    fn owner_is_the_phys_field() {
        let ev = DeviceIdentity::for_owner("s1", 1000).create2();
        assert_eq!(&ev[4 + 128..4 + 133], b"1000\0");
        let long = "x".repeat(200);
        assert_eq!(DeviceIdentity::for_owner(&long, 0).uniq().len(), MAX_SERIAL);
    }

    #[test]
    fn output_reports_lose_their_report_id_byte() {
        let mut with_id = vec![0u8];
        with_id.extend((0..64).map(|i| i as u8 + 1));
        let expect: [u8; 64] = with_id[1..].try_into().unwrap();
        assert_eq!(
            decode(&output_event(&with_id, UHID_OUTPUT_REPORT)[..]),
            Some(HostEvent::Report(expect))
        );
        assert_eq!(
            decode(&output_event(&expect, UHID_OUTPUT_REPORT)[..]),
            Some(HostEvent::Report(expect))
        );
        assert_eq!(
            decode(&output_event(&[1, 2, 3], UHID_OUTPUT_REPORT)[..]),
            Some(HostEvent::BadReport(3))
        );
        assert_eq!(
            decode(&output_event(&with_id, 0)[..]),
            Some(HostEvent::BadReport(65))
        );
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
}
