//! What the uhid broker reads from its socket: any bytes, cut into reads of
//! any size. The broker runs as root and its clients are every local user,
//! so besides "no panic" this checks the promises an attacker would go for:
//! a device is created at most once, only for a well-formed hello, and it is
//! always our FIDO key (name, ids, bus, report descriptor) whatever was
//! sent; nothing is acted on after the connection is closed; every report
//! handed to the host is a whole 64-byte record the client sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use localpasskey_broker::protocol::{self, Action, Session, Status, RECORD};
use localpasskey_broker::uhid::{self, DeviceIdentity, MAX_SERIAL, REPORT_DESCRIPTOR};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let mut session = Session::new();
    let mut actions = Vec::new();
    // Reads of 1 to 256 bytes, sizes driven by the input.
    let mut rest = data;
    let mut step = usize::from(cut) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        session.feed(&rest[..n], &mut actions);
        rest = &rest[n..];
        step = (step * 7 + 3) % 256 + 1;
    }
    actions.push(session.end());

    let mut created = false;
    let mut closed = false;
    let mut inputs = 0usize;
    for (i, a) in actions.iter().enumerate() {
        assert!(
            !closed || *a == Action::Close(None),
            "an action after the close: {a:?}"
        );
        match a {
            Action::Create(serial) => {
                assert!(i == 0 && !created, "a device created twice, or after reports");
                created = true;
                assert!(!serial.is_empty() && serial.len() <= MAX_SERIAL);
                assert!(serial.bytes().all(|b| b.is_ascii_alphanumeric()));
                let hello: [u8; RECORD] = data[..RECORD].try_into().unwrap();
                assert_eq!(protocol::parse_hello(&hello).as_deref(), Some(serial.as_str()));
                let ev = DeviceIdentity::for_owner(serial, u32::from(cut)).create2();
                let body = &ev[4..];
                assert_eq!(u32::from_ne_bytes(ev[..4].try_into().unwrap()), uhid::ev::CREATE2);
                assert_eq!(&body[..13], b"LocalPasskey\0");
                assert_eq!(
                    u16::from_ne_bytes([body[256], body[257]]) as usize,
                    REPORT_DESCRIPTOR.len()
                );
                assert_eq!(u16::from_ne_bytes([body[258], body[259]]), uhid::BUS_USB);
                assert_eq!(
                    u32::from_ne_bytes(body[260..264].try_into().unwrap()),
                    uhid::VENDOR_ID
                );
                assert_eq!(
                    u32::from_ne_bytes(body[264..268].try_into().unwrap()),
                    uhid::PRODUCT_ID
                );
                assert_eq!(&body[276..276 + REPORT_DESCRIPTOR.len()], &REPORT_DESCRIPTOR);
                assert!(body[276 + REPORT_DESCRIPTOR.len()..].iter().all(|&b| b == 0));
            }
            Action::Input(report) => {
                assert!(created, "a report before the device");
                inputs += 1;
                let at = inputs * RECORD;
                assert_eq!(
                    &data[at..at + RECORD],
                    &report[..],
                    "a report the client did not send"
                );
            }
            Action::Close(status) => {
                assert!(matches!(status, None | Some(Status::BadHello)));
                if status.is_some() {
                    assert!(i == 0, "BadHello after the hello");
                }
                closed = true;
            }
        }
    }
    assert!(closed, "the end of the stream closes the session");
    assert!(session.is_closed());
    if !created {
        assert_eq!(inputs, 0);
    }

    // The broker's answers and the kernel's events (which the broker
    // decodes) must not panic on any bytes either.
    if let Ok(r) = <[u8; RECORD]>::try_from(&data[..data.len().min(RECORD)]) {
        let _ = protocol::parse_answer(&r);
    }
    let _ = uhid::decode(data);
});
