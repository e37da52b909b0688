//! Per-query counters: rows in and out, the latest watermark, state size, checkpoints. Read by `SHOW QUERIES`,
//! `DESCRIBE EXTENDED` and the metrics endpoint.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters of one running query.
#[derive(Debug)]
pub struct QueryMetrics {
    /// Records read from sources.
    pub rows_in: AtomicU64,
    /// Records written to the sink.
    pub rows_out: AtomicU64,
    /// Latest watermark seen at the sink stage (ms), or `i64::MIN`.
    pub watermark: AtomicI64,
    /// Approximate bytes of operator state.
    pub state_bytes: AtomicU64,
    /// Duration of the last completed checkpoint (barrier, state snapshot, commit), in ms.
    pub last_checkpoint_ms: AtomicU64,
    /// Size of the last completed checkpoint's state files, in bytes.
    pub last_checkpoint_bytes: AtomicU64,
    /// The last completed checkpoint epoch (0: none yet).
    pub last_checkpoint_epoch: AtomicU64,
}

impl Default for QueryMetrics {
    fn default() -> Self {
        QueryMetrics {
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            state_bytes: AtomicU64::new(0),
            last_checkpoint_ms: AtomicU64::new(0),
            last_checkpoint_bytes: AtomicU64::new(0),
            last_checkpoint_epoch: AtomicU64::new(0),
        }
    }
}

impl QueryMetrics {
    /// Adds to the input counter.
    pub fn add_in(&self, n: usize) {
        self.rows_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Adds to the output counter.
    pub fn add_out(&self, n: usize) {
        self.rows_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records a watermark.
    pub fn set_watermark(&self, wm: i64) {
        self.watermark.fetch_max(wm, Ordering::Relaxed);
    }
}
