//! Unit tests of every command's success and error paths, with software
//! custody, the in-memory store, a scripted person and a manual clock.

use super::*;
use crate::authdata::flags;
use crate::cbor::{int_map, text_map};
use crate::clock::ManualClock;
use crate::custody::insecure_software::InsecureSoftwareCustody;
use crate::custody::{Algorithm, PublicKey};
use crate::pin::{self, permission};
use crate::pin_protocol::ProtocolVersion;
use crate::pin_protocol::{KeyAgreement, SharedSecret};
use crate::platform;
use crate::store::MemoryStore;
use crate::types::{command, ES256};
use crate::user::Verification;
use crate::user::{AlwaysApprove, NoInteraction, Scripted, Step};
use coset::{iana, CborSerializable};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use std::sync::Mutex;

/// A scripted person the test can still talk to after handing it over;
/// the second queue holds what they type when asked for a new PIN
/// (current PIN, new PIN; an empty queue refuses).
#[derive(Clone)]
struct Person(Arc<Mutex<Scripted>>, NewPins);

/// (current PIN, new PIN) answers, oldest first.
type NewPins = Arc<Mutex<std::collections::VecDeque<(Option<String>, String)>>>;

impl UserPresence for Person {
    fn request_presence(&mut self, req: &PresenceRequest, t: Duration, io: &dyn Interaction) -> Presence {
        let mut s = self.0.lock().unwrap();
        s.request_presence(req, t, io)
    }
    fn can_verify(&self) -> bool {
        true
    }
    fn can_choose(&self) -> bool {
        self.0.lock().unwrap().can_choose()
    }
    fn request_verification(
        &mut self,
        req: &PresenceRequest,
        retries: u8,
        t: Duration,
        io: &dyn Interaction,
    ) -> Verification {
        self.0.lock().unwrap().request_verification(req, retries, t, io)
    }
    fn request_new_pin(
        &mut self,
        req: &PresenceRequest,
        _current: bool,
        _min: u8,
        _retries: Option<u8>,
        _t: Duration,
        _io: &dyn Interaction,
    ) -> crate::user::NewPin {
        self.0.lock().unwrap().seen.push(req.clone());
        match self.1.lock().unwrap().pop_front() {
            Some((current, new)) => crate::user::NewPin::Typed {
                current: current.map(zeroize::Zeroizing::new),
                new: zeroize::Zeroizing::new(new),
            },
            None => crate::user::NewPin::Refused(crate::user::Refusal::Denied),
        }
    }
}

impl Person {
    fn push(&self, step: Step) {
        self.0.lock().unwrap().push(step);
    }
    fn type_new_pin(&self, current: Option<&str>, new: &str) {
        self.1
            .lock()
            .unwrap()
            .push_back((current.map(str::to_owned), new.to_owned()));
    }
    fn seen(&self) -> Vec<PresenceRequest> {
        self.0.lock().unwrap().seen.clone()
    }
}

struct Rig {
    auth: Authenticator,
    person: Person,
    clock: ManualClock,
}

const PIN: &str = "1234";

/// A rig with a PIN set through clientPIN, and a person who types it.
fn rig() -> Rig {
    let mut r = rig_without_pin();
    set_pin(&mut r, PIN, ProtocolVersion::Two).expect("setPIN");
    r
}

fn rig_without_pin() -> Rig {
    rig_with_config(Config {
        presence_timeout: Duration::from_millis(50),
        ..Config::default()
    })
}

fn rig_with_config(config: Config) -> Rig {
    let person = Person(
        Arc::new(Mutex::new(Scripted::new([], Step::Approve).with_pin(PIN))),
        Arc::default(),
    );
    let clock = ManualClock::new();
    let auth = Authenticator::new(
        Box::new(InsecureSoftwareCustody::new()),
        Box::new(MemoryStore::new()),
        Box::new(person.clone()),
        Arc::new(clock.clone()),
        config,
    );
    Rig { auth, person, clock }
}

const CDH: [u8; 32] = [0x42; 32];

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn es256_param() -> Value {
    text_map([
        ("alg", Value::Integer(ES256.into())),
        ("type", text("public-key")),
    ])
}

struct Mc {
    rp: &'static str,
    user_id: Vec<u8>,
    rk: bool,
    exclude: Vec<Vec<u8>>,
    extra: Vec<(u64, Value)>,
    /// pubKeyCredParams' algorithms, in the platform's order (ES256 alone if empty).
    algs: Vec<i64>,
}

impl Mc {
    fn new(rp: &'static str, user_id: &[u8], rk: bool) -> Self {
        Self {
            rp,
            user_id: user_id.to_vec(),
            rk,
            exclude: vec![],
            extra: vec![],
            algs: vec![],
        }
    }
    fn encode(&self) -> Vec<u8> {
        let mut entries = vec![
            (1, Value::Bytes(CDH.to_vec())),
            (2, text_map([("id", text(self.rp)), ("name", text("Example"))])),
            (
                3,
                text_map([
                    ("id", Value::Bytes(self.user_id.clone())),
                    ("name", text("alice@example.com")),
                ]),
            ),
            (
                4,
                if self.algs.is_empty() {
                    Value::Array(vec![es256_param()])
                } else {
                    Value::Array(
                        self.algs
                            .iter()
                            .map(|a| {
                                text_map([("alg", Value::Integer((*a).into())), ("type", text("public-key"))])
                            })
                            .collect(),
                    )
                },
            ),
        ];
        if !self.exclude.is_empty() {
            entries.push((5, descriptors(&self.exclude)));
        }
        if self.rk {
            entries.push((7, text_map([("rk", Value::Bool(true))])));
        }
        entries.extend(self.extra.iter().cloned());
        let mut out = vec![command::MAKE_CREDENTIAL];
        out.extend(cbor::encode(&int_map(entries)));
        out
    }
}

fn descriptors(ids: &[Vec<u8>]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| text_map([("id", Value::Bytes(id.clone())), ("type", text("public-key"))]))
            .collect(),
    )
}

fn ga(rp: &str, allow: &[Vec<u8>], options: Option<Value>) -> Vec<u8> {
    let mut entries = vec![(1, text(rp)), (2, Value::Bytes(CDH.to_vec()))];
    if !allow.is_empty() {
        entries.push((3, descriptors(allow)));
    }
    if let Some(o) = options {
        entries.push((5, o));
    }
    let mut out = vec![command::GET_ASSERTION];
    out.extend(cbor::encode(&int_map(entries)));
    out
}

/// Splits a response into its status and decoded map.
fn parse(resp: &[u8]) -> Result<Vec<(i128, Value)>, u8> {
    if resp[0] != 0 {
        assert_eq!(resp.len(), 1, "errors carry no payload");
        return Err(resp[0]);
    }
    let v = cbor::decode(&resp[1..]).expect("valid CBOR");
    // Canonical: the bytes we sent are exactly what re-encoding produces.
    assert_eq!(cbor::encode(&v), resp[1..], "canonical encoding");
    let Value::Map(m) = v else { panic!("not a map") };
    let keys: Vec<i128> = m
        .iter()
        .map(|(k, _)| i128::from(k.as_integer().unwrap()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "ascending keys");
    Ok(m.into_iter()
        .map(|(k, v)| (i128::from(k.as_integer().unwrap()), v))
        .collect())
}

fn get(m: &[(i128, Value)], k: i128) -> Option<&Value> {
    m.iter().find(|(key, _)| *key == k).map(|(_, v)| v)
}

fn bytes_of(v: Option<&Value>) -> Vec<u8> {
    v.and_then(Value::as_bytes).cloned().expect("bytes")
}

/// The platform's half of clientPIN: key agreement with the authenticator.
fn agree(r: &mut Rig, v: ProtocolVersion) -> (SharedSecret, Value) {
    let resp = client_pin(r, v, 2, vec![]).expect("getKeyAgreement");
    let auth_key = get(&resp, 1).unwrap().clone();
    let platform = KeyAgreement::new();
    let shared = platform.shared_secret(v, auth_key).unwrap();
    (shared, platform.public_cose())
}

fn client_pin(
    r: &mut Rig,
    v: ProtocolVersion,
    sub: u64,
    mut extra: Vec<(u64, Value)>,
) -> Result<Vec<(i128, Value)>, u8> {
    let mut entries = vec![
        (1, Value::Integer(v.as_u64().into())),
        (2, Value::Integer(sub.into())),
    ];
    entries.append(&mut extra);
    let mut req = vec![command::CLIENT_PIN];
    req.extend(cbor::encode(&int_map(entries)));
    let resp = r.auth.handle(&req, &NoInteraction);
    if resp == [0] {
        return Ok(vec![]);
    }
    parse(&resp)
}

fn padded(pin: &str) -> Vec<u8> {
    let mut p = pin.as_bytes().to_vec();
    p.resize(64, 0);
    p
}

/// A clientPIN request the platform module built; the answer's body.
fn send_pin(r: &mut Rig, req: &crate::types::client_pin::Request) -> Result<Vec<u8>, u8> {
    let resp = r.auth.handle(&req.encode(), &NoInteraction);
    match resp.split_first() {
        Some((0, body)) => Ok(body.to_vec()),
        Some((&code, _)) => Err(code),
        None => Err(0xff),
    }
}

/// getKeyAgreement and our half of the ECDH, as a platform does it.
fn session(r: &mut Rig, v: ProtocolVersion) -> platform::PinSession {
    let body = send_pin(r, &platform::get_key_agreement(v)).expect("getKeyAgreement");
    platform::PinSession::from_answer(v, &body).unwrap()
}

fn set_pin(r: &mut Rig, pin: &str, v: ProtocolVersion) -> Result<(), u8> {
    let s = session(r, v);
    send_pin(r, &s.set_pin(&padded(pin)).unwrap()).map(|_| ())
}

fn change_pin(r: &mut Rig, old: &str, new: &str, v: ProtocolVersion) -> Result<(), u8> {
    let s = session(r, v);
    send_pin(r, &s.change_pin(old.as_bytes(), &padded(new)).unwrap()).map(|_| ())
}

/// getPinUvAuthTokenUsingPinWithPermissions; returns the decrypted token.
fn pin_token(r: &mut Rig, pin: &str, v: ProtocolVersion, perms: u8, rp: &str) -> Result<[u8; 32], u8> {
    pin_token_for(r, pin, v, perms, Some(rp))
}

fn pin_token_for(
    r: &mut Rig,
    pin: &str,
    v: ProtocolVersion,
    perms: u8,
    rp: Option<&str>,
) -> Result<[u8; 32], u8> {
    let s = session(r, v);
    let body = send_pin(r, &s.pin_token(pin.as_bytes(), Some((perms, rp))).unwrap())?;
    Ok(*s.token(&body).unwrap())
}

fn retries(r: &mut Rig) -> (u8, bool) {
    let m = client_pin(r, ProtocolVersion::Two, 1, vec![]).unwrap();
    let n = get(&m, 3).unwrap().as_integer().map(i128::from).unwrap() as u8;
    (n, get(&m, 4) == Some(&Value::Bool(true)))
}

/// Add a pinUvAuthParam made with `token` to a request built by the helpers above.
fn with_token(req: &[u8], token: &[u8; 32], v: ProtocolVersion, key: u64) -> Vec<u8> {
    let mut m = cbor::RequestMap::parse(&req[1..]).unwrap();
    let mut entries = vec![];
    for k in 1..=20u64 {
        if let Some(val) = m.take(k) {
            entries.push((k, val));
        }
    }
    let param = crate::pin_protocol::authenticate_with_token(v, token, &CDH);
    entries.push((key, Value::Bytes(param)));
    entries.push((key + 1, Value::Integer(v.as_u64().into())));
    let mut out = vec![req[0]];
    out.extend(cbor::encode(&int_map(entries)));
    out
}

struct Made {
    id: Vec<u8>,
    key: VerifyingKey,
    auth_data: Vec<u8>,
}

fn make(r: &mut Rig, mc: &Mc) -> Made {
    let resp = parse(&r.auth.handle(&mc.encode(), &NoInteraction)).expect("make credential ok");
    let auth_data = bytes_of(get(&resp, 2));
    let id_len = u16::from_be_bytes([auth_data[53], auth_data[54]]) as usize;
    let id = auth_data[55..55 + id_len].to_vec();
    let cose: Value = ciborium::from_reader(&auth_data[55 + id_len..]).unwrap();
    let Value::Map(cose) = cose else { panic!() };
    let coord = |label: i128| {
        cose.iter()
            .find(|(k, _)| k.as_integer().map(i128::from) == Some(label))
            .and_then(|(_, v)| v.as_bytes().cloned())
            .unwrap()
    };
    let point = p256::EncodedPoint::from_affine_coordinates(
        coord(-2).as_slice().into(),
        coord(-3).as_slice().into(),
        false,
    );
    let key = VerifyingKey::from_encoded_point(&point).unwrap();
    Made { id, key, auth_data }
}

fn verify(key: &VerifyingKey, auth_data: &[u8], sig: &[u8]) {
    let mut msg = auth_data.to_vec();
    msg.extend_from_slice(&CDH);
    key.verify(&msg, &Signature::from_der(sig).unwrap())
        .expect("signature verifies");
}

fn counter(auth_data: &[u8]) -> u32 {
    u32::from_be_bytes(auth_data[33..37].try_into().unwrap())
}

#[test]
fn get_info_describes_this_authenticator() {
    let mut r = rig();
    let m = parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    assert_eq!(bytes_of(get(&m, 3)), crate::AAGUID);
    assert_eq!(get(&m, 5).unwrap().as_integer().map(i128::from), Some(7609));
    let versions = get(&m, 1).unwrap().as_array().unwrap();
    assert!(!versions.iter().any(|v| v.as_text() == Some("U2F_V2")), "no U2F");
    let opts = cbor::text_keyed(get(&m, 4).unwrap().clone()).unwrap();
    assert_eq!(opts.get("rk"), Some(&Value::Bool(true)));
    assert_eq!(opts.get("plat"), Some(&Value::Bool(false)));
    assert_eq!(opts.get("alwaysUv"), Some(&Value::Bool(true)));
    assert_eq!(opts.get("clientPin"), Some(&Value::Bool(true)));
    assert_eq!(opts.get("uv"), Some(&Value::Bool(true)));
    assert_eq!(opts.get("pinUvAuthToken"), Some(&Value::Bool(true)));
    assert_eq!(
        get(&m, 6),
        Some(&Value::Array(vec![
            Value::Integer(2.into()),
            Value::Integer(1.into())
        ]))
    );

    // Before a PIN exists, neither clientPin nor uv is configured.
    let mut fresh = rig_without_pin();
    let m = parse(&fresh.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    let opts = cbor::text_keyed(get(&m, 4).unwrap().clone()).unwrap();
    assert_eq!(opts.get("clientPin"), Some(&Value::Bool(false)));
    assert_eq!(opts.get("uv"), Some(&Value::Bool(false)));
}

#[test]
fn a_transport_with_a_smaller_message_limit_says_so_everywhere() {
    let mut r = rig_with_config(Config {
        max_msg_size: 1886,
        ..Config::default()
    });
    let m = parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    assert_eq!(get(&m, 5).unwrap().as_integer().map(i128::from), Some(1886));
    // maxFragmentLength = maxMsgSize - 64 (CTAP 2.1 §6.10).
    assert!(blob_get(&mut r, 0, 1822).is_ok());
    assert_eq!(blob_get(&mut r, 0, 1823), Err(CtapError::InvalidLength.code()));
    // Nothing below the spec's 1024 nor above what CTAPHID frames.
    for (asked, said) in [(10, 1024), (100_000, crate::MAX_MSG_SIZE)] {
        let mut r = rig_with_config(Config {
            max_msg_size: asked,
            ..Config::default()
        });
        let m = parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
        assert_eq!(
            get(&m, 5).unwrap().as_integer().map(i128::from),
            Some(said as i128)
        );
    }
}

#[test]
fn make_credential_gives_verifiable_packed_self_attestation() {
    let mut r = rig();
    let resp = parse(
        &r.auth
            .handle(&Mc::new("example.com", b"u1", false).encode(), &NoInteraction),
    )
    .unwrap();
    assert_eq!(get(&resp, 1), Some(&text("packed")));
    let auth_data = bytes_of(get(&resp, 2));
    assert_eq!(&auth_data[..32], &Sha256::digest(b"example.com")[..]);
    assert_eq!(
        auth_data[32],
        flags::UP | flags::UV | flags::AT,
        "UP, UV and AT: BE=BS=0"
    );
    assert_eq!(counter(&auth_data), 0);
    assert_eq!(&auth_data[37..53], &crate::AAGUID);
    let stmt = cbor::text_keyed(get(&resp, 3).unwrap().clone()).unwrap();
    assert_eq!(stmt.get("alg"), Some(&Value::Integer(ES256.into())));
    assert!(!stmt.contains_key("x5c"), "self attestation has no certificate");
    let sig = stmt.get("sig").and_then(Value::as_bytes).unwrap();
    let made = make(&mut rig(), &Mc::new("example.com", b"u1", false));
    assert_eq!(made.id.len(), CREDENTIAL_ID_LEN);
    // The signature in the first response verifies under its own attested key.
    let id_len = u16::from_be_bytes([auth_data[53], auth_data[54]]) as usize;
    let cose: Value = ciborium::from_reader(&auth_data[55 + id_len..]).unwrap();
    let cose_bytes = cbor::encode(&cose);
    assert_eq!(
        &cose_bytes[..5],
        &[0xa5, 0x01, 0x02, 0x03, 0x26],
        "kty=EC2 then alg=ES256, canonical"
    );
    let key = {
        let Value::Map(m) = cose else { panic!() };
        let x = m[3].1.as_bytes().unwrap().clone();
        let y = m[4].1.as_bytes().unwrap().clone();
        VerifyingKey::from_encoded_point(&p256::EncodedPoint::from_affine_coordinates(
            x.as_slice().into(),
            y.as_slice().into(),
            false,
        ))
        .unwrap()
    };
    verify(&key, &auth_data, sig);
    assert_eq!(r.person.seen()[0].action, Action::Register);
    assert_eq!(r.person.seen()[0].rp_id, "example.com");
}

/// §6.1.2 step 3: the first algorithm of the platform's list that we
/// support, and the packed self-attestation signed with it.
#[test]
fn make_credential_takes_the_platforms_first_supported_algorithm() {
    for (algs, want) in [
        (vec![-35, -7], Algorithm::Es384),
        (vec![-8, -257, -7], Algorithm::Rs256),
        (vec![-8, -7, -35], Algorithm::Es256),
        (vec![-36, -7], Algorithm::Es512),
        (vec![-8, -37, -257], Algorithm::Ps256),
    ] {
        let mut r = rig();
        let mut mc = Mc::new("example.com", b"u1", false);
        mc.algs = algs.clone();
        let resp = parse(&r.auth.handle(&mc.encode(), &NoInteraction)).unwrap();
        let auth_data = bytes_of(get(&resp, 2));
        let stmt = cbor::text_keyed(get(&resp, 3).unwrap().clone()).unwrap();
        assert_eq!(
            stmt.get("alg"),
            Some(&Value::Integer(want.cose().into())),
            "{algs:?}"
        );
        let id_len = u16::from_be_bytes([auth_data[53], auth_data[54]]) as usize;
        let cose = coset::CoseKey::from_slice(&auth_data[55 + id_len..]).unwrap();
        let param = |label: i64| {
            cose.params
                .iter()
                .find(|(l, _)| *l == coset::Label::Int(label))
                .and_then(|(_, v)| v.as_bytes().cloned())
                .unwrap()
        };
        assert_eq!(
            cose.alg,
            Some(coset::Algorithm::Assigned(
                <iana::Algorithm as iana::EnumI64>::from_i64(want.cose()).unwrap()
            ))
        );
        let public = match want {
            Algorithm::Rs256 | Algorithm::Ps256 => {
                assert_eq!(cose.kty, coset::KeyType::Assigned(iana::KeyType::RSA));
                PublicKey::Rsa {
                    alg: want,
                    n: param(-1),
                    e: param(-2),
                }
            }
            alg => {
                assert_eq!(cose.kty, coset::KeyType::Assigned(iana::KeyType::EC2));
                PublicKey::Ec2 {
                    alg,
                    x: param(-2),
                    y: param(-3),
                }
            }
        };
        let sig = stmt.get("sig").and_then(Value::as_bytes).unwrap();
        let message = [&auth_data[..], &CDH[..]].concat();
        assert!(
            public.verifies(&message, sig),
            "{want:?}: attestation does not verify"
        );
    }
}

#[test]
fn none_attestation_when_asked_first() {
    let mut r = rig();
    let mut mc = Mc::new("example.com", b"u1", false);
    mc.extra
        .push((0x0B, Value::Array(vec![text("none"), text("packed")])));
    let resp = parse(&r.auth.handle(&mc.encode(), &NoInteraction)).unwrap();
    assert_eq!(get(&resp, 1), Some(&text("none")));
    assert_eq!(get(&resp, 3), Some(&Value::Map(vec![])));
}

#[test]
fn make_credential_refusals() {
    let mut r = rig();
    let mut only_rs256 = Mc::new("example.com", b"u", false);
    only_rs256.extra.push((4, Value::Null));
    let bytes = {
        let mut b = vec![command::MAKE_CREDENTIAL];
        b.extend(cbor::encode(&int_map([
            (1, Value::Bytes(CDH.to_vec())),
            (2, text_map([("id", text("example.com"))])),
            (3, text_map([("id", Value::Bytes(vec![1]))])),
            (
                4,
                Value::Array(vec![
                    // EdDSA: no custody here can sign with it.
                    text_map([("alg", Value::Integer((-8).into())), ("type", text("public-key"))]),
                    text_map([
                        ("alg", Value::Integer(ES256.into())),
                        ("type", text("other-type")),
                    ]),
                ]),
            ),
        ])));
        b
    };
    assert_eq!(
        r.auth.handle(&bytes, &NoInteraction),
        [CtapError::UnsupportedAlgorithm.code()]
    );

    for (opts, code) in [
        (text_map([("up", Value::Bool(false))]), CtapError::InvalidOption),
        (
            text_map([("rk", Value::Integer(1.into()))]),
            CtapError::CborUnexpectedType,
        ),
    ] {
        let mut mc = Mc::new("example.com", b"u", false);
        mc.extra.push((7, opts));
        assert_eq!(r.auth.handle(&mc.encode(), &NoInteraction), [code.code()]);
    }
    let mut ep = Mc::new("example.com", b"u", false);
    ep.extra.push((0x0A, Value::Integer(1.into())));
    assert_eq!(
        r.auth.handle(&ep.encode(), &NoInteraction),
        [CtapError::InvalidParameter.code()]
    );
    assert!(
        r.person.seen().is_empty(),
        "nobody is asked for a request that is refused anyway"
    );
}

#[test]
fn denied_presence_creates_nothing() {
    let mut r = rig();
    r.person.push(Step::Deny);
    let resp = r
        .auth
        .handle(&Mc::new("example.com", b"u", true).encode(), &NoInteraction);
    assert_eq!(resp, [CtapError::OperationDenied.code()]);
    assert_eq!(
        r.auth.handle(&ga("example.com", &[], None), &NoInteraction),
        [CtapError::NoCredentials.code()]
    );
}

#[test]
fn presence_timeout_and_cancel() {
    struct Cancelled;
    impl Interaction for Cancelled {
        fn is_cancelled(&self) -> bool {
            true
        }
        fn set_status(&self, _: KeepaliveStatus) {}
    }
    let mut r = rig();
    r.person.push(Step::NoAnswer);
    let resp = r
        .auth
        .handle(&Mc::new("example.com", b"u", true).encode(), &NoInteraction);
    assert_eq!(resp, [CtapError::UserActionTimeout.code()]);
    r.person.push(Step::NoAnswer);
    let resp = r
        .auth
        .handle(&Mc::new("example.com", b"u", true).encode(), &Cancelled);
    assert_eq!(resp, [CtapError::KeepaliveCancel.code()]);
}

#[test]
fn exclude_list_is_revealed_only_after_presence() {
    let mut r = rig();
    let made = make(&mut r, &Mc::new("example.com", b"u", false));
    let other = make(&mut r, &Mc::new("other.example", b"u", false));

    let mut mc = Mc::new("example.com", b"u2", false);
    mc.exclude = vec![made.id.clone()];
    r.person.push(Step::Deny);
    assert_eq!(
        r.auth.handle(&mc.encode(), &NoInteraction),
        [CtapError::OperationDenied.code()]
    );
    assert_eq!(
        r.auth.handle(&mc.encode(), &NoInteraction),
        [CtapError::CredentialExcluded.code()]
    );
    // The verification prompt was the presence; no second prompt.
    assert_eq!(r.person.seen().last().unwrap().action, Action::Register);

    // Another RP's credential in the list excludes nothing.
    mc.exclude = vec![other.id.clone(), vec![1; 16]];
    assert!(parse(&r.auth.handle(&mc.encode(), &NoInteraction)).is_ok());
}

#[test]
fn assertion_with_allow_list_verifies_and_counts_up() {
    let mut r = rig();
    let made = make(&mut r, &Mc::new("example.com", b"u", false));
    let mut last = counter(&made.auth_data);
    for _ in 0..3 {
        let m = parse(&r.auth.handle(
            &ga("example.com", &[vec![9; 32], made.id.clone()], None),
            &NoInteraction,
        ))
        .unwrap();
        let auth_data = bytes_of(get(&m, 2));
        assert_eq!(auth_data.len(), 37);
        assert_eq!(auth_data[32], flags::UP | flags::UV);
        assert!(counter(&auth_data) > last);
        last = counter(&auth_data);
        verify(&made.key, &auth_data, &bytes_of(get(&m, 3)));
        let cred = cbor::text_keyed(get(&m, 1).unwrap().clone()).unwrap();
        assert_eq!(cred.get("id").and_then(Value::as_bytes), Some(&made.id));
        assert!(
            get(&m, 4).is_none(),
            "a non-discoverable credential has no user to return"
        );
        assert!(get(&m, 5).is_none());
    }
    // Bound to its RP: another RP cannot use it.
    assert_eq!(
        r.auth.handle(
            &ga("evil.example", std::slice::from_ref(&made.id), None),
            &NoInteraction
        ),
        [CtapError::NoCredentials.code()]
    );
    // A non-discoverable credential is not found without an allowList.
    assert_eq!(
        r.auth.handle(&ga("example.com", &[], None), &NoInteraction),
        [CtapError::NoCredentials.code()]
    );
}

#[test]
fn discovery_returns_most_recent_first_then_next_assertions() {
    let mut r = rig();
    let a = make(&mut r, &Mc::new("example.com", b"alice", true));
    let b = make(&mut r, &Mc::new("example.com", b"bob", true));
    let c = make(&mut r, &Mc::new("example.com", b"carol", true));
    make(&mut r, &Mc::new("other.example", b"dave", true));

    let m = parse(&r.auth.handle(&ga("example.com", &[], None), &NoInteraction)).unwrap();
    assert_eq!(get(&m, 5), Some(&Value::Integer(3.into())));
    let user = cbor::text_keyed(get(&m, 4).unwrap().clone()).unwrap();
    assert_eq!(
        user.get("id").and_then(Value::as_bytes).map(Vec::as_slice),
        Some(&b"carol"[..])
    );
    // The user was verified (alwaysUv), so the name comes too: the platform
    // needs it to let the person choose between accounts.
    assert_eq!(user.get("name"), Some(&text("alice@example.com")));
    assert!(!user.contains_key("displayName"), "none was registered");
    verify(&c.key, &bytes_of(get(&m, 2)), &bytes_of(get(&m, 3)));
    assert_eq!(
        r.person.seen().len(),
        5,
        "four registrations and one sign-in prompt"
    );

    for (made, uid) in [(&b, &b"bob"[..]), (&a, &b"alice"[..])] {
        r.clock.advance(NEXT_ASSERTION_WINDOW_MS - 1);
        let m = parse(&r.auth.handle(&[command::GET_NEXT_ASSERTION], &NoInteraction)).unwrap();
        assert!(
            get(&m, 5).is_none(),
            "numberOfCredentials only in the first response"
        );
        let user = cbor::text_keyed(get(&m, 4).unwrap().clone()).unwrap();
        assert_eq!(
            user.get("id").and_then(Value::as_bytes).map(Vec::as_slice),
            Some(uid)
        );
        verify(&made.key, &bytes_of(get(&m, 2)), &bytes_of(get(&m, 3)));
    }
    assert_eq!(r.person.seen().len(), 5, "next assertions do not ask again");
    assert_eq!(
        r.auth.handle(&[command::GET_NEXT_ASSERTION], &NoInteraction),
        [CtapError::NotAllowed.code()]
    );
}

#[test]
fn next_assertion_expires_and_ends_with_other_commands_and_power_cycles() {
    let mut r = rig();
    make(&mut r, &Mc::new("example.com", b"alice", true));
    make(&mut r, &Mc::new("example.com", b"bob", true));
    let next = [command::GET_NEXT_ASSERTION];
    let not_allowed = [CtapError::NotAllowed.code()];

    assert_eq!(
        r.auth.handle(&next, &NoInteraction),
        not_allowed,
        "nothing pending"
    );

    parse(&r.auth.handle(&ga("example.com", &[], None), &NoInteraction)).unwrap();
    r.clock.advance(NEXT_ASSERTION_WINDOW_MS + 1);
    assert_eq!(r.auth.handle(&next, &NoInteraction), not_allowed, "30 s passed");

    parse(&r.auth.handle(&ga("example.com", &[], None), &NoInteraction)).unwrap();
    parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    assert_eq!(
        r.auth.handle(&next, &NoInteraction),
        not_allowed,
        "another command came between"
    );

    parse(&r.auth.handle(&ga("example.com", &[], None), &NoInteraction)).unwrap();
    r.auth.power_cycle();
    assert_eq!(r.auth.handle(&next, &NoInteraction), not_allowed, "power cycle");
}

#[test]
fn same_rp_and_user_replaces_the_resident_credential() {
    let mut r = rig();
    let old = make(&mut r, &Mc::new("example.com", b"alice", true));
    let new = make(&mut r, &Mc::new("example.com", b"alice", true));
    let m = parse(&r.auth.handle(&ga("example.com", &[], None), &NoInteraction)).unwrap();
    assert!(get(&m, 5).is_none(), "only one credential left");
    verify(&new.key, &bytes_of(get(&m, 2)), &bytes_of(get(&m, 3)));
    assert_eq!(
        r.auth.handle(&ga("example.com", &[old.id], None), &NoInteraction),
        [CtapError::NoCredentials.code()]
    );
}

#[test]
fn silent_assertion_needs_a_token_and_has_no_up_and_no_prompt() {
    let mut r = rig();
    let made = make(&mut r, &Mc::new("example.com", b"u", false));
    let silent = ga(
        "example.com",
        std::slice::from_ref(&made.id),
        Some(text_map([("up", Value::Bool(false))])),
    );
    let asked = r.person.seen().len();
    assert_eq!(
        r.auth.handle(&silent, &NoInteraction),
        [CtapError::PuatRequired.code()],
        "no signature without verification, and no prompt for a silent request"
    );
    assert_eq!(r.person.seen().len(), asked);

    let v = ProtocolVersion::Two;
    let token = pin_token(&mut r, PIN, v, permission::GA, "example.com").unwrap();
    let m = parse(&r.auth.handle(&with_token(&silent, &token, v, 6), &NoInteraction)).unwrap();
    let auth_data = bytes_of(get(&m, 2));
    assert_eq!(auth_data[32], flags::UV, "UV from the token, no UP");
    assert_eq!(
        counter(&auth_data),
        1,
        "the counter moves for silent assertions too"
    );
    assert_eq!(r.person.seen().len(), asked);
    verify(&made.key, &auth_data, &bytes_of(get(&m, 3)));
    // A silent request does not spend the token: the real one can follow,
    // and asks for presence because a PIN token carries none.
    let real = with_token(
        &ga("example.com", std::slice::from_ref(&made.id), None),
        &token,
        v,
        6,
    );
    let m = parse(&r.auth.handle(&real, &NoInteraction)).unwrap();
    assert_eq!(bytes_of(get(&m, 2))[32], flags::UP | flags::UV);
    assert_eq!(r.person.seen().len(), asked + 1);
    // Spent now.
    assert_eq!(
        r.auth.handle(&real, &NoInteraction),
        [CtapError::PinAuthInvalid.code()]
    );
}

#[test]
fn get_assertion_option_errors() {
    let mut r = rig();
    let rk = ga("example.com", &[], Some(text_map([("rk", Value::Bool(true))])));
    assert_eq!(
        r.auth.handle(&rk, &NoInteraction),
        [CtapError::UnsupportedOption.code()]
    );
    let missing = [command::GET_ASSERTION, 0xa1, 0x01, 0x61, b'x'];
    assert_eq!(
        r.auth.handle(&missing, &NoInteraction),
        [CtapError::MissingParameter.code()]
    );
}

#[test]
fn zero_length_pin_auth_asks_for_touch_then_reports_pin_state() {
    let mut r = rig_without_pin();
    let mut mc = Mc::new("example.com", b"u", false);
    mc.extra.push((8, Value::Bytes(vec![])));
    assert_eq!(
        r.auth.handle(&mc.encode(), &NoInteraction),
        [CtapError::PinNotSet.code()]
    );
    assert_eq!(r.person.seen().len(), 1);
    set_pin(&mut r, PIN, ProtocolVersion::One).unwrap();
    assert_eq!(
        r.auth.handle(&mc.encode(), &NoInteraction),
        [CtapError::PinInvalid.code()]
    );
    mc.extra.push((9, Value::Integer(7.into())));
    mc.extra[0] = (8, Value::Bytes(vec![1; 16]));
    assert_eq!(
        r.auth.handle(&mc.encode(), &NoInteraction),
        [CtapError::InvalidParameter.code()]
    );
}

#[test]
fn reset_only_in_the_window_and_after_presence() {
    let mut r = rig();
    let made = make(&mut r, &Mc::new("example.com", b"u", true));
    r.person.push(Step::Deny);
    assert_eq!(
        r.auth.handle(&[command::RESET], &NoInteraction),
        [CtapError::OperationDenied.code()]
    );
    r.clock.advance(RESET_WINDOW_MS + 1);
    assert_eq!(
        r.auth.handle(&[command::RESET], &NoInteraction),
        [CtapError::NotAllowed.code()]
    );
    assert!(parse(&r.auth.handle(
        &ga("example.com", std::slice::from_ref(&made.id), None),
        &NoInteraction
    ))
    .is_ok());

    r.auth.power_cycle();
    r.clock.advance(RESET_WINDOW_MS - 1);
    assert_eq!(r.auth.handle(&[command::RESET], &NoInteraction), [0]);
    assert_eq!(r.person.seen().last().unwrap().action, Action::Reset);
    assert_eq!(
        r.auth.handle(&ga("example.com", &[], None), &NoInteraction),
        [CtapError::PinNotSet.code()],
        "the PIN went with the credentials"
    );
}

#[test]
fn selection_needs_presence() {
    let mut r = rig();
    assert_eq!(r.auth.handle(&[command::SELECTION], &NoInteraction), [0]);
    r.person.push(Step::Deny);
    assert_eq!(
        r.auth.handle(&[command::SELECTION], &NoInteraction),
        [CtapError::OperationDenied.code()]
    );
}

#[test]
fn framing_errors() {
    let mut r = rig();
    assert_eq!(
        r.auth.handle(&[], &NoInteraction),
        [CtapError::InvalidLength.code()]
    );
    assert_eq!(
        r.auth.handle(&[0x55], &NoInteraction),
        [CtapError::InvalidCommand.code()]
    );
    assert_eq!(
        r.auth.handle(&[command::MAKE_CREDENTIAL, 0xff], &NoInteraction),
        [CtapError::InvalidCbor.code()]
    );
    assert_eq!(
        r.auth.handle(&[command::GET_ASSERTION, 0x80], &NoInteraction),
        [CtapError::CborUnexpectedType.code()]
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut r = rig();
    // A small xorshift so the test is deterministic without a dependency.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let valid = Mc::new("example.com", b"u", true).encode();
    for i in 0..5_000 {
        let len = (next() % 200) as usize;
        let mut msg: Vec<u8> = if i % 2 == 0 {
            // Mutations of a valid request reach deeper than pure noise.
            let mut m = valid.clone();
            for _ in 0..=(next() % 4) {
                let at = (next() as usize) % m.len();
                m[at] = next() as u8;
            }
            m.truncate(1 + (next() as usize) % m.len());
            m
        } else {
            (0..len).map(|_| next() as u8).collect()
        };
        if let Some(first) = msg.first_mut() {
            *first = [1, 2, 4, 7, 8, 0x0b, 0x55][(next() % 7) as usize];
        }
        let resp = r.auth.handle(&msg, &NoInteraction);
        assert!(!resp.is_empty());
    }
}

// ---- clientPIN, tokens and alwaysUv ----

#[test]
fn no_pin_means_no_credentials_can_be_made() {
    let mut r = rig_without_pin();
    let resp = r
        .auth
        .handle(&Mc::new("example.com", b"u", true).encode(), &NoInteraction);
    assert_eq!(
        resp,
        [CtapError::PinNotSet.code()],
        "alwaysUv: the platform is asked to set a PIN"
    );
    assert_eq!(
        r.auth.handle(&ga("example.com", &[], None), &NoInteraction),
        [CtapError::PinNotSet.code()]
    );
    assert_eq!(retries(&mut r), (pin::MAX_RETRIES, false));
}

#[test]
fn set_pin_rules() {
    for v in [ProtocolVersion::One, ProtocolVersion::Two] {
        let mut r = rig_without_pin();
        assert_eq!(
            set_pin(&mut r, "123", v),
            Err(CtapError::PinPolicyViolation.code())
        );
        assert_eq!(
            set_pin(&mut r, &"9".repeat(64), v),
            Err(CtapError::PinPolicyViolation.code())
        );
        set_pin(&mut r, "ääää", v).unwrap();
        assert_eq!(
            set_pin(&mut r, "5678", v),
            Err(CtapError::PinAuthInvalid.code()),
            "already set (§6.5.5.5 step 3)"
        );
        // A wrong MAC is refused before anything is decrypted (on a fresh
        // authenticator, so "already set" cannot answer first).
        let mut fresh = rig_without_pin();
        let (shared2, platform2) = agree(&mut fresh, v);
        let enc2 = shared2.encrypt(&padded("5678")).unwrap();
        let mut bad2 = shared2.authenticate(&enc2);
        bad2[0] ^= 1;
        assert_eq!(
            client_pin(
                &mut fresh,
                v,
                3,
                vec![(3, platform2), (4, Value::Bytes(bad2)), (5, Value::Bytes(enc2))]
            )
            .unwrap_err(),
            CtapError::PinAuthInvalid.code()
        );
        assert!(pin_token(&mut r, "ääää", v, permission::MC, "example.com").is_ok());
    }
}

#[test]
fn client_pin_parameter_errors() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    assert_eq!(
        client_pin(&mut r, v, 0x42, vec![]).unwrap_err(),
        CtapError::InvalidSubcommand.code()
    );
    // Missing subcommand.
    let req = [command::CLIENT_PIN, 0xa1, 0x01, 0x02];
    assert_eq!(
        r.auth.handle(&req, &NoInteraction),
        [CtapError::MissingParameter.code()]
    );
    // Unknown protocol.
    let req = [command::CLIENT_PIN, 0xa2, 0x01, 0x07, 0x02, 0x02];
    assert_eq!(
        r.auth.handle(&req, &NoInteraction),
        [CtapError::InvalidParameter.code()]
    );
    // getPinToken without a key agreement.
    let (shared, _) = agree(&mut r, v);
    let hash_enc = shared.encrypt(&crate::pin::pin_hash(PIN.as_bytes())[..]).unwrap();
    assert_eq!(
        client_pin(&mut r, v, 5, vec![(6, Value::Bytes(hash_enc.clone()))]).unwrap_err(),
        CtapError::MissingParameter.code()
    );
    // Permissions: zero, missing RP ID for mc, one we cannot grant.
    let (shared, platform) = agree(&mut r, v);
    let hash_enc = shared.encrypt(&crate::pin::pin_hash(PIN.as_bytes())[..]).unwrap();
    for (perms, rp, code) in [
        (0u8, Some("example.com"), CtapError::InvalidParameter),
        (permission::MC, None, CtapError::MissingParameter),
        (permission::BE, None, CtapError::UnauthorizedPermission),
    ] {
        let mut extra = vec![
            (3, platform.clone()),
            (6, Value::Bytes(hash_enc.clone())),
            (9, Value::Integer(perms.into())),
        ];
        if let Some(rp) = rp {
            extra.push((10, text(rp)));
        }
        assert_eq!(
            client_pin(&mut r, v, 9, extra).unwrap_err(),
            code.code(),
            "perms {perms:#x}"
        );
    }
    // None of that cost a retry.
    assert_eq!(retries(&mut r), (pin::MAX_RETRIES, false));
}

#[test]
fn wrong_pins_count_down_block_per_boot_and_for_good() {
    let mut r = rig();
    let v = ProtocolVersion::One;
    assert_eq!(
        pin_token(&mut r, "0000", v, permission::GA, "a.example"),
        Err(CtapError::PinInvalid.code())
    );
    assert_eq!(retries(&mut r), (7, false));
    // A right PIN restores the counter.
    assert!(pin_token(&mut r, PIN, v, permission::GA, "a.example").is_ok());
    assert_eq!(retries(&mut r), (8, false));

    assert_eq!(
        pin_token(&mut r, "0000", v, permission::GA, "a"),
        Err(CtapError::PinInvalid.code())
    );
    assert_eq!(
        pin_token(&mut r, "0000", v, permission::GA, "a"),
        Err(CtapError::PinInvalid.code())
    );
    assert_eq!(
        pin_token(&mut r, "0000", v, permission::GA, "a"),
        Err(CtapError::PinAuthBlocked.code())
    );
    assert_eq!(retries(&mut r), (5, true));
    // Blocked until a power cycle, even for the right PIN, and it costs nothing.
    assert_eq!(
        pin_token(&mut r, PIN, v, permission::GA, "a"),
        Err(CtapError::PinAuthBlocked.code())
    );
    assert_eq!(retries(&mut r), (5, true));

    r.auth.power_cycle();
    for expected in [4, 3] {
        assert_eq!(
            pin_token(&mut r, "0000", v, permission::GA, "a"),
            Err(CtapError::PinInvalid.code())
        );
        assert_eq!(retries(&mut r).0, expected);
    }
    assert_eq!(
        pin_token(&mut r, "0000", v, permission::GA, "a"),
        Err(CtapError::PinAuthBlocked.code())
    );
    r.auth.power_cycle();
    assert_eq!(
        pin_token(&mut r, "0000", v, permission::GA, "a"),
        Err(CtapError::PinInvalid.code())
    );
    assert_eq!(
        pin_token(&mut r, "0000", v, permission::GA, "a"),
        Err(CtapError::PinBlocked.code())
    );
    assert_eq!(retries(&mut r), (0, false));
    r.auth.power_cycle();
    assert_eq!(
        pin_token(&mut r, PIN, v, permission::GA, "a"),
        Err(CtapError::PinBlocked.code()),
        "for good"
    );
    assert_eq!(
        r.auth
            .handle(&Mc::new("example.com", b"u", true).encode(), &NoInteraction),
        [CtapError::UvBlocked.code()],
        "built-in verification shares the counter"
    );
}

#[test]
fn change_pin_keeps_credentials_and_voids_tokens() {
    for v in [ProtocolVersion::One, ProtocolVersion::Two] {
        let mut r = rig();
        let made = make(&mut r, &Mc::new("example.com", b"u", true));
        let token = pin_token(&mut r, PIN, v, permission::GA, "example.com").unwrap();
        assert_eq!(
            change_pin(&mut r, "9999", "5678", v),
            Err(CtapError::PinInvalid.code())
        );
        assert_eq!(
            change_pin(&mut r, PIN, "567", v),
            Err(CtapError::PinPolicyViolation.code())
        );
        change_pin(&mut r, PIN, "5678", v).unwrap();
        let req = with_token(&ga("example.com", &[], None), &token, v, 6);
        assert_eq!(
            r.auth.handle(&req, &NoInteraction),
            [CtapError::PinAuthInvalid.code()],
            "old token void"
        );
        assert_eq!(
            pin_token(&mut r, PIN, v, permission::GA, "example.com"),
            Err(CtapError::PinInvalid.code())
        );
        let token = pin_token(&mut r, "5678", v, permission::GA, "example.com").unwrap();
        let m = parse(&r.auth.handle(
            &with_token(&ga("example.com", &[], None), &token, v, 6),
            &NoInteraction,
        ))
        .unwrap();
        verify(&made.key, &bytes_of(get(&m, 2)), &bytes_of(get(&m, 3)));
    }
}

#[test]
fn tokens_are_bound_to_permission_and_rp_and_expire() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    let made = make(&mut r, &Mc::new("example.com", b"u", false));
    let req = ga("example.com", std::slice::from_ref(&made.id), None);

    let mc_only = pin_token(&mut r, PIN, v, permission::MC, "example.com").unwrap();
    assert_eq!(
        r.auth.handle(&with_token(&req, &mc_only, v, 6), &NoInteraction),
        [CtapError::PinAuthInvalid.code()]
    );
    let other_rp = pin_token(&mut r, PIN, v, permission::GA, "other.example").unwrap();
    assert_eq!(
        r.auth.handle(&with_token(&req, &other_rp, v, 6), &NoInteraction),
        [CtapError::PinAuthInvalid.code()]
    );
    let good = pin_token(&mut r, PIN, v, permission::GA, "example.com").unwrap();
    r.clock.advance(crate::pin::TOKEN_IDLE_MS);
    assert_eq!(
        r.auth.handle(&with_token(&req, &good, v, 6), &NoInteraction),
        [CtapError::PinAuthInvalid.code()],
        "unused for 30 s"
    );
    // A token from protocol One works when the request says protocol One.
    let one = pin_token(&mut r, PIN, ProtocolVersion::One, permission::GA, "example.com").unwrap();
    assert!(parse(
        &r.auth
            .handle(&with_token(&req, &one, ProtocolVersion::One, 6), &NoInteraction)
    )
    .is_ok());
}

#[test]
fn a_pin_token_gives_uv_and_presence_is_still_asked() {
    let mut r = rig();
    let v = ProtocolVersion::One;
    let token = pin_token(&mut r, PIN, v, permission::MC, "example.com").unwrap();
    let asked = r.person.seen().len();
    let req = with_token(&Mc::new("example.com", b"u", true).encode(), &token, v, 8);
    let m = parse(&r.auth.handle(&req, &NoInteraction)).unwrap();
    assert_eq!(bytes_of(get(&m, 2))[32], flags::UP | flags::UV | flags::AT);
    assert_eq!(
        r.person.seen().len(),
        asked + 1,
        "one presence prompt, no PIN prompt"
    );
    assert_eq!(r.person.seen().last().unwrap().action, Action::Register);
    assert_eq!(
        r.auth.handle(&req, &NoInteraction),
        [CtapError::PinAuthInvalid.code()],
        "mc permission spent"
    );
}

#[test]
fn built_in_uv_token_carries_presence() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    let (shared, platform) = agree(&mut r, v);
    let resp = client_pin(
        &mut r,
        v,
        6,
        vec![
            (3, platform),
            (9, Value::Integer(permission::MC.into())),
            (10, text("example.com")),
        ],
    )
    .unwrap();
    let token: [u8; 32] = shared
        .decrypt(&bytes_of(get(&resp, 2)))
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(r.person.seen().last().unwrap().action, Action::Unlock);
    let asked = r.person.seen().len();
    let req = with_token(&Mc::new("example.com", b"u", true).encode(), &token, v, 8);
    let m = parse(&r.auth.handle(&req, &NoInteraction)).unwrap();
    assert_eq!(bytes_of(get(&m, 2))[32], flags::UP | flags::UV | flags::AT);
    assert_eq!(
        r.person.seen().len(),
        asked,
        "the PIN typed into our prompt was the presence"
    );

    // A wrong PIN typed into our prompt is UV_INVALID and costs a retry.
    r.person.push(Step::Pin("0000".into()));
    assert_eq!(
        r.auth
            .handle(&Mc::new("example.com", b"v", true).encode(), &NoInteraction),
        [CtapError::UvInvalid.code()]
    );
    let m = client_pin(&mut r, v, 7, vec![]).unwrap();
    assert_eq!(get(&m, 5), Some(&Value::Integer(7.into())));
}

#[test]
fn without_a_pin_prompt_the_platform_must_bring_a_token() {
    let clock = ManualClock::new();
    let mut auth = Authenticator::new(
        Box::new(InsecureSoftwareCustody::new()),
        Box::new(MemoryStore::new()),
        Box::new(AlwaysApprove),
        Arc::new(clock),
        Config::default(),
    );
    let m = parse(&auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    let opts = cbor::text_keyed(get(&m, 4).unwrap().clone()).unwrap();
    assert!(!opts.contains_key("uv"), "no built-in verification to advertise");
    let mut r = Rig {
        auth,
        person: Person(
            Arc::new(Mutex::new(Scripted::new([], Step::Approve))),
            Arc::default(),
        ),
        clock: ManualClock::new(),
    };
    set_pin(&mut r, PIN, ProtocolVersion::Two).unwrap();
    assert_eq!(
        r.auth
            .handle(&Mc::new("example.com", b"u", true).encode(), &NoInteraction),
        [CtapError::PuatRequired.code()]
    );
    let token = pin_token(&mut r, PIN, ProtocolVersion::Two, permission::MC, "example.com").unwrap();
    let req = with_token(
        &Mc::new("example.com", b"u", true).encode(),
        &token,
        ProtocolVersion::Two,
        8,
    );
    assert!(parse(&r.auth.handle(&req, &NoInteraction)).is_ok());
}

#[test]
fn the_vault_is_locked_when_nothing_verified_is_running() {
    let mut r = rig();
    make(&mut r, &Mc::new("example.com", b"a", true));
    assert!(
        !r.auth.custody.is_unlocked(),
        "built-in UV without a token: locked right after"
    );
    let _token = pin_token(&mut r, PIN, ProtocolVersion::Two, permission::GA, "example.com").unwrap();
    assert!(r.auth.custody.is_unlocked());
    assert!(r.auth.next_deadline().is_some());
    r.clock.advance(crate::pin::TOKEN_IDLE_MS);
    r.auth.tick();
    assert!(!r.auth.custody.is_unlocked(), "token expired: locked");
    assert_eq!(r.auth.next_deadline(), None, "and nothing left to wake up for");
}

/// A transport answers, sends, then settles. The request that spent its
/// token's verification leaves the vault open only until then, and an
/// answer that was never settled is settled by the next request first.
#[test]
fn the_vault_is_locked_after_the_answer_or_before_the_next_request() {
    let mut r = rig();
    let mc = Mc::new("example.com", b"a", true).encode();
    for settle in [true, false] {
        let token = pin_token(&mut r, PIN, ProtocolVersion::Two, permission::MC, "example.com").unwrap();
        let req = with_token(&mc, &token, ProtocolVersion::Two, 8);
        assert!(parse(&r.auth.answer(&req, &NoInteraction)).is_ok());
        assert!(r.auth.custody.is_unlocked(), "locked before the answer left");
        if settle {
            r.auth.settle();
        } else {
            // A request that needs no key: it must still find the vault locked
            // by the time it runs, and leave it so.
            assert_eq!(r.auth.answer(&[command::GET_INFO], &NoInteraction)[0], 0);
        }
        assert!(
            !r.auth.custody.is_unlocked(),
            "the spent token left the vault open (settle: {settle})"
        );
    }
}

// ---- CTAP 2.1: credential management, extensions, large blobs, config ----

/// Send a command whose pinUvAuthParam covers `message`; `entries` are the
/// other members, and the param/protocol go at keys `param_key`/`param_key + 1`
/// unless `swap` (credential management and config put the protocol first).
fn authed(
    r: &mut Rig,
    cmd: u8,
    mut entries: Vec<(u64, Value)>,
    token: &[u8; 32],
    message: &[u8],
    protocol_key: u64,
    param_key: u64,
) -> Result<Vec<(i128, Value)>, u8> {
    let v = ProtocolVersion::Two;
    entries.push((
        param_key,
        Value::Bytes(crate::pin_protocol::authenticate_with_token(v, token, message)),
    ));
    entries.push((protocol_key, Value::Integer(2.into())));
    let mut req = vec![cmd];
    req.extend(cbor::encode(&int_map(entries)));
    let resp = r.auth.handle(&req, &NoInteraction);
    if resp == [0] {
        return Ok(vec![]);
    }
    parse(&resp)
}

fn cm(r: &mut Rig, token: &[u8; 32], sub: u8, params: Option<Value>) -> Result<Vec<(i128, Value)>, u8> {
    let mut message = vec![sub];
    let mut entries = vec![(1, Value::Integer(sub.into()))];
    if let Some(p) = params {
        message.extend(cbor::encode(&p));
        entries.push((2, p));
    }
    authed(r, command::CREDENTIAL_MANAGEMENT, entries, token, &message, 3, 4)
}

fn cm_next(r: &mut Rig, sub: u8) -> Result<Vec<(i128, Value)>, u8> {
    let mut req = vec![command::CREDENTIAL_MANAGEMENT];
    req.extend(cbor::encode(&int_map([(1, Value::Integer(sub.into()))])));
    parse(&r.auth.handle(&req, &NoInteraction))
}

fn int(v: Option<&Value>) -> i128 {
    v.and_then(Value::as_integer).map(i128::from).expect("integer")
}

#[test]
fn credential_management_lists_renames_and_deletes() {
    let mut r = rig();
    let a = make(&mut r, &Mc::new("a.example", b"alice", true));
    make(&mut r, &Mc::new("a.example", b"bob", true));
    make(&mut r, &Mc::new("b.example", b"carol", true));
    make(&mut r, &Mc::new("c.example", b"dave", false));
    let v = ProtocolVersion::Two;
    let t = pin_token_for(&mut r, PIN, v, permission::CM, None).unwrap();

    let m = cm(&mut r, &t, 1, None).unwrap();
    assert_eq!(int(get(&m, 1)), 3, "discoverable credentials only");
    assert!(int(get(&m, 2)) > 0);

    let first = cm(&mut r, &t, 2, None).unwrap();
    assert_eq!(int(get(&first, 5)), 2);
    let rp = cbor::text_keyed(get(&first, 3).unwrap().clone()).unwrap();
    assert_eq!(rp.get("id"), Some(&text("a.example")));
    assert_eq!(bytes_of(get(&first, 4)), Sha256::digest(b"a.example").to_vec());
    let second = cm_next(&mut r, 3).unwrap();
    assert_eq!(
        cbor::text_keyed(get(&second, 3).unwrap().clone())
            .unwrap()
            .get("id"),
        Some(&text("b.example"))
    );
    assert_eq!(
        cm_next(&mut r, 3).unwrap_err(),
        CtapError::NotAllowed.code(),
        "listing over"
    );

    let hash = Value::Bytes(Sha256::digest(b"a.example").to_vec());
    let c1 = cm(&mut r, &t, 4, Some(int_map([(1, hash.clone())]))).unwrap();
    assert_eq!(int(get(&c1, 9)), 2);
    assert_eq!(int(get(&c1, 0x0A)), 1, "credProtect level");
    let c2 = cm_next(&mut r, 5).unwrap();
    let ids: Vec<Vec<u8>> = [&c1, &c2]
        .iter()
        .map(|m| {
            cbor::text_keyed(get(m, 7).unwrap().clone())
                .unwrap()
                .get("id")
                .and_then(Value::as_bytes)
                .cloned()
                .unwrap()
        })
        .collect();
    assert!(ids.contains(&a.id));
    // The public key in the listing is the attested one.
    assert!(a
        .auth_data
        .windows(cbor::encode(get(&c1, 8).unwrap()).len())
        .any(|w| {
            w == cbor::encode(get(&c1, 8).unwrap()).as_slice()
                || w == cbor::encode(get(&c2, 8).unwrap()).as_slice()
        }));

    // Rename alice, then delete her.
    let descriptor = text_map([("id", Value::Bytes(a.id.clone())), ("type", text("public-key"))]);
    let user = text_map([
        ("id", Value::Bytes(b"alice".to_vec())),
        ("name", text("alice@new.example")),
    ]);
    cm(&mut r, &t, 7, Some(int_map([(2, descriptor.clone()), (3, user)]))).unwrap();
    let wrong_user = text_map([("id", Value::Bytes(b"mallory".to_vec()))]);
    assert_eq!(
        cm(
            &mut r,
            &t,
            7,
            Some(int_map([(2, descriptor.clone()), (3, wrong_user)]))
        )
        .unwrap_err(),
        CtapError::InvalidParameter.code()
    );
    let m = parse(&r.auth.handle(
        &ga("a.example", std::slice::from_ref(&a.id), None),
        &NoInteraction,
    ))
    .unwrap();
    let u = cbor::text_keyed(get(&m, 4).unwrap().clone()).unwrap();
    assert_eq!(u.get("name"), Some(&text("alice@new.example")));

    cm(&mut r, &t, 6, Some(int_map([(2, descriptor.clone())]))).unwrap();
    assert_eq!(
        r.auth.handle(
            &ga("a.example", std::slice::from_ref(&a.id), None),
            &NoInteraction
        ),
        [CtapError::NoCredentials.code()]
    );
    assert_eq!(
        cm(&mut r, &t, 6, Some(int_map([(2, descriptor)]))).unwrap_err(),
        CtapError::NoCredentials.code()
    );
    let m = cm(&mut r, &t, 1, None).unwrap();
    assert_eq!(int(get(&m, 1)), 2);
}

#[test]
fn credential_management_token_rules() {
    let mut r = rig();
    make(&mut r, &Mc::new("a.example", b"alice", true));
    let v = ProtocolVersion::Two;
    // No token at all.
    let mut req = vec![command::CREDENTIAL_MANAGEMENT];
    req.extend(cbor::encode(&int_map([(1, Value::Integer(1.into()))])));
    assert_eq!(
        r.auth.handle(&req, &NoInteraction),
        [CtapError::PuatRequired.code()]
    );
    // A token without cm.
    let ga_only = pin_token(&mut r, PIN, v, permission::GA, "a.example").unwrap();
    assert_eq!(
        cm(&mut r, &ga_only, 1, None).unwrap_err(),
        CtapError::PinAuthInvalid.code()
    );
    // A cm token bound to one RP sees that RP only.
    let bound = pin_token(&mut r, PIN, v, permission::CM, "b.example").unwrap();
    assert_eq!(
        cm(&mut r, &bound, 1, None).unwrap_err(),
        CtapError::PinAuthInvalid.code()
    );
    assert_eq!(
        cm(&mut r, &bound, 2, None).unwrap_err(),
        CtapError::PinAuthInvalid.code()
    );
    let hash = Value::Bytes(Sha256::digest(b"a.example").to_vec());
    assert_eq!(
        cm(&mut r, &bound, 4, Some(int_map([(1, hash.clone())]))).unwrap_err(),
        CtapError::PinAuthInvalid.code()
    );
    let right = pin_token(&mut r, PIN, v, permission::CM, "a.example").unwrap();
    assert!(cm(&mut r, &right, 4, Some(int_map([(1, hash)]))).is_ok());
    // Next without a begin; unknown subcommand; the 0x41 prototype number.
    assert_eq!(cm_next(&mut r, 5).unwrap_err(), CtapError::NotAllowed.code());
    let all = pin_token_for(&mut r, PIN, v, permission::CM, None).unwrap();
    assert_eq!(
        cm(&mut r, &all, 0x42, None).unwrap_err(),
        CtapError::InvalidSubcommand.code()
    );
    let m = authed(
        &mut r,
        command::CREDENTIAL_MANAGEMENT_PRE,
        vec![(1, Value::Integer(1.into()))],
        &all,
        &[1],
        3,
        4,
    )
    .unwrap();
    assert_eq!(int(get(&m, 1)), 1);
}

/// The platform's side of hmac-secret: returns the decrypted output.
fn hmac_secret(r: &mut Rig, made: &Made, salts: &[u8], v: ProtocolVersion) -> Result<Vec<u8>, u8> {
    let (shared, platform) = agree(r, v);
    let salt_enc = shared.encrypt(salts).unwrap();
    let salt_auth = shared.authenticate(&salt_enc);
    let ext = text_map([(
        "hmac-secret",
        int_map([
            (1, platform),
            (2, Value::Bytes(salt_enc)),
            (3, Value::Bytes(salt_auth)),
            (4, Value::Integer(v.as_u64().into())),
        ]),
    )]);
    let mut req = vec![command::GET_ASSERTION];
    req.extend(cbor::encode(&int_map([
        (1, text("example.com")),
        (2, Value::Bytes(CDH.to_vec())),
        (3, descriptors(std::slice::from_ref(&made.id))),
        (4, ext),
    ])));
    let m = parse(&r.auth.handle(&req, &NoInteraction))?;
    let auth_data = bytes_of(get(&m, 2));
    assert_eq!(auth_data[32] & flags::ED, flags::ED);
    verify(&made.key, &auth_data, &bytes_of(get(&m, 3)));
    let outputs = cbor::text_keyed(cbor::decode(&auth_data[37..]).unwrap()).unwrap();
    let enc = outputs
        .get("hmac-secret")
        .and_then(Value::as_bytes)
        .unwrap()
        .clone();
    Ok(shared.decrypt(&enc).unwrap())
}

#[test]
fn hmac_secret_is_stable_per_salt_and_works_with_both_protocols() {
    let mut r = rig();
    let mut mc = Mc::new("example.com", b"u", false);
    mc.extra.push((6, text_map([("hmac-secret", Value::Bool(true))])));
    let resp = parse(&r.auth.handle(&mc.encode(), &NoInteraction)).unwrap();
    let auth_data = bytes_of(get(&resp, 2));
    assert_eq!(auth_data[32] & flags::ED, flags::ED);
    let made = make(&mut r, &mc);
    let salt1 = [1u8; 32];
    let salt2 = [2u8; 32];
    for v in [ProtocolVersion::One, ProtocolVersion::Two] {
        let a = hmac_secret(&mut r, &made, &salt1, v).unwrap();
        let b = hmac_secret(&mut r, &made, &salt1, v).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(a, b, "same salt, same secret");
        let both = hmac_secret(&mut r, &made, &[salt1, salt2].concat(), v).unwrap();
        assert_eq!(both.len(), 64);
        assert_eq!(&both[..32], &a[..]);
        assert_ne!(&both[32..], &a[..]);
    }
    assert_eq!(
        hmac_secret(&mut r, &made, &[1u8; 16], ProtocolVersion::Two).unwrap_err(),
        CtapError::InvalidLength.code()
    );
}

#[test]
fn cred_blob_large_blob_key_and_cred_protect() {
    let mut r = rig();
    let mut mc = Mc::new("example.com", b"u", true);
    mc.extra.push((
        6,
        text_map([
            ("credBlob", Value::Bytes(vec![7; 32])),
            ("credProtect", Value::Integer(3.into())),
            ("largeBlobKey", Value::Bool(true)),
        ]),
    ));
    let resp = parse(&r.auth.handle(&mc.encode(), &NoInteraction)).unwrap();
    let auth_data = bytes_of(get(&resp, 2));
    let id_len = u16::from_be_bytes([auth_data[53], auth_data[54]]) as usize;
    // Skip the COSE key to reach the extension outputs.
    let mut rest = &auth_data[55 + id_len..];
    let _: Value = ciborium::from_reader(&mut rest).unwrap();
    let outputs = cbor::text_keyed(cbor::decode(rest).unwrap()).unwrap();
    assert_eq!(outputs.get("credBlob"), Some(&Value::Bool(true)));
    assert_eq!(outputs.get("credProtect"), Some(&Value::Integer(3.into())));
    let lbk = bytes_of(get(&resp, 5));
    assert_eq!(lbk.len(), 32);

    let mut req = vec![command::GET_ASSERTION];
    req.extend(cbor::encode(&int_map([
        (1, text("example.com")),
        (2, Value::Bytes(CDH.to_vec())),
        (
            4,
            text_map([
                ("credBlob", Value::Bool(true)),
                ("largeBlobKey", Value::Bool(true)),
            ]),
        ),
    ])));
    let m = parse(&r.auth.handle(&req, &NoInteraction)).unwrap();
    assert_eq!(bytes_of(get(&m, 7)), lbk);
    let ad = bytes_of(get(&m, 2));
    let outputs = cbor::text_keyed(cbor::decode(&ad[37..]).unwrap()).unwrap();
    assert_eq!(outputs.get("credBlob"), Some(&Value::Bytes(vec![7; 32])));

    // Too long a blob is refused, the credential still made; largeBlobKey needs rk.
    let mut long = Mc::new("example.com", b"v", false);
    long.extra
        .push((6, text_map([("credBlob", Value::Bytes(vec![7; 33]))])));
    assert!(parse(&r.auth.handle(&long.encode(), &NoInteraction)).is_ok());
    let mut nork = Mc::new("example.com", b"w", false);
    nork.extra
        .push((6, text_map([("largeBlobKey", Value::Bool(true))])));
    assert_eq!(
        r.auth.handle(&nork.encode(), &NoInteraction),
        [CtapError::InvalidOption.code()]
    );
}

fn blob_get(r: &mut Rig, offset: u64, n: u64) -> Result<Vec<u8>, u8> {
    let mut req = vec![command::LARGE_BLOBS];
    req.extend(cbor::encode(&int_map([
        (1, Value::Integer(n.into())),
        (3, Value::Integer(offset.into())),
    ])));
    parse(&r.auth.handle(&req, &NoInteraction)).map(|m| bytes_of(get(&m, 1)))
}

fn blob_set(r: &mut Rig, token: &[u8; 32], data: &[u8], offset: u32, length: Option<u64>) -> Result<(), u8> {
    let mut message = vec![0xff; 32];
    message.extend_from_slice(&[0x0c, 0x00]);
    message.extend_from_slice(&offset.to_le_bytes());
    message.extend_from_slice(&Sha256::digest(data));
    let mut entries = vec![
        (2, Value::Bytes(data.to_vec())),
        (3, Value::Integer(offset.into())),
    ];
    if let Some(l) = length {
        entries.push((4, Value::Integer(l.into())));
    }
    authed(r, command::LARGE_BLOBS, entries, token, &message, 6, 5).map(|_| ())
}

#[test]
fn large_blobs_are_written_in_fragments_and_checked() {
    let mut r = rig();
    let initial = blob_get(&mut r, 0, 100).unwrap();
    assert_eq!(initial[0], 0x80);
    assert_eq!(initial.len(), 17);
    assert_eq!(&initial[1..], &Sha256::digest([0x80])[..16]);

    let v = ProtocolVersion::Two;
    let t = pin_token_for(&mut r, PIN, v, permission::LBW, None).unwrap();
    let body = cbor::encode(&Value::Array(vec![Value::Bytes(vec![9; 100])]));
    let mut array = body.clone();
    array.extend_from_slice(&Sha256::digest(&body)[..16]);
    let (a, b) = array.split_at(50);
    blob_set(&mut r, &t, a, 0, Some(array.len() as u64)).unwrap();
    assert_eq!(
        blob_set(&mut r, &t, b, 49, None).unwrap_err(),
        CtapError::InvalidSeq.code()
    );
    blob_set(&mut r, &t, b, 50, None).unwrap();
    assert_eq!(blob_get(&mut r, 0, 1000).unwrap(), array);
    assert_eq!(blob_get(&mut r, 50, 10).unwrap(), &array[50..60]);

    // A corrupt array is refused whole.
    let mut bad = array.clone();
    bad[0] ^= 1;
    assert_eq!(
        blob_set(&mut r, &t, &bad, 0, Some(bad.len() as u64)).unwrap_err(),
        CtapError::IntegrityFailure.code()
    );
    assert_eq!(blob_get(&mut r, 0, 1000).unwrap(), array, "the old array stays");
    // Without lbw, or without a token.
    let mc = pin_token(&mut r, PIN, v, permission::MC, "example.com").unwrap();
    assert_eq!(
        blob_set(&mut r, &mc, &array, 0, Some(array.len() as u64)).unwrap_err(),
        CtapError::PinAuthInvalid.code()
    );
    let mut req = vec![command::LARGE_BLOBS];
    req.extend(cbor::encode(&int_map([
        (2, Value::Bytes(array.clone())),
        (3, Value::Integer(0.into())),
        (4, Value::Integer((array.len() as u64).into())),
    ])));
    assert_eq!(
        r.auth.handle(&req, &NoInteraction),
        [CtapError::PuatRequired.code()]
    );
    assert_eq!(
        blob_set(&mut r, &t, &array, 0, Some(5000)).unwrap_err(),
        CtapError::LargeBlobStorageFull.code()
    );
}

fn config(r: &mut Rig, token: &[u8; 32], sub: u8, params: Option<Value>) -> Result<(), u8> {
    let mut message = vec![0xff; 32];
    message.extend_from_slice(&[0x0d, sub]);
    let mut entries = vec![(1, Value::Integer(sub.into()))];
    if let Some(p) = params {
        message.extend(cbor::encode(&p));
        entries.push((2, p));
    }
    authed(r, command::CONFIG, entries, token, &message, 3, 4).map(|_| ())
}

#[test]
fn config_min_pin_length_forces_a_change_and_refuses_the_rest() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    let t = pin_token_for(&mut r, PIN, v, permission::ACFG, None).unwrap();
    assert_eq!(
        config(&mut r, &t, 2, None).unwrap_err(),
        CtapError::OperationDenied.code()
    );
    assert_eq!(
        config(&mut r, &t, 1, None).unwrap_err(),
        CtapError::InvalidSubcommand.code()
    );
    config(
        &mut r,
        &t,
        3,
        Some(int_map([
            (1, Value::Integer(6.into())),
            (2, Value::Array(vec![text("example.com")])),
        ])),
    )
    .unwrap();
    assert_eq!(
        config(&mut r, &t, 3, Some(int_map([(1, Value::Integer(5.into()))]))).unwrap_err(),
        CtapError::PinPolicyViolation.code(),
        "the minimum never goes down"
    );
    let m = parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    assert_eq!(int(get(&m, 0x0D)), 6);
    assert_eq!(
        get(&m, 0x0C),
        Some(&Value::Bool(true)),
        "the 4-digit PIN must change"
    );
    assert_eq!(
        pin_token(&mut r, PIN, v, permission::GA, "example.com").unwrap_err(),
        CtapError::PinPolicyViolation.code()
    );
    assert_eq!(
        change_pin(&mut r, PIN, "12345", v),
        Err(CtapError::PinPolicyViolation.code())
    );
    change_pin(&mut r, PIN, "123456", v).unwrap();
    let m = parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    assert_eq!(get(&m, 0x0C), Some(&Value::Bool(false)));

    // The listed RP may read the minimum through the minPinLength extension.
    r.person.push(Step::Pin("123456".into()));
    let mut mc = Mc::new("example.com", b"u", false);
    mc.extra
        .push((6, text_map([("minPinLength", Value::Bool(true))])));
    let resp = parse(&r.auth.handle(&mc.encode(), &NoInteraction)).unwrap();
    let auth_data = bytes_of(get(&resp, 2));
    let id_len = u16::from_be_bytes([auth_data[53], auth_data[54]]) as usize;
    let mut rest = &auth_data[55 + id_len..];
    let _: Value = ciborium::from_reader(&mut rest).unwrap();
    let outputs = cbor::text_keyed(cbor::decode(rest).unwrap()).unwrap();
    assert_eq!(outputs.get("minPinLength"), Some(&Value::Integer(6.into())));
}

#[test]
fn get_info_lists_exactly_what_is_implemented() {
    let mut r = rig();
    let m = parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    let versions: Vec<_> = get(&m, 1)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_text().unwrap().to_owned())
        .collect();
    assert_eq!(versions, ["FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1", "FIDO_2_2"]);
    let exts: Vec<_> = get(&m, 2)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_text().unwrap().to_owned())
        .collect();
    assert_eq!(
        exts,
        [
            "credProtect",
            "hmac-secret",
            "hmac-secret-mc",
            "credBlob",
            "largeBlobKey",
            "minPinLength",
            "thirdPartyPayment"
        ]
    );
    let opts = cbor::text_keyed(get(&m, 4).unwrap().clone()).unwrap();
    for o in [
        "credMgmt",
        "credentialMgmtPreview",
        "largeBlobs",
        "authnrCfg",
        "setMinPINLength",
        "perCredMgmtRO",
    ] {
        assert_eq!(opts.get(o), Some(&Value::Bool(true)), "{o}");
    }
    assert!(!opts.contains_key("ep"), "no enterprise attestation");
    assert!(!opts.contains_key("bioEnroll"));
    assert_eq!(int(get(&m, 0x0B)), 4096);
    assert_eq!(int(get(&m, 0x0F)), 32);
    assert_eq!(
        get(&m, 0x16),
        Some(&Value::Array(vec![text("packed"), text("none")]))
    );
    assert_eq!(int(get(&m, 0x1D)), 63, "maxPINLength, in bytes");
}

#[test]
fn a_silent_probe_without_a_token_hears_none_here_only() {
    let mut r = rig();
    let asked = r.person.seen().len();
    let probe = ga(
        "example.com",
        &[vec![3; 32]],
        Some(text_map([("up", Value::Bool(false))])),
    );
    assert_eq!(
        r.auth.handle(&probe, &NoInteraction),
        [CtapError::NoCredentials.code()]
    );
    assert_eq!(r.person.seen().len(), asked, "no prompt for a probe");
}

/// getPinUvAuthTokenUsingUvWithPermissions; returns the decrypted token.
fn uv_token(r: &mut Rig, v: ProtocolVersion, perms: u8, rp: &str) -> Result<[u8; 32], u8> {
    let (shared, platform) = agree(r, v);
    let resp = client_pin(
        r,
        v,
        6,
        vec![(3, platform), (9, Value::Integer(perms.into())), (10, text(rp))],
    )?;
    Ok(shared
        .decrypt(&bytes_of(get(&resp, 2)))
        .unwrap()
        .try_into()
        .unwrap())
}

fn user_selected(m: &[(i128, Value)]) -> Option<&Value> {
    get(m, 6)
}

#[test]
fn user_selected_only_for_the_one_account_the_prompt_named_and_the_person_approved() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    let alice = make(&mut r, &Mc::new("example.com", b"alice", true));
    make(&mut r, &Mc::new("other.example", b"zed", true));

    // Built-in UV for a GA token at an RP with one passkey: the prompt names it.
    let token = uv_token(&mut r, v, permission::GA, "example.com").unwrap();
    let shown = r.person.seen().last().unwrap().clone();
    assert_eq!(
        shown.action,
        Action::SignIn,
        "a sign-in token naming the account says so"
    );
    assert_eq!(shown.rp_id, "example.com");
    assert_eq!(shown.user_name.as_deref(), Some("alice@example.com"));
    let asked = r.person.seen().len();
    let m = parse(&r.auth.handle(
        &with_token(&ga("example.com", &[], None), &token, v, 6),
        &NoInteraction,
    ))
    .unwrap();
    assert_eq!(user_selected(&m), Some(&Value::Bool(true)));
    assert_eq!(
        bytes_of(
            get(&m, 1)
                .and_then(|d| cbor::text_keyed(d.clone()).ok()?.get("id").cloned())
                .as_ref()
        ),
        alice.id
    );
    assert!(get(&m, 5).is_none(), "a single match has no numberOfCredentials");
    verify(&alice.key, &bytes_of(get(&m, 2)), &bytes_of(get(&m, 3)));
    assert_eq!(
        r.person.seen().len(),
        asked,
        "the token's prompt was the presence"
    );

    // The same account, but the site gave an allowList: never userSelected (§6.2.2).
    let token = uv_token(&mut r, v, permission::GA, "example.com").unwrap();
    let req = with_token(
        &ga("example.com", std::slice::from_ref(&alice.id), None),
        &token,
        v,
        6,
    );
    let m = parse(&r.auth.handle(&req, &NoInteraction)).unwrap();
    assert_eq!(user_selected(&m), None);

    // A token for mc only names nobody, and a PIN token was never shown to
    // the person with an account: a silent (up=false) GA says nothing.
    uv_token(&mut r, v, permission::MC, "example.com").unwrap();
    assert_eq!(r.person.seen().last().unwrap().user_name, None);
    let token = pin_token(&mut r, PIN, v, permission::GA, "example.com").unwrap();
    let silent = ga("example.com", &[], Some(text_map([("up", Value::Bool(false))])));
    let m = parse(&r.auth.handle(&with_token(&silent, &token, v, 6), &NoInteraction)).unwrap();
    assert_eq!(user_selected(&m), None, "no presence, no selection");
    assert_eq!(bytes_of(get(&m, 2))[32], flags::UV);

    // A PIN token carries no presence: our presence prompt asks, naming the
    // account; approving it is the person choosing it.
    let token = pin_token(&mut r, PIN, v, permission::GA, "example.com").unwrap();
    let m = parse(&r.auth.handle(
        &with_token(&ga("example.com", &[], None), &token, v, 6),
        &NoInteraction,
    ))
    .unwrap();
    let shown = r.person.seen().last().unwrap().clone();
    assert_eq!(
        (shown.action, shown.user_name.as_deref()),
        (Action::SignIn, Some("alice@example.com"))
    );
    assert_eq!(user_selected(&m), Some(&Value::Bool(true)));

    // The uv option (no token): our prompt names the account too.
    let uv = ga("example.com", &[], Some(text_map([("uv", Value::Bool(true))])));
    let m = parse(&r.auth.handle(&uv, &NoInteraction)).unwrap();
    assert_eq!(
        r.person.seen().last().unwrap().user_name.as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(user_selected(&m), Some(&Value::Bool(true)));

    // A declined prompt is OPERATION_DENIED and costs no PIN try.
    r.person.push(Step::Deny);
    assert_eq!(
        uv_token(&mut r, v, permission::GA, "example.com"),
        Err(CtapError::OperationDenied.code())
    );
    assert_eq!(retries(&mut r), (pin::MAX_RETRIES, false));
}

#[test]
fn no_user_selected_with_two_accounts_or_when_the_named_account_is_not_the_match() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    let alice = make(&mut r, &Mc::new("example.com", b"alice", true));

    // The token's prompt named alice; by the time of the GA the RP has a
    // second account, so the person's approval cannot stand for a choice.
    let token = uv_token(&mut r, v, permission::GA | permission::MC, "example.com").unwrap();
    let shown = r.person.seen().last().unwrap().clone();
    assert_eq!(
        (shown.action, shown.user_name.as_deref()),
        (Action::Unlock, Some("alice@example.com"))
    );
    // (A resident credential made without the token: the token stays unspent.)
    let bob = make(&mut r, &Mc::new("example.com", b"bob", true));
    let m = parse(&r.auth.handle(
        &with_token(&ga("example.com", &[], None), &token, v, 6),
        &NoInteraction,
    ))
    .unwrap();
    assert_eq!(get(&m, 5), Some(&Value::Integer(2.into())));
    assert_eq!(user_selected(&m), None);
    let next = parse(&r.auth.handle(&[command::GET_NEXT_ASSERTION], &NoInteraction)).unwrap();
    assert_eq!(user_selected(&next), None, "never on GetNextAssertion");

    // Two accounts from the start: the prompt names none but lists both;
    // approved without a pick, nothing is selected and the platform chooses.
    let token = uv_token(&mut r, v, permission::GA, "example.com").unwrap();
    let shown = r.person.seen().last().unwrap().clone();
    assert_eq!(
        (shown.action, shown.user_name, shown.accounts.len()),
        (Action::SignIn, None, 2)
    );
    let m = parse(&r.auth.handle(
        &with_token(&ga("example.com", &[], None), &token, v, 6),
        &NoInteraction,
    ))
    .unwrap();
    assert_eq!(user_selected(&m), None);

    // The token named the one account of example.com, but the assertion is
    // for a credential the allowList picks: no userSelected either.
    let token = uv_token(&mut r, v, permission::GA, "example.com").unwrap();
    let req = with_token(
        &ga("example.com", &[bob.id.clone(), alice.id.clone()], None),
        &token,
        v,
        6,
    );
    let m = parse(&r.auth.handle(&req, &NoInteraction)).unwrap();
    assert_eq!(user_selected(&m), None);
}

fn credential_id(m: &[(i128, Value)]) -> Vec<u8> {
    bytes_of(
        get(m, 1)
            .and_then(|d| cbor::text_keyed(d.clone()).ok()?.get("id").cloned())
            .as_ref(),
    )
}

/// CTAP 2.1 §6.2.2 step 12.2.3: a username-less sign-in with several
/// matches, a prompt that lists them, and the person picks one.
#[test]
fn the_account_picked_in_our_prompt_answers_alone_with_user_selected() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    let a = make(&mut r, &Mc::new("example.com", b"alice", true));
    let b = make(&mut r, &Mc::new("example.com", b"bob", true));
    let c = make(&mut r, &Mc::new("example.com", b"carol", true));
    make(&mut r, &Mc::new("other.example", b"dave", true));

    // The uv option, no token: one prompt lists the three (most recent
    // first), takes the PIN and the pick; the second one shown is bob.
    r.person.push(Step::Choose(1));
    let uv = ga("example.com", &[], Some(text_map([("uv", Value::Bool(true))])));
    let m = parse(&r.auth.handle(&uv, &NoInteraction)).unwrap();
    let shown = r.person.seen().last().unwrap().clone();
    assert_eq!(
        (shown.action, shown.rp_id.as_str(), shown.user_name),
        (Action::SignIn, "example.com", None)
    );
    assert_eq!(
        shown.accounts.len(),
        3,
        "only this RP's accounts: {:?}",
        shown.accounts
    );
    assert_eq!(shown.accounts[0].user_name.as_deref(), Some("alice@example.com"));
    assert_eq!(credential_id(&m), b.id);
    assert_eq!(user_selected(&m), Some(&Value::Bool(true)));
    assert!(get(&m, 5).is_none(), "no numberOfCredentials after a pick");
    assert_eq!(
        bytes_of(get(&m, 2))[32] & (flags::UP | flags::UV),
        flags::UP | flags::UV
    );
    verify(&b.key, &bytes_of(get(&m, 2)), &bytes_of(get(&m, 3)));
    assert_eq!(
        r.auth.handle(&[command::GET_NEXT_ASSERTION], &NoInteraction),
        [CtapError::NotAllowed.code()],
        "nothing follows a pick"
    );

    // A built-in-UV token for signing in: its prompt lists them, and the
    // pick travels with the token to the GA, which asks nothing more.
    r.person.push(Step::Choose(2));
    let token = uv_token(&mut r, v, permission::GA, "example.com").unwrap();
    let shown = r.person.seen().last().unwrap().clone();
    assert_eq!((shown.action, shown.accounts.len()), (Action::SignIn, 3));
    let asked = r.person.seen().len();
    let m = parse(&r.auth.handle(
        &with_token(&ga("example.com", &[], None), &token, v, 6),
        &NoInteraction,
    ))
    .unwrap();
    assert_eq!(
        r.person.seen().len(),
        asked,
        "the token's prompt was the presence"
    );
    assert_eq!(credential_id(&m), a.id);
    assert_eq!(user_selected(&m), Some(&Value::Bool(true)));
    assert!(get(&m, 5).is_none());

    // A PIN token carries no presence: the presence prompt lists them.
    let token = pin_token(&mut r, PIN, v, permission::GA, "example.com").unwrap();
    r.person.push(Step::Choose(0));
    let m = parse(&r.auth.handle(
        &with_token(&ga("example.com", &[], None), &token, v, 6),
        &NoInteraction,
    ))
    .unwrap();
    assert_eq!(r.person.seen().last().unwrap().accounts.len(), 3);
    assert_eq!(credential_id(&m), c.id);
    assert_eq!(user_selected(&m), Some(&Value::Bool(true)));

    // An allowList never lists anything: the site already chose.
    let m = parse(&r.auth.handle(
        &ga("example.com", &[a.id.clone(), b.id.clone()], None),
        &NoInteraction,
    ))
    .unwrap();
    assert!(r.person.seen().last().unwrap().accounts.is_empty());
    assert_eq!((credential_id(&m), user_selected(&m)), (a.id.clone(), None));

    // Approved without a pick: the platform chooses, as before.
    let m = parse(&r.auth.handle(&uv, &NoInteraction)).unwrap();
    assert_eq!(get(&m, 5), Some(&Value::Integer(3.into())));
    assert_eq!(user_selected(&m), None);
}

#[test]
fn a_refused_late_or_impossible_pick_answers_nothing() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    make(&mut r, &Mc::new("example.com", b"alice", true));
    make(&mut r, &Mc::new("example.com", b"bob", true));
    let uv = ga("example.com", &[], Some(text_map([("uv", Value::Bool(true))])));
    let plain = ga("example.com", &[], None);

    r.person.push(Step::Deny);
    assert_eq!(
        r.auth.handle(&uv, &NoInteraction),
        [CtapError::OperationDenied.code()]
    );
    // Taking too long to choose is declining to (§6.2.2 step 12.2.3.3).
    r.person.push(Step::NoAnswer);
    assert_eq!(
        r.auth.handle(&uv, &NoInteraction),
        [CtapError::OperationDenied.code()]
    );
    // A pick past the list, from the PIN prompt or the presence prompt:
    // refused, and the PIN is not even tried.
    r.person.push(Step::Choose(2));
    assert_eq!(
        r.auth.handle(&uv, &NoInteraction),
        [CtapError::OperationDenied.code()]
    );
    assert_eq!(retries(&mut r), (pin::MAX_RETRIES, false));
    let token = pin_token(&mut r, PIN, v, permission::GA, "example.com").unwrap();
    r.person.push(Step::Choose(usize::MAX));
    assert_eq!(
        r.auth.handle(&with_token(&plain, &token, v, 6), &NoInteraction),
        [CtapError::OperationDenied.code()]
    );
    r.person.push(Step::Choose(7));
    assert_eq!(
        uv_token(&mut r, v, permission::GA, "example.com"),
        Err(CtapError::OperationDenied.code())
    );
    // A pick where nothing was listed (a registration): refused too.
    r.person.push(Step::Choose(0));
    assert_eq!(
        r.auth
            .handle(&Mc::new("example.com", b"carol", true).encode(), &NoInteraction),
        [CtapError::OperationDenied.code()]
    );
    assert_eq!(
        r.auth.handle(&[command::GET_NEXT_ASSERTION], &NoInteraction),
        [CtapError::NotAllowed.code()]
    );
}

#[test]
fn a_prompt_that_cannot_list_accounts_leaves_the_choice_to_the_platform() {
    let person = Person(
        Arc::new(Mutex::new(
            Scripted::new([], Step::Approve).with_pin(PIN).without_choice(),
        )),
        Arc::default(),
    );
    let clock = ManualClock::new();
    let auth = Authenticator::new(
        Box::new(InsecureSoftwareCustody::new()),
        Box::new(MemoryStore::new()),
        Box::new(person.clone()),
        Arc::new(clock.clone()),
        Config::default(),
    );
    let mut r = Rig { auth, person, clock };
    let v = ProtocolVersion::Two;
    set_pin(&mut r, PIN, v).unwrap();
    make(&mut r, &Mc::new("example.com", b"alice", true));
    make(&mut r, &Mc::new("example.com", b"bob", true));

    let token = uv_token(&mut r, v, permission::GA, "example.com").unwrap();
    let shown = r.person.seen().last().unwrap().clone();
    assert_eq!((shown.action, shown.accounts.len()), (Action::Unlock, 0));
    let m = parse(&r.auth.handle(
        &with_token(&ga("example.com", &[], None), &token, v, 6),
        &NoInteraction,
    ))
    .unwrap();
    assert_eq!(
        (get(&m, 5), user_selected(&m)),
        (Some(&Value::Integer(2.into())), None)
    );
    let uv = ga("example.com", &[], Some(text_map([("uv", Value::Bool(true))])));
    let m = parse(&r.auth.handle(&uv, &NoInteraction)).unwrap();
    assert!(r.person.seen().last().unwrap().accounts.is_empty());
    assert_eq!(get(&m, 5), Some(&Value::Integer(2.into())));
    parse(&r.auth.handle(&[command::GET_NEXT_ASSERTION], &NoInteraction)).unwrap();
}

// ---- clientPIN to the letter of CTAP 2.1 §6.5.5 ----

/// getPinToken (0x05, superseded); returns the decrypted token.
fn legacy_pin_token(r: &mut Rig, pin: &str, v: ProtocolVersion) -> Result<[u8; 32], u8> {
    let (shared, platform) = agree(r, v);
    let hash_enc = shared.encrypt(&crate::pin::pin_hash(pin.as_bytes())[..]).unwrap();
    let resp = client_pin(r, v, 5, vec![(3, platform), (6, Value::Bytes(hash_enc))])?;
    let token = shared.decrypt(&bytes_of(get(&resp, 2))).unwrap();
    Ok(token.try_into().unwrap())
}

/// CTAP 2.1 §6.5.5.2 (the same in 2.2): to getPINRetries the authenticator
/// "responds back with pinRetries and, optionally, powerCycleState"; the
/// text has no error for an authenticator without a PIN. Before the first
/// PIN the counter is at its maximum, and that is the answer.
#[test]
fn get_pin_retries_without_a_pin_answers_pin_retries() {
    let mut r = rig_without_pin();
    for v in [ProtocolVersion::One, ProtocolVersion::Two] {
        let m = client_pin(&mut r, v, 1, vec![]).expect("getPINRetries answers");
        assert_eq!(int(get(&m, 3)), i128::from(pin::MAX_RETRIES));
        assert_eq!(get(&m, 4), Some(&Value::Bool(false)));
    }
    // Without the protocol too: getPINRetries needs none.
    let req = [command::CLIENT_PIN, 0xa1, 0x02, 0x01];
    let m = parse(&r.auth.handle(&req, &NoInteraction)).unwrap();
    assert_eq!(int(get(&m, 3)), i128::from(pin::MAX_RETRIES));
}

/// CTAP 2.1 §6.5.5.7.1 steps 10–11: with forcePINChange set, getPinToken
/// with the right PIN answers CTAP2_ERR_PIN_INVALID; §6.5.5.7.2 step 11:
/// getPinUvAuthTokenUsingPinWithPermissions answers
/// CTAP2_ERR_PIN_POLICY_VIOLATION. Either way the PIN was right: the retry
/// counters are reset (step 10), nothing is counted as a wrong PIN, no token
/// is issued and the vault is locked again. §6.5.5.6 step 13: the change
/// must be to another PIN.
#[test]
fn a_forced_pin_change_refuses_the_right_pin_and_counts_it_as_right() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    let t = pin_token_for(&mut r, PIN, v, permission::ACFG, None).unwrap();
    config(&mut r, &t, 3, Some(int_map([(3, Value::Bool(true))]))).unwrap();
    r.auth.pin.token().revoke();
    r.auth.tick();
    for _ in 0..2 {
        assert_eq!(
            legacy_pin_token(&mut r, "0000", v),
            Err(CtapError::PinInvalid.code())
        );
    }
    assert_eq!(retries(&mut r), (6, false));

    assert_eq!(
        legacy_pin_token(&mut r, PIN, v),
        Err(CtapError::PinInvalid.code())
    );
    assert_eq!(
        retries(&mut r),
        (pin::MAX_RETRIES, false),
        "the right PIN reset the count"
    );
    assert!(
        r.auth.pin.token().grant().is_none(),
        "no token for a PIN that must change"
    );
    assert!(!r.auth.custody.is_unlocked());
    // The per-boot count was reset too: two more wrong PINs are not the third in a row.
    for _ in 0..2 {
        assert_eq!(
            legacy_pin_token(&mut r, "0000", v),
            Err(CtapError::PinInvalid.code())
        );
    }
    assert_eq!(retries(&mut r), (6, false));

    assert_eq!(
        pin_token(&mut r, PIN, v, permission::GA, "example.com"),
        Err(CtapError::PinPolicyViolation.code())
    );
    assert_eq!(retries(&mut r), (pin::MAX_RETRIES, false));
    assert!(r.auth.pin.token().grant().is_none());

    assert_eq!(
        change_pin(&mut r, PIN, PIN, v),
        Err(CtapError::PinPolicyViolation.code()),
        "a forced change to the same PIN"
    );
    change_pin(&mut r, PIN, "4321", v).unwrap();
    change_pin(&mut r, "4321", PIN, v).unwrap();
    legacy_pin_token(&mut r, PIN, v).unwrap();
    let m = parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    assert_eq!(get(&m, 0x0C), Some(&Value::Bool(false)));
}

fn credential_descriptor(id: &[u8]) -> Value {
    text_map([("id", Value::Bytes(id.to_vec())), ("type", text("public-key"))])
}

/// CTAP 2.2 pcmr: the persistent token lists passkeys after power cycles,
/// never reveals a sealed secret, never deletes or renames, and dies with
/// the PIN that granted it.
#[test]
fn the_persistent_token_reads_across_power_cycles_and_never_writes() {
    let mut r = rig();
    let mut mc = Mc::new("a.example", b"alice", true);
    mc.extra
        .push((6, text_map([("largeBlobKey", Value::Bool(true))])));
    let a = make(&mut r, &mc);
    let v = ProtocolVersion::Two;
    assert_eq!(
        pin_token_for(&mut r, PIN, v, permission::PCMR | permission::CM, None).unwrap_err(),
        CtapError::UnauthorizedPermission.code(),
        "pcmr comes alone"
    );
    let p = pin_token_for(&mut r, PIN, v, permission::PCMR, None).unwrap();
    r.auth.tick();
    assert!(!r.auth.custody.is_unlocked(), "reading needs no key");
    let hash = || {
        Some(int_map([(
            1,
            Value::Bytes(Sha256::digest(b"a.example").to_vec()),
        )]))
    };
    for boot in 0..2 {
        let m = cm(&mut r, &p, 1, None).unwrap();
        assert_eq!(int(get(&m, 1)), 1, "boot {boot}");
        assert_eq!(int(get(&cm(&mut r, &p, 2, None).unwrap(), 5)), 1);
        let c = cm(&mut r, &p, 4, hash()).unwrap();
        assert_eq!(int(get(&c, 9)), 1);
        assert!(get(&c, 0x0B).is_none(), "no largeBlobKey for a long-lived token");
        assert_eq!(
            cm(&mut r, &p, 6, Some(int_map([(2, credential_descriptor(&a.id))]))).unwrap_err(),
            CtapError::PinAuthInvalid.code(),
            "no deletion"
        );
        let user = text_map([("id", Value::Bytes(b"alice".to_vec())), ("name", text("x"))]);
        assert_eq!(
            cm(
                &mut r,
                &p,
                7,
                Some(int_map([(2, credential_descriptor(&a.id)), (3, user)]))
            )
            .unwrap_err(),
            CtapError::PinAuthInvalid.code(),
            "no renaming"
        );
        r.auth.power_cycle();
    }
    // A token the person just verified for still gets the sealed secret.
    let t = pin_token_for(&mut r, PIN, v, permission::CM, None).unwrap();
    assert_eq!(bytes_of(get(&cm(&mut r, &t, 4, hash()).unwrap(), 0x0B)).len(), 32);
    assert_eq!(
        int(get(&cm(&mut r, &p, 1, None).unwrap(), 1)),
        1,
        "both tokens live side by side"
    );

    change_pin(&mut r, PIN, "5678", v).unwrap();
    assert_eq!(
        cm(&mut r, &p, 1, None).unwrap_err(),
        CtapError::PinAuthInvalid.code(),
        "a PIN change voids it"
    );
    let p2 = pin_token_for(&mut r, "5678", v, permission::PCMR, None).unwrap();
    let p3 = pin_token_for(&mut r, "5678", v, permission::PCMR, None).unwrap();
    assert_eq!(
        cm(&mut r, &p2, 1, None).unwrap_err(),
        CtapError::PinAuthInvalid.code(),
        "the newest one replaces it"
    );
    cm(&mut r, &p3, 1, None).unwrap();
}

/// The platform's side of GetInfo's encrypted members (python-fido2's `Info._decrypt`).
fn decrypt_info(token: &[u8; 32], label: &[u8], data: &[u8]) -> [u8; 16] {
    use aes::Aes128;
    use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
    let mut key = [0u8; 16];
    hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), token)
        .expand(label, &mut key)
        .unwrap();
    assert_eq!(data.len(), 32);
    let iv: [u8; 16] = data[..16].try_into().unwrap();
    let mut block: [u8; 16] = data[16..].try_into().unwrap();
    cbc::Decryptor::<Aes128>::new(&key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut block)
        .unwrap();
    block
}

#[test]
fn get_info_tells_the_persistent_tokens_holder_who_it_is_and_when_to_list_again() {
    let mut r = rig();
    let v = ProtocolVersion::Two;
    let info = |r: &mut Rig| parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    let m = info(&mut r);
    assert!(
        get(&m, 0x19).is_none() && get(&m, 0x1E).is_none(),
        "nothing before a persistent token"
    );
    let p = pin_token_for(&mut r, PIN, v, permission::PCMR, None).unwrap();
    let read = |r: &mut Rig, p: &[u8; 32]| {
        let m = info(r);
        let id = bytes_of(get(&m, 0x19));
        let state = bytes_of(get(&m, 0x1E));
        (
            decrypt_info(p, b"encIdentifier", &id),
            decrypt_info(p, b"encCredStoreState", &state),
            id,
        )
    };
    let (id, s0, raw) = read(&mut r, &p);
    let (id_again, s_again, raw_again) = read(&mut r, &p);
    assert_eq!((id, s0), (id_again, s_again));
    assert_ne!(
        raw, raw_again,
        "a fresh IV each time: observers cannot link two answers"
    );

    let made = make(&mut r, &Mc::new("a.example", b"alice", true));
    let (_, s1, _) = read(&mut r, &p);
    assert_ne!(s1, s0, "a new passkey changes the state");
    make(&mut r, &Mc::new("a.example", b"bob", false));
    assert!(parse(&r.auth.handle(
        &ga("a.example", std::slice::from_ref(&made.id), None),
        &NoInteraction
    ))
    .is_ok());
    let (_, s2, _) = read(&mut r, &p);
    assert_eq!(
        s2, s1,
        "a non-discoverable credential and a signature change nothing listed"
    );
    r.auth.power_cycle();
    assert_eq!(read(&mut r, &p).1, s1, "a power cycle changes nothing");

    change_pin(&mut r, PIN, "5678", v).unwrap();
    assert!(get(&info(&mut r), 0x19).is_none(), "gone with the token");
    let p = pin_token_for(&mut r, "5678", v, permission::PCMR, None).unwrap();
    assert_eq!(read(&mut r, &p).0, id, "the identifier outlives a PIN change");

    r.auth.power_cycle();
    assert_eq!(r.auth.handle(&[command::RESET], &NoInteraction), [0]);
    assert!(get(&info(&mut r), 0x19).is_none(), "Reset voids the token");
    set_pin(&mut r, PIN, v).unwrap();
    let p = pin_token_for(&mut r, PIN, v, permission::PCMR, None).unwrap();
    assert_ne!(
        read(&mut r, &p).0,
        id,
        "after a Reset this is a new authenticator"
    );
}

/// CTAP 2.2 §12.9: the flag is recorded at MakeCredential, reported at
/// GetAssertion when asked, and listed by credential management.
#[test]
fn third_party_payment_is_kept_with_the_credential() {
    let mut r = rig();
    let mut pay = Mc::new("pay.example", b"payer", true);
    pay.extra
        .push((6, text_map([("thirdPartyPayment", Value::Bool(true))])));
    let paid = make(&mut r, &pay);
    let plain = make(&mut r, &Mc::new("pay.example", b"plain", true));
    let ad = &paid.auth_data;
    assert_eq!(ad[32] & flags::ED, 0, "no output at MakeCredential");

    let assert_with = |r: &mut Rig, id: &[u8], ask: bool| -> Option<Value> {
        let mut entries = vec![
            (1, text("pay.example")),
            (2, Value::Bytes(CDH.to_vec())),
            (3, Value::Array(vec![credential_descriptor(id)])),
        ];
        if ask {
            entries.push((4, text_map([("thirdPartyPayment", Value::Bool(true))])));
        }
        let mut req = vec![command::GET_ASSERTION];
        req.extend(cbor::encode(&int_map(entries)));
        let m = parse(&r.auth.handle(&req, &NoInteraction)).unwrap();
        let ad = bytes_of(get(&m, 2));
        (ad[32] & flags::ED != 0).then(|| {
            cbor::text_keyed(cbor::decode(&ad[37..]).unwrap())
                .unwrap()
                .remove("thirdPartyPayment")
                .unwrap()
        })
    };
    assert_eq!(assert_with(&mut r, &paid.id, true), Some(Value::Bool(true)));
    assert_eq!(assert_with(&mut r, &plain.id, true), Some(Value::Bool(false)));
    assert_eq!(assert_with(&mut r, &paid.id, false), None, "only when asked");

    let t = pin_token_for(&mut r, PIN, ProtocolVersion::Two, permission::CM, None).unwrap();
    let hash = Value::Bytes(Sha256::digest(b"pay.example").to_vec());
    let first = cm(&mut r, &t, 4, Some(int_map([(1, hash)]))).unwrap();
    let second = cm_next(&mut r, 5).unwrap();
    let mut flags_by_user: Vec<(Vec<u8>, bool)> = [first, second]
        .iter()
        .map(|m| {
            let user = cbor::text_keyed(get(m, 6).unwrap().clone()).unwrap();
            (bytes_of(user.get("id")), get(m, 0x0C) == Some(&Value::Bool(true)))
        })
        .collect();
    flags_by_user.sort();
    assert_eq!(
        flags_by_user,
        [(b"payer".to_vec(), true), (b"plain".to_vec(), false)]
    );
}

mod activity;

/// CTAP 2.1 §6.1.2 step 9.1 and §6.11.1: a custody without an attestation
/// key (the software one) is never enterprise attestation capable, even
/// with an enrolment in its store (a data directory brought over from a TPM
/// installation); and Reset removes the enrolment, whose key died with the vault.
#[test]
fn enterprise_attestation_needs_a_custody_that_certifies() {
    use crate::enterprise::{meta, Enrolment};
    let mut r = rig();
    let e = Enrolment {
        attestation_key: vec![1],
        certificates: vec![vec![0x30, 0x00]],
        rp_ids: vec!["example.com".into()],
    };
    r.auth.store.set_meta(meta::ENROLMENT, &e.to_bytes()).unwrap();
    r.auth.store.set_meta(meta::ENABLED, &[1]).unwrap();
    let m = parse(&r.auth.handle(&[command::GET_INFO], &NoInteraction)).unwrap();
    let opts = cbor::text_keyed(get(&m, 4).unwrap().clone()).unwrap();
    assert!(!opts.contains_key("ep"));
    for ea in [1, 2, 3] {
        let mut mc = Mc::new("example.com", b"u", false);
        mc.extra.push((0x0A, Value::Integer(ea.into())));
        assert_eq!(
            r.auth.handle(&mc.encode(), &NoInteraction),
            [CtapError::InvalidParameter.code()],
            "enterpriseAttestation {ea}"
        );
    }
    let t = pin_token_for(&mut r, PIN, ProtocolVersion::Two, permission::ACFG, None).unwrap();
    assert_eq!(
        config(&mut r, &t, 1, None).unwrap_err(),
        CtapError::InvalidSubcommand.code()
    );
    r.auth.power_cycle();
    assert_eq!(r.auth.handle(&[command::RESET], &NoInteraction), [0]);
    for key in meta::ALL {
        assert_eq!(r.auth.store.get_meta(key).unwrap(), None, "{key} after Reset");
    }
}
