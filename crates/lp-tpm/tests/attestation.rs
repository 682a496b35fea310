//! The attestation key on a real swtpm: made under the vault, activated
//! with TPM2_MakeCredential output bound to the EK and its Name, certifying
//! credential keys; and refused whenever the vault is locked, whatever an
//! attacker with the blob and the user's privileges does.

use lp_core::custody::{Algorithm, KeyCustody, PublicKey};
use lp_tpm::attestation::{attestation_key_public, AttestationKeyPublic};
use lp_tpm::TpmError;
use tss_esapi::abstraction::{ek, AsymmetricAlgorithmSelection};
use tss_esapi::interface_types::{
    key_bits::RsaKeyBits, resource_handles::Hierarchy, session_handles::AuthSession,
};
use tss_esapi::structures::{Digest, Name, Private, Public};
use tss_esapi::traits::UnMarshall;

mod common;
use common::Swtpm;

const PIN: [u8; 32] = [7; 32];

/// What the enterprise CA does, done by the same TPM: TPM2_MakeCredential
/// to the EK's public key, bound to `ak`'s Name. Needs a free object slot:
/// call with the custody locked.
fn make_credential(tpm: &Swtpm, ak: &AttestationKeyPublic, credential: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut ctx = tpm.raw();
    let template = ek::create_ek_public_from_default_template_2(
        AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        None,
    )
    .unwrap();
    let ek = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
        })
        .unwrap()
        .key_handle;
    let (blob, secret) = ctx
        .execute_without_session(|ctx| {
            ctx.make_credential(
                ek,
                Digest::try_from(credential.to_vec()).unwrap(),
                Name::try_from(ak.name.clone()).unwrap(),
            )
        })
        .unwrap();
    ctx.flush_context(ek.into()).unwrap();
    (blob.value().to_vec(), secret.value().to_vec())
}

#[test]
fn the_ak_activates_the_credential_made_for_it_and_certifies_keys() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault_blob = KeyCustody::create_vault(&mut custody, &PIN).unwrap();
    let ak = custody.create_attestation_key().unwrap();
    let other_ak = custody.create_attestation_key().unwrap();
    let public = attestation_key_public(&ak).unwrap();
    assert_eq!(public.name.len(), 34);
    assert_eq!(&public.name[..2], &[0x00, 0x0B]);

    KeyCustody::lock(&mut custody);
    let (blob, secret) = make_credential(&tpm, &public, &[0x5A; 32]);
    let other = attestation_key_public(&other_ak).unwrap();
    let (other_blob, other_secret) = make_credential(&tpm, &other, &[0x33; 32]);

    // Locked: the AK does not load, so nothing activates.
    assert!(matches!(
        custody.activate_credential(&ak, &blob, &secret),
        Err(TpmError::Locked)
    ));
    KeyCustody::unlock(&mut custody, &vault_blob, &PIN).unwrap();
    let got = custody.activate_credential(&ak, &blob, &secret).unwrap();
    assert_eq!(&got[..], &[0x5A; 32]);
    // A credential bound to another AK's Name: the TPM refuses it.
    assert!(custody
        .activate_credential(&ak, &other_blob, &other_secret)
        .is_err());
    // Corrupted: refused too.
    let mut bad = blob.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(custody.activate_credential(&ak, &bad, &secret).is_err());

    // Certify a credential key: TPMS_ATTEST of type CERTIFY over our
    // qualifying data, signed by the AK.
    let key = KeyCustody::create_certifiable_key(&mut custody, Algorithm::Es256)
        .unwrap()
        .expect("ES256 is certifiable");
    let qualifying = [0xC3u8; 32];
    let c = KeyCustody::certify(&mut custody, &ak, &key.blob, &qualifying).unwrap();
    assert_eq!(&c.cert_info[..4], b"\xffTCG");
    assert_eq!(&c.cert_info[4..6], &[0x80, 0x17], "TPM_ST_ATTEST_CERTIFY");
    let signer = u16::from_be_bytes([c.cert_info[6], c.cert_info[7]]) as usize;
    let extra = 8 + signer;
    let len = u16::from_be_bytes([c.cert_info[extra], c.cert_info[extra + 1]]) as usize;
    assert_eq!(&c.cert_info[extra + 2..extra + 2 + len], &qualifying);
    let ak_key = PublicKey::Ec2 {
        alg: Algorithm::Es256,
        x: public.x.clone(),
        y: public.y.clone(),
    };
    assert!(ak_key.verifies(&c.cert_info, &c.signature), "the AK's signature");
    // pubArea is the certified key's, with a NULL scheme.
    let pub_area = Public::unmarshall(&c.public_area).unwrap();
    let Public::Ecc { parameters, .. } = &pub_area else {
        panic!("an ECC key")
    };
    assert_eq!(parameters.ecc_scheme(), tss_esapi::structures::EccScheme::Null);
    // The certified key still signs as ES256 keys do.
    let sig = KeyCustody::sign(&mut custody, &key.blob, b"message").unwrap();
    assert!(key.public.verifies(b"message", &sig));
    // RSA keys are not certifiable: the normal attestation for them.
    assert!(KeyCustody::create_certifiable_key(&mut custody, Algorithm::Rs256)
        .unwrap()
        .is_none());
    // An ordinary credential key is not certified either.
    let plain = KeyCustody::create_key(&mut custody, Algorithm::Es256).unwrap();
    assert!(KeyCustody::certify(&mut custody, &ak, &plain.blob, &qualifying).is_err());

    // Locked again: no certification, in this process or a new one.
    KeyCustody::lock(&mut custody);
    assert!(KeyCustody::certify(&mut custody, &ak, &key.blob, &qualifying).is_err());
    drop(custody);
    let mut fresh = tpm.open();
    assert!(KeyCustody::certify(&mut fresh, &ak, &key.blob, &qualifying).is_err());
}

/// Take a TPM2B off the front of `bytes`.
fn tpm2b(bytes: &[u8]) -> (&[u8], &[u8]) {
    let len = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    (&bytes[..2 + len], &bytes[2 + len..])
}

/// An attacker with the user's privileges and every blob, but not the PIN,
/// drives the TPM directly: the primary is easily re-created and V loads
/// (loading needs only the primary), but the AK's parent is V, and V
/// authorises nothing without R: no password, no policy without R.
#[test]
fn without_the_pin_the_ak_never_loads() {
    let tpm = Swtpm::start();
    let mut custody = tpm.open();
    let vault = KeyCustody::create_vault(&mut custody, &PIN).unwrap();
    let ak = custody.create_attestation_key().unwrap();
    drop(custody);

    // Format 2 of the vault blob: tag, P C E, epoch, legacy, V's areas.
    assert_eq!(&vault[..4], b"LPV\x02");
    let (v_pub, rest) = tpm2b(&vault[4 + 12 + 8 + 1..]);
    let (v_priv, _) = tpm2b(rest);
    let (ak_pub, rest) = tpm2b(&ak[4..]);
    let (ak_priv, _) = tpm2b(rest);

    let mut ctx = tpm.raw();
    let primary = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.create_primary(
                Hierarchy::Owner,
                lp_tpm::primary_template().unwrap(),
                None,
                None,
                None,
                None,
            )
        })
        .unwrap()
        .key_handle;
    let parse_pub =
        |b: &[u8]| Public::try_from(tss_esapi::structures::PublicBuffer::unmarshall(b).unwrap()).unwrap();
    let parse_priv = |b: &[u8]| Private::try_from(b[2..].to_vec()).unwrap();
    // The AK under the primary: not its parent, refused.
    assert!(ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.load(primary, parse_priv(ak_priv), parse_pub(ak_pub))
        })
        .is_err());
    let v = ctx
        .execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.load(primary, parse_priv(v_priv), parse_pub(v_pub))
        })
        .expect("V itself loads");
    // V with a password session (any guess of R): userWithAuth is clear.
    for guess in [&[][..], &[0u8; 32][..]] {
        ctx.tr_set_auth(
            v.into(),
            tss_esapi::structures::Auth::try_from(guess.to_vec()).unwrap(),
        )
        .unwrap();
        assert!(ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.load(v, parse_priv(ak_priv), parse_pub(ak_pub))
            })
            .is_err());
    }
}

#[test]
fn an_ak_blob_does_not_load_on_another_tpm() {
    let first = Swtpm::start();
    let mut custody = first.open();
    KeyCustody::create_vault(&mut custody, &PIN).unwrap();
    let ak = custody.create_attestation_key().unwrap();
    let key = KeyCustody::create_certifiable_key(&mut custody, Algorithm::Es256)
        .unwrap()
        .unwrap();
    drop(custody);

    let second = Swtpm::start();
    let mut other = second.open();
    KeyCustody::create_vault(&mut other, &PIN).unwrap();
    let own_key = KeyCustody::create_certifiable_key(&mut other, Algorithm::Es256)
        .unwrap()
        .unwrap();
    assert!(KeyCustody::certify(&mut other, &ak, &own_key.blob, &[1; 32]).is_err());
    assert!(KeyCustody::certify(&mut other, &ak, &key.blob, &[1; 32]).is_err());
}
