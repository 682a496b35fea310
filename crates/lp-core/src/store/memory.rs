//! An in-memory store for unit tests, fuzzing and benchmarks of the core.
//! It keeps the same contract as the SQLite store except durability.

use super::{Activity, Credential, CredentialStore, StoreError};
use std::collections::{BTreeMap, HashMap};

/// (RP ID, user id) of a discoverable credential.
type Account = (String, Vec<u8>);

#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    creds: Vec<Credential>,
    /// The discoverable credentials by (RP ID, user id), pointing at their
    /// id: the resident-key replacement and the count without a scan, as the
    /// SQLite store's index and counter do.
    resident: HashMap<Account, Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
    generation: u64,
    /// Oldest first; nothing is pending in memory, so `log` writes at once.
    activity: Vec<Activity>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl CredentialStore for MemoryStore {
    fn insert(&mut self, cred: &Credential) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut removed = Vec::new();
        if cred.discoverable {
            let account = (cred.rp_id.clone(), cred.user_id.clone());
            if let Some(old) = self.resident.insert(account, cred.id.clone()) {
                self.creds.retain(|c| c.id != old);
                removed.push(old);
            }
            self.generation += 1;
        }
        self.creds.push(cred.clone());
        Ok(removed)
    }

    fn get(&self, id: &[u8]) -> Result<Option<Credential>, StoreError> {
        Ok(self.creds.iter().find(|c| c.id == id).cloned())
    }

    fn discoverable_for_rp(&self, rp_id: &str) -> Result<Vec<Credential>, StoreError> {
        // Later insertions are newer: walk backwards for "most recent first".
        Ok(self
            .creds
            .iter()
            .rev()
            .filter(|c| c.discoverable && c.rp_id == rp_id)
            .cloned()
            .collect())
    }

    fn increment_counter(&mut self, id: &[u8], now: u64) -> Result<u32, StoreError> {
        let c = self
            .creds
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| StoreError::Backend("no such credential".into()))?;
        c.sign_count = c.sign_count.saturating_add(1);
        c.last_used = Some(now);
        Ok(c.sign_count)
    }

    fn delete(&mut self, id: &[u8]) -> Result<bool, StoreError> {
        let Some(at) = self.creds.iter().position(|c| c.id == id) else {
            return Ok(false);
        };
        let gone = self.creds.remove(at);
        if gone.discoverable {
            let account = (gone.rp_id, gone.user_id);
            if self.resident.get(&account) == Some(&gone.id) {
                self.resident.remove(&account);
            }
            self.generation += 1;
        }
        Ok(true)
    }

    fn delete_all(&mut self) -> Result<(), StoreError> {
        self.creds.clear();
        self.resident.clear();
        self.generation += 1;
        Ok(())
    }

    fn all(&self) -> Result<Vec<Credential>, StoreError> {
        Ok(self.creds.iter().rev().cloned().collect())
    }

    fn update_user(
        &mut self,
        id: &[u8],
        name: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<bool, StoreError> {
        Ok(match self.creds.iter_mut().find(|c| c.id == id) {
            Some(c) => {
                c.user_name = name.map(str::to_owned);
                c.user_display_name = display_name.map(str::to_owned);
                self.generation += 1;
                true
            }
            None => false,
        })
    }

    fn discoverable_rps(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut rps: std::collections::BTreeMap<String, Option<String>> = Default::default();
        for c in self.creds.iter().filter(|c| c.discoverable) {
            rps.entry(c.rp_id.clone()).or_insert_with(|| c.rp_name.clone());
        }
        Ok(rps.into_iter().collect())
    }

    fn count_discoverable(&self) -> Result<u64, StoreError> {
        Ok(self.resident.len() as u64)
    }

    fn discoverable_generation(&self) -> Result<u64, StoreError> {
        Ok(self.generation)
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key).cloned())
    }

    fn has_meta(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.meta.contains_key(key))
    }

    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete_meta(&mut self, key: &str) -> Result<(), StoreError> {
        self.meta.remove(key);
        Ok(())
    }

    fn log(&mut self, entry: Activity) {
        self.activity.push(entry);
    }

    fn flush_log(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn recent_activity(&self, limit: usize) -> Result<Vec<Activity>, StoreError> {
        Ok(self.activity.iter().rev().take(limit).cloned().collect())
    }

    fn trim_activity(&mut self, before: u64) -> Result<(), StoreError> {
        self.activity.retain(|a| a.time >= before && before != u64::MAX);
        let max = crate::activity::MAX_ENTRIES as usize;
        if self.activity.len() > max {
            self.activity.drain(..self.activity.len() - max);
        }
        Ok(())
    }
}
