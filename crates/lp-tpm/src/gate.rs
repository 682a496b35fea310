//! The PIN gate: how the TPM itself counts wrong PINs and revokes old copies.
//!
//! ```text
//! NV (inside the TPM, never on disk)        disk (TPM-wrapped blobs)
//! ─────────────────────────────────        ─────────────────────────
//! P  PIN index, TPM_NT_PIN_FAIL             S  sealed 32-byte secret R, under
//!    authValue = PIN, pinLimit 8, noDA         the primary. authValue = PIN,
//! C  NV counter "generation"                   DA-protected. Policy:
//! E  NV counter "epoch"                        PolicyNV(g-1 <= C <= g)  ← PIN change revokes
//!                                              PolicySecret(P)          ← P counts
//!                                              PolicyAuthValue          ← DA counts
//!                                              PolicyCommandCode(Unseal)
//!                                           V  the vault, storage key, authValue = R,
//!                                              noDA, userWithAuth clear. Policy:
//!                                              PolicyNV(E == epoch)     ← Reset revokes
//!                                              PolicyAuthValue
//!                                              credential and HMAC keys are its children
//! ```
//!
//! * **Wrong PINs.** Unsealing S needs PolicySecret(P): P's authValue is the
//!   PIN, so every wrong PIN is a failed authorisation of P, which the TPM
//!   counts in P's pinCount (TPM_RC_BAD_AUTH, no DA). At pinLimit (8) the TPM
//!   refuses every authorisation of P, the right one too
//!   (TPM_RC_AUTH_UNAVAILABLE): the PIN is blocked for good. A success resets
//!   pinCount, which is CTAP's "back to 8 after a correct PIN". No file on
//!   disk takes part: restoring an old data directory restores nothing.
//! * **The owner's way around P.** The owner authorisation is empty on a
//!   typical Linux machine, so anyone can TPM2_NV_UndefineSpace P and define it
//!   again with the same public area (hence the same Name) and an authValue
//!   of their choice; PolicySecret(P) then passes. That is why S also needs
//!   PolicyAuthValue, i.e. the PIN once more, checked against S's own
//!   DA-protected authValue: every guess on that route costs a
//!   dictionary-attack failure, and with the lockout authorisation taken
//!   (`lockout.rs`) the TPM allows `maxTries` of them, then one per
//!   `recoveryTime`. A person's typing mistakes fail at P and never reach DA.
//! * **PIN change** seals R again for the new PIN under generation g+1 and
//!   then increments C: the old S fails PolicyNV, so the old PIN opens nothing,
//!   even with an old copy of the data directory. (S(g) accepts C = g-1 too,
//!   so a crash between the two steps never strands the vault; see `lib.rs`.)
//! * **Reset** increments E: V fails PolicyNV from then on, so no credential
//!   key under it can ever be loaded again, even by someone who once saw R.
//!   A redefined counter starts above the highest value any counter of this
//!   TPM ever had, so deleting and re-creating C or E never rolls them back.
//!
//! Policy digests are computed here in software from the NV Names the TPM
//! reports (TPM 2.0 Part 3, each command's "policyDigest update"), and the
//! TPM re-computes them in the real policy session: a mistake here cannot
//! weaken anything, it can only make the vault fail to open, which the tests
//! would show.

use crate::TpmError;
use sha2::{Digest as _, Sha256};
use tss_esapi::{
    attributes::{NvIndexAttributes, NvIndexAttributesBuilder},
    constants::{
        tss::{
            TPM2_CC_NV_ChangeAuth, TPM2_CC_NV_Write, TPM2_CC_PolicyAuthValue, TPM2_CC_PolicyCommandCode,
            TPM2_CC_PolicyNV, TPM2_CC_PolicyNvWritten, TPM2_CC_PolicyOR, TPM2_CC_PolicySecret,
            TPM2_CC_Unseal, TPM2_EO_EQ, TPM2_EO_UNSIGNED_GE, TPM2_EO_UNSIGNED_LE,
        },
        NvIndexType,
    },
    handles::NvIndexTpmHandle,
    interface_types::algorithm::HashingAlgorithm,
    structures::{Digest, NvPublic, NvPublicBuilder},
};

/// Wrong PINs the PIN index allows before it blocks (CTAP's PIN retries).
pub const PIN_LIMIT: u32 = 8;

/// The owner range of NV indices (TCG handle registry: 0x01800000–0x01BFFFFF).
pub(crate) const NV_OWNER_FIRST: u32 = 0x0180_0000;
pub(crate) const NV_OWNER_LAST: u32 = 0x01BF_FFFF;

/// P: the PIN index. `authread` lets PolicySecret use its authValue (the
/// PIN); `ownerread` lets the daemon read pinCount to report retries (it
/// reveals nothing secret); `policywrite` with [`pin_index_policy`] allows
/// exactly one write (the initial {pinCount 0, pinLimit 8}) and, with the
/// current PIN, TPM2_NV_ChangeAuth. No `ownerwrite`, no `authwrite`: nobody,
/// not even the owner, can write pinCount back to 0. `no_da` is required by
/// the TPM for PIN indices: P keeps its own count.
pub(crate) fn pin_index_public(handle: u32) -> Result<NvPublic, TpmError> {
    let attributes = NvIndexAttributesBuilder::new()
        .with_nv_index_type(NvIndexType::PinFail)
        .with_auth_read(true)
        .with_owner_read(true)
        .with_policy_write(true)
        .with_no_da(true)
        .build()?;
    eight_bytes_at(handle, attributes, pin_index_policy())
}

/// C and E: counters anyone may read and increment (empty authValue). An
/// increment by someone else only revokes our own vault: a denial of
/// service, which whoever can delete the data directory has anyway.
pub(crate) fn counter_public(handle: u32) -> Result<NvPublic, TpmError> {
    let attributes = NvIndexAttributesBuilder::new()
        .with_nv_index_type(NvIndexType::Counter)
        .with_auth_read(true)
        .with_auth_write(true)
        .with_no_da(true)
        .build()?;
    eight_bytes_at(handle, attributes, Digest::default())
}

/// The public area of one of our NV indices: 8 bytes (a pin counter pair
/// or a counter), SHA-256 names.
fn eight_bytes_at(handle: u32, attributes: NvIndexAttributes, policy: Digest) -> Result<NvPublic, TpmError> {
    Ok(NvPublicBuilder::new()
        .with_nv_index(NvIndexTpmHandle::new(handle)?)
        .with_index_name_algorithm(HashingAlgorithm::Sha256)
        .with_index_attributes(attributes)
        .with_index_auth_policy(policy)
        .with_data_area_size(8)
        .build()?)
}

// ---------------------------------------------------------------------------
// Policy digests (SHA-256), as the TPM extends them
// ---------------------------------------------------------------------------

/// One policy digest under construction; starts as 32 zero bytes.
#[derive(Clone)]
pub(crate) struct Policy([u8; 32]);

impl Policy {
    pub(crate) fn new() -> Self {
        Policy([0; 32])
    }

    fn extend(mut self, parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new().chain_update(self.0);
        for p in parts {
            h.update(p);
        }
        self.0 = h.finalize().into();
        self
    }

    /// TPM2_PolicySecret(authObject) with an empty policyRef.
    pub(crate) fn secret(self, name: &[u8]) -> Self {
        self.extend(&[&TPM2_CC_PolicySecret.to_be_bytes(), name])
            .extend(&[])
    }

    /// TPM2_PolicyNV: the index at `name`, from offset 0, compared with `operand`.
    pub(crate) fn nv(self, name: &[u8], operand: &[u8], operation: u16) -> Self {
        let args: [u8; 32] = Sha256::new()
            .chain_update(operand)
            .chain_update(0u16.to_be_bytes())
            .chain_update(operation.to_be_bytes())
            .finalize()
            .into();
        self.extend(&[&TPM2_CC_PolicyNV.to_be_bytes(), &args, name])
    }

    pub(crate) fn auth_value(self) -> Self {
        self.extend(&[&TPM2_CC_PolicyAuthValue.to_be_bytes()])
    }

    pub(crate) fn command_code(self, code: u32) -> Self {
        self.extend(&[&TPM2_CC_PolicyCommandCode.to_be_bytes(), &code.to_be_bytes()])
    }

    pub(crate) fn nv_written(self, written: bool) -> Self {
        self.extend(&[&TPM2_CC_PolicyNvWritten.to_be_bytes(), &[u8::from(written)]])
    }

    /// TPM2_PolicyOR over branch digests: resets to zero, then hashes them all.
    pub(crate) fn or(branches: &[&Policy]) -> Self {
        let cc = TPM2_CC_PolicyOR.to_be_bytes();
        let parts: Vec<&[u8]> = std::iter::once(&cc[..])
            .chain(branches.iter().map(|b| &b.0[..]))
            .collect();
        Policy::new().extend(&parts)
    }

    pub(crate) fn digest(&self) -> Result<Digest, TpmError> {
        Ok(Digest::try_from(&self.0[..])?)
    }
}

/// P's two branches: write once, while TPMA_NV_WRITTEN is still clear (the
/// initial pinCount/pinLimit), or change the authValue with the current PIN.
pub(crate) fn pin_index_branches() -> (Policy, Policy) {
    let write_once = Policy::new().nv_written(false).command_code(TPM2_CC_NV_Write);
    let change_auth = Policy::new().auth_value().command_code(TPM2_CC_NV_ChangeAuth);
    (write_once, change_auth)
}

pub(crate) fn pin_index_policy() -> Digest {
    let (a, b) = pin_index_branches();
    Policy::or(&[&a, &b]).digest().unwrap_or_default()
}

/// S(g): the generation window first (a revoked seal fails before any PIN
/// is spent), then the PIN index (counted without DA), then the PIN again
/// against S's own DA-protected authValue, for Unseal only.
pub(crate) fn seal_policy(pin_index: &[u8], generation_counter: &[u8], g: u64) -> Policy {
    Policy::new()
        .nv(
            generation_counter,
            &g.saturating_sub(1).to_be_bytes(),
            TPM2_EO_UNSIGNED_GE,
        )
        .nv(generation_counter, &g.to_be_bytes(), TPM2_EO_UNSIGNED_LE)
        .secret(pin_index)
        .auth_value()
        .command_code(TPM2_CC_Unseal)
}

/// V: the epoch, and R. No command code: V authorises TPM2_Load and
/// TPM2_Create of its children. adminWithPolicy is set and this policy names
/// no admin command, so V's authValue can never be changed.
pub(crate) fn vault_policy(epoch_counter: &[u8], epoch: u64) -> Policy {
    Policy::new()
        .nv(epoch_counter, &epoch.to_be_bytes(), TPM2_EO_EQ)
        .auth_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digests as swtpm computed them in a real policy session, printed by
    /// tpm2-tools (`tpm2_policyauthvalue`; `tpm2_policycommandcode
    /// TPM2_CC_Unseal`; `tpm2_policynvwritten c` then `tpm2_policycommandcode
    /// TPM2_CC_NV_Write`).
    #[test]
    fn digests_match_known_values() {
        let auth = Policy::new().auth_value();
        assert_eq!(
            hex(&auth.0),
            "8fcd2169ab92694e0c633f1ab772842b8241bbc20288981fc7ac1eddc1fddb0e"
        );
        let unseal = Policy::new().command_code(TPM2_CC_Unseal);
        assert_eq!(
            hex(&unseal.0),
            "e613137076524bde487533865884e9732ebee3aacb095d94a6de492ec06c46fa"
        );
        let (write_once, _) = pin_index_branches();
        assert_eq!(
            hex(&write_once.0),
            "53a77134e261fe952807ccb84686a7951fc7f6f2ed1ae112391614583182ed16"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
