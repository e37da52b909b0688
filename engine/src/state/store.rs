//! The RocksDB state store of one query: one database, one column family per state table,
//! opened on first use. Operators keep their hot state in memory and write what changed in one
//! `WriteBatch` per checkpoint barrier (and when they evict entries to stay within their cache);
//! the checkpointer then snapshots the whole database (a RocksDB checkpoint: hard links).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rocksdb::{
    ColumnFamilyDescriptor, DBWithThreadMode, Direction, IteratorMode, MultiThreaded, Options,
    WriteBatch, WriteOptions,
};

use crate::error::{EngineError, Result};

type Db = DBWithThreadMode<MultiThreaded>;

fn rocks(context: &str, e: rocksdb::Error) -> EngineError {
    EngineError::Io {
        context: format!("state store: {context}"),
        source: std::io::Error::other(e.into_string()),
    }
}

/// Where a store keeps its files.
enum Location {
    /// A query's state directory (kept across restarts).
    Durable(PathBuf),
    /// A temporary directory, made on first use and removed with the store (queries without
    /// checkpoints).
    Temporary(OnceLock<tempfile::TempDir>),
}

/// The state of one query.
pub struct StateStore {
    location: Location,
    db: OnceLock<Arc<Db>>,
    open_lock: Mutex<()>,
    /// The checkpoint epoch whose barrier is travelling through the dataflow (0: none).
    in_flight: AtomicU64,
    /// Entries each operator subtask keeps in memory before evicting to RocksDB.
    cache_entries: usize,
    checkpoints: bool,
    restored: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.path() {
            Some(p) => write!(f, "StateStore({})", p.display()),
            None => write!(f, "StateStore(unused)"),
        }
    }
}

impl StateStore {
    /// A store in `dir` (the live database of a durable query, restored from a checkpoint when
    /// resuming), which takes checkpoints.
    pub fn durable(dir: PathBuf, cache_entries: usize) -> Self {
        StateStore {
            location: Location::Durable(dir),
            db: OnceLock::new(),
            open_lock: Mutex::new(()),
            in_flight: AtomicU64::new(0),
            cache_entries: cache_entries.max(1),
            checkpoints: true,
            restored: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A store in a temporary directory (no checkpoints; RocksDB only holds evicted entries).
    pub fn temporary(cache_entries: usize) -> Result<Self> {
        Ok(StateStore {
            location: Location::Temporary(OnceLock::new()),
            db: OnceLock::new(),
            open_lock: Mutex::new(()),
            in_flight: AtomicU64::new(0),
            cache_entries: cache_entries.max(1),
            checkpoints: false,
            restored: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The database directory (none yet for a temporary store never used).
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::Durable(p) => Some(p),
            Location::Temporary(t) => t.get().map(|t| t.path()),
        }
    }

    fn ensure_path(&self) -> Result<PathBuf> {
        match &self.location {
            Location::Durable(p) => Ok(p.clone()),
            Location::Temporary(t) => {
                if t.get().is_none() {
                    let dir = tempfile::Builder::new()
                        .prefix("riffle-state-")
                        .tempdir()
                        .map_err(|e| EngineError::Io {
                            context: "creating a temporary state directory".into(),
                            source: e,
                        })?;
                    let _ = t.set(dir);
                }
                t.get().map(|d| d.path().to_path_buf()).ok_or_else(|| {
                    EngineError::DataFusion("internal: no temporary state directory".into())
                })
            }
        }
    }

    /// Whether the query takes checkpoints (operators then write their state at barriers).
    pub fn takes_checkpoints(&self) -> bool {
        self.checkpoints
    }

    /// Marks the store as restored from a checkpoint: its tables may hold entries.
    pub fn mark_restored(&self) {
        self.restored.store(true, Ordering::SeqCst);
    }

    /// Whether the store was restored from a checkpoint.
    pub fn restored(&self) -> bool {
        self.restored.load(Ordering::SeqCst)
    }

    /// Entries an operator subtask keeps in memory.
    pub fn cache_entries(&self) -> usize {
        self.cache_entries
    }

    /// Whether the database was opened (anything was ever written or read).
    pub fn is_open(&self) -> bool {
        self.db.get().is_some()
    }

    fn options() -> Options {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_max_open_files(256);
        o
    }

    /// The database, opened (or created) on first use.
    pub fn db(&self) -> Result<&Arc<Db>> {
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let _guard = self.open_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = self.db.get() {
            return Ok(db);
        }
        let path = self.ensure_path()?;
        std::fs::create_dir_all(&path).map_err(|e| EngineError::Io {
            context: format!("creating the state directory {}", path.display()),
            source: e,
        })?;
        let opts = Self::options();
        let existing = if path.join("CURRENT").exists() {
            Db::list_cf(&opts, &path).map_err(|e| rocks("listing column families", e))?
        } else {
            vec![]
        };
        let cfs = existing
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(n, Self::options()));
        let db = Db::open_cf_descriptors(&opts, &path, cfs)
            .map_err(|e| rocks(&format!("opening {}", path.display()), e))?;
        let _ = self.db.set(Arc::new(db));
        self.db
            .get()
            .ok_or_else(|| EngineError::DataFusion("internal: state store not opened".into()))
    }

    /// A state table (column family `name`) seen by one subtask.
    pub fn table(self: &Arc<Self>, name: &str, subtask: usize) -> StateTable {
        StateTable {
            store: self.clone(),
            name: name.to_string(),
            prefix: (subtask as u32).to_be_bytes().to_vec(),
        }
    }

    /// Marks checkpoint `epoch`'s barrier as travelling (`0`: none).
    pub fn set_in_flight(&self, epoch: u64) {
        self.in_flight.store(epoch, Ordering::SeqCst);
    }

    /// Whether an operator that last passed checkpoint barrier `passed` may write outside a
    /// barrier now: not while the database must still reflect that barrier's state for the
    /// checkpoint being taken.
    pub fn may_write_between_barriers(&self, passed: u64) -> bool {
        let f = self.in_flight.load(Ordering::SeqCst);
        f == 0 || passed < f
    }

    /// Snapshots the database into `dir` (which must not exist): a consistent copy made of hard
    /// links, after flushing the memtables.
    pub fn checkpoint_to(&self, dir: &Path) -> Result<()> {
        let db = self.db()?;
        let cp = rocksdb::checkpoint::Checkpoint::new(db.as_ref())
            .map_err(|e| rocks("preparing a checkpoint", e))?;
        cp.create_checkpoint(dir)
            .map_err(|e| rocks(&format!("writing a checkpoint to {}", dir.display()), e))
    }
}

/// Total size of the files under a directory.
pub fn dir_size(p: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One state table of one operator subtask: keys are prefixed with the subtask index so
/// subtasks of one operator share a column family without seeing each other's entries.
#[derive(Debug, Clone)]
pub struct StateTable {
    store: Arc<StateStore>,
    name: String,
    prefix: Vec<u8>,
}

impl StateTable {
    fn with_cf<T>(
        &self,
        f: impl FnOnce(&Db, &Arc<rocksdb::BoundColumnFamily<'_>>) -> Result<T>,
    ) -> Result<T> {
        let db = self.store.db()?;
        if db.cf_handle(&self.name).is_none() {
            // Subtasks of one operator share the column family: create it once.
            let _guard = self
                .store
                .open_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if db.cf_handle(&self.name).is_none() {
                db.create_cf(&self.name, &StateStore::options())
                    .map_err(|e| rocks(&format!("creating state table {}", self.name), e))?;
            }
        }
        let cf = db.cf_handle(&self.name).ok_or_else(|| {
            EngineError::DataFusion(format!("internal: state table {} is missing", self.name))
        })?;
        f(db, &cf)
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key);
        k
    }

    /// Writes `puts` and removes `deletes` in one batch.
    pub fn write<'a>(
        &self,
        puts: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        deletes: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<()> {
        self.with_cf(|db, cf| {
            let mut batch = WriteBatch::default();
            for k in deletes {
                batch.delete_cf(cf, self.full_key(k));
            }
            for (k, v) in puts {
                batch.put_cf(cf, self.full_key(k), v);
            }
            if batch.is_empty() {
                return Ok(());
            }
            let mut wo = WriteOptions::default();
            // Durability comes from checkpoints, which flush the memtables.
            wo.disable_wal(true);
            db.write_opt(batch, &wo)
                .map_err(|e| rocks(&format!("writing state table {}", self.name), e))
        })
    }

    /// The values stored under `keys`, in order.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        self.with_cf(|db, cf| {
            let full: Vec<Vec<u8>> = keys.iter().map(|k| self.full_key(k)).collect();
            db.multi_get_cf(full.iter().map(|k| (cf, k.as_slice())))
                .into_iter()
                .map(|r| r.map_err(|e| rocks(&format!("reading state table {}", self.name), e)))
                .collect()
        })
    }

    /// Every entry of this subtask, in key order (keys without the subtask prefix).
    pub fn scan(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let on_disk = self
            .store
            .path()
            .is_some_and(|p| p.join("CURRENT").exists());
        if !self.store.is_open() && !on_disk {
            return Ok(vec![]);
        }
        self.with_cf(|db, cf| {
            let mut out = Vec::new();
            let iter = db.iterator_cf(cf, IteratorMode::From(&self.prefix, Direction::Forward));
            for item in iter {
                let (k, v) = item.map_err(|e| rocks(&format!("scanning {}", self.name), e))?;
                if !k.starts_with(&self.prefix) {
                    break;
                }
                out.push((k[self.prefix.len()..].to_vec(), v.to_vec()));
            }
            Ok(out)
        })
    }

    /// Removes the entries with keys in `[from, to)`.
    pub fn delete_range(&self, from: &[u8], to: &[u8]) -> Result<()> {
        self.with_cf(|db, cf| {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf, self.full_key(from), self.full_key(to));
            let mut wo = WriteOptions::default();
            wo.disable_wal(true);
            db.write_opt(batch, &wo)
                .map_err(|e| rocks(&format!("expiring entries of {}", self.name), e))
        })
    }
}
