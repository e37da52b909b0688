//! Kafka connector: streams and tables over the topics of a real Kafka cluster, used for every
//! `kafka_topic` relation once the engine has bootstrap servers. Sources read assigned partitions
//! of the query's consumer group from explicit offsets (a checkpoint, the group's committed
//! offsets, or `auto.offset.reset`); sinks produce with an idempotent or transactional producer
//! (one Kafka transaction per checkpoint epoch). Topics are created with the declared partitions.

pub mod print;
pub mod sink;
pub mod source;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

pub use sink::KafkaProducer;
pub use source::KafkaReader;

use crate::error::{EngineError, Result};

/// How long a metadata, admin or transaction call may take before it fails.
pub const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// How a cluster is reached, and how this riffle deployment names itself in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// Further client properties for every consumer, producer and admin client (security
    /// settings and the like), as librdkafka names them.
    pub properties: BTreeMap<String, String>,
    /// Prefix of the consumer groups and transactional ids of this deployment's queries (like
    /// ksqlDB's `ksql.service.id`): two deployments running the same statements on one cluster
    /// need different ids.
    pub service_id: String,
}

impl KafkaConfig {
    /// Settings for a cluster at `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            properties: BTreeMap::new(),
            service_id: DEFAULT_SERVICE_ID.to_string(),
        }
    }

    /// The base client configuration.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// A consumer of group `group` that commits nothing by itself.
    pub fn consumer(&self, group: &str) -> Result<BaseConsumer> {
        self.client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed")
            .create()
            .map_err(|e| kafka_error(&format!("creating a consumer for group {group}"), e))
    }
}

/// A Kafka error with what was being done.
pub fn kafka_error(context: &str, e: KafkaError) -> EngineError {
    EngineError::Connector(format!("kafka: {context}: {e}"))
}

/// The number of partitions of `topic`, or `None` when it does not exist.
pub fn partition_count(cfg: &KafkaConfig, topic: &str) -> Result<Option<usize>> {
    let consumer = cfg.consumer("riffle-metadata")?;
    let md = consumer
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .map_err(|e| kafka_error(&format!("reading the metadata of topic {topic}"), e))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match t.error() {
        None if !t.partitions().is_empty() => Ok(Some(t.partitions().len())),
        None => Ok(None),
        Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => {
            Ok(None)
        }
        Some(e) => Err(EngineError::Connector(format!(
            "kafka: topic {topic}: {}",
            RDKafkaErrorCode::from(e)
        ))),
    }
}

/// Makes sure `topic` exists, creating it with `partitions` partitions (and `replicas`
/// replicas) when it does not; returns its partition count.
pub fn ensure_topic(
    cfg: &KafkaConfig,
    topic: &str,
    partitions: usize,
    replicas: i32,
) -> Result<usize> {
    if let Some(n) = partition_count(cfg, topic)? {
        return Ok(n);
    }
    let admin: AdminClient<DefaultClientContext> = cfg
        .client_config()
        .create()
        .map_err(|e| kafka_error("creating an admin client", e))?;
    let new = NewTopic::new(
        topic,
        partitions.max(1) as i32,
        TopicReplication::Fixed(replicas.max(1)),
    );
    let opts = AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics(&[new], &opts))
        .map_err(|e| kafka_error(&format!("creating topic {topic}"), e))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(EngineError::Connector(format!(
                    "kafka: cannot create topic {t}: {code}"
                )));
            }
        }
    }
    // Metadata can lag behind creation for a moment.
    for _ in 0..50 {
        if let Some(n) = partition_count(cfg, topic)? {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(EngineError::Connector(format!(
        "kafka: topic {topic} was created but does not appear in the cluster metadata"
    )))
}

/// The service id used when none is configured.
pub const DEFAULT_SERVICE_ID: &str = "riffle";

/// The consumer group of a persistent query: Kafka tools show its lag under this name.
pub fn group_for_query(cfg: &KafkaConfig, query_id: &str) -> String {
    format!("{}_{query_id}", cfg.service_id)
}

/// The commit log of a persistent query: a one-partition topic of its own. Each Kafka
/// transaction of the query writes a record to it (query, epoch, run), and the group's committed
/// offset on it is the last committed checkpoint epoch, committed atomically with the output and
/// the source offsets.
pub fn commit_log_topic(cfg: &KafkaConfig, query_id: &str) -> String {
    format!("_{}_commits", group_for_query(cfg, query_id))
}

/// The `transactional.id` of a query's sink producer: stable across restarts, so a restarted
/// query fences the producer of its previous instance.
pub fn transactional_id(cfg: &KafkaConfig, query_id: &str) -> String {
    format!("{}-{query_id}", cfg.service_id)
}
