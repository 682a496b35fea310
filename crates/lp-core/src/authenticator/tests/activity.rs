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

/// The software custody, recording the blobs it is told to forget.
struct Forgetful(InsecureSoftwareCustody, Arc<Mutex<Vec<Vec<u8>>>>);

impl KeyCustody for Forgetful {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn is_hardware(&self) -> bool {
        false
    }
    fn algorithms(&self) -> Vec<Algorithm> {
        self.0.algorithms()
    }
    fn create_key(&mut self, alg: Algorithm) -> Result<crate::custody::NewKey, crate::custody::CustodyError> {
        self.0.create_key(alg)
    }
    fn sign(&mut self, blob: &[u8], message: &[u8]) -> Result<Vec<u8>, crate::custody::CustodyError> {
        self.0.sign(blob, message)
    }
    fn create_hmac_key(&mut self) -> Result<Vec<u8>, crate::custody::CustodyError> {
        self.0.create_hmac_key()
    }
    fn hmac(&mut self, blob: &[u8], message: &[u8]) -> Result<[u8; 32], crate::custody::CustodyError> {
        self.0.hmac(blob, message)
    }
    fn forget_key(&mut self, blob: &[u8]) {
        self.1.lock().unwrap().push(blob.to_vec());
        self.0.forget_key(blob)
    }
    fn seal(&mut self, data: &[u8]) -> Result<Vec<u8>, crate::custody::CustodyError> {
        self.0.seal(data)
    }
    fn unseal(&mut self, blob: &[u8]) -> Result<Vec<u8>, crate::custody::CustodyError> {
        self.0.unseal(blob)
    }
    fn reset(&mut self, vault: Option<&[u8]>) -> Result<(), crate::custody::CustodyError> {
        self.0.reset(vault)
    }
    fn create_vault(&mut self, auth: &[u8; 32]) -> Result<Vec<u8>, crate::custody::CustodyError> {
        self.0.create_vault(auth)
    }
    fn unlock(
        &mut self,
        vault: &[u8],
        auth: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, crate::custody::CustodyError> {
        self.0.unlock(vault, auth)
    }
    fn pin_retries(&mut self, vault: &[u8]) -> Result<Option<u8>, crate::custody::CustodyError> {
        self.0.pin_retries(vault)
    }
    fn change_auth(
        &mut self,
        vault: &[u8],
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<Vec<u8>, crate::custody::CustodyError> {
        self.0.change_auth(vault, old, new)
    }
    fn commit_change(
        &mut self,
        vault: &[u8],
        old: &[u8; 32],
        new: &[u8; 32],
    ) -> Result<Vec<u8>, crate::custody::CustodyError> {
        self.0.commit_change(vault, old, new)
    }
    fn lock(&mut self) {
        self.0.lock()
    }
    fn is_unlocked(&self) -> bool {
        self.0.is_unlocked()
    }
}

/// A deleted passkey's keys (its signing key and its hmac-secret key) are
/// dropped by the custody too: a TPM custody keeps saved contexts of them.
#[test]
fn deleting_a_passkey_makes_the_custody_forget_its_keys() {
    let forgotten = Arc::new(Mutex::new(Vec::new()));
    let mut r = rig_without_pin();
    r.auth.custody = Box::new(Forgetful(InsecureSoftwareCustody::new(), forgotten.clone()));
    set_pin(&mut r, PIN, ProtocolVersion::Two).expect("setPIN");
    let mut mc = Mc::new("example.com", b"u", true);
    mc.extra.push((6, text_map([("hmac-secret", Value::Bool(true))])));
    let made = make(&mut r, &mc);
    let stored = r.auth.store.get(&made.id).unwrap().expect("stored");
    let hmac_key = stored.hmac_key.clone().expect("an hmac-secret key");
    assert!(forgotten.lock().unwrap().is_empty());
    r.auth.delete_passkey(&made.id, &NoInteraction).unwrap();
    assert_eq!(*forgotten.lock().unwrap(), [stored.key_blob, hmac_key]);

    // The same through credential management's deleteCredential.
    forgotten.lock().unwrap().clear();
    let made = make(&mut r, &Mc::new("example.com", b"v", true));
    let stored = r.auth.store.get(&made.id).unwrap().expect("stored");
    let t = pin_token_for(&mut r, PIN, ProtocolVersion::Two, permission::CM, None).unwrap();
    let descriptor = text_map([
        ("id", Value::Bytes(made.id.clone())),
        ("type", text("public-key")),
    ]);
    cm(&mut r, &t, 6, Some(int_map([(2, descriptor)]))).unwrap();
    assert!(r.auth.store.get(&made.id).unwrap().is_none());
    assert_eq!(*forgotten.lock().unwrap(), [stored.key_blob]);
}
