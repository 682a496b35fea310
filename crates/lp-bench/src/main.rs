//! LocalPasskey benchmarks (figures, not tests). Run through scripts/bench.sh.
//!
//! ```text
//! lp-bench software ROUNDS            raw P-256 sign and SHA-256 vs Authenticator::handle in process
//! lp-bench peer ROUNDS                ours vs 1Password's passkey-authenticator, in process, in pairs
//!                                     that differ in one thing (attestation, the token check)
//! lp-bench breakdown TCTI|software DIR ROUNDS
//!                                     GetAssertion in process on the daemon's store and custody,
//!                                     each seam timed, plus CTAPHID framing and one raw fsync
//! lp-bench ping ADDR ROUNDS BYTES     CTAPHID PING round trip over UDP (the transport alone)
//! lp-bench daemon-log FILE            p50 of the daemon's own per-request timing events
//! lp-bench scale N ROUNDS DIR         fill an SQLite store with N passkeys (one batch
//!                                     transaction), then discoverable GetAssertion and
//!                                     credential-management enumeration in process
//! lp-bench daemon BIN DIR PORT ROUNDS [IDLE_S]
//!                                     start the daemon on DIR (software custody): start-up
//!                                     time, VmRSS, e2e GetAssertion (`localpasskey bench`),
//!                                     and CPU time used over IDLE_S idle seconds
//! ```
//! Every line of output that carries a figure starts with `RESULT` and is
//! `key=value` pairs, so scripts/bench.sh can collect them.

// The store is the daemon's own code, compiled in here so that the scale
// benchmark measures exactly what the daemon runs (the daemon crate has no
// library target). Through a module named for the daemon's `src`, so that
// the store's own child modules (its unit tests) resolve as they do there.
#[path = "../../localpasskey/src"]
mod daemon_src {
    #[allow(dead_code)]
    pub mod store_sqlite;
}
use daemon_src::store_sqlite;

use anyhow::{bail, Context, Result};
use ciborium::value::Value;
use lp_core::authenticator::{Authenticator, Config};
use lp_core::cbor::{self, int_map, text_map};
use lp_core::clock::ManualClock;
use lp_core::custody::insecure_software::InsecureSoftwareCustody;
use lp_core::custody::{CustodyError, KeyCustody};
use lp_core::pin_protocol::{authenticate_with_token, ProtocolVersion};
use lp_core::platform::{self, PinSession};
use lp_core::store::{CredentialStore, MemoryStore, StoreError};
use lp_core::types::client_pin;
use lp_core::user::{AlwaysApprove, NoInteraction, Scripted, Step, UserPresence};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PIN: &str = "246810";
const CDH: [u8; 32] = [0x42; 32];

struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    let mean = samples.iter().map(|d| d.as_secs_f64()).sum::<f64>() / samples.len() as f64 * 1e3;
    Stats {
        p50: at(0.5),
        p99: at(0.99),
        mean,
    }
}

fn report(name: &str, samples: Vec<Duration>) -> f64 {
    let n = samples.len();
    let s = stats(samples);
    println!(
        "RESULT name={name} n={n} p50_ms={:.4} p99_ms={:.4} mean_ms={:.4} ops_per_s={:.0}",
        s.p50,
        s.p99,
        s.mean,
        1e3 / s.mean
    );
    s.p50
}

fn time(rounds: usize, mut f: impl FnMut()) -> Vec<Duration> {
    // A few warm-up rounds: caches, allocator, lazy statics.
    for _ in 0..rounds.min(20) {
        f();
    }
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

// ------------------------------------------------------------- our core

/// Our authenticator in process: software custody, a PIN, and a platform
/// that holds a pinUvAuthToken.
struct Ours {
    auth: Authenticator,
    token: [u8; 32],
}

/// One clientPIN request built by `lp_core::platform`; the answer's body.
fn client_pin(auth: &mut Authenticator, req: &client_pin::Request) -> Result<Vec<u8>> {
    let resp = auth.handle(&req.encode(), &NoInteraction);
    match resp.split_first() {
        Some((0, body)) => Ok(body.to_vec()),
        Some((s, _)) => bail!("clientPIN refused: 0x{s:02x}"),
        None => bail!("empty answer"),
    }
}

fn session(auth: &mut Authenticator) -> Result<PinSession> {
    let v = ProtocolVersion::Two;
    let body = client_pin(auth, &platform::get_key_agreement(v))?;
    PinSession::from_answer(v, &body).map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn set_pin(auth: &mut Authenticator) -> Result<()> {
    let s = session(auth)?;
    let padded = platform::padded_pin(PIN.as_bytes()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let req = s.set_pin(&padded).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    client_pin(auth, &req)?;
    Ok(())
}

fn get_token(auth: &mut Authenticator, perms: u8, rp: Option<&str>) -> Result<[u8; 32]> {
    let s = session(auth)?;
    let req = s
        .pin_token(PIN.as_bytes(), Some((perms, rp)))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let body = client_pin(auth, &req)?;
    Ok(*s.token(&body).map_err(|e| anyhow::anyhow!("{e:?}"))?)
}

impl Ours {
    fn new(store: Box<dyn CredentialStore>, with_pin: bool) -> Result<Self> {
        Self::with(
            Box::new(InsecureSoftwareCustody::new()),
            store,
            Box::new(AlwaysApprove),
            with_pin,
        )
    }

    fn with(
        custody: Box<dyn KeyCustody>,
        store: Box<dyn CredentialStore>,
        user: Box<dyn UserPresence>,
        with_pin: bool,
    ) -> Result<Self> {
        let mut auth = Authenticator::new(
            custody,
            store,
            user,
            Arc::new(ManualClock::new()),
            Config::default(),
        );
        if with_pin {
            set_pin(&mut auth)?;
        }
        Ok(Self { auth, token: [0; 32] })
    }

    fn refresh_token(&mut self, rp: &str) -> Result<()> {
        self.token = get_token(&mut self.auth, 0x03, Some(rp))?;
        Ok(())
    }

    fn request(&mut self, cmd: u8, params: &Value) -> Result<Value> {
        let mut req = vec![cmd];
        req.extend(cbor::encode(params));
        self.request_bytes(&req)
    }

    /// The request already encoded, as a transport hands it over.
    fn request_bytes(&mut self, req: &[u8]) -> Result<Value> {
        Ok(self.timed_bytes(req)?.1)
    }

    /// [`Ours::request_bytes`], timing `Authenticator::handle` alone (bytes
    /// in, bytes out, as the peer's side is timed), not the harness's
    /// decoding of the answer.
    fn timed_bytes(&mut self, req: &[u8]) -> Result<(Duration, Value)> {
        let t = Instant::now();
        let resp = self.auth.handle(req, &NoInteraction);
        Ok((t.elapsed(), Self::answer(req, &resp)?))
    }

    fn answer(req: &[u8], resp: &[u8]) -> Result<Value> {
        let cmd = req.first().copied().unwrap_or(0);
        match resp.split_first() {
            Some((0, body)) => cbor::decode(body).map_err(|e| anyhow::anyhow!("{e:?}")),
            Some((s, _)) => bail!("command 0x{cmd:02x} refused: 0x{s:02x}"),
            None => bail!("empty answer"),
        }
    }
}

fn mc_params(rp: &str, user: &[u8], token: Option<&[u8; 32]>, rk: bool) -> Value {
    mc_params_with(rp, user, token, rk, false)
}

/// `attestation_none`: CTAP 2.2's attestationFormatsPreference (0x0B) = ["none"],
/// what a platform sends for WebAuthn's `attestation: "none"`.
fn mc_params_with(
    rp: &str,
    user: &[u8],
    token: Option<&[u8; 32]>,
    rk: bool,
    attestation_none: bool,
) -> Value {
    let mut entries = vec![
        (1, Value::Bytes(CDH.to_vec())),
        (
            2,
            text_map([
                ("id", Value::Text(rp.into())),
                ("name", Value::Text("Bench".into())),
            ]),
        ),
        (
            3,
            text_map([
                ("id", Value::Bytes(user.to_vec())),
                ("name", Value::Text("bench".into())),
                ("displayName", Value::Text("Bench".into())),
            ]),
        ),
        (
            4,
            Value::Array(vec![text_map([
                ("alg", Value::Integer((-7).into())),
                ("type", Value::Text("public-key".into())),
            ])]),
        ),
        (7, text_map([("rk", Value::Bool(rk))])),
    ];
    if let Some(t) = token {
        entries.push((
            8,
            Value::Bytes(authenticate_with_token(ProtocolVersion::Two, t, &CDH)),
        ));
        entries.push((9, Value::Integer(2.into())));
    }
    if attestation_none {
        entries.push((0x0b, Value::Array(vec![Value::Text("none".into())])));
    }
    int_map(entries)
}

/// GetAssertion; `up: false` so that the token is not spent and the loop
/// times the processing alone (the person's touch is not ours to time).
fn ga_params(rp: &str, allow: Option<&[u8]>, token: Option<&[u8; 32]>, up: bool) -> Value {
    let mut entries = vec![(1, Value::Text(rp.into())), (2, Value::Bytes(CDH.to_vec()))];
    if let Some(id) = allow {
        entries.push((
            3,
            Value::Array(vec![text_map([
                ("id", Value::Bytes(id.to_vec())),
                ("type", Value::Text("public-key".into())),
            ])]),
        ));
    }
    entries.push((5, text_map([("up", Value::Bool(up))])));
    if let Some(t) = token {
        entries.push((
            6,
            Value::Bytes(authenticate_with_token(ProtocolVersion::Two, t, &CDH)),
        ));
        entries.push((7, Value::Integer(2.into())));
    }
    int_map(entries)
}

fn credential_id(mc_response: &Value) -> Result<Vec<u8>> {
    let Value::Map(m) = mc_response else {
        bail!("not a map")
    };
    let ad = m
        .iter()
        .find(|(k, _)| k == &Value::Integer(2.into()))
        .and_then(|(_, v)| v.as_bytes())
        .context("no authData")?;
    let len = usize::from(u16::from_be_bytes([ad[53], ad[54]]));
    Ok(ad[55..55 + len].to_vec())
}

fn software(rounds: usize) -> Result<()> {
    // 1. The raw operations a GetAssertion cannot avoid.
    let key = SigningKey::random(&mut OsRng);
    let digest: [u8; 32] = Sha256::digest(b"x").into();
    let raw_sign = report(
        "raw_p256_sign_prehash",
        time(rounds, || {
            let _: Signature = key.sign_prehash(&digest).expect("sign");
        }),
    );
    let mut message = [0u8; 37 + 32];
    OsRng.fill_bytes(&mut message);
    report(
        "raw_sha256_69_bytes",
        time(rounds, || {
            std::hint::black_box(Sha256::digest(std::hint::black_box(&message)));
        }),
    );

    // 2. Our processing: Authenticator::handle with software custody and the
    //    in-memory store (CBOR decode, token check, store, sign, encode).
    let mut ours = Ours::new(Box::new(MemoryStore::new()), true)?;
    ours.refresh_token("bench.example")?;
    let token = ours.token;
    let mc = ours.request(0x01, &mc_params("bench.example", b"user-0", Some(&token), true))?;
    let id = credential_id(&mc)?;
    ours.refresh_token("bench.example")?;
    let token = ours.token;
    let ga = ga_params("bench.example", None, Some(&token), false);
    let ga_allow = ga_params("bench.example", Some(&id), Some(&token), false);
    let processing = report(
        "ours_handle_get_assertion_discoverable",
        time(rounds, || {
            ours.request(0x02, &ga).expect("GetAssertion");
        }),
    );
    report(
        "ours_handle_get_assertion_allow_list",
        time(rounds, || {
            ours.request(0x02, &ga_allow).expect("GetAssertion");
        }),
    );
    // MakeCredential spends the token: a fresh one before each, not timed.
    let mut samples = Vec::with_capacity(rounds / 4);
    for i in 0..rounds / 4 {
        ours.refresh_token("bench.example")?;
        let p = mc_params(
            "bench.example",
            &(i as u32).to_be_bytes(),
            Some(&ours.token),
            true,
        );
        let t = Instant::now();
        ours.request(0x01, &p)?;
        samples.push(t.elapsed());
    }
    report("ours_handle_make_credential", samples);
    println!(
        "RESULT name=ratio_processing_to_raw_sign value={:.2}",
        processing / raw_sign
    );
    let _ = InsecureSoftwareCustody::new().name();
    Ok(())
}

// ------------------------------------------------------------- the peer

mod peer {
    use passkey_authenticator::{Authenticator, MemoryStore, UiHint, UserCheck, UserValidationMethod};
    use passkey_types::ctap2::{get_assertion, make_credential, Aaguid, Ctap2Error};
    use passkey_types::Passkey;

    /// A person who is always there and always verified (as our AlwaysApprove + token).
    pub struct Yes;

    #[async_trait::async_trait]
    impl UserValidationMethod for Yes {
        type PasskeyItem = Passkey;
        async fn check_user<'a>(
            &self,
            _hint: UiHint<'a, Passkey>,
            presence: bool,
            verification: bool,
        ) -> Result<UserCheck, Ctap2Error> {
            Ok(UserCheck {
                presence,
                verification,
            })
        }
        fn is_presence_enabled(&self) -> bool {
            true
        }
        fn is_verification_enabled(&self) -> Option<bool> {
            Some(true)
        }
    }

    pub type Peer = Authenticator<MemoryStore, Yes>;

    pub fn new() -> Peer {
        Authenticator::new(Aaguid::new_empty(), MemoryStore::new(), Yes)
    }

    /// Bytes in, bytes out, like `Authenticator::handle`: CBOR request
    /// decoded into the peer's types, its answer encoded back to CBOR.
    pub fn make_credential(p: &mut Peer, request: &[u8]) -> Vec<u8> {
        let req: make_credential::Request = ciborium::de::from_reader(request).expect("peer MC request");
        let resp = pollster::block_on(p.make_credential(req)).expect("peer MakeCredential");
        let mut out = vec![0];
        ciborium::ser::into_writer(&resp, &mut out).expect("encode");
        out
    }

    pub fn get_assertion(p: &mut Peer, request: &[u8]) -> Vec<u8> {
        let req: get_assertion::Request = ciborium::de::from_reader(request).expect("peer GA request");
        let resp = pollster::block_on(p.get_assertion(req)).expect("peer GetAssertion");
        let mut out = vec![0];
        ciborium::ser::into_writer(&resp, &mut out).expect("encode");
        out
    }
}

/// The check our token check makes (HMAC-SHA-256 of the clientDataHash
/// under the token, compared with the platform's pinUvAuthParam), done by
/// the harness before the peer is called: the peer has no clientPIN and
/// refuses a pinUvAuthParam, so this is how both sides do the same work.
fn token_check(token: &[u8; 32], param: &[u8]) -> bool {
    let expected = authenticate_with_token(ProtocolVersion::Two, token, &CDH);
    std::hint::black_box(expected.as_slice()) == param
}

/// One ours-vs-peer pair, p50 over interleaved rounds (a noisy neighbour
/// hurts both sides alike; who goes first alternates, so neither always
/// runs on the caches the other left), and their ratio.
fn pair(
    name: &str,
    rounds: usize,
    mut peer_round: impl FnMut(usize) -> Duration,
    mut our_round: impl FnMut(usize) -> Result<Duration>,
) -> Result<()> {
    let (mut p, mut o) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for i in 0..rounds + 20 {
        let (a, b) = if i % 2 == 0 {
            let a = peer_round(i);
            (a, our_round(i)?)
        } else {
            let b = our_round(i)?;
            (peer_round(i), b)
        };
        if i >= 20 {
            p.push(a);
            o.push(b);
        }
    }
    let peer = report(&format!("peer_{name}"), p);
    let ours = report(&format!("ours_{name}"), o);
    println!("RESULT name=ratio_peer_to_ours_{name} value={:.2}", peer / ours);
    Ok(())
}

fn peer_comparison(rounds: usize) -> Result<()> {
    let rp = "bench.example";
    let mc_rounds = rounds / 4;
    let mut p = peer::new();
    let mut ours = Ours::new(Box::new(MemoryStore::new()), true)?;
    // Ours without a token verifies the user itself: the PIN typed at our
    // prompt and checked by the custody (alwaysUv: there is no unverified path).
    let mut ours_uv = Ours::with(
        Box::new(InsecureSoftwareCustody::new()),
        Box::new(MemoryStore::new()),
        Box::new(Scripted::new([], Step::Approve).with_pin(PIN)),
        true,
    )?;
    let user = |i: usize| (i as u32).to_be_bytes();
    let timed = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };

    // MakeCredential (rk, ES256). The peer always answers attestation "none".
    let peer_mc = |p: &mut peer::Peer, i: usize, check: Option<([u8; 32], Vec<u8>)>| {
        let req = cbor::encode(&mc_params(rp, &user(i), None, true));
        timed(&mut || {
            if let Some((t, param)) = &check {
                assert!(token_check(t, param));
            }
            peer::make_credential(p, &req);
        })
    };
    let param = |t: &[u8; 32]| authenticate_with_token(ProtocolVersion::Two, t, &CDH);
    let peer_token = [0x17u8; 32];
    let mut peer_ids = Vec::new();
    pair(
        "make_credential_none_without_token",
        mc_rounds,
        |i| peer_mc(&mut p, i, None),
        |i| {
            let req = cbor::encode(&mc_params_with(rp, &user(i), None, true, true));
            let mut req_bytes = vec![0x01];
            req_bytes.extend(req);
            Ok(ours_uv.timed_bytes(&req_bytes)?.0)
        },
    )?;
    for (name, none) in [
        ("make_credential_none_with_token", true),
        ("make_credential_packed_vs_none_with_token", false),
    ] {
        pair(
            name,
            mc_rounds,
            |i| peer_mc(&mut p, 100_000 + i, Some((peer_token, param(&peer_token)))),
            |i| {
                ours.refresh_token(rp)?;
                let mut req = vec![0x01];
                req.extend(cbor::encode(&mc_params_with(
                    rp,
                    &user(100_000 + i),
                    Some(&ours.token),
                    true,
                    none,
                )));
                Ok(ours.timed_bytes(&req)?.0)
            },
        )?;
    }

    // GetAssertion with an allowList (the peer's MemoryStore finds
    // credentials by id only), one credential each.
    let out = peer::make_credential(&mut p, &cbor::encode(&mc_params(rp, b"ga", None, true)));
    peer_ids.push(credential_id(
        &cbor::decode(&out[1..]).map_err(|e| anyhow::anyhow!("{e:?}"))?,
    )?);
    let peer_req = cbor::encode(&ga_params(rp, Some(&peer_ids[0]), None, true));
    let mut peer_ga = |check: bool| {
        let pp = param(&peer_token);
        timed(&mut || {
            if check {
                assert!(token_check(&peer_token, &pp));
            }
            peer::get_assertion(&mut p, &peer_req);
        })
    };
    let v = ours_uv.request(0x01, &mc_params_with(rp, b"ga", None, true, true))?;
    let uv_id = credential_id(&v)?;
    let mut req_uv = vec![0x02];
    req_uv.extend(cbor::encode(&ga_params(rp, Some(&uv_id), None, true)));
    ours.refresh_token(rp)?;
    let t = ours.token;
    let v = ours.request(0x01, &mc_params_with(rp, b"ga", Some(&t), true, true))?;
    let id = credential_id(&v)?;
    ours.refresh_token(rp)?;
    let t = ours.token;
    // Ours with a token: `up: false`, as UP would spend the token each time
    // (the peer's AlwaysYes presence costs nothing either way).
    let mut req_token = vec![0x02];
    req_token.extend(cbor::encode(&ga_params(rp, Some(&id), Some(&t), false)));
    let mut peer_ga_ref = |c| peer_ga(c);
    pair(
        "get_assertion_without_token",
        rounds,
        |_| peer_ga_ref(false),
        |_| Ok(ours_uv.timed_bytes(&req_uv)?.0),
    )?;
    pair(
        "get_assertion_with_token",
        rounds,
        |_| peer_ga_ref(true),
        |_| Ok(ours.timed_bytes(&req_token)?.0),
    )?;
    Ok(())
}

// ------------------------------------------------------------- breakdown

/// Time spent per seam during one request, summed over its calls.
type Meter = Arc<Mutex<BTreeMap<&'static str, Duration>>>;

fn metered<T>(meter: &Meter, stage: &'static str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    *meter
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(stage)
        .or_default() += t.elapsed();
    out
}

/// The daemon's custody with a stopwatch around each call: the same object
/// the daemon uses, so what it reports is what the daemon pays.
struct TimedCustody {
    inner: Box<dyn KeyCustody>,
    meter: Meter,
}

impl KeyCustody for TimedCustody {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn is_hardware(&self) -> bool {
        self.inner.is_hardware()
    }
    fn algorithms(&self) -> Vec<lp_core::custody::Algorithm> {
        self.inner.algorithms()
    }
    fn create_key(
        &mut self,
        alg: lp_core::custody::Algorithm,
    ) -> Result<lp_core::custody::NewKey, CustodyError> {
        metered(&self.meter, "custody_other", || self.inner.create_key(alg))
    }
    fn sign(&mut self, blob: &[u8], message: &[u8]) -> Result<Vec<u8>, CustodyError> {
        metered(&self.meter, "custody_sign", || self.inner.sign(blob, message))
    }
    fn create_hmac_key(&mut self) -> Result<Vec<u8>, CustodyError> {
        metered(&self.meter, "custody_other", || self.inner.create_hmac_key())
    }
    fn hmac(&mut self, blob: &[u8], message: &[u8]) -> Result<[u8; 32], CustodyError> {
        metered(&self.meter, "custody_other", || self.inner.hmac(blob, message))
    }
    fn seal(&mut self, data: &[u8]) -> Result<Vec<u8>, CustodyError> {
        metered(&self.meter, "custody_other", || self.inner.seal(data))
    }
    fn unseal(&mut self, blob: &[u8]) -> Result<Vec<u8>, CustodyError> {
        metered(&self.meter, "custody_other", || self.inner.unseal(blob))
    }
    fn reset(&mut self, vault: Option<&[u8]>) -> Result<(), CustodyError> {
        self.inner.reset(vault)
    }
    fn create_vault(&mut self, auth: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        self.inner.create_vault(auth)
    }
    fn unlock(&mut self, vault: &[u8], auth: &[u8; 32]) -> Result<Option<Vec<u8>>, CustodyError> {
        metered(&self.meter, "custody_other", || self.inner.unlock(vault, auth))
    }
    fn pin_retries(&mut self, vault: &[u8]) -> Result<Option<u8>, CustodyError> {
        metered(&self.meter, "custody_other", || self.inner.pin_retries(vault))
    }
    fn change_auth(&mut self, vault: &[u8], old: &[u8; 32], new: &[u8; 32]) -> Result<Vec<u8>, CustodyError> {
        self.inner.change_auth(vault, old, new)
    }
    fn commit_change(
        &mut self,
        vault: &[u8],
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<Vec<u8>, CustodyError> {
        self.inner.commit_change(vault, old, new)
    }
    fn lock(&mut self) {
        self.inner.lock()
    }
    fn is_unlocked(&self) -> bool {
        self.inner.is_unlocked()
    }
}

/// The daemon's SQLite store with a stopwatch: the counter write (its
/// transaction and fsync) apart from every read.
struct TimedStore {
    inner: Box<dyn CredentialStore>,
    meter: Meter,
}

impl CredentialStore for TimedStore {
    fn insert(&mut self, cred: &lp_core::store::Credential) -> Result<Vec<Vec<u8>>, StoreError> {
        metered(&self.meter, "store_write", || self.inner.insert(cred))
    }
    fn get(&self, id: &[u8]) -> Result<Option<lp_core::store::Credential>, StoreError> {
        metered(&self.meter, "store_reads", || self.inner.get(id))
    }
    fn discoverable_for_rp(&self, rp_id: &str) -> Result<Vec<lp_core::store::Credential>, StoreError> {
        metered(&self.meter, "store_reads", || {
            self.inner.discoverable_for_rp(rp_id)
        })
    }
    fn increment_counter(&mut self, id: &[u8], now: u64) -> Result<u32, StoreError> {
        metered(&self.meter, "store_counter_fsync", || {
            self.inner.increment_counter(id, now)
        })
    }
    fn delete(&mut self, id: &[u8]) -> Result<bool, StoreError> {
        metered(&self.meter, "store_write", || self.inner.delete(id))
    }
    fn delete_all(&mut self) -> Result<(), StoreError> {
        metered(&self.meter, "store_write", || self.inner.delete_all())
    }
    fn all(&self) -> Result<Vec<lp_core::store::Credential>, StoreError> {
        metered(&self.meter, "store_reads", || self.inner.all())
    }
    fn update_user(
        &mut self,
        id: &[u8],
        name: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<bool, StoreError> {
        metered(&self.meter, "store_write", || {
            self.inner.update_user(id, name, display_name)
        })
    }
    fn discoverable_rps(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        metered(&self.meter, "store_reads", || self.inner.discoverable_rps())
    }
    fn count_discoverable(&self) -> Result<u64, StoreError> {
        metered(&self.meter, "store_reads", || self.inner.count_discoverable())
    }
    fn discoverable_generation(&self) -> Result<u64, StoreError> {
        metered(&self.meter, "store_reads", || {
            self.inner.discoverable_generation()
        })
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        metered(&self.meter, "store_reads", || self.inner.get_meta(key))
    }
    fn has_meta(&self, key: &str) -> Result<bool, StoreError> {
        metered(&self.meter, "store_reads", || self.inner.has_meta(key))
    }
    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        metered(&self.meter, "store_write", || self.inner.set_meta(key, value))
    }
    fn delete_meta(&mut self, key: &str) -> Result<(), StoreError> {
        metered(&self.meter, "store_write", || self.inner.delete_meta(key))
    }
    fn log(&mut self, entry: lp_core::activity::Activity) {
        self.inner.log(entry)
    }
    fn flush_log(&mut self) -> Result<(), StoreError> {
        metered(&self.meter, "store_write", || self.inner.flush_log())
    }
    fn recent_activity(&self, limit: usize) -> Result<Vec<lp_core::activity::Activity>, StoreError> {
        metered(&self.meter, "store_reads", || self.inner.recent_activity(limit))
    }
    fn trim_activity(&mut self, before: u64) -> Result<(), StoreError> {
        metered(&self.meter, "store_write", || self.inner.trim_activity(before))
    }
}

/// What one fdatasync in the data directory costs, four ways, each
/// writing and syncing `rounds` times:
/// - `Append(256)`: the floor's fsync, the least a durable counter needs
///   (a small record appended);
/// - `Append(WAL_FRAME)`: what SQLite's commit of one changed page does in
///   a WAL that is still growing (a 24-byte frame header and a 4 KiB page,
///   so the file gets a new block each time);
/// - `Overwrite(WAL_FRAME)`: the same frames rewritten inside the file, as
///   in a WAL that was reset by a checkpoint and is being reused;
/// - `AppendAfterQuiet(WAL_FRAME)`: appended after 1 ms of sleep (not
///   timed), as the counter's commit comes after the wait on the TPM.
fn raw_fsync(dir: &Path, rounds: usize, how: Probe) -> Result<Vec<Duration>> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync-probe");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let (size, overwrite, quiet) = match how {
        Probe::Append(n) => (n, false, None),
        Probe::Overwrite(n) => (n, true, None),
        Probe::AppendAfterQuiet(n) => (n, false, Some(Duration::from_millis(1))),
    };
    if overwrite {
        f.write_all_at(&vec![0u8; size * (rounds + 20)], 0)?;
        f.sync_all()?;
    }
    let record = vec![0x5au8; size];
    let mut at = 0u64;
    let mut one = || {
        f.write_all_at(&record, at).expect("write");
        f.sync_data().expect("fdatasync");
        at += size as u64;
    };
    let samples = match quiet {
        None => time(rounds, one),
        Some(pause) => (0..rounds)
            .map(|_| {
                std::thread::sleep(pause);
                let t = Instant::now();
                one();
                t.elapsed()
            })
            .collect(),
    };
    drop(f);
    std::fs::remove_file(path)?;
    Ok(samples)
}

/// A WAL frame: its 24-byte header and one 4 KiB page (SQLite's default page size).
const WAL_FRAME: usize = 24 + 4096;

#[derive(Clone, Copy)]
enum Probe {
    Append(usize),
    Overwrite(usize),
    AppendAfterQuiet(usize),
}

/// CTAPHID in process: reassembling `request` from its reports, and framing
/// `response` into reports (the I/O thread's and the worker's share).
fn ctaphid_costs(request: &[u8], response: &[u8], rounds: usize) -> Result<()> {
    use lp_core::ctaphid::{cmd, frame, Ctaphid, Event, BROADCAST_CID};
    let mut hid = Ctaphid::new();
    let init = frame(BROADCAST_CID, cmd::INIT, b"breakdwn").context("frame")?;
    let cid = hid
        .handle_report(&init[0], 0)
        .into_iter()
        .find_map(|e| match e {
            Event::Send { report, .. } => Some(u32::from_be_bytes([
                report[15], report[16], report[17], report[18],
            ])),
            _ => None,
        })
        .context("no INIT answer")?;
    let reports = frame(cid, cmd::CBOR, request).context("frame")?;
    let (mut reassemble, mut respond) = (Vec::new(), Vec::new());
    for i in 0..rounds + 20 {
        let t = Instant::now();
        let mut txn = None;
        for r in &reports {
            for e in hid.handle_report(r, 0) {
                if let Event::Request { txn: t, .. } = e {
                    txn = Some(t);
                }
            }
        }
        let a = t.elapsed();
        let txn = txn.context("no request")?;
        let t = Instant::now();
        std::hint::black_box(hid.respond(txn, cmd::CBOR, response, 0));
        let b = t.elapsed();
        if i >= 20 {
            reassemble.push(a);
            respond.push(b);
        }
    }
    println!(
        "RESULT name=breakdown_sizes request_bytes={} request_reports={} response_bytes={} response_reports={}",
        request.len(),
        reports.len(),
        response.len(),
        frame(cid, cmd::CBOR, response).map_or(0, |f| f.len())
    );
    report("breakdown_ctaphid_reassemble_request", reassemble);
    report("breakdown_ctaphid_frame_response", respond);
    Ok(())
}

/// GetAssertion (discoverable, a fresh token each round as a browser has,
/// UP and UV) through `Authenticator::handle` on the daemon's own parts: the
/// SQLite store in `dir` and the TPM custody on `tcti` (or the software
/// custody), each seam timed. What is not in a seam is the authenticator's
/// own work: CBOR decoding and encoding, the token check, authData.
fn breakdown(tcti: &str, dir: &Path, rounds: usize) -> Result<()> {
    let meter: Meter = Arc::default();
    let inner: Box<dyn KeyCustody> = if tcti == "software" {
        Box::new(InsecureSoftwareCustody::new())
    } else {
        Box::new(lp_tpm::TpmCustody::open(tcti).map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    let custody = TimedCustody {
        inner,
        meter: meter.clone(),
    };
    let store = TimedStore {
        inner: Box::new(store_sqlite::SqliteStore::open(dir)?),
        meter: meter.clone(),
    };
    let mut ours = Ours::with(Box::new(custody), Box::new(store), Box::new(AlwaysApprove), true)?;
    let rp = "bench.localpasskey.invalid";
    ours.refresh_token(rp)?;
    let t = ours.token;
    ours.request(0x01, &mc_params(rp, b"breakdown", Some(&t), true))?;

    let mut stages: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let mut totals = Vec::with_capacity(rounds);
    let mut settles = Vec::with_capacity(rounds);
    let (mut request, mut response) = (Vec::new(), Vec::new());
    for i in 0..rounds + 10 {
        ours.refresh_token(rp)?;
        let t = ours.token;
        request = vec![0x02];
        request.extend(cbor::encode(&ga_params(rp, None, Some(&t), true)));
        meter.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let start = Instant::now();
        response = ours.auth.answer(&request, &NoInteraction);
        let total = start.elapsed();
        let settled = Instant::now();
        ours.auth.settle();
        let settled = settled.elapsed();
        if response.first() != Some(&0) {
            bail!("GetAssertion refused: {:02x?}", response.first());
        }
        if i < 10 {
            continue;
        }
        settles.push(settled);
        let m = std::mem::take(&mut *meter.lock().unwrap_or_else(|e| e.into_inner()));
        let seams: Duration = m.values().sum();
        for (k, v) in m {
            stages.entry(k).or_default().push(v);
        }
        stages
            .entry("authenticator_own_work")
            .or_default()
            .push(total.saturating_sub(seams));
        totals.push(total);
    }
    report("breakdown_handle_get_assertion_total", totals);
    report("breakdown_settle_after_the_answer", settles);
    for (k, v) in stages {
        report(&format!("breakdown_{k}"), v);
    }
    // MakeCredential the same way (each one a new discoverable passkey),
    // with packed self-attestation and with attestation "none".
    for (label, none) in [("packed", false), ("none", true)] {
        let mut stages: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
        let mut totals = Vec::new();
        for i in 0..(rounds / 4).max(3) + 3 {
            ours.refresh_token(rp)?;
            let t = ours.token;
            let user = format!("mc-{label}-{i}");
            let mut req = vec![0x01];
            req.extend(cbor::encode(&mc_params_with(
                rp,
                user.as_bytes(),
                Some(&t),
                true,
                none,
            )));
            meter.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let start = Instant::now();
            let out = ours.auth.answer(&req, &NoInteraction);
            let total = start.elapsed();
            ours.auth.settle();
            if out.first() != Some(&0) {
                bail!("MakeCredential refused: {:02x?}", out.first());
            }
            if i < 3 {
                continue;
            }
            let m = std::mem::take(&mut *meter.lock().unwrap_or_else(|e| e.into_inner()));
            let seams: Duration = m.values().sum();
            for (k, v) in m {
                stages.entry(k).or_default().push(v);
            }
            stages
                .entry("authenticator_own_work")
                .or_default()
                .push(total.saturating_sub(seams));
            totals.push(total);
        }
        report(&format!("breakdown_mc_{label}_handle_total"), totals);
        for (k, v) in stages {
            report(&format!("breakdown_mc_{label}_{k}"), v);
        }
    }

    let cdh_param = authenticate_with_token(ProtocolVersion::Two, &ours.token, &CDH);
    report(
        "breakdown_token_hmac_alone",
        time(rounds, || {
            std::hint::black_box(token_check(&ours.token, &cdh_param));
        }),
    );
    report(
        "breakdown_cbor_decode_request",
        time(rounds, || {
            std::hint::black_box(lp_core::types::GetAssertionRequest::decode(&request[1..]).expect("decode"));
        }),
    );
    let value = cbor::decode(&response[1..]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    report(
        "breakdown_cbor_encode_response",
        time(rounds, || {
            std::hint::black_box(cbor::encode(&value));
        }),
    );
    ctaphid_costs(&request, &response, rounds)?;
    report("breakdown_raw_fsync", raw_fsync(dir, rounds, Probe::Append(256))?);
    report(
        "breakdown_raw_fsync_wal_frame_append",
        raw_fsync(dir, rounds, Probe::Append(WAL_FRAME))?,
    );
    report(
        "breakdown_raw_fsync_wal_frame_overwrite",
        raw_fsync(dir, rounds, Probe::Overwrite(WAL_FRAME))?,
    );
    report(
        "breakdown_raw_fsync_wal_frame_append_after_quiet",
        raw_fsync(dir, rounds, Probe::AppendAfterQuiet(WAL_FRAME))?,
    );
    Ok(())
}

/// CTAPHID PING over UDP with a `bytes` payload, echoed back: the transport's
/// own round trip (both sockets, the I/O thread, framing), no authenticator.
fn ping(addr: &str, rounds: usize, bytes: usize) -> Result<()> {
    use lp_core::ctaphid::{cmd, frame, BROADCAST_CID};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 64];
    let init = frame(BROADCAST_CID, cmd::INIT, b"pingpong").context("frame")?;
    sock.send(&init[0])?;
    let cid = loop {
        sock.recv(&mut buf)?;
        if buf[7..15] == *b"pingpong" {
            break u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]);
        }
    };
    let payload = vec![0xa5u8; bytes];
    let reports = frame(cid, cmd::PING, &payload).context("frame")?;
    let samples = time(rounds, || {
        for r in &reports {
            sock.send(r).expect("send");
        }
        for _ in 0..reports.len() {
            sock.recv(&mut buf).expect("PING answer");
        }
    });
    println!(
        "RESULT name=transport_sizes bytes={bytes} reports_each_way={}",
        reports.len()
    );
    report(&format!("transport_udp_ping_{bytes}_bytes"), samples);
    Ok(())
}

/// The daemon's `localpasskey::timing` events for CTAP command `ctap` (2:
/// GetAssertion): p50 of each field.
fn daemon_log(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let mut fields: BTreeMap<(String, String), Vec<Duration>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("localpasskey::timing")) {
        let kv: Vec<(&str, &str)> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let Some(ctap) = kv
            .iter()
            .find(|(k, _)| *k == "ctap_cmd")
            .map(|(_, v)| v.to_string())
        else {
            continue;
        };
        for (k, v) in &kv {
            if let (Some(name), Ok(us)) = (k.strip_suffix("_us"), v.parse::<u64>()) {
                fields
                    .entry((ctap.clone(), name.to_string()))
                    .or_default()
                    .push(Duration::from_micros(us));
            }
        }
    }
    if fields.is_empty() {
        bail!("no timing events in {}", path.display());
    }
    for ((ctap, name), samples) in fields {
        report(&format!("daemon_ctap{ctap}_{name}"), samples);
    }
    Ok(())
}

// ------------------------------------------------------------- scale

/// Fill `dir` with `n` passkeys: one for the benchmark's RP (a real software
/// key) and the rest spread over n/2 other RPs, in one transaction.
fn fill(dir: &Path, n: usize) -> Result<Vec<u8>> {
    let store = store_sqlite::SqliteStore::open(dir)?;
    drop(store);
    let mut conn = rusqlite::Connection::open(dir.join(store_sqlite::DB_FILE_NAME))?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO credentials (id, rp_id, rp_name, user_id, user_name, user_display_name, \
             discoverable, key_blob, public_key_cose, sign_count, created, last_used, cred_protect, \
             rp_id_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        // Filler rows all share one (valid, software) key: they are never used.
        let mut custody = InsecureSoftwareCustody::new();
        custody
            .create_vault(&[0; 32])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = custody
            .create_key(lp_core::custody::Algorithm::Es256)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let cose = vec![0xa0u8];
        for i in 1..n {
            let mut id = vec![0u8; 32];
            OsRng.fill_bytes(&mut id);
            let rp = format!("rp{}.example", i % (n / 2).max(1));
            let rp_hash = Sha256::digest(rp.as_bytes()).to_vec();
            stmt.execute(rusqlite::params![
                id,
                rp,
                "Filler",
                (i as u64).to_be_bytes().to_vec(),
                format!("user{i}"),
                format!("User {i}"),
                i % 4 != 0,
                key.blob,
                cose,
                0i64,
                1_700_000_000_000i64 + i as i64,
                Option::<i64>::None,
                1i64,
                rp_hash,
            ])?;
        }
    }
    tx.commit()?;
    Ok(Vec::new())
}

fn scale(n: usize, rounds: usize, dir: &Path) -> Result<()> {
    let t = Instant::now();
    fill(dir, n)?;
    println!("RESULT name=fill n={n} seconds={:.2}", t.elapsed().as_secs_f64());
    // The benchmark RP's credential and the PIN go through the authenticator
    // itself, so the daemon started later on this directory can use them.
    let store = store_sqlite::SqliteStore::open(dir)?;
    let mut ours = Ours::new(Box::new(store), true)?;
    ours.refresh_token("bench.localpasskey.invalid")?;
    let t0 = ours.token;
    ours.request(
        0x01,
        &mc_params("bench.localpasskey.invalid", b"scale", Some(&t0), true),
    )?;
    ours.refresh_token("bench.localpasskey.invalid")?;
    let t1 = ours.token;
    let ga = ga_params("bench.localpasskey.invalid", None, Some(&t1), false);
    report(
        &format!("scale_in_process_discoverable_get_assertion_n{n}"),
        time(rounds, || {
            ours.request(0x02, &ga).expect("GetAssertion");
        }),
    );
    enumeration(&mut ours, n, rounds)
}

/// Credential management (0x0A) over the whole store, as a manager app or
/// `fido2-token -L -r` does it: the metadata, the first RP, every RP (Begin
/// then one GetNext per RP), and one RP's credentials.
fn enumeration(ours: &mut Ours, n: usize, rounds: usize) -> Result<()> {
    ours.token = get_token(&mut ours.auth, 0x04, None)?;
    let token = ours.token;
    let begin = |sub: u64, sub_params: Option<Value>| {
        let mut message = vec![sub as u8];
        if let Some(p) = &sub_params {
            message.extend(cbor::encode(p));
        }
        let mut entries = vec![(1, Value::Integer(sub.into()))];
        if let Some(p) = sub_params {
            entries.push((2, p));
        }
        entries.push((3, Value::Integer(2.into())));
        entries.push((
            4,
            Value::Bytes(authenticate_with_token(ProtocolVersion::Two, &token, &message)),
        ));
        int_map(entries)
    };
    let field = |v: &Value, key: u64| -> Option<u64> {
        let Value::Map(m) = v else { return None };
        m.iter()
            .find(|(k, _)| *k == Value::Integer(key.into()))
            .and_then(|(_, v)| v.as_integer())
            .and_then(|i| u64::try_from(i).ok())
    };
    let metadata = begin(0x01, None);
    report(
        &format!("scale_cred_mgmt_metadata_n{n}"),
        time(rounds.min(200), || {
            ours.request(0x0a, &metadata).expect("getCredsMetadata");
        }),
    );
    let rps_begin = begin(0x02, None);
    report(
        &format!("scale_cred_mgmt_enumerate_rps_begin_n{n}"),
        time(rounds.min(50), || {
            ours.request(0x0a, &rps_begin).expect("enumerateRPsBegin");
        }),
    );
    let next = int_map([(1, Value::Integer(0x03.into()))]);
    let mut whole = Vec::new();
    let mut count = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let first = ours.request(0x0a, &rps_begin)?;
        count = field(&first, 0x05).context("no totalRPs")?;
        for _ in 1..count {
            ours.request(0x0a, &next)?;
        }
        whole.push(t.elapsed());
    }
    println!("RESULT name=scale_cred_mgmt_rps n={n} rps={count}");
    report(&format!("scale_cred_mgmt_enumerate_all_rps_n{n}"), whole);
    let rp_hash = Sha256::digest(b"bench.localpasskey.invalid").to_vec();
    let creds_begin = begin(0x04, Some(int_map([(1, Value::Bytes(rp_hash))])));
    report(
        &format!("scale_cred_mgmt_enumerate_credentials_begin_n{n}"),
        time(rounds.min(200), || {
            ours.request(0x0a, &creds_begin)
                .expect("enumerateCredentialsBegin");
        }),
    );
    Ok(())
}

// ------------------------------------------------------------- the daemon

fn vm_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS")?.parse()?)
}

fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn wait_ready(port: u16, child: &mut std::process::Child) -> Result<()> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_millis(1)))?;
    let mut init = [0u8; 64];
    init[..4].copy_from_slice(&[0xff; 4]);
    init[4] = 0x86;
    init[6] = 8;
    init[7..15].copy_from_slice(b"benchini");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 128];
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("daemon exited: {status}");
        }
        let _ = sock.send(&init);
        if let Ok(n) = sock.recv(&mut buf) {
            if n == 64 && buf[7..15] == init[7..15] {
                return Ok(());
            }
        }
    }
    bail!("daemon not ready after 30 s")
}

fn daemon(bin: &str, dir: &Path, port: u16, rounds: usize, idle: u64) -> Result<()> {
    let t = Instant::now();
    let mut child = std::process::Command::new(bin)
        .args(["run", "--transport", "udp", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--custody", "insecure-software", "--presence", "approve"])
        .env("LOCALPASSKEY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = (|| -> Result<()> {
        wait_ready(port, &mut child)?;
        let startup = t.elapsed();
        let pid = child.id();
        println!(
            "RESULT name=daemon_startup ms={:.1} rss_kib={}",
            startup.as_secs_f64() * 1e3,
            vm_rss_kib(pid)?
        );
        if rounds > 0 {
            let out = std::process::Command::new(bin)
                .args(["bench", "--to"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["--pin", PIN, "--rounds"])
                .arg(rounds.to_string())
                .env("LOCALPASSKEY_LOG", "warn")
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                bail!(
                    "localpasskey bench failed: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            for line in text.lines() {
                println!("e2e: {line}");
            }
            println!("RESULT name=daemon_after_bench rss_kib={}", vm_rss_kib(pid)?);
        }
        if idle > 0 {
            let hz = 100.0; // USER_HZ on Linux
            let before = cpu_ticks(pid)?;
            std::thread::sleep(Duration::from_secs(idle));
            let after = cpu_ticks(pid)?;
            println!(
                "RESULT name=daemon_idle seconds={idle} cpu_ms={:.0}",
                (after - before) as f64 / hz * 1e3
            );
        }
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let num = |i: usize, d: usize| arg(i).parse().unwrap_or(d);
    match arg(0) {
        "software" => software(num(1, 2000)),
        "peer" => peer_comparison(num(1, 2000)),
        "breakdown" => breakdown(arg(1), Path::new(arg(2)), num(3, 200)),
        "ping" => ping(arg(1), num(2, 300), num(3, 200)),
        "daemon-log" => daemon_log(Path::new(arg(1))),
        "scale" => scale(num(1, 1000), num(2, 500), Path::new(arg(3))),
        "daemon" => daemon(
            arg(1),
            Path::new(arg(2)),
            arg(3).parse().context("port")?,
            num(4, 300),
            num(5, 0) as u64,
        ),
        _ => bail!(
            "usage: lp-bench software|peer|breakdown|ping|daemon-log|scale|daemon ... (see src/main.rs)"
        ),
    }
}
