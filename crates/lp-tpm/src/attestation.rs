//! # Enterprise attestation — the attestation key (AK), read in one sitting
//!
//! An enterprise attestation says "this credential key lives in *this* TPM",
//! which an enterprise can check because its CA certified our AK after
//! TPM2_ActivateCredential proved that the AK and the TPM's endorsement key
//! (EK, certified by the TPM's manufacturer) are in the same TPM.
//!
//! ```text
//! endorsement hierarchy
//! └── EK   RSA-2048 from the TCG default template (EK Credential Profile
//!          B.3.3), re-created with TPM2_CreatePrimary when needed, never
//!          stored; its manufacturer certificate is at NV 0x01C00002.
//! owner hierarchy
//! └── primary
//!     └── V    the vault (lib.rs): usable only with R, which only the PIN unseals
//!         └── AK  ECC P-256, restricted | sign, ECDSA-SHA-256 fixed in the key,
//!                 fixedTPM | fixedParent | sensitiveDataOrigin, noDA, empty authValue.
//! ```
//!
//! Why the AK is a child of V: loading it needs V's policy, i.e. R, i.e. the
//! PIN. Whoever has the user's privileges but not the PIN cannot load the AK,
//! so cannot certify a key of their choosing; the blob on disk is useless
//! to them, and useless on any other TPM. The price: authenticatorReset
//! revokes V inside the TPM, and the AK with it, so a Reset ends the
//! enrolment (a factory reset makes the device anonymous again, which is
//! also what a person handing the machine on wants).
//!
//! Why restricted: a restricted signing key signs only data the TPM itself
//! produced (TPM2_Certify's TPMS_ATTEST, which starts with TPM_GENERATED),
//! never a digest we hand it. So the AK cannot be made to sign a forged
//! certification, and the CA can insist on `restricted` before certifying.
//!
//! Certified credential keys use the credential template with a NULL scheme
//! (the scheme is named at TPM2_Sign instead): WebAuthn verifiers read the
//! `pubArea` and refuse one with a scheme (python-fido2) or do not expect it.
//! Only the ECDSA algorithms get such a key: the curve alone names the
//! algorithm, where an RSA key with no scheme would not say RS256 or PS256.

use crate::support::{self, decode, encode, tpm2b_private, tpm2b_public, KEY_TAG};
use crate::{credential_attributes, matches_template, template, TpmCustody, TpmError};
use lp_core::custody::{Algorithm, NewKey, PublicKey};
use sha2::{Digest as _, Sha256};
use tss_esapi::{
    abstraction::{ek, AsymmetricAlgorithmSelection},
    attributes::{ObjectAttributes, ObjectAttributesBuilder, SessionAttributesBuilder},
    constants::{PropertyTag, SessionType},
    handles::{AuthHandle, KeyHandle, NvIndexTpmHandle, ObjectHandle, TpmHandle},
    interface_types::{
        algorithm::HashingAlgorithm,
        ecc::EccCurve,
        key_bits::RsaKeyBits,
        resource_handles::{Hierarchy, NvAuth},
        session_handles::{AuthSession, PolicySession},
    },
    structures::{
        Data, Digest, EccScheme, EncryptedSecret, HashScheme, IdObject, Public, PublicEccParametersBuilder,
        Signature, SignatureScheme, SymmetricDefinition,
    },
    traits::Marshall,
};
use zeroize::Zeroizing;

/// TCG EK Credential Profile 2.0 §2.2.1.4: the RSA-2048 EK certificate.
pub const RSA_EK_CERTIFICATE_NV_INDEX: u32 = 0x01C0_0002;

/// Tag of an attestation key blob: `"LPA\x01" || TPM2B_PUBLIC || TPM2B_PRIVATE`.
pub(crate) const AK_TAG: [u8; 4] = *b"LPA\x01";

/// AK attributes. restricted | sign: it signs only TPM-generated structures.
/// fixedTPM | fixedParent | sensitiveDataOrigin: made here, never leaves.
/// userWithAuth with an empty authValue: V is the gate. noDA: nothing to
/// guess, and a DA lockout (anyone can cause one) must not stop attestation.
fn attestation_key_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(false)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(false)
        .with_sign_encrypt(true)
        .build()?)
}

/// The AK's template: ECC P-256 with ECDSA-SHA-256 fixed in the key (a
/// restricted signing key names its scheme), SHA-256 Name, no policy.
pub fn attestation_key_template() -> Result<Public, TpmError> {
    let ecdsa = EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256));
    let params = PublicEccParametersBuilder::new()
        .with_ecc_scheme(ecdsa)
        .with_curve(EccCurve::NistP256)
        .with_is_signing_key(true)
        .with_is_decryption_key(false)
        .with_restricted(true)
        .with_key_derivation_function_scheme(tss_esapi::structures::KeyDerivationFunctionScheme::Null)
        .with_symmetric(tss_esapi::structures::SymmetricDefinitionObject::Null)
        .build()?;
    template(attestation_key_attributes()?, params, Digest::default())
}

/// A credential key a TPM2_Certify statement can describe: the credential
/// attributes, the curve of `alg`, and no scheme. None for RSA (see above).
pub fn certifiable_template(alg: Algorithm) -> Result<Option<Public>, TpmError> {
    let curve = match alg {
        Algorithm::Es256 => EccCurve::NistP256,
        Algorithm::Es384 => EccCurve::NistP384,
        Algorithm::Es512 => EccCurve::NistP521,
        Algorithm::Rs256 | Algorithm::Ps256 => return Ok(None),
    };
    // The builder refuses a signing key without a scheme, which the TPM
    // allows (Part 2, 12.2.3.6): its sign/decrypt hints only steer that
    // check and are not part of the parameters; the attributes say sign.
    let params = PublicEccParametersBuilder::new()
        .with_ecc_scheme(EccScheme::Null)
        .with_curve(curve)
        .with_is_signing_key(false)
        .with_is_decryption_key(false)
        .with_restricted(false)
        .with_symmetric(tss_esapi::structures::SymmetricDefinitionObject::Null)
        .with_key_derivation_function_scheme(tss_esapi::structures::KeyDerivationFunctionScheme::Null)
        .build()?;
    Ok(Some(template(
        credential_attributes(false)?,
        params,
        Digest::default(),
    )?))
}

/// The public side of an AK, as the enrolment request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationKeyPublic {
    /// TPMT_PUBLIC (no size prefix), as WebAuthn's `pubArea` is written.
    pub public_area: Vec<u8>,
    /// TPM Name: nameAlg (0x000B, SHA-256) || SHA-256(TPMT_PUBLIC).
    pub name: Vec<u8>,
    /// The P-256 point, 32 bytes each.
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

/// What the TPM says about itself, for the enterprise CA's certificate (TCG
/// subject alternative name attributes); self-reported by the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmIdentity {
    /// TPM_PT_MANUFACTURER, e.g. 0x49424D00 ("IBM").
    pub manufacturer: u32,
    /// TPM_PT_VENDOR_STRING_1..4.
    pub model: String,
    /// TPM_PT_FIRMWARE_VERSION_1 and _2.
    pub firmware: (u32, u32),
}

/// What TPM2_Certify returned for one credential key.
#[derive(Debug, Clone)]
pub struct Certified {
    /// TPMS_ATTEST as the TPM signed it.
    pub cert_info: Vec<u8>,
    /// ASN.1 DER ECDSA signature by the AK over `cert_info`.
    pub signature: Vec<u8>,
    /// The certified key's TPMT_PUBLIC (no size prefix).
    pub public_area: Vec<u8>,
}

/// The public side of an AK blob, refusing anything not made from our template.
pub fn attestation_key_public(blob: &[u8]) -> Result<AttestationKeyPublic, TpmError> {
    let (public, _) = decode(AK_TAG, blob)?;
    if !matches_template(&public, &[attestation_key_template()?]) {
        return Err(TpmError::InvalidBlob);
    }
    let Public::Ecc { unique, .. } = &public else {
        return Err(TpmError::InvalidBlob);
    };
    let public_area = public.marshall()?;
    let name = [&[0x00, 0x0B][..], &Sha256::digest(&public_area)].concat();
    Ok(AttestationKeyPublic {
        x: support::left_pad(unique.x().value(), Algorithm::Es256)?,
        y: support::left_pad(unique.y().value(), Algorithm::Es256)?,
        public_area,
        name,
    })
}

impl TpmCustody {
    /// Make an AK under the unlocked vault; returns its blob (store it 0600).
    pub fn create_attestation_key(&mut self) -> Result<Vec<u8>, TpmError> {
        let template = attestation_key_template()?;
        let made =
            self.vault_command(|ctx, vault| ctx.create(vault, template.clone(), None, None, None, None))?;
        Ok(encode(
            AK_TAG,
            &tpm2b_public(&made.out_public)?,
            &tpm2b_private(&made.out_private),
        ))
    }

    /// A credential key for `alg` that [`TpmCustody::certify`] can describe
    /// (NULL scheme; ECDSA algorithms only), under the unlocked vault.
    pub fn create_certifiable_credential(&mut self, alg: Algorithm) -> Result<NewKey, TpmError> {
        let template = certifiable_template(alg)?
            .filter(|_| self.algorithms.contains(&alg))
            .ok_or_else(|| TpmError::Tss(format!("no certifiable {alg:?} key on this TPM")))?;
        let made =
            self.vault_command(|ctx, vault| ctx.create(vault, template.clone(), None, None, None, None))?;
        let Public::Ecc { unique, .. } = &made.out_public else {
            return Err(TpmError::Tss("TPM2_Create returned another kind of key".into()));
        };
        let public = PublicKey::Ec2 {
            alg,
            x: support::left_pad(unique.x().value(), alg)?,
            y: support::left_pad(unique.y().value(), alg)?,
        };
        let blob = encode(
            KEY_TAG,
            &tpm2b_public(&made.out_public)?,
            &tpm2b_private(&made.out_private),
        );
        Ok(NewKey { blob, public })
    }

    /// The RSA EK's certificate (DER) from NV 0x01C00002, as the TPM's
    /// manufacturer (or whoever provisioned it) wrote it.
    pub fn endorsement_certificate(&mut self) -> Result<Vec<u8>, TpmError> {
        let index = NvIndexTpmHandle::new(RSA_EK_CERTIFICATE_NV_INDEX)?;
        let handle = self
            .ctx
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(index)))
            .map_err(|_| {
                TpmError::Tss(format!(
                    "this TPM has no RSA endorsement key certificate at NV {RSA_EK_CERTIFICATE_NV_INDEX:#010x}"
                ))
            })?;
        let read = self.ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
            tss_esapi::abstraction::nv::read_full(ctx, NvAuth::NvIndex(handle.into()), index)
        });
        let mut h = handle;
        let _ = self.ctx.tr_close(&mut h);
        let mut der = read?;
        // Some TPMs pad the index: a DER SEQUENCE says its own length.
        if let Some(len) = der_length(&der) {
            der.truncate(len);
        }
        Ok(der)
    }

    /// The TPM's manufacturer, model and firmware properties.
    pub fn identity(&mut self) -> Result<TpmIdentity, TpmError> {
        let mut get = |tag| support::property(&mut self.ctx, tag).map(|v| v.unwrap_or(0));
        let manufacturer = get(PropertyTag::Manufacturer)?;
        let mut model = String::new();
        for tag in [
            PropertyTag::VendorString1,
            PropertyTag::VendorString2,
            PropertyTag::VendorString3,
            PropertyTag::VendorString4,
        ] {
            model += &support::ascii(get(tag)?);
        }
        let firmware = (
            get(PropertyTag::FirmwareVersion1)?,
            get(PropertyTag::FirmwareVersion2)?,
        );
        Ok(TpmIdentity {
            manufacturer,
            model: model
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string(),
            firmware,
        })
    }

    /// TPM2_ActivateCredential: the secret the enterprise CA bound to our
    /// EK and to this AK's Name. The TPM answers only if it holds both the
    /// EK (which decrypts `secret`) and an AK with exactly that Name (the
    /// integrity HMAC covers it). `credential_blob` and `secret` are the
    /// bodies of TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET. The vault must
    /// be unlocked (the AK loads under V).
    pub fn activate_credential(
        &mut self,
        attestation_key: &[u8],
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let blob = IdObject::try_from(credential_blob.to_vec())?;
        let secret = EncryptedSecret::try_from(secret.to_vec())?;
        self.with_primary_parked(|s| {
            let ak = s.load_attestation_key(attestation_key)?;
            let activated = s.activate_with_ek(ak, blob, secret);
            s.flush(ak.into());
            activated
        })
    }

    /// TPM2_Certify of a credential key by the AK, over `qualifying_data`
    /// (WebAuthn: the hash of authenticatorData || clientDataHash).
    pub fn certify(
        &mut self,
        attestation_key: &[u8],
        key_blob: &[u8],
        qualifying_data: &[u8],
    ) -> Result<Certified, TpmError> {
        let (public, _) = decode(KEY_TAG, key_blob)?;
        let templates: Vec<Public> = Algorithm::ALL
            .into_iter()
            .filter_map(|alg| certifiable_template(alg).transpose())
            .collect::<Result<_, _>>()?;
        if !matches_template(&public, &templates) {
            return Err(TpmError::InvalidBlob);
        }
        let data = Data::try_from(qualifying_data.to_vec())?;
        let public_area = public.marshall()?;
        let (attest, signature) = self.with_primary_parked(|s| {
            let ak = s.load_attestation_key(attestation_key)?;
            let certified = s.loaded_key(KEY_TAG, &templates, key_blob).and_then(|key| {
                let data = data.clone();
                s.ctx
                    .execute_with_sessions(
                        (Some(AuthSession::Password), Some(AuthSession::Password), None),
                        |ctx| ctx.certify(ObjectHandle::from(key), ak, data, SignatureScheme::Null),
                    )
                    .map_err(TpmError::from)
            });
            s.flush(ak.into());
            s.release_keys();
            certified
        })?;
        let Signature::EcDsa(sig) = signature else {
            return Err(TpmError::Tss(
                "TPM2_Certify returned another kind of signature".into(),
            ));
        };
        let r = support::left_pad(sig.signature_r().value(), Algorithm::Es256)?;
        let s = support::left_pad(sig.signature_s().value(), Algorithm::Es256)?;
        Ok(Certified {
            cert_info: attest.marshall()?,
            signature: support::ecdsa_der(Algorithm::Es256, &r, &s)?,
            public_area,
        })
    }

    /// TPM2_Load of the AK under V (V's policy: the vault must be unlocked).
    fn load_attestation_key(&mut self, blob: &[u8]) -> Result<KeyHandle, TpmError> {
        let (public, private) = decode(AK_TAG, blob)?;
        if !matches_template(&public, &[attestation_key_template()?]) {
            return Err(TpmError::InvalidBlob);
        }
        self.vault_command(|ctx, vault| ctx.load(vault, private.clone(), public.clone()))
    }

    /// Re-create the EK, authorise it with PolicySecret(TPM_RH_ENDORSEMENT)
    /// (its policy in the TCG template), and run TPM2_ActivateCredential.
    /// The AK is authorised through our salted session, which also
    /// encrypts the recovered credential on its way back.
    fn activate_with_ek(
        &mut self,
        ak: KeyHandle,
        blob: IdObject,
        secret: EncryptedSecret,
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let template = ek::create_ek_public_from_default_template_2(
            AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            None,
        )?;
        let ek = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
            })
            .map_err(|e| TpmError::Tss(format!("cannot re-create the endorsement key: {e}")))?
            .key_handle;
        let session = self.ctx.execute_without_session(|ctx| {
            ctx.start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
        });
        let session = match session {
            Ok(Some(s)) => s,
            Ok(None) | Err(_) => {
                self.flush(ek.into());
                return Err(TpmError::Tss("TPM2_StartAuthSession for the EK failed".into()));
            }
        };
        let (attrs, mask) = SessionAttributesBuilder::new().build();
        let hmac = self.session;
        let result = self
            .ctx
            .tr_sess_set_attributes(session, attrs, mask)
            .and_then(|()| {
                let ps = PolicySession::try_from(session)?;
                self.ctx
                    .execute_with_session(Some(AuthSession::Password), |ctx| {
                        ctx.policy_secret(
                            ps,
                            AuthHandle::Endorsement,
                            Default::default(),
                            Default::default(),
                            Default::default(),
                            None,
                        )
                    })?;
                self.ctx
                    .execute_with_sessions((Some(hmac), Some(session), None), |ctx| {
                        ctx.activate_credential(ak, ek, blob, secret)
                    })
            });
        let ps: tss_esapi::handles::SessionHandle = session.into();
        self.flush(ps.into());
        self.flush(ek.into());
        match result {
            Ok(credential) => Ok(Zeroizing::new(credential.value().to_vec())),
            Err(e) => Err(TpmError::Tss(format!(
                "TPM2_ActivateCredential refused the enrolment answer ({e}): it was made for \
                 another TPM's endorsement key or for another attestation key"
            ))),
        }
    }

    /// Run `op` with our primary swapped out of the TPM (TPM2_ContextSave,
    /// then flushed, loaded back after). A TPM guarantees 3 object slots and
    /// the kernel's resource manager gives each process no more: certifying
    /// needs V, the AK and the credential key at once, activation V, the AK
    /// and the EK, and none of them needs the primary loaded.
    fn with_primary_parked<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, TpmError>,
    ) -> Result<T, TpmError> {
        self.flush_cache();
        let parked = self.ctx.context_save(self.primary.into())?;
        self.flush(self.primary.into());
        let out = op(self);
        match self.ctx.context_load(parked) {
            Ok(handle) => self.primary = handle.into(),
            Err(e) => {
                tracing::warn!("could not load our primary back ({e}): re-creating it");
                self.rebuild()?;
            }
        }
        out
    }
}

/// The length of the DER element at the start of `der` (tag and length
/// octets included), if it says one.
fn der_length(der: &[u8]) -> Option<usize> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some(2 + first as usize);
    }
    let n = (first & 0x7F) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let len = der
        .get(2..2 + n)?
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
    (2 + n + len <= der.len()).then_some(2 + n + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_length_reads_short_and_long_forms() {
        assert_eq!(der_length(&[0x30, 0x03, 1, 2, 3, 0xFF, 0xFF]), Some(5));
        let mut long = vec![0x30, 0x82, 0x01, 0x00];
        long.extend(vec![0; 0x100 + 10]);
        assert_eq!(der_length(&long), Some(4 + 0x100));
        assert_eq!(der_length(&[0x30, 0x82, 0x01]), None);
        assert_eq!(der_length(&[0x30]), None);
    }

    #[test]
    fn the_ak_template_is_a_restricted_signing_key_bound_to_this_tpm() {
        let a = attestation_key_template().unwrap().object_attributes();
        assert!(a.fixed_tpm() && a.fixed_parent() && a.sensitive_data_origin());
        assert!(a.restricted() && a.sign_encrypt() && !a.decrypt());
        assert!(a.no_da() && a.user_with_auth() && !a.admin_with_policy());
    }

    #[test]
    fn only_ecdsa_keys_are_certifiable() {
        for alg in [Algorithm::Es256, Algorithm::Es384, Algorithm::Es512] {
            assert!(certifiable_template(alg).unwrap().is_some());
        }
        for alg in [Algorithm::Rs256, Algorithm::Ps256] {
            assert!(certifiable_template(alg).unwrap().is_none());
        }
    }
}
