//! CTAPHID, the USB HID framing of CTAP 2.1 (§11.2), as a state machine with no I/O.
//!
//! The host speaks in 64-byte reports; the application wants whole messages.
//! Everything in between — channels, packet sequencing, the one-transaction-at-a-time
//! rule, timeouts, keepalives, CANCEL, LOCK, WINK and PING — lives here, so that
//! it can be tested exhaustively in memory and every transport (uhid, the UDP
//! simulation) gets identical behaviour.
//!
//! The driver loop is: feed every report to [`Ctaphid::handle_report`], call
//! [`Ctaphid::poll`] whenever [`Ctaphid::next_deadline`] passes, hand each
//! [`Event::Request`] to the application and give its answer back through
//! [`Ctaphid::respond`]. Time only moves when the caller says so.
//!
//! Channel ids come from a counter, not a random generator. A channel is not a
//! security boundary: any process that can write to the HID device can read
//! every report and act on any channel, so unguessable ids would protect nothing
//! and would only make traces harder to read.

use std::collections::VecDeque;

use crate::clock::Millis;
use crate::user::KeepaliveStatus;
use crate::MAX_MSG_SIZE;

pub const REPORT_LEN: usize = 64;
pub const BROADCAST_CID: u32 = 0xffff_ffff;

/// Data bytes in an initialisation packet: CID(4) | CMD(1) | BCNT(2) come first.
const INIT_DATA_LEN: usize = REPORT_LEN - 7;
/// Data bytes in a continuation packet: CID(4) | SEQ(1) come first.
const CONT_DATA_LEN: usize = REPORT_LEN - 5;
/// The bit that tells an initialisation packet from a continuation packet.
const TYPE_INIT: u8 = 0x80;

/// The spec asks for a keepalive "at least every 100 ms" while a request runs;
/// 80 ms leaves 20 ms for the daemon's thread to be scheduled late without a
/// host ever seeing a gap longer than 100 ms.
pub const KEEPALIVE_INTERVAL_MS: Millis = 80;

/// How long a half-received message may wait for its next continuation packet.
///
/// The spec (§11.2.4) requires a timeout but leaves the value to the device.
/// Hardware keys use a few hundred milliseconds because a USB host controller
/// sends a message's packets back to back. Our host is a userspace process on a
/// loaded desktop writing through uhid or UDP, which can be descheduled for a
/// few hundred milliseconds between two writes, so we allow 750 ms. A crashed
/// host still frees the device in under a second, and clients that meet
/// ERR_CHANNEL_BUSY meanwhile simply retry (python-fido2 does every 100 ms).
pub const TRANSACTION_TIMEOUT_MS: Millis = 750;

/// Open channels remembered at once. Every client that opens the device takes
/// one and never gives it back, so the table would otherwise grow without bound;
/// the least recently used channel is forgotten first (its owner gets
/// ERR_INVALID_CHANNEL and re-INITs, which every client does on open anyway).
pub const MAX_CHANNELS: usize = 64;

/// The longest lock the spec allows, so that a crashed client cannot hold the
/// device for longer than this.
pub const MAX_LOCK_SECONDS: u8 = 10;

/// CTAPHID protocol version reported by INIT.
pub const PROTOCOL_VERSION: u8 = 2;

/// Device version (major, minor, build) reported by INIT, derived from
/// [`crate::FIRMWARE_VERSION`] so the two can never disagree.
pub const DEVICE_VERSION: [u8; 3] = [
    ((crate::FIRMWARE_VERSION / 10_000) % 256) as u8,
    ((crate::FIRMWARE_VERSION / 100) % 100) as u8,
    (crate::FIRMWARE_VERSION % 100) as u8,
];

/// Capability flags in the INIT response.
pub mod capability {
    /// We answer CTAPHID_WINK (the transport may show something).
    pub const WINK: u8 = 0x01;
    /// We speak CTAP2 over CTAPHID_CBOR.
    pub const CBOR: u8 = 0x04;
    /// "No MSG": we are a CTAP2-only authenticator. MSG requests are still handed
    /// to the application, which answers them with a U2F error status.
    pub const NMSG: u8 = 0x08;
}

/// What INIT advertises. There is no LOCK flag in CTAP 2.1 (0x02 was U2F's and
/// clients ignore it), although LOCK is implemented.
pub const CAPABILITIES: u8 = capability::WINK | capability::CBOR | capability::NMSG;

/// CTAPHID commands (§11.2.9), without the 0x80 "init packet" bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum HidCommand {
    Ping = 0x01,
    Msg = 0x03,
    Lock = 0x04,
    Init = 0x06,
    Wink = 0x08,
    Cbor = 0x10,
    Cancel = 0x11,
    /// Device to host only.
    Keepalive = 0x3b,
    /// Device to host only.
    Error = 0x3f,
}

impl HidCommand {
    pub fn from_byte(b: u8) -> Option<Self> {
        use HidCommand::*;
        [Ping, Msg, Lock, Init, Wink, Cbor, Cancel, Keepalive, Error]
            .into_iter()
            .find(|c| *c as u8 == b)
    }
}

/// CTAPHID_ERROR codes (§11.2.9.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum HidError {
    InvalidCmd = 0x01,
    InvalidPar = 0x02,
    InvalidLen = 0x03,
    InvalidSeq = 0x04,
    MsgTimeout = 0x05,
    ChannelBusy = 0x06,
    /// Never sent: it means "this command needs a lock first", and no command
    /// here does. A channel refused because another one holds the lock gets
    /// [`HidError::ChannelBusy`], which is what the spec's "any other channel
    /// trying to send a message will fail" maps to and what clients retry on.
    LockRequired = 0x0A,
    InvalidChannel = 0x0B,
    Other = 0x7F,
}

/// The command bytes on the wire, for building and reading reports.
pub mod cmd {
    use super::HidCommand;
    pub const PING: u8 = HidCommand::Ping as u8;
    pub const MSG: u8 = HidCommand::Msg as u8;
    pub const LOCK: u8 = HidCommand::Lock as u8;
    pub const INIT: u8 = HidCommand::Init as u8;
    pub const WINK: u8 = HidCommand::Wink as u8;
    pub const CBOR: u8 = HidCommand::Cbor as u8;
    pub const CANCEL: u8 = HidCommand::Cancel as u8;
    pub const KEEPALIVE: u8 = HidCommand::Keepalive as u8;
    pub const ERROR: u8 = HidCommand::Error as u8;
}

/// The error codes on the wire.
pub mod err {
    use super::HidError;
    pub const INVALID_CMD: u8 = HidError::InvalidCmd as u8;
    pub const INVALID_PAR: u8 = HidError::InvalidPar as u8;
    pub const INVALID_LEN: u8 = HidError::InvalidLen as u8;
    pub const INVALID_SEQ: u8 = HidError::InvalidSeq as u8;
    pub const MSG_TIMEOUT: u8 = HidError::MsgTimeout as u8;
    pub const CHANNEL_BUSY: u8 = HidError::ChannelBusy as u8;
    pub const LOCK_REQUIRED: u8 = HidError::LockRequired as u8;
    pub const INVALID_CHANNEL: u8 = HidError::InvalidChannel as u8;
    pub const OTHER: u8 = HidError::Other as u8;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One 64-byte report for the host that owns `cid` (the transport maps cid -> peer).
    Send { cid: u32, report: [u8; REPORT_LEN] },
    /// A complete CBOR or MSG request for the application. The device is busy until
    /// `respond(txn, ..)` is called for this txn.
    Request {
        txn: u64,
        cid: u32,
        cmd: u8,
        payload: Vec<u8>,
    },
    /// The platform sent CTAPHID_CANCEL for (or re-INITed the channel of) the running
    /// request. Sent at most once per txn.
    Cancel { txn: u64 },
    /// CTAPHID_WINK arrived (already answered); the transport may show something.
    Wink { cid: u32 },
}

/// Splits a message into reports (the format is the same in both directions).
/// `None` if it is longer than [`MAX_MSG_SIZE`], which cannot be framed: the
/// 7-bit sequence number runs out after 128 continuation packets.
pub fn frame(cid: u32, cmd: u8, payload: &[u8]) -> Option<Vec<[u8; REPORT_LEN]>> {
    if payload.len() > MAX_MSG_SIZE {
        return None;
    }
    let bcnt = u16::try_from(payload.len()).ok()?;
    let (first, rest) = payload.split_at(payload.len().min(INIT_DATA_LEN));
    let mut reports = Vec::with_capacity(1 + rest.len().div_ceil(CONT_DATA_LEN));

    let mut init = [0u8; REPORT_LEN];
    put(&mut init, &cid.to_be_bytes());
    init[4] = TYPE_INIT | cmd;
    put(&mut init[5..], &bcnt.to_be_bytes());
    put(&mut init[7..], first);
    reports.push(init);

    for (seq, chunk) in (0u8..=0x7f).zip(rest.chunks(CONT_DATA_LEN)) {
        let mut cont = [0u8; REPORT_LEN];
        put(&mut cont, &cid.to_be_bytes());
        cont[4] = seq;
        put(&mut cont[5..], chunk);
        reports.push(cont);
    }
    Some(reports)
}

/// Copies as much of `src` as fits, so a wrong length can never panic.
fn put(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// A message whose continuation packets are still arriving.
#[derive(Debug)]
struct Assembly {
    cid: u32,
    cmd: u8,
    expected: usize,
    data: Vec<u8>,
    next_seq: u8,
    last_packet: Millis,
}

/// A request the application is working on.
#[derive(Debug)]
struct Outstanding {
    txn: u64,
    cid: u32,
    next_keepalive: Millis,
    cancelled: bool,
}

#[derive(Debug)]
struct Lock {
    cid: u32,
    until: Millis,
}

/// The device side of CTAPHID. One per emulated device: the one-transaction
/// rule, locks and channel ids are device-wide, not per host.
#[derive(Debug)]
pub struct Ctaphid {
    /// Allocated channels, least recently used first.
    channels: VecDeque<u32>,
    next_cid: u32,
    /// Never reset, not even by a power cycle, so that a late answer to a
    /// request from before the reset can never be taken for a newer one.
    next_txn: u64,
    assembly: Option<Assembly>,
    outstanding: Option<Outstanding>,
    /// A request whose channel was re-INITed: the host no longer wants the
    /// answer, but the application is still working on it. New requests wait
    /// (ERR_CHANNEL_BUSY) until it answers, so the application only ever sees
    /// one request at a time.
    abandoned: Option<u64>,
    lock: Option<Lock>,
    /// The longest request taken; longer ones get ERR_INVALID_LEN.
    max_msg: usize,
}

impl Default for Ctaphid {
    fn default() -> Self {
        Self::new()
    }
}

impl Ctaphid {
    pub fn new() -> Self {
        Self {
            channels: VecDeque::new(),
            next_cid: 1,
            next_txn: 1,
            assembly: None,
            outstanding: None,
            abandoned: None,
            lock: None,
            max_msg: MAX_MSG_SIZE,
        }
    }

    /// A device that takes requests of at most `max_msg` bytes (capped at
    /// [`MAX_MSG_SIZE`]), for a transport that cannot carry longer ones
    /// reliably; GetInfo's maxMsgSize must say the same.
    pub fn with_max_message(max_msg: usize) -> Self {
        Self {
            max_msg: max_msg.min(MAX_MSG_SIZE),
            ..Self::new()
        }
    }

    /// Feed one report from the host. Anything not exactly 64 bytes is ignored (returns no events).
    pub fn handle_report(&mut self, report: &[u8], now: Millis) -> Vec<Event> {
        let mut out = Vec::new();
        let Ok(report) = <&[u8; REPORT_LEN]>::try_from(report) else {
            return out;
        };
        // A timeout that `poll` has not noticed yet must win over this packet,
        // or a late continuation would revive a transaction already given up.
        self.expire(now, &mut out);

        // Fixed indices below REPORT_LEN into a fixed-size array: cannot panic.
        let cid = u32::from_be_bytes([report[0], report[1], report[2], report[3]]);
        if report[4] & TYPE_INIT == 0 {
            self.continuation(cid, report[4], &report[5..], now, &mut out);
        } else {
            let cmd = report[4] & !TYPE_INIT;
            let len = usize::from(u16::from_be_bytes([report[5], report[6]]));
            self.init_packet(cid, cmd, len, &report[7..], now, &mut out);
        }
        out
    }

    /// Time-driven work: transaction timeouts, keepalives and lock expiry.
    pub fn poll(&mut self, now: Millis, status: KeepaliveStatus) -> Vec<Event> {
        let mut out = Vec::new();
        self.expire(now, &mut out);
        if let Some(o) = &mut self.outstanding {
            if now >= o.next_keepalive {
                // One keepalive even after a long stall: a burst says nothing more.
                o.next_keepalive = now.saturating_add(KEEPALIVE_INTERVAL_MS);
                let cid = o.cid;
                send(&mut out, cid, cmd::KEEPALIVE, &[status as u8]);
            }
        }
        out
    }

    /// When `poll` next needs to be called (None = nothing pending, sleep until a report arrives).
    pub fn next_deadline(&self) -> Option<Millis> {
        let timeout = self
            .assembly
            .as_ref()
            .map(|a| a.last_packet.saturating_add(TRANSACTION_TIMEOUT_MS));
        let keepalive = self.outstanding.as_ref().map(|o| o.next_keepalive);
        let unlock = self.lock.as_ref().map(|l| l.until);
        [timeout, keepalive, unlock].into_iter().flatten().min()
    }

    /// The application's answer to Request `txn`. Ignored (empty vec) if the
    /// txn was aborted (channel re-INITed) or is unknown.
    pub fn respond(&mut self, txn: u64, cmd: u8, payload: &[u8], now: Millis) -> Vec<Event> {
        let mut out = Vec::new();
        if self.abandoned == Some(txn) {
            self.abandoned = None;
            return out;
        }
        let cid = match &self.outstanding {
            Some(o) if o.txn == txn => o.cid,
            _ => return out,
        };
        self.outstanding = None;
        self.expire(now, &mut out);
        let cmd = cmd & !TYPE_INIT;
        match frame(cid, cmd, payload) {
            Some(reports) => out.extend(reports.into_iter().map(|report| Event::Send { cid, report })),
            None => {
                // An application bug; a truncated message would be worse than an error.
                tracing::error!(
                    len = payload.len(),
                    "response larger than a CTAPHID message; sending ERR_OTHER"
                );
                send_error(&mut out, cid, HidError::Other);
            }
        }
        out
    }

    /// Is a Request outstanding? Also true while the application still works on
    /// a request whose channel was re-INITed, because it cannot take another yet.
    pub fn busy(&self) -> bool {
        self.outstanding.is_some() || self.abandoned.is_some()
    }

    /// Simulated power cycle / unplug: forget every channel, lock and transaction.
    /// The channel counter keeps counting, so a client that missed the reset gets
    /// ERR_INVALID_CHANNEL instead of landing on someone else's new channel.
    pub fn power_cycle(&mut self) {
        self.channels.clear();
        self.assembly = None;
        self.outstanding = None;
        self.abandoned = None;
        self.lock = None;
    }

    fn expire(&mut self, now: Millis, out: &mut Vec<Event>) {
        if let Some(a) = &self.assembly {
            if now.saturating_sub(a.last_packet) >= TRANSACTION_TIMEOUT_MS {
                let cid = a.cid;
                self.assembly = None;
                send_error(out, cid, HidError::MsgTimeout);
            }
        }
        if self.lock.as_ref().is_some_and(|l| now >= l.until) {
            self.lock = None;
        }
    }

    fn continuation(&mut self, cid: u32, seq: u8, data: &[u8], now: Millis, out: &mut Vec<Event>) {
        // Spurious continuation packets are ignored (§11.2.4): the host that sent
        // one is not waiting for an answer, and an error would be read by the
        // channel's next transaction as its reply.
        if self.assembly.as_ref().filter(|a| a.cid == cid).is_none() {
            return;
        }
        self.touch(cid);
        let Some(a) = self.assembly.as_mut() else {
            return;
        };
        if seq != a.next_seq {
            self.assembly = None;
            send_error(out, cid, HidError::InvalidSeq);
            return;
        }
        let take = a.expected.saturating_sub(a.data.len()).min(data.len());
        a.data.extend_from_slice(data.get(..take).unwrap_or(data));
        a.next_seq = a.next_seq.saturating_add(1);
        a.last_packet = now;
        if a.data.len() >= a.expected {
            if let Some(a) = self.assembly.take() {
                self.complete(a.cid, a.cmd, a.data, now, out);
            }
        }
    }

    fn init_packet(&mut self, cid: u32, cmd: u8, len: usize, data: &[u8], now: Millis, out: &mut Vec<Event>) {
        if cmd == cmd::CANCEL {
            // Never answered, whatever the channel: the sender is waiting for
            // the reply to its running request and would take an error for it.
            self.cancel(cid, out);
            return;
        }
        let allocated = self.channels.contains(&cid);
        let opens_channel = cid == BROADCAST_CID && cmd == cmd::INIT;
        if !(allocated || opens_channel) {
            // Covers CID 0, non-INIT on broadcast and never-allocated channels.
            send_error(out, cid, HidError::InvalidChannel);
            return;
        }
        if allocated {
            self.touch(cid);
        }
        if cmd == cmd::INIT {
            // Answered even while busy or locked: a client needs a channel (or a
            // resync) before it can even learn that the device is busy.
            self.init(cid, len, data, out);
            return;
        }

        // One transaction at a time, across the whole device.
        if let Some(a) = &self.assembly {
            let code = if a.cid == cid {
                // The host started over without finishing: neither message is
                // trustworthy.
                self.assembly = None;
                HidError::InvalidSeq
            } else {
                HidError::ChannelBusy
            };
            send_error(out, cid, code);
            return;
        }
        if self.outstanding.is_some() || self.lock.as_ref().is_some_and(|l| l.cid != cid) {
            send_error(out, cid, HidError::ChannelBusy);
            return;
        }

        use HidCommand as C;
        let code = match HidCommand::from_byte(cmd) {
            Some(C::Ping | C::Msg | C::Cbor | C::Lock | C::Wink) if len > self.max_msg => {
                Some(HidError::InvalidLen)
            }
            Some(C::Ping) => None,
            Some(C::Lock) if len != 1 => Some(HidError::InvalidLen),
            Some(C::Lock) => None,
            Some(C::Wink) if len != 0 => Some(HidError::InvalidLen),
            Some(C::Wink) => None,
            // §11.2.9.1.1–2: BCNT is 1..(n + 1); a message without even a
            // command byte is a framing error, not a CTAP one.
            Some(C::Cbor | C::Msg) if len == 0 => Some(HidError::InvalidLen),
            Some(C::Cbor | C::Msg) if self.abandoned.is_some() => Some(HidError::ChannelBusy),
            Some(C::Cbor | C::Msg) => None,
            // INIT and CANCEL were handled above; KEEPALIVE and ERROR only
            // ever travel from device to host.
            Some(C::Init | C::Cancel | C::Keepalive | C::Error) | None => Some(HidError::InvalidCmd),
        };
        if let Some(code) = code {
            send_error(out, cid, code);
            return;
        }

        if len <= data.len() {
            let payload = data.get(..len).unwrap_or(data).to_vec();
            self.complete(cid, cmd, payload, now, out);
        } else {
            let mut buf = Vec::with_capacity(len);
            buf.extend_from_slice(data);
            self.assembly = Some(Assembly {
                cid,
                cmd,
                expected: len,
                data: buf,
                next_seq: 0,
                last_packet: now,
            });
        }
    }

    fn init(&mut self, cid: u32, len: usize, data: &[u8], out: &mut Vec<Event>) {
        // §11.2.5.3: an INIT on the channel of the running transaction aborts
        // it, a malformed one too: either way its sender has lost track.
        if cid != BROADCAST_CID {
            self.resync(cid, out);
        }
        let nonce = match data.get(..8) {
            Some(nonce) if len == 8 => nonce,
            _ => {
                send_error(out, cid, HidError::InvalidLen);
                return;
            }
        };
        let new_cid = if cid == BROADCAST_CID {
            self.allocate()
        } else {
            cid
        };
        let mut payload = [0u8; 17];
        put(&mut payload, nonce);
        put(&mut payload[8..], &new_cid.to_be_bytes());
        payload[12] = PROTOCOL_VERSION;
        put(&mut payload[13..], &DEVICE_VERSION);
        payload[16] = CAPABILITIES;
        send(out, cid, cmd::INIT, &payload);
    }

    /// INIT on an existing channel: whatever it was doing is abandoned. The
    /// Cancel event goes out before the INIT reply, so the application hears
    /// about it before the host can send its next request.
    fn resync(&mut self, cid: u32, out: &mut Vec<Event>) {
        if self.assembly.as_ref().is_some_and(|a| a.cid == cid) {
            self.assembly = None;
        }
        if self.outstanding.as_ref().is_some_and(|o| o.cid == cid) {
            if let Some(o) = self.outstanding.take() {
                self.abandoned = Some(o.txn);
                if !o.cancelled {
                    out.push(Event::Cancel { txn: o.txn });
                }
            }
        }
    }

    fn cancel(&mut self, cid: u32, out: &mut Vec<Event>) {
        if self.assembly.as_ref().is_some_and(|a| a.cid == cid) {
            // The host gave up on the message it was sending.
            self.assembly = None;
        }
        if let Some(o) = self.outstanding.as_mut().filter(|o| o.cid == cid) {
            if !o.cancelled {
                // The request stays outstanding: the application still answers
                // (with CTAP2_ERR_KEEPALIVE_CANCEL), and keepalives go on until then.
                o.cancelled = true;
                out.push(Event::Cancel { txn: o.txn });
            }
        }
    }

    fn complete(&mut self, cid: u32, cmd: u8, payload: Vec<u8>, now: Millis, out: &mut Vec<Event>) {
        use HidCommand as C;
        match HidCommand::from_byte(cmd) {
            Some(C::Ping) => send(out, cid, cmd::PING, &payload),
            Some(C::Wink) => {
                send(out, cid, cmd::WINK, &[]);
                out.push(Event::Wink { cid });
            }
            Some(C::Lock) => match payload.first().copied() {
                Some(0) => {
                    self.lock = None;
                    send(out, cid, cmd::LOCK, &[]);
                }
                Some(seconds) if seconds <= MAX_LOCK_SECONDS => {
                    let until = now.saturating_add(Millis::from(seconds) * 1000);
                    self.lock = Some(Lock { cid, until });
                    send(out, cid, cmd::LOCK, &[]);
                }
                Some(_) => send_error(out, cid, HidError::InvalidPar),
                None => send_error(out, cid, HidError::InvalidLen),
            },
            Some(C::Cbor | C::Msg) => {
                let txn = self.next_txn;
                self.next_txn = self.next_txn.wrapping_add(1);
                self.outstanding = Some(Outstanding {
                    txn,
                    cid,
                    next_keepalive: now.saturating_add(KEEPALIVE_INTERVAL_MS),
                    cancelled: false,
                });
                out.push(Event::Request {
                    txn,
                    cid,
                    cmd,
                    payload,
                });
            }
            // Only the commands init_packet let through get here.
            Some(C::Init | C::Cancel | C::Keepalive | C::Error) | None => {
                send_error(out, cid, HidError::InvalidCmd)
            }
        }
    }

    fn allocate(&mut self) -> u32 {
        loop {
            let cid = self.next_cid;
            self.next_cid = self.next_cid.wrapping_add(1);
            if cid == 0 || cid == BROADCAST_CID || self.channels.contains(&cid) {
                continue;
            }
            if self.channels.len() >= MAX_CHANNELS {
                self.evict();
            }
            self.channels.push_back(cid);
            return cid;
        }
    }

    /// Forgets the least recently used channel that nothing depends on.
    fn evict(&mut self) {
        let in_use = |c: u32| {
            self.assembly.as_ref().is_some_and(|a| a.cid == c)
                || self.outstanding.as_ref().is_some_and(|o| o.cid == c)
                || self.lock.as_ref().is_some_and(|l| l.cid == c)
        };
        if let Some(pos) = self.channels.iter().position(|&c| !in_use(c)) {
            self.channels.remove(pos);
        }
    }

    fn touch(&mut self, cid: u32) {
        if let Some(pos) = self.channels.iter().position(|&c| c == cid) {
            if let Some(c) = self.channels.remove(pos) {
                self.channels.push_back(c);
            }
        }
    }
}

fn send(out: &mut Vec<Event>, cid: u32, cmd: u8, payload: &[u8]) {
    // Every caller passes a payload far below MAX_MSG_SIZE.
    if let Some(reports) = frame(cid, cmd, payload) {
        out.extend(reports.into_iter().map(|report| Event::Send { cid, report }));
    }
}

fn send_error(out: &mut Vec<Event>, cid: u32, code: HidError) {
    tracing::debug!("ctaphid: error {code:?} on channel {cid:08x}");
    send(out, cid, cmd::ERROR, &[code as u8]);
}

#[cfg(test)]
mod tests;
