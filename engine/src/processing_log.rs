//! The processing log: every record a query could not handle — undecodable input, rows a
//! function failed on, late rows, bad timestamps — with where it came from, its raw bytes and the
//! reason. Modelled on ksqlDB's processing log: entries go to a topic (readable with `PRINT`): the
//! Kafka topic of that name when the engine has a Kafka cluster, else an in-memory one;
//! optionally also to a JSON-lines file and stderr. They are counted per query.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use crate::connectors::kafka::{self, KafkaConfig, KafkaProducer};
use crate::connectors::memory::TopicStore;
use crate::formats::convert::b64_encode;
use crate::record::Record;

/// Why a record went to the processing log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorKind {
    /// The key or value could not be decoded.
    Deserialization,
    /// A result could not be encoded.
    Serialization,
    /// A function failed on the row; the value became NULL.
    Function,
    /// The row arrived after its window closed (past the grace period).
    LateRow,
    /// The row's event time could not be read.
    Timestamp,
    /// A row pattern directive could not be honoured (e.g. `AFTER MATCH SKIP TO FIRST` of the
    /// match's first row); matching went on.
    Pattern,
}

/// One processing-log entry.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRecord {
    /// The query that hit the problem.
    pub query: String,
    /// Kind of problem.
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    /// Human-readable reason.
    pub message: String,
    /// Source topic or file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Source partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Source offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// Event time of the row, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rowtime: Option<i64>,
    /// Raw key bytes, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// Raw value bytes, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

impl ErrorRecord {
    /// An entry without source coordinates.
    pub fn new(query: &str, kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorRecord {
            query: query.to_string(),
            kind,
            message: message.into(),
            topic: None,
            partition: None,
            offset: None,
            rowtime: None,
            key_base64: None,
            value_base64: None,
        }
    }

    /// Adds the raw record and its coordinates.
    pub fn with_record(mut self, topic: &str, partition: i32, offset: i64, r: &Record) -> Self {
        self.topic = Some(topic.to_string());
        self.partition = Some(partition);
        self.offset = Some(offset);
        self.rowtime = Some(r.timestamp);
        self.key_base64 = r.key.as_deref().map(b64_encode);
        self.value_base64 = r.value.as_deref().map(b64_encode);
        self
    }
}

/// Per-query counts of processing-log entries, by kind.
#[derive(Debug, Default)]
pub struct ErrorCounts {
    /// Undecodable records.
    pub deserialization: AtomicU64,
    /// Unencodable results.
    pub serialization: AtomicU64,
    /// Function failures.
    pub function: AtomicU64,
    /// Late rows.
    pub late: AtomicU64,
    /// Bad timestamps.
    pub timestamp: AtomicU64,
}

impl ErrorCounts {
    /// Total entries.
    pub fn total(&self) -> u64 {
        self.deserialization.load(Ordering::Relaxed)
            + self.serialization.load(Ordering::Relaxed)
            + self.function.load(Ordering::Relaxed)
            + self.late.load(Ordering::Relaxed)
            + self.timestamp.load(Ordering::Relaxed)
    }
}

/// Where processing-log entries go.
#[derive(Debug)]
pub struct ProcessingLog {
    topic_name: String,
    topics: Arc<TopicStore>,
    file: Option<Mutex<std::fs::File>>,
    stderr: bool,
    counts: Mutex<BTreeMap<String, Arc<ErrorCounts>>>,
    kafka: Option<KafkaConfig>,
    /// The producer writing entries to Kafka, made on the first entry (or why it could not be).
    producer: OnceLock<std::result::Result<Arc<KafkaProducer>, String>>,
}

impl ProcessingLog {
    /// Creates the log, opening `file` for appending if given.
    pub fn new(
        topic_name: String,
        topics: Arc<TopicStore>,
        file: Option<PathBuf>,
        stderr: bool,
        kafka: Option<KafkaConfig>,
    ) -> std::io::Result<Self> {
        let file = match file {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        Ok(ProcessingLog {
            topic_name,
            topics,
            file,
            stderr,
            counts: Mutex::new(BTreeMap::new()),
            kafka,
            producer: OnceLock::new(),
        })
    }

    /// The counters of a query.
    pub fn counts(&self, query: &str) -> Arc<ErrorCounts> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(query.to_string())
            .or_default()
            .clone()
    }

    /// The in-memory topic holding the entries.
    pub fn topic_name(&self) -> &str {
        &self.topic_name
    }

    /// Records an entry.
    pub fn report(&self, e: ErrorRecord) {
        let c = self.counts(&e.query);
        let counter = match e.kind {
            ErrorKind::Deserialization => &c.deserialization,
            ErrorKind::Serialization => &c.serialization,
            ErrorKind::Function | ErrorKind::Pattern => &c.function,
            ErrorKind::LateRow => &c.late,
            ErrorKind::Timestamp => &c.timestamp,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let json = serde_json::to_string(&e)
            .unwrap_or_else(|_| format!("{{\"message\":{:?}}}", e.message));
        if self.stderr {
            eprintln!("processing log: {json}");
        }
        tracing::debug!(target: "riffle::processing_log", "{json}");
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(err) = writeln!(f, "{json}") {
                tracing::warn!("cannot append to the processing log file: {err}");
            }
        }
        let record = Record {
            key: Some(e.query.clone().into_bytes()),
            value: Some(json.into_bytes()),
            timestamp: e.rowtime.unwrap_or(0),
            headers: vec![],
        };
        match &self.kafka {
            Some(cfg) => self.to_kafka(cfg, &record),
            None => {
                self.topics
                    .get_or_create(&self.topic_name, 1)
                    .append(0, record);
            }
        }
    }

    /// Writes an entry to the Kafka topic of the log (creating it on first use). A failure is
    /// logged, and the entry stays in the file and stderr copies when those are configured.
    fn to_kafka(&self, cfg: &KafkaConfig, record: &Record) {
        let producer = self.producer.get_or_init(|| {
            kafka::ensure_topic(cfg, &self.topic_name, 1, 1)
                .and_then(|_| KafkaProducer::new(cfg, None))
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        match producer {
            Ok(p) => {
                if let Err(err) = p.send(&self.topic_name, record) {
                    tracing::warn!("cannot write to the processing log topic: {err}");
                }
            }
            Err(err) => tracing::warn!("cannot write to the processing log topic: {err}"),
        }
    }

    /// Waits until entries sent to Kafka are acknowledged.
    pub fn flush(&self) {
        if let Some(Ok(p)) = self.producer.get()
            && let Err(err) = p.flush()
        {
            tracing::warn!("cannot flush the processing log topic: {err}");
        }
    }
}
