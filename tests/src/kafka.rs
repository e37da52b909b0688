//! Helpers for tests against the Kafka-protocol broker that `scripts/test.sh` starts (tansu on
//! loopback, address in `RIFFLE_KAFKA_BOOTSTRAP`): topics with unique names, producing records,
//! reading a topic back, and a consumer group's committed offsets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The broker's address. Fails loudly when the test script did not start one.
pub fn bootstrap() -> String {
    std::env::var("RIFFLE_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "RIFFLE_KAFKA_BOOTSTRAP is not set: the Kafka tests need the broker that \
             scripts/test.sh starts (run the tests with scripts/test.sh, or start one with \
             `. scripts/kafka-broker.sh` and export its address)"
        )
    })
}

/// A topic or group name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:08x}", rand::random::<u32>())
}

fn config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap());
    c
}

/// Creates `topic` with `partitions` partitions.
pub fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        config().create().expect("an admin client connects");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures::executor::block_on(admin.create_topics(&[new], &AdminOptions::new()))
        .expect("the broker answers CreateTopics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// A record to produce.
#[derive(Debug, Clone, Default)]
pub struct Out {
    /// Partition (None: by key).
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (None: a tombstone).
    pub value: Option<Vec<u8>>,
    /// Record timestamp, epoch milliseconds.
    pub timestamp: Option<i64>,
}

impl Out {
    /// A record with a text key and value.
    pub fn kv(key: &str, value: &str) -> Self {
        Out {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            ..Default::default()
        }
    }

    /// The same record, to partition `p`.
    pub fn to(mut self, p: i32) -> Self {
        self.partition = Some(p);
        self
    }

    /// A tombstone for a text key.
    pub fn tombstone(key: &str) -> Self {
        Out {
            key: Some(key.as_bytes().to_vec()),
            ..Default::default()
        }
    }
}

/// Produces `records` to `topic` and waits until all are acknowledged.
pub fn produce(topic: &str, records: &[Out]) {
    let producer: ThreadedProducer<DefaultProducerContext> = config()
        .set("linger.ms", "5")
        .create()
        .expect("a producer connects");
    for r in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(p) = r.partition {
            rec = rec.partition(p);
        }
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        if let Some(t) = r.timestamp {
            rec = rec.timestamp(t);
        }
        let mut rec = rec;
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "producing to {topic}: {e}"
                    );
                    rec = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("flushing records to {topic}: {e}"));
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct In {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: BTreeMap<String, String>,
}

impl In {
    /// The key as text.
    pub fn key_text(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).to_string()
    }

    /// The value as JSON (`Null` for a tombstone).
    pub fn json(&self) -> serde_json::Value {
        match &self.value {
            None => serde_json::Value::Null,
            Some(v) => serde_json::from_slice(v)
                .unwrap_or_else(|e| panic!("value {:?} is not JSON: {e}", self.value)),
        }
    }
}

/// Reads `topic` from the beginning until no record arrived for `quiet` (for topics nothing
/// writes to any more).
pub fn read_quiet(topic: &str, quiet: Duration) -> Vec<In> {
    let last = std::cell::Cell::new((0usize, Instant::now()));
    read_until(topic, Duration::from_secs(600), |r| {
        let (n, at) = last.get();
        if r.len() != n {
            last.set((r.len(), Instant::now()));
            false
        } else {
            at.elapsed() >= quiet
        }
    })
}

/// Reads `topic` from the beginning until `done` holds for everything read so far; fails after
/// `timeout` with what was read.
pub fn read_until(topic: &str, timeout: Duration, done: impl Fn(&[In]) -> bool) -> Vec<In> {
    let consumer: BaseConsumer = config()
        .set("group.id", unique("riffle_test_reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer connects");
    let deadline = Instant::now() + timeout;
    let md = loop {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let ready = md
            .topics()
            .iter()
            .any(|t| t.name() == topic && !t.partitions().is_empty());
        if ready || Instant::now() > deadline {
            break md;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let partitions = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    assert!(partitions > 0, "topic {topic} does not exist");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    loop {
        if done(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: gave up after {timeout:?} with {} records: {:#?}",
            out.len(),
            out.iter().rev().take(20).collect::<Vec<_>>()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap_or_else(|e| panic!("reading {topic}: {e}"));
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(In {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
    }
}

/// The latest value per key (tombstones remove the key), keys as text.
pub fn latest_by_key(records: &[In]) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for r in records {
        match &r.value {
            None => {
                out.remove(&r.key_text());
            }
            Some(_) => {
                out.insert(r.key_text(), r.json());
            }
        }
    }
    out
}

/// The committed offsets of `group` for `topic`'s first `partitions` partitions.
pub fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer connects");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("committed offsets of {group}: {e}"));
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}
