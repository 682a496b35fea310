use super::*;
use lp_core::activity::{Act, Activity, Outcome};
use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn cred(id: u8, rp: &str, user: &[u8], discoverable: bool) -> Credential {
    Credential {
        id: vec![id; 32],
        rp_id: rp.to_owned(),
        rp_name: Some(format!("{rp} name")),
        user_id: user.to_vec(),
        user_name: Some("alice".to_owned()),
        user_display_name: Some("Alice".to_owned()),
        discoverable,
        key_blob: vec![0xaa, id],
        public_key_cose: vec![0xa5, id],
        sign_count: 0,
        created: 1_700_000_000_000,
        last_used: None,
        cred_protect: 1,
        hmac_key: None,
        cred_blob: None,
        large_blob_key: None,
        third_party_payment: false,
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o777
}

fn side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

#[test]
fn round_trip_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let full = Credential {
        id: (0u8..32).collect(),
        rp_id: "example.com".into(),
        rp_name: Some("Example ☃".into()),
        user_id: vec![0, 1, 2, 0xff],
        user_name: Some("alice@example.com".into()),
        user_display_name: Some("Alice Ä".into()),
        discoverable: true,
        key_blob: vec![7; 300],
        public_key_cose: vec![0xa5, 1, 2, 3],
        sign_count: u32::MAX - 1,
        created: 1_732_000_000_123,
        last_used: Some(1_732_000_000_999),
        cred_protect: 3,
        hmac_key: Some(vec![5; 200]),
        cred_blob: Some(vec![6; 32]),
        large_blob_key: Some(vec![8; 32]),
        third_party_payment: true,
    };
    let bare = Credential {
        id: vec![9; 16],
        rp_id: "bare.test".into(),
        rp_name: None,
        user_id: vec![],
        user_name: None,
        user_display_name: None,
        discoverable: false,
        key_blob: vec![],
        public_key_cose: vec![],
        sign_count: 0,
        created: 0,
        last_used: None,
        cred_protect: 0,
        hmac_key: None,
        cred_blob: None,
        large_blob_key: None,
        third_party_payment: false,
    };
    assert!(store.insert(&full).unwrap().is_empty());
    assert!(store.insert(&bare).unwrap().is_empty());
    assert_eq!(store.get(&full.id).unwrap(), Some(full.clone()));
    assert_eq!(store.get(&bare.id).unwrap(), Some(bare.clone()));
    assert_eq!(store.get(&[1, 2, 3]).unwrap(), None);
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.all().unwrap(), vec![bare, full]);
}

#[test]
fn out_of_range_timestamps_are_refused_not_wrapped() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mut c = cred(1, "a.test", b"u", true);
    c.created = u64::MAX;
    assert!(store.insert(&c).is_err());
    assert_eq!(store.count().unwrap(), 0);
    let c = cred(1, "a.test", b"u", true);
    store.insert(&c).unwrap();
    assert!(store.increment_counter(&c.id, u64::MAX).is_err());
    assert_eq!(store.get(&c.id).unwrap().unwrap(), c);
}

#[test]
fn damaged_values_are_errors_not_panics() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let c = cred(1, "a.test", b"u", true);
    store.insert(&c).unwrap();
    // Bypass the CHECKs the way a damaged file would.
    store
        .conn
        .pragma_update(None, "ignore_check_constraints", "ON")
        .unwrap();
    store
        .conn
        .execute("UPDATE credentials SET sign_count = -5", [])
        .unwrap();
    let err = store.get(&c.id).unwrap_err().to_string();
    assert!(err.contains("sign_count"), "{err}");
    assert!(store.increment_counter(&c.id, 1).is_err());
    store
        .conn
        .execute("UPDATE credentials SET sign_count = 1, cred_protect = 300", [])
        .unwrap();
    assert!(store.all().is_err());
}

#[test]
fn persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = cred(1, "a.test", b"u1", true);
    let b = cred(2, "b.test", b"u2", false);
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        store.insert(&a).unwrap();
        store.insert(&b).unwrap();
        store.set_meta("pin", b"state").unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.get(&a.id).unwrap(), Some(a.clone()));
    assert_eq!(store.get(&b.id).unwrap(), Some(b));
    assert_eq!(store.discoverable_for_rp("a.test").unwrap(), vec![a]);
    assert_eq!(store.get_meta("pin").unwrap(), Some(b"state".to_vec()));
    assert_eq!(store.count().unwrap(), 2);
    store.integrity_check().unwrap();
}

#[test]
fn resident_replacement_only_same_rp_and_user_and_discoverable() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let old = cred(1, "a.test", b"alice", true);
    let other_user = cred(2, "a.test", b"bob", true);
    let other_rp = cred(3, "b.test", b"alice", true);
    let non_resident = cred(4, "a.test", b"alice", false);
    for c in [&old, &other_user, &other_rp, &non_resident] {
        assert!(store.insert(c).unwrap().is_empty());
    }
    let new = cred(5, "a.test", b"alice", true);
    assert_eq!(store.insert(&new).unwrap(), vec![old.id.clone()]);
    assert_eq!(store.get(&old.id).unwrap(), None);
    for c in [&other_user, &other_rp, &non_resident, &new] {
        assert_eq!(store.get(&c.id).unwrap().as_ref(), Some(c));
    }
    assert_eq!(
        store.discoverable_for_rp("a.test").unwrap(),
        vec![new.clone(), other_user.clone()]
    );
}

#[test]
fn non_discoverable_never_replaced_and_never_replaces() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let a = cred(1, "a.test", b"alice", false);
    let b = cred(2, "a.test", b"alice", false);
    let resident = cred(3, "a.test", b"alice", true);
    assert!(store.insert(&resident).unwrap().is_empty());
    assert!(store.insert(&a).unwrap().is_empty());
    assert!(store.insert(&b).unwrap().is_empty());
    assert_eq!(store.count().unwrap(), 3);
    // A second resident replaces the resident only.
    let resident2 = cred(4, "a.test", b"alice", true);
    assert_eq!(store.insert(&resident2).unwrap(), vec![resident.id]);
    assert!(store.get(&a.id).unwrap().is_some());
    assert!(store.get(&b.id).unwrap().is_some());
    assert_eq!(store.discoverable_for_rp("a.test").unwrap(), vec![resident2]);
}

#[test]
fn failed_insert_rolls_back_the_replacement() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let old = cred(1, "a.test", b"alice", true);
    let taken = cred(2, "b.test", b"bob", false);
    store.insert(&old).unwrap();
    store.insert(&taken).unwrap();
    // Same id as an existing row: the insert fails, so the resident
    // credential it would have replaced must still be there.
    let dup = cred(2, "a.test", b"alice", true);
    let err = store.insert(&dup).unwrap_err().to_string();
    assert!(!err.contains(&hex::encode(&dup.id)), "{err}");
    assert_eq!(store.get(&old.id).unwrap(), Some(old));
    assert_eq!(store.get(&taken.id).unwrap(), Some(taken));
}

#[test]
fn most_recent_first_even_with_equal_timestamps() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mut ids = Vec::new();
    for i in 0..10u8 {
        let mut c = cred(i, "a.test", &[i], true);
        // Timestamps tie and even go backwards; insertion order wins.
        c.created = 1000 - u64::from(i % 3);
        store.insert(&c).unwrap();
        ids.push(c.id);
    }
    ids.reverse();
    let got: Vec<_> = store
        .discoverable_for_rp("a.test")
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(got, ids);
    let all: Vec<_> = store.all().unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(all, ids);
    // Deleting the newest must not let a later insert sort below others.
    store.delete(&ids[0]).unwrap();
    let late = cred(200, "a.test", b"late", true);
    store.insert(&late).unwrap();
    assert_eq!(store.all().unwrap()[0].id, late.id);
}

#[test]
fn counter_increments_persist_and_saturate() {
    let dir = tempfile::tempdir().unwrap();
    let c = cred(1, "a.test", b"u", true);
    {
        let mut store = SqliteStore::open(dir.path()).unwrap();
        store.insert(&c).unwrap();
        assert_eq!(store.increment_counter(&c.id, 10).unwrap(), 1);
        assert_eq!(store.increment_counter(&c.id, 20).unwrap(), 2);
        assert!(store.increment_counter(&[0; 32], 30).is_err());
    }
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let got = store.get(&c.id).unwrap().unwrap();
    assert_eq!((got.sign_count, got.last_used), (2, Some(20)));
    assert_eq!(store.increment_counter(&c.id, 40).unwrap(), 3);

    let mut top = cred(2, "b.test", b"u", false);
    top.sign_count = u32::MAX - 1;
    store.insert(&top).unwrap();
    assert_eq!(store.increment_counter(&top.id, 1).unwrap(), u32::MAX);
    assert_eq!(store.increment_counter(&top.id, 2).unwrap(), u32::MAX);
    let got = store.get(&top.id).unwrap().unwrap();
    assert_eq!((got.sign_count, got.last_used), (u32::MAX, Some(2)));
}

#[test]
fn delete_and_delete_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let a = cred(1, "a.test", b"u", true);
    let b = cred(2, "b.test", b"u", false);
    store.insert(&a).unwrap();
    store.insert(&b).unwrap();
    store.set_meta("keep", b"me").unwrap();
    assert!(store.delete(&a.id).unwrap());
    assert!(!store.delete(&a.id).unwrap());
    assert_eq!(store.all().unwrap(), vec![b.clone()]);
    store.insert(&a).unwrap();
    store.delete_all().unwrap();
    assert_eq!(store.count().unwrap(), 0);
    assert!(store.all().unwrap().is_empty());
    assert!(store.discoverable_for_rp("a.test").unwrap().is_empty());
    // Settings are not credentials; reset of PIN state is the caller's job.
    assert_eq!(store.get_meta("keep").unwrap(), Some(b"me".to_vec()));
    drop(store);
    assert_eq!(SqliteStore::open(dir.path()).unwrap().count().unwrap(), 0);
}

#[test]
fn meta_get_set_overwrite() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(store.get_meta("k").unwrap(), None);
    store.set_meta("k", b"one").unwrap();
    store.set_meta("k", b"").unwrap();
    store.set_meta("other", &[0, 255]).unwrap();
    assert_eq!(store.get_meta("k").unwrap(), Some(vec![]));
    assert_eq!(store.get_meta("other").unwrap(), Some(vec![0, 255]));
}

#[test]
fn files_are_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("deep/er/localpasskey");
    let mut store = SqliteStore::open(&dir).unwrap();
    store.insert(&cred(1, "a.test", b"u", true)).unwrap();
    let db = dir.join(DB_FILE_NAME);
    assert_eq!(store.path(), Some(db.as_path()));
    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&root.path().join("deep")), 0o700);
    assert_eq!(mode_of(&db), 0o600);
    let wal = side_file(&db, "-wal");
    let shm = side_file(&db, "-shm");
    assert!(
        wal.exists() && shm.exists(),
        "WAL mode should create -wal and -shm"
    );
    assert_eq!(mode_of(&wal), 0o600);
    assert_eq!(mode_of(&shm), 0o600);
}

#[test]
fn loose_permissions_are_tightened() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("lp");
    drop(SqliteStore::open(&dir).unwrap());
    let db = dir.join(DB_FILE_NAME);
    std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&dir).unwrap();
    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&db), 0o600);
    store.integrity_check().unwrap();
}

#[test]
fn durability_pragmas_are_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let pragma = |name: &str| -> String {
        store
            .conn
            .pragma_query_value(None, name, |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| format!("{v:?}"))
            .unwrap()
    };
    assert_eq!(pragma("journal_mode"), r#"Text("wal")"#);
    assert_eq!(pragma("synchronous"), "Integer(2)"); // FULL
    assert_eq!(pragma("foreign_keys"), "Integer(1)");
    assert_eq!(pragma("user_version"), format!("Integer({SCHEMA_VERSION})"));
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    assert!(SqliteStore::open(dir.path()).is_err());
}

#[test]
fn second_connection_sees_commits() {
    // The CLI opens the database while the daemon has it open.
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = SqliteStore::open(dir.path()).unwrap();
    let mut cli = SqliteStore::open(dir.path()).unwrap();
    let c = cred(0xab, "a.test", b"u", true);
    daemon.insert(&c).unwrap();
    assert_eq!(cli.find_by_prefix(&[0xab, 0xab]).unwrap(), vec![c.clone()]);
    assert!(cli.delete(&c.id).unwrap());
    assert_eq!(daemon.get(&c.id).unwrap(), None);
}

#[test]
fn integrity_check_ok() {
    let store = SqliteStore::open_in_memory().unwrap();
    store.integrity_check().unwrap();
    assert_eq!(store.path(), None);
}

#[test]
fn find_by_prefix_uses_exact_byte_ranges() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mk = |id: &[u8]| Credential {
        id: id.to_vec(),
        ..cred(0, "a.test", id, false)
    };
    let ids: [&[u8]; 7] = [
        &[0x12, 0x34, 0x00],
        &[0x12, 0x34, 0xff],
        &[0x12, 0x35, 0x00],
        &[0x12, 0xff, 0x01],
        &[0x13, 0x00, 0x00],
        &[0xff, 0xff, 0x01],
        &[0x12],
    ];
    for id in ids {
        store.insert(&mk(id)).unwrap();
    }
    let find = |p: &[u8]| -> Vec<Vec<u8>> {
        let mut v: Vec<_> = store
            .find_by_prefix(p)
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        find(&[0x12, 0x34]),
        vec![vec![0x12, 0x34, 0x00], vec![0x12, 0x34, 0xff]]
    );
    assert_eq!(find(&[0x12, 0xff]), vec![vec![0x12, 0xff, 0x01]]);
    assert_eq!(find(&[0xff, 0xff]), vec![vec![0xff, 0xff, 0x01]]);
    assert_eq!(find(&[0x12]).len(), 5);
    assert_eq!(find(&[]).len(), ids.len());
    assert!(find(&[0x14]).is_empty());
    assert_eq!(prefix_successor(&[0x12, 0xff]), Some(vec![0x13]));
    assert_eq!(prefix_successor(&[0xff]), None);
}

#[test]
fn many_credentials_across_rps() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let mut n = 0u32;
    for rp in 0..50u32 {
        for user in 0..60u32 {
            n += 1;
            let mut id = vec![0u8; 32];
            id[..4].copy_from_slice(&n.to_be_bytes());
            let c = Credential {
                id,
                rp_id: format!("rp{rp}.test"),
                // Every third is non-discoverable.
                discoverable: user % 3 != 0,
                user_id: user.to_be_bytes().to_vec(),
                ..cred(0, "", b"", true)
            };
            store.insert(&c).unwrap();
        }
    }
    assert_eq!(store.count().unwrap(), 3000);
    let got = store.discoverable_for_rp("rp17.test").unwrap();
    assert_eq!(got.len(), 40);
    assert!(got.iter().all(|c| c.rp_id == "rp17.test" && c.discoverable));
    assert!(got.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert!(store.discoverable_for_rp("rp1.tes").unwrap().is_empty());
    assert!(store.discoverable_for_rp("nobody.test").unwrap().is_empty());
}

#[test]
fn hot_queries_use_indexes() {
    let store = SqliteStore::open_in_memory().unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = store.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join(" | ")
    };
    let queries = [
        "SELECT id FROM credentials WHERE discoverable = 1 AND rp_id = 'x' ORDER BY insert_seq DESC",
        "DELETE FROM credentials WHERE discoverable = 1 AND rp_id = 'x' AND user_id = x'01'",
        "SELECT id FROM credentials WHERE id = x'01'",
        "SELECT id FROM credentials WHERE id >= x'01' AND id < x'02'",
        "UPDATE credentials SET sign_count = 1 WHERE id = x'01'",
    ];
    for q in queries {
        let p = plan(q);
        assert!(
            p.contains("USING INDEX") || p.contains("USING COVERING INDEX"),
            "{q}: {p}"
        );
        assert!(!p.contains("SCAN credentials"), "{q}: {p}");
    }
}

fn entry(time: u64, act: Act, rp: &str) -> Activity {
    Activity {
        time,
        act,
        outcome: Outcome::Approved,
        rp_id: rp.to_owned(),
        account: "alice".to_owned(),
    }
}

#[test]
fn a_logged_entry_rides_the_next_change_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let c = cred(1, "example.com", b"u", true);
    store.insert(&c).unwrap();
    store.log(entry(10, Act::SignIn, "example.com"));
    // Not written yet: a second handle on the file sees nothing.
    assert!(SqliteStore::open(dir.path())
        .unwrap()
        .recent_activity(10)
        .unwrap()
        .is_empty());
    store.increment_counter(&c.id, 11).unwrap();
    let other = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        other.recent_activity(10).unwrap(),
        [entry(10, Act::SignIn, "example.com")]
    );
    store.log(entry(12, Act::Check, "example.com"));
    store.flush_log().unwrap();
    store.flush_log().unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    let got: Vec<Act> = store.recent_activity(10).unwrap().iter().map(|a| a.act).collect();
    assert_eq!(got, [Act::Check, Act::SignIn], "newest first, each once");
    assert_eq!(store.recent_activity(1).unwrap().len(), 1);
}

#[test]
fn trim_drops_old_entries_and_caps_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    for t in [5, 50, 500] {
        store.log(entry(t, Act::SignIn, &format!("t{t}.example")));
    }
    store.flush_log().unwrap();
    store.trim_activity(50).unwrap();
    let rps: Vec<String> = store
        .recent_activity(10)
        .unwrap()
        .into_iter()
        .map(|a| a.rp_id)
        .collect();
    assert_eq!(rps, ["t500.example", "t50.example"]);
    store.trim_activity(u64::MAX).unwrap();
    assert!(store.recent_activity(10).unwrap().is_empty());
}

#[test]
fn a_damaged_activity_row_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.log(entry(1, Act::SignIn, "example.com"));
    store.flush_log().unwrap();
    store
        .conn
        .execute("UPDATE activity SET action = 'launch-missiles'", [])
        .unwrap();
    assert!(store.recent_activity(10).is_err());
}
