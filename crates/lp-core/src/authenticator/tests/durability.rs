//! No answer before the signature counter it carries is on disk: a store
//! may return from `increment_counter` with the sync still running (the
//! SQLite store overlaps it with the TPM's signature), and the
//! authenticator waits for `durable` before it answers.

use super::*;
use crate::activity::Activity;
use crate::store::{Credential, StoreError};

/// What the store below saw: whether a counter is committed but not yet
/// synced, how many syncs were asked for, and whether the next one fails.
#[derive(Default)]
struct Probe {
    unsynced: bool,
    syncs: usize,
    fail_next_sync: bool,
}

/// The in-memory store, with counters that are synced only at `durable`.
struct SyncsLater {
    inner: MemoryStore,
    probe: Arc<Mutex<Probe>>,
}

impl CredentialStore for SyncsLater {
    fn insert(&mut self, cred: &Credential) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.insert(cred)
    }
    fn get(&self, id: &[u8]) -> Result<Option<Credential>, StoreError> {
        self.inner.get(id)
    }
    fn discoverable_for_rp(&self, rp_id: &str) -> Result<Vec<Credential>, StoreError> {
        self.inner.discoverable_for_rp(rp_id)
    }
    fn increment_counter(&mut self, id: &[u8], now: u64) -> Result<u32, StoreError> {
        let n = self.inner.increment_counter(id, now)?;
        self.probe.lock().unwrap().unsynced = true;
        Ok(n)
    }
    fn durable(&mut self) -> Result<(), StoreError> {
        let mut p = self.probe.lock().unwrap();
        p.syncs += 1;
        if std::mem::take(&mut p.fail_next_sync) {
            return Err(StoreError::Backend("fdatasync: Input/output error".into()));
        }
        p.unsynced = false;
        Ok(())
    }
    fn delete(&mut self, id: &[u8]) -> Result<bool, StoreError> {
        self.inner.delete(id)
    }
    fn delete_all(&mut self) -> Result<(), StoreError> {
        self.inner.delete_all()
    }
    fn all(&self) -> Result<Vec<Credential>, StoreError> {
        self.inner.all()
    }
    fn update_user(
        &mut self,
        id: &[u8],
        name: Option<&str>,
        display: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.inner.update_user(id, name, display)
    }
    fn discoverable_rps(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        self.inner.discoverable_rps()
    }
    fn count_discoverable(&self) -> Result<u64, StoreError> {
        self.inner.count_discoverable()
    }
    fn discoverable_generation(&self) -> Result<u64, StoreError> {
        self.inner.discoverable_generation()
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_meta(key)
    }
    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set_meta(key, value)
    }
    fn delete_meta(&mut self, key: &str) -> Result<(), StoreError> {
        self.inner.delete_meta(key)
    }
    fn log(&mut self, entry: Activity) {
        self.inner.log(entry)
    }
    fn flush_log(&mut self) -> Result<(), StoreError> {
        self.inner.flush_log()
    }
    fn recent_activity(&self, limit: usize) -> Result<Vec<Activity>, StoreError> {
        self.inner.recent_activity(limit)
    }
    fn trim_activity(&mut self, before: u64) -> Result<(), StoreError> {
        self.inner.trim_activity(before)
    }
}

fn rig_syncing_later() -> (Rig, Arc<Mutex<Probe>>) {
    let probe = Arc::new(Mutex::new(Probe::default()));
    let store = SyncsLater {
        inner: MemoryStore::new(),
        probe: probe.clone(),
    };
    let mut r = rig_with_store(
        Config {
            presence_timeout: Duration::from_millis(50),
            ..Config::default()
        },
        Box::new(store),
    );
    set_pin(&mut r, PIN, ProtocolVersion::Two).expect("setPIN");
    (r, probe)
}

#[test]
fn every_counter_is_synced_before_its_answer() {
    let (mut r, probe) = rig_syncing_later();
    let a = make(&mut r, &Mc::new("example.com", b"a", true));
    make(&mut r, &Mc::new("example.com", b"b", true));
    let before = probe.lock().unwrap().syncs;
    let answer = r.auth.answer(
        &ga("example.com", std::slice::from_ref(&a.id), None),
        &NoInteraction,
    );
    assert_eq!(answer.first(), Some(&0));
    assert!(
        !probe.lock().unwrap().unsynced,
        "GetAssertion answered before its counter was synced"
    );
    // Without an allow list: two accounts, the second through GetNextAssertion.
    let first = r.auth.answer(&ga("example.com", &[], None), &NoInteraction);
    assert_eq!(
        parse(&first).map(|m| get(&m, 5).cloned()),
        Ok(Some(Value::from(2)))
    );
    assert!(
        !probe.lock().unwrap().unsynced,
        "GetAssertion answered before its counter was synced"
    );
    let next = r.auth.answer(&[command::GET_NEXT_ASSERTION], &NoInteraction);
    assert_eq!(next.first(), Some(&0));
    assert!(
        !probe.lock().unwrap().unsynced,
        "GetNextAssertion answered before its counter was synced"
    );
    assert!(probe.lock().unwrap().syncs >= before + 3);
}

#[test]
fn a_counter_that_could_not_be_synced_is_not_acknowledged() {
    let (mut r, probe) = rig_syncing_later();
    let a = make(&mut r, &Mc::new("example.com", b"a", false));
    let request = ga("example.com", std::slice::from_ref(&a.id), None);
    probe.lock().unwrap().fail_next_sync = true;
    assert_eq!(r.auth.handle(&request, &NoInteraction), [CtapError::Other.code()]);
    // The next one is answered, with a counter above any that may have reached the disk.
    let m = parse(&r.auth.handle(&request, &NoInteraction)).expect("the next GetAssertion");
    assert!(counter(&bytes_of(get(&m, 2))) > counter(&a.auth_data) + 1);
}
