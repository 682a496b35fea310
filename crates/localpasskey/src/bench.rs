//! `localpasskey bench`: a CTAP platform that times a running daemon end to
//! end over the UDP transport (CTAPHID framing, the authenticator, the store
//! and the custody included). Not a test: it prints figures.
//!
//! It sets the PIN if none is set, makes one credential, then for each round
//! gets a fresh pinUvAuthToken (not timed: a browser gets one per ceremony
//! too, and it is the TPM's PIN check) and times GetAssertion with it; then
//! times MakeCredential the same way.

use crate::client::{self, Client};
use anyhow::{bail, Context, Result};
use ciborium::value::Value;
use lp_core::cbor::{int_map, text_map};
use lp_core::pin::permission;
use lp_core::pin_protocol::{authenticate_with_token, ProtocolVersion};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const RP: &str = "bench.localpasskey.invalid";
const CDH: [u8; 32] = [0x42; 32];

fn report(name: &str, mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<44} n={:<4} p50 {:>7.2} ms   p99 {:>7.2} ms",
        samples.len(),
        ms(at(0.50)),
        ms(at(0.99))
    );
    ms(at(0.50))
}

fn token(c: &mut Client, pin: &str, perms: u8) -> Result<[u8; 32]> {
    client::pin_token(c, pin, perms, RP)?.map_err(|e| anyhow::anyhow!("token refused: {e}"))
}

/// The COSE algorithms GetInfo (0x0A) lists, in its order.
fn algorithms(c: &mut Client) -> Result<Vec<i64>> {
    let info = c
        .ctap(0x04, None)?
        .map_err(|e| anyhow::anyhow!("GetInfo refused: {e}"))?;
    let Value::Map(m) = info else {
        bail!("GetInfo is not a map")
    };
    let Some((_, Value::Array(list))) = m.into_iter().find(|(k, _)| *k == Value::Integer(0x0a.into())) else {
        return Ok(vec![-7]);
    };
    Ok(list
        .iter()
        .filter_map(|entry| match entry {
            Value::Map(e) => e.iter().find_map(|(k, v)| match (k, v) {
                (Value::Text(k), Value::Integer(a)) if k == "alg" => i64::try_from(*a).ok(),
                _ => None,
            }),
            _ => None,
        })
        .collect())
}

fn algorithm_name(alg: i64) -> String {
    match alg {
        -7 => "ES256".into(),
        -35 => "ES384".into(),
        -36 => "ES512".into(),
        -257 => "RS256".into(),
        -37 => "PS256".into(),
        other => format!("COSE {other}"),
    }
}

fn make_credential(c: &mut Client, token: &[u8; 32], user: u32) -> Result<()> {
    make_credential_with(c, token, user, -7)
}

fn make_credential_with(c: &mut Client, token: &[u8; 32], user: u32, alg: i64) -> Result<()> {
    let v = ProtocolVersion::Two;
    let params = int_map([
        (1, Value::Bytes(CDH.to_vec())),
        (2, text_map([("id", Value::Text(RP.into()))])),
        (
            3,
            text_map([
                ("id", Value::Bytes(user.to_be_bytes().to_vec())),
                ("name", Value::Text(format!("bench{user}"))),
            ]),
        ),
        (
            4,
            Value::Array(vec![text_map([
                ("alg", Value::Integer(alg.into())),
                ("type", Value::Text("public-key".into())),
            ])]),
        ),
        (7, text_map([("rk", Value::Bool(true))])),
        (8, Value::Bytes(authenticate_with_token(v, token, &CDH))),
        (9, Value::Integer(2.into())),
    ]);
    c.ctap(0x01, Some(params))?
        .map_err(|e| anyhow::anyhow!("MakeCredential refused: {e}"))?;
    Ok(())
}

fn get_assertion(c: &mut Client, token: &[u8; 32]) -> Result<()> {
    let v = ProtocolVersion::Two;
    let params = int_map([
        (1, Value::Text(RP.into())),
        (2, Value::Bytes(CDH.to_vec())),
        (6, Value::Bytes(authenticate_with_token(v, token, &CDH))),
        (7, Value::Integer(2.into())),
    ]);
    c.ctap(0x02, Some(params))?
        .map_err(|e| anyhow::anyhow!("GetAssertion refused: {e}"))?;
    Ok(())
}

pub fn run(to: SocketAddr, pin: &str, rounds: usize) -> Result<()> {
    let mut c = Client::connect(&client::Target::Udp(to))?;
    let status = client::pin_status(&mut c)?;
    if !status.set {
        client::set_pin(&mut c, pin)?.map_err(|e| anyhow::anyhow!("setPIN refused: {e}"))?;
    }
    if rounds < 2 {
        bail!("at least 2 rounds");
    }
    // One credential to sign with; the store may hold others.
    let t = token(&mut c, pin, permission::MC).context("is the PIN right?")?;
    make_credential(&mut c, &t, 0)?;

    let mut ga = Vec::with_capacity(rounds);
    let mut tokens = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let t = token(&mut c, pin, permission::GA)?;
        tokens.push(start.elapsed());
        let start = Instant::now();
        get_assertion(&mut c, &t)?;
        ga.push(start.elapsed());
    }
    let mut mc = Vec::with_capacity(rounds / 4);
    for i in 0..rounds / 4 {
        let t = token(&mut c, pin, permission::MC)?;
        let start = Instant::now();
        make_credential(&mut c, &t, 1 + i as u32)?;
        mc.push(start.elapsed());
    }
    report("e2e getPinUvAuthToken (PIN checked by custody)", tokens);
    report("e2e GetAssertion with a valid token", ga);
    report("e2e MakeCredential with a valid token", mc);

    let mut user = 1 + rounds as u32;
    for alg in algorithms(&mut c)? {
        let n = if matches!(alg, -257 | -37) {
            (rounds / 40).max(3)
        } else {
            (rounds / 4).max(3)
        };
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = token(&mut c, pin, permission::MC)?;
            let start = Instant::now();
            make_credential_with(&mut c, &t, user, alg)?;
            samples.push(start.elapsed());
            user += 1;
        }
        report(&format!("e2e MakeCredential {}", algorithm_name(alg)), samples);
    }
    Ok(())
}
