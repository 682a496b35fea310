//! authenticatorConfig (0x0D), CTAP 2.1 §6.11: the minimum PIN length
//! policy, and enabling enterprise attestation on an enrolled authenticator.
//!
//! alwaysUv cannot be turned off: every signature of ours needs
//! verification, on purpose.

use super::{Authenticator, CtapResult};
use crate::cbor;
use crate::pin::{self, permission};
use crate::pin_protocol::ProtocolVersion;
use crate::status::CtapError;
use crate::types::config::{Request, Subcommand};
use ciborium::value::Value;

/// How many RP IDs setMinPINLength may name (GetInfo's maxRPIDsForSetMinPINLength).
pub const MAX_MIN_PIN_LENGTH_RPS: usize = 8;

/// The longest minimum we accept: a PIN is at most 63 bytes.
const MAX_MIN_PIN_LENGTH: u64 = 63;

impl Authenticator {
    pub(super) fn config(&mut self, params: &[u8]) -> CtapResult {
        let req = Request::decode(params)?;
        // alwaysUv: every configuration change needs a token with acfg.
        let param = req.pin_uv_auth_param.as_deref().ok_or(CtapError::PuatRequired)?;
        let version = ProtocolVersion::from_u64(req.protocol.ok_or(CtapError::MissingParameter)?)?;
        let message = req.signed_message();
        let now = self.clock.now();
        self.pin
            .token()
            .check(version, &message, param, permission::ACFG, None, now)?;

        match Subcommand::from_byte(req.subcommand) {
            // Only an enrolled authenticator is enterprise attestation
            // capable (see `enterprise.rs`); the others have no such subcommand.
            Some(Subcommand::EnableEnterpriseAttestation) => self.enable_enterprise_attestation(),
            None => Err(CtapError::InvalidSubcommand),
            // §6.11.2: an authenticator that cannot turn alwaysUv off says so.
            Some(Subcommand::ToggleAlwaysUv) => Err(CtapError::OperationDenied),
            Some(Subcommand::SetMinPinLength) => self.set_min_pin_length(req.sub_params),
        }
    }

    fn set_min_pin_length(&mut self, params: Option<Value>) -> CtapResult {
        let mut new_min = None;
        let mut rps = None;
        let mut force = false;
        if let Some(p) = params {
            let Value::Map(entries) = p else {
                return Err(CtapError::CborUnexpectedType);
            };
            for (k, v) in entries {
                match k.as_integer().and_then(|i| u64::try_from(i).ok()) {
                    Some(1) => new_min = Some(cbor::unsigned(v)?),
                    Some(2) => {
                        let list: Vec<String> = cbor::array(v)?
                            .into_iter()
                            .map(cbor::text)
                            .collect::<Result<_, _>>()?;
                        rps = Some(list);
                    }
                    Some(3) => force = cbor::boolean(v)?,
                    _ => {}
                }
            }
        }
        let current = u64::from(self.min_pin_length()?);
        let new_min = new_min.unwrap_or(current);
        // §6.11.4: the minimum only ever goes up, and stays a possible PIN.
        if new_min < current || new_min > MAX_MIN_PIN_LENGTH {
            return Err(CtapError::PinPolicyViolation);
        }
        if rps.as_ref().is_some_and(|l| l.len() > MAX_MIN_PIN_LENGTH_RPS) {
            return Err(CtapError::PinPolicyViolation);
        }
        let pin_set = self.pin().is_set()?;
        if force && !pin_set {
            return Err(CtapError::PinNotSet);
        }
        let pin_len = u64::from(self.meta_u8(pin::meta::CODE_POINTS)?.unwrap_or(0));
        self.store.set_meta(pin::meta::MIN_LENGTH, &[new_min as u8])?;
        if let Some(list) = rps {
            let list = Value::Array(list.into_iter().map(Value::Text).collect());
            self.store
                .set_meta(pin::meta::MIN_LENGTH_RPS, &cbor::encode(&list))?;
        }
        // A PIN shorter than the new minimum must be changed before use.
        if pin_set && (force || pin_len < new_min) {
            self.store.set_meta(pin::meta::FORCE_CHANGE, &[1])?;
        }
        tracing::info!(min = new_min, "minimum PIN length set");
        Ok(None)
    }

    /// The current minimum PIN length, in code points.
    pub(super) fn min_pin_length(&self) -> Result<u8, CtapError> {
        Ok(self
            .meta_u8(pin::meta::MIN_LENGTH)?
            .unwrap_or(pin::MIN_PIN_CODE_POINTS as u8))
    }

    /// The RP IDs allowed to read it through the minPinLength extension.
    pub(super) fn min_pin_length_rps(&self) -> Result<Vec<String>, CtapError> {
        let Some(bytes) = self.store.get_meta(pin::meta::MIN_LENGTH_RPS)? else {
            return Ok(Vec::new());
        };
        let list = cbor::array(cbor::decode(&bytes)?)?;
        Ok(list.into_iter().filter_map(|v| v.into_text().ok()).collect())
    }
}
