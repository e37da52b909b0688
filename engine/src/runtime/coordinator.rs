//! Barrier bookkeeping for one query: the coordinator hands out epochs, sinks acknowledge them,
//! and waiters learn when every sink subtask has seen an epoch's barrier (everything before the
//! barrier is then written). Also tracks whether the query finished or failed.

use std::collections::HashMap;
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

/// Tracks epochs and completion of one query.
#[derive(Debug)]
pub struct Coordinator {
    sinks: usize,
    next_epoch: AtomicU64,
    acks: Mutex<HashMap<u64, usize>>,
    completed: watch::Sender<u64>,
    ended: AtomicUsize,
    status: watch::Sender<QueryStatus>,
}

impl Coordinator {
    /// A coordinator for a query with `sinks` sink subtasks.
    pub fn new(sinks: usize) -> Self {
        let (completed, _) = watch::channel(0);
        let (status, _) = watch::channel(QueryStatus::Running);
        Coordinator {
            sinks: sinks.max(1),
            next_epoch: AtomicU64::new(1),
            acks: Mutex::new(HashMap::new()),
            completed,
            ended: AtomicUsize::new(0),
            status,
        }
    }

    /// A new epoch number.
    pub fn next_epoch(&self) -> u64 {
        self.next_epoch.fetch_add(1, Ordering::SeqCst)
    }

    /// A sink subtask saw the barrier of `epoch`.
    pub fn ack(&self, epoch: u64) {
        let mut acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        let n = acks.entry(epoch).or_insert(0);
        *n += 1;
        if *n >= self.sinks {
            acks.remove(&epoch);
            self.completed.send_modify(|c| *c = (*c).max(epoch));
        }
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

    /// Waits until `epoch` completed; fails if the query stops first.
    pub async fn wait_epoch(&self, epoch: u64) -> Result<(), QueryStatus> {
        let mut completed = self.completed.subscribe();
        let mut status = self.status.subscribe();
        loop {
            if *completed.borrow_and_update() >= epoch {
                return Ok(());
            }
            let s = status.borrow_and_update().clone();
            if s != QueryStatus::Running {
                return Err(s);
            }
            tokio::select! {
                r = completed.changed() => if r.is_err() { return Err(self.status()) },
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
