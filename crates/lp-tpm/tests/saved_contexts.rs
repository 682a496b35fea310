//! Saved key contexts kept across locks (`src/saved.rs`), attacked with
//! everything the daemon's memory holds after lock, on a real swtpm: they
//! must sign nothing without the PIN, open only with the vault's R, fall
//! back to the normal load after a TPM Reset, and go at authenticatorReset
//! and at deletion. And they must be used: after an unlock, the first
//! signature is a TPM2_ContextLoad, not V's policy and a TPM2_Load.

mod common;

use common::Swtpm;
use lp_core::custody::{Algorithm, KeyCustody, NewKey};
use lp_tpm::{KeyLoads, TpmCustody, TpmError};
use tss_esapi::{
    attributes::ObjectAttributesBuilder,
    constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK},
    interface_types::{
        algorithm::{HashingAlgorithm, PublicAlgorithm},
        ecc::EccCurve,
        resource_handles::Hierarchy,
        session_handles::AuthSession,
    },
    structures::{
        Digest, EccPoint, EccScheme, HashScheme, HashcheckTicket, PublicBuilder, PublicEccParametersBuilder,
        SignatureScheme,
    },
    tss2_esys::{TPM2B_CONTEXT_DATA, TPMS_CONTEXT, TPMT_TK_HASHCHECK},
    utils::TpmsContext,
    Context,
};

const PIN: [u8; 32] = [7; 32];
const WRONG: [u8; 32] = [8; 32];
const NEW_PIN: [u8; 32] = [9; 32];

fn signs(custody: &mut TpmCustody, key: &NewKey, message: &[u8]) {
    let sig = custody.sign(&key.blob, message).expect("sign");
    assert!(key.public.verifies(message, &sig), "signature does not verify");
}

fn trait_signs(custody: &mut TpmCustody, key: &NewKey, message: &[u8]) {
    let sig = KeyCustody::sign(custody, &key.blob, message).expect("sign");
    assert!(key.public.verifies(message, &sig), "signature does not verify");
}

fn loads(custody: &TpmCustody) -> KeyLoads {
    custody.key_loads()
}

/// Bytes read as `sequence || savedHandle || hierarchy || contextBlob`,
/// the layout a TPMS_CONTEXT is kept in before sealing (an attacker has
/// this source): None if they cannot even be read as one.
fn as_context(bytes: &[u8]) -> Option<TpmsContext> {
    let (head, blob) = (bytes.get(..16)?, bytes.get(16..)?);
    let mut raw = TPMS_CONTEXT {
        sequence: u64::from_be_bytes(head[..8].try_into().ok()?),
        savedHandle: u32::from_be_bytes(head[8..12].try_into().ok()?),
        hierarchy: u32::from_be_bytes(head[12..16].try_into().ok()?),
        contextBlob: TPM2B_CONTEXT_DATA {
            size: u16::try_from(blob.len()).ok()?,
            buffer: [0; 5188],
        },
    };
    raw.contextBlob
        .buffer
        .get_mut(..blob.len())?
        .copy_from_slice(blob);
    TpmsContext::try_from(raw).ok()
}

fn no_ticket() -> HashcheckTicket {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .unwrap()
}

/// Try to load `context` into the TPM through the attacker's own
/// connection and sign with it. True if that signed.
fn attacker_signs(raw: &mut Context, context: TpmsContext) -> bool {
    let Ok(handle) = raw.context_load(context) else {
        return false;
    };
    let digest = Digest::try_from(vec![1u8; 32]).unwrap();
    let scheme = SignatureScheme::EcDsa {
        hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
    };
    let signed = raw
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.sign(handle.into(), digest, scheme, no_ticket())
        })
        .is_ok();
    let _ = raw.flush_context(handle);
    signed
}

#[test]
fn after_lock_the_saved_contexts_sign_nothing_without_the_pin() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_credential(Algorithm::Es256).unwrap();
    // TPM2_CreateLoaded left the new key loaded; its context was saved at
    // once, so the attestation's signature is a ContextLoad.
    signs(&mut custody, &key, b"attestation");
    assert_eq!(loads(&custody).full, 0, "the new key was loaded again through V");
    assert_eq!(loads(&custody).contexts, 1);

    custody.lock();
    assert!(matches!(custody.sign(&key.blob, b"m"), Err(TpmError::Locked)));
    let in_memory = custody.sealed_contexts();
    assert_eq!(in_memory.len(), 1, "the sealed context is kept across the lock");

    // Everything the process holds of it, tried as a context in the
    // attacker's own connection to the TPM: as it is, without the nonce,
    // without nonce and tag.
    let mut raw = tpm.raw();
    for (_, sealed) in &in_memory {
        for bytes in [&sealed[..], &sealed[12..], &sealed[12..sealed.len() - 16]] {
            if let Some(context) = as_context(bytes) {
                assert!(!attacker_signs(&mut raw, context), "a sealed context signed");
            }
        }
    }

    // A wrong PIN opens neither the vault nor the contexts.
    assert!(matches!(
        custody.unlock(&vault, &WRONG),
        Err(TpmError::AuthFailed)
    ));
    assert!(!custody.is_unlocked());
    assert!(custody.sign(&key.blob, b"m").is_err(), "signed after a wrong PIN");
    assert_eq!(loads(&custody).contexts, 1);

    // The right PIN brings R back: the first signature is a ContextLoad.
    custody.unlock(&vault, &PIN).unwrap();
    signs(&mut custody, &key, b"after the unlock");
    assert_eq!(
        loads(&custody),
        KeyLoads {
            contexts: 2,
            refused: 0,
            full: 0
        },
        "the first signature after an unlock went through V's policy and TPM2_Load"
    );
}

/// The control: what the sealing prevents is real. A context held in the
/// clear loads through anyone's connection and signs with no PIN at all.
#[test]
fn a_context_held_in_the_clear_would_sign_without_any_pin() {
    let tpm = Swtpm::start();
    let mut raw = tpm.raw();
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_sign_encrypt(true)
        .build()
        .unwrap();
    let ecdsa = EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256));
    let public = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_unrestricted_signing_key(ecdsa, EccCurve::NistP256)
                .build()
                .unwrap(),
        )
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .unwrap();
    let key = raw
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.create_primary(Hierarchy::Null, public, None, None, None, None)
        })
        .unwrap()
        .key_handle;
    let context = raw.context_save(key.into()).unwrap();
    raw.flush_context(key.into()).unwrap();
    drop(raw);
    let mut other = tpm.raw();
    assert!(attacker_signs(&mut other, context));
}

#[test]
fn a_tpm_reset_makes_saved_contexts_stale_and_the_normal_load_takes_over() {
    // Through the custody trait, as the daemon uses it: it survives the reset.
    let mut tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = KeyCustody::create_vault(&mut custody, &PIN).unwrap();
    let key = KeyCustody::create_key(&mut custody, Algorithm::Es256).unwrap();
    let hmac_key = KeyCustody::create_hmac_key(&mut custody).unwrap();
    let before = KeyCustody::hmac(&mut custody, &hmac_key, b"salt").unwrap();
    trait_signs(&mut custody, &key, b"m1");
    KeyCustody::lock(&mut custody);
    assert_eq!(custody.sealed_contexts().len(), 2);

    tpm.reset();
    KeyCustody::unlock(&mut custody, &vault, &PIN).expect("unlock after a TPM reset");
    assert_eq!(custody.sealed_contexts().len(), 2, "kept, to be tried");
    let at_reset = loads(&custody);
    trait_signs(&mut custody, &key, b"m2");
    assert_eq!(
        KeyCustody::hmac(&mut custody, &hmac_key, b"salt").unwrap(),
        before
    );
    let after = loads(&custody);
    assert_eq!(
        after.refused - at_reset.refused,
        2,
        "the TPM took contexts of the last boot"
    );
    assert_eq!(after.full - at_reset.full, 2, "no normal load after the refusal");

    // Saved afresh in this boot cycle: the next unlock uses them again.
    KeyCustody::lock(&mut custody);
    KeyCustody::unlock(&mut custody, &vault, &PIN).unwrap();
    trait_signs(&mut custody, &key, b"m3");
    assert_eq!(
        KeyCustody::hmac(&mut custody, &hmac_key, b"salt").unwrap(),
        before
    );
    assert_eq!(loads(&custody).contexts - after.contexts, 2);
    assert_eq!(loads(&custody).full, after.full);
}

#[test]
fn reset_drops_every_saved_context_and_deletion_drops_its_own() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = KeyCustody::create_vault(&mut custody, &PIN).unwrap();
    let kept = custody.create_credential(Algorithm::Es256).unwrap();
    let deleted = custody.create_credential(Algorithm::Es256).unwrap();
    assert_eq!(custody.sealed_contexts().len(), 2);
    KeyCustody::forget_key(&mut custody, &deleted.blob);
    assert_eq!(custody.sealed_contexts().len(), 1);
    signs(&mut custody, &kept, b"m");

    KeyCustody::reset(&mut custody, Some(&vault)).unwrap();
    assert!(
        custody.sealed_contexts().is_empty(),
        "a saved context outlived Reset"
    );
    // The new vault (new R, new epoch) cannot use the old key in any way.
    KeyCustody::create_vault(&mut custody, &PIN).unwrap();
    assert!(
        custody.sign(&kept.blob, b"m").is_err(),
        "a key of the revoked vault signed"
    );
}

#[test]
fn a_pin_change_keeps_r_and_so_the_saved_contexts() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = custody.create_vault(&PIN).unwrap();
    let key = custody.create_credential(Algorithm::Es256).unwrap();
    custody.lock();
    let step = custody.change_auth(&vault, &PIN, &NEW_PIN).unwrap();
    let vault = custody.commit_change(&step, &PIN, &NEW_PIN).unwrap();
    assert!(custody.unlock(&vault, &PIN).is_err(), "the old PIN still opens");
    custody.unlock(&vault, &NEW_PIN).unwrap();
    signs(&mut custody, &key, b"m");
    assert_eq!(loads(&custody).full, 0, "the PIN change lost the saved context");
    assert_eq!(loads(&custody).contexts, 1);
}
