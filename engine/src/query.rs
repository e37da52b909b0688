//! A running query: its plan, the control channels of its sources, its tasks and counters.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use riffle_sql::plan::QueryPlan;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::connectors::memory::ReadGate;
use crate::error::{EngineError, Result};
use crate::metrics::QueryMetrics;
use crate::processing_log::ErrorCounts;
use crate::runtime::coordinator::{Coordinator, QueryStatus};
use crate::runtime::{Barrier, SourceCommand};
use crate::state::StateStore;

/// Whether a query outlives its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `CREATE … AS SELECT` / `INSERT INTO … SELECT`: runs until terminated.
    Persistent,
    /// A `SELECT` streamed to a client.
    Transient,
}

/// Handle to a running query.
pub struct QueryHandle {
    /// Query id (`CSAS_OUTPUT_0`, …).
    pub id: String,
    /// The statement text.
    pub sql: String,
    /// The relation it writes, for persistent queries.
    pub sink: Option<String>,
    /// The relations it reads.
    pub sources: Vec<String>,
    /// The plan.
    pub plan: QueryPlan,
    /// Persistent or transient.
    pub kind: QueryKind,
    pub(crate) controls: Vec<mpsc::UnboundedSender<SourceCommand>>,
    /// Barrier and status bookkeeping.
    pub coordinator: Arc<Coordinator>,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Row counters.
    pub metrics: Arc<QueryMetrics>,
    /// Processing-log counters.
    pub errors: Arc<ErrorCounts>,
    /// Read limits when fed step by step (conformance runs).
    pub gate: Option<Arc<ReadGate>>,
    /// The query's state store.
    pub store: Arc<StateStore>,
    /// The checkpointer task of a durable query.
    pub(crate) checkpointer: Mutex<Option<JoinHandle<()>>>,
}

impl QueryHandle {
    /// Injects a barrier at every source and waits until every sink has written everything that
    /// was available before it.
    pub async fn flush(&self) -> Result<()> {
        let id = self.coordinator.next_barrier_id();
        for c in &self.controls {
            // A source that already finished cannot take a barrier; its End covers it.
            let _ = c.send(SourceCommand::Barrier(Barrier::flush(id)));
        }
        match self.coordinator.wait_barrier(id).await {
            Ok(()) => Ok(()),
            Err(QueryStatus::Failed(m)) => Err(EngineError::QueryFailed {
                query: self.id.clone(),
                message: m,
            }),
            Err(_) => Ok(()),
        }
    }

    /// Asks the sources to stop; the query drains and ends.
    pub fn stop(&self) {
        for c in &self.controls {
            let _ = c.send(SourceCommand::Stop);
        }
    }

    /// Stops the query, waiting briefly for it to drain before aborting its tasks.
    pub async fn terminate(&self) {
        self.stop();
        let done = tokio::time::timeout(Duration::from_secs(5), self.coordinator.wait_done()).await;
        if done.is_err() {
            tracing::warn!(
                "query {} did not stop within 5s; aborting its tasks",
                self.id
            );
        }
        let checkpointer = self
            .checkpointer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(c) = checkpointer {
            // Its last checkpoint commits what the query wrote before stopping.
            if tokio::time::timeout(Duration::from_secs(60), c)
                .await
                .is_err()
            {
                tracing::warn!(
                    "query {}: the last checkpoint did not finish in 60s",
                    self.id
                );
            }
        }
        self.coordinator.set_status(QueryStatus::Terminated);
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Waits until the query finished, failed or was terminated.
    pub async fn wait(&self) -> QueryStatus {
        self.coordinator.wait_done().await
    }

    /// The current status.
    pub fn status(&self) -> QueryStatus {
        self.coordinator.status()
    }
}
