//! The runtime: operator chains run as tokio tasks joined by bounded channels (backpressure).
//! Batches, watermarks, barriers and end-of-input flow between stages; a stage with several
//! upstream subtasks takes the minimum watermark and aligns barriers before snapshotting.

pub mod build;
pub mod checkpointer;
pub mod coordinator;
pub mod exchange;
pub mod source_task;
pub mod stage_task;

use datafusion::arrow::array::RecordBatch;

/// A barrier: what a source emitted before it belongs to the barrier's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// Sequence number, acknowledged by the sinks once everything before it is written.
    pub id: u64,
    /// On checkpoint barriers, the checkpoint epoch: operators write their state for it.
    pub checkpoint: Option<u64>,
}

impl Barrier {
    /// A barrier that only marks a point in the stream (sinks acknowledge it; no state is
    /// written).
    pub fn flush(id: u64) -> Self {
        Barrier {
            id,
            checkpoint: None,
        }
    }
}

/// What flows between tasks.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows.
    Batch(RecordBatch),
    /// No row with an earlier event time will follow from this sender.
    Watermark(i64),
    /// Checkpoint (or flush) barrier.
    Barrier(Barrier),
    /// The sender has delivered everything its source held when the query started (a table's
    /// initial contents, like Kafka Streams bootstrapping a global table).
    CaughtUp,
    /// The sender will send nothing more.
    End,
}

/// Commands a query sends to its source tasks.
#[derive(Debug, Clone)]
pub enum SourceCommand {
    /// Inject a barrier after the data available now.
    Barrier(Barrier),
    /// Stop reading and end the stream.
    Stop,
}
