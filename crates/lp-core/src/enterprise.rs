//! Enterprise attestation (CTAP 2.1 §7.1): what an enrolment is, where it
//! is kept, and when MakeCredential gives one (§6.1.2 step 9).
//!
//! An enrolment is the custody's attestation key (a TPM-wrapped blob, loadable
//! only under the unlocked vault), the certificate chain an enterprise CA
//! issued for it after TPM2_ActivateCredential, and the RP IDs the
//! enterprise named for vendor-facilitated enterprise attestation. Whether
//! enterprise attestation is *enabled* (GetInfo `ep`) is a separate flag,
//! set only by authenticatorConfig enableEnterpriseAttestation.

use crate::cbor::{self, int_map};
use crate::status::CtapError;
use ciborium::value::Value;

/// Keys in the store's meta table.
pub mod meta {
    /// The installed enrolment ([`super::Enrolment`]).
    pub const ENROLMENT: &str = "enterprise.enrolment";
    /// `[1]` once enableEnterpriseAttestation was received (GetInfo `ep` true).
    pub const ENABLED: &str = "enterprise.enabled";
    /// An attestation key made by `enterprise request`, waiting for its certificate.
    pub const PENDING_KEY: &str = "enterprise.pending_key";
    /// Everything authenticatorReset removes: Reset revokes the vault inside
    /// the TPM, and the attestation key (its child) with it.
    pub const ALL: [&str; 3] = [ENROLMENT, ENABLED, PENDING_KEY];
}

/// The most RP IDs an enrolment may name.
pub const MAX_RP_IDS: usize = 64;

/// An installed enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// The custody's attestation key blob.
    pub attestation_key: Vec<u8>,
    /// DER certificates: the attestation key's certificate first, then its
    /// issuers up to (not including) the enterprise root (WebAuthn `x5c`).
    pub certificates: Vec<Vec<u8>>,
    /// RP IDs that get enterprise attestation when the platform asks for
    /// the vendor-facilitated kind (enterpriseAttestation = 1).
    pub rp_ids: Vec<String>,
}

impl Enrolment {
    /// `{1: attestation key, 2: [certificates], 3: [RP IDs]}` in CBOR.
    pub fn to_bytes(&self) -> Vec<u8> {
        cbor::encode(&int_map([
            (1, Value::Bytes(self.attestation_key.clone())),
            (
                2,
                Value::Array(self.certificates.iter().cloned().map(Value::Bytes).collect()),
            ),
            (
                3,
                Value::Array(self.rp_ids.iter().cloned().map(Value::Text).collect()),
            ),
        ]))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CtapError> {
        let mut m = cbor::RequestMap::parse(bytes)?;
        let attestation_key = cbor::bytes(m.required(1)?)?;
        let certificates = cbor::array(m.required(2)?)?
            .into_iter()
            .map(cbor::bytes)
            .collect::<Result<Vec<_>, _>>()?;
        let rp_ids = cbor::array(m.required(3)?)?
            .into_iter()
            .map(cbor::text)
            .collect::<Result<Vec<_>, _>>()?;
        if certificates.is_empty() || rp_ids.len() > MAX_RP_IDS {
            return Err(CtapError::InvalidCbor);
        }
        Ok(Self {
            attestation_key,
            certificates,
            rp_ids,
        })
    }
}

/// What the authenticator's enterprise attestation state is, for §6.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability<'a> {
    /// authenticatorConfig enableEnterpriseAttestation was received.
    pub enabled: bool,
    /// The pre-configured RP IDs for vendor-facilitated attestation.
    pub rp_ids: &'a [String],
}

/// CTAP 2.1 §6.1.2 step 9: whether this MakeCredential returns an
/// enterprise attestation. `capability` is None when the authenticator is
/// not enterprise attestation capable (not enrolled).
///
/// 1. Not capable, or capable but disabled: CTAP1_ERR_INVALID_PARAMETER.
/// 2. A value other than 1 or 2: CTAP2_ERR_INVALID_OPTION.
/// 3. 1 (vendor-facilitated): enterprise attestation if the RP ID is on the
///    pre-configured list, else the normal attestation.
/// 4. 2 (platform-managed): enterprise attestation; the platform decided
///    that this RP may have it.
pub fn decide(
    requested: Option<u64>,
    capability: Option<Capability<'_>>,
    rp_id: &str,
) -> Result<bool, CtapError> {
    let Some(requested) = requested else {
        return Ok(false);
    };
    let capability = match capability {
        Some(c) if c.enabled => c,
        _ => return Err(CtapError::InvalidParameter),
    };
    match requested {
        1 => Ok(capability.rp_ids.iter().any(|r| r == rp_id)),
        2 => Ok(true),
        _ => Err(CtapError::InvalidOption),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed() -> Vec<String> {
        vec!["corp.example".to_string()]
    }

    /// §6.1.2 step 9.1: no enterprise attestation without the capability
    /// or while it is disabled, whatever value was sent.
    #[test]
    fn step_9_1_not_capable_or_disabled_is_invalid_parameter() {
        let rps = listed();
        let disabled = Capability {
            enabled: false,
            rp_ids: &rps,
        };
        for value in [0, 1, 2, 3, u64::MAX] {
            assert_eq!(
                decide(Some(value), None, "corp.example"),
                Err(CtapError::InvalidParameter)
            );
            assert_eq!(
                decide(Some(value), Some(disabled), "corp.example"),
                Err(CtapError::InvalidParameter)
            );
        }
    }

    /// §6.1.2 step 9.2: only 1 and 2 are values.
    #[test]
    fn step_9_2_other_values_are_invalid_option() {
        let rps = listed();
        let on = Capability {
            enabled: true,
            rp_ids: &rps,
        };
        for value in [0, 3, 255, u64::MAX] {
            assert_eq!(
                decide(Some(value), Some(on), "corp.example"),
                Err(CtapError::InvalidOption)
            );
        }
    }

    /// §6.1.2 step 9.3: vendor-facilitated only for the pre-configured RP IDs,
    /// the normal attestation for any other (no error).
    #[test]
    fn step_9_3_vendor_facilitated_only_for_listed_rp_ids() {
        let rps = listed();
        let on = Capability {
            enabled: true,
            rp_ids: &rps,
        };
        assert_eq!(decide(Some(1), Some(on), "corp.example"), Ok(true));
        for other in [
            "example.com",
            "sub.corp.example",
            "corp.example.evil",
            "CORP.EXAMPLE",
            "",
        ] {
            assert_eq!(decide(Some(1), Some(on), other), Ok(false), "{other}");
        }
        let none = Capability {
            enabled: true,
            rp_ids: &[],
        };
        assert_eq!(decide(Some(1), Some(none), "corp.example"), Ok(false));
    }

    /// §6.1.2 step 9.4: platform-managed for any RP the platform sends.
    #[test]
    fn step_9_4_platform_managed_for_any_rp() {
        let on = Capability {
            enabled: true,
            rp_ids: &[],
        };
        assert_eq!(decide(Some(2), Some(on), "anything.example"), Ok(true));
    }

    /// No enterpriseAttestation parameter: never an enterprise attestation,
    /// and never an error, enrolled or not.
    #[test]
    fn absent_parameter_is_the_normal_attestation() {
        let rps = listed();
        let on = Capability {
            enabled: true,
            rp_ids: &rps,
        };
        assert_eq!(decide(None, None, "corp.example"), Ok(false));
        assert_eq!(decide(None, Some(on), "corp.example"), Ok(false));
    }

    #[test]
    fn enrolment_round_trips_and_refuses_garbage() {
        let e = Enrolment {
            attestation_key: vec![1, 2, 3],
            certificates: vec![vec![0x30, 0x00], vec![0x30, 0x01, 0x00]],
            rp_ids: vec!["corp.example".into()],
        };
        assert_eq!(Enrolment::from_bytes(&e.to_bytes()).unwrap(), e);
        assert!(Enrolment::from_bytes(b"\xa0").is_err());
        assert!(Enrolment::from_bytes(b"").is_err());
        let no_certs = Enrolment {
            certificates: vec![],
            ..e
        };
        assert!(Enrolment::from_bytes(&no_certs.to_bytes()).is_err());
    }
}
