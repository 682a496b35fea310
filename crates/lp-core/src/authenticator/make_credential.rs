//! authenticatorMakeCredential (0x01), CTAP 2.2 §6.1.

use super::verification::{Account, UserCheck};
use super::{cred_mgmt, Authenticator, CtapResult, CREDENTIAL_ID_LEN};
use crate::activity::{Act, Outcome};
use crate::authdata::{self, flags};
use crate::cbor::text_map;
use crate::custody::{Algorithm, PublicKey};
use crate::extensions;
use crate::pin::permission;
use crate::status::CtapError;
use crate::store::Credential;
use crate::types::make_credential::{Request as MakeCredentialRequest, Response};
use crate::user::{Action, Interaction};
use ciborium::value::Value;
use coset::{iana, CborSerializable};
use rand_core::{OsRng, RngCore};

impl Authenticator {
    pub(super) fn make_credential(&mut self, params: &[u8], io: &dyn Interaction) -> CtapResult {
        let mut req = MakeCredentialRequest::decode(params)?;
        let auth = self.pin_uv_auth(
            req.pin_uv_auth_param.take(),
            req.pin_uv_auth_protocol,
            Action::Register,
            &req.rp.id,
            io,
        )?;
        // §6.1.2 step 3: the first of the platform's algorithms we support.
        let supported = self.custody.algorithms();
        let alg = req
            .pub_key_cred_params
            .iter()
            .filter(|(kind, _)| kind == "public-key")
            .find_map(|(_, alg)| Algorithm::from_cose(*alg).filter(|a| supported.contains(a)))
            .ok_or(CtapError::UnsupportedAlgorithm)?;
        // §6.1.2 step 5: "up" false is invalid for MakeCredential; "uv" true
        // needs built-in user verification.
        if req.options.up == Some(false) || (req.options.uv == Some(true) && !self.user.can_verify()) {
            return Err(CtapError::InvalidOption);
        }
        // §6.1.2 step 9: the enrolment to attest with, if this request gets
        // an enterprise attestation (see `enterprise::decide`).
        let enterprise = self.enterprise_decision(req.enterprise_attestation, &req.rp.id)?;
        let discoverable = req.options.rk.unwrap_or(false);
        let ext = extensions::McInputs::parse(std::mem::take(&mut req.extensions))?;
        if discoverable && self.store.count_discoverable()? >= cred_mgmt::MAX_DISCOVERABLE {
            return Err(CtapError::KeyStoreFull);
        }
        // §12.3: a largeBlobKey belongs to a discoverable credential.
        if ext.large_blob_key && !discoverable {
            return Err(CtapError::InvalidOption);
        }
        let check = UserCheck {
            permission: permission::MC,
            action: Action::Register,
            rp_id: &req.rp.id,
            client_data_hash: &req.client_data_hash,
            account: req.user.name.as_deref().map_or(Account::None, Account::Named),
            silent: false,
        };
        let mut consent = self.verify_user(auth.as_ref(), &check, io)?;

        // §6.1.2 step 12: a matching excludeList entry is only revealed after
        // user presence, so a page cannot probe silently.
        for d in req.exclude_list.iter().filter(|d| d.is_public_key()) {
            if let Some(c) = self.store.get(&d.id)? {
                // verify_user succeeded: the user is verified, so every credProtect level is visible.
                if c.rp_id == req.rp.id && extensions::visible(c.cred_protect, true, true) {
                    self.make_present(&mut consent, Action::AlreadyRegistered, &check, io)?;
                    return Err(CtapError::CredentialExcluded);
                }
            }
        }

        self.make_present(&mut consent, Action::Register, &check, io)?;
        if auth.is_some() {
            self.pin.token().spend();
        }

        // A key the attestation key can certify (RSA keys cannot be: they
        // get the normal attestation).
        let certifiable = match enterprise {
            Some(_) => self.custody.create_certifiable_key(alg)?,
            None => None,
        };
        let enterprise = enterprise.filter(|_| certifiable.is_some());
        let key = match certifiable {
            Some(key) => key,
            None => self.custody.create_key(alg)?,
        };
        let cose_key = cose_public_key(&key.public)?;
        let mut id = vec![0u8; CREDENTIAL_ID_LEN];
        OsRng.fill_bytes(&mut id);

        let made = self.extensions(ext, &req.rp.id)?;
        let cred = Credential {
            id,
            rp_id: req.rp.id.clone(),
            rp_name: req.rp.name.clone(),
            user_id: req.user.id.clone(),
            user_name: req.user.name.clone(),
            user_display_name: req.user.display_name.clone(),
            discoverable,
            key_blob: key.blob,
            public_key_cose: cose_key,
            sign_count: 0,
            created: self.clock.unix_millis(),
            last_used: None,
            cred_protect: made.cred_protect,
            hmac_key: made.hmac_key,
            cred_blob: made.sealed_cred_blob,
            large_blob_key: made.sealed_large_blob_key,
            third_party_payment: made.third_party_payment,
        };
        let auth_data = authdata::build(
            &cred.rp_id,
            flags::UP | flags::UV,
            cred.sign_count,
            Some((&cred.id, &cred.public_key_cose)),
            made.outputs.as_deref(),
        );
        let (fmt, att_stmt) = match &enterprise {
            Some(e) => (
                "tpm",
                self.enterprise_statement(e, &cred.key_blob, &auth_data, &req.client_data_hash)?,
            ),
            None => self.attestation(&req, &cred, alg, &auth_data)?,
        };
        // Stored (durably) before the answer leaves: an acknowledged credential is never lost.
        let account = super::verification::account_label(&cred);
        self.note(Act::Register, &cred.rp_id, account.as_deref(), Outcome::Approved);
        let replaced = self.store.insert(&cred)?;
        tracing::info!(rp = ?cred.rp_id, discoverable, replaced = replaced.len(), "credential created");
        let response = Response {
            fmt,
            auth_data,
            att_stmt,
            ep_att: enterprise.is_some(),
            large_blob_key: made.large_blob_key,
        };
        Ok(Some(response.into()))
    }

    /// Extensions (§12): what each one asked for makes, and its output
    /// (each one that was asked for says how it went).
    fn extensions(&mut self, ext: extensions::McInputs, rp_id: &str) -> Result<Made, CtapError> {
        let mut outputs: Vec<(&str, Value)> = Vec::new();
        if let Some(level) = ext.cred_protect {
            outputs.push((extensions::CRED_PROTECT, Value::Integer(level.into())));
        }
        let hmac_key = if ext.hmac_secret {
            outputs.push((extensions::HMAC_SECRET, Value::Bool(true)));
            Some(self.custody.create_hmac_key()?)
        } else {
            None
        };
        // CTAP 2.2 hmac-secret-mc: the first outputs now, computed exactly as
        // GetAssertion would with this (verified) user.
        if let (Some(input), Some(key)) = (&ext.hmac_secret_mc, &hmac_key) {
            let out = self.hmac_secret(input, key, true)?;
            outputs.push((extensions::HMAC_SECRET_MC, Value::Bytes(out)));
        }
        // credBlob and largeBlobKey are stored sealed by the custody under
        // the vault: a copy of the database alone reveals neither.
        let sealed_cred_blob = match ext.cred_blob {
            Some(blob) => {
                let fits = blob.len() <= extensions::MAX_CRED_BLOB_LEN;
                outputs.push((extensions::CRED_BLOB, Value::Bool(fits)));
                fits.then(|| self.custody.seal(&blob)).transpose()?
            }
            None => None,
        };
        let large_blob_key = ext.large_blob_key.then(|| {
            let mut k = vec![0u8; 32];
            OsRng.fill_bytes(&mut k);
            k
        });
        let sealed_large_blob_key = large_blob_key
            .as_deref()
            .map(|k| self.custody.seal(k))
            .transpose()?;
        if ext.min_pin_length {
            let min = self.min_pin_length()?;
            if self.min_pin_length_rps()?.iter().any(|rp| rp == rp_id) {
                outputs.push((extensions::MIN_PIN_LENGTH, Value::Integer(min.into())));
            }
        }
        Ok(Made {
            outputs: extensions::encode_outputs(outputs),
            cred_protect: ext.cred_protect.unwrap_or(extensions::protect::UV_OPTIONAL),
            hmac_key,
            sealed_cred_blob,
            large_blob_key,
            sealed_large_blob_key,
            // §12.9: recorded now, reported at GetAssertion; no output here.
            third_party_payment: ext.third_party_payment,
        })
    }

    /// §6.1.2 step 19: `none` when the platform asks for it first, else
    /// packed self-attestation: signed by the credential's own key, no
    /// certificate, so it vouches for nothing but the key itself.
    fn attestation(
        &mut self,
        req: &MakeCredentialRequest,
        cred: &Credential,
        alg: Algorithm,
        auth_data: &[u8],
    ) -> Result<(&'static str, Value), CtapError> {
        let wants_none = req
            .attestation_formats_preference
            .as_ref()
            .and_then(|p| p.first())
            .is_some_and(|f| f == "none");
        if wants_none {
            return Ok(("none", text_map([])));
        }
        let sig = self.sign(&cred.key_blob, auth_data, &req.client_data_hash)?;
        Ok((
            "packed",
            text_map([
                ("alg", Value::Integer(alg.cose().into())),
                ("sig", Value::Bytes(sig)),
            ]),
        ))
    }

    /// WebAuthn's signature: over authenticatorData || clientDataHash, hashed
    /// as the key's algorithm says (the custody knows its keys).
    pub(super) fn sign(
        &mut self,
        blob: &[u8],
        auth_data: &[u8],
        client_data_hash: &[u8],
    ) -> Result<Vec<u8>, CtapError> {
        let message = [auth_data, client_data_hash].concat();
        Ok(self.custody.sign(blob, &message)?)
    }
}

/// The COSE_Key of a credential's public key. coset emits kty(1), alg(3),
/// then the key parameters in the order given (-1, -2, -3): CTAP2 canonical order.
pub(super) fn cose_public_key(public: &PublicKey) -> Result<Vec<u8>, CtapError> {
    let key = match public {
        PublicKey::Ec2 { alg, x, y } => {
            let (curve, cose_alg) = match alg {
                Algorithm::Es256 => (iana::EllipticCurve::P_256, iana::Algorithm::ES256),
                Algorithm::Es384 => (iana::EllipticCurve::P_384, iana::Algorithm::ES384),
                Algorithm::Es512 => (iana::EllipticCurve::P_521, iana::Algorithm::ES512),
                Algorithm::Rs256 | Algorithm::Ps256 => return Err(CtapError::Other),
            };
            coset::CoseKeyBuilder::new_ec2_pub_key(curve, x.clone(), y.clone())
                .algorithm(cose_alg)
                .build()
        }
        // RFC 8230: kty RSA (3), n (-1), e (-2).
        PublicKey::Rsa { alg, n, e } => coset::CoseKeyBuilder::new()
            .key_type(iana::KeyType::RSA)
            .algorithm(match alg {
                Algorithm::Ps256 => iana::Algorithm::PS256,
                _ => iana::Algorithm::RS256,
            })
            .param(iana::RsaKeyParameter::N as i64, Value::Bytes(n.clone()))
            .param(iana::RsaKeyParameter::E as i64, Value::Bytes(e.clone()))
            .build(),
    };
    key.to_vec().map_err(|_| CtapError::Other)
}

/// What the extensions made for a new credential.
struct Made {
    /// The authenticator data's extension outputs, if any.
    outputs: Option<Vec<u8>>,
    cred_protect: u8,
    hmac_key: Option<Vec<u8>>,
    sealed_cred_blob: Option<Vec<u8>>,
    /// In the clear, for the platform; the credential keeps it sealed.
    large_blob_key: Option<Vec<u8>>,
    sealed_large_blob_key: Option<Vec<u8>>,
    third_party_payment: bool,
}
