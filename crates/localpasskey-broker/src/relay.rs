//! One connection: check who it is, create their device, relay reports.
//!
//! Per connection one thread and, once the hello is read, one `/dev/uhid`
//! descriptor; `poll(2)` waits on both. The uid is claimed at accept time,
//! before a byte is read, so a uid never has two connections at once: one
//! user cannot pile up half-open connections, and a second daemon of the
//! same user is told `Busy` instead of making a second device.

use crate::protocol::{answer, Action, Session, Status, RECORD};
use crate::uhid::{self, DeviceIdentity, HostEvent, EVENT_SIZE};
use rustix::event::{poll, PollFd, PollFlags};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

/// How long a client may take to greet: a connection that says nothing
/// holds its uid's slot for at most this long.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A daemon that stops reading its reports for this long loses its device
/// rather than stall the host's writes.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The uids that have a connection now.
#[derive(Default)]
pub struct Registry {
    uids: Mutex<HashSet<u32>>,
}

/// A uid's slot; released when the connection ends, however it ends.
pub struct Claim<'a> {
    registry: &'a Registry,
    uid: u32,
}

impl Registry {
    pub fn claim(&self, uid: u32) -> Option<Claim<'_>> {
        let fresh = self.uids.lock().unwrap_or_else(|e| e.into_inner()).insert(uid);
        // A Claim is made only for a fresh uid: dropping one releases it.
        if fresh {
            Some(Claim { registry: self, uid })
        } else {
            None
        }
    }

    pub fn len(&self) -> usize {
        self.uids.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut uids = self.registry.uids.lock().unwrap_or_else(|e| e.into_inner());
        uids.remove(&self.uid);
    }
}

/// Opens /dev/uhid (a parameter so the tests can hand in a stand-in).
pub type Opener<'a> = &'a (dyn Fn() -> io::Result<File> + Sync);

/// The open device; dropping it destroys the device in the kernel.
struct Device(File);

impl Drop for Device {
    fn drop(&mut self) {
        // Closing the descriptor destroys the device too; DESTROY first says
        // so explicitly to the readers of the hidraw node.
        let _ = write_event(&self.0, &uhid::destroy());
    }
}

fn write_event(dev: &File, event: &[u8; EVENT_SIZE]) -> io::Result<()> {
    let n = (&*dev).write(event)?;
    if n != EVENT_SIZE {
        return Err(io::Error::other(format!("short write to uhid: {n} bytes")));
    }
    Ok(())
}

/// Serves one client whose uid the kernel vouched for; returns when the
/// connection or the device ends.
pub fn serve(mut conn: UnixStream, uid: u32, registry: &Registry, open: Opener) -> io::Result<()> {
    let Some(_claim) = registry.claim(uid) else {
        tracing::warn!(uid, "refused a second connection: this uid already has one");
        let _ = conn.write_all(&answer(Status::Busy));
        return Ok(());
    };
    conn.set_read_timeout(Some(HELLO_TIMEOUT))?;
    conn.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut session = Session::new();
    let mut actions = Vec::new();
    let mut dev: Option<Device> = None;
    let mut buf = vec![0u8; EVENT_SIZE];
    loop {
        for action in actions.drain(..) {
            match action {
                Action::Create(serial) => {
                    let identity = DeviceIdentity::for_owner(&serial, uid);
                    match open().and_then(|f| write_event(&f, &identity.create2()).map(|()| f)) {
                        Ok(f) => {
                            dev = Some(Device(f));
                            conn.write_all(&answer(Status::Created))?;
                            conn.set_read_timeout(None)?;
                            tracing::info!(uid, serial = %identity.uniq(), "security key created");
                        }
                        Err(e) => {
                            tracing::error!(uid, "cannot create the security key: {e}");
                            let _ = conn.write_all(&answer(Status::DeviceFailed));
                            return Ok(());
                        }
                    }
                }
                Action::Input(report) => {
                    if let Some(d) = &dev {
                        write_event(&d.0, &uhid::input2(&report))?;
                    }
                }
                Action::Close(Some(status)) => {
                    tracing::warn!(uid, "refused: {}", status.explain());
                    let _ = conn.write_all(&answer(status));
                    return Ok(());
                }
                Action::Close(None) => return Ok(()),
            }
        }
        let Some(d) = &dev else {
            // Before the hello only the socket matters (with its timeout).
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            session.feed(&buf[..n], &mut actions);
            continue;
        };
        let (sock_ready, dev_ready) = {
            let mut fds = [
                PollFd::new(&conn, PollFlags::IN),
                PollFd::new(&d.0, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let gone = PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
            if fds[1].revents().intersects(gone) {
                return Err(io::Error::other("the uhid device failed"));
            }
            (
                !fds[0].revents().is_empty(),
                fds[1].revents().contains(PollFlags::IN),
            )
        };
        if dev_ready {
            let n = (&d.0).read(&mut buf)?;
            host_event(&mut conn, &d.0, &buf[..n])?;
        }
        if sock_ready {
            let n = match conn.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                actions.push(session.end());
            } else {
                session.feed(&buf[..n], &mut actions);
            }
        }
    }
}

/// What the kernel told the device: output reports go to the client, feature
/// report requests are refused (we have none), the rest is ignored.
fn host_event(conn: &mut UnixStream, dev: &File, event: &[u8]) -> io::Result<()> {
    match uhid::decode(event) {
        Some(HostEvent::Report(report)) => {
            let report: &[u8; RECORD] = &report;
            conn.write_all(report)
        }
        Some(HostEvent::GetReport { id }) => write_event(dev, &uhid::get_report_reply(id)),
        Some(HostEvent::SetReport { id }) => write_event(dev, &uhid::set_report_reply(id)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{hello, parse_answer};
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixDatagram;
    use std::sync::Arc;

    /// A stand-in for /dev/uhid: one end of a datagram socket pair, which
    /// keeps event boundaries like the kernel does.
    fn fake_uhid() -> (impl Fn() -> io::Result<File> + Sync, UnixDatagram) {
        let (ours, kernel) = UnixDatagram::pair().unwrap();
        let ours = Mutex::new(Some(ours));
        let open = move || {
            let s = ours
                .lock()
                .unwrap()
                .take()
                .ok_or_else(|| io::Error::other("opened twice"))?;
            Ok(File::from(OwnedFd::from(s)))
        };
        (open, kernel)
    }

    fn kind(event: &[u8]) -> u32 {
        u32::from_ne_bytes(event[..4].try_into().unwrap())
    }

    fn read_answer(c: &mut UnixStream) -> Status {
        let mut r = [0u8; RECORD];
        c.read_exact(&mut r).unwrap();
        parse_answer(&r).unwrap()
    }

    #[test]
    fn a_device_for_the_uid_then_reports_both_ways() {
        let (open, kernel) = fake_uhid();
        let registry = Arc::new(Registry::default());
        let (mut client, server) = UnixStream::pair().unwrap();
        let reg = Arc::clone(&registry);
        let t = std::thread::spawn(move || serve(server, 1234, &reg, &open));
        client.write_all(&hello("ser1al").unwrap()).unwrap();
        assert_eq!(read_answer(&mut client), Status::Created);
        let mut ev = vec![0u8; EVENT_SIZE + 1];
        let n = kernel.recv(&mut ev).unwrap();
        assert_eq!(n, EVENT_SIZE);
        assert_eq!(kind(&ev), uhid::ev::CREATE2);
        assert_eq!(&ev[4 + 128..4 + 133], b"1234\0", "the owner's uid is HID_PHYS");
        assert_eq!(&ev[4 + 192..4 + 199], b"ser1al\0");
        assert_eq!(&ev[4 + 276..4 + 276 + 34], &uhid::REPORT_DESCRIPTOR);

        client.write_all(&[0x5a; RECORD]).unwrap();
        kernel.recv(&mut ev).unwrap();
        assert_eq!(kind(&ev), uhid::ev::INPUT2);
        assert_eq!(&ev[6..70], &[0x5a; 64]);

        let mut out = vec![0u8];
        out.extend([0x77; 64]);
        kernel
            .send(&uhid::output_event(&out, uhid::UHID_OUTPUT_REPORT)[..])
            .unwrap();
        let mut r = [0u8; RECORD];
        client.read_exact(&mut r).unwrap();
        assert_eq!(r, [0x77; RECORD]);

        // A feature report request is refused at once, never relayed.
        kernel
            .send(&uhid::event_bytes(uhid::ev::GET_REPORT, &[3, 0, 0, 0, 0, 0])[..])
            .unwrap();
        kernel.recv(&mut ev).unwrap();
        assert_eq!(kind(&ev), uhid::ev::GET_REPORT_REPLY);

        assert_eq!(registry.len(), 1);
        drop(client);
        t.join().unwrap().unwrap();
        kernel.recv(&mut ev).unwrap();
        assert_eq!(kind(&ev), uhid::ev::DESTROY, "hanging up removes the device");
        assert!(registry.is_empty());
    }

    /// The attacker's second connection, while the first is up, is refused
    /// before it can say anything, and the first device stays.
    #[test]
    fn one_connection_per_uid() {
        let registry = Registry::default();
        let claim = registry.claim(1000).unwrap();
        let (mut client, server) = UnixStream::pair().unwrap();
        let never = || -> io::Result<File> { panic!("a second device was opened") };
        serve(server, 1000, &registry, &never).unwrap();
        assert_eq!(read_answer(&mut client), Status::Busy);
        assert!(registry.claim(1001).is_some(), "another uid is not affected");
        drop(claim);
        assert!(registry.claim(1000).is_some());
    }

    #[test]
    fn garbage_instead_of_a_hello_creates_nothing() {
        let registry = Registry::default();
        let (mut client, server) = UnixStream::pair().unwrap();
        let never = || -> io::Result<File> { panic!("a device was opened without a hello") };
        client.write_all(&[0x41; RECORD * 2]).unwrap();
        serve(server, 7, &registry, &never).unwrap();
        assert_eq!(read_answer(&mut client), Status::BadHello);
        assert!(registry.is_empty());
    }

    #[test]
    fn silence_ends_at_the_hello_timeout() {
        let registry = Registry::default();
        let (_client, server) = UnixStream::pair().unwrap();
        let never = || -> io::Result<File> { panic!("no hello, no device") };
        let t0 = std::time::Instant::now();
        assert!(serve(server, 7, &registry, &never).is_err());
        assert!(t0.elapsed() >= HELLO_TIMEOUT - Duration::from_millis(100));
        assert!(registry.is_empty());
    }
}
