//! The checkpointer of a persistent query with a state directory. Every checkpoint interval it
//! injects a checkpoint barrier at every source; once every sink has seen it (every operator
//! then wrote its state for the epoch), it snapshots the RocksDB store with a manifest of source
//! positions and file-sink lengths, makes that durable, and then commits the epoch: the Kafka
//! transaction of a transactional sink together with the source offsets and the epoch marker,
//! or (at-least-once) a producer flush and an offset commit. Sinks wait for the commit before
//! writing the next epoch. When the query's input ends, a last checkpoint commits the rest.
//!
//! On start, [`resume_point`] picks the checkpoint to resume: for transactional sinks the
//! epoch Kafka committed (the group's offset of the epoch-marker partition), otherwise the
//! newest complete checkpoint. State whose plan hash differs is refused unless starting fresh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::coordinator::{CheckpointReport, Coordinator, FINAL_EPOCH, QueryStatus};
use super::{Barrier, SourceCommand};
use crate::config::EngineConfig;
use crate::connectors::kafka::{self, KAFKA_TIMEOUT, KafkaConfig, KafkaProducer, kafka_error};
use crate::error::{EngineError, Result};
use crate::metrics::QueryMetrics;
use crate::record::Record;
use crate::state::store::dir_size;
use crate::state::{Manifest, QueryStateDir, StateStore};

/// Log target of checkpoint progress (`RIFFLE_LOG=riffle::checkpoint=info` shows it).
pub const LOG_TARGET: &str = "riffle::checkpoint";

/// How a persistent query keeps its state across restarts.
#[derive(Debug, Clone)]
pub struct Durability {
    /// The query's state directory.
    pub dir: QueryStateDir,
    /// The checkpoint resumed, if any.
    pub resume: Option<Manifest>,
    /// Hash of the query's plan, written into manifests.
    pub plan_hash: String,
    /// Time between checkpoints.
    pub interval: Duration,
    /// Checkpoints kept.
    pub keep: usize,
    /// The transactional producer of a Kafka sink, started (fencing older instances) before the
    /// resumed checkpoint was chosen.
    pub producer: Option<Arc<KafkaProducer>>,
}

/// The query's consumer group, for committing offsets, and its commit log.
pub struct GroupCommitter {
    consumer: BaseConsumer,
    group: String,
    /// The query's commit-log topic ([`kafka::commit_log_topic`]).
    commit_log: String,
}

impl GroupCommitter {
    /// A committer for the consumer group of `query`.
    pub fn new(cfg: &KafkaConfig, query: &str) -> Result<Self> {
        let group = kafka::group_for_query(cfg, query);
        Ok(GroupCommitter {
            consumer: cfg.consumer(&group)?,
            group,
            commit_log: kafka::commit_log_topic(cfg, query),
        })
    }

    /// The last committed checkpoint epoch: the group's offset on the commit log, if any.
    pub fn committed_epoch(&self) -> Result<Option<u64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.commit_log, 0);
        let got = self
            .consumer
            .committed_offsets(tpl, KAFKA_TIMEOUT)
            .map_err(|e| kafka_error(&format!("reading the offsets of group {}", self.group), e))?;
        Ok(got.elements().iter().find_map(|e| match e.offset() {
            Offset::Offset(o) if o > 0 => Some(o as u64),
            _ => None,
        }))
    }
}

/// The offsets to commit for an epoch: every Kafka source partition's next offset, and with
/// `epoch` (and the commit-log topic) the epoch as the offset of the commit log.
fn offsets_of(report: &CheckpointReport, epoch: Option<(u64, &str)>) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for pos in report.sources.values() {
        let Some(topic) = &pos.kafka_topic else {
            continue;
        };
        for (p, o) in &pos.offsets {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
                .map_err(|e| kafka_error("preparing an offset commit", e))?;
        }
    }
    if let Some((e, topic)) = epoch {
        tpl.add_partition_offset(topic, 0, Offset::Offset(e as i64))
            .map_err(|e| kafka_error("preparing an offset commit", e))?;
    }
    Ok(tpl)
}

/// Decides where a persistent query resumes, preparing its live state directory accordingly:
/// restored from the chosen checkpoint, or emptied for a fresh start.
pub fn resume_point(
    config: &EngineConfig,
    dir: &QueryStateDir,
    query: &str,
    plan_hash: &str,
    transactional: bool,
) -> Result<Option<Manifest>> {
    let epoch = if transactional {
        let cfg = config.kafka.as_ref().ok_or_else(|| {
            EngineError::Connector("internal: transactional sink without Kafka".into())
        })?;
        kafka::ensure_topic(cfg, &kafka::commit_log_topic(cfg, query), 1, 1)?;
        GroupCommitter::new(cfg, query)?.committed_epoch()?
    } else {
        dir.list().last().copied()
    };
    let Some(epoch) = epoch else {
        dir.wipe()?;
        return Ok(None);
    };
    if !dir.list().contains(&epoch) {
        if config.fresh_state {
            dir.wipe()?;
            return Ok(None);
        }
        return Err(EngineError::Catalog(format!(
            "query {query}: Kafka holds the output of checkpoint {epoch}, but that checkpoint is \
             missing from {}; start with --fresh-state to discard the state (output after the \
             checkpoint will then be written again)",
            dir.checkpoint(epoch).display()
        )));
    }
    let manifest = dir.manifest(epoch)?;
    if manifest.plan_hash != plan_hash {
        if config.fresh_state {
            dir.wipe()?;
            return Ok(None);
        }
        return Err(EngineError::Catalog(format!(
            "query {query} cannot resume its checkpoint {epoch} in {}: the statement (or the \
             parallelism) changed since the state was written, and the old state does not fit \
             the new plan. Run the original statement, or start with --fresh-state to discard \
             the state and reprocess the input",
            dir.checkpoint(epoch).display()
        )));
    }
    dir.remove_after(epoch);
    let m = dir.restore(epoch)?;
    tracing::info!(target: LOG_TARGET, "query {query} resumes checkpoint {epoch}");
    Ok(Some(m))
}

/// Takes and commits a query's checkpoints.
pub struct Checkpointer {
    /// Query id.
    pub query: String,
    /// The query's barrier bookkeeping.
    pub coordinator: Arc<Coordinator>,
    /// Control channels of the query's sources.
    pub controls: Vec<mpsc::UnboundedSender<SourceCommand>>,
    /// The query's state store.
    pub store: Arc<StateStore>,
    /// Durability settings.
    pub durability: Durability,
    /// The epoch of the next checkpoint.
    pub next_epoch: u64,
    /// The sink's Kafka producer, if it writes Kafka.
    pub producer: Option<Arc<KafkaProducer>>,
    /// The query's consumer group, when sources or a transactional sink use Kafka.
    pub group: Option<Arc<GroupCommitter>>,
    /// Counters (checkpoint duration and size).
    pub metrics: Arc<QueryMetrics>,
}

impl Checkpointer {
    /// Runs until the query stops, taking a checkpoint every interval and a last one when the
    /// query's input ends.
    pub async fn run(mut self) {
        loop {
            let done = tokio::select! {
                _ = tokio::time::sleep(self.durability.interval) => false,
                _ = self.coordinator.wait_done() => true,
            };
            if done {
                if self.coordinator.status() == QueryStatus::Finished {
                    let report = self.coordinator.take_report(FINAL_EPOCH);
                    let epoch = self.next_epoch;
                    if let Err(e) = self.complete(epoch, report, Instant::now()).await {
                        tracing::error!("query {}: final checkpoint failed: {e}", self.query);
                    }
                }
                return;
            }
            match self.checkpoint().await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::error!("query {}: checkpoint failed: {e}", self.query);
                    self.coordinator
                        .set_status(QueryStatus::Failed(format!("checkpoint failed: {e}")));
                    return;
                }
            }
        }
    }

    /// One checkpoint; false when the query stopped before the barrier came through.
    async fn checkpoint(&mut self) -> Result<bool> {
        let epoch = self.next_epoch;
        let started = Instant::now();
        self.store.set_in_flight(epoch);
        let id = self.coordinator.next_barrier_id();
        tracing::info!(target: LOG_TARGET, "query {}: checkpoint {epoch} started", self.query);
        for c in &self.controls {
            let _ = c.send(SourceCommand::Barrier(Barrier {
                id,
                checkpoint: Some(epoch),
            }));
        }
        if self.coordinator.wait_barrier(id).await.is_err() {
            self.store.set_in_flight(0);
            if self.coordinator.status() == QueryStatus::Finished {
                let report = self.coordinator.take_report(FINAL_EPOCH);
                self.complete(epoch, report, started).await?;
            }
            return Ok(false);
        }
        let report = self.coordinator.take_report(epoch);
        self.complete(epoch, report, started).await?;
        Ok(true)
    }

    /// Makes checkpoint `epoch` durable, then commits it.
    async fn complete(
        &mut self,
        epoch: u64,
        report: CheckpointReport,
        started: Instant,
    ) -> Result<()> {
        let store = self.store.clone();
        let dir = self.durability.dir.clone();
        let producer = self.producer.clone();
        let group = self.group.clone();
        let keep = self.durability.keep;
        let manifest = Manifest {
            query: self.query.clone(),
            epoch,
            plan_hash: self.durability.plan_hash.clone(),
            created_ms: chrono::Utc::now().timestamp_millis(),
            sources: report
                .sources
                .iter()
                .map(|(k, v)| (k.clone(), v.offsets.clone()))
                .collect(),
            file_sinks: report.file_sinks.clone(),
            event_times: report.event_times.clone(),
            state_bytes: 0,
        };
        let query = self.query.clone();
        let bytes = tokio::task::spawn_blocking(move || -> Result<u64> {
            let transactional = producer.as_ref().is_some_and(|p| p.is_transactional());
            if let (Some(p), false) = (&producer, transactional) {
                // At-least-once: everything before the barrier is acknowledged first.
                p.flush()?;
            }
            let staging = dir.prepare_staging(epoch)?;
            if store.is_open() {
                store.checkpoint_to(&staging)?;
            } else {
                std::fs::create_dir_all(&staging).map_err(|e| EngineError::Io {
                    context: format!("creating {}", staging.display()),
                    source: e,
                })?;
            }
            let mut manifest = manifest;
            manifest.state_bytes = dir_size(&staging);
            dir.complete(&manifest)?;
            tracing::info!(target: LOG_TARGET, "query {query}: checkpoint {epoch} durable");
            match (&producer, &group) {
                (Some(p), Some(g)) if transactional => {
                    // Every transaction carries at least this record: some brokers (tansu)
                    // drop the offsets of a transaction that wrote no records. The topic is the
                    // query's own, as its output topics are: tansu also drops the offsets of
                    // transactions writing to a partition where another producer's transaction
                    // was abandoned, so no two queries' transactions share a partition.
                    let marker = serde_json::json!({
                        "query": query,
                        "epoch": epoch,
                        "run": p.run_id(),
                    });
                    p.send(
                        &g.commit_log,
                        &Record {
                            key: Some(query.clone().into_bytes()),
                            value: Some(marker.to_string().into_bytes()),
                            timestamp: chrono::Utc::now().timestamp_millis(),
                            headers: vec![],
                        },
                    )?;
                    let tpl = offsets_of(&report, Some((epoch, &g.commit_log)))?;
                    let md = g.consumer.group_metadata().ok_or_else(|| {
                        EngineError::Connector(format!(
                            "kafka: no group metadata for group {}",
                            g.group
                        ))
                    })?;
                    p.commit(Some((&tpl, &md)))?;
                }
                (Some(p), None) if transactional => p.commit(None)?,
                (_, Some(g)) => {
                    let tpl = offsets_of(&report, None)?;
                    if tpl.count() > 0 {
                        g.consumer
                            .commit(&tpl, CommitMode::Sync)
                            .map_err(|e| kafka_error("committing source offsets", e))?;
                    }
                }
                _ => {}
            }
            dir.prune(keep, epoch);
            Ok(manifest.state_bytes)
        })
        .await
        .map_err(|e| EngineError::DataFusion(format!("checkpoint task failed: {e}")))??;
        self.store.set_in_flight(0);
        self.coordinator.mark_committed(epoch);
        self.next_epoch = epoch + 1;
        let ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            target: LOG_TARGET,
            "query {}: checkpoint {epoch} committed in {ms} ms ({bytes} bytes of state)",
            self.query
        );
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.last_checkpoint_ms.store(ms, Relaxed);
        self.metrics.last_checkpoint_bytes.store(bytes, Relaxed);
        self.metrics.last_checkpoint_epoch.store(epoch, Relaxed);
        Ok(())
    }
}
