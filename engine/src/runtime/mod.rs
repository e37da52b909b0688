//! The runtime: operator chains run as tokio tasks joined by bounded channels (backpressure).
//! Batches, watermarks, barriers and end-of-input flow between stages; a stage with several
//! upstream subtasks takes the minimum watermark and aligns barriers before snapshotting.

pub mod build;
pub mod coordinator;
pub mod exchange;
pub mod source_task;
pub mod stage_task;

use datafusion::arrow::array::RecordBatch;

/// What flows between tasks.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows.
    Batch(RecordBatch),
    /// No row with an earlier event time will follow from this sender.
    Watermark(i64),
    /// Checkpoint barrier for an epoch.
    Barrier(u64),
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
    Barrier(u64),
    /// Stop reading and end the stream.
    Stop,
}
