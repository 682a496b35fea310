//! `localpasskey enterprise`: enrolment of this TPM's attestation key with
//! an enterprise CA (docs/enterprise-attestation.md).
//!
//! 1. `request` checks the PIN (the same counters as clientPIN), makes an
//!    attestation key (AK) under the vault and writes a request: the TPM's
//!    EK certificate, the AK's public area and Name, the TPM's properties.
//! 2. The CA (`python -m lprp.attestation_ca issue`) checks the EK
//!    certificate against the TPM makers' roots and the AK's attributes, and
//!    answers with TPM2_MakeCredential output for the EK, bound to the AK's
//!    Name, whose credential is the AES-256-GCM key of the AK's certificate
//!    chain: only the TPM holding that EK *and* that AK can read it.
//! 3. `install` checks the PIN, runs TPM2_ActivateCredential, decrypts the
//!    chain, checks that the certificate is for our AK and says what
//!    WebAuthn §8.3.1 needs, and stores it with the RP IDs given.
//!
//! The daemon must be stopped meanwhile: both need the TPM's few object
//! slots (a software TPM has no resource manager), and the enrolment is read
//! by the daemon when it starts.

use crate::store_sqlite::SqliteStore;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{bail, ensure, Context, Result};
use base64ct::{Base64, Encoding};
use lp_core::enterprise::{meta, Enrolment, MAX_RP_IDS};
use lp_core::store::CredentialStore;
use lp_tpm::attestation::{attestation_key_public, AttestationKeyPublic};
use lp_tpm::TpmCustody;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use x509_cert::der::Decode;
use x509_cert::Certificate;

/// The `format` of a request and of the CA's response.
pub const REQUEST_FORMAT: &str = "localpasskey-enterprise-request-v1";
pub const RESPONSE_FORMAT: &str = "localpasskey-enterprise-response-v1";

/// tcg-kp-AIKCertificate (TCG EK Credential Profile; WebAuthn §8.3.1).
const OID_AIK_CERTIFICATE: &str = "2.23.133.8.3";
/// FIDO's id-fido-gen-ce-aaguid.
const OID_FIDO_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub format: String,
    pub aaguid: String,
    /// DER, base64.
    pub ek_certificate: String,
    pub attestation_key: RequestKey,
    pub tpm: RequestTpm,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestKey {
    /// TPMT_PUBLIC, base64.
    pub public_area: String,
    /// nameAlg || H(TPMT_PUBLIC), hex.
    pub name: String,
}

#[derive(Serialize, Deserialize)]
pub struct RequestTpm {
    /// TPM_PT_MANUFACTURER.
    pub manufacturer: u32,
    /// TPM_PT_VENDOR_STRING_1..4.
    pub model: String,
    /// TPM_PT_FIRMWARE_VERSION_1 and _2.
    pub firmware: [u32; 2],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    format: String,
    /// The AK this answer is for, hex.
    attestation_key_name: String,
    /// TPM2B_ID_OBJECT's body, base64.
    credential_blob: String,
    /// TPM2B_ENCRYPTED_SECRET's body, base64.
    secret: String,
    /// AES-256-GCM nonce (12 bytes), base64.
    nonce: String,
    /// AES-256-GCM of `{"x5c": [base64 DER, ...]}` under the activated
    /// credential, with the AK's Name as associated data, base64.
    encrypted_certificates: String,
}

#[derive(Deserialize)]
struct Chain {
    x5c: Vec<String>,
}

fn b64(bytes: &[u8]) -> String {
    Base64::encode_string(bytes)
}

fn unb64(what: &str, text: &str) -> Result<Vec<u8>> {
    Base64::decode_vec(text.trim()).map_err(|_| anyhow::anyhow!("{what} is not base64"))
}

/// The PIN, checked and counted as clientPIN counts it; the vault is left
/// unlocked in `tpm`.
fn unlock(store: &mut SqliteStore, tpm: &mut TpmCustody, pin: &str) -> Result<()> {
    lp_core::authenticator::unlock_with_pin(store, tpm, pin).map_err(|e| match e {
        lp_core::authenticator::ManageError::PinInvalid => anyhow::anyhow!("wrong PIN"),
        other => anyhow::anyhow!("the PIN was not accepted: {other}"),
    })
}

fn open_tpm(tcti: &str) -> Result<TpmCustody> {
    TpmCustody::open(tcti).map_err(|e| {
        anyhow::anyhow!(
            "cannot use the TPM at {tcti}: {e} (stop the daemon first: it holds the TPM; \
             `localpasskey doctor` says what else is wrong)"
        )
    })
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

pub fn request(store: &mut SqliteStore, tcti: &str, pin: &str, out: &Path) -> Result<()> {
    let mut tpm = open_tpm(tcti)?;
    let ek_certificate = tpm.endorsement_certificate()?;
    Certificate::from_der(&ek_certificate).context("the TPM's EK certificate does not parse")?;
    let identity = tpm.identity()?;
    unlock(store, &mut tpm, pin)?;
    let ak = tpm.create_attestation_key()?;
    tpm.lock();
    let public = attestation_key_public(&ak)?;
    store.set_meta(meta::PENDING_KEY, &ak)?;
    let request = Request {
        format: REQUEST_FORMAT.into(),
        aaguid: lp_core::AAGUID_TEXT.into(),
        ek_certificate: b64(&ek_certificate),
        attestation_key: RequestKey {
            public_area: b64(&public.public_area),
            name: hex::encode(&public.name),
        },
        tpm: RequestTpm {
            manufacturer: identity.manufacturer,
            model: identity.model,
            firmware: [identity.firmware.0, identity.firmware.1],
        },
    };
    write_private(out, &(serde_json::to_string_pretty(&request)? + "\n"))?;
    println!(
        "enrolment request written to {} (attestation key {}); give it to your enterprise CA, \
         then run `localpasskey enterprise install` with its answer",
        out.display(),
        hex::encode(&public.name)
    );
    Ok(())
}

/// An RP ID as WebAuthn has them: a lower-case host name.
fn check_rp_id(rp_id: &str) -> Result<()> {
    let ok = !rp_id.is_empty()
        && rp_id.len() <= 253
        && !rp_id.starts_with('.')
        && !rp_id.ends_with('.')
        && rp_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    ensure!(
        ok,
        "{rp_id:?} is not an RP ID (a lower-case host name such as example.com)"
    );
    Ok(())
}

pub fn install(
    store: &mut SqliteStore,
    tcti: &str,
    pin: &str,
    response: &Path,
    rp_ids: Vec<String>,
) -> Result<()> {
    ensure!(rp_ids.len() <= MAX_RP_IDS, "at most {MAX_RP_IDS} RP IDs");
    for rp in &rp_ids {
        check_rp_id(rp)?;
    }
    let text =
        std::fs::read_to_string(response).with_context(|| format!("cannot read {}", response.display()))?;
    let answer: Response =
        serde_json::from_str(&text).context("the enrolment answer is not the CA's JSON")?;
    ensure!(
        answer.format == RESPONSE_FORMAT,
        "the enrolment answer's format is {:?}, not {RESPONSE_FORMAT:?}",
        answer.format
    );
    let ak = store
        .get_meta(meta::PENDING_KEY)?
        .context("no enrolment request is waiting: run `localpasskey enterprise request` first")?;
    let public = attestation_key_public(&ak)?;
    ensure!(
        answer
            .attestation_key_name
            .trim()
            .eq_ignore_ascii_case(&hex::encode(&public.name)),
        "this answer is for attestation key {}, not for the one this device requested ({})",
        answer.attestation_key_name.trim(),
        hex::encode(&public.name)
    );
    let blob = unb64("credentialBlob", &answer.credential_blob)?;
    let secret = unb64("secret", &answer.secret)?;
    let nonce = unb64("nonce", &answer.nonce)?;
    let nonce: [u8; 12] = nonce
        .try_into()
        .map_err(|_| anyhow::anyhow!("the nonce is not 12 bytes"))?;
    let sealed = unb64("encryptedCertificates", &answer.encrypted_certificates)?;

    let mut tpm = open_tpm(tcti)?;
    unlock(store, &mut tpm, pin)?;
    let key = tpm.activate_credential(&ak, &blob, &secret);
    tpm.lock();
    let key = key?;
    ensure!(key.len() == 32, "the activated credential is not an AES-256 key");
    let plain = Aes256Gcm::new_from_slice(&key)
        .map_err(|_| anyhow::anyhow!("bad credential length"))?
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &sealed,
                aad: &public.name,
            },
        )
        .map_err(|_| anyhow::anyhow!("the certificates do not decrypt with the activated credential"))?;
    let chain: Chain =
        serde_json::from_slice(&plain).context("the decrypted certificates are not a chain")?;
    let certificates = chain
        .x5c
        .iter()
        .map(|c| unb64("a certificate", c))
        .collect::<Result<Vec<_>>>()?;
    ensure!(!certificates.is_empty(), "the chain is empty");
    check_aik_certificate(&certificates[0], &public)?;
    for (i, der) in certificates.iter().enumerate().skip(1) {
        Certificate::from_der(der).with_context(|| format!("certificate {i} of the chain does not parse"))?;
    }
    let enrolment = Enrolment {
        attestation_key: ak,
        certificates,
        rp_ids,
    };
    // The new enrolment starts disabled: only authenticatorConfig enables it.
    store.delete_meta(meta::ENABLED)?;
    store.set_meta(meta::ENROLMENT, &enrolment.to_bytes())?;
    store.delete_meta(meta::PENDING_KEY)?;
    println!(
        "enrolment installed: enterprise attestation for {} (disabled until the platform sends \
         authenticatorConfig enableEnterpriseAttestation)",
        if enrolment.rp_ids.is_empty() {
            "the RPs the platform names (platform-managed only)".to_string()
        } else {
            enrolment.rp_ids.join(", ")
        }
    );
    Ok(())
}

/// WebAuthn §8.3.1 (TPM attestation statement certificate requirements),
/// and that the certificate is for our AK: version 3, empty subject, a
/// critical subject alternative name, EKU tcg-kp-AIKCertificate, CA false,
/// and, if present, our AAGUID.
fn check_aik_certificate(der: &[u8], ak: &AttestationKeyPublic) -> Result<()> {
    use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};
    let cert = Certificate::from_der(der).context("the attestation key certificate does not parse")?;
    let tbs = &cert.tbs_certificate;
    ensure!(
        tbs.version == x509_cert::Version::V3,
        "the attestation key certificate is not X.509 version 3"
    );
    let point = [&[0x04][..], &ak.x, &ak.y].concat();
    let spki = &tbs.subject_public_key_info;
    ensure!(
        spki.algorithm.oid == x509_cert::der::oid::db::rfc5912::ID_EC_PUBLIC_KEY
            && spki.subject_public_key.raw_bytes() == point.as_slice(),
        "the certificate is for another key, not for this device's attestation key"
    );
    ensure!(
        tbs.subject.0.is_empty(),
        "the attestation key certificate's subject must be empty"
    );
    let exts = tbs.extensions.as_deref().unwrap_or_default();
    let find = |oid: &str| exts.iter().find(|e| e.extn_id.to_string() == oid);
    let san = find("2.5.29.17").context("the certificate has no subject alternative name")?;
    ensure!(san.critical, "the subject alternative name must be critical");
    let eku = find("2.5.29.37").context("the certificate has no extended key usage")?;
    let eku = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())?;
    ensure!(
        eku.0.iter().any(|o| o.to_string() == OID_AIK_CERTIFICATE),
        "the extended key usage lacks tcg-kp-AIKCertificate ({OID_AIK_CERTIFICATE})"
    );
    let bc = find("2.5.29.19").context("the certificate has no basic constraints")?;
    ensure!(
        !BasicConstraints::from_der(bc.extn_value.as_bytes())?.ca,
        "the attestation key certificate must not be a CA"
    );
    if let Some(aaguid) = find(OID_FIDO_AAGUID) {
        let value = x509_cert::der::asn1::OctetString::from_der(aaguid.extn_value.as_bytes())?;
        ensure!(
            value.as_bytes() == lp_core::AAGUID,
            "the certificate's AAGUID extension names another authenticator model"
        );
    }
    Ok(())
}

pub fn status(store: &SqliteStore, json: bool) -> Result<()> {
    let enrolment = match store.get_meta(meta::ENROLMENT)? {
        Some(b) => Some(
            Enrolment::from_bytes(&b)
                .map_err(|e| anyhow::anyhow!("the stored enrolment is damaged: {e:?}"))?,
        ),
        None => None,
    };
    let enabled = store.get_meta(meta::ENABLED)?.as_deref() == Some(&[1][..]);
    let pending = store.get_meta(meta::PENDING_KEY)?.is_some();
    let cert = enrolment
        .as_ref()
        .and_then(|e| e.certificates.first())
        .and_then(|d| Certificate::from_der(d).ok());
    let issuer = cert.as_ref().map(|c| c.tbs_certificate.issuer.to_string());
    let serial = cert
        .as_ref()
        .map(|c| hex::encode(c.tbs_certificate.serial_number.as_bytes()));
    let not_after = cert
        .as_ref()
        .map(|c| c.tbs_certificate.validity.not_after.to_string());
    if json {
        let v = serde_json::json!({
            "enrolled": enrolment.is_some(),
            "enabled": enrolment.is_some() && enabled,
            "pendingRequest": pending,
            "rpIds": enrolment.as_ref().map(|e| e.rp_ids.clone()).unwrap_or_default(),
            "certificates": enrolment.as_ref().map_or(0, |e| e.certificates.len()),
            "issuer": issuer,
            "serial": serial,
            "notAfter": not_after,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    match &enrolment {
        None => println!("Enterprise attestation: not enrolled (GetInfo has no `ep`)"),
        Some(e) => {
            println!(
                "Enterprise attestation: enrolled, {}",
                if enabled {
                    "enabled (ep: true)"
                } else {
                    "disabled (ep: false) until authenticatorConfig enableEnterpriseAttestation"
                }
            );
            println!(
                "RP IDs (vendor-facilitated): {}",
                if e.rp_ids.is_empty() {
                    "none".to_string()
                } else {
                    e.rp_ids.join(", ")
                }
            );
            println!("Certificate issuer: {}", issuer.unwrap_or_default());
            println!("Certificate serial: {}", serial.unwrap_or_default());
            println!("Valid until:        {}", not_after.unwrap_or_default());
        }
    }
    if pending {
        println!("A request is waiting for the CA's answer (`localpasskey enterprise install`).");
    }
    Ok(())
}

pub fn remove(store: &mut SqliteStore) -> Result<()> {
    if store.get_meta(meta::ENROLMENT)?.is_none() && store.get_meta(meta::PENDING_KEY)?.is_none() {
        bail!("not enrolled");
    }
    for key in meta::ALL {
        store.delete_meta(key)?;
    }
    println!("enrolment removed: this device gives no enterprise attestation any more");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rp_ids_are_host_names() {
        for ok in ["example.com", "corp.example", "a-b.c9"] {
            assert!(check_rp_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Example.com",
            "exa mple.com",
            ".example",
            "example.",
            "https://example.com",
        ] {
            assert!(check_rp_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_certificate_that_is_not_der_is_refused() {
        let ak = AttestationKeyPublic {
            public_area: vec![],
            name: vec![],
            x: vec![0; 32],
            y: vec![0; 32],
        };
        assert!(check_aik_certificate(b"not a certificate", &ak).is_err());
    }

    #[test]
    fn an_answer_missing_members_is_refused() {
        assert!(serde_json::from_str::<Response>("{\"format\": \"x\"}").is_err());
    }
}
