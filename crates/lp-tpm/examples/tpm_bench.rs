//! Timings of the TPM custody: `cargo run --release -p lp-tpm --example tpm_bench -- TCTI [N]`
//! e.g. `swtpm:path=DIR/tpm.sock` (swtpm on a unix socket) or `device:/dev/tpmrm0`.
//!
//! Not a test. Prints p50/p99 of each operation. The last section compares
//! the two ways of checking a PIN at unlock (see `TpmCustody::unlock`).

use lp_core::custody::KeyCustody;
use lp_tpm::{TpmCustody, DEFAULT_TCTI};
use std::str::FromStr;
use std::time::{Duration, Instant};
use tss_esapi::{
    attributes::{ObjectAttributesBuilder, SessionAttributesBuilder},
    constants::SessionType,
    interface_types::{
        algorithm::{HashingAlgorithm, PublicAlgorithm},
        resource_handles::Hierarchy,
        session_handles::AuthSession,
    },
    structures::{
        Auth, Digest, KeyedHashScheme, PublicBuilder, PublicKeyedHashParameters, SensitiveData,
        SymmetricDefinition,
    },
    tcti_ldr::TctiNameConf,
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
    (0..n)
        .map(|i| {
            let t = Instant::now();
            std::hint::black_box(f(i));
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
        "unlock (Load vault + ObjectChangeAuth check)",
        time(n / 10, |_| custody.unlock(&vault, &pin).unwrap()),
    );
    report(
        "create key (TPM2_Create under vault)",
        time(n / 4, |_| custody.create_key().unwrap()),
    );

    let keys: Vec<_> = (0..2).map(|_| custody.create_key().unwrap()).collect();
    custody.sign_digest(&keys[0].blob, &digest)?;
    report(
        "sign, key cached (one TPM2_Sign)",
        time(n, |_| custody.sign_digest(&keys[0].blob, &digest).unwrap()),
    );
    // Alternating two keys with a 1-key cache: every call is flush + load + sign.
    report(
        "sign, key not cached (Flush + Load + Sign)",
        time(n, |i| custody.sign_digest(&keys[i % 2].blob, &digest).unwrap()),
    );
    let hmac_key = custody.create_hmac_key()?;
    custody.hmac(&hmac_key, &digest)?;
    report(
        "hmac, key cached (one TPM2_HMAC, salted)",
        time(n, |_| custody.hmac(&hmac_key, &digest).unwrap()),
    );
    drop(custody);

    pin_check_alternatives(tcti, n)?;
    Ok(())
}

/// ObjectChangeAuth on the vault (what `unlock` does) vs. loading a tiny
/// sealed check object under the vault and flushing it.
fn pin_check_alternatives(tcti: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut ctx = Context::new(TctiNameConf::from_str(tcti)?)?;
    let template = lp_tpm::primary_template()?;
    let primary = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })?
        .key_handle;
    let session = ctx
        .execute_without_session(|ctx| {
            ctx.start_auth_session(
                Some(primary),
                None,
                None,
                SessionType::Hmac,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
        })?
        .expect("session");
    let (attrs, mask) = SessionAttributesBuilder::new()
        .with_continue_session(true)
        .with_decrypt(true)
        .with_encrypt(true)
        .build();
    ctx.tr_sess_set_attributes(session, attrs, mask)?;
    ctx.set_sessions((Some(session), None, None));

    let auth = Auth::try_from(vec![0x5a; 32])?;
    let vault = ctx.create(
        primary,
        lp_tpm::vault_template()?,
        Some(auth.clone()),
        None,
        None,
        None,
    )?;
    let vault = ctx.load(primary, vault.out_private, vault.out_public)?;
    ctx.tr_set_auth(vault.into(), auth.clone())?;

    let check_template = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(
            ObjectAttributesBuilder::new()
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_user_with_auth(true)
                .build()?,
        )
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()?;
    let check = ctx.create(
        vault,
        check_template,
        None,
        Some(SensitiveData::try_from(vec![1])?),
        None,
        None,
    )?;

    report(
        "PIN check: ObjectChangeAuth (chosen)",
        time(n / 2, |_| {
            ctx.object_change_auth(vault.into(), primary.into(), auth.clone())
                .unwrap()
        }),
    );
    report(
        "PIN check: Load check object + Flush",
        time(n / 2, |_| {
            let h = ctx
                .load(vault, check.out_private.clone(), check.out_public.clone())
                .unwrap();
            ctx.flush_context(h.into()).unwrap();
        }),
    );
    ctx.clear_sessions();
    ctx.flush_context(vault.into())?;
    Ok(())
}
