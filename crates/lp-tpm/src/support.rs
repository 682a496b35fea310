//! Plumbing that holds no promise of its own: the on-disk blob format, the
//! mapping of TPM response codes to our errors, and capability queries.
//! The promise (templates, hierarchy, sessions) is in `lib.rs`.

use crate::TpmError;
use lp_core::custody::Algorithm;
use tss_esapi::{
    constants::{response_code::Tss2ResponseCode, CapabilityType, PropertyTag},
    structures::{CapabilityData, Private, Public, PublicBuffer},
    traits::{Marshall, UnMarshall},
    Context,
};

// ---------------------------------------------------------------------------
// Blob format
// ---------------------------------------------------------------------------

/// Tag of a credential key blob, format version 1.
pub(crate) const KEY_TAG: [u8; 4] = *b"LPK\x01";
/// Tag of an HMAC key blob (hmac-secret), format version 1.
pub(crate) const HMAC_TAG: [u8; 4] = *b"LPH\x01";
/// Tag of a small secret sealed under the vault (credBlob, largeBlobKey).
pub(crate) const DATA_TAG: [u8; 4] = *b"LPD\x01";
/// Tag of a vault blob, format version 1.
pub(crate) const VAULT_TAG: [u8; 4] = *b"LPV\x01";

/// `tag || TPM2B_PUBLIC || TPM2B_PRIVATE` — the same two structures
/// tpm2-tools writes, so a blob can be inspected with `tpm2_print`.
/// The private part is encrypted and integrity-protected by the parent
/// key inside the TPM; we never see the key it wraps.
pub(crate) fn encode(tag: [u8; 4], public: &[u8], private: &[u8]) -> Vec<u8> {
    [&tag[..], public, private].concat()
}

/// Marshal a public area as TPM2B_PUBLIC.
pub(crate) fn tpm2b_public(public: &Public) -> Result<Vec<u8>, TpmError> {
    Ok(PublicBuffer::try_from(public.clone())?.marshall()?)
}

/// Marshal a private area as TPM2B_PRIVATE (a big-endian u16 size, then the bytes).
pub(crate) fn tpm2b_private(private: &Private) -> Vec<u8> {
    let len = u16::try_from(private.len()).unwrap_or(u16::MAX);
    [&len.to_be_bytes()[..], private.value()].concat()
}

/// Split a TPM2B off the front of `bytes`: (whole TPM2B, its body, rest).
fn take_tpm2b(bytes: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let len = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]) as usize;
    let end = 2usize.checked_add(len).filter(|&e| e <= bytes.len())?;
    Some((&bytes[..end], &bytes[2..end], &bytes[end..]))
}

/// Parse TPM2B_PUBLIC bytes strictly (they must re-marshal to themselves).
pub(crate) fn parse_public(tpm2b: &[u8]) -> Result<Public, TpmError> {
    let public = PublicBuffer::unmarshall(tpm2b)
        .and_then(Public::try_from)
        .map_err(|_| TpmError::InvalidBlob)?;
    match tpm2b_public(&public) {
        Ok(again) if again == tpm2b => Ok(public),
        _ => Err(TpmError::InvalidBlob),
    }
}

/// Parse TPM2B_PRIVATE bytes (size prefix must match exactly).
pub(crate) fn parse_private(tpm2b: &[u8]) -> Result<Private, TpmError> {
    match take_tpm2b(tpm2b) {
        Some((_, body, [])) => Private::try_from(body).map_err(|_| TpmError::InvalidBlob),
        _ => Err(TpmError::InvalidBlob),
    }
}

/// Split `tag || TPM2B_PUBLIC || TPM2B_PRIVATE` into its two marshalled parts.
pub(crate) fn split(tag: [u8; 4], blob: &[u8]) -> Result<(&[u8], &[u8]), TpmError> {
    let rest = blob.strip_prefix(&tag[..]).ok_or(TpmError::InvalidBlob)?;
    let (public, _, rest) = take_tpm2b(rest).ok_or(TpmError::InvalidBlob)?;
    let (private, _, rest) = take_tpm2b(rest).ok_or(TpmError::InvalidBlob)?;
    if !rest.is_empty() {
        return Err(TpmError::InvalidBlob);
    }
    Ok((public, private))
}

/// Parse a whole tagged blob.
pub(crate) fn decode(tag: [u8; 4], blob: &[u8]) -> Result<(Public, Private), TpmError> {
    let (public, private) = split(tag, blob)?;
    Ok((parse_public(public)?, parse_private(private)?))
}

/// A big-endian ECC value from the TPM, left-padded to the curve's size
/// (32 bytes for P-256, 48 for P-384, 66 for P-521).
pub(crate) fn left_pad(bytes: &[u8], alg: Algorithm) -> Result<Vec<u8>, TpmError> {
    let size = alg
        .coordinate_len()
        .ok_or(TpmError::Tss("not an ECC algorithm".into()))?;
    let start = size
        .checked_sub(bytes.len())
        .ok_or(TpmError::Tss("ECC value longer than its curve".into()))?;
    let mut out = vec![0u8; size];
    out[start..].copy_from_slice(bytes);
    Ok(out)
}

/// An ECDSA signature (r, s, each as long as the curve's field) in the
/// ASN.1 DER form WebAuthn uses; a value out of range is refused.
pub(crate) fn ecdsa_der(alg: Algorithm, r: &[u8], s: &[u8]) -> Result<Vec<u8>, TpmError> {
    let rs = [r, s].concat();
    let invalid = |_| TpmError::Tss("TPM2_Sign returned an invalid signature".into());
    Ok(match alg {
        Algorithm::Es256 => p256::ecdsa::Signature::from_slice(&rs)
            .map_err(invalid)?
            .to_der()
            .as_bytes()
            .to_vec(),
        Algorithm::Es384 => p384::ecdsa::Signature::from_slice(&rs)
            .map_err(invalid)?
            .to_der()
            .as_bytes()
            .to_vec(),
        Algorithm::Es512 => p521::ecdsa::Signature::from_slice(&rs)
            .map_err(invalid)?
            .to_der()
            .as_bytes()
            .to_vec(),
        Algorithm::Rs256 | Algorithm::Ps256 => return Err(TpmError::Tss("not an ECC algorithm".into())),
    })
}

// ---------------------------------------------------------------------------
// TPM response codes
// ---------------------------------------------------------------------------

/// The raw TSS2_RC of an error, if it came from the TPM itself (layer 0).
/// Codes from libtss2's own layers (ESYS, TCTI, ...) return None.
pub(crate) fn tpm_rc(e: &tss_esapi::Error) -> Option<u32> {
    let rc = match e {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatZero(rc)) => rc.0,
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::FormatOne(rc)) => rc.0,
        _ => return None,
    };
    (rc >> 16 == 0).then_some(rc)
}

/// TPM_RC_LOCKOUT (0x921): the TPM is in dictionary-attack lockout.
const RC_LOCKOUT: u32 = 0x921;
/// TPM_RC_AUTH_UNAVAILABLE (0x12F): a PIN index at its pinLimit refuses
/// every authorisation.
const RC_AUTH_UNAVAILABLE: u32 = 0x12F;
/// TPM_RC_POLICY (0x126): a policy assertion is false (PolicyNV: a counter
/// moved past the vault).
pub(crate) const RC_POLICY: u32 = 0x126;
/// TPM_RC_OBJECT_MEMORY (0x902): out of transient object slots.
const RC_OBJECT_MEMORY: u32 = 0x902;
/// Format-1 error numbers (`rc & 0x3F` when bit 7 is set).
const RC1_AUTH_FAIL: u32 = 0x0E; // 0x98E with session 1: wrong authValue, DA counted
const RC1_BAD_AUTH: u32 = 0x22; // wrong authValue on a noDA object

pub(crate) fn is_object_memory(e: &tss_esapi::Error) -> bool {
    tpm_rc(e) == Some(RC_OBJECT_MEMORY)
}

/// Map a TSS error to ours. `loading` marks TPM2_Load of a stored blob, where
/// any other format-1 error (integrity, binding, size, ...) means the TPM
/// refuses the blob: corrupt, or wrapped by another TPM / another vault.
pub(crate) fn classify(e: tss_esapi::Error, loading: bool) -> TpmError {
    match tpm_rc(&e) {
        Some(RC_LOCKOUT) => TpmError::Lockout,
        Some(RC_AUTH_UNAVAILABLE) => TpmError::PinBlocked,
        Some(rc) if rc & 0x80 != 0 => match rc & 0x3F {
            RC1_AUTH_FAIL | RC1_BAD_AUTH => TpmError::AuthFailed,
            _ if loading => TpmError::InvalidBlob,
            _ => TpmError::Tss(e.to_string()),
        },
        _ => TpmError::Tss(e.to_string()),
    }
}

impl From<tss_esapi::Error> for TpmError {
    fn from(e: tss_esapi::Error) -> Self {
        classify(e, false)
    }
}

// ---------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------

/// One TPM property, read fresh from the TPM. (Not `Context::get_tpm_property`:
/// it caches, and the lockout counter must be live.)
pub(crate) fn property(ctx: &mut Context, tag: PropertyTag) -> Result<Option<u32>, TpmError> {
    let (data, _) =
        ctx.execute_without_session(|ctx| ctx.get_capability(CapabilityType::TpmProperties, tag.into(), 1))?;
    Ok(match data {
        CapabilityData::TpmProperties(list) => list.find(tag).map(|p| p.value()),
        _ => None,
    })
}

/// Four ASCII characters packed into a u32 (manufacturer, vendor strings).
pub(crate) fn ascii(v: u32) -> String {
    v.to_be_bytes()
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|&b| b as char)
        .collect()
}

/// Flush every transient object and session this TPM connection can see.
///
/// Through the kernel's resource manager (/dev/tpmrm0) that is nothing: each
/// connection sees only its own. swtpm has no resource manager, so whatever a
/// daemon killed by SIGKILL had loaded is still there, filling its three
/// object slots; without this the next start fails with TPM_RC_OBJECT_MEMORY.
/// Only LocalPasskey is meant to use the TPM it is given, so anything left is ours.
pub(crate) fn flush_leftovers(ctx: &mut Context) -> Result<usize, TpmError> {
    use tss_esapi::constants::tss::{
        TPM2_HMAC_SESSION_FIRST, TPM2_POLICY_SESSION_FIRST, TPM2_TRANSIENT_FIRST,
    };
    use tss_esapi::handles::TpmHandle;
    let mut flushed = 0;
    for first in [
        TPM2_TRANSIENT_FIRST,
        TPM2_HMAC_SESSION_FIRST,
        TPM2_POLICY_SESSION_FIRST,
    ] {
        let (data, _) =
            ctx.execute_without_session(|ctx| ctx.get_capability(CapabilityType::Handles, first, 64))?;
        let CapabilityData::Handles(list) = data else {
            continue;
        };
        for handle in list.iter().copied() {
            // Only the range we asked for (the TPM lists from `first` upwards).
            if u32::from(handle) >> 24 != first >> 24 {
                continue;
            }
            let object = match TpmHandle::try_from(u32::from(handle)) {
                Ok(h) => ctx.execute_without_session(|ctx| ctx.tr_from_tpm_public(h)),
                Err(e) => Err(e),
            };
            if let Ok(object) = object {
                if ctx.flush_context(object).is_ok() {
                    flushed += 1;
                }
            }
        }
    }
    Ok(flushed)
}

/// A strict reader for our own blob formats: every read checks the length,
/// and [`Reader::end`] refuses trailing bytes.
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader(bytes)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TpmError> {
        if self.0.len() < n {
            return Err(TpmError::InvalidBlob);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, TpmError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, TpmError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, TpmError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    /// A whole TPM2B (size prefix included).
    pub(crate) fn tpm2b(&mut self) -> Result<&'a [u8], TpmError> {
        let (whole, _, rest) = take_tpm2b(self.0).ok_or(TpmError::InvalidBlob)?;
        self.0 = rest;
        Ok(whole)
    }

    pub(crate) fn end(&self) -> Result<(), TpmError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(TpmError::InvalidBlob)
        }
    }
}
