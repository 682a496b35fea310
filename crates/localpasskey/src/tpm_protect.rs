//! `localpasskey tpm-protect`: take the TPM's lockout authorisation, after
//! saying in plain words what that changes on this machine.
//!
//! Without it, anyone who can open the TPM may reset its dictionary-attack
//! counter, and the bound on PIN guesses that go around the PIN index is
//! gone (lp-tpm's lockout.rs). It is a machine-wide change, so it is asked
//! for, never done silently on a hardware TPM.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, IsTerminal, Write};

const EXPLANATION: &str = "\
LocalPasskey counts wrong PINs in the TPM. Someone with your privileges who goes
around that count pays with the TPM's dictionary-attack (DA) lockout instead, but
only if nobody can reset the lockout. Today anyone who can open the TPM can,
because its lockout authorisation is empty.

This command, on this machine's TPM:
  1. sets the DA lockout to {TRIES} failures, then one forgiven every {HOURS} hour(s);
  2. sets the lockout authorisation to 32 random bytes that are kept nowhere.

What that changes for everything else on this machine that uses the TPM:
  - programs that rely on the TPM's DA protection (for example a disk unlocked
    with a TPM PIN) live under the same settings;
  - nobody can clear a lockout any more: waiting is the only cure;
  - the TPM can no longer be cleared from the operating system (tpm2_clear);
    a TPM clear from the firmware set-up still works, restores the defaults,
    and erases every key in the TPM, your passkeys included.
";

pub fn run(tcti: &str, yes: bool) -> Result<()> {
    let mut tpm =
        lp_tpm::TpmCustody::inspect(tcti).with_context(|| format!("cannot open the TPM at {tcti}"))?;
    let da = tpm.da_status()?;
    if da.lockout_auth_set {
        println!(
            "The TPM's lockout authorisation is already set (by LocalPasskey or by someone \
             else): nothing to do. DA settings: {} failures, one forgiven every {} s.",
            da.max_tries, da.recovery_secs
        );
        return Ok(());
    }
    print!(
        "{}",
        EXPLANATION
            .replace("{TRIES}", &lp_tpm::DA_MAX_TRIES.to_string())
            .replace("{HOURS}", &(lp_tpm::DA_RECOVERY_SECS / 3600).to_string())
    );
    if tpm.is_software() {
        println!("\n(This TPM is a software TPM: only LocalPasskey should be using it.)");
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("not a terminal: read the text above and run again with --yes to go ahead");
        }
        print!("\nType `yes` to go ahead: ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("nothing changed");
        }
    }
    tpm.take_lockout().context("the TPM refused")?;
    let da = tpm.da_status()?;
    println!(
        "Done: lockout authorisation set; {} failures, then one forgiven every {} s.",
        da.max_tries, da.recovery_secs
    );
    Ok(())
}

/// The start-up lines about what bounds PIN guesses on this TPM: who holds
/// the lockout authorisation, the DA settings we live under, and the weaker
/// guarantee when the person accepted it.
pub fn announce(tpm: &mut lp_tpm::TpmCustody, weak_accepted: bool) {
    match tpm.da_status() {
        Ok(da) if da.lockout_auth_set => tracing::info!(
            max_tries = da.max_tries,
            recovery_secs = da.recovery_secs,
            ours = (da.max_tries, da.recovery_secs) == (lp_tpm::DA_MAX_TRIES, lp_tpm::DA_RECOVERY_SECS),
            "TPM lockout authorisation is held; guesses around the PIN index cost one of max_tries, \
             then one per recovery_secs"
        ),
        Ok(_) if tpm.is_software() => tracing::info!(
            "software TPM with an empty lockout authorisation: taken before the first PIN is set"
        ),
        Ok(_) => tracing::warn!(
            "the TPM's lockout authorisation is EMPTY: anyone may reset its dictionary-attack counter; \
             no PIN can be set until `localpasskey tpm-protect`"
        ),
        Err(e) => tracing::warn!("cannot read the TPM's lockout state: {e}"),
    }
    if weak_accepted {
        tracing::warn!(
            "--accept-weak-pin-limit: where this TPM cannot make a PIN index, the PIN is guarded \
             by the dictionary-attack lockout alone, not counted to 8 by the TPM"
        );
    }
}
