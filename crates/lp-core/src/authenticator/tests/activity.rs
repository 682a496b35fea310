//! The activity log and the manager's requests: what each ending leaves in
//! the log, and that nothing the manager asks happens without the person.

use super::*;
use crate::activity::{Act, Outcome};
use crate::authenticator::{ManageError, Notice};

fn log(r: &Rig) -> Vec<(Act, Outcome, String, String)> {
    r.auth
        .recent_activity(100)
        .unwrap()
        .into_iter()
        .map(|a| (a.act, a.outcome, a.rp_id, a.account))
        .collect()
}

fn entry(act: Act, outcome: Outcome, rp: &str, account: &str) -> (Act, Outcome, String, String) {
    (act, outcome, rp.to_owned(), account.to_owned())
}

#[test]
fn sign_ins_registrations_and_refusals_each_leave_one_entry() {
    let mut r = rig();
    let made = make(&mut r, &Mc::new("example.com", b"u", true));
    r.auth.handle(
        &ga("example.com", std::slice::from_ref(&made.id), None),
        &NoInteraction,
    );
    r.person.push(Step::Deny);
    assert_eq!(
        r.auth.handle(
            &ga("example.com", std::slice::from_ref(&made.id), None),
            &NoInteraction
        ),
        [CtapError::OperationDenied.code()]
    );
    r.person.push(Step::NoAnswer);
    assert_eq!(
        r.auth
            .handle(&Mc::new("example.com", b"v", true).encode(), &NoInteraction),
        [CtapError::UserActionTimeout.code()]
    );
    let alice = "alice@example.com";
    assert_eq!(
        log(&r),
        [
            entry(Act::Register, Outcome::TimedOut, "example.com", alice),
            entry(Act::SignIn, Outcome::Refused, "example.com", alice),
            entry(Act::SignIn, Outcome::Approved, "example.com", alice),
            entry(Act::Register, Outcome::Approved, "example.com", alice),
            entry(Act::SetPin, Outcome::Approved, "", ""),
        ]
    );
    // Requests that asked nobody and changed nothing leave nothing.
    r.auth.handle(&[command::GET_INFO], &NoInteraction);
    r.auth.handle(&[0x55], &NoInteraction);
    assert_eq!(log(&r).len(), 5);
}

#[test]
fn a_wrong_platform_pin_is_logged_as_one() {
    let mut r = rig();
    assert!(pin_token(
        &mut r,
        "9999",
        ProtocolVersion::Two,
        permission::GA,
        "example.com"
    )
    .is_err());
    assert_eq!(
        log(&r)[0],
        entry(Act::Unlock, Outcome::WrongPin, "example.com", "")
    );
    pin_token(&mut r, PIN, ProtocolVersion::Two, permission::GA, "example.com").unwrap();
    assert_eq!(
        log(&r).len(),
        2,
        "a right PIN alone is no event; the sign-in it allows is"
    );
}

#[test]
fn the_manager_deletes_only_what_the_person_confirms() {
    let mut r = rig();
    let made = make(&mut r, &Mc::new("example.com", b"u", true));
    r.auth.take_notices();
    r.person.push(Step::Deny);
    assert_eq!(
        r.auth.delete_passkey(&made.id, &NoInteraction),
        Err(ManageError::Refused(crate::user::Refusal::Denied))
    );
    assert_eq!(r.auth.passkeys().unwrap().len(), 1);
    let shown = r.person.seen().pop().unwrap();
    assert_eq!(
        (shown.action, shown.rp_id.as_str(), shown.user_name.as_deref()),
        (Action::Delete, "example.com", Some("alice@example.com"))
    );
    r.auth.delete_passkey(&made.id, &NoInteraction).unwrap();
    assert!(r.auth.passkeys().unwrap().is_empty());
    assert_eq!(
        r.auth.handle(
            &ga("example.com", std::slice::from_ref(&made.id), None),
            &NoInteraction
        ),
        [CtapError::NoCredentials.code()]
    );
    assert_eq!(
        r.auth.delete_passkey(&made.id, &NoInteraction),
        Err(ManageError::NotFound)
    );
    let notices = r.auth.take_notices();
    assert_eq!(
        notices.iter().filter(|n| **n == Notice::PasskeysChanged).count(),
        1,
        "{notices:?}"
    );
    // The sign-in attempt asked the person (so that no page can probe for
    // passkeys silently) and found nothing: a failure, after the deletion.
    assert_eq!(
        log(&r)[..3],
        [
            entry(Act::SignIn, Outcome::Failed, "example.com", ""),
            entry(Act::Delete, Outcome::Approved, "example.com", "alice@example.com"),
            entry(Act::Delete, Outcome::Refused, "example.com", "alice@example.com"),
        ]
    );
}

#[test]
fn passkeys_describe_algorithm_and_extensions_without_key_material() {
    let mut r = rig();
    make(&mut r, &Mc::new("example.com", b"u", true));
    let [p] = r.auth.passkeys().unwrap().try_into().unwrap();
    assert_eq!(p.algorithm, Some(Algorithm::Es256));
    assert!(p.extensions.is_empty());
    assert!(
        p.key_protection.is_empty(),
        "software keys have no TPM attributes"
    );
}

#[test]
fn pin_set_and_change_by_prompt() {
    let mut r = rig_without_pin();
    assert!(!r.auth.pin_status().unwrap().set);
    assert_eq!(
        r.auth.change_pin_by_prompt(&NoInteraction),
        Err(ManageError::PinNotSet)
    );
    assert!(matches!(
        r.auth.set_pin_by_prompt(&NoInteraction),
        Err(ManageError::Refused(_))
    ));
    r.person.type_new_pin(None, "12");
    assert_eq!(
        r.auth.set_pin_by_prompt(&NoInteraction),
        Err(ManageError::PinPolicy)
    );
    r.person.type_new_pin(None, "5678");
    r.auth.set_pin_by_prompt(&NoInteraction).unwrap();
    let s = r.auth.pin_status().unwrap();
    assert!(s.set && s.retries == pin::MAX_RETRIES && !s.force_change);
    assert_eq!(
        r.auth.set_pin_by_prompt(&NoInteraction),
        Err(ManageError::PinAlreadySet)
    );
    r.person.type_new_pin(Some("0000"), "4321");
    assert_eq!(
        r.auth.change_pin_by_prompt(&NoInteraction),
        Err(ManageError::PinInvalid)
    );
    assert_eq!(r.auth.pin_status().unwrap().retries, pin::MAX_RETRIES - 1);
    r.person.type_new_pin(Some("5678"), "4321");
    r.auth.change_pin_by_prompt(&NoInteraction).unwrap();
    assert!(pin_token(&mut r, "5678", ProtocolVersion::Two, permission::GA, "x.example").is_err());
    pin_token(&mut r, "4321", ProtocolVersion::Two, permission::GA, "x.example").unwrap();
    let acts: Vec<_> = log(&r).into_iter().map(|(a, o, ..)| (a, o)).collect();
    assert_eq!(
        acts,
        [
            (Act::Unlock, Outcome::WrongPin),
            (Act::ChangePin, Outcome::Approved),
            (Act::ChangePin, Outcome::WrongPin),
            (Act::SetPin, Outcome::Approved),
            (Act::SetPin, Outcome::Failed),
            (Act::SetPin, Outcome::Refused),
        ]
    );
}

#[test]
fn reset_empties_the_log_and_logs_itself() {
    let mut r = rig();
    make(&mut r, &Mc::new("example.com", b"u", true));
    assert_eq!(r.auth.handle(&[command::RESET], &NoInteraction), [CTAP2_OK]);
    assert_eq!(log(&r), [entry(Act::Reset, Outcome::Approved, "", "")]);
}

#[test]
fn retention_trims_old_entries() {
    let mut r = rig();
    make(&mut r, &Mc::new("example.com", b"u", true));
    r.auth.trim_activity().unwrap();
    assert_eq!(log(&r).len(), 2, "new entries stay");
    r.auth
        .store
        .set_meta(crate::activity::RETENTION_META, &1u32.to_le_bytes())
        .unwrap();
    r.clock.advance(2 * 24 * 3600 * 1000);
    r.auth.trim_activity().unwrap();
    assert!(log(&r).is_empty());
}
