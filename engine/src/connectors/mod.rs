//! Connectors: where records come from and go to. One folder per connector: in-memory topics,
//! Kafka, files, the data generator, the Nexmark generator, stdout. A source connector yields records (to decode) or ready
//! batches; sinks are wired in the sink operator.

pub mod datagen;
pub mod file;
pub mod kafka;
pub mod memory;
pub mod nexmark;
pub mod stdout;

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;
use tokio::sync::watch;

use crate::runtime::coordinator::SourcePositions;

use crate::record::SourceRecord;

/// What a source yields when polled.
pub enum Poll {
    /// Serialized records to decode.
    Records(Vec<SourceRecord>),
    /// A batch already in the relation's layout.
    Batch(RecordBatch),
    /// Nothing right now; more may come.
    Idle,
    /// Nothing more will ever come.
    Exhausted,
}

/// A source connector's reader for one subtask.
pub enum SourceReader {
    /// In-memory topic partitions.
    Memory(memory::MemoryReader),
    /// A file.
    File(file::FileReader),
    /// The data generator.
    Datagen(datagen::DatagenReader),
    /// The Nexmark event generator.
    Nexmark(Box<nexmark::NexmarkReader>),
    /// Partitions of a Kafka topic.
    Kafka(Box<kafka::KafkaReader>),
}

impl SourceReader {
    /// Polls for up to `max` rows.
    pub fn poll(&mut self, max: usize) -> crate::error::Result<Poll> {
        match self {
            SourceReader::Memory(m) => {
                let recs = m.poll(max);
                if !recs.is_empty() {
                    Ok(Poll::Records(recs))
                } else if m.exhausted() {
                    Ok(Poll::Exhausted)
                } else {
                    Ok(Poll::Idle)
                }
            }
            SourceReader::File(f) => f.poll(max),
            SourceReader::Datagen(d) => d.poll(max),
            SourceReader::Nexmark(n) => n.poll(max),
            SourceReader::Kafka(k) => k.poll(max),
        }
    }

    /// Where the reader is: the next offset per partition (for checkpoints).
    pub fn positions(&self) -> SourcePositions {
        let single = |o: i64| [(0, o)].into_iter().collect();
        match self {
            SourceReader::Memory(m) => SourcePositions {
                kafka_topic: None,
                offsets: m.positions(),
            },
            SourceReader::File(f) => SourcePositions {
                kafka_topic: None,
                offsets: single(f.position()),
            },
            SourceReader::Datagen(d) => SourcePositions {
                kafka_topic: None,
                offsets: single(d.position()),
            },
            SourceReader::Nexmark(n) => SourcePositions {
                kafka_topic: None,
                offsets: [(n.subtask(), n.position())].into_iter().collect(),
            },
            SourceReader::Kafka(k) => SourcePositions {
                kafka_topic: Some(k.topic().to_string()),
                offsets: k.positions().clone(),
            },
        }
    }

    /// The partitions the reader was assigned, when it knows them before reading (Kafka).
    pub fn assigned_partitions(&self) -> Vec<i32> {
        match self {
            SourceReader::Kafka(k) => k.partitions().to_vec(),
            _ => vec![],
        }
    }

    /// Continues from checkpointed positions (Kafka readers are opened at them instead).
    pub fn seek(&mut self, offsets: &BTreeMap<i32, i64>) -> crate::error::Result<()> {
        let first = offsets.get(&0).copied().unwrap_or(0);
        match self {
            SourceReader::Memory(m) => m.seek(offsets),
            SourceReader::File(f) => f.seek(first)?,
            SourceReader::Datagen(d) => d.seek(first),
            SourceReader::Nexmark(n) => {
                if let Some(at) = offsets.get(&n.subtask()) {
                    n.seek(*at);
                }
            }
            SourceReader::Kafka(_) => {}
        }
        Ok(())
    }

    /// A signal that fires when new data may be available, for sources that can wait on one.
    pub fn changed(&mut self) -> Option<&mut watch::Receiver<u64>> {
        match self {
            SourceReader::Memory(m) => Some(m.changed()),
            _ => None,
        }
    }

    /// When the source can next produce (rate-limited generators), or should be polled again
    /// (Kafka, whose client fetches in the background).
    pub fn next_ready(&self) -> Option<std::time::Instant> {
        match self {
            SourceReader::Datagen(d) => d.next_ready(),
            SourceReader::Kafka(_) => {
                Some(std::time::Instant::now() + std::time::Duration::from_millis(5))
            }
            _ => None,
        }
    }

    /// Whether a barrier should wait until all currently available data was read (topics:
    /// the conformance runner relies on this to feed records one at a time).
    pub fn drains_before_barrier(&self) -> bool {
        matches!(self, SourceReader::Memory(_))
    }

    /// Whether records still need decoding.
    pub fn yields_records(&self) -> bool {
        !matches!(self, SourceReader::Datagen(_) | SourceReader::Nexmark(_))
    }
}
