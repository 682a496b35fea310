//! The templates: every attribute bit we ask the TPM for, set or clear,
//! for the primary, the vault V, the seal S, the credential and HMAC keys
//! and the sealed data objects, and the check that a stored blob was made
//! from one of them. Part of the file set to read to check the promise
//! (see `lib.rs`).

use crate::gate::Policy;
use crate::TpmError;
use lp_core::custody::Algorithm;
use tss_esapi::{
    attributes::{ObjectAttributes, ObjectAttributesBuilder},
    interface_types::{
        algorithm::{HashingAlgorithm, PublicAlgorithm},
        ecc::EccCurve,
        key_bits::RsaKeyBits,
    },
    structures::{
        Digest, EccPoint, EccScheme, HashScheme, KeyedHashScheme, Public, PublicBuilder, PublicEccParameters,
        PublicEccParametersBuilder, PublicKeyRsa, PublicKeyedHashParameters, PublicRsaParameters,
        PublicRsaParametersBuilder, RsaExponent, RsaScheme, SymmetricDefinitionObject,
    },
};

/// Primary: the TCG "storage root key" shape. noDA because it has no
/// authValue to guess (so it must never lock anyone out).
pub(crate) fn primary_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(false)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .with_sign_encrypt(false)
        .build()?)
}

/// Vault V: a storage key usable only through its policy (userWithAuth
/// clear): the epoch counter must still hold its value, and R must be known.
/// adminWithPolicy set, with no admin command in the policy: V's authValue
/// can never be changed. noDA: R is 32 random bytes (nothing to guess), and a
/// DA lockout, which anyone can cause, must not stop the vault from loading.
pub(crate) fn vault_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(false)
        .with_admin_with_policy(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .with_sign_encrypt(false)
        .build()?)
}

/// The vault of installations made before the PIN index: its authValue was
/// the PIN itself, DA-protected, usable with that authValue. Such a vault is
/// still opened (with R, after migration), never created.
pub(crate) fn legacy_vault_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(false)
        .with_no_da(false)
        .with_restricted(true)
        .with_decrypt(true)
        .with_sign_encrypt(false)
        .build()?)
}

/// Seal S: a data object holding R. Policy only (userWithAuth clear),
/// adminWithPolicy set (its policy names only Unseal, so no admin command
/// works), DA-protected: this is where a guess that went around the PIN
/// index costs a dictionary-attack failure. sensitiveDataOrigin clear: we
/// give it R. Neither sign nor decrypt: a sealed data object.
pub(crate) fn seal_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(false)
        .with_user_with_auth(false)
        .with_admin_with_policy(true)
        .with_no_da(false)
        .with_restricted(false)
        .with_decrypt(false)
        .with_sign_encrypt(false)
        .build()?)
}

/// Credential: a plain signing key that can never leave this TPM.
/// fixedTPM | fixedParent: not duplicable, not even to another parent here.
/// sensitiveDataOrigin: the TPM generated the private key, we never had it.
/// sign only: no decrypt, not restricted (it signs WebAuthn data we hash).
/// noDA: its authValue is empty (V is the gate), and a DA lockout, which
/// anyone can cause, must not stop signing. `legacy` keys (made before the
/// PIN index) were DA-protected; they are still accepted.
pub(crate) fn credential_attributes(legacy: bool) -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_admin_with_policy(false)
        .with_no_da(!legacy)
        .with_restricted(false)
        .with_decrypt(false)
        .with_sign_encrypt(true)
        .build()?)
}

/// HMAC key (hmac-secret / PRF): exactly the credential key's bits, for
/// the same reasons. fixedTPM | fixedParent: the hmac-secret seed can never
/// be duplicated out, so a disk unlocked with it (systemd-cryptenroll) needs
/// this TPM. sensitiveDataOrigin: the TPM drew the HMAC key itself (we pass
/// no sensitive data, so nobody ever saw it). sign set, decrypt and
/// restricted clear: an unrestricted signing KeyedHash is what TPM2_HMAC
/// accepts; with decrypt it could also be a derivation parent, and without
/// sign it would be a sealed data object that TPM2_Unseal hands out.
pub(crate) fn hmac_attributes(legacy: bool) -> Result<ObjectAttributes, TpmError> {
    credential_attributes(legacy)
}

/// A small secret kept with a credential (credBlob, largeBlobKey), sealed
/// under V: a data object (neither sign nor decrypt) that only TPM2_Unseal
/// reads, and TPM2_Load under V needs V's policy, i.e. the verified user.
/// fixedTPM | fixedParent: it never leaves this TPM. Empty authValue (V is
/// the gate), noDA like the keys.
pub(crate) fn data_attributes() -> Result<ObjectAttributes, TpmError> {
    Ok(ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(false)
        .with_user_with_auth(true)
        .with_admin_with_policy(false)
        .with_no_da(true)
        .with_restricted(false)
        .with_decrypt(false)
        .with_sign_encrypt(false)
        .build()?)
}

/// ECC P-256, AES-128-CFB for wrapping children (the most widely supported).
pub(crate) fn storage_parameters() -> Result<PublicEccParameters, TpmError> {
    Ok(PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()?)
}

/// ECC P-256, ECDSA with SHA-256 only (WebAuthn ES256).
pub(crate) fn credential_parameters() -> Result<PublicEccParameters, TpmError> {
    let ecdsa_sha256 = EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256));
    Ok(PublicEccParametersBuilder::new_unrestricted_signing_key(ecdsa_sha256, EccCurve::NistP256).build()?)
}

/// ECC P-384, ECDSA with SHA-384 only (WebAuthn ES384).
pub(crate) fn p384_parameters() -> Result<PublicEccParameters, TpmError> {
    let ecdsa_sha384 = EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha384));
    Ok(PublicEccParametersBuilder::new_unrestricted_signing_key(ecdsa_sha384, EccCurve::NistP384).build()?)
}

/// ECC P-521, ECDSA with SHA-512 only (WebAuthn ES512).
pub(crate) fn p521_parameters() -> Result<PublicEccParameters, TpmError> {
    let ecdsa_sha512 = EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha512));
    Ok(PublicEccParametersBuilder::new_unrestricted_signing_key(ecdsa_sha512, EccCurve::NistP521).build()?)
}

/// RSA-2048, RSASSA-PKCS1-v1_5 with SHA-256 only (WebAuthn RS256), the
/// default exponent 65537.
pub(crate) fn rsa_parameters() -> Result<PublicRsaParameters, TpmError> {
    rsa_parameters_with(RsaScheme::RsaSsa(HashScheme::new(HashingAlgorithm::Sha256)))
}

/// RSA-2048, RSASSA-PSS with SHA-256 only (WebAuthn PS256).
pub(crate) fn rsa_pss_parameters() -> Result<PublicRsaParameters, TpmError> {
    rsa_parameters_with(RsaScheme::RsaPss(HashScheme::new(HashingAlgorithm::Sha256)))
}

pub(crate) fn rsa_parameters_with(scheme: RsaScheme) -> Result<PublicRsaParameters, TpmError> {
    Ok(PublicRsaParametersBuilder::new_unrestricted_signing_key(
        scheme,
        RsaKeyBits::Rsa2048,
        RsaExponent::default(),
    )
    .build()?)
}

/// An ECC template: SHA-256 names, the given policy, empty `unique` (so the
/// primary is the same key at every CreatePrimary).
pub(crate) fn template(
    attrs: ObjectAttributes,
    params: PublicEccParameters,
    policy: Digest,
) -> Result<Public, TpmError> {
    Ok(PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_auth_policy(policy)
        .with_ecc_parameters(params)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()?)
}

/// A KeyedHash template (HMAC-SHA-256 key, or a sealed data object).
pub(crate) fn keyed_hash(
    attrs: ObjectAttributes,
    scheme: KeyedHashScheme,
    policy: Digest,
) -> Result<Public, TpmError> {
    Ok(PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_auth_policy(policy)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(scheme))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()?)
}

/// The templates, public so tools and the benchmark can print or reuse them.
pub fn primary_template() -> Result<Public, TpmError> {
    template(primary_attributes()?, storage_parameters()?, Digest::default())
}
/// V, bound to this epoch policy (see `gate::vault_policy`).
pub(crate) fn vault_template(policy: &Policy) -> Result<Public, TpmError> {
    template(vault_attributes()?, storage_parameters()?, policy.digest()?)
}
pub(crate) fn legacy_vault_template() -> Result<Public, TpmError> {
    template(
        legacy_vault_attributes()?,
        storage_parameters()?,
        Digest::default(),
    )
}
/// S, bound to this seal policy (see `gate::seal_policy`). No scheme: a data object.
pub(crate) fn seal_template(policy: &Policy) -> Result<Public, TpmError> {
    keyed_hash(seal_attributes()?, KeyedHashScheme::Null, policy.digest()?)
}
pub fn credential_template() -> Result<Public, TpmError> {
    template(
        credential_attributes(false)?,
        credential_parameters()?,
        Digest::default(),
    )
}
/// The credential key for `alg`: the same attributes for every algorithm,
/// and the one signing scheme the algorithm names fixed in the key.
pub fn credential_template_for(alg: Algorithm) -> Result<Public, TpmError> {
    let ecc = |params| template(credential_attributes(false)?, params, Digest::default());
    let rsa = |params| -> Result<Public, TpmError> {
        Ok(PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Rsa)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(credential_attributes(false)?)
            .with_auth_policy(Digest::default())
            .with_rsa_parameters(params)
            .with_rsa_unique_identifier(PublicKeyRsa::default())
            .build()?)
    };
    match alg {
        Algorithm::Es256 => credential_template(),
        Algorithm::Es384 => ecc(p384_parameters()?),
        Algorithm::Es512 => ecc(p521_parameters()?),
        Algorithm::Rs256 => rsa(rsa_parameters()?),
        Algorithm::Ps256 => rsa(rsa_pss_parameters()?),
    }
}

/// Which algorithm a credential key's public area was made for, if it is
/// one of ours at all (a key of the first release is ES256).
pub(crate) fn credential_algorithm(public: &Public) -> Result<Option<Algorithm>, TpmError> {
    if matches_template(public, &[legacy_credential_template()?]) {
        return Ok(Some(Algorithm::Es256));
    }
    for alg in Algorithm::ALL {
        let certifiable = crate::attestation::certifiable_template(alg)?;
        if matches_template(public, &[credential_template_for(alg)?])
            || certifiable.is_some_and(|t| matches_template(public, &[t]))
        {
            return Ok(Some(alg));
        }
    }
    Ok(None)
}
pub(crate) fn legacy_credential_template() -> Result<Public, TpmError> {
    template(
        credential_attributes(true)?,
        credential_parameters()?,
        Digest::default(),
    )
}
/// KeyedHash with the HMAC scheme fixed to SHA-256 (TPM2_HMAC refuses any
/// other hash with it), SHA-256 name, no policy, empty `unique`.
pub fn hmac_template() -> Result<Public, TpmError> {
    keyed_hash(
        hmac_attributes(false)?,
        KeyedHashScheme::HMAC_SHA_256,
        Digest::default(),
    )
}
pub(crate) fn data_template() -> Result<Public, TpmError> {
    keyed_hash(data_attributes()?, KeyedHashScheme::Null, Digest::default())
}
pub(crate) fn legacy_hmac_template() -> Result<Public, TpmError> {
    keyed_hash(
        hmac_attributes(true)?,
        KeyedHashScheme::HMAC_SHA_256,
        Digest::default(),
    )
}

/// True if a stored public area was made from one of `templates`
/// (everything but the key itself, the policy included). We refuse to load
/// anything else, so a planted blob with other attributes or a weaker policy
/// (say, a V that needs no epoch) is never used. The TPM binds the public
/// area to the private part, so the attributes we check are real.
pub(crate) fn matches_template(public: &Public, templates: &[Public]) -> bool {
    templates.iter().any(|t| {
        let mut t = t.clone();
        match (public, &mut t) {
            (Public::Ecc { unique, .. }, Public::Ecc { unique: u, .. }) => *u = unique.clone(),
            (Public::KeyedHash { unique, .. }, Public::KeyedHash { unique: u, .. }) => *u = unique.clone(),
            (Public::Rsa { unique, .. }, Public::Rsa { unique: u, .. }) => *u = unique.clone(),
            _ => {}
        }
        *public == t
    })
}
