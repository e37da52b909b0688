//! The server's command log, its counterpart of ksqlDB's command topic: statements that define
//! streams, tables and persistent queries (and terminate or drop them) are appended as they
//! succeed to `server-commands.sql` in the state directory, and replayed when the server starts.
//! A restarted server so runs again what it ran before, each persistent query resuming from its
//! last checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use riffle_engine::Engine;
use riffle_sql::ast::{Statement, StatementKind};

/// File name of the command log in the state directory.
pub const FILE: &str = "server-commands.sql";

/// Whether a statement belongs in the command log: it changes what the server runs. Inserted
/// rows, settings and queries that only read do not.
pub fn is_recorded(kind: &StatementKind) -> bool {
    matches!(
        kind,
        StatementKind::CreateSource(_)
            | StatementKind::CreateAsSelect(_)
            | StatementKind::InsertInto { .. }
            | StatementKind::Terminate { .. }
            | StatementKind::Drop { .. }
    )
}

/// An open command log.
#[derive(Debug)]
pub struct CommandLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl CommandLog {
    /// Opens (creating it if needed) the command log in `state_dir`.
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join(FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(CommandLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the recorded statements again, in order. A statement that fails now is reported
    /// and skipped; returns how many ran and the failures.
    pub async fn replay(&self, engine: &Engine) -> anyhow::Result<(usize, Vec<String>)> {
        let sql = std::fs::read_to_string(&self.path)?;
        let statements = riffle_sql::parse_script(&sql)
            .map_err(|e| anyhow::anyhow!("{} is damaged: {e}", self.path.display()))?;
        let mut ran = 0;
        let mut failed = Vec::new();
        for stmt in &statements {
            match engine.execute_statement(stmt).await {
                Ok(_) => ran += 1,
                Err(e) => failed.push(format!("{}: {e}", stmt.text)),
            }
        }
        Ok((ran, failed))
    }

    /// Appends a statement that succeeded, if it belongs in the log, and syncs the file.
    pub fn record(&self, stmt: &Statement) -> std::io::Result<()> {
        if !is_recorded(&stmt.kind) {
            return Ok(());
        }
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(f, "{};", stmt.text.trim_end())?;
        f.sync_data()
    }
}
