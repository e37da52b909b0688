//! Checkpoints on disk. A query's state directory holds `live/` (the RocksDB database operators
//! write) and `checkpoints/<epoch>/`: a RocksDB checkpoint plus `manifest.json` (epoch, plan
//! hash, the offset to resume from per source partition, the length of each file sink). A
//! checkpoint is complete once its directory has its final name; the last few are kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// File name of a checkpoint's manifest.
pub const MANIFEST: &str = "manifest.json";

/// What a checkpoint records besides the state itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The query.
    pub query: String,
    /// Checkpoint epoch (1, 2, … per query, continuing across restarts).
    pub epoch: u64,
    /// Hash of the query's plan: state only fits the plan that wrote it.
    pub plan_hash: String,
    /// When it was taken, epoch milliseconds.
    pub created_ms: i64,
    /// Next offset to read per source and partition (the key names the source stage and its
    /// topic or file).
    pub sources: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Bytes written to each file sink when the checkpoint was taken.
    pub file_sinks: BTreeMap<String, u64>,
    /// Largest event time per partition, per source subtask: the watermark state of the
    /// sources, restored with the offsets so windows still close after a restart.
    #[serde(default)]
    pub event_times: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Size of the checkpoint's state files in bytes.
    pub state_bytes: u64,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> EngineError {
    move |source| EngineError::Io { context, source }
}

/// The state directory of one query.
#[derive(Debug, Clone)]
pub struct QueryStateDir {
    root: PathBuf,
}

impl QueryStateDir {
    /// The state directory of `query` under the engine's state directory.
    pub fn new(state_dir: &Path, query: &str) -> Self {
        QueryStateDir {
            root: state_dir.join(query),
        }
    }

    /// The live database.
    pub fn live(&self) -> PathBuf {
        self.root.join("live")
    }

    fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The directory of checkpoint `epoch`.
    pub fn checkpoint(&self, epoch: u64) -> PathBuf {
        self.checkpoints().join(format!("{epoch:020}"))
    }

    /// Complete checkpoints, oldest first.
    pub fn list(&self) -> Vec<u64> {
        let Ok(entries) = std::fs::read_dir(self.checkpoints()) else {
            return vec![];
        };
        let mut out: Vec<u64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()))
            .filter(|e| self.checkpoint(*e).join(MANIFEST).exists())
            .collect();
        out.sort_unstable();
        out
    }

    /// The manifest of checkpoint `epoch`.
    pub fn manifest(&self, epoch: u64) -> Result<Manifest> {
        let p = self.checkpoint(epoch).join(MANIFEST);
        let text = std::fs::read_to_string(&p).map_err(io(format!("reading {}", p.display())))?;
        serde_json::from_str(&text).map_err(|e| {
            EngineError::Format(format!(
                "checkpoint manifest {} is damaged: {e}",
                p.display()
            ))
        })
    }

    /// Where a checkpoint is assembled before it gets its final name.
    pub fn staging(&self, epoch: u64) -> PathBuf {
        self.checkpoints().join(format!("{epoch:020}.partial"))
    }

    /// Completes a staged checkpoint: writes its manifest, syncs, and gives it its final name.
    pub fn complete(&self, manifest: &Manifest) -> Result<()> {
        let staging = self.staging(manifest.epoch);
        let text = serde_json::to_vec_pretty(manifest)
            .map_err(|e| EngineError::Format(format!("encoding a checkpoint manifest: {e}")))?;
        let mp = staging.join(MANIFEST);
        std::fs::write(&mp, text).map_err(io(format!("writing {}", mp.display())))?;
        sync_dir_files(&staging)?;
        let fin = self.checkpoint(manifest.epoch);
        if fin.exists() {
            std::fs::remove_dir_all(&fin).map_err(io(format!("replacing {}", fin.display())))?;
        }
        std::fs::rename(&staging, &fin).map_err(io(format!("completing {}", fin.display())))?;
        sync_dir(&self.checkpoints())
    }

    /// Prepares the staging directory of `epoch` (its parent exists, it does not).
    pub fn prepare_staging(&self, epoch: u64) -> Result<PathBuf> {
        std::fs::create_dir_all(self.checkpoints())
            .map_err(io(format!("creating {}", self.checkpoints().display())))?;
        let staging = self.staging(epoch);
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .map_err(io(format!("removing {}", staging.display())))?;
        }
        Ok(staging)
    }

    /// Keeps the newest `keep` checkpoints (and `protect`), removing older ones and leftovers
    /// of interrupted ones.
    pub fn prune(&self, keep: usize, protect: u64) {
        let all = self.list();
        let cut = all.len().saturating_sub(keep.max(1));
        for e in &all[..cut] {
            if *e != protect {
                let _ = std::fs::remove_dir_all(self.checkpoint(*e));
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.checkpoints()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".partial") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// Removes checkpoints newer than `epoch` (their output was never committed).
    pub fn remove_after(&self, epoch: u64) {
        for e in self.list() {
            if e > epoch {
                let _ = std::fs::remove_dir_all(self.checkpoint(e));
            }
        }
    }

    /// Removes all state of the query.
    pub fn wipe(&self) -> Result<()> {
        if self.root.exists() {
            std::fs::remove_dir_all(&self.root)
                .map_err(io(format!("removing {}", self.root.display())))?;
        }
        Ok(())
    }

    /// Replaces the live database with a copy of checkpoint `epoch` (SST files are immutable and
    /// hard-linked; the rest is copied) and returns its manifest.
    pub fn restore(&self, epoch: u64) -> Result<Manifest> {
        let manifest = self.manifest(epoch)?;
        let live = self.live();
        if live.exists() {
            std::fs::remove_dir_all(&live).map_err(io(format!("removing {}", live.display())))?;
        }
        std::fs::create_dir_all(&live).map_err(io(format!("creating {}", live.display())))?;
        let src = self.checkpoint(epoch);
        let entries = std::fs::read_dir(&src).map_err(io(format!("reading {}", src.display())))?;
        for e in entries.flatten() {
            let name = e.file_name();
            if name == MANIFEST {
                continue;
            }
            let to = live.join(&name);
            let from = e.path();
            let linked =
                name.to_string_lossy().ends_with(".sst") && std::fs::hard_link(&from, &to).is_ok();
            if !linked {
                std::fs::copy(&from, &to).map_err(io(format!(
                    "copying {} to {}",
                    from.display(),
                    to.display()
                )))?;
            }
        }
        Ok(manifest)
    }
}

fn sync_dir(p: &Path) -> Result<()> {
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", p.display())))
}

fn sync_dir_files(p: &Path) -> Result<()> {
    let entries = std::fs::read_dir(p).map_err(io(format!("reading {}", p.display())))?;
    for e in entries.flatten() {
        if e.path().is_file() {
            std::fs::File::open(e.path())
                .and_then(|f| f.sync_all())
                .map_err(io(format!("syncing {}", e.path().display())))?;
        }
    }
    sync_dir(p)
}

#[cfg(test)]
mod tests {
    use super::{Manifest, QueryStateDir};

    #[test]
    fn checkpoints_complete_prune_and_restore() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = QueryStateDir::new(tmp.path(), "Q1");
        for epoch in 1..=4 {
            let staging = dir.prepare_staging(epoch).unwrap();
            std::fs::create_dir_all(&staging).unwrap();
            std::fs::write(staging.join("000001.sst"), b"data").unwrap();
            std::fs::write(staging.join("CURRENT"), b"x").unwrap();
            let m = Manifest {
                query: "Q1".into(),
                epoch,
                ..Default::default()
            };
            dir.complete(&m).unwrap();
        }
        // An interrupted checkpoint is not listed.
        std::fs::create_dir_all(dir.staging(5)).unwrap();
        assert_eq!(dir.list(), vec![1, 2, 3, 4]);
        dir.prune(2, 1);
        assert_eq!(dir.list(), vec![1, 3, 4]);
        assert!(!dir.staging(5).exists());
        let m = dir.restore(3).unwrap();
        assert_eq!(m.epoch, 3);
        assert!(dir.live().join("000001.sst").exists());
        assert!(dir.live().join("CURRENT").exists());
        dir.remove_after(3);
        assert_eq!(dir.list(), vec![1, 3]);
    }
}
