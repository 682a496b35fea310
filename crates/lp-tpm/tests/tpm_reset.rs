//! A TPM Reset under a running custody (swtpm restarted with startup-clear,
//! as a laptop's firmware does at resume from hibernation): every loaded
//! object and session is gone. The custody must notice, rebuild and carry
//! on, without spending a PIN try and without opening anything the PIN did
//! not open before.

use lp_core::custody::{Algorithm, KeyCustody};

mod common;

use common::Swtpm;

const PIN: [u8; 32] = [7; 32];
const WRONG: [u8; 32] = [8; 32];

fn digest(n: u32) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(n.to_be_bytes()).into()
}

#[test]
fn signing_survives_a_tpm_reset() {
    let mut tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = KeyCustody::create_vault(&mut custody, &PIN).unwrap();
    let key = custody.create_key(Algorithm::Es256).unwrap();
    let sig = KeyCustody::sign(&mut custody, &key.blob, &digest(1)).unwrap();
    assert!(key.public.verifies(&digest(1), &sig));
    let hmac_key = KeyCustody::create_hmac_key(&mut custody).unwrap();
    let before = KeyCustody::hmac(&mut custody, &hmac_key, b"salt").unwrap();

    tpm.reset();
    // Still unlocked: the vault comes back with the authValue the PIN
    // opened, and the same key signs.
    assert!(custody.is_unlocked());
    let sig = KeyCustody::sign(&mut custody, &key.blob, &digest(2)).expect("sign after a TPM reset");
    assert!(
        key.public.verifies(&digest(2), &sig),
        "a signature by another key"
    );
    assert_eq!(
        KeyCustody::hmac(&mut custody, &hmac_key, b"salt").unwrap(),
        before
    );
    assert_eq!(
        KeyCustody::pin_retries(&mut custody, &vault).unwrap(),
        Some(8),
        "no PIN try was spent"
    );

    // Locked before a reset, it stays locked: the PIN is needed again, and a
    // wrong one is still refused (and counted), a right one opens.
    KeyCustody::lock(&mut custody);
    tpm.reset();
    assert!(
        KeyCustody::sign(&mut custody, &key.blob, &digest(3)).is_err(),
        "signed while locked"
    );
    assert!(KeyCustody::unlock(&mut custody, &vault, &WRONG).is_err());
    assert_eq!(KeyCustody::pin_retries(&mut custody, &vault).unwrap(), Some(7));
    KeyCustody::unlock(&mut custody, &vault, &PIN).expect("unlock after a TPM reset");
    let sig = KeyCustody::sign(&mut custody, &key.blob, &digest(4)).unwrap();
    assert!(key.public.verifies(&digest(4), &sig));
}

/// Every custody call that talks to the TPM is the first one after a resume
/// for someone: a PIN change and a Reset must notice the reset too, not fail
/// on the stale primary and session.
#[test]
fn pin_change_and_reset_survive_a_tpm_reset() {
    const NEW: [u8; 32] = [9; 32];
    let mut tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = KeyCustody::create_vault(&mut custody, &PIN).unwrap();
    let key = custody.create_key(Algorithm::Es256).unwrap();
    KeyCustody::lock(&mut custody);

    tpm.reset();
    let prepared = KeyCustody::change_auth(&mut custody, &vault, &PIN, &NEW)
        .expect("the first half of a PIN change, first after a TPM reset");
    tpm.reset();
    let changed = KeyCustody::commit_change(&mut custody, &prepared, &PIN, &NEW)
        .expect("the second half of a PIN change, first after a TPM reset");
    KeyCustody::lock(&mut custody);
    assert!(
        KeyCustody::unlock(&mut custody, &changed, &PIN).is_err(),
        "the old PIN still opens"
    );
    KeyCustody::unlock(&mut custody, &changed, &NEW).expect("the new PIN");
    let sig = KeyCustody::sign(&mut custody, &key.blob, &digest(5)).unwrap();
    assert!(key.public.verifies(&digest(5), &sig));
    KeyCustody::lock(&mut custody);

    tpm.reset();
    KeyCustody::reset(&mut custody, Some(&changed)).expect("Reset, first after a TPM reset");
    assert!(
        KeyCustody::unlock(&mut custody, &changed, &NEW).is_err(),
        "the vault opens after Reset"
    );
}
