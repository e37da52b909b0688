//! Barrier bookkeeping for one query: the coordinator hands out barrier ids, sinks acknowledge
//! them, and waiters learn when every sink subtask has seen a barrier (everything before it is
//! then written). Sources report where they were at each checkpoint barrier, file sinks how much
//! they had written, and the checkpointer announces committed epochs, which transactional sinks
//! wait for. Also tracks whether the query finished or failed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::watch;

/// The state of a query's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryStatus {
    /// Tasks are running.
    Running,
    /// Every sink saw the end of its input.
    Finished,
    /// A task failed; the message says why.
    Failed(String),
    /// The query was terminated.
    Terminated,
}

/// Where one source subtask was at a barrier: the next offset to read per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePositions {
    /// The Kafka topic read, for Kafka sources (their offsets are committed to the group).
    pub kafka_topic: Option<String>,
    /// Next offset per partition.
    pub offsets: BTreeMap<i32, i64>,
}

/// What sources and sinks reported for one checkpoint.
#[derive(Debug, Clone, Default)]
pub struct CheckpointReport {
    /// Per source key (stage and topic or file), merged over its subtasks.
    pub sources: BTreeMap<String, SourcePositions>,
    /// Per source subtask, the largest event time seen per partition (its watermark state).
    pub event_times: BTreeMap<String, BTreeMap<i32, i64>>,
    /// Bytes written per file sink.
    pub file_sinks: BTreeMap<String, u64>,
}

/// Checkpoint epoch under which reports made at the end of input are filed.
pub const FINAL_EPOCH: u64 = u64::MAX;

/// Tracks barriers and completion of one query.
#[derive(Debug)]
pub struct Coordinator {
    sinks: usize,
    next_barrier: AtomicU64,
    acks: Mutex<HashMap<u64, usize>>,
    completed: watch::Sender<u64>,
    committed: watch::Sender<u64>,
    reports: Mutex<BTreeMap<u64, CheckpointReport>>,
    ended: AtomicUsize,
    status: watch::Sender<QueryStatus>,
}

impl Coordinator {
    /// A coordinator for a query with `sinks` sink subtasks.
    pub fn new(sinks: usize) -> Self {
        let (completed, _) = watch::channel(0);
        let (committed, _) = watch::channel(0);
        let (status, _) = watch::channel(QueryStatus::Running);
        Coordinator {
            sinks: sinks.max(1),
            next_barrier: AtomicU64::new(1),
            acks: Mutex::new(HashMap::new()),
            completed,
            committed,
            reports: Mutex::new(BTreeMap::new()),
            ended: AtomicUsize::new(0),
            status,
        }
    }

    /// A new barrier id.
    pub fn next_barrier_id(&self) -> u64 {
        self.next_barrier.fetch_add(1, Ordering::SeqCst)
    }

    /// A sink subtask saw barrier `id`.
    pub fn ack(&self, id: u64) {
        let mut acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        let n = acks.entry(id).or_insert(0);
        *n += 1;
        if *n >= self.sinks {
            acks.remove(&id);
            self.completed.send_modify(|c| *c = (*c).max(id));
        }
    }

    /// A source subtask reports its positions at checkpoint `epoch` ([`FINAL_EPOCH`]: at the end
    /// of its input).
    pub fn report_positions(&self, epoch: u64, key: &str, positions: SourcePositions) {
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        let entry = reports
            .entry(epoch)
            .or_default()
            .sources
            .entry(key.to_string())
            .or_default();
        entry.kafka_topic = positions.kafka_topic;
        entry.offsets.extend(positions.offsets);
    }

    /// A source subtask reports the largest event time it saw per partition at checkpoint
    /// `epoch`, so a resumed query starts from the same watermark.
    pub fn report_event_times(&self, epoch: u64, subtask_key: &str, times: BTreeMap<i32, i64>) {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(epoch)
            .or_default()
            .event_times
            .insert(subtask_key.to_string(), times);
    }

    /// A file sink reports how many bytes it had written at checkpoint `epoch`.
    pub fn report_file_sink(&self, epoch: u64, path: &str, bytes: u64) {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(epoch)
            .or_default()
            .file_sinks
            .insert(path.to_string(), bytes);
    }

    /// Takes what was reported for checkpoint `epoch`.
    pub fn take_report(&self, epoch: u64) -> CheckpointReport {
        self.reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&epoch)
            .unwrap_or_default()
    }

    /// Announces that checkpoint `epoch` is complete (and its output committed).
    pub fn mark_committed(&self, epoch: u64) {
        self.committed.send_modify(|c| *c = (*c).max(epoch));
    }

    /// Waits until checkpoint `epoch` is committed; fails if the query stops first.
    pub async fn wait_committed(&self, epoch: u64) -> Result<(), QueryStatus> {
        self.wait_until(&self.committed, epoch).await
    }

    /// A sink subtask reached the end of its input.
    pub fn sink_ended(&self) {
        if self.ended.fetch_add(1, Ordering::SeqCst) + 1 >= self.sinks {
            self.set_status(QueryStatus::Finished);
        }
    }

    /// Records a status unless the query already failed or was terminated.
    pub fn set_status(&self, s: QueryStatus) {
        self.status.send_modify(|cur| {
            if matches!(cur, QueryStatus::Running)
                || matches!(s, QueryStatus::Failed(_)) && !matches!(cur, QueryStatus::Failed(_))
            {
                *cur = s;
            }
        });
    }

    /// The current status.
    pub fn status(&self) -> QueryStatus {
        self.status.borrow().clone()
    }

    /// Waits until every sink acknowledged barrier `id`; fails if the query stops first.
    pub async fn wait_barrier(&self, id: u64) -> Result<(), QueryStatus> {
        self.wait_until(&self.completed, id).await
    }

    /// Waits until `counter` reaches `target`; fails if the query stops first.
    async fn wait_until(
        &self,
        counter: &watch::Sender<u64>,
        target: u64,
    ) -> Result<(), QueryStatus> {
        let mut reached = counter.subscribe();
        let mut status = self.status.subscribe();
        loop {
            if *reached.borrow_and_update() >= target {
                return Ok(());
            }
            let s = status.borrow_and_update().clone();
            if s != QueryStatus::Running {
                return Err(s);
            }
            tokio::select! {
                r = reached.changed() => if r.is_err() { return Err(self.status()) },
                r = status.changed() => if r.is_err() { return Err(self.status()) },
            }
        }
    }

    /// Waits until the query is no longer running.
    pub async fn wait_done(&self) -> QueryStatus {
        let mut status = self.status.subscribe();
        loop {
            let s = status.borrow_and_update().clone();
            if s != QueryStatus::Running {
                return s;
            }
            if status.changed().await.is_err() {
                return self.status();
            }
        }
    }
}
