//! # fencing-sqlite
//!
//! Fencing tokens checked where the writes land: a key-value table in SQLite whose every write
//! carries the writer's term (its baton fencing token), refused when a higher term has already
//! written. Two leaders at once — availability mode during a partition, or a paused leader
//! whose lease ran out while it slept — cannot both change the data: once the new leader has
//! written, the old one's writes fail.
//!
//! The guard is one conditional `UPDATE` in the write's own transaction:
//!
//! ```sql
//! BEGIN IMMEDIATE;
//! UPDATE fence SET term = ?term WHERE resource = 'kv' AND term <= ?term;  -- 0 rows: stale
//! INSERT INTO kv (key, value, term) VALUES (?key, ?value, ?term)
//!     ON CONFLICT (key) DO UPDATE SET value = excluded.value, term = excluded.term;
//! COMMIT;
//! ```
//!
//! If the `UPDATE` changed no row, a higher term has written: the transaction is rolled back
//! and the write refused ([`WriteError::Stale`]). Because the check and the write commit
//! together, no write of a lower term can land after a higher one, however late it arrives.
//! The same pattern for PostgreSQL and object stores: the README's "Fencing" section.
//!
//! `cargo run -p fencing-sqlite` shows it on a partitioned in-memory cluster;
//! `tests/two_leaders.rs` is the test.

use baton_core::{StaleTerm, Term};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::time::Duration;

/// A write that did not land.
#[derive(Debug)]
pub enum WriteError {
    /// A higher term has written: this writer is a stale leader.
    Stale(StaleTerm),
    /// The database failed.
    Db(rusqlite::Error),
    /// A term SQLite cannot store (above `i64::MAX`).
    TermTooLarge(Term),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Stale(s) => s.fmt(f),
            WriteError::Db(e) => write!(f, "sqlite: {e}"),
            WriteError::TermTooLarge(t) => write!(f, "term {t} does not fit an SQLite INTEGER"),
        }
    }
}

impl std::error::Error for WriteError {}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Db(e)
    }
}

/// The resource the `fence` row guards: the `kv` table.
const RESOURCE: &str = "kv";

/// A key-value table in SQLite, fenced by term. Each writer (each node) opens its own
/// connection to the same database file, as separate processes would.
pub struct FencedStore {
    conn: Connection,
}

impl FencedStore {
    /// Opens (creating when missing) the database at `path` and its two tables.
    pub fn open(path: &Path) -> Result<FencedStore, rusqlite::Error> {
        let conn = Connection::open(path)?;
        // Writers of other connections wait for the lock instead of failing at once.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS fence (
                 resource TEXT PRIMARY KEY,
                 term     INTEGER NOT NULL
             );
             INSERT INTO fence (resource, term) VALUES ('kv', 0) ON CONFLICT (resource) DO NOTHING;
             CREATE TABLE IF NOT EXISTS kv (
                 key   TEXT PRIMARY KEY,
                 value TEXT NOT NULL,
                 term  INTEGER NOT NULL
             );",
        )?;
        Ok(FencedStore { conn })
    }

    /// Writes `key = value` under `term`, unless a higher term has written (then
    /// [`WriteError::Stale`] and nothing changes). The fence check and the write commit in one
    /// transaction.
    pub fn write(&mut self, key: &str, value: &str, term: Term) -> Result<(), WriteError> {
        let t = i64::try_from(term).map_err(|_| WriteError::TermTooLarge(term))?;
        // IMMEDIATE: take the write lock first, so two writers' checks cannot interleave.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let admitted = tx.execute(
            "UPDATE fence SET term = ?1 WHERE resource = ?2 AND term <= ?1",
            params![t, RESOURCE],
        )?;
        if admitted == 0 {
            let highest: i64 = tx.query_row(
                "SELECT term FROM fence WHERE resource = ?1",
                [RESOURCE],
                |r| r.get(0),
            )?;
            // Dropping `tx` rolls back.
            return Err(WriteError::Stale(StaleTerm {
                term,
                highest: u64::try_from(highest).unwrap_or(0),
            }));
        }
        tx.execute(
            "INSERT INTO kv (key, value, term) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, term = excluded.term",
            params![key, value, t],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The same write *without* the fence: what a store that ignores the token does. For
    /// showing what the guard prevents — never use it for real data.
    pub fn write_unguarded(
        &mut self,
        key: &str,
        value: &str,
        term: Term,
    ) -> Result<(), WriteError> {
        let t = i64::try_from(term).map_err(|_| WriteError::TermTooLarge(term))?;
        self.conn.execute(
            "INSERT INTO kv (key, value, term) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, term = excluded.term",
            params![key, value, t],
        )?;
        Ok(())
    }

    /// The value of `key` and the term that wrote it.
    pub fn read(&self, key: &str) -> Result<Option<(String, Term)>, rusqlite::Error> {
        self.conn
            .query_row("SELECT value, term FROM kv WHERE key = ?1", [key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
            .map(|row| row.map(|(v, t)| (v, u64::try_from(t).unwrap_or(0))))
    }

    /// The highest term that has written.
    pub fn fence(&self) -> Result<Term, rusqlite::Error> {
        let t: i64 = self.conn.query_row(
            "SELECT term FROM fence WHERE resource = ?1",
            [RESOURCE],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(t).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "baton-fencing-unit-{tag}-{}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn a_lower_term_is_refused_once_a_higher_one_wrote_and_nothing_changes() {
        let path = db("lower");
        let mut old = FencedStore::open(&path).unwrap();
        let mut new = FencedStore::open(&path).unwrap();
        old.write("owner", "a", 1).unwrap();
        old.write("owner", "a again", 1).unwrap();
        new.write("owner", "b", 2).unwrap();
        match old.write("owner", "a, late", 1) {
            Err(WriteError::Stale(s)) => assert_eq!(
                s,
                StaleTerm {
                    term: 1,
                    highest: 2
                }
            ),
            other => panic!("expected a stale refusal, got {other:?}"),
        }
        assert_eq!(new.read("owner").unwrap(), Some(("b".into(), 2)));
        assert_eq!(old.fence().unwrap(), 2);
        // Without the guard the late write would have landed.
        old.write_unguarded("owner", "a, late", 1).unwrap();
        assert_eq!(new.read("owner").unwrap(), Some(("a, late".into(), 1)));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_term_sqlite_cannot_hold_is_an_error_not_a_wrap() {
        let path = db("large");
        let mut s = FencedStore::open(&path).unwrap();
        assert!(matches!(
            s.write("k", "v", u64::MAX),
            Err(WriteError::TermTooLarge(_))
        ));
        let _ = std::fs::remove_file(&path);
    }
}
