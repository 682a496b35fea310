use super::*;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;

fn cred(id: u8, rp: &str, user: &[u8], discoverable: bool) -> Credential {
    Credential {
        id: vec![id; 32],
        rp_id: rp.into(),
        rp_name: Some(format!("{rp} name")),
        user_id: user.to_vec(),
        user_name: Some("old".into()),
        user_display_name: Some("Old".into()),
        discoverable,
        key_blob: vec![1],
        public_key_cose: vec![2],
        sign_count: 0,
        created: 1,
        last_used: None,
        cred_protect: 1,
        hmac_key: None,
        cred_blob: None,
        large_blob_key: None,
        third_party_payment: false,
    }
}

#[test]
fn a_version_1_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO credentials (id, rp_id, user_id, discoverable, key_blob, public_key_cose, \
             sign_count, created, cred_protect) VALUES (?1, 'v1.example', x'01', 1, x'02', x'03', 5, 7, 1)",
            params![vec![4u8; 32]],
        )
        .unwrap();
    }
    std::fs::set_permissions(dir.path().join(DB_FILE_NAME), Permissions::from_mode(0o600)).unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let c = store.get(&[4u8; 32]).unwrap().expect("the v1 row survives");
    assert_eq!(c.sign_count, 5);
    assert_eq!((c.hmac_key, c.cred_blob, c.large_blob_key), (None, None, None));
    assert!(!c.third_party_payment, "a v1 row was never enabled for payment");
    let v: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}

#[test]
fn rps_counts_and_user_updates() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    store.insert(&cred(1, "b.example", b"u1", true)).unwrap();
    store.insert(&cred(2, "a.example", b"u2", true)).unwrap();
    store.insert(&cred(3, "a.example", b"u3", true)).unwrap();
    store.insert(&cred(4, "c.example", b"u4", false)).unwrap();
    assert_eq!(store.count_discoverable().unwrap(), 3);
    let rps: Vec<String> = store
        .discoverable_rps()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        rps,
        ["a.example", "b.example"],
        "sorted, discoverable only, each once"
    );
    assert!(store.update_user(&[2; 32], Some("new"), None).unwrap());
    let c = store.get(&[2; 32]).unwrap().unwrap();
    assert_eq!(c.user_name.as_deref(), Some("new"));
    assert_eq!(c.user_display_name, None, "absent means removed");
    assert!(!store.update_user(&[9; 32], Some("x"), None).unwrap());
}

/// The generation moves with every change a listing shows, and only then,
/// and it survives reopening the database.
#[test]
fn the_discoverable_generation_follows_what_a_listing_shows() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let mut last = store.discoverable_generation().unwrap();
    let mut changed = |store: &SqliteStore, expected: bool, what: &str| {
        let now = store.discoverable_generation().unwrap();
        assert_eq!(now != last, expected, "{what}");
        last = now;
    };
    store.insert(&cred(1, "a.example", b"u1", true)).unwrap();
    changed(&store, true, "a discoverable credential added");
    store.insert(&cred(2, "a.example", b"u2", false)).unwrap();
    changed(&store, false, "a non-discoverable one added");
    store.increment_counter(&[1; 32], 5).unwrap();
    changed(&store, false, "a signature counted");
    store.update_user(&[1; 32], Some("new"), None).unwrap();
    changed(&store, true, "an account renamed");
    store.delete(&[2; 32]).unwrap();
    changed(&store, false, "a non-discoverable one deleted");
    store.delete(&[1; 32]).unwrap();
    changed(&store, true, "a discoverable one deleted");
    store.delete(&[1; 32]).unwrap();
    changed(&store, false, "nothing deleted");
    drop(store);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    changed(&store, false, "reopened");
    store.delete_all().unwrap();
    changed(&store, true, "everything deleted");
}

/// Version 5: a database of version 4 gets the RP ID hashes of its rows
/// and the discoverable count, and both stay right through every change.
#[test]
fn a_version_4_database_gets_rp_id_hashes_and_a_kept_count() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join(DB_FILE_NAME)).unwrap();
        for step in [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4] {
            conn.execute_batch(step).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        for (id, rp, discoverable) in [
            (1u8, "a.example", 1),
            (2, "a.example", 1),
            (3, "b.example", 1),
            (4, "c.example", 0),
        ] {
            conn.execute(
                "INSERT INTO credentials (id, rp_id, user_id, discoverable, key_blob, public_key_cose, \
                 sign_count, created, cred_protect) VALUES (?1, ?2, ?3, ?4, x'02', x'03', 0, 7, 1)",
                params![vec![id; 32], rp, vec![id], discoverable],
            )
            .unwrap();
        }
    }
    std::fs::set_permissions(dir.path().join(DB_FILE_NAME), Permissions::from_mode(0o600)).unwrap();
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let v: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let hash = |rp: &str| Sha256::digest(rp.as_bytes()).to_vec();
    let unhashed: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM credentials WHERE rp_id_hash IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unhashed, 0, "rows of version 4 left without a hash");
    assert_eq!(
        store
            .discoverable_rp_by_hash(&hash("a.example"))
            .unwrap()
            .as_deref(),
        Some("a.example")
    );
    assert_eq!(
        store
            .discoverable_rp_by_hash(&hash("b.example"))
            .unwrap()
            .as_deref(),
        Some("b.example")
    );
    assert_eq!(
        store.discoverable_rp_by_hash(&hash("c.example")).unwrap(),
        None,
        "not discoverable"
    );
    assert_eq!(store.discoverable_rp_by_hash(&hash("d.example")).unwrap(), None);
    assert_eq!(store.discoverable_rp_by_hash(b"short").unwrap(), None);
    assert_eq!(store.count_discoverable().unwrap(), 3);

    // The index answers the hash lookup (no scan of every row).
    let plan: String = store
        .conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT rp_id FROM credentials WHERE discoverable = 1 AND rp_id_hash = ?1 LIMIT 1",
            params![hash("a.example")],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("credentials_rp_hash"), "{plan}");

    // The count follows inserts, replacements, deletions and Reset.
    store.insert(&cred(5, "d.example", b"u5", true)).unwrap();
    assert_eq!(
        store
            .discoverable_rp_by_hash(&hash("d.example"))
            .unwrap()
            .as_deref(),
        Some("d.example")
    );
    store.insert(&cred(6, "d.example", b"u5", true)).unwrap();
    store.insert(&cred(7, "e.example", b"u7", false)).unwrap();
    assert_eq!(
        store.count_discoverable().unwrap(),
        4,
        "a replacement counted twice"
    );
    assert!(store.delete(&[1; 32]).unwrap());
    assert!(store.delete(&[4; 32]).unwrap());
    assert_eq!(store.count_discoverable().unwrap(), 3);
    let counted: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM credentials WHERE discoverable = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted, 3);
    drop(store);
    let mut store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        store.count_discoverable().unwrap(),
        3,
        "the count after reopening"
    );
    store.delete_all().unwrap();
    assert_eq!(store.count_discoverable().unwrap(), 0);
    assert_eq!(store.discoverable_rp_by_hash(&hash("a.example")).unwrap(), None);
}
