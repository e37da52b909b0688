//! Engine configuration: parallelism, batching, watermark idleness, run modes, the Kafka
//! cluster, and where state and checkpoints live.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::connectors::kafka::KafkaConfig;

/// How the engine runs queries.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Subtasks per operator after a shuffle (default: number of cores).
    pub parallelism: usize,
    /// Largest batch a source emits.
    pub max_batch_rows: usize,
    /// Bounded channel capacity between tasks, in batches (backpressure).
    pub channel_capacity: usize,
    /// A partition without new records for this long stops holding back the watermark.
    pub idle_timeout: Option<Duration>,
    /// Sources stop at the end of their data (files, generators with a row count, and topics
    /// whose writers have finished) and advance the watermark to the end.
    pub until_idle: bool,
    /// Every topic gets one partition (the conformance harness reads partition 0 only).
    pub single_partition_topics: bool,
    /// Where the processing log (bad records, late rows, function errors) is also appended as
    /// JSON lines, if anywhere.
    pub processing_log_file: Option<PathBuf>,
    /// Name of the in-memory topic receiving the processing log.
    pub processing_log_topic: String,
    /// Echo processing-log entries to stderr (the CLI turns this on).
    pub processing_log_stderr: bool,
    /// The Kafka cluster `kafka_topic` relations live in; `None`: in-memory topics.
    pub kafka: Option<KafkaConfig>,
    /// Where persistent queries keep their state and checkpoints, resuming from them when
    /// restarted; `None`: no checkpoints (state lives for the process only).
    pub state_dir: Option<PathBuf>,
    /// Time between checkpoints (session property `checkpoint.interval` overrides it).
    pub checkpoint_interval: Duration,
    /// Completed checkpoints kept per query.
    pub checkpoints_kept: usize,
    /// Discard the checkpointed state of queries that cannot resume it (their statement
    /// changed) and start them afresh instead of refusing to start them.
    pub fresh_state: bool,
    /// Entries (groups) one operator subtask keeps in memory; beyond, state lives in RocksDB.
    pub state_cache_entries: usize,
    /// Nexmark events generated ahead of time (in the nexmark source's layout, see
    /// `NexmarkReader::replaying`): nexmark sources replay them instead of generating.
    pub nexmark_events: Option<std::sync::Arc<Vec<datafusion::arrow::array::RecordBatch>>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_batch_rows: 4096,
            channel_capacity: 16,
            idle_timeout: Some(Duration::from_secs(5)),
            until_idle: false,
            single_partition_topics: false,
            processing_log_file: None,
            processing_log_topic: "riffle_processing_log".into(),
            processing_log_stderr: false,
            kafka: None,
            state_dir: None,
            checkpoint_interval: Duration::from_secs(10),
            checkpoints_kept: 3,
            fresh_state: false,
            state_cache_entries: 1_000_000,
            nexmark_events: None,
        }
    }
}

impl EngineConfig {
    /// The configuration the conformance runner uses: one subtask, one record per batch (every
    /// update is emitted, as ksqlDB does with caching off), single-partition topics.
    pub fn conformance() -> Self {
        EngineConfig {
            parallelism: 1,
            max_batch_rows: 1,
            channel_capacity: 64,
            idle_timeout: None,
            until_idle: false,
            single_partition_topics: true,
            ..Default::default()
        }
    }
}
