//! `PRINT topic` against Kafka: reads every partition from the beginning and lists the records
//! (time, partition, offset, key, value) until `LIMIT` records were read or no record arrived
//! for a second.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaConfig, kafka_error, partition_count};
use crate::error::{EngineError, Result};

/// How long `PRINT` waits for another record before it ends.
const QUIET: Duration = Duration::from_secs(1);

fn text(b: Option<&[u8]>) -> String {
    match b {
        None => "<null>".to_string(),
        Some(b) => {
            String::from_utf8(b.to_vec()).unwrap_or_else(|_| crate::formats::convert::b64_encode(b))
        }
    }
}

/// The records of `topic`, as `PRINT` lists them.
pub fn print_topic(cfg: &KafkaConfig, topic: &str, limit: Option<u64>) -> Result<Vec<Vec<String>>> {
    let (name, partitions) = match partition_count(cfg, topic)? {
        Some(n) => (topic.to_string(), n),
        None => {
            let upper = topic.to_uppercase();
            match partition_count(cfg, &upper)? {
                Some(n) => (upper, n),
                None => {
                    return Err(EngineError::Catalog(format!(
                        "kafka topic {topic} does not exist"
                    )));
                }
            }
        }
    };
    let consumer = cfg.consumer("riffle-print")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(&name, p as i32, Offset::Beginning)
            .map_err(|e| kafka_error("assigning partitions", e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| kafka_error(&format!("reading {name}"), e))?;
    let max = limit.unwrap_or(u64::MAX) as usize;
    let mut rows = Vec::new();
    let mut last = Instant::now();
    while rows.len() < max && last.elapsed() < QUIET {
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(e)) => tracing::warn!("kafka: printing {name}: {e}"),
            Some(Ok(m)) => {
                last = Instant::now();
                rows.push(vec![
                    m.timestamp().to_millis().unwrap_or(0).to_string(),
                    m.partition().to_string(),
                    m.offset().to_string(),
                    text(m.key()),
                    text(m.payload()),
                ]);
            }
        }
    }
    Ok(rows)
}
