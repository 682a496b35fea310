//! LocalPasskey benchmarks (figures, not tests). Run through scripts/bench.sh.
//!
//! ```text
//! lp-bench software ROUNDS            raw P-256 sign and SHA-256 vs Authenticator::handle in process
//! lp-bench peer ROUNDS                ours vs 1Password's passkey-authenticator, in process
//! lp-bench scale N ROUNDS DIR         fill an SQLite store with N passkeys (one batch
//!                                     transaction), then discoverable GetAssertion in process
//! lp-bench daemon BIN DIR PORT ROUNDS [IDLE_S]
//!                                     start the daemon on DIR (software custody): start-up
//!                                     time, VmRSS, e2e GetAssertion (`localpasskey bench`),
//!                                     and CPU time used over IDLE_S idle seconds
//! ```
//! Every line of output that carries a figure starts with `RESULT` and is
//! `key=value` pairs, so scripts/bench.sh can collect them.

// The store is the daemon's own code, compiled in here so that the scale
// benchmark measures exactly what the daemon runs (the daemon crate has no
// library target).
#[path = "../../localpasskey/src/store_sqlite.rs"]
#[allow(dead_code)]
mod store_sqlite;

use anyhow::{bail, Context, Result};
use ciborium::value::Value;
use lp_core::authenticator::{Authenticator, Config};
use lp_core::cbor::{self, int_map, text_map};
use lp_core::clock::ManualClock;
use lp_core::custody::insecure_software::InsecureSoftwareCustody;
use lp_core::custody::KeyCustody;
use lp_core::pin_protocol::{authenticate_with_token, KeyAgreement, ProtocolVersion, SharedSecret};
use lp_core::store::{CredentialStore, MemoryStore};
use lp_core::user::{AlwaysApprove, NoInteraction};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
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

fn client_pin(auth: &mut Authenticator, entries: Vec<(u64, Value)>) -> Result<Value> {
    let mut req = vec![0x06];
    req.extend(cbor::encode(&int_map(entries)));
    let resp = auth.handle(&req, &NoInteraction);
    match resp.split_first() {
        Some((0, body)) if body.is_empty() => Ok(Value::Null),
        Some((0, body)) => cbor::decode(body).map_err(|e| anyhow::anyhow!("{e:?}")),
        Some((s, _)) => bail!("clientPIN refused: 0x{s:02x}"),
        None => bail!("empty answer"),
    }
}

fn agree(auth: &mut Authenticator) -> Result<(SharedSecret, Value)> {
    let v = ProtocolVersion::Two;
    let resp = client_pin(
        auth,
        vec![(1, Value::Integer(2.into())), (2, Value::Integer(2.into()))],
    )?;
    let Value::Map(m) = resp else {
        bail!("no key agreement")
    };
    let theirs = m
        .into_iter()
        .find(|(k, _)| k == &Value::Integer(1.into()))
        .context("no key")?
        .1;
    let mut scalar = [0u8; 32];
    OsRng.fill_bytes(&mut scalar);
    scalar[0] &= 0x7f;
    scalar[31] |= 1;
    let ours = KeyAgreement::from_secret_scalar(&scalar).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let public = ours.public_cose();
    let shared = ours
        .shared_secret(v, theirs)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok((shared, public))
}

fn set_pin(auth: &mut Authenticator) -> Result<()> {
    let (shared, platform) = agree(auth)?;
    let mut padded = PIN.as_bytes().to_vec();
    padded.resize(64, 0);
    let enc = shared.encrypt(&padded).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let param = shared.authenticate(&enc);
    client_pin(
        auth,
        vec![
            (1, Value::Integer(2.into())),
            (2, Value::Integer(3.into())),
            (3, platform),
            (4, Value::Bytes(param)),
            (5, Value::Bytes(enc)),
        ],
    )?;
    Ok(())
}

fn get_token(auth: &mut Authenticator, perms: u8, rp: &str) -> Result<[u8; 32]> {
    let (shared, platform) = agree(auth)?;
    let hash = Sha256::digest(PIN.as_bytes());
    let enc = shared
        .encrypt(&hash[..16])
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let resp = client_pin(
        auth,
        vec![
            (1, Value::Integer(2.into())),
            (2, Value::Integer(9.into())),
            (3, platform),
            (6, Value::Bytes(enc)),
            (9, Value::Integer(perms.into())),
            (10, Value::Text(rp.into())),
        ],
    )?;
    let Value::Map(m) = resp else { bail!("no token") };
    let enc = m
        .into_iter()
        .find(|(k, _)| k == &Value::Integer(2.into()))
        .context("no token")?
        .1;
    let plain = shared
        .decrypt(enc.as_bytes().context("token not bytes")?)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    plain
        .try_into()
        .map_err(|_| anyhow::anyhow!("token of the wrong size"))
}

impl Ours {
    fn new(store: Box<dyn CredentialStore>, with_pin: bool) -> Result<Self> {
        let mut auth = Authenticator::new(
            Box::new(InsecureSoftwareCustody::new()),
            store,
            Box::new(AlwaysApprove),
            Arc::new(ManualClock::new()),
            Config::default(),
        );
        if with_pin {
            set_pin(&mut auth)?;
        }
        Ok(Self { auth, token: [0; 32] })
    }

    fn refresh_token(&mut self, rp: &str) -> Result<()> {
        self.token = get_token(&mut self.auth, 0x03, rp)?;
        Ok(())
    }

    fn request(&mut self, cmd: u8, params: &Value) -> Result<Value> {
        let mut req = vec![cmd];
        req.extend(cbor::encode(params));
        let resp = self.auth.handle(&req, &NoInteraction);
        match resp.split_first() {
            Some((0, body)) => cbor::decode(body).map_err(|e| anyhow::anyhow!("{e:?}")),
            Some((s, _)) => bail!("command 0x{cmd:02x} refused: 0x{s:02x}"),
            None => bail!("empty answer"),
        }
    }
}

fn mc_params(rp: &str, user: &[u8], token: Option<&[u8; 32]>, rk: bool) -> Value {
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

fn peer_comparison(rounds: usize) -> Result<()> {
    // The same requests for both, without pinUvAuthParam (the peer has no
    // clientPIN; ours gets `uv` from its prompt, AlwaysApprove here, plus a
    // token where its rules need one — see below).
    let mut p = peer::new();
    let mut ours = Ours::new(Box::new(MemoryStore::new()), true)?;

    // MakeCredential (rk, ES256).
    let mut samples = Vec::new();
    let mut peer_ids = Vec::new();
    for i in 0..rounds / 4 + 20 {
        let req = cbor::encode(&mc_params("bench.example", &(i as u32).to_be_bytes(), None, true));
        let t = Instant::now();
        let out = peer::make_credential(&mut p, &req);
        let el = t.elapsed();
        if i >= 20 {
            samples.push(el);
        }
        let v = cbor::decode(&out[1..]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        peer_ids.push(credential_id(&v)?);
    }
    let peer_mc = report("peer_make_credential", samples);
    let mut samples = Vec::new();
    let mut our_id = Vec::new();
    for i in 0..rounds / 4 + 20 {
        ours.refresh_token("bench.example")?;
        let req = mc_params(
            "bench.example",
            &(i as u32).to_be_bytes(),
            Some(&ours.token),
            true,
        );
        let t = Instant::now();
        let v = ours.request(0x01, &req)?;
        let el = t.elapsed();
        if i >= 20 {
            samples.push(el);
        }
        our_id = credential_id(&v)?;
    }
    let our_mc = report("ours_make_credential", samples);

    // GetAssertion with an allowList (the peer's MemoryStore only finds
    // credentials by id), UP and UV.
    let peer_req = cbor::encode(&ga_params("bench.example", Some(&peer_ids[0]), None, true));
    let peer_ga = report(
        "peer_get_assertion",
        time(rounds, || {
            peer::get_assertion(&mut p, &peer_req);
        }),
    );
    // Ours: UP with a token spends it, so time GetAssertion with up=false
    // and a live token (the same processing minus a presence prompt that
    // AlwaysApprove answers instantly anyway).
    ours.refresh_token("bench.example")?;
    let t = ours.token;
    let our_req = ga_params("bench.example", Some(&our_id), Some(&t), false);
    let our_ga = report(
        "ours_get_assertion",
        time(rounds, || {
            ours.request(0x02, &our_req).expect("GetAssertion");
        }),
    );
    println!(
        "RESULT name=ratio_peer_to_ours make_credential={:.2} get_assertion={:.2}",
        peer_mc / our_mc,
        peer_ga / our_ga
    );
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
             discoverable, key_blob, public_key_cose, sign_count, created, last_used, cred_protect) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
            stmt.execute(rusqlite::params![
                id,
                format!("rp{}.example", i % (n / 2).max(1)),
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
        "scale" => scale(num(1, 1000), num(2, 500), Path::new(arg(3))),
        "daemon" => daemon(
            arg(1),
            Path::new(arg(2)),
            arg(3).parse().context("port")?,
            num(4, 300),
            num(5, 0) as u64,
        ),
        _ => bail!("usage: lp-bench software|peer|scale|daemon ... (see src/main.rs)"),
    }
}
