//! authenticatorLargeBlobs (0x0C), CTAP 2.1 §6.10: a small array of
//! encrypted blobs the platform stores here, each readable only with a
//! credential's largeBlobKey. We keep the serialized array as one value in
//! the store, so a write is all-or-nothing.

use super::{Authenticator, CtapResult};
use crate::pin::permission;
use crate::pin_protocol::ProtocolVersion;
use crate::status::CtapError;
use crate::types::large_blobs::{Request, Response};
use sha2::{Digest, Sha256};

/// GetInfo's maxSerializedLargeBlobArray.
pub const MAX_SERIALIZED_LARGE_BLOB_ARRAY: usize = 4096;

const META_KEY: &str = "large_blob_array";

/// A write in progress: the fragments so far.
#[derive(Default)]
pub(super) struct PendingWrite {
    expected_length: usize,
    data: Vec<u8>,
}

/// The array nobody has written yet: an empty CBOR array and its checksum.
fn initial_array() -> Vec<u8> {
    let mut v = vec![0x80];
    v.extend_from_slice(&Sha256::digest([0x80])[..16]);
    v
}

impl Authenticator {
    pub(super) fn large_blobs(&mut self, params: &[u8]) -> CtapResult {
        let Request {
            get,
            set,
            offset,
            length,
            pin_uv_auth_param: param,
            protocol,
        } = Request::decode(params)?;

        match (get, set) {
            (Some(get), None) => {
                // Reading needs no token; one sent anyway is an invalid parameter.
                if length.is_some() || param.is_some() || protocol.is_some() {
                    return Err(CtapError::InvalidParameter);
                }
                let get = usize::try_from(get).map_err(|_| CtapError::InvalidLength)?;
                if get > self.max_fragment() {
                    return Err(CtapError::InvalidLength);
                }
                let array = self.store.get_meta(META_KEY)?.unwrap_or_else(initial_array);
                if offset > array.len() {
                    return Err(CtapError::InvalidParameter);
                }
                let end = offset.saturating_add(get).min(array.len());
                let fragment = Response {
                    config: array[offset..end].to_vec(),
                };
                Ok(Some(fragment.into()))
            }
            (None, Some(set)) => self.write_fragment(set, offset, length, param, protocol),
            _ => Err(CtapError::InvalidParameter),
        }
    }

    /// maxMsgSize − 64, as the spec defines maxFragmentLength.
    fn max_fragment(&self) -> usize {
        self.max_msg_size() - 64
    }

    fn write_fragment(
        &mut self,
        set: Vec<u8>,
        offset: usize,
        length: Option<u64>,
        param: Option<Vec<u8>>,
        protocol: Option<u64>,
    ) -> CtapResult {
        if set.len() > self.max_fragment() {
            return Err(CtapError::InvalidLength);
        }
        if offset == 0 {
            let length = length.ok_or(CtapError::InvalidParameter)?;
            let length = usize::try_from(length).map_err(|_| CtapError::LargeBlobStorageFull)?;
            if length > MAX_SERIALIZED_LARGE_BLOB_ARRAY {
                return Err(CtapError::LargeBlobStorageFull);
            }
            if length < 17 {
                return Err(CtapError::InvalidParameter);
            }
            self.blob_write = Some(PendingWrite {
                expected_length: length,
                data: Vec::with_capacity(length),
            });
        } else if length.is_some() {
            return Err(CtapError::InvalidParameter);
        }
        let expected_offset = self.blob_write.as_ref().map(|w| w.data.len());
        if expected_offset != Some(offset) {
            return Err(CtapError::InvalidSeq);
        }

        // alwaysUv: every write needs a token with the lbw permission, over
        // 32×0xff ‖ 0x0c 0x00 ‖ uint32LE(offset) ‖ SHA-256(fragment).
        let param = param.ok_or(CtapError::PuatRequired)?;
        let version = ProtocolVersion::from_u64(protocol.ok_or(CtapError::MissingParameter)?)?;
        let mut message = vec![0xff; 32];
        message.extend_from_slice(&[0x0c, 0x00]);
        message.extend_from_slice(&(offset as u32).to_le_bytes());
        message.extend_from_slice(&Sha256::digest(&set));
        let now = self.clock.now();
        self.pin
            .token()
            .check(version, &message, &param, permission::LBW, None, now)?;

        let Some(write) = self.blob_write.as_mut() else {
            return Err(CtapError::InvalidSeq);
        };
        if offset + set.len() > write.expected_length {
            return Err(CtapError::InvalidParameter);
        }
        write.data.extend_from_slice(&set);
        if write.data.len() < write.expected_length {
            return Ok(None);
        }
        let Some(write) = self.blob_write.take() else {
            return Err(CtapError::InvalidSeq);
        };
        let (body, check) = write.data.split_at(write.data.len() - 16);
        if Sha256::digest(body)[..16] != *check {
            return Err(CtapError::IntegrityFailure);
        }
        self.store.set_meta(META_KEY, &write.data)?;
        tracing::info!(bytes = write.data.len(), "large-blob array written");
        Ok(None)
    }

    /// Reset forgets the array too.
    pub(super) fn forget_large_blobs(&mut self) -> Result<(), CtapError> {
        self.blob_write = None;
        Ok(self.store.delete_meta(META_KEY)?)
    }
}
