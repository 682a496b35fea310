//! The PIN limit and revocation, proved against a real swtpm, and attacked
//! the ways someone with the user's privileges, the owner's empty
//! authorisation and this source code would.

mod common;

use common::Swtpm;
use lp_core::custody::Algorithm;
use lp_tpm::{PinCounts, TpmError, VaultBlob, DA_MAX_TRIES, PIN_LIMIT};
use tss_esapi::{
    attributes::NvIndexAttributes,
    constants::{CommandCode, SessionType},
    handles::{AuthHandle, NvIndexHandle, NvIndexTpmHandle, TpmHandle},
    interface_types::{
        algorithm::HashingAlgorithm,
        resource_handles::{NvAuth, Provision},
        session_handles::{AuthSession, PolicySession},
    },
    structures::{Auth, DigestList, MaxNvBuffer, NvPublicBuilder, SymmetricDefinition},
    Context,
};

const PIN: [u8; 32] = [7; 32];
const WRONG: [u8; 32] = [8; 32];
const NEW_PIN: [u8; 32] = [9; 32];

fn signs(custody: &mut lp_tpm::TpmCustody, key: &lp_core::custody::NewKey) {
    let message = b"authenticator data || client data hash";
    let sig = custody.sign(&key.blob, message).expect("sign");
    assert!(key.public.verifies(message, &sig), "signature does not verify");
}

fn counts(custody: &mut lp_tpm::TpmCustody, vault: &VaultBlob) -> PinCounts {
    custody.pin_counts(vault).expect("read").expect("a PIN index")
}

#[test]
fn the_pin_index_counts_wrong_pins_and_the_dictionary_attack_counter_never_sees_them() {
    let tpm = Swtpm::start();
    let mut c = tpm.open();
    assert!(
        !c.da_status().unwrap().lockout_auth_set,
        "swtpm starts with an empty lockout auth"
    );
    let vault = c.create_vault(&PIN).unwrap();
    assert!(vault.is_gated());
    let da = c.da_status().unwrap();
    assert!(
        da.lockout_auth_set,
        "the lockout authorisation is taken before a PIN is set"
    );
    assert_eq!(
        (da.max_tries, da.recovery_secs),
        (DA_MAX_TRIES, lp_tpm::DA_RECOVERY_SECS)
    );
    assert_eq!(
        counts(&mut c, &vault),
        PinCounts {
            failures: 0,
            limit: PIN_LIMIT
        }
    );
    let key = c.create_credential(Algorithm::Es256).unwrap();
    c.lock();
    for i in 1..=5 {
        assert!(matches!(c.unlock(&vault, &WRONG), Err(TpmError::AuthFailed)));
        assert_eq!(counts(&mut c, &vault).failures, i);
        assert!(!c.is_unlocked());
        assert!(matches!(c.sign(&key.blob, &[0; 32]), Err(TpmError::Locked)));
    }
    assert_eq!(
        c.da_status().unwrap().counter,
        0,
        "typing mistakes never reach DA"
    );
    // A daemon restart (a new connection, a new primary) sees the same count.
    drop(c);
    let mut c = tpm.open();
    assert_eq!(counts(&mut c, &vault).failures, 5);
    assert_eq!(c.unlock(&vault, &PIN).unwrap(), None);
    assert_eq!(counts(&mut c, &vault).failures, 0, "a success resets pinCount");
    signs(&mut c, &key);
}

#[test]
fn eight_wrong_pins_block_the_right_one_for_good() {
    let tpm = Swtpm::start();
    let mut c = tpm.open();
    let vault = c.create_vault(&PIN).unwrap();
    c.lock();
    for _ in 0..PIN_LIMIT {
        assert!(matches!(c.unlock(&vault, &WRONG), Err(TpmError::AuthFailed)));
    }
    assert!(matches!(c.unlock(&vault, &PIN), Err(TpmError::PinBlocked)));
    drop(c);
    let mut c = tpm.open();
    assert!(matches!(c.unlock(&vault, &PIN), Err(TpmError::PinBlocked)));
    assert_eq!(c.da_status().unwrap().counter, 0);
}

#[test]
fn a_pin_change_revokes_the_old_pin_in_every_copy_and_keeps_the_passkeys() {
    let tpm = Swtpm::start();
    let mut c = tpm.open();
    let old_copy = c.create_vault(&PIN).unwrap();
    let key = c.create_credential(Algorithm::Es256).unwrap();
    let prepared = c.change_auth(&old_copy, &PIN, &NEW_PIN).unwrap();
    let committed = c.commit_change(&prepared, &PIN, &NEW_PIN).unwrap();
    c.lock();
    // The old copy with the old PIN: its seal's generation is past.
    assert!(matches!(c.unlock(&old_copy, &PIN), Err(TpmError::Revoked)));
    assert!(matches!(c.unlock(&old_copy, &NEW_PIN), Err(TpmError::Revoked)));
    // The half-way copy: the old PIN is refused by the PIN index itself.
    assert!(matches!(c.unlock(&prepared, &PIN), Err(TpmError::AuthFailed)));
    assert!(matches!(c.unlock(&committed, &PIN), Err(TpmError::AuthFailed)));
    assert_eq!(c.unlock(&committed, &NEW_PIN).unwrap(), None);
    signs(&mut c, &key);
    // Stored before the commit, found after it (a crash right after the
    // increment): the new PIN opens it and says what to store.
    c.lock();
    let settled = c.unlock(&prepared, &NEW_PIN).unwrap().expect("settled");
    assert_eq!(settled, committed);
    assert_eq!(c.da_status().unwrap().counter, 0);
}

#[test]
fn a_pin_change_interrupted_before_the_commit_still_opens_with_the_old_pin() {
    let tpm = Swtpm::start();
    let mut c = tpm.open();
    let vault = c.create_vault(&PIN).unwrap();
    let key = c.create_credential(Algorithm::Es256).unwrap();
    let prepared = c.change_auth(&vault, &PIN, &NEW_PIN).unwrap();
    c.lock();
    let settled = c
        .unlock(&prepared, &PIN)
        .unwrap()
        .expect("the new seal is dropped");
    signs(&mut c, &key);
    assert_eq!(settled, vault);
    assert!(matches!(c.unlock(&prepared, &NEW_PIN), Err(TpmError::AuthFailed)));
}

#[test]
fn reset_revokes_the_vault_in_every_copy() {
    let tpm = Swtpm::start();
    let mut c = tpm.open();
    let vault = c.create_vault(&PIN).unwrap();
    let key = c.create_credential(Algorithm::Es256).unwrap();
    c.revoke(&vault).unwrap();
    assert!(!c.is_unlocked());
    assert!(matches!(c.unlock(&vault, &PIN), Err(TpmError::Revoked)));
    assert!(matches!(c.sign(&key.blob, &[0; 32]), Err(TpmError::Locked)));
    // A new PIN after Reset is a new gate; the old copy stays dead.
    let fresh = c.create_vault(&PIN).unwrap();
    c.lock();
    assert!(matches!(c.unlock(&vault, &PIN), Err(TpmError::Revoked)));
    c.unlock(&fresh, &PIN).unwrap();
    assert!(
        c.sign(&key.blob, &[0; 32]).is_err(),
        "an old key never loads under the new vault"
    );
}

#[test]
fn a_vault_made_before_the_pin_index_moves_onto_one_at_the_next_right_pin() {
    let tpm = Swtpm::start();
    let mut c = tpm.open();
    c.take_lockout().unwrap();
    let legacy = c
        .create_unguarded_vault(&Auth::try_from(&PIN[..]).unwrap())
        .unwrap();
    assert!(!legacy.is_gated());
    let key = c.create_credential(Algorithm::Es256).unwrap();
    c.lock();
    assert!(matches!(c.unlock(&legacy, &WRONG), Err(TpmError::AuthFailed)));
    let migrated = c.unlock(&legacy, &PIN).unwrap().expect("migrated");
    assert!(migrated.is_gated());
    signs(&mut c, &key);
    c.lock();
    assert_eq!(c.unlock(&migrated, &PIN).unwrap(), None);
    signs(&mut c, &key);
    c.lock();
    assert!(matches!(c.unlock(&migrated, &WRONG), Err(TpmError::AuthFailed)));
    assert_eq!(
        counts(&mut c, &migrated).failures,
        1,
        "now counted by the PIN index"
    );
}

#[test]
fn the_vault_seal_and_keys_have_the_promised_attributes() {
    let tpm = Swtpm::start();
    let mut c = tpm.open();
    let vault = c.create_vault(&PIN).unwrap();
    let v = lp_tpm::TpmCustody::public_attributes(&vault.to_bytes()).unwrap();
    assert!(v.fixed_tpm && v.fixed_parent && v.sensitive_data_origin && v.restricted && v.decrypt);
    assert!(v.no_da && !v.user_with_auth && v.admin_with_policy && v.has_policy);
    let seals = lp_tpm::TpmCustody::seal_attributes(&vault).unwrap();
    assert_eq!(seals.len(), 1);
    let s = seals[0];
    assert!(
        s.fixed_tpm && s.fixed_parent && !s.no_da && !s.user_with_auth && s.admin_with_policy && s.has_policy
    );
    assert!(!s.sign && !s.decrypt && !s.restricted);
    let key = c.create_credential(Algorithm::Es256).unwrap();
    let k = lp_tpm::TpmCustody::public_attributes(&key.blob).unwrap();
    assert!(k.fixed_tpm && k.fixed_parent && k.sensitive_data_origin && k.sign && k.no_da && !k.decrypt);
    assert!(!k.has_policy);
}

// ---------------------------------------------------------------------------
// The attacker drives the TPM directly
// ---------------------------------------------------------------------------

/// The PIN index's handle, read from the blob as the attacker would (the
/// format is documented in lib.rs).
fn pin_index_of(vault: &VaultBlob) -> u32 {
    let b = vault.to_bytes();
    u32::from_be_bytes([b[4], b[5], b[6], b[7]])
}

fn nv(ctx: &mut Context, index: u32) -> NvIndexHandle {
    let tpm = TpmHandle::NvIndex(NvIndexTpmHandle::new(index).unwrap());
    ctx.execute_without_session(|ctx| ctx.tr_from_tpm_public(tpm))
        .unwrap()
        .into()
}

fn trial_digest(
    ctx: &mut Context,
    steps: impl Fn(&mut Context, PolicySession),
) -> tss_esapi::structures::Digest {
    let s = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Trial,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .unwrap()
        .unwrap();
    let ps = PolicySession::try_from(s).unwrap();
    steps(ctx, ps);
    let d = ctx.policy_get_digest(ps).unwrap();
    let h: tss_esapi::handles::SessionHandle = ps.into();
    ctx.flush_context(h.into()).unwrap();
    d
}

/// Undefine P with the owner's empty authorisation, define it again with
/// the same public area and `auth` of the attacker's choosing, and write it
/// through its write-once branch: the same Name, so PolicySecret(P) passes.
fn replace_pin_index(ctx: &mut Context, index: u32, auth: &[u8]) {
    let p = nv(ctx, index);
    let (public, name) = ctx.execute_without_session(|ctx| ctx.nv_read_public(p)).unwrap();
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.nv_undefine_space(Provision::Owner, p)
    })
    .expect("the owner may undefine the PIN index");
    let attrs = NvIndexAttributes(public.attributes().0 & !(1 << 29)); // TPMA_NV_WRITTEN clear
    let again = NvPublicBuilder::new()
        .with_nv_index(public.nv_index())
        .with_index_name_algorithm(public.name_algorithm())
        .with_index_attributes(attrs)
        .with_index_auth_policy(public.authorization_policy().clone())
        .with_data_area_size(public.data_size())
        .build()
        .unwrap();
    let p = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.nv_define_space(
                Provision::Owner,
                Some(Auth::try_from(auth).unwrap()),
                again.clone(),
            )
        })
        .expect("the owner may define it again");
    let a = trial_digest(ctx, |ctx, ps| {
        ctx.policy_nv_written(ps, false).unwrap();
        ctx.policy_command_code(ps, CommandCode::NvWrite).unwrap();
    });
    let b = trial_digest(ctx, |ctx, ps| {
        ctx.policy_auth_value(ps).unwrap();
        ctx.policy_command_code(ps, CommandCode::NvChangeAuth).unwrap();
    });
    let s = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Policy,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )
        .unwrap()
        .unwrap();
    let ps = PolicySession::try_from(s).unwrap();
    ctx.policy_nv_written(ps, false).unwrap();
    ctx.policy_command_code(ps, CommandCode::NvWrite).unwrap();
    let mut list = DigestList::new();
    list.add(a).unwrap();
    list.add(b).unwrap();
    ctx.policy_or(ps, list).unwrap();
    let counts = MaxNvBuffer::try_from([0u32.to_be_bytes(), 8u32.to_be_bytes()].concat()).unwrap();
    ctx.execute_with_session(Some(ps.into()), |ctx| {
        ctx.nv_write(NvAuth::NvIndex(p), p, counts, 0)
    })
    .expect("the write-once branch accepts the first write");
    let h: tss_esapi::handles::SessionHandle = ps.into();
    ctx.flush_context(h.into()).unwrap();
    let (_, name_again) = ctx.execute_without_session(|ctx| ctx.nv_read_public(p)).unwrap();
    assert_eq!(name_again.value(), name.value(), "same public area, same Name");
}

#[test]
fn the_owner_can_replace_the_pin_index_but_then_every_guess_costs_a_dictionary_attack_try() {
    let tpm = Swtpm::start();
    let mut c = tpm.open();
    let vault = c.create_vault(&PIN).unwrap();
    c.lock();
    let mut attacker = tpm.raw();
    // pinCount cannot be written back: no ownerwrite, and the write-once branch is spent.
    let p = nv(&mut attacker, pin_index_of(&vault));
    let zero = MaxNvBuffer::try_from(vec![0u8; 8]).unwrap();
    assert!(attacker
        .execute_with_session(Some(AuthSession::Password), |ctx| ctx.nv_write(
            NvAuth::Owner,
            p,
            zero,
            0
        ))
        .is_err());

    let chosen = [0x41u8; 32];
    replace_pin_index(&mut attacker, pin_index_of(&vault), &chosen);
    let mut guesses = 0;
    let mut guess = 0u8;
    loop {
        guess += 1;
        // The attacker's guess is both P's new authValue and the PIN tried at S.
        let mut g = [0u8; 32];
        g[0] = guess;
        replace_pin_index(&mut attacker, pin_index_of(&vault), &g);
        match c.unlock(&vault, &g) {
            Err(TpmError::SealRefused) => guesses += 1,
            Err(TpmError::Lockout) => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(guesses <= DA_MAX_TRIES, "DA must stop the guesses");
    }
    println!("owner route: {guesses} guesses before the TPM locked out");
    assert_eq!(guesses, DA_MAX_TRIES);
    // And the lockout cannot be cleared or loosened: its authorisation is taken.
    assert!(attacker
        .execute_with_session(Some(AuthSession::Password), |ctx| ctx
            .dictionary_attack_lock_reset(AuthHandle::Lockout))
        .is_err());
    assert!(attacker
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.dictionary_attack_parameters(AuthHandle::Lockout, 1000, 1, 1)
        })
        .is_err());
    let out = tpm.tool("tpm2_dictionarylockout", &["-c"]);
    assert!(!out.status.success(), "tpm2_dictionarylockout -c must be refused");
    // Even the right PIN is refused now (lockout), and P counts nothing for it.
    assert!(c.unlock(&vault, &PIN).is_err());
    let _ = chosen;
}

/// Every algorithm the TPM accepts (TPM2_TestParms): swtpm has all five
/// (ES256, ES384, ES512, RS256, PS256). Each key is the same kind of TPM
/// object, and signs.
#[test]
fn every_algorithm_the_tpm_has_makes_non_exportable_keys_that_sign() {
    use lp_core::custody::KeyCustody;
    let tpm = Swtpm::start();
    let mut c = tpm.open();
    assert_eq!(
        c.algorithms(),
        vec![
            Algorithm::Es256,
            Algorithm::Es384,
            Algorithm::Es512,
            Algorithm::Rs256,
            Algorithm::Ps256
        ]
    );
    let vault = c.create_vault(&PIN).unwrap();
    for alg in c.algorithms() {
        let key = c.create_credential(alg).unwrap();
        assert_eq!(key.public.algorithm(), alg);
        let a = lp_tpm::TpmCustody::public_attributes(&key.blob).unwrap();
        assert!(
            a.fixed_tpm && a.fixed_parent && a.sensitive_data_origin && a.sign && a.no_da && !a.decrypt,
            "{alg:?}"
        );
        signs(&mut c, &key);
        // A signature of one message does not verify for another.
        let sig = c.sign(&key.blob, b"one").unwrap();
        assert!(!key.public.verifies(b"two", &sig), "{alg:?}");
        c.lock();
        assert!(matches!(c.sign(&key.blob, b"one"), Err(TpmError::Locked)));
        c.unlock(&vault, &PIN).unwrap();
    }
}
