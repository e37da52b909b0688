//! Kafka source reader: one per source subtask, reading an explicit set of partitions of one
//! topic from explicit start offsets. It tracks the next offset of every partition so a
//! checkpoint can record exactly where to resume.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaConfig, kafka_error};
use crate::connectors::Poll;
use crate::error::Result;
use crate::record::{Record, SourceRecord};

/// Where a partition starts when a query starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// At this offset (a checkpoint or a committed group offset).
    At(i64),
    /// At the first retained record (`auto.offset.reset = earliest`).
    Earliest,
    /// After the last record (`auto.offset.reset = latest`).
    Latest,
}

/// Reads assigned partitions of a topic.
pub struct KafkaReader {
    consumer: BaseConsumer,
    topic: Arc<str>,
    partitions: Vec<i32>,
    positions: BTreeMap<i32, i64>,
}

impl KafkaReader {
    /// Opens a reader of `topic` for consumer group `group`, assigned `start`'s partitions.
    pub fn open(
        cfg: &KafkaConfig,
        group: &str,
        topic: &str,
        start: &BTreeMap<i32, StartOffset>,
    ) -> Result<Self> {
        let consumer = cfg.consumer(group)?;
        let mut tpl = TopicPartitionList::new();
        let mut positions = BTreeMap::new();
        for (&p, &s) in start {
            let offset = match s {
                StartOffset::At(o) => {
                    positions.insert(p, o);
                    Offset::Offset(o)
                }
                StartOffset::Earliest => Offset::Beginning,
                StartOffset::Latest => Offset::End,
            };
            tpl.add_partition_offset(topic, p, offset)
                .map_err(|e| kafka_error(&format!("assigning {topic}/{p}"), e))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_error(&format!("assigning partitions of {topic}"), e))?;
        Ok(KafkaReader {
            consumer,
            topic: Arc::from(topic),
            partitions: start.keys().copied().collect(),
            positions,
        })
    }

    /// Reads up to `max` records that have arrived.
    pub fn poll(&mut self, max: usize) -> Result<Poll> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                                .collect()
                        })
                        .unwrap_or_default();
                    let timestamp = m
                        .timestamp()
                        .to_millis()
                        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
                    self.positions.insert(m.partition(), m.offset() + 1);
                    out.push(SourceRecord {
                        partition: m.partition(),
                        offset: m.offset(),
                        record: Arc::new(Record {
                            key: m.key().map(|k| k.to_vec()),
                            value: m.payload().map(|v| v.to_vec()),
                            timestamp,
                            headers,
                        }),
                        topic: self.topic.clone(),
                    });
                }
                Some(Err(e)) => {
                    if out.is_empty() {
                        // The client retries transient errors itself; report and go on.
                        tracing::warn!("kafka: reading {}: {e}", self.topic);
                    }
                    break;
                }
            }
        }
        Ok(if out.is_empty() {
            Poll::Idle
        } else {
            Poll::Records(out)
        })
    }

    /// The next offset to read of every partition that has a known position.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// The partitions assigned.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    /// The topic read.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}
