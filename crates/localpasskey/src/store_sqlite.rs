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
use lp_core::activity::{self, Act, Activity, Outcome};
use lp_core::store::{Credential, CredentialStore, StoreError};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database file inside the data directory.
pub const DB_FILE_NAME: &str = "credentials.sqlite3";

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

/// The SQLite-backed [`CredentialStore`].
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: Option<PathBuf>,
    /// Activity entries queued by `log`, written by the next transaction.
    pending: Vec<Activity>,
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
            pending: Vec::new(),
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
        let mut store = Self {
            conn,
            path: None,
            pending: Vec::new(),
        };
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
        schema::migrate(&mut self.conn)
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
        write_activity(&tx, &self.pending)?;
        tx.commit().map_err(backend(what))?;
        self.pending.clear();
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
                 hmac_key, cred_blob, large_blob_key, third_party_payment, rp_id_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
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
                    &schema::rp_id_hash(&cred.rp_id)[..],
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
        // Kept by triggers (schema version 5), not counted.
        let n: i64 = self
            .conn
            .prepare_cached("SELECT n FROM discoverable_count")
            .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
            .map_err(backend("count"))?;
        to_u64(n, "count")
    }

    fn discoverable_rp_by_hash(&self, hash: &[u8]) -> Result<Option<String>, StoreError> {
        let found: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT rp_id FROM credentials WHERE discoverable = 1 AND rp_id_hash = ?1 LIMIT 1",
            )
            .and_then(|mut stmt| stmt.query_row(params![hash], |r| r.get(0)).optional())
            .map_err(backend("find RP"))?;
        // The column is ours, but the answer is checked against the hash anyway.
        Ok(found.filter(|rp| schema::rp_id_hash(rp)[..] == *hash))
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

    fn has_meta(&self, key: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM meta WHERE key = ?1")
            .and_then(|mut stmt| stmt.exists(params![key]))
            .map_err(backend("look up setting"))
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

    fn log(&mut self, entry: Activity) {
        self.pending.push(entry);
    }

    fn flush_log(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.write("write activity", |_| Ok(()))
    }

    fn recent_activity(&self, limit: usize) -> Result<Vec<Activity>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT time, action, outcome, rp_id, account FROM activity ORDER BY seq DESC LIMIT ?1",
            )
            .map_err(backend("read activity"))?;
        let rows = stmt
            .query_map(params![limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(backend("read activity"))?;
        let mut out = Vec::new();
        for row in rows {
            let (time, act, outcome, rp_id, account) = row.map_err(backend("read activity"))?;
            out.push(Activity {
                time: to_u64(time, "activity.time")?,
                act: Act::parse(&act).ok_or_else(|| corrupt("activity.action"))?,
                outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("activity.outcome"))?,
                rp_id,
                account,
            });
        }
        Ok(out)
    }

    fn trim_activity(&mut self, before: u64) -> Result<(), StoreError> {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        let keep = i64::try_from(activity::MAX_ENTRIES).unwrap_or(i64::MAX);
        self.write("trim activity", |tx| {
            tx.execute("DELETE FROM activity WHERE time < ?1", params![before])
                .map_err(backend("trim activity"))?;
            tx.execute(
                "DELETE FROM activity WHERE seq <= (SELECT MAX(seq) FROM activity) - ?1",
                params![keep],
            )
            .map_err(backend("trim activity"))?;
            Ok(())
        })
    }
}

/// Appends the queued log entries inside a write's transaction.
fn write_activity(tx: &Transaction<'_>, entries: &[Activity]) -> Result<(), StoreError> {
    for a in entries {
        let time = to_i64(a.time, "activity.time")?;
        tx.prepare_cached(
            "INSERT INTO activity (time, action, outcome, rp_id, account) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                time,
                a.act.as_str(),
                a.outcome.as_str(),
                a.rp_id,
                a.account
            ])
        })
        .map_err(backend("write activity"))?;
    }
    Ok(())
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
        if let rusqlite::Error::SqliteFailure(code, _) = &e {
            if code.code == rusqlite::ErrorCode::DiskFull {
                return StoreError::Full(what.to_owned());
            }
        }
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

mod data_dir;
mod schema;

use data_dir::{create_private_file, prepare_dir, tighten_existing};
#[cfg(test)]
use schema::{SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_VERSION};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod v2_tests;
