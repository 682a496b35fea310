//! authenticatorGetInfo (0x04), CTAP 2.2 §6.4: the response only (the
//! request has no parameters).

use crate::cbor::{int_map, text_map};
use ciborium::value::Value;

pub struct Response {
    pub versions: Vec<&'static str>,
    pub extensions: Vec<&'static str>,
    pub aaguid: [u8; 16],
    pub options: Vec<(&'static str, bool)>,
    pub max_msg_size: usize,
    /// In our order of preference.
    pub pin_uv_auth_protocols: Vec<u64>,
    pub max_credential_id_length: usize,
    pub transports: Vec<&'static str>,
    /// COSE identifiers, all of type "public-key", in our order of preference.
    pub algorithms: Vec<i64>,
    pub max_serialized_large_blob_array: usize,
    pub force_pin_change: bool,
    pub min_pin_length: u8,
    pub firmware_version: u64,
    pub max_cred_blob_length: usize,
    pub max_rp_ids_for_set_min_pin_length: usize,
    pub remaining_discoverable_credentials: u64,
    pub attestation_formats: Vec<&'static str>,
    pub max_pin_length: usize,
    /// CTAP 2.2's encIdentifier and encCredStoreState, for the holder of the
    /// persistent token.
    pub enc_identifier: Option<Vec<u8>>,
    pub enc_cred_store_state: Option<Vec<u8>>,
}

fn texts(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|t| Value::Text((*t).into())).collect())
}

fn uint(n: u64) -> Value {
    Value::Integer(n.into())
}

impl From<Response> for Value {
    fn from(r: Response) -> Value {
        let algorithms = r
            .algorithms
            .iter()
            .map(|alg| {
                text_map([
                    ("alg", Value::Integer((*alg).into())),
                    ("type", Value::Text("public-key".into())),
                ])
            })
            .collect();
        let mut m = vec![
            (0x01, texts(&r.versions)),
            (0x02, texts(&r.extensions)),
            (0x03, Value::Bytes(r.aaguid.to_vec())),
            (
                0x04,
                text_map(r.options.iter().map(|(k, v)| (*k, Value::Bool(*v)))),
            ),
            (0x05, uint(r.max_msg_size as u64)),
            (
                0x06,
                Value::Array(r.pin_uv_auth_protocols.iter().map(|p| uint(*p)).collect()),
            ),
            (0x08, uint(r.max_credential_id_length as u64)),
            (0x09, texts(&r.transports)),
            (0x0A, Value::Array(algorithms)),
            (0x0B, uint(r.max_serialized_large_blob_array as u64)),
            (0x0C, Value::Bool(r.force_pin_change)),
            (0x0D, uint(r.min_pin_length.into())),
            (0x0E, uint(r.firmware_version)),
            (0x0F, uint(r.max_cred_blob_length as u64)),
            (0x10, uint(r.max_rp_ids_for_set_min_pin_length as u64)),
            (0x14, uint(r.remaining_discoverable_credentials)),
            (0x16, texts(&r.attestation_formats)),
            (0x1D, uint(r.max_pin_length as u64)),
        ];
        if let Some(id) = r.enc_identifier {
            m.push((0x19, Value::Bytes(id)));
        }
        if let Some(state) = r.enc_cred_store_state {
            m.push((0x1E, Value::Bytes(state)));
        }
        int_map(m)
    }
}
