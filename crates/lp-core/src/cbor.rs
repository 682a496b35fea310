//! Thin helpers over `ciborium::Value` for CTAP's integer-keyed maps.
//!
//! ciborium does the CBOR; these helpers only turn "the wrong shape of value"
//! into the status code CTAP 2.1 prescribes (§8.2): undecodable bytes are
//! CTAP2_ERR_INVALID_CBOR, a value of the wrong major type is
//! CTAP2_ERR_CBOR_UNEXPECTED_TYPE, an absent required member is
//! CTAP2_ERR_MISSING_PARAMETER. Unknown keys are ignored, as the spec requires
//! for forward compatibility.

use crate::status::CtapError;
use ciborium::value::{Integer, Value};

/// Nesting deeper than this is refused; CTAP structures are at most four deep,
/// and a bound keeps hostile input from exhausting the stack.
const MAX_DEPTH: usize = 16;

/// Decode one CBOR data item that must fill `bytes` exactly.
pub fn decode(bytes: &[u8]) -> Result<Value, CtapError> {
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|_| CtapError::InvalidCbor)?;
    if !reader.is_empty() {
        return Err(CtapError::InvalidCbor);
    }
    Ok(value)
}

/// Encode a value. Callers build maps in canonical order (see [`int_map`] and
/// [`text_map`]); ciborium preserves that order on the wire.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_into(value, &mut out);
    out
}

/// Encode a value after what `out` already holds (a status byte, say).
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail for a Value tree.
    let _ = ciborium::ser::into_writer(value, out);
}

/// A request's top-level map, keyed by the CTAP parameter numbers: sorted
/// by key, each member taken at most once. A sorted vector, not a tree: a
/// request has a dozen members, and every request builds one.
#[derive(Debug, Default)]
pub struct RequestMap(Vec<(u64, Option<Value>)>);

impl RequestMap {
    /// Parse a command's parameters. An empty payload is an empty map
    /// (commands whose parameters are all optional may be sent bare).
    pub fn parse(bytes: &[u8]) -> Result<Self, CtapError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let Value::Map(entries) = decode(bytes)? else {
            return Err(CtapError::CborUnexpectedType);
        };
        // A non-integer key is a key we do not know: ignore it.
        let mut map: Vec<(u64, Option<Value>)> = entries
            .into_iter()
            .filter_map(|(k, v)| Some((as_u64(&k)?, Some(v))))
            .collect();
        map.sort_by_key(|(k, _)| *k);
        if map.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(CtapError::InvalidCbor);
        }
        Ok(Self(map))
    }

    pub fn take(&mut self, key: u64) -> Option<Value> {
        let i = self.0.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        self.0[i].1.take()
    }

    pub fn required(&mut self, key: u64) -> Result<Value, CtapError> {
        self.take(key).ok_or(CtapError::MissingParameter)
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

pub fn bytes(v: Value) -> Result<Vec<u8>, CtapError> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(CtapError::CborUnexpectedType),
    }
}

pub fn text(v: Value) -> Result<String, CtapError> {
    match v {
        Value::Text(s) => Ok(s),
        _ => Err(CtapError::CborUnexpectedType),
    }
}

pub fn boolean(v: Value) -> Result<bool, CtapError> {
    match v {
        Value::Bool(b) => Ok(b),
        _ => Err(CtapError::CborUnexpectedType),
    }
}

pub fn array(v: Value) -> Result<Vec<Value>, CtapError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(CtapError::CborUnexpectedType),
    }
}

pub fn integer(v: Value) -> Result<i128, CtapError> {
    match v {
        Value::Integer(i) => Ok(i128::from(i)),
        _ => Err(CtapError::CborUnexpectedType),
    }
}

pub fn unsigned(v: Value) -> Result<u64, CtapError> {
    match v {
        Value::Integer(i) => u64::try_from(i).map_err(|_| CtapError::CborUnexpectedType),
        _ => Err(CtapError::CborUnexpectedType),
    }
}

/// A map with text keys (entities, options, extensions): sorted by key,
/// each key at most once, a sorted vector like [`RequestMap`] (these maps
/// hold a handful of members). Non-text keys are unknown keys and ignored;
/// a repeated key is invalid CBOR.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextMap(Vec<(String, Value)>);

impl TextMap {
    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.position(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Built from members in any order; a repeated key keeps its last value,
/// as inserting into a map would.
impl FromIterator<(String, Value)> for TextMap {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(entries: I) -> Self {
        let mut map: Vec<(String, Value)> = Vec::new();
        for (k, v) in entries {
            match map.binary_search_by(|(m, _)| m.cmp(&k)) {
                Ok(i) => map[i].1 = v,
                Err(i) => map.insert(i, (k, v)),
            }
        }
        Self(map)
    }
}

pub fn text_keyed(v: Value) -> Result<TextMap, CtapError> {
    let Value::Map(entries) = v else {
        return Err(CtapError::CborUnexpectedType);
    };
    let mut map: Vec<(String, Value)> = entries
        .into_iter()
        .filter_map(|(k, v)| match k {
            Value::Text(k) => Some((k, v)),
            _ => None,
        })
        .collect();
    map.sort_by(|(a, _), (b, _)| a.cmp(b));
    if map.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(CtapError::InvalidCbor);
    }
    Ok(TextMap(map))
}

/// Build an integer-keyed response map. Keys must come in ascending order:
/// CTAP2 canonical CBOR orders unsigned keys numerically, and python-fido2
/// rejects anything else.
pub fn int_map(entries: impl IntoIterator<Item = (u64, Value)>) -> Value {
    let mut entries: Vec<(u64, Value)> = entries.into_iter().collect();
    entries.sort_by_key(|(k, _)| *k);
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Integer(Integer::from(k)), v))
            .collect(),
    )
}

/// Build a text-keyed map in CTAP2 canonical order: shorter keys first, then
/// bytewise (RFC 7049 §3.9 as profiled by CTAP 2.1 §8).
pub fn text_map<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let mut entries: Vec<(&str, Value)> = entries.into_iter().collect();
    entries.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then(a.as_bytes().cmp(b.as_bytes())));
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::Text(k.to_owned()), v))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_payload_is_empty_map() {
        let mut m = RequestMap::parse(&[]).unwrap();
        assert_eq!(m.required(1).unwrap_err(), CtapError::MissingParameter);
    }

    #[test]
    fn garbage_is_invalid_cbor() {
        assert_eq!(
            RequestMap::parse(&[0xff, 0x00]).unwrap_err(),
            CtapError::InvalidCbor
        );
        // A map that announces one entry and ends.
        assert_eq!(
            RequestMap::parse(&[0xa1, 0x01]).unwrap_err(),
            CtapError::InvalidCbor
        );
        // Trailing bytes after a complete item.
        assert_eq!(
            RequestMap::parse(&[0xa0, 0x00]).unwrap_err(),
            CtapError::InvalidCbor
        );
    }

    #[test]
    fn non_map_is_unexpected_type() {
        assert_eq!(
            RequestMap::parse(&[0x01]).unwrap_err(),
            CtapError::CborUnexpectedType
        );
    }

    #[test]
    fn duplicate_keys_are_invalid() {
        assert_eq!(
            RequestMap::parse(&[0xa2, 0x01, 0x01, 0x01, 0x02]).unwrap_err(),
            CtapError::InvalidCbor
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut bytes = vec![0xa1, 0x01];
        bytes.extend(std::iter::repeat_n(0x81, 10_000));
        bytes.push(0x00);
        assert_eq!(RequestMap::parse(&bytes).unwrap_err(), CtapError::InvalidCbor);
    }

    #[test]
    fn huge_declared_length_does_not_allocate_or_panic() {
        // A byte string claiming 2^63 bytes.
        let bytes = [0xa1, 0x01, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(RequestMap::parse(&bytes).unwrap_err(), CtapError::InvalidCbor);
    }

    #[test]
    fn maps_are_canonical() {
        let v = text_map([("type", Value::Null), ("id", Value::Null), ("alg", Value::Null)]);
        let Value::Map(entries) = v else { panic!() };
        let keys: Vec<_> = entries
            .iter()
            .map(|(k, _)| k.as_text().unwrap().to_owned())
            .collect();
        assert_eq!(keys, ["id", "alg", "type"]);
        let v = int_map([(3, Value::Null), (1, Value::Null)]);
        assert_eq!(encode(&v), [0xa2, 0x01, 0xf6, 0x03, 0xf6]);
    }
}
