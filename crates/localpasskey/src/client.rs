//! A minimal CTAP platform for the CLI (`localpasskey pin …`): it talks to a
//! running daemon the way a browser would, over CTAPHID, so the PIN is only
//! ever handled by the authenticator's own clientPIN code.

use anyhow::{bail, Context, Result};
use ciborium::value::Value;
use lp_core::cbor;
use lp_core::ctaphid::{cmd, frame, BROADCAST_CID, REPORT_LEN};
use lp_core::pin_protocol::ProtocolVersion;
use lp_core::platform::{self, PinSession};
use lp_core::status::CtapError;
use lp_core::types::client_pin;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Which authenticator to talk to.
#[derive(Clone, Debug)]
pub enum Target {
    /// The UDP simulation transport of `localpasskey run`.
    Udp(SocketAddr),
    /// A security key's hidraw node, such as the real device of `localpasskey run --transport uhid`.
    Hidraw(PathBuf),
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with('/') {
            return Ok(Target::Hidraw(s.into()));
        }
        s.parse().map(Target::Udp).map_err(|_| {
            format!("{s:?} is neither a device path (/dev/hidrawN) nor an address (127.0.0.1:8111)")
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Udp(a) => write!(f, "{a}"),
            Target::Hidraw(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Where the kernel lists hidraw nodes, each with its HID device's uevent.
const SYS_HIDRAW: &str = "/sys/class/hidraw";

/// A hidraw node whose HID device bears our name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    node: PathBuf,
    /// `HID_UNIQ`: whatever serial the device's creator chose.
    serial: String,
}

/// The hidraw nodes named like our device, in node order. A node whose
/// uevent cannot be read is not ours to use, so it is skipped.
fn named_nodes(sys_hidraw: &Path) -> Vec<Candidate> {
    let Ok(dir) = std::fs::read_dir(sys_hidraw) else {
        return Vec::new();
    };
    let name_line = format!("HID_NAME={}", crate::transport::uhid::DEVICE_NAME);
    let mut found: Vec<Candidate> = dir
        .flatten()
        .filter_map(|e| {
            let uevent = std::fs::read_to_string(e.path().join("device/uevent")).ok()?;
            if !uevent.lines().any(|l| l == name_line) {
                return None;
            }
            let serial = uevent
                .lines()
                .find_map(|l| l.strip_prefix("HID_UNIQ="))
                .unwrap_or_default()
                .to_owned();
            Some(Candidate {
                node: PathBuf::from("/dev").join(e.file_name()),
                serial,
            })
        })
        .collect();
    found.sort_by(|a, b| a.node.cmp(&b.node));
    found
}

/// Our security key's hidraw node: the one named LocalPasskey whose serial
/// (`HID_UNIQ`) is `serial`, the serial `localpasskey run` gave the device
/// it created for the data directory `data_dir` (see `our_serial` in
/// cli.rs). The PIN is sent to whatever this picks, and any program allowed
/// to open /dev/uhid can create a device with our name, so:
///
/// - the name alone picks nothing;
/// - several nodes with our serial is refused, not guessed at: the serial is
///   not a secret (sysfs shows it to every local user), so an imitation may
///   copy it while ours is up;
/// - no match is an error, never a silent switch to the UDP simulation,
///   where any local user may be the one listening on 127.0.0.1:8111.
///
/// An imitation that copied the serial while our daemon is down is not
/// caught here; `--to` names a node outright.
pub fn default_target(serial: Option<&str>, data_dir: &Path) -> Result<Target> {
    pick(&named_nodes(Path::new(SYS_HIDRAW)), serial, data_dir)
}

fn pick(candidates: &[Candidate], serial: Option<&str>, data_dir: &Path) -> Result<Target> {
    const SIMULATION: &str = "`--to 127.0.0.1:8111` talks to the UDP simulation instead";
    const CHOOSE: &str = "`--to /dev/hidrawN` names the node to use";
    let seen = || {
        candidates
            .iter()
            // Debug: the serial is the creator's choice and may hold escapes.
            .map(|c| format!("{} (serial {:?})", c.node.display(), c.serial))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if candidates.is_empty() {
        bail!(
            "no LocalPasskey security key found: no hidraw node is named {:?} \
             (is `localpasskey run --transport uhid` running?); {SIMULATION}",
            crate::transport::uhid::DEVICE_NAME
        );
    }
    let Some(serial) = serial.filter(|s| !s.is_empty()) else {
        bail!(
            "no LocalPasskey security key found: the data directory {} records no serial \
             for one (`localpasskey run` writes it there; `--data-dir` names the one the \
             daemon uses), so none of the nodes named LocalPasskey can be told from an \
             imitation. Seen: {}. {CHOOSE}; {SIMULATION}",
            data_dir.display(),
            seen()
        );
    };
    let ours: Vec<&Candidate> = candidates.iter().filter(|c| c.serial == serial).collect();
    match ours.as_slice() {
        [one] => Ok(Target::Hidraw(one.node.clone())),
        [] => bail!(
            "no LocalPasskey security key found with the serial {serial:?} recorded in {} \
             (`--data-dir` names the daemon's data directory if it is another). Seen: {}. \
             {CHOOSE}; {SIMULATION}",
            data_dir.display(),
            seen()
        ),
        many => bail!(
            "{} hidraw nodes claim to be our security key (name LocalPasskey, serial \
             {serial:?}): {}. Another program may be imitating it to catch the PIN; \
             {CHOOSE}",
            many.len(),
            many.iter()
                .map(|c| c.node.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Moves 64-byte reports to and from the authenticator.
enum Wire {
    Udp(UdpSocket),
    /// hidraw has no read timeout: a thread reads, the client waits on the channel.
    Hidraw {
        file: File,
        reports: mpsc::Receiver<[u8; REPORT_LEN]>,
    },
}

impl Wire {
    fn open(target: &Target) -> Result<Self> {
        match target {
            Target::Udp(addr) => {
                let socket = UdpSocket::bind("127.0.0.1:0")?;
                socket.connect(addr)?;
                Ok(Wire::Udp(socket))
            }
            Target::Hidraw(path) => {
                let file = File::options()
                    .read(true)
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let mut reader = file.try_clone()?;
                let (tx, reports) = mpsc::channel();
                std::thread::spawn(move || {
                    let mut buf = [0u8; REPORT_LEN];
                    while let Ok(REPORT_LEN) = reader.read(&mut buf) {
                        if tx.send(buf).is_err() {
                            return;
                        }
                    }
                });
                Ok(Wire::Hidraw { file, reports })
            }
        }
    }

    fn send(&mut self, report: &[u8; REPORT_LEN]) -> Result<()> {
        match self {
            Wire::Udp(socket) => {
                socket.send(report)?;
            }
            Wire::Hidraw { file, .. } => {
                // Report id 0 first: the FIDO descriptor has no report ids.
                let mut out = [0u8; REPORT_LEN + 1];
                out[1..].copy_from_slice(report);
                file.write_all(&out)?;
            }
        }
        Ok(())
    }

    /// One report, or None if `timeout` passed first.
    fn recv(&mut self, timeout: Duration) -> Result<Option<[u8; REPORT_LEN]>> {
        match self {
            Wire::Udp(socket) => {
                socket.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
                let mut buf = [0u8; REPORT_LEN];
                match socket.recv(&mut buf) {
                    Ok(REPORT_LEN) => Ok(Some(buf)),
                    Ok(_) => Ok(None),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Wire::Hidraw { reports, .. } => match reports.recv_timeout(timeout) {
                Ok(r) => Ok(Some(r)),
                Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the device went away"),
            },
        }
    }
}

/// A CTAP platform over CTAPHID, on the simulation or on a hidraw node.
pub struct Client {
    wire: Wire,
    cid: u32,
}

/// How long to wait for an answer: a person may be typing at the prompt.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

impl Client {
    pub fn connect(target: &Target) -> Result<Self> {
        let mut client = Self {
            wire: Wire::open(target)?,
            cid: BROADCAST_CID,
        };
        let mut nonce = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        // On hidraw every reader hears every INIT answer: wait for ours.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let reply = client
                .transact(
                    cmd::INIT,
                    &nonce,
                    deadline.saturating_duration_since(Instant::now()),
                )
                .with_context(|| {
                    format!("no authenticator answers on {target}: is `localpasskey run` running?")
                })?;
            if reply.len() >= 12 && reply[..8] == nonce {
                client.cid = u32::from_be_bytes([reply[8], reply[9], reply[10], reply[11]]);
                return Ok(client);
            }
        }
    }

    fn transact(&mut self, command: u8, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        let packets = frame(self.cid, command, payload).context("message too long")?;
        for p in &packets {
            self.wire.send(p)?;
        }
        let deadline = Instant::now() + timeout;
        let mut body: Vec<u8> = Vec::new();
        let mut expected = None;
        let mut seq = 0u8;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out waiting for the authenticator");
            }
            let Some(buf) = self.wire.recv(left)? else {
                continue;
            };
            if u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) != self.cid {
                continue;
            }
            match expected {
                None => {
                    let c = buf[4] & 0x7f;
                    if c == cmd::KEEPALIVE {
                        continue;
                    }
                    if c == cmd::ERROR {
                        bail!("CTAPHID error 0x{:02x}", buf[7]);
                    }
                    let len = usize::from(u16::from_be_bytes([buf[5], buf[6]]));
                    body.extend_from_slice(&buf[7..7 + len.min(57)]);
                    expected = Some(len);
                }
                Some(_) => {
                    if buf[4] != seq {
                        bail!("out-of-order reply");
                    }
                    seq += 1;
                    body.extend_from_slice(&buf[5..]);
                }
            }
            if let Some(len) = expected {
                if body.len() >= len {
                    body.truncate(len);
                    return Ok(body);
                }
            }
        }
    }

    /// Send a CTAP2 command; returns the decoded response map or the CTAP error.
    pub fn ctap(&mut self, command: u8, params: Option<Value>) -> Result<Result<Value, CtapError>> {
        let mut msg = vec![command];
        if let Some(p) = params {
            msg.extend(cbor::encode(&p));
        }
        let body = match self.request(&msg)? {
            Ok(body) => body,
            Err(e) => return Ok(Err(e)),
        };
        if body.is_empty() {
            return Ok(Ok(Value::Map(vec![])));
        }
        Ok(Ok(
            cbor::decode(&body).map_err(|e| anyhow::anyhow!("bad CBOR reply: {e}"))?
        ))
    }

    /// Send a whole CTAP request (command byte and parameters); returns the
    /// answer's body after the status byte, or the CTAP error.
    pub fn request(&mut self, msg: &[u8]) -> Result<Result<Vec<u8>, CtapError>> {
        let reply = self.transact(cmd::CBOR, msg, REPLY_TIMEOUT)?;
        let Some((&status, rest)) = reply.split_first() else {
            bail!("empty reply");
        };
        if status != 0 {
            return Ok(Err(status_error(status)));
        }
        Ok(Ok(rest.to_vec()))
    }
}

fn status_error(code: u8) -> CtapError {
    CtapError::from_code(code).unwrap_or(CtapError::Other)
}

fn get(map: &Value, key: u64) -> Option<&Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_integer().and_then(|i| u64::try_from(i).ok()) == Some(key))
        .map(|(_, v)| v)
}

const GET_INFO: u8 = 0x04;
const V: ProtocolVersion = ProtocolVersion::Two;

/// clientPIN's getKeyAgreement, then our half of the ECDH.
fn session(c: &mut Client) -> Result<PinSession> {
    let body = c
        .request(&platform::get_key_agreement(V).encode())?
        .map_err(|e| anyhow::anyhow!("getKeyAgreement refused: {e}"))?;
    PinSession::from_answer(V, &body).map_err(|e| anyhow::anyhow!("bad key agreement: {e}"))
}

fn padded(pin: &str) -> Result<Zeroizing<Vec<u8>>> {
    platform::padded_pin(pin.as_bytes()).map_err(|_| anyhow::anyhow!("a PIN is at most 63 bytes"))
}

pub struct PinStatus {
    pub set: bool,
    pub retries: u64,
    pub power_cycle_needed: bool,
}

pub fn pin_status(c: &mut Client) -> Result<PinStatus> {
    let info = c
        .ctap(GET_INFO, None)?
        .map_err(|e| anyhow::anyhow!("GetInfo refused: {e}"))?;
    let set = get(&info, 4)
        .and_then(Value::as_map)
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some("clientPin")))
        .and_then(|(_, v)| v.as_bool())
        .unwrap_or(false);
    let body = c
        .request(&platform::get_pin_retries().encode())?
        .map_err(|e| anyhow::anyhow!("getPINRetries refused: {e}"))?;
    let r =
        client_pin::Response::decode(&body).map_err(|e| anyhow::anyhow!("bad getPINRetries reply: {e}"))?;
    Ok(PinStatus {
        set,
        retries: r.pin_retries.unwrap_or(0).into(),
        power_cycle_needed: r.power_cycle_state.unwrap_or(false),
    })
}

pub fn set_pin(c: &mut Client, pin: &str) -> Result<Result<(), CtapError>> {
    let s = session(c)?;
    let req = s
        .set_pin(&padded(pin)?)
        .map_err(|e| anyhow::anyhow!("encrypt: {e}"))?;
    Ok(c.request(&req.encode())?.map(|_| ()))
}

pub fn change_pin(c: &mut Client, old: &str, new: &str) -> Result<Result<(), CtapError>> {
    let s = session(c)?;
    let req = s
        .change_pin(old.as_bytes(), &padded(new)?)
        .map_err(|e| anyhow::anyhow!("encrypt: {e}"))?;
    Ok(c.request(&req.encode())?.map(|_| ()))
}

/// getPinUvAuthTokenUsingPinWithPermissions; returns the decrypted token.
pub fn pin_token(
    c: &mut Client,
    pin: &str,
    permissions: u8,
    rp_id: &str,
) -> Result<Result<[u8; 32], CtapError>> {
    let s = session(c)?;
    let req = s
        .pin_token(pin.as_bytes(), Some((permissions, Some(rp_id))))
        .map_err(|e| anyhow::anyhow!("encrypt: {e}"))?;
    let body = match c.request(&req.encode())? {
        Ok(body) => body,
        Err(e) => return Ok(Err(e)),
    };
    let token = s
        .token(&body)
        .map_err(|e| anyhow::anyhow!("bad token reply: {e}"))?;
    Ok(Ok(*token))
}

#[cfg(test)]
mod target_tests {
    use super::*;

    #[test]
    fn targets_are_paths_or_addresses() {
        assert!(
            matches!("/dev/hidraw3".parse(), Ok(Target::Hidraw(p)) if p.to_str() == Some("/dev/hidraw3"))
        );
        assert!(matches!("127.0.0.1:8111".parse(), Ok(Target::Udp(a)) if a.port() == 8111));
        let err = "hidraw3".parse::<Target>().unwrap_err();
        assert!(err.contains("neither a device path"), "{err}");
    }

    /// A stand-in for /sys/class/hidraw: `(node, uevent)` pairs.
    fn sysfs(nodes: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (node, uevent) in nodes {
            let d = dir.path().join(node).join("device");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("uevent"), uevent).unwrap();
        }
        dir
    }

    fn uevent(name: &str, uniq: &str) -> String {
        format!("DRIVER=hid-generic\nHID_ID=0003:00001209:00000001\nHID_NAME={name}\nHID_PHYS=localpasskey/uhid\nHID_UNIQ={uniq}\nMODALIAS=hid:b0003g0001v00001209p00000001\n")
    }

    fn pick_in(nodes: &[(&str, &str)], serial: Option<&str>) -> Result<Target> {
        let sys = sysfs(nodes);
        pick(&named_nodes(sys.path()), serial, Path::new("/data"))
    }

    #[test]
    fn only_the_node_with_our_name_and_serial_is_picked() {
        let ours = uevent("LocalPasskey", "0A1B2C3D4E5F6071");
        let other_serial = uevent("LocalPasskey", "FFFFFFFFFFFFFFFF");
        let other_name = uevent("YubiKey", "0A1B2C3D4E5F6071");
        let t = pick_in(
            &[
                ("hidraw0", &other_serial),
                ("hidraw1", &other_name),
                ("hidraw7", &ours),
            ],
            Some("0A1B2C3D4E5F6071"),
        )
        .unwrap();
        assert!(matches!(t, Target::Hidraw(p) if p == Path::new("/dev/hidraw7")));
        // A name that merely starts like ours is not ours.
        let longer = uevent("LocalPasskey2", "0A1B2C3D4E5F6071");
        let err = pick_in(&[("hidraw0", &longer)], Some("0A1B2C3D4E5F6071")).unwrap_err();
        assert!(format!("{err}").contains("no hidraw node is named"), "{err}");
    }

    #[test]
    fn a_name_without_our_serial_is_refused_and_the_nodes_are_listed() {
        let imitation = uevent("LocalPasskey", "EVIL\u{1b}[2J");
        let err = pick_in(&[("hidraw3", &imitation)], Some("0A1B2C3D4E5F6071")).unwrap_err();
        let msg = format!("{err}");
        assert!(msg.starts_with("no LocalPasskey security key found"), "{msg}");
        assert!(msg.contains("\"0A1B2C3D4E5F6071\""), "{msg}");
        assert!(msg.contains("/dev/hidraw3 (serial \"EVIL\\u{1b}[2J\")"), "{msg}");
        assert!(!msg.contains('\u{1b}'), "{msg}");
        assert!(msg.contains("--to /dev/hidrawN"), "{msg}");
        assert!(msg.contains("--to 127.0.0.1:8111"), "{msg}");
        // No serial recorded: nothing named LocalPasskey is trusted.
        let err = pick_in(&[("hidraw3", &imitation)], None).unwrap_err();
        let msg = format!("{err}");
        assert!(msg.contains("/data records no serial"), "{msg}");
        assert!(msg.contains("/dev/hidraw3"), "{msg}");
    }

    #[test]
    fn two_nodes_with_our_serial_are_refused() {
        let ours = uevent("LocalPasskey", "0A1B2C3D4E5F6071");
        let err = pick_in(
            &[("hidraw2", &ours), ("hidraw5", &ours)],
            Some("0A1B2C3D4E5F6071"),
        )
        .unwrap_err();
        let msg = format!("{err}");
        assert!(
            msg.starts_with("2 hidraw nodes claim to be our security key"),
            "{msg}"
        );
        assert!(msg.contains("/dev/hidraw2, /dev/hidraw5"), "{msg}");
        assert!(msg.contains("--to /dev/hidrawN"), "{msg}");
    }

    #[test]
    fn no_node_is_an_error_not_the_simulation() {
        for serial in [Some("0A1B2C3D4E5F6071"), None] {
            let err = pick_in(&[], serial).unwrap_err();
            let msg = format!("{err}");
            assert!(msg.starts_with("no LocalPasskey security key found"), "{msg}");
            assert!(
                msg.contains("`--to 127.0.0.1:8111` talks to the UDP simulation"),
                "{msg}"
            );
        }
        // Neither a missing sysfs directory nor unreadable nodes are an error of their own.
        assert!(named_nodes(Path::new("/nonexistent/hidraw")).is_empty());
        let sys = sysfs(&[]);
        std::fs::create_dir(sys.path().join("hidraw9")).unwrap();
        assert!(named_nodes(sys.path()).is_empty());
    }
}
