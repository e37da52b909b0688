//! Kafka sink producer, shared by the sink subtasks of one query. Without transactions it is an
//! idempotent producer flushed at every checkpoint (at-least-once). With transactions
//! (`processing.guarantee = exactly_once`) each checkpoint epoch's output is one Kafka
//! transaction: the query's checkpointer commits it together with the source offsets, and the
//! stable `transactional.id` fences any older instance of the query (a zombie) at start.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::{KAFKA_TIMEOUT, KafkaConfig, kafka_error};
use crate::error::{EngineError, Result};
use crate::record::Record;

/// Header naming the transaction a record was written in: `<run>:<epoch>`, where `run`
/// identifies the producer instance (logged when the query starts, with the checkpoint it
/// resumes) and `epoch` is the checkpoint epoch the transaction commits. Knowing which epochs each
/// run committed, a checker can keep exactly the records of committed transactions, whatever the
/// broker shows of aborted ones.
pub const TXN_HEADER: &str = "riffle.txn";

/// Remembers the first delivery failure, which fails the next flush or commit.
#[derive(Default)]
pub struct SinkContext {
    failure: Mutex<Option<String>>,
}

impl ClientContext for SinkContext {}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            if f.is_none() {
                *f = Some(e.to_string());
            }
        }
    }
}

/// A producer writing one query's output.
pub struct KafkaProducer {
    producer: ThreadedProducer<SinkContext>,
    transactional: bool,
    run: String,
    epoch: AtomicU64,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("transactional", &self.transactional)
            .field("run", &self.run)
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl KafkaProducer {
    /// An idempotent producer, or with `transactional_id` a transactional one (initialised,
    /// which fences older producers with the same id, with its first transaction begun).
    pub fn new(cfg: &KafkaConfig, transactional_id: Option<&str>) -> Result<Self> {
        let mut c = cfg.client_config();
        c.set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "60000");
        if let Some(id) = transactional_id {
            c.set("transactional.id", id)
                .set("transaction.timeout.ms", "60000");
        }
        let producer: ThreadedProducer<SinkContext> = c
            .create_with_context(SinkContext::default())
            .map_err(|e| kafka_error("creating a producer", e))?;
        if transactional_id.is_some() {
            producer
                .init_transactions(KAFKA_TIMEOUT)
                .map_err(|e| kafka_error("initialising transactions", e))?;
            producer
                .begin_transaction()
                .map_err(|e| kafka_error("beginning a transaction", e))?;
        }
        let run = format!("{:016x}", rand::random::<u64>());
        Ok(KafkaProducer {
            producer,
            transactional: transactional_id.is_some(),
            run,
            epoch: AtomicU64::new(1),
        })
    }

    /// Whether output is written in transactions.
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }

    /// This producer instance's id, as written in [`TXN_HEADER`].
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// The checkpoint epoch the open transaction belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Sets the checkpoint epoch of the open transaction (the one after the resumed checkpoint).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    fn check_deliveries(&self) -> Result<()> {
        let failure = self
            .producer
            .context()
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match failure {
            Some(f) => Err(EngineError::Connector(format!(
                "kafka: a record could not be delivered: {f}"
            ))),
            None => Ok(()),
        }
    }

    /// Queues a record for `topic`, waiting while the producer's queue is full.
    pub fn send(&self, topic: &str, r: &Record) -> Result<()> {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len() + 1);
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let txn_label = format!("{}:{}", self.run, self.epoch());
        if self.transactional {
            headers = headers.insert(Header {
                key: TXN_HEADER,
                value: Some(txn_label.as_bytes()),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .timestamp(r.timestamp)
            .headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(kafka_error(&format!("writing to {topic}"), e)),
            }
        }
    }

    /// Waits until every queued record is acknowledged (at-least-once checkpoints).
    pub fn flush(&self) -> Result<()> {
        self.producer
            .flush(KAFKA_TIMEOUT)
            .map_err(|e| kafka_error("flushing the producer", e))?;
        self.check_deliveries()
    }

    /// Commits the open transaction with the source offsets of its epoch (when the query reads
    /// Kafka), then begins the next one.
    pub fn commit(
        &self,
        offsets: Option<(&TopicPartitionList, &ConsumerGroupMetadata)>,
    ) -> Result<()> {
        if let Some((tpl, group)) = offsets {
            self.producer
                .send_offsets_to_transaction(tpl, group, KAFKA_TIMEOUT)
                .map_err(|e| kafka_error("adding the source offsets to the transaction", e))?;
        }
        self.producer
            .commit_transaction(KAFKA_TIMEOUT)
            .map_err(|e| kafka_error("committing the transaction", e))?;
        self.check_deliveries()?;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.producer
            .begin_transaction()
            .map_err(|e| kafka_error("beginning a transaction", e))
    }
}
