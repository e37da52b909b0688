//! `PRINT topic` against Kafka: reads every partition from the beginning and lists the records
//! (time, partition, offset, key, value) until `LIMIT` records were read or no record arrived
//! for a second.

use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{KAFKA_TIMEOUT, KafkaConfig, kafka_error};
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
    let (name, partitions) = resolve_topic(cfg, topic)?;
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

/// The topic `PRINT` names and its partition count: the topic of that exact name, else the one
/// topic whose name matches ignoring case (unquoted names arrive upper-cased, as in ksqlDB).
fn resolve_topic(cfg: &KafkaConfig, topic: &str) -> Result<(String, usize)> {
    let consumer = cfg.consumer("riffle-print")?;
    let md = consumer
        .fetch_metadata(None, KAFKA_TIMEOUT)
        .map_err(|e| kafka_error("listing topics", e))?;
    let found = |exact: bool| -> Vec<(String, usize)> {
        md.topics()
            .iter()
            .filter(|t| {
                if exact {
                    t.name() == topic
                } else {
                    t.name().eq_ignore_ascii_case(topic)
                }
            })
            .map(|t| (t.name().to_string(), t.partitions().len()))
            .collect()
    };
    let mut exact = found(true);
    if let Some(t) = exact.pop() {
        return Ok(t);
    }
    let mut loose = found(false);
    match loose.len() {
        1 => Ok(loose.remove(0)),
        0 => Err(EngineError::Catalog(format!(
            "kafka topic {topic} does not exist"
        ))),
        _ => Err(EngineError::Catalog(format!(
            "several kafka topics match {topic} ignoring case ({}): quote the exact name",
            loose
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
