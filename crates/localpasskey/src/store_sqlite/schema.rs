//! The database's schema, one step per version, and the migration that
//! brings an older file up to date.

use anyhow::bail;
use rusqlite::{Connection, TransactionBehavior};

/// The schema this code writes. A database with a higher `user_version` was
/// written by a newer LocalPasskey; we refuse it rather than guess.
pub(super) const SCHEMA_VERSION: i64 = 4;

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
    if version != SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}
