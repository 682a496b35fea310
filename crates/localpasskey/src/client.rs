//! A minimal CTAP platform for the CLI (`localpasskey pin …`): it talks to a
//! running daemon the way a browser would, over CTAPHID, so the PIN is only
//! ever handled by the authenticator's own clientPIN code.

use anyhow::{bail, Context, Result};
use ciborium::value::Value;
use lp_core::cbor::{self, int_map};
use lp_core::ctaphid::{cmd, frame, BROADCAST_CID, REPORT_LEN};
use lp_core::pin_protocol::{KeyAgreement, ProtocolVersion, SharedSecret};
use lp_core::status::CtapError;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
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

/// Our device's hidraw node if the kernel has one (the HID name uhid.rs
/// gives it), else the simulation's default address.
pub fn default_target() -> Target {
    let found = std::fs::read_dir("/sys/class/hidraw").ok().and_then(|dir| {
        let mut nodes: Vec<String> = dir
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join("device/uevent")).is_ok_and(|u| {
                    u.lines()
                        .any(|l| l == format!("HID_NAME={}", crate::transport::uhid::DEVICE_NAME))
                })
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        nodes.sort();
        nodes.into_iter().next()
    });
    match found {
        Some(node) => Target::Hidraw(PathBuf::from("/dev").join(node)),
        None => Target::Udp(SocketAddr::from((
            [127, 0, 0, 1],
            crate::transport::udp::DEFAULT_PORT,
        ))),
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
        let reply = self.transact(cmd::CBOR, &msg, REPLY_TIMEOUT)?;
        let Some((&status, rest)) = reply.split_first() else {
            bail!("empty reply");
        };
        if status != 0 {
            return Ok(Err(status_error(status)));
        }
        if rest.is_empty() {
            return Ok(Ok(Value::Map(vec![])));
        }
        Ok(Ok(
            cbor::decode(rest).map_err(|e| anyhow::anyhow!("bad CBOR reply: {e}"))?
        ))
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

const CLIENT_PIN: u8 = 0x06;
const GET_INFO: u8 = 0x04;
const V: ProtocolVersion = ProtocolVersion::Two;

/// clientPIN's getKeyAgreement, then our half of the ECDH.
fn agree(c: &mut Client) -> Result<(SharedSecret, Value)> {
    let resp = c
        .ctap(
            CLIENT_PIN,
            Some(int_map([
                (1, Value::Integer(2.into())),
                (2, Value::Integer(2.into())),
            ])),
        )?
        .map_err(|e| anyhow::anyhow!("getKeyAgreement refused: {e}"))?;
    let key = get(&resp, 1).context("no key agreement in the reply")?.clone();
    let ours = KeyAgreement::new();
    let shared = ours
        .shared_secret(V, key)
        .map_err(|e| anyhow::anyhow!("bad key agreement: {e}"))?;
    Ok((shared, ours.public_cose()))
}

fn padded(pin: &str) -> Result<Zeroizing<Vec<u8>>> {
    if pin.len() > 63 {
        bail!("a PIN is at most 63 bytes");
    }
    let mut p = Zeroizing::new(pin.as_bytes().to_vec());
    p.resize(64, 0);
    Ok(p)
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
    let r = c
        .ctap(
            CLIENT_PIN,
            Some(int_map([
                (1, Value::Integer(2.into())),
                (2, Value::Integer(1.into())),
            ])),
        )?
        .map_err(|e| anyhow::anyhow!("getPINRetries refused: {e}"))?;
    let retries = get(&r, 3)
        .and_then(Value::as_integer)
        .and_then(|i| u64::try_from(i).ok())
        .unwrap_or(0);
    let power_cycle_needed = get(&r, 4).and_then(Value::as_bool).unwrap_or(false);
    Ok(PinStatus {
        set,
        retries,
        power_cycle_needed,
    })
}

pub fn set_pin(c: &mut Client, pin: &str) -> Result<Result<(), CtapError>> {
    let (shared, platform) = agree(c)?;
    let enc = shared
        .encrypt(&padded(pin)?)
        .map_err(|e| anyhow::anyhow!("encrypt: {e}"))?;
    let param = shared.authenticate(&enc);
    Ok(c.ctap(
        CLIENT_PIN,
        Some(int_map([
            (1, Value::Integer(2.into())),
            (2, Value::Integer(3.into())),
            (3, platform),
            (4, Value::Bytes(param)),
            (5, Value::Bytes(enc)),
        ])),
    )?
    .map(|_| ()))
}

pub fn change_pin(c: &mut Client, old: &str, new: &str) -> Result<Result<(), CtapError>> {
    let (shared, platform) = agree(c)?;
    let new_enc = shared
        .encrypt(&padded(new)?)
        .map_err(|e| anyhow::anyhow!("encrypt: {e}"))?;
    let hash = lp_core::pin::pin_hash(old.as_bytes());
    let hash_enc = shared
        .encrypt(&hash[..])
        .map_err(|e| anyhow::anyhow!("encrypt: {e}"))?;
    let mut msg = new_enc.clone();
    msg.extend_from_slice(&hash_enc);
    let param = shared.authenticate(&msg);
    Ok(c.ctap(
        CLIENT_PIN,
        Some(int_map([
            (1, Value::Integer(2.into())),
            (2, Value::Integer(4.into())),
            (3, platform),
            (4, Value::Bytes(param)),
            (5, Value::Bytes(new_enc)),
            (6, Value::Bytes(hash_enc)),
        ])),
    )?
    .map(|_| ()))
}

/// getPinUvAuthTokenUsingPinWithPermissions; returns the decrypted token.
pub fn pin_token(
    c: &mut Client,
    pin: &str,
    permissions: u8,
    rp_id: &str,
) -> Result<Result<[u8; 32], CtapError>> {
    let (shared, platform) = agree(c)?;
    let hash = lp_core::pin::pin_hash(pin.as_bytes());
    let hash_enc = shared
        .encrypt(&hash[..])
        .map_err(|e| anyhow::anyhow!("encrypt: {e}"))?;
    let resp = c.ctap(
        CLIENT_PIN,
        Some(int_map([
            (1, Value::Integer(2.into())),
            (2, Value::Integer(9.into())),
            (3, platform),
            (6, Value::Bytes(hash_enc)),
            (9, Value::Integer(permissions.into())),
            (10, Value::Text(rp_id.into())),
        ])),
    )?;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let enc = get(&resp, 2)
        .and_then(Value::as_bytes)
        .context("no token in the reply")?;
    let token = Zeroizing::new(shared.decrypt(enc).map_err(|e| anyhow::anyhow!("decrypt: {e}"))?);
    let token: [u8; 32] = token.as_slice().try_into().context("token is not 32 bytes")?;
    Ok(Ok(token))
}

#[cfg(test)]
mod target_tests {
    use super::Target;

    #[test]
    fn targets_are_paths_or_addresses() {
        assert!(
            matches!("/dev/hidraw3".parse(), Ok(Target::Hidraw(p)) if p.to_str() == Some("/dev/hidraw3"))
        );
        assert!(matches!("127.0.0.1:8111".parse(), Ok(Target::Udp(a)) if a.port() == 8111));
        let err = "hidraw3".parse::<Target>().unwrap_err();
        assert!(err.contains("neither a device path"), "{err}");
    }
}
