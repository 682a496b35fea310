//! The database's schema, one step per version, and the migration that
//! brings an older file up to date.

use anyhow::bail;
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use sha2::{Digest, Sha256};

/// The schema this code writes. A database with a higher `user_version` was
/// written by a newer LocalPasskey; we refuse it rather than guess.
pub(super) const SCHEMA_VERSION: i64 = 5;

/// Schema version 5, step 1: the SHA-256 of each credential's RP ID, the
/// form in which credential management names an RP
/// (enumerateCredentialsBegin's rpIDHash); filled for existing rows by
/// [`migrate`] (SQLite has no SHA-256), and by every insert.
pub(super) const SCHEMA_V5_COLUMN: &str = "
ALTER TABLE credentials ADD COLUMN rp_id_hash BLOB CHECK (rp_id_hash IS NULL OR length(rp_id_hash) = 32);
";

/// Schema version 5, step 2: an index on the hash (discoverable rows, the
/// only ones credential management lists), so finding the RP of a hash is
/// O(log n) and not a hash of every RP ID; and the number of discoverable
/// credentials kept by triggers in the same statement as the change, so the
/// limit check of every discoverable MakeCredential (and getCredsMetadata)
/// reads one row instead of counting them all.
pub(super) const SCHEMA_V5_INDEX: &str = "
CREATE INDEX credentials_rp_hash ON credentials (rp_id_hash) WHERE discoverable = 1;
CREATE TABLE discoverable_count (
    only INTEGER PRIMARY KEY CHECK (only = 0),
    n    INTEGER NOT NULL CHECK (n >= 0)
) STRICT;
INSERT INTO discoverable_count (only, n)
    SELECT 0, count(*) FROM credentials WHERE discoverable = 1;
CREATE TRIGGER discoverable_count_insert AFTER INSERT ON credentials
    WHEN NEW.discoverable = 1
    BEGIN UPDATE discoverable_count SET n = n + 1; END;
CREATE TRIGGER discoverable_count_delete AFTER DELETE ON credentials
    WHEN OLD.discoverable = 1
    BEGIN UPDATE discoverable_count SET n = n - 1; END;
CREATE TRIGGER discoverable_count_update AFTER UPDATE OF discoverable ON credentials
    WHEN OLD.discoverable != NEW.discoverable
    BEGIN UPDATE discoverable_count SET n = n + NEW.discoverable - OLD.discoverable; END;
";

/// Schema version 4: the local activity log. `seq` orders entries as they
/// were written (the wall clock may go backwards); the index on `time`
/// keeps the retention trim a range delete.
pub(super) const SCHEMA_V4: &str = "
CREATE TABLE activity (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    time    INTEGER NOT NULL CHECK (time >= 0),
    action  TEXT    NOT NULL,
    outcome TEXT    NOT NULL,
    rp_id   TEXT    NOT NULL,
    account TEXT    NOT NULL
) STRICT;
CREATE INDEX activity_time ON activity (time);
";

/// Schema version 3: CTAP 2.2's thirdPartyPayment flag.
pub(super) const SCHEMA_V3: &str = "
ALTER TABLE credentials ADD COLUMN third_party_payment INTEGER NOT NULL DEFAULT 0
    CHECK (third_party_payment IN (0, 1));
";

/// Schema version 2: the CTAP 2.1 extensions' per-credential data. The HMAC
/// key is custody-wrapped like the signing key; credBlob and largeBlobKey are
/// what the RP and the platform asked us to keep.
pub(super) const SCHEMA_V2: &str = "
ALTER TABLE credentials ADD COLUMN hmac_key BLOB;
ALTER TABLE credentials ADD COLUMN cred_blob BLOB;
ALTER TABLE credentials ADD COLUMN large_blob_key BLOB;
";

/// Schema version 1.
///
/// `insert_seq` is an AUTOINCREMENT rowid so "most recently created first"
/// does not depend on the wall clock (timestamps tie within a millisecond and
/// clocks go backwards) and a sequence number is never reused, even after
/// deletions. Because the rowid is the integer key, `id` is `UNIQUE` rather
/// than `PRIMARY KEY`; both give the same index on it.
///
/// The partial index covers exactly the rows the two hot queries touch
/// (discoverable ones): the resident-key replacement on (rp_id, user_id) and
/// `discoverable_for_rp` on its rp_id prefix, both O(log n).
///
/// STRICT and the CHECKs keep a bug from storing a value the conversions
/// below would have to reject later; they still check, for a damaged file.
pub(super) const SCHEMA_V1: &str = "
CREATE TABLE credentials (
    insert_seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id                BLOB    NOT NULL UNIQUE,
    rp_id             TEXT    NOT NULL,
    rp_name           TEXT,
    user_id           BLOB    NOT NULL,
    user_name         TEXT,
    user_display_name TEXT,
    discoverable      INTEGER NOT NULL CHECK (discoverable IN (0, 1)),
    key_blob          BLOB    NOT NULL,
    public_key_cose   BLOB    NOT NULL,
    sign_count        INTEGER NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    created           INTEGER NOT NULL CHECK (created >= 0),
    last_used         INTEGER CHECK (last_used >= 0),
    cred_protect      INTEGER NOT NULL CHECK (cred_protect BETWEEN 0 AND 255)
) STRICT;
CREATE INDEX credentials_resident ON credentials (rp_id, user_id) WHERE discoverable = 1;
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
";

/// Brings the schema to [`SCHEMA_VERSION`], one step per version, each
/// in the same transaction as its `user_version` bump so a crash leaves
/// either the old or the new schema.
pub(super) fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        bail!(
            "the credential database has schema version {version}, newer than this \
             LocalPasskey understands ({SCHEMA_VERSION}); refusing to touch it"
        );
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)?;
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3)?;
    }
    if version < 4 {
        tx.execute_batch(SCHEMA_V4)?;
    }
    if version < 5 {
        tx.execute_batch(SCHEMA_V5_COLUMN)?;
        fill_rp_id_hashes(&tx)?;
        tx.execute_batch(SCHEMA_V5_INDEX)?;
    }
    if version != SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

/// SHA-256 of an RP ID, as credential management names the RP.
pub(super) fn rp_id_hash(rp_id: &str) -> [u8; 32] {
    Sha256::digest(rp_id.as_bytes()).into()
}

/// Version 5's hash for every row written before it (one pass, in the
/// migration's transaction).
fn fill_rp_id_hashes(tx: &Transaction) -> anyhow::Result<()> {
    let rows: Vec<(i64, String)> = tx
        .prepare("SELECT insert_seq, rp_id FROM credentials")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut update = tx.prepare("UPDATE credentials SET rp_id_hash = ?1 WHERE insert_seq = ?2")?;
    for (seq, rp_id) in rows {
        update.execute(params![&rp_id_hash(&rp_id)[..], seq])?;
    }
    Ok(())
}
