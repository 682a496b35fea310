//! What travels on the broker's unix socket, and how the broker reads it.
//!
//! Every record is exactly 64 bytes, in both directions, on a stream socket.
//! A HID report is 64 bytes too, so after the greeting each record *is* one
//! report and nothing needs a length field that could lie:
//!
//! ```text
//! daemon -> broker   hello:  "LPKB" 0x01 n serial[n] zeros      (once, first)
//! broker -> daemon   answer: "LPKB" 0x01 status zeros           (once)
//! daemon -> broker   input report (64 bytes), for the host      (repeated)
//! broker -> daemon   output report (64 bytes), from the host    (repeated)
//! ```
//!
//! The hello names only the serial. Everything else about the device (name,
//! ids, bus, report descriptor, owner) is the broker's to decide, so a client
//! cannot ask for a keyboard: there is no field to ask with.
//!
//! [`Session`] is the whole of what the broker makes of the bytes it reads:
//! no I/O, so the fuzz target drives exactly this code.

use crate::uhid::MAX_SERIAL;

pub const RECORD: usize = 64;
pub const MAGIC: [u8; 4] = *b"LPKB";
pub const VERSION: u8 = 1;

/// The broker's one answer to a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// The device exists; reports flow from now on.
    Created = 0,
    /// The hello was not one: wrong magic, version or serial.
    BadHello = 1,
    /// This uid already has a device (or a connection on its way to one).
    Busy = 2,
    /// The kernel refused the device (no uhid module, or the broker may not
    /// open /dev/uhid).
    DeviceFailed = 3,
}

impl Status {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Created,
            1 => Self::BadHello,
            2 => Self::Busy,
            3 => Self::DeviceFailed,
            _ => return None,
        })
    }

    pub fn explain(self) -> &'static str {
        match self {
            Self::Created => "the security key was created",
            Self::BadHello => "the broker did not understand our greeting (a version mismatch?)",
            Self::Busy => "the broker already runs a security key for this user (is another daemon running?)",
            Self::DeviceFailed => "the broker could not create the device (is the uhid module loaded?)",
        }
    }
}

/// The daemon's greeting, or None if no ASCII letter or digit is left of
/// `serial` (the broker would refuse it).
pub fn hello(serial: &str) -> Option<[u8; RECORD]> {
    let serial = crate::uhid::clean_serial(serial);
    if serial.is_empty() {
        return None;
    }
    let mut r = [0u8; RECORD];
    r[..4].copy_from_slice(&MAGIC);
    r[4] = VERSION;
    r[5] = serial.len() as u8;
    r[6..6 + serial.len()].copy_from_slice(serial.as_bytes());
    Some(r)
}

/// The serial a hello carries, if it is a well-formed hello: the magic, our
/// version, 1 to [`MAX_SERIAL`] ASCII letters and digits, then only zeros.
pub fn parse_hello(r: &[u8; RECORD]) -> Option<String> {
    if r[..4] != MAGIC || r[4] != VERSION {
        return None;
    }
    let n = usize::from(r[5]);
    if n == 0 || n > MAX_SERIAL {
        return None;
    }
    let serial = &r[6..6 + n];
    if !serial.iter().all(u8::is_ascii_alphanumeric) || r[6 + n..].iter().any(|&b| b != 0) {
        return None;
    }
    // ASCII alphanumerics are UTF-8.
    String::from_utf8(serial.to_vec()).ok()
}

pub fn answer(status: Status) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..4].copy_from_slice(&MAGIC);
    r[4] = VERSION;
    r[5] = status as u8;
    r
}

/// The broker's answer, as the daemon reads it.
pub fn parse_answer(r: &[u8; RECORD]) -> Option<Status> {
    if r[..4] != MAGIC || r[4] != VERSION || r[6..].iter().any(|&b| b != 0) {
        return None;
    }
    Status::from_byte(r[5])
}

/// What the broker does next with a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Create this uid's device with this serial (always first, at most once).
    Create(String),
    /// Hand this input report to the host.
    Input([u8; RECORD]),
    /// Answer `BadHello` (if set) and drop the connection; nothing follows.
    Close(Option<Status>),
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Hello,
    Relaying,
    Closed,
}

/// One connection as the broker reads it: cuts the byte stream into 64-byte
/// records and says what each means. It holds at most one partial record.
#[derive(Debug)]
pub struct Session {
    partial: Vec<u8>,
    state: State,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Self {
            partial: Vec::with_capacity(RECORD),
            state: State::Hello,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes read from the socket, in order; the actions they call for are
    /// appended to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Action>) {
        while !bytes.is_empty() && self.state != State::Closed {
            let take = (RECORD - self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.partial.len() < RECORD {
                return;
            }
            let mut record = [0u8; RECORD];
            record.copy_from_slice(&self.partial);
            self.partial.clear();
            out.push(self.record(&record));
        }
    }

    fn record(&mut self, r: &[u8; RECORD]) -> Action {
        match self.state {
            State::Hello => match parse_hello(r) {
                Some(serial) => {
                    self.state = State::Relaying;
                    Action::Create(serial)
                }
                None => {
                    self.state = State::Closed;
                    Action::Close(Some(Status::BadHello))
                }
            },
            State::Relaying => Action::Input(*r),
            State::Closed => Action::Close(None),
        }
    }

    /// The peer hung up: a partial record is dropped, never padded and sent.
    pub fn end(&mut self) -> Action {
        self.state = State::Closed;
        self.partial.clear();
        Action::Close(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut Session, bytes: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        s.feed(bytes, &mut out);
        out
    }

    #[test]
    fn hello_round_trip_and_refusals() {
        let h = hello("ab-12 cd").unwrap();
        assert_eq!(parse_hello(&h).as_deref(), Some("ab12cd"));
        assert_eq!(hello("--"), None);
        let mut bad = h;
        bad[4] = 2;
        assert_eq!(parse_hello(&bad), None, "another version");
        let mut bad = h;
        bad[63] = 1;
        assert_eq!(parse_hello(&bad), None, "bytes after the serial");
        let mut bad = h;
        bad[6] = b'/';
        assert_eq!(parse_hello(&bad), None, "a serial that is not alphanumeric");
        let mut bad = h;
        bad[5] = 0;
        assert_eq!(parse_hello(&bad), None, "an empty serial");
        let mut bad = h;
        bad[5] = (MAX_SERIAL + 1) as u8;
        assert_eq!(parse_hello(&bad), None, "a serial longer than the limit");
        let long = hello(&"z".repeat(100)).unwrap();
        assert_eq!(parse_hello(&long).unwrap().len(), MAX_SERIAL);
    }

    #[test]
    fn answers_round_trip() {
        for s in [
            Status::Created,
            Status::BadHello,
            Status::Busy,
            Status::DeviceFailed,
        ] {
            assert_eq!(parse_answer(&answer(s)), Some(s));
        }
        let mut r = answer(Status::Created);
        r[5] = 9;
        assert_eq!(parse_answer(&r), None);
    }

    #[test]
    fn records_are_cut_at_64_bytes_whatever_the_reads() {
        let mut s = Session::new();
        let h = hello("s1").unwrap();
        assert!(feed(&mut s, &h[..10]).is_empty());
        assert_eq!(feed(&mut s, &h[10..]), vec![Action::Create("s1".into())]);
        let mut two = vec![0x11; RECORD];
        two.extend([0x22; RECORD]);
        two.extend([0x33; 5]);
        assert_eq!(
            feed(&mut s, &two),
            vec![Action::Input([0x11; RECORD]), Action::Input([0x22; RECORD])]
        );
        assert_eq!(feed(&mut s, &[0x33; 59]), vec![Action::Input([0x33; RECORD])]);
        assert_eq!(feed(&mut s, &[1, 2, 3]), vec![]);
        assert_eq!(s.end(), Action::Close(None));
        assert!(feed(&mut s, &[0; 200]).is_empty(), "nothing after the end");
    }

    /// A report where the hello belongs is no hello: the broker closes
    /// without creating anything, and reads nothing more.
    #[test]
    fn no_device_without_a_hello() {
        let mut s = Session::new();
        let out = feed(&mut s, &[0x41; RECORD * 3]);
        assert_eq!(out, vec![Action::Close(Some(Status::BadHello))]);
        assert!(s.is_closed());
    }

    /// A second hello is just a report: it cannot make a second device.
    #[test]
    fn a_second_hello_creates_nothing() {
        let mut s = Session::new();
        let h = hello("one").unwrap();
        let mut twice = h.to_vec();
        twice.extend(hello("two").unwrap());
        let out = feed(&mut s, &twice);
        assert_eq!(out[0], Action::Create("one".into()));
        assert!(matches!(out[1], Action::Input(_)));
    }
}
