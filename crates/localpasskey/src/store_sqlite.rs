//! The credential store on disk: one SQLite database in WAL mode.
//!
//! SQLite is here for its commit protocol, not for SQL: a transaction either
//! reaches the disk whole or not at all, whatever instant the process is
//! killed or the power goes. That is what lets the authenticator keep its
//! promise that nothing acknowledged to a client is ever lost. WAL mode lets
//! `localpasskey list` and `delete` read and write the same file while the
//! daemon runs, without either of them seeing half a change.
//!
//! The files are private from their first byte: the directory is 0700, the
//! database file is created 0600 by us before SQLite opens it, and SQLite
//! gives its `-wal` and `-shm` files the database file's mode.

use anyhow::{bail, Context};
use lp_core::store::{Credential, CredentialStore, StoreError};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior};
use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file inside the data directory.
pub const DB_FILE_NAME: &str = "credentials.sqlite3";

/// The schema this code writes. A database with a higher `user_version` was
/// written by a newer LocalPasskey; we refuse it rather than guess.
const SCHEMA_VERSION: i64 = 3;

/// How long a writer waits for another process (the CLI while the daemon
/// runs, or the other way round) before giving up. Every transaction here is
/// tiny, so a few seconds means "something is wrong", not "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Columns in the order [`read_row`] expects them.
const COLUMNS: &str = "id, rp_id, rp_name, user_id, user_name, user_display_name, discoverable, \
     key_blob, public_key_cose, sign_count, created, last_used, cred_protect, hmac_key, cred_blob, \
     large_blob_key, third_party_payment";

/// The meta key of the discoverable credentials' generation: a counter
/// bumped in the same transaction as every change a credential-management
/// listing would show (CTAP 2.2's credential store state).
const GENERATION_KEY: &str = "store.discoverable_generation";

/// Schema version 3: CTAP 2.2's thirdPartyPayment flag.
const SCHEMA_V3: &str = "
ALTER TABLE credentials ADD COLUMN third_party_payment INTEGER NOT NULL DEFAULT 0
    CHECK (third_party_payment IN (0, 1));
";

/// Schema version 2: the CTAP 2.1 extensions' per-credential data. The HMAC
/// key is custody-wrapped like the signing key; credBlob and largeBlobKey are
/// what the RP and the platform asked us to keep.
const SCHEMA_V2: &str = "
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
const SCHEMA_V1: &str = "
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

/// The SQLite-backed [`CredentialStore`].
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`.
    ///
    /// Permissions are fixed before SQLite touches anything so that no file
    /// holding key blobs ever exists readable by another user, not even for
    /// the instant between creating and chmod-ing it.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        prepare_dir(data_dir)?;
        let path = data_dir.join(DB_FILE_NAME);
        create_private_file(&path, data_dir)?;
        for suffix in ["-wal", "-shm"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            tighten_existing(Path::new(&side), 0o600)?;
        }
        // No SQLITE_OPEN_CREATE: the file exists with the right mode, and if
        // it vanished in between we would rather fail than let SQLite create
        // one with its default mode. NOFOLLOW: a symlink planted in place of
        // the database would redirect our writes.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(&path, flags)
            .with_context(|| format!("cannot open the credential database {}", path.display()))?;
        let mut store = Self {
            conn,
            path: Some(path),
        };
        store
            .configure()
            .with_context(|| format!("cannot set up the credential database in {}", data_dir.display()))?;
        Ok(store)
    }

    /// A store that lives and dies with the value, for tests. Same schema and
    /// semantics, no durability.
    #[cfg(test)]
    pub fn open_in_memory() -> anyhow::Result<Self> {
        let conn = Connection::open_in_memory().context("cannot open an in-memory database")?;
        let mut store = Self { conn, path: None };
        store.configure()?;
        Ok(store)
    }

    /// Where the database lives; `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs SQLite's full consistency check, so a damaged file is noticed
    /// before it is trusted (or reported by `localpasskey info`).
    pub fn integrity_check(&self) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let lines = stmt
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        if lines.len() == 1 && lines[0] == "ok" {
            Ok(())
        } else {
            bail!("credential database is damaged: {}", lines.join("; "))
        }
    }

    /// Credentials whose id starts with `prefix`, most recently created
    /// first. `localpasskey delete` takes a hex prefix of the id; a range on
    /// the id index finds the matches without reading every row.
    pub fn find_by_prefix(&self, prefix: &[u8]) -> Result<Vec<Credential>, StoreError> {
        let raws = match prefix_successor(prefix) {
            Some(end) => self.query(
                &format!(
                    "SELECT {COLUMNS} FROM credentials WHERE id >= ?1 AND id < ?2 \
                     ORDER BY insert_seq DESC"
                ),
                params![prefix, end],
            )?,
            None => self.query(
                &format!("SELECT {COLUMNS} FROM credentials WHERE id >= ?1 ORDER BY insert_seq DESC"),
                params![prefix],
            )?,
        };
        // The range is exact for byte strings, but the filter costs nothing
        // and keeps a wrong answer from ever reaching `delete`.
        Ok(raws.into_iter().filter(|c| c.id.starts_with(prefix)).collect())
    }

    /// How many credentials there are (for `localpasskey info` and the
    /// daemon's start-up line).
    pub fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM credentials", [], |r| r.get(0))
            .map_err(backend("count credentials"))?;
        to_u64(n, "count")
    }

    fn configure(&mut self) -> anyhow::Result<()> {
        let conn = &self.conn;
        // First, so that the pragmas and migration below also wait for a
        // concurrent process instead of failing at once.
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if self.path.is_some() {
            // WAL: readers never block the writer and a commit is one
            // append to the log, which is what makes FULL affordable.
            let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                bail!("the database refused WAL mode (got {mode:?})");
            }
        }
        // FULL: in WAL mode every commit fsyncs the log before returning, so
        // a change we report as done (and the authenticator acknowledges to
        // the client) survives SIGKILL and power loss. NORMAL would only
        // protect against corruption and could silently drop the last
        // commits — a lost signature counter or a vanished passkey.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted credentials (key blobs) are overwritten, not left in free
        // pages for anyone who later reads the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        // The schema is ours; nothing in it should run functions with side
        // effects if someone edits the file.
        conn.pragma_update(None, "trusted_schema", "OFF")?;
        self.migrate()
    }

    /// Brings the schema to [`SCHEMA_VERSION`], one step per version, each
    /// in the same transaction as its `user_version` bump so a crash leaves
    /// either the old or the new schema.
    fn migrate(&mut self) -> anyhow::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
        if version != SCHEMA_VERSION {
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Runs `f` as one IMMEDIATE transaction: the write lock is taken up
    /// front, so two processes never both read and then fail to upgrade.
    /// Dropping the transaction on an error rolls everything back.
    fn write<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend(what))?;
        let out = f(&tx)?;
        tx.commit().map_err(backend(what))?;
        Ok(out)
    }

    /// After a deletion: copy the WAL into the database (where secure_delete
    /// has zeroed the freed bytes) and truncate the WAL, so a deleted
    /// credential's wrapped key blobs do not linger in `-wal` frames. Best
    /// effort: a reader (say `localpasskey list`) can make it wait; the next
    /// deletion or SQLite's own checkpoints finish the job.
    fn scrub(&self) {
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
        {
            tracing::warn!("could not checkpoint the database after a deletion: {e}");
        }
    }

    fn query(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Credential>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(backend("prepare query"))?;
        let rows = stmt
            .query_map(params, read_row)
            .map_err(backend("query credentials"))?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(raw.map_err(backend("read credential"))?.into_credential()?);
        }
        Ok(out)
    }
}

impl CredentialStore for SqliteStore {
    fn insert(&mut self, cred: &Credential) -> Result<Vec<Vec<u8>>, StoreError> {
        let sign_count = i64::from(cred.sign_count);
        let created = to_i64(cred.created, "created")?;
        let last_used = cred.last_used.map(|t| to_i64(t, "last_used")).transpose()?;
        let removed = self.write("insert credential", |tx| {
            let mut removed = Vec::new();
            if cred.discoverable {
                let mut stmt = tx
                    .prepare_cached(
                        "DELETE FROM credentials WHERE discoverable = 1 AND rp_id = ?1 AND user_id = ?2 \
                         RETURNING id",
                    )
                    .map_err(backend("replace resident credential"))?;
                let ids = stmt
                    .query_map(params![cred.rp_id, cred.user_id], |r| r.get::<_, Vec<u8>>(0))
                    .map_err(backend("replace resident credential"))?;
                for id in ids {
                    removed.push(id.map_err(backend("replace resident credential"))?);
                }
            }
            tx.prepare_cached(
                "INSERT INTO credentials (id, rp_id, rp_name, user_id, user_name, user_display_name, \
                 discoverable, key_blob, public_key_cose, sign_count, created, last_used, cred_protect, \
                 hmac_key, cred_blob, large_blob_key, third_party_payment) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    cred.id,
                    cred.rp_id,
                    cred.rp_name,
                    cred.user_id,
                    cred.user_name,
                    cred.user_display_name,
                    cred.discoverable,
                    cred.key_blob,
                    cred.public_key_cose,
                    sign_count,
                    created,
                    last_used,
                    cred.cred_protect,
                    cred.hmac_key,
                    cred.cred_blob,
                    cred.large_blob_key,
                    cred.third_party_payment,
                ])
            })
            .map_err(backend("insert credential"))?;
            if cred.discoverable {
                bump_generation(tx)?;
            }
            Ok(removed)
        })?;
        if !removed.is_empty() {
            self.scrub();
        }
        Ok(removed)
    }

    fn get(&self, id: &[u8]) -> Result<Option<Credential>, StoreError> {
        let raw = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM credentials WHERE id = ?1"))
            .and_then(|mut stmt| stmt.query_row(params![id], read_row).optional())
            .map_err(backend("get credential"))?;
        raw.map(RawCredential::into_credential).transpose()
    }

    fn discoverable_for_rp(&self, rp_id: &str) -> Result<Vec<Credential>, StoreError> {
        // `discoverable = 1` is a literal, not a parameter, so SQLite can
        // prove the partial index applies.
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM credentials WHERE discoverable = 1 AND rp_id = ?1 \
                 ORDER BY insert_seq DESC"
            ),
            params![rp_id],
        )
    }

    fn increment_counter(&mut self, id: &[u8], now: u64) -> Result<u32, StoreError> {
        let now = to_i64(now, "last_used")?;
        self.write("increment counter", |tx| {
            let count: i64 = tx
                .prepare_cached(
                    "UPDATE credentials SET sign_count = MIN(sign_count + 1, 4294967295), last_used = ?1 \
                     WHERE id = ?2 RETURNING sign_count",
                )
                .and_then(|mut stmt| stmt.query_row(params![now, id], |r| r.get(0)).optional())
                .map_err(backend("increment counter"))?
                .ok_or_else(|| StoreError::Backend("increment counter: no such credential".into()))?;
            // An error here drops the transaction, undoing the update.
            u32::try_from(count)
                .map_err(|_| StoreError::Backend("increment counter: stored counter out of range".into()))
        })
    }

    fn delete(&mut self, id: &[u8]) -> Result<bool, StoreError> {
        let deleted = self.write("delete credential", |tx| {
            let discoverable: Option<bool> = tx
                .query_row(
                    "DELETE FROM credentials WHERE id = ?1 RETURNING discoverable",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend("delete credential"))?;
            if discoverable == Some(true) {
                bump_generation(tx)?;
            }
            Ok(discoverable.is_some())
        })?;
        if deleted {
            self.scrub();
        }
        Ok(deleted)
    }

    fn delete_all(&mut self) -> Result<(), StoreError> {
        self.write("delete all credentials", |tx| {
            tx.execute("DELETE FROM credentials", [])
                .map_err(backend("delete all credentials"))?;
            bump_generation(tx)?;
            Ok(())
        })?;
        self.scrub();
        Ok(())
    }

    fn all(&self) -> Result<Vec<Credential>, StoreError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM credentials ORDER BY insert_seq DESC"),
            [],
        )
    }

    fn update_user(
        &mut self,
        id: &[u8],
        name: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.write("update user", |tx| {
            let n = tx
                .execute(
                    "UPDATE credentials SET user_name = ?1, user_display_name = ?2 WHERE id = ?3",
                    params![name, display_name, id],
                )
                .map_err(backend("update user"))?;
            if n > 0 {
                bump_generation(tx)?;
            }
            Ok(n > 0)
        })
    }

    fn discoverable_rps(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rp_id, max(rp_name) FROM credentials WHERE discoverable = 1 \
                 GROUP BY rp_id ORDER BY rp_id",
            )
            .map_err(backend("list RPs"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(backend("list RPs"))?;
        rows.collect::<Result<_, _>>().map_err(backend("list RPs"))
    }

    fn count_discoverable(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM credentials WHERE discoverable = 1",
                [],
                |r| r.get(0),
            )
            .map_err(backend("count"))?;
        to_u64(n, "count")
    }

    fn discoverable_generation(&self) -> Result<u64, StoreError> {
        let value = self.get_meta(GENERATION_KEY)?;
        Ok(value.as_deref().map(generation_from).unwrap_or(0))
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut stmt| stmt.query_row(params![key], |r| r.get(0)).optional())
            .map_err(backend("get setting"))
    }

    fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write("set setting", |tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(backend("set setting"))?;
            Ok(())
        })
    }

    fn delete_meta(&mut self, key: &str) -> Result<(), StoreError> {
        self.write("delete setting", |tx| {
            tx.execute("DELETE FROM meta WHERE key = ?1", params![key])
                .map_err(backend("delete setting"))?;
            Ok(())
        })?;
        // The PIN's vault blob is a setting: it must not linger either.
        self.scrub();
        Ok(())
    }
}

/// A row as SQLite holds it, before the range checks that turn it into a
/// [`Credential`]. Kept apart so a damaged value becomes an error, not a
/// panic or a silently wrapped number.
struct RawCredential {
    id: Vec<u8>,
    rp_id: String,
    rp_name: Option<String>,
    user_id: Vec<u8>,
    user_name: Option<String>,
    user_display_name: Option<String>,
    discoverable: i64,
    key_blob: Vec<u8>,
    public_key_cose: Vec<u8>,
    sign_count: i64,
    created: i64,
    last_used: Option<i64>,
    cred_protect: i64,
    hmac_key: Option<Vec<u8>>,
    cred_blob: Option<Vec<u8>>,
    large_blob_key: Option<Vec<u8>>,
    third_party_payment: i64,
}

/// A damaged counter reads as 0; the next bump starts it afresh (the state
/// then still changes, which is all a platform relies on).
fn generation_from(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes).map(u64::from_be_bytes).unwrap_or(0)
}

fn bump_generation(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let current: Option<Vec<u8>> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            params![GENERATION_KEY],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend("read generation"))?;
    let next = current
        .as_deref()
        .map(generation_from)
        .unwrap_or(0)
        .wrapping_add(1);
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![GENERATION_KEY, next.to_be_bytes().as_slice()],
    )
    .map_err(backend("bump generation"))?;
    Ok(())
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<RawCredential> {
    Ok(RawCredential {
        id: row.get(0)?,
        rp_id: row.get(1)?,
        rp_name: row.get(2)?,
        user_id: row.get(3)?,
        user_name: row.get(4)?,
        user_display_name: row.get(5)?,
        discoverable: row.get(6)?,
        key_blob: row.get(7)?,
        public_key_cose: row.get(8)?,
        sign_count: row.get(9)?,
        created: row.get(10)?,
        last_used: row.get(11)?,
        cred_protect: row.get(12)?,
        hmac_key: row.get(13)?,
        cred_blob: row.get(14)?,
        large_blob_key: row.get(15)?,
        third_party_payment: row.get(16)?,
    })
}

impl RawCredential {
    fn into_credential(self) -> Result<Credential, StoreError> {
        let discoverable = match self.discoverable {
            0 => false,
            1 => true,
            _ => return Err(corrupt("discoverable")),
        };
        Ok(Credential {
            id: self.id,
            rp_id: self.rp_id,
            rp_name: self.rp_name,
            user_id: self.user_id,
            user_name: self.user_name,
            user_display_name: self.user_display_name,
            discoverable,
            key_blob: self.key_blob,
            public_key_cose: self.public_key_cose,
            sign_count: u32::try_from(self.sign_count).map_err(|_| corrupt("sign_count"))?,
            created: to_u64(self.created, "created")?,
            last_used: self.last_used.map(|t| to_u64(t, "last_used")).transpose()?,
            cred_protect: u8::try_from(self.cred_protect).map_err(|_| corrupt("cred_protect"))?,
            hmac_key: self.hmac_key,
            cred_blob: self.cred_blob,
            large_blob_key: self.large_blob_key,
            third_party_payment: match self.third_party_payment {
                0 => false,
                1 => true,
                _ => return Err(corrupt("third_party_payment")),
            },
        })
    }
}

fn corrupt(column: &str) -> StoreError {
    StoreError::Backend(format!("stored {column} is out of range (damaged database?)"))
}

fn to_u64(v: i64, column: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(column))
}

/// SQLite integers are signed 64-bit; a u64 above i64::MAX cannot be stored
/// faithfully, so it is refused rather than wrapped.
fn to_i64(v: u64, column: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{column} is too large to store")))
}

/// Maps a rusqlite error to [`StoreError::Backend`] with what we were doing.
///
/// Messages go to logs and to the CLI, so they must never carry credential
/// data. SQLite's own messages name tables and columns, not values; the
/// rusqlite variants that can embed a value are reduced to the column index.
fn backend(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| {
        let detail = match &e {
            rusqlite::Error::SqliteFailure(code, Some(msg)) => format!("{code}: {msg}"),
            rusqlite::Error::SqliteFailure(code, None) => code.to_string(),
            rusqlite::Error::IntegralValueOutOfRange(col, _)
            | rusqlite::Error::FromSqlConversionFailure(col, _, _) => {
                format!("unexpected value in column {col}")
            }
            rusqlite::Error::InvalidColumnType(col, _, ty) => {
                format!("unexpected {ty} in column {col}")
            }
            rusqlite::Error::ToSqlConversionFailure(_) => "a value could not be stored".to_owned(),
            other => other.to_string(),
        };
        StoreError::Backend(format!("{what}: {detail}"))
    }
}

/// The smallest byte string greater than every string starting with
/// `prefix`, or `None` when there is none (empty or all-0xff prefix: the
/// range is then open-ended).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Creates the data directory (and missing parents) 0700, or tightens an
/// existing one: the database holds key blobs and the user's account names.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot inspect {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!(
            "the data directory {} belongs to uid {}, not to this user (uid {me}); refusing to keep passkeys there",
            dir.display(),
            meta.uid()
        );
    }
    tighten(dir, &meta, 0o700)
}

/// Creates the database file 0600 if it does not exist, so it is never
/// visible with the umask's wider default; an existing one is tightened.
fn create_private_file(path: &Path, dir: &Path) -> anyhow::Result<()> {
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(file) => {
            file.sync_all()?;
            // The new directory entry must be durable too, or a power cut
            // could leave SQLite's first commits in a file nobody can find.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("cannot sync {}", dir.display()))?;
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => tighten_existing(path, 0o600),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Tightens `path` to `mode` if it exists; a missing file is fine.
fn tighten_existing(path: &Path, mode: u32) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            bail!("{} is a symbolic link; refusing to follow it", path.display())
        }
        Ok(meta) => tighten(path, &meta, mode),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

fn tighten(path: &Path, meta: &std::fs::Metadata, mode: u32) -> anyhow::Result<()> {
    let current = meta.mode() & 0o777;
    if current & !mode != 0 {
        tracing::warn!(
            path = %path.display(),
            "permissions were {current:o}, wider than {mode:o}; tightening them"
        );
        std::fs::set_permissions(path, Permissions::from_mode(mode))
            .with_context(|| format!("cannot restrict the permissions of {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

#[cfg(test)]
mod v2_tests {
    use super::*;

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
}
