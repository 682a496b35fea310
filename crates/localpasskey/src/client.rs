//! A minimal CTAP platform for the CLI (`localpasskey pin …`): it talks to a
//! running daemon the way a browser would, over CTAPHID, so the PIN is only
//! ever handled by the authenticator's own clientPIN code.

use anyhow::{bail, Context, Result};
use ciborium::value::Value;
use lp_core::cbor::{self, int_map};
use lp_core::ctaphid::{cmd, frame, BROADCAST_CID, REPORT_LEN};
use lp_core::pin_protocol::{KeyAgreement, ProtocolVersion, SharedSecret};
use lp_core::status::CtapError;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub struct UdpClient {
    socket: UdpSocket,
    cid: u32,
}

/// How long to wait for an answer: a person may be typing at the prompt.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

impl UdpClient {
    pub fn connect(addr: SocketAddr) -> Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(addr)?;
        let mut client = Self {
            socket,
            cid: BROADCAST_CID,
        };
        let mut nonce = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let reply = client
            .transact(cmd::INIT, &nonce, Duration::from_secs(2))
            .with_context(|| format!("no authenticator answers on {addr}: is `localpasskey run` running?"))?;
        if reply.len() < 12 || reply[..8] != nonce {
            bail!("unexpected INIT answer");
        }
        client.cid = u32::from_be_bytes([reply[8], reply[9], reply[10], reply[11]]);
        Ok(client)
    }

    fn transact(&mut self, command: u8, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
        let packets = frame(self.cid, command, payload).context("message too long")?;
        for p in &packets {
            self.socket.send(p)?;
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; REPORT_LEN];
        let mut body: Vec<u8> = Vec::new();
        let mut expected = None;
        let mut seq = 0u8;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out waiting for the authenticator");
            }
            self.socket.set_read_timeout(Some(left))?;
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            };
            if n != REPORT_LEN || u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) != self.cid {
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
fn agree(c: &mut UdpClient) -> Result<(SharedSecret, Value)> {
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

pub fn pin_status(c: &mut UdpClient) -> Result<PinStatus> {
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

pub fn set_pin(c: &mut UdpClient, pin: &str) -> Result<Result<(), CtapError>> {
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

pub fn change_pin(c: &mut UdpClient, old: &str, new: &str) -> Result<Result<(), CtapError>> {
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
    c: &mut UdpClient,
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
