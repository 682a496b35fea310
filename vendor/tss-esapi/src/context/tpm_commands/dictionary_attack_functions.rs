// Copyright 2021 Contributors to the Parsec project.
// SPDX-License-Identifier: Apache-2.0
use crate::{
    handles::AuthHandle,
    tss2_esys::{Esys_DictionaryAttackLockReset, Esys_DictionaryAttackParameters},
    Context, Error, Result,
};
use log::error;

impl Context {
    /// TPM2_DictionaryAttackLockReset (lockout authorisation).
    /// LocalPasskey addition to the vendored 7.7.0.
    pub fn dictionary_attack_lock_reset(&mut self, lock_handle: AuthHandle) -> Result<()> {
        let ret = unsafe {
            Esys_DictionaryAttackLockReset(
                self.mut_context(),
                lock_handle.into(),
                self.required_session_1()?,
                self.optional_session_2(),
                self.optional_session_3(),
            )
        };
        let ret = Error::from_tss_rc(ret);
        if ret.is_success() {
            Ok(())
        } else {
            error!("Error when resetting the DA lockout: {}", ret);
            Err(ret)
        }
    }

    /// TPM2_DictionaryAttackParameters (lockout authorisation): failures
    /// before lockout, seconds per forgiven failure, seconds after a failed
    /// lockoutAuth. LocalPasskey addition to the vendored 7.7.0.
    pub fn dictionary_attack_parameters(
        &mut self,
        lock_handle: AuthHandle,
        new_max_tries: u32,
        new_recovery_time: u32,
        lockout_recovery: u32,
    ) -> Result<()> {
        let ret = unsafe {
            Esys_DictionaryAttackParameters(
                self.mut_context(),
                lock_handle.into(),
                self.required_session_1()?,
                self.optional_session_2(),
                self.optional_session_3(),
                new_max_tries,
                new_recovery_time,
                lockout_recovery,
            )
        };
        let ret = Error::from_tss_rc(ret);
        if ret.is_success() {
            Ok(())
        } else {
            error!("Error when setting the DA parameters: {}", ret);
            Err(ret)
        }
    }
}
