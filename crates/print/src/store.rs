//! The durable half of the queue: jobs and printer flags in SQLite.
//!
//! The database runs in WAL mode with `synchronous = FULL`, so a committed
//! write survives a crash of the process or of the machine. Every call here
//! blocks; callers run them on the blocking pool.

use std::path::Path;

use backroom_api::print::JobState;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// One job as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    pub name: String,
    pub owner: String,
    /// The printer or class it was sent to.
    pub target: String,
    /// The printer that printed it or is printing it.
    pub device: Option<String>,
    pub priority: u8,
    pub copies: u32,
    pub state: JobState,
    pub size: u64,
    /// The document's file name in the spool's `docs` folder.
    pub doc: String,
    pub submitted_ms: i64,
    /// When the job last started waiting: aging counts from here.
    pub queued_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub bytes_done: u64,
    pub pages_done: u64,
    /// Queue order: FIFO within a priority.
    pub seq: u64,
    /// Promotion order; 0 when not promoted.
    pub front: u64,
}

/// Flags of a printer that outlive a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrinterFlags {
    pub paused: bool,
    pub accepting: bool,
    pub stopped: bool,
}

impl Default for PrinterFlags {
    fn default() -> PrinterFlags {
        PrinterFlags {
            paused: false,
            accepting: true,
            stopped: false,
        }
    }
}

pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    target TEXT NOT NULL,
    device TEXT,
    priority INTEGER NOT NULL,
    copies INTEGER NOT NULL,
    state TEXT NOT NULL,
    size INTEGER NOT NULL,
    doc TEXT NOT NULL,
    submitted_ms INTEGER NOT NULL,
    queued_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    bytes_done INTEGER NOT NULL,
    pages_done INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    front INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS printers (
    name TEXT PRIMARY KEY,
    paused INTEGER NOT NULL,
    accepting INTEGER NOT NULL,
    stopped INTEGER NOT NULL
);
";

const COLUMNS: &str = "id, name, owner, target, device, priority, copies, state, size, doc, \
    submitted_ms, queued_ms, started_ms, finished_ms, attempts, last_error, bytes_done, \
    pages_done, seq, front";

impl Store {
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is on disk before the submitter hears "accepted".
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn })
    }

    pub fn load_jobs(&self) -> rusqlite::Result<Vec<Record>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM jobs ORDER BY id"))?;
        let rows = stmt.query_map([], record)?;
        rows.collect()
    }

    pub fn load_printer(&self, name: &str) -> rusqlite::Result<Option<PrinterFlags>> {
        self.conn
            .query_row(
                "SELECT paused, accepting, stopped FROM printers WHERE name = ?1",
                [name],
                |row| {
                    Ok(PrinterFlags {
                        paused: row.get(0)?,
                        accepting: row.get(1)?,
                        stopped: row.get(2)?,
                    })
                },
            )
            .optional()
    }

    pub fn save_printer(&self, name: &str, flags: PrinterFlags) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO printers (name, paused, accepting, stopped) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET paused = ?2, accepting = ?3, stopped = ?4",
            params![name, flags.paused, flags.accepting, flags.stopped],
        )?;
        Ok(())
    }

    /// Inserts new jobs in one transaction and gives them their ids.
    pub fn insert_all(&mut self, jobs: &mut [Record]) -> rusqlite::Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for job in jobs.iter_mut() {
            insert(&tx, job)?;
        }
        tx.commit()
    }

    /// Gives a job another document: for a job created before its document
    /// arrived (IPP's Create-Job, then Send-Document).
    pub fn set_document(&self, id: u64, doc: &str, size: u64) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE jobs SET doc = ?2, size = ?3 WHERE id = ?1",
            params![id, doc, size],
        )?;
        Ok(())
    }

    /// Writes the changed jobs in one transaction: all of them or none.
    pub fn update(&mut self, jobs: &[&Record]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE jobs SET target = ?2, device = ?3, priority = ?4, state = ?5,
                    queued_ms = ?6, started_ms = ?7, finished_ms = ?8, attempts = ?9,
                    last_error = ?10, bytes_done = ?11, pages_done = ?12, seq = ?13,
                    front = ?14
                 WHERE id = ?1",
            )?;
            for job in jobs {
                stmt.execute(params![
                    job.id,
                    job.target,
                    job.device,
                    job.priority,
                    job.state.as_str(),
                    job.queued_ms,
                    job.started_ms,
                    job.finished_ms,
                    job.attempts,
                    job.last_error,
                    job.bytes_done,
                    job.pages_done,
                    job.seq,
                    job.front,
                ])?;
            }
        }
        tx.commit()
    }

    pub fn delete(&mut self, ids: &[u64]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?;
            for id in ids {
                stmt.execute([id])?;
            }
        }
        tx.commit()
    }
}

fn insert(tx: &rusqlite::Transaction<'_>, job: &mut Record) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO jobs (name, owner, target, device, priority, copies, state, size, doc,
                submitted_ms, queued_ms, started_ms, finished_ms, attempts, last_error,
                bytes_done, pages_done, seq, front)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18, ?19)",
    )?;
    stmt.execute(params![
        job.name,
        job.owner,
        job.target,
        job.device,
        job.priority,
        job.copies,
        job.state.as_str(),
        job.size,
        job.doc,
        job.submitted_ms,
        job.queued_ms,
        job.started_ms,
        job.finished_ms,
        job.attempts,
        job.last_error,
        job.bytes_done,
        job.pages_done,
        job.seq,
        job.front,
    ])?;
    job.id = u64::try_from(tx.last_insert_rowid()).unwrap_or(0);
    Ok(())
}

fn record(row: &Row<'_>) -> rusqlite::Result<Record> {
    let state: String = row.get(7)?;
    let state = state.parse::<JobState>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(Record {
        id: row.get(0)?,
        name: row.get(1)?,
        owner: row.get(2)?,
        target: row.get(3)?,
        device: row.get(4)?,
        priority: row.get(5)?,
        copies: row.get(6)?,
        state,
        size: row.get(8)?,
        doc: row.get(9)?,
        submitted_ms: row.get(10)?,
        queued_ms: row.get(11)?,
        started_ms: row.get(12)?,
        finished_ms: row.get(13)?,
        attempts: row.get(14)?,
        last_error: row.get(15)?,
        bytes_done: row.get(16)?,
        pages_done: row.get(17)?,
        seq: row.get(18)?,
        front: row.get(19)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str) -> Record {
        Record {
            id: 0,
            name: name.into(),
            owner: "ann".into(),
            target: "lp".into(),
            device: None,
            priority: 50,
            copies: 1,
            state: JobState::Pending,
            size: 3,
            doc: format!("{name}.prn"),
            submitted_ms: 1,
            queued_ms: 1,
            started_ms: None,
            finished_ms: None,
            attempts: 0,
            last_error: None,
            bytes_done: 0,
            pages_done: 0,
            seq: 1,
            front: 0,
        }
    }

    #[test]
    fn jobs_and_flags_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue.db");
        let mut first = job("a");
        {
            let mut store = Store::open(&path).expect("open");
            let mut inserted = [first.clone(), job("b")];
            store.insert_all(&mut inserted).expect("insert");
            let [inserted_first, second] = inserted;
            first = inserted_first;
            first.state = JobState::Held;
            first.priority = 99;
            first.last_error = Some("jam".into());
            store.update(&[&first]).expect("update");
            store.delete(&[second.id]).expect("delete");
            let flags = PrinterFlags {
                paused: true,
                accepting: false,
                stopped: true,
            };
            store.save_printer("lp", flags).expect("save");
        }
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.load_jobs().expect("load"), vec![first]);
        let flags = store.load_printer("lp").expect("load").expect("saved");
        assert!(flags.paused && !flags.accepting && flags.stopped);
        assert_eq!(store.load_printer("other").expect("load"), None);
    }
}
