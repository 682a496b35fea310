//! The harnesses behind LocalPasskey's fuzz targets (docs/fuzzing.md).
//!
//! The fuzz targets in `fuzz_targets/` are one line each; everything lives
//! here so that `examples/write_seeds.rs` and the replay test can drive the
//! exact same code without libFuzzer.
//!
//! # The authenticator harness ([`run_authenticator`])
//!
//! A fuzzer that only produces raw CTAP requests never gets past clientPIN:
//! every PIN command is MACed with a secret from an ECDH the authenticator
//! does with a fresh random key. So the input is a small *program*: each
//! record either sends raw fuzzer bytes, or asks the harness to act as an
//! honest platform (do the key agreement, encrypt and MAC fuzzer-chosen
//! contents, attach a valid pinUvAuthParam to a fuzzer-chosen MakeCredential
//! or GetAssertion), or moves the clock, power-cycles, or queues what the
//! person at the keyboard answers. The authenticator runs with the insecure
//! software custody, the in-memory store and a manual clock: nothing sleeps.
//!
//! Besides "no panic", every answer is checked: a known status byte, CBOR
//! that decodes, no longer than a CTAPHID message, and in every successful
//! MakeCredential/GetAssertion the flags are honest (UV=1 because alwaysUv,
//! BE=0, BS=0).
//!
//! # The CTAPHID harness ([`run_ctaphid`])
//!
//! Bytes become 64-byte reports interleaved with polls at advancing times and
//! application answers; the invariants are the ones the daemon relies on:
//! at most one request is handed to the application at a time, CANCEL names
//! only that request, answers go to the channel that asked, every report is
//! well formed.

use ciborium::value::Value;
use lp_core::authenticator::{Authenticator, Config};
use lp_core::cbor::{self, int_map};
use lp_core::clock::ManualClock;
use lp_core::ctaphid::{self, Ctaphid, Event, REPORT_LEN};
use lp_core::custody::insecure_software::InsecureSoftwareCustody;
use lp_core::pin_protocol::{authenticate_with_token, KeyAgreement, ProtocolVersion};
use lp_core::platform::{self, PinSession};
use lp_core::status::CtapError;
use lp_core::store::MemoryStore;
use lp_core::types::command;
use lp_core::user::{
    Interaction, KeepaliveStatus, NoInteraction, Presence, PresenceRequest, Refusal, UserPresence,
    Verification,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The PIN the harness sets when an input starts with "PIN set".
pub const PIN: &[u8] = b"1234";
/// RP IDs a token can be bound to (the fuzzer picks one by index), so that
/// requests have a fair chance to match a token's RP.
pub const RP_IDS: [&str; 4] = ["example.com", "a.example", "", "xn--80ak6aa92e.com"];

/// What the fuzzed person answers, one per request, when asked.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Approve,
    Deny,
    TimeOut,
    Cancel,
    /// Type a wrong PIN into our own prompt (built-in UV).
    WrongPin,
    /// Pick the account at this index (0–3, whether or not the request
    /// listed that many) and approve.
    Choose(usize),
}

impl Answer {
    /// The byte [`Self::from_byte`] reads back as this answer.
    fn to_byte(self) -> u8 {
        match self {
            Answer::Approve => 0,
            Answer::Deny => 1,
            Answer::TimeOut => 2,
            Answer::Cancel => 3,
            Answer::WrongPin => 4,
            // At most 3 (from_byte's range): 5 + 6 * 3 = 23.
            Answer::Choose(i) => 5 + 6 * (i.min(3) as u8),
        }
    }

    fn from_byte(b: u8) -> Self {
        match b % 6 {
            0 => Answer::Approve,
            1 => Answer::Deny,
            2 => Answer::TimeOut,
            3 => Answer::Cancel,
            4 => Answer::WrongPin,
            _ => Answer::Choose(usize::from(b / 6 % 4)),
        }
    }
}

/// A person who answers from a queue (approve when it is empty) and never sleeps.
#[derive(Clone, Default)]
struct Person {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    pin: Arc<Mutex<Vec<u8>>>,
}

impl Person {
    fn next(&self) -> Answer {
        self.answers
            .lock()
            .map(|mut q| q.pop_front())
            .ok()
            .flatten()
            .unwrap_or(Answer::Approve)
    }
}

impl UserPresence for Person {
    fn can_verify(&self) -> bool {
        true
    }

    fn can_choose(&self) -> bool {
        true
    }

    fn request_verification(
        &mut self,
        _req: &PresenceRequest,
        _retries: u8,
        _timeout: Duration,
        _io: &dyn Interaction,
    ) -> Verification {
        let typed = |p: &[u8], chosen| Verification::Pin {
            pin: String::from_utf8_lossy(p).into_owned().into(),
            chosen,
        };
        let pin = || self.pin.lock().map(|p| p.clone()).unwrap_or_default();
        match self.next() {
            Answer::Approve => typed(&pin(), None),
            Answer::Choose(i) => typed(&pin(), Some(i)),
            Answer::WrongPin => typed(b"not the pin", None),
            Answer::Deny => Verification::Refused(Refusal::Denied),
            Answer::TimeOut => Verification::Refused(Refusal::TimedOut),
            Answer::Cancel => Verification::Refused(Refusal::Cancelled),
        }
    }

    fn request_presence(
        &mut self,
        _req: &PresenceRequest,
        _timeout: Duration,
        _io: &dyn Interaction,
    ) -> Presence {
        match self.next() {
            Answer::Approve | Answer::WrongPin => Presence::APPROVED,
            Answer::Choose(i) => Presence::Approved { chosen: Some(i) },
            Answer::Deny => Presence::Refused(Refusal::Denied),
            Answer::TimeOut => Presence::Refused(Refusal::TimedOut),
            Answer::Cancel => Presence::Refused(Refusal::Cancelled),
        }
    }
}

/// Which target is running: the clientPIN target steers raw requests to clientPIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    AllCommands,
    ClientPin,
}

/// One instruction of an input program. `encode` and [`parse_program`] are
/// inverse on well-formed programs (the seed writer uses `encode`).
#[derive(Debug, Clone)]
pub enum Op {
    /// Send these bytes as a CTAP request (command byte first). With
    /// [`Focus::ClientPin`] the command byte is forced to clientPIN.
    Raw(Vec<u8>),
    /// Command byte + CBOR map; the harness adds a valid pinUvAuthParam and
    /// protocol made with its current token (MakeCredential keys 8/9,
    /// GetAssertion keys 6/7) when it has one.
    Authed(Vec<u8>),
    /// Get a pinUvAuthToken like a platform: flags bit 0 = protocol 1,
    /// bit 1 = wrong PIN, bits 2-3 = getPinToken / with permissions / using UV.
    Token { flags: u8, perms: u8, rp: u8 },
    /// Move the clock forward by `ms`.
    Advance(u32),
    /// Unplug and replug (volatile state goes).
    PowerCycle,
    /// Queue the person's answer to the next prompt.
    Person(Answer),
    /// A well-formed (encrypted, MACed) clientPIN request whose contents the
    /// fuzzer chooses: flags bit 0 = protocol 1, bit 1 = corrupt the MAC,
    /// bits 2-3 = setPIN / changePIN / getPinToken / getPinUvAuthToken;
    /// `body` is the new PIN (padded to 64 bytes unless it is longer) or the
    /// PIN whose hash is sent.
    Pin { flags: u8, body: Vec<u8> },
}

const TAG_RAW: u8 = 0;
const TAG_AUTHED: u8 = 1;
const TAG_TOKEN: u8 = 2;
const TAG_ADVANCE: u8 = 3;
const TAG_POWER: u8 = 4;
const TAG_PERSON: u8 = 5;
const TAG_PIN: u8 = 6;

impl Op {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let with_len = |out: &mut Vec<u8>, tag: u8, body: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(body.len().min(u16::MAX as usize) as u16).to_le_bytes());
            out.extend_from_slice(body);
        };
        match self {
            Op::Raw(b) => with_len(out, TAG_RAW, b),
            Op::Authed(b) => with_len(out, TAG_AUTHED, b),
            Op::Token { flags, perms, rp } => out.extend_from_slice(&[TAG_TOKEN, *flags, *perms, *rp]),
            Op::Advance(ms) => {
                out.push(TAG_ADVANCE);
                out.extend_from_slice(&ms.to_le_bytes());
            }
            Op::PowerCycle => out.push(TAG_POWER),
            Op::Person(a) => out.extend_from_slice(&[TAG_PERSON, a.to_byte()]),
            Op::Pin { flags, body } => {
                out.extend_from_slice(&[TAG_PIN, *flags]);
                out.extend_from_slice(&(body.len() as u16).to_le_bytes());
                out.extend_from_slice(body);
            }
        }
    }
}

/// Encode a whole input: a setup byte (bit 0: PIN set first) and the ops.
pub fn encode_program(pin_set: bool, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![u8::from(pin_set)];
    for op in ops {
        op.encode(&mut out);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u16(&mut self) -> u16 {
        let b = self.take(2);
        u16::from_le_bytes([b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0)])
    }
    fn u32(&mut self) -> u32 {
        let b = self.take(4);
        let mut a = [0u8; 4];
        a[..b.len()].copy_from_slice(b);
        u32::from_le_bytes(a)
    }
    fn chunk(&mut self) -> Vec<u8> {
        let n = self.u16() as usize;
        self.take(n).to_vec()
    }
}

/// At most this many ops run per input, so one input cannot take seconds.
const MAX_OPS: usize = 64;

pub fn parse_program(data: &[u8]) -> (bool, Vec<Op>) {
    let mut r = Reader(data);
    let pin_set = r.byte().unwrap_or(0) & 1 == 1;
    let mut ops = Vec::new();
    while let Some(tag) = r.byte() {
        if ops.len() == MAX_OPS {
            break;
        }
        ops.push(match tag % 7 {
            TAG_RAW => Op::Raw(r.chunk()),
            TAG_AUTHED => Op::Authed(r.chunk()),
            TAG_TOKEN => Op::Token {
                flags: r.byte().unwrap_or(0),
                perms: r.byte().unwrap_or(0),
                rp: r.byte().unwrap_or(0),
            },
            TAG_ADVANCE => Op::Advance(r.u32()),
            TAG_POWER => Op::PowerCycle,
            TAG_PERSON => Op::Person(Answer::from_byte(r.byte().unwrap_or(0))),
            _ => Op::Pin {
                flags: r.byte().unwrap_or(0),
                body: r.chunk(),
            },
        });
    }
    (pin_set, ops)
}

/// The signing keys and the clientPIN key agreement a harness runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crypto {
    /// Fake and cheap (fast_custody, and in fuzz builds the fake key
    /// agreement): the protocol is what is explored.
    Fast,
    /// The real software custody and P-256 key agreement.
    Real,
}

pub mod fast_custody;

/// The authenticator plus what an honest platform remembers about it.
pub struct Rig {
    pub auth: Authenticator,
    clock: ManualClock,
    person: Person,
    /// The PIN as the harness believes it is set (None: not set).
    pin: Option<Vec<u8>>,
    token: Option<(ProtocolVersion, [u8; 32])>,
    focus: Focus,
}

impl Rig {
    pub fn new(focus: Focus, pin_set: bool) -> Self {
        Self::with_crypto(focus, pin_set, Crypto::Fast)
    }

    pub fn with_crypto(focus: Focus, pin_set: bool, crypto: Crypto) -> Self {
        #[cfg(fuzzing)]
        lp_core::pin_protocol::fuzzing::use_fake_key_agreement(crypto == Crypto::Fast);
        let custody: Box<dyn lp_core::custody::KeyCustody> = match crypto {
            Crypto::Fast => Box::new(fast_custody::FastCustody::default()),
            Crypto::Real => Box::new(InsecureSoftwareCustody::new()),
        };
        let clock = ManualClock::new();
        let person = Person::default();
        let auth = Authenticator::new(
            custody,
            Box::new(MemoryStore::new()),
            Box::new(person.clone()),
            Arc::new(clock.clone()),
            Config {
                presence_timeout: Duration::from_millis(1),
                ..Config::default()
            },
        );
        let mut rig = Rig {
            auth,
            clock,
            person,
            pin: None,
            token: None,
            focus,
        };
        if pin_set {
            let status = rig.pin_command(0, PIN);
            assert_eq!(status, 0, "the harness could not set its PIN");
        }
        rig
    }

    /// Send one request and check the answer's shape; returns the answer.
    pub fn send(&mut self, request: &[u8]) -> Vec<u8> {
        let response = self.auth.handle(request, &NoInteraction);
        if std::env::var_os("LP_FUZZ_TRACE").is_some() {
            eprintln!(
                "cmd 0x{:02x} ({} bytes) -> status 0x{:02x} ({} bytes)",
                request.first().copied().unwrap_or(0),
                request.len(),
                response.first().copied().unwrap_or(0),
                response.len()
            );
        }
        check_response(request, &response);
        response
    }

    /// getKeyAgreement, then our half of the ECDH, as the platform module
    /// does it, with a fixed platform key: the authenticator's side is
    /// random anyway.
    fn session(&mut self, v: ProtocolVersion) -> Option<PinSession> {
        let resp = self.send(&platform::get_key_agreement(v).encode());
        let (&status, body) = resp.split_first()?;
        if status != 0 {
            return None;
        }
        // A fixed platform key, made once: the authenticator's side is what is tested.
        static OURS: std::sync::OnceLock<Option<KeyAgreement>> = std::sync::OnceLock::new();
        let ours = OURS
            .get_or_init(|| KeyAgreement::from_secret_scalar(&[7u8; 32]).ok())
            .clone()?;
        PinSession::with_key(ours, v, body).ok()
    }

    /// A well-formed clientPIN command (see [`Op::Pin`]); returns the status.
    fn pin_command(&mut self, flags: u8, body: &[u8]) -> u8 {
        let v = if flags & 1 == 1 {
            ProtocolVersion::One
        } else {
            ProtocolVersion::Two
        };
        let Some(s) = self.session(v) else {
            return 0xff;
        };
        let corrupt = flags & 2 != 0;
        let mut padded = body.to_vec();
        if padded.len() < 64 {
            padded.resize(64, 0);
        }
        let sub = (flags >> 2) & 3;
        let old_pin = self.pin.clone().unwrap_or_else(|| PIN.to_vec());
        let (request, new_pin) = match sub {
            // setPIN
            0 => (s.set_pin(&padded), Some(body)),
            // changePIN from the PIN the harness knows to `body`
            1 => (s.change_pin(&old_pin, &padded), Some(body)),
            // getPinToken / getPinUvAuthTokenUsingPinWithPermissions with `body` as the PIN
            2 => (s.pin_token(body, None), None),
            _ => (s.pin_token(body, Some((3, Some(RP_IDS[0])))), None),
        };
        let Ok(mut request) = request else {
            return 0xff;
        };
        if corrupt {
            if let Some(b) = request.pin_uv_auth_param.as_mut().and_then(|p| p.first_mut()) {
                *b ^= 1;
            }
        }
        let resp = self.send(&request.encode());
        let status = resp.first().copied().unwrap_or(0xff);
        if status == 0 {
            if let Some(p) = new_pin {
                // The authenticator took this PIN: it is the one from now on
                // (it strips the zero padding).
                let p: Vec<u8> = p.iter().copied().take_while(|&b| b != 0).collect();
                self.pin = Some(p.clone());
                if let Ok(mut mine) = self.person.pin.lock() {
                    *mine = p;
                }
            } else if let Ok(token) = s.token(&resp[1..]) {
                self.token = Some((v, *token));
            }
        }
        status
    }

    fn get_token(&mut self, flags: u8, perms: u8, rp: u8) {
        let v = if flags & 1 == 1 {
            ProtocolVersion::One
        } else {
            ProtocolVersion::Two
        };
        let Some(s) = self.session(v) else {
            return;
        };
        let known = self.pin.clone().unwrap_or_else(|| PIN.to_vec());
        let typed: &[u8] = if flags & 2 != 0 { b"wrong" } else { &known };
        let rp_id = RP_IDS[usize::from(rp) % RP_IDS.len()];
        let request = match (flags >> 2) & 3 {
            0 => s.pin_token(typed, None),
            1 | 3 => s.pin_token(typed, Some((perms, Some(rp_id)))),
            _ => Ok(s.uv_token(perms, Some(rp_id))),
        };
        let Ok(request) = request else {
            return;
        };
        let resp = self.send(&request.encode());
        if resp.first() == Some(&0) {
            if let Ok(token) = s.token(&resp[1..]) {
                self.token = Some((v, *token));
            }
        }
    }

    /// MakeCredential / GetAssertion with a valid pinUvAuthParam spliced in.
    fn authed(&mut self, bytes: &[u8]) {
        let Some((&cmd, params)) = bytes.split_first() else {
            self.send(bytes);
            return;
        };
        let keys = match cmd {
            command::MAKE_CREDENTIAL => Some((1u64, 8u64, 9u64)),
            command::GET_ASSERTION => Some((2, 6, 7)),
            _ => None,
        };
        let (Some((cdh_key, param_key, proto_key)), Some((v, token)), Ok(Value::Map(mut entries))) =
            (keys, self.token, cbor::decode(params))
        else {
            self.send(bytes);
            return;
        };
        let cdh = entries
            .iter()
            .find(|(k, _)| k == &Value::Integer(cdh_key.into()))
            .and_then(|(_, v)| v.as_bytes().cloned())
            .unwrap_or_default();
        entries.retain(|(k, _)| {
            k != &Value::Integer(param_key.into()) && k != &Value::Integer(proto_key.into())
        });
        entries.push((
            Value::Integer(param_key.into()),
            Value::Bytes(authenticate_with_token(v, &token, &cdh)),
        ));
        entries.push((
            Value::Integer(proto_key.into()),
            Value::Integer(v.as_u64().into()),
        ));
        // Keep integer keys ascending, as a canonical platform would.
        entries.sort_by_key(|(k, _)| k.as_integer().map(i128::from).unwrap_or(i128::MAX));
        let mut req = vec![cmd];
        req.extend(cbor::encode(&Value::Map(entries)));
        self.send(&req);
    }

    pub fn run(&mut self, op: &Op) {
        match op {
            Op::Raw(bytes) => {
                if self.focus == Focus::ClientPin {
                    let mut req = vec![command::CLIENT_PIN];
                    req.extend_from_slice(bytes);
                    self.send(&req);
                } else {
                    self.send(bytes);
                }
            }
            Op::Authed(bytes) => {
                if self.focus == Focus::ClientPin {
                    let flags = bytes.first().copied().unwrap_or(0);
                    self.pin_command(flags, bytes.get(1..).unwrap_or_default());
                } else {
                    self.authed(bytes);
                }
            }
            Op::Token { flags, perms, rp } => self.get_token(*flags, *perms, *rp),
            Op::Advance(ms) => {
                self.clock.advance(u64::from(*ms));
                self.auth.tick();
            }
            Op::PowerCycle => self.auth.power_cycle(),
            Op::Person(a) => {
                if let Ok(mut q) = self.person.answers.lock() {
                    if q.len() < 16 {
                        q.push_back(*a);
                    }
                }
            }
            Op::Pin { flags, body } => {
                self.pin_command(*flags, body);
            }
        }
    }
}

/// The checks every answer must pass, whatever the request.
pub fn check_response(request: &[u8], response: &[u8]) {
    let Some((&status, body)) = response.split_first() else {
        panic!("empty response to {request:02x?}");
    };
    assert!(
        response.len() <= lp_core::MAX_MSG_SIZE,
        "response of {} bytes cannot be framed",
        response.len()
    );
    if status != 0 {
        assert!(
            CtapError::from_code(status).is_some(),
            "unknown status 0x{status:02x}"
        );
        assert!(body.is_empty(), "an error status with a body");
        return;
    }
    if body.is_empty() {
        return;
    }
    let value = cbor::decode(body).unwrap_or_else(|e| panic!("undecodable CBOR in a success answer: {e:?}"));
    let cmd = request.first().copied().unwrap_or(0);
    if cmd == command::MAKE_CREDENTIAL || cmd == command::GET_ASSERTION || cmd == command::GET_NEXT_ASSERTION
    {
        let Value::Map(entries) = value else {
            panic!("a non-map answer to command 0x{cmd:02x}");
        };
        let auth_data = entries
            .iter()
            .find(|(k, _)| k == &Value::Integer(2.into()))
            .and_then(|(_, v)| v.as_bytes())
            .expect("no authenticator data");
        assert!(auth_data.len() >= 37, "authenticator data too short");
        let flags = auth_data[32];
        assert!(flags & 0x04 != 0, "UV=0 in a success answer (alwaysUv)");
        assert!(flags & 0x18 == 0, "BE or BS set: flags 0x{flags:02x}");
        if cmd == command::MAKE_CREDENTIAL {
            assert!(flags & 0x01 != 0, "MakeCredential without UP");
            assert!(
                flags & 0x40 != 0,
                "MakeCredential without attested credential data"
            );
        }
    }
}

/// The `ctap_command` and `client_pin` targets: fake, cheap crypto.
pub fn run_authenticator(data: &[u8], focus: Focus) {
    run_authenticator_with(data, focus, Crypto::Fast);
}

/// The `ctap_real` target: every command on the real crypto.
pub fn run_authenticator_real(data: &[u8]) {
    run_authenticator_with(data, Focus::AllCommands, Crypto::Real);
}

fn run_authenticator_with(data: &[u8], focus: Focus, crypto: Crypto) {
    let (pin_set, ops) = parse_program(data);
    let mut rig = Rig::with_crypto(focus, pin_set, crypto);
    for op in &ops {
        rig.run(op);
    }
    // Whatever happened, the authenticator still answers sensibly.
    let info = rig.send(&[command::GET_INFO]);
    assert_eq!(info.first(), Some(&0), "GetInfo failed after the program");
}

// ---------------------------------------------------------------- CTAPHID

/// The `ctaphid` target. The input is a stream of control bytes, each
/// followed by what it needs:
///
/// - `0x00..=0x3f`: a report: the next 63 bytes, prefixed with a channel id
///   chosen by the control byte (broadcast, one of the first channels the
///   device hands out, or the four raw bytes that follow) — so that most
///   reports land on a live channel;
/// - `0x40..=0x7f`: the application answers the outstanding request (echoing
///   a prefix of it, or a long answer) — or does nothing if none is;
/// - `0x80..=0xff`: time moves forward by `(b & 0x7f) * 8` ms, then a poll.
pub fn run_ctaphid(data: &[u8]) {
    let mut hid = Ctaphid::new();
    let mut now: u64 = 1_000;
    let mut r = Reader(data);
    // The one request the application is working on: (txn, cid, cmd, payload).
    let mut outstanding: Option<(u64, u32, u8, Vec<u8>)> = None;
    let mut steps = 0;
    while let Some(c) = r.byte() {
        steps += 1;
        if steps > 4096 {
            break;
        }
        let events = if c < 0x40 {
            let mut report = [0u8; REPORT_LEN];
            let cid = match c & 0x07 {
                0 => ctaphid::BROADCAST_CID,
                1..=4 => u32::from(c & 0x07),
                5 => 0,
                _ => {
                    let b = r.take(4);
                    let mut a = [0u8; 4];
                    a[..b.len()].copy_from_slice(b);
                    u32::from_be_bytes(a)
                }
            };
            report[..4].copy_from_slice(&cid.to_be_bytes());
            let rest = r.take(REPORT_LEN - 4);
            report[4..4 + rest.len()].copy_from_slice(rest);
            // Bit 3..5 of the control byte: occasionally a report of the wrong size.
            if c & 0x38 == 0x38 {
                hid.handle_report(&report[..REPORT_LEN - 1], now)
            } else {
                hid.handle_report(&report, now)
            }
        } else if c < 0x80 {
            match outstanding.take() {
                Some((txn, cid, cmd, payload)) => {
                    let answer: Vec<u8> = if c & 1 == 1 {
                        vec![0x42; usize::from(c) * 97 % (lp_core::MAX_MSG_SIZE + 64)]
                    } else {
                        payload.iter().copied().take(usize::from(c) * 3).collect()
                    };
                    let ev = hid.respond(txn, cmd, &answer, now);
                    check_answer(&ev, cid, &answer);
                    ev
                }
                None => hid.respond(u64::from(c), ctaphid::cmd::CBOR, &[0], now),
            }
        } else {
            now += u64::from(c & 0x7f) * 8;
            hid.poll(now, KeepaliveStatus::Processing)
        };
        for e in events {
            match e {
                Event::Send { report, .. } => check_report(&report),
                Event::Request {
                    txn,
                    cid,
                    cmd,
                    payload,
                } => {
                    assert!(
                        outstanding.is_none(),
                        "a second request handed to the application while one runs"
                    );
                    assert!(payload.len() <= lp_core::MAX_MSG_SIZE);
                    assert!(
                        cmd == ctaphid::cmd::CBOR || cmd == ctaphid::cmd::MSG,
                        "request cmd 0x{cmd:02x}"
                    );
                    outstanding = Some((txn, cid, cmd, payload));
                }
                Event::Cancel { txn } => {
                    assert!(
                        outstanding.as_ref().is_some_and(|o| o.0 == txn),
                        "cancel for a request nobody is working on"
                    );
                }
                Event::Wink { .. } => {}
            }
        }
        // The device is busy exactly while the application owes an answer
        // (or still works on an abandoned one, which we model as answered).
        if outstanding.is_some() {
            assert!(hid.busy(), "a request outstanding but the device is not busy");
        }
    }
}

fn check_report(report: &[u8; REPORT_LEN]) {
    if report[4] & 0x80 != 0 {
        let cmd = report[4] & 0x7f;
        let len = usize::from(u16::from_be_bytes([report[5], report[6]]));
        assert!(len <= lp_core::MAX_MSG_SIZE, "a report announcing {len} bytes");
        if cmd == ctaphid::cmd::ERROR {
            assert_eq!(len, 1, "CTAPHID_ERROR with {len} bytes");
        }
        if cmd == ctaphid::cmd::KEEPALIVE {
            assert!(matches!(report[7], 1 | 2), "keepalive status {}", report[7]);
        }
    }
}

/// An application answer comes out as the reports `frame` makes, on its channel.
fn check_answer(events: &[Event], asked_on: u32, answer: &[u8]) {
    let sends: Vec<(u32, [u8; REPORT_LEN])> = events
        .iter()
        .filter_map(|e| match e {
            Event::Send { cid, report } => Some((*cid, *report)),
            _ => None,
        })
        .collect();
    if sends.is_empty() {
        return;
    }
    // Answers may be preceded by a timeout error for a half-received message
    // on another channel; the answer itself is the tail.
    if answer.len() > lp_core::MAX_MSG_SIZE {
        let (_, last) = sends.last().copied().unwrap_or((0, [0; REPORT_LEN]));
        assert_eq!(
            last[4],
            0x80 | ctaphid::cmd::ERROR,
            "an unframable answer must become ERR_OTHER"
        );
        return;
    }
    let n = 1 + answer.len().saturating_sub(57).div_ceil(59);
    assert!(
        sends.len() >= n,
        "answer of {} bytes in {} reports",
        answer.len(),
        sends.len()
    );
    let tail = &sends[sends.len() - n..];
    let cid = tail[0].0;
    assert_eq!(cid, asked_on, "answered on another channel");
    assert!(tail.iter().all(|(c, r)| *c == cid && r[..4] == cid.to_be_bytes()));
    let mut got = tail[0].1[7..].to_vec();
    for (_, r) in &tail[1..] {
        got.extend_from_slice(&r[5..]);
    }
    got.truncate(answer.len());
    assert_eq!(got, answer, "the answer was not framed faithfully");
}

/// Build a ctaphid input from whole reports and control bytes (seed writer).
pub fn ctaphid_report(control: u8, report_after_cid: &[u8]) -> Vec<u8> {
    let mut out = vec![control];
    let mut body = report_after_cid.to_vec();
    body.resize(REPORT_LEN - 4, 0);
    out.extend(body);
    out
}

/// Seeds for every target: valid requests and flows, written into
/// `fuzz/seeds/<target>/` by `examples/write_seeds.rs`.
pub fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let text = |s: &str| Value::Text(s.into());
    let es256 = Value::Array(vec![Value::Map(vec![
        (text("alg"), Value::Integer((-7).into())),
        (text("type"), text("public-key")),
    ])]);
    let cdh = Value::Bytes(vec![0x42; 32]);
    let mc = |rk: bool, rp: &str, user: u8| {
        let mut req = vec![command::MAKE_CREDENTIAL];
        req.extend(cbor::encode(&int_map([
            (1, cdh.clone()),
            (
                2,
                Value::Map(vec![(text("id"), text(rp)), (text("name"), text("Example"))]),
            ),
            (
                3,
                Value::Map(vec![
                    (text("id"), Value::Bytes(vec![user; 16])),
                    (text("name"), text("alice@example.com")),
                    (text("displayName"), text("Alice")),
                ]),
            ),
            (4, es256.clone()),
            (7, Value::Map(vec![(text("rk"), Value::Bool(rk))])),
        ])));
        req
    };
    let ga = |rp: &str, allow: Option<Vec<u8>>| {
        let mut entries = vec![(1, text(rp)), (2, cdh.clone())];
        if let Some(id) = allow {
            entries.push((
                3,
                Value::Array(vec![Value::Map(vec![
                    (text("id"), Value::Bytes(id)),
                    (text("type"), text("public-key")),
                ])]),
            ));
        }
        let mut req = vec![command::GET_ASSERTION];
        req.extend(cbor::encode(&int_map(entries)));
        req
    };
    let pin_req = |entries: Vec<(u64, Value)>| cbor::encode(&int_map(entries));
    let retries = pin_req(vec![(1, Value::Integer(2.into())), (2, Value::Integer(1.into()))]);
    let key_agreement = pin_req(vec![(1, Value::Integer(2.into())), (2, Value::Integer(2.into()))]);
    let uv_retries = pin_req(vec![(1, Value::Integer(2.into())), (2, Value::Integer(7.into()))]);
    let with_cmd = |c: u8, body: &[u8]| {
        let mut v = vec![c];
        v.extend_from_slice(body);
        v
    };

    // ctap_command
    let t = "ctap_command";
    out.push((
        t,
        "get_info",
        encode_program(false, &[Op::Raw(vec![command::GET_INFO])]),
    ));
    out.push((
        t,
        "set_pin_then_token_then_mc_ga",
        encode_program(
            false,
            &[
                Op::Pin {
                    flags: 0,
                    body: b"1234".to_vec(),
                },
                Op::Token {
                    flags: 4,
                    perms: 3,
                    rp: 0,
                },
                Op::Authed(mc(true, "example.com", 1)),
                Op::Token {
                    flags: 4,
                    perms: 3,
                    rp: 0,
                },
                Op::Authed(ga("example.com", None)),
            ],
        ),
    ));
    out.push((
        t,
        "two_discoverable_then_next",
        encode_program(
            true,
            &[
                Op::Token {
                    flags: 0,
                    perms: 0,
                    rp: 0,
                },
                Op::Authed(mc(true, "example.com", 1)),
                Op::Token {
                    flags: 0,
                    perms: 0,
                    rp: 0,
                },
                Op::Authed(mc(true, "example.com", 2)),
                Op::Token {
                    flags: 0,
                    perms: 0,
                    rp: 0,
                },
                Op::Authed(ga("example.com", None)),
                Op::Raw(vec![command::GET_NEXT_ASSERTION]),
                Op::Raw(vec![command::GET_NEXT_ASSERTION]),
            ],
        ),
    ));
    out.push((
        t,
        "built_in_uv_mc_and_ga_with_allow_list",
        encode_program(
            true,
            &[
                Op::Raw(mc(false, "a.example", 3)),
                Op::Person(Answer::WrongPin),
                Op::Raw(ga("a.example", Some(vec![0; 32]))),
                Op::Raw(ga("a.example", None)),
                Op::Token {
                    flags: 8,
                    perms: 2,
                    rp: 1,
                },
                Op::Authed(ga("a.example", Some(vec![1; 32]))),
            ],
        ),
    ));
    out.push((
        t,
        "reset_in_window_and_after",
        encode_program(
            true,
            &[
                Op::Raw(vec![command::RESET]),
                Op::Advance(11_000),
                Op::Raw(vec![command::RESET]),
                Op::PowerCycle,
                Op::Person(Answer::Deny),
                Op::Raw(vec![command::RESET]),
                Op::Raw(vec![command::SELECTION]),
            ],
        ),
    ));
    out.push((
        t,
        "client_pin_raw",
        encode_program(
            true,
            &[
                Op::Raw(with_cmd(command::CLIENT_PIN, &retries)),
                Op::Raw(with_cmd(command::CLIENT_PIN, &key_agreement)),
                Op::Raw(with_cmd(command::CLIENT_PIN, &uv_retries)),
            ],
        ),
    ));
    out.push((
        t,
        "token_expiry",
        encode_program(
            true,
            &[
                Op::Token {
                    flags: 4,
                    perms: 1,
                    rp: 0,
                },
                Op::Advance(31_000),
                Op::Authed(mc(false, "example.com", 4)),
                Op::Raw(vec![0x42]),
                Op::Raw(vec![]),
            ],
        ),
    ));

    // client_pin (raw bodies go to clientPIN; Authed = structured PIN command)
    let t = "client_pin";
    out.push((t, "retries", encode_program(true, &[Op::Raw(retries.clone())])));
    out.push((
        t,
        "key_agreement",
        encode_program(false, &[Op::Raw(key_agreement.clone())]),
    ));
    out.push((
        t,
        "uv_retries",
        encode_program(true, &[Op::Raw(uv_retries.clone())]),
    ));
    out.push((
        t,
        "set_change_token",
        encode_program(
            false,
            &[
                Op::Pin {
                    flags: 0,
                    body: b"123456".to_vec(),
                },
                Op::Pin {
                    flags: 4,
                    body: b"654321".to_vec(),
                },
                Op::Pin {
                    flags: 8,
                    body: b"654321".to_vec(),
                },
                Op::Pin {
                    flags: 12 | 1,
                    body: b"654321".to_vec(),
                },
            ],
        ),
    ));
    out.push((
        t,
        "wrong_pins_until_blocked",
        encode_program(
            true,
            &[
                Op::Token {
                    flags: 2,
                    perms: 0,
                    rp: 0,
                },
                Op::Token {
                    flags: 2,
                    perms: 0,
                    rp: 0,
                },
                Op::Token {
                    flags: 2,
                    perms: 0,
                    rp: 0,
                },
                Op::Token {
                    flags: 0,
                    perms: 0,
                    rp: 0,
                },
                Op::PowerCycle,
                Op::Token {
                    flags: 2,
                    perms: 0,
                    rp: 0,
                },
                Op::Raw(retries.clone()),
            ],
        ),
    ));
    out.push((
        t,
        "bad_mac_and_policy",
        encode_program(
            false,
            &[
                Op::Pin {
                    flags: 2,
                    body: b"1234".to_vec(),
                },
                Op::Pin {
                    flags: 0,
                    body: b"12".to_vec(),
                },
                Op::Pin {
                    flags: 1,
                    body: vec![b'9'; 70],
                },
                Op::Authed(vec![0, 0xc3, 0xa4, 0xc3, 0xa4, 0xc3, 0xa4, 0xc3, 0xa4]),
            ],
        ),
    ));
    out.push((
        t,
        "uv_token",
        encode_program(
            true,
            &[
                Op::Person(Answer::WrongPin),
                Op::Token {
                    flags: 8,
                    perms: 3,
                    rp: 0,
                },
                Op::Token {
                    flags: 8,
                    perms: 0x40,
                    rp: 0,
                },
                Op::Person(Answer::Cancel),
                Op::Token {
                    flags: 8,
                    perms: 1,
                    rp: 2,
                },
            ],
        ),
    ));

    // ctaphid
    let t = "ctaphid";
    let init = |cid_ctl: u8| ctaphid_report(cid_ctl, &[0x86, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    let mut s = init(0);
    s.extend(ctaphid_report(1, &[0x81, 0, 5, b'h', b'e', b'l', b'l', b'o']));
    out.push((t, "init_ping", s));
    // A 100-byte CBOR request in two packets, answered, then a keepalive poll.
    let mut s = init(0);
    let mut first = vec![0x90, 0, 100, command::GET_INFO];
    first.resize(3 + 57, 0xa0);
    s.extend(ctaphid_report(1, &first));
    s.extend(ctaphid_report(1, &[0x00, 0xa0, 0xa0]));
    s.push(0x8b);
    s.push(0x42);
    out.push((t, "cbor_two_packets_answered", s));
    // Two channels: the second is busy while the first's request runs; cancel; lock; wink.
    let mut s = init(0);
    s.extend(init(0));
    s.extend(ctaphid_report(1, &[0x90, 0, 1, command::GET_INFO]));
    s.extend(ctaphid_report(2, &[0x90, 0, 1, command::GET_INFO]));
    s.push(0x90);
    s.extend(ctaphid_report(1, &[0x91, 0, 0]));
    s.push(0x40);
    s.extend(ctaphid_report(2, &[0x84, 0, 1, 5]));
    s.extend(ctaphid_report(1, &[0x88, 0, 0]));
    s.extend(ctaphid_report(2, &[0x90, 0, 1, command::GET_INFO]));
    s.push(0x43);
    out.push((t, "two_channels_busy_cancel_lock", s));
    // A message that times out half-way, a bad sequence number, a MSG request.
    let mut s = init(0);
    s.extend(ctaphid_report(1, &[0x90, 0, 200, 1, 2, 3]));
    s.push(0xff);
    s.extend(ctaphid_report(1, &[0x05, 9, 9]));
    s.extend(ctaphid_report(1, &[0x83, 0, 3, 0, 1, 0]));
    s.push(0x44);
    out.push((t, "timeout_badseq_msg", s));

    out
}
