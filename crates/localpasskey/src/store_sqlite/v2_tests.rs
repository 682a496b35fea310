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
