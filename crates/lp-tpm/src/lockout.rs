//! The TPM's dictionary-attack (DA) lockout: who holds it, and taking it.
//!
//! The PIN index (`gate.rs`) bounds everyone who goes through it. The owner
//! can go around it (see there), and then every guess costs a DA failure at
//! the PIN seal. That bound is real only if nobody can reset the DA counter
//! or raise maxTries: both need the *lockout* authorisation, which is empty
//! on a machine no other OS has provisioned. So before the first PIN is set
//! the lockout authorisation must be taken: DA parameters that fit the promise
//! are set first (with the empty authorisation, while it still works), then
//! the authorisation is changed to 32 random bytes that are kept nowhere.
//!
//! What that changes on the machine, said plainly to the person before it
//! happens (`localpasskey tpm-protect`): every program that uses the TPM's
//! DA protection lives under these settings too; nobody can clear a lockout
//! any more (waiting is the only cure); TPM2_Clear from the OS is no longer
//! possible; a TPM clear from the firmware set-up still works and restores
//! the defaults (and erases every TPM key, ours included).

use crate::{support, TpmError};
use tss_esapi::{
    constants::PropertyTag, handles::AuthHandle, interface_types::session_handles::AuthSession,
    structures::Auth, Context,
};

/// Failures before the TPM locks every DA-protected object.
pub const DA_MAX_TRIES: u32 = 4;
/// Seconds after which the TPM forgets one failure.
pub const DA_RECOVERY_SECS: u32 = 3600;
/// Seconds before the lockout authorisation may be tried again after a
/// failed try (irrelevant to us: nobody knows it; long, so nobody guesses it).
pub const DA_LOCKOUT_RECOVERY_SECS: u32 = 86_400;

/// TPMA_PERMANENT bits (TPM 2.0 Part 2, 8.6).
const OWNER_AUTH_SET: u32 = 1 << 0;
const LOCKOUT_AUTH_SET: u32 = 1 << 2;
const IN_LOCKOUT: u32 = 1 << 9;

/// The TPM's dictionary-attack state, read live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaStatus {
    /// Failures counted (TPM_PT_LOCKOUT_COUNTER).
    pub counter: u32,
    /// Failures before lockout (TPM_PT_MAX_AUTH_FAIL).
    pub max_tries: u32,
    /// Seconds after which one failure is forgotten (TPM_PT_LOCKOUT_INTERVAL).
    pub recovery_secs: u32,
    /// Seconds before lockoutAuth may be retried after it failed (TPM_PT_LOCKOUT_RECOVERY).
    pub lockout_auth_recovery_secs: u32,
    /// TPMA_PERMANENT.inLockout.
    pub in_lockout: bool,
    /// TPMA_PERMANENT.lockoutAuthSet: someone holds the lockout authorisation.
    /// While it is clear, anyone may reset the DA counter and change the
    /// parameters, so DA bounds nothing.
    pub lockout_auth_set: bool,
    /// TPMA_PERMANENT.ownerAuthSet: NV indices need the owner authorisation
    /// to be defined; while it is set by someone else we cannot make a PIN index.
    pub owner_auth_set: bool,
}

pub(crate) fn status(ctx: &mut Context) -> Result<DaStatus, TpmError> {
    let mut get = |tag| support::property(ctx, tag).map(Option::unwrap_or_default);
    let permanent = get(PropertyTag::Permanent)?;
    Ok(DaStatus {
        counter: get(PropertyTag::LockoutCounter)?,
        max_tries: get(PropertyTag::MaxAuthFail)?,
        recovery_secs: get(PropertyTag::LockoutInterval)?,
        lockout_auth_recovery_secs: get(PropertyTag::LockoutRecovery)?,
        in_lockout: permanent & IN_LOCKOUT != 0,
        lockout_auth_set: permanent & LOCKOUT_AUTH_SET != 0,
        owner_auth_set: permanent & OWNER_AUTH_SET != 0,
    })
}

/// Set our DA parameters and take the lockout authorisation. `session` is
/// the salted, parameter-encrypting session: the new authorisation travels
/// encrypted, so a bus sniffer cannot learn it either.
pub(crate) fn take(ctx: &mut Context, session: AuthSession) -> Result<(), TpmError> {
    ctx.execute_with_session(Some(session), |ctx| {
        ctx.dictionary_attack_parameters(
            AuthHandle::Lockout,
            DA_MAX_TRIES,
            DA_RECOVERY_SECS,
            DA_LOCKOUT_RECOVERY_SECS,
        )
    })?;
    let random = ctx.execute_without_session(|ctx| ctx.get_random(32))?;
    let secret = Auth::try_from(random.value())?;
    ctx.execute_with_session(Some(session), |ctx| {
        ctx.hierarchy_change_auth(AuthHandle::Lockout, secret)
    })?;
    Ok(())
}
