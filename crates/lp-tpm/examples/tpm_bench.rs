//! Timings of the TPM custody: `cargo run --release -p lp-tpm --example tpm_bench -- TCTI [N]`
//! e.g. `swtpm:path=DIR/tpm.sock` (swtpm on a unix socket) or `device:/dev/tpmrm0`.
//!
//! Not a test. Prints p50/p99 of each operation; the last ones are outside
//! the custody: a raw TPM2_Sign with a loaded key (the floor), and the two
//! ways a key can be brought back for one signature on a TPM other processes
//! can reach (TPM2_Load again, or TPM2_ContextLoad of a context saved once).

use lp_core::custody::{Algorithm, KeyCustody};
use lp_tpm::{TpmCustody, DEFAULT_TCTI};
use std::str::FromStr;
use std::time::{Duration, Instant};
use tss_esapi::{
    constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK},
    interface_types::{
        algorithm::HashingAlgorithm, resource_handles::Hierarchy, session_handles::AuthSession,
    },
    structures::{Digest, HashScheme, HashcheckTicket, SignatureScheme},
    tcti_ldr::TctiNameConf,
    tss2_esys::TPMT_TK_HASHCHECK,
    Context,
};

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<44} n={:<4} p50 {:>7.2} ms   p99 {:>7.2} ms",
        samples.len(),
        ms(at(0.50)),
        ms(at(0.99))
    );
}

fn time<T>(n: usize, mut f: impl FnMut(usize) -> T) -> Vec<Duration> {
    time_after(n, &mut (), |_, _| {}, |_, i| f(i))
}

/// Times `f(state, i)` alone, each round after an untimed `before(state, i)`.
fn time_after<S, T>(
    n: usize,
    state: &mut S,
    mut before: impl FnMut(&mut S, usize),
    mut f: impl FnMut(&mut S, usize) -> T,
) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            before(state, i);
            let t = Instant::now();
            std::hint::black_box(f(state, i));
            t.elapsed()
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let tcti = args.get(1).map(String::as_str).unwrap_or(DEFAULT_TCTI);
    let n: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let pin = [0x5a; 32];
    let digest = [0x11; 32];

    report(
        "open (CreatePrimary + salted session)",
        time(n / 10, |_| TpmCustody::open(tcti).unwrap()),
    );

    let mut custody = TpmCustody::open(tcti)?;
    println!("{:?}", custody.describe()?);
    let vault = custody.create_vault(&pin)?;
    report(
        "unlock (PolicyNV x2 + PolicySecret(PIN index) + Unseal + Load vault)",
        time(n / 10, |_| custody.unlock(&vault, &pin).unwrap()),
    );
    // Key creation per algorithm: RSA key generation is the slow one on
    // every TPM (real chips take seconds), so fewer rounds of it.
    for alg in custody.algorithms() {
        let rounds = if matches!(alg, Algorithm::Rs256 | Algorithm::Ps256) {
            (n / 40).max(3)
        } else {
            n / 4
        };
        report(
            &format!("create key {alg:?} (TPM2_CreateLoaded under the vault, context saved)"),
            time(rounds, |_| custody.create_key(alg).unwrap()),
        );
    }

    let keys: Vec<_> = (0..2)
        .map(|_| custody.create_key(Algorithm::Es256).unwrap())
        .collect();
    // On a TPM other processes can reach (swtpm) a key is not kept loaded:
    // after its first use (the vault's policy + Load) every signature is
    // ContextLoad of its saved context + Sign + Flush.
    report(
        "sign through the custody, key not kept loaded (ContextLoad + Sign + Flush)",
        time(n, |i| custody.sign(&keys[i % 2].blob, &digest).unwrap()),
    );
    // The first signature after an unlock, as every browser sign-in has it
    // (a fresh token is a fresh unlock): the saved context, sealed under R
    // across the lock, opened and loaded. The unlock itself is not timed.
    let rounds = (n / 10).max(5);
    let sign = |c: &mut TpmCustody, i: usize| c.sign(&keys[i % 2].blob, &digest).unwrap();
    let after_unlock = time_after(
        rounds,
        &mut custody,
        |c, _| {
            c.lock();
            c.unlock(&vault, &pin).unwrap();
        },
        sign,
    );
    report(
        "first sign after an unlock (sealed context opened; ContextLoad, Sign, Flush)",
        after_unlock,
    );
    // The same three commands after 20 ms of quiet and no unlock: what is
    // left of the gap above is the machine waking up, not the unlock.
    let after_idle = time_after(
        rounds,
        &mut custody,
        |_, _| std::thread::sleep(Duration::from_millis(20)),
        sign,
    );
    report(
        "sign after 20 ms idle, no unlock (ContextLoad, Sign, Flush)",
        after_idle,
    );
    // Without a saved context: what that first signature cost before.
    report(
        "sign with no saved context (vault policy, TPM2_Load, Sign, Flush)",
        time(n / 4, |i| {
            let blob = &keys[i % 2].blob;
            custody.forget_key(blob);
            custody.sign(blob, &digest).unwrap()
        }),
    );
    let hmac_key = custody.create_hmac_key()?;
    custody.hmac(&hmac_key, &digest)?;
    report(
        "hmac through the custody (ContextLoad + TPM2_HMAC + Flush on a socket TPM; salted)",
        time(n, |_| custody.hmac(&hmac_key, &digest).unwrap()),
    );
    drop(custody);

    raw_sign(tcti, n)?;
    Ok(())
}

/// A raw TPM2_Sign with a key that stays loaded: what a signature costs the
/// TPM itself, the floor under every figure above (the custody flushes keys
/// after each use on a TPM other processes can reach, like swtpm).
fn raw_sign(tcti: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut ctx = Context::new(TctiNameConf::from_str(tcti)?)?;
    let template = lp_tpm::primary_template()?;
    let primary = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })?
        .key_handle;
    let credential = lp_tpm::credential_template()?;
    let key = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create(primary, credential, None, None, None, None)
    })?;
    let key = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.load(primary, key.out_private, key.out_public)
    })?;
    let digest = Digest::try_from(vec![0x11; 32])?;
    let scheme = SignatureScheme::EcDsa {
        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
    };
    let no_ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })?;
    let sign = |ctx: &mut Context, key| {
        ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.sign(key, digest.clone(), scheme, no_ticket.clone())
        })
        .unwrap()
    };
    report(
        "sign, key cached (one TPM2_Sign)",
        time(n, |_| sign(&mut ctx, key)),
    );
    ctx.flush_context(key.into())?;

    // What a signature costs when the key may not stay loaded (no resource
    // manager: anyone on the socket could use a loaded key between our
    // commands). Load is what the custody does, under the vault's policy
    // too; a saved context is sealed by the TPM's own context key and useful
    // only to whoever holds it, so it may stay in our memory while unlocked.
    let template = lp_tpm::credential_template()?;
    let blob = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create(primary, template, None, None, None, None)
    })?;
    report(
        "Load + Sign + Flush (no vault policy)",
        time(n, |_| {
            let k = ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.load(primary, blob.out_private.clone(), blob.out_public.clone())
                })
                .unwrap();
            sign(&mut ctx, k);
            ctx.flush_context(k.into()).unwrap();
        }),
    );
    let k = ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.load(primary, blob.out_private.clone(), blob.out_public.clone())
    })?;
    let saved = ctx.context_save(k.into())?;
    ctx.flush_context(k.into())?;
    report(
        "ContextLoad + Sign + Flush (context saved once)",
        time(n, |_| {
            let k: tss_esapi::handles::KeyHandle = ctx.context_load(saved.clone()).unwrap().into();
            sign(&mut ctx, k);
            ctx.flush_context(k.into()).unwrap();
        }),
    );
    ctx.flush_context(primary.into())?;
    Ok(())
}
