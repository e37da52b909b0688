//! In-memory topics: what `kafka_topic` means when no Kafka is configured (embedded mode, the
//! conformance runner, tests). Partitioned, append-only, readable from any offset, with a change
//! signal so readers sleep until data arrives.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use crate::record::{Record, SourceRecord};

/// One in-memory topic.
#[derive(Debug)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    partitions: Vec<RwLock<Vec<Arc<Record>>>>,
    changed: watch::Sender<u64>,
    writers: AtomicUsize,
    /// Script-wide writers shared by every topic of the store (see [`TopicStore::hold`]).
    held: Arc<AtomicUsize>,
}

impl Topic {
    fn new(name: &str, partitions: usize, held: Arc<AtomicUsize>) -> Self {
        let (changed, _) = watch::channel(0);
        Topic {
            name: name.to_string(),
            partitions: (0..partitions.max(1))
                .map(|_| RwLock::new(Vec::new()))
                .collect(),
            changed,
            writers: AtomicUsize::new(0),
            held,
        }
    }

    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }

    /// Appends a record to a partition and wakes readers; returns its offset.
    pub fn append(&self, partition: usize, record: Record) -> i64 {
        let p = partition % self.partitions.len();
        let offset = {
            let mut part = self.partitions[p]
                .write()
                .unwrap_or_else(|e| e.into_inner());
            part.push(Arc::new(record));
            part.len() as i64 - 1
        };
        self.changed.send_modify(|v| *v += 1);
        offset
    }

    /// Reads up to `max` records of a partition from `offset` (and below `limit`, if set).
    pub fn read(
        &self,
        partition: usize,
        offset: i64,
        max: usize,
        limit: Option<i64>,
    ) -> Vec<SourceRecord> {
        let part = self.partitions[partition]
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let end = limit
            .map(|l| l.min(part.len() as i64))
            .unwrap_or(part.len() as i64);
        let topic: Arc<str> = Arc::from(self.name.as_str());
        (offset..end)
            .take(max)
            .map(|o| SourceRecord {
                partition: partition as i32,
                offset: o,
                record: part[o as usize].clone(),
                topic: topic.clone(),
            })
            .collect()
    }

    /// Number of records in a partition.
    pub fn len(&self, partition: usize) -> i64 {
        self.partitions[partition]
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len() as i64
    }

    /// Whether the topic has no records.
    pub fn is_empty(&self) -> bool {
        (0..self.partitions()).all(|p| self.len(p) == 0)
    }

    /// All records of all partitions, partition by partition.
    pub fn all(&self) -> Vec<SourceRecord> {
        (0..self.partitions())
            .flat_map(|p| self.read(p, 0, usize::MAX, None))
            .collect()
    }

    /// A receiver that changes whenever a record is appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Registers a running query writing to this topic (readers in run-until-idle mode wait for
    /// writers to finish before treating the topic as complete).
    pub fn add_writer(&self) {
        self.writers.fetch_add(1, Ordering::SeqCst);
    }

    /// Unregisters a writer and wakes readers.
    pub fn remove_writer(&self) {
        self.writers.fetch_sub(1, Ordering::SeqCst);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Whether any query (or a script holding the store) may still write.
    pub fn has_writers(&self) -> bool {
        self.writers.load(Ordering::SeqCst) > 0 || self.held.load(Ordering::SeqCst) > 0
    }
}

/// Registers a writer on a topic for as long as it lives.
#[derive(Debug)]
pub struct WriterGuard(Arc<Topic>);

impl WriterGuard {
    /// Registers a writer on `topic`.
    pub fn new(topic: Arc<Topic>) -> Self {
        topic.add_writer();
        WriterGuard(topic)
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.0.remove_writer();
    }
}

/// All in-memory topics of an engine.
#[derive(Debug, Default)]
pub struct TopicStore {
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    held: Arc<AtomicUsize>,
}

/// Counts as a writer on every topic of a store while it lives; see [`TopicStore::hold`].
#[derive(Debug)]
pub struct StoreHold {
    held: Arc<AtomicUsize>,
    topics: Vec<Arc<Topic>>,
}

impl Drop for StoreHold {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
        for t in &self.topics {
            t.changed.send_modify(|v| *v += 1);
        }
    }
}

impl TopicStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gets a topic, creating it with `partitions` partitions when missing.
    pub fn get_or_create(&self, name: &str, partitions: usize) -> Arc<Topic> {
        if let Some(t) = self.get(name) {
            return t;
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        topics
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Topic::new(name, partitions, self.held.clone())))
            .clone()
    }

    /// Makes every topic (existing or created later) count as written to until the returned
    /// hold is dropped: a script that starts queries and then inserts rows keeps run-until-idle
    /// readers waiting for those rows.
    pub fn hold(&self) -> StoreHold {
        self.held.fetch_add(1, Ordering::SeqCst);
        StoreHold {
            held: self.held.clone(),
            topics: Vec::new(),
        }
    }

    /// Releases a hold and wakes the readers of every topic.
    pub fn release(&self, mut hold: StoreHold) {
        hold.topics = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        drop(hold);
    }

    /// Gets a topic.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Deletes a topic.
    pub fn delete(&self, name: &str) -> bool {
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some()
    }

    /// Topic names with their partition counts and record counts.
    pub fn list(&self) -> Vec<(String, usize, i64)> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|t| {
                (
                    t.name.clone(),
                    t.partitions(),
                    (0..t.partitions()).map(|p| t.len(p)).sum(),
                )
            })
            .collect()
    }
}

/// Per-query read limits used by the conformance runner to feed records one at a time: a source
/// may read a topic only below the limit set here.
#[derive(Debug, Default)]
pub struct ReadGate {
    limits: Mutex<HashMap<String, i64>>,
}

impl ReadGate {
    /// Allows reading `topic` up to (excluding) offset `limit`.
    pub fn allow(&self, topic: &str, limit: i64) {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_string(), limit);
    }

    /// The current limit for a topic (0 when never allowed).
    pub fn limit(&self, topic: &str) -> i64 {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .copied()
            .unwrap_or(0)
    }
}

/// Reads one topic's partitions for one source subtask.
pub struct MemoryReader {
    topic: Arc<Topic>,
    partitions: Vec<usize>,
    offsets: Vec<i64>,
    next: usize,
    changed: watch::Receiver<u64>,
    gate: Option<Arc<ReadGate>>,
    bounded: bool,
    /// Snapshot reads stop at these offsets (the partition ends when the reader was created).
    end: Option<Vec<i64>>,
}

impl MemoryReader {
    /// Reads `partitions` of `topic` from the beginning.
    pub fn new(
        topic: Arc<Topic>,
        partitions: Vec<usize>,
        gate: Option<Arc<ReadGate>>,
        bounded: bool,
    ) -> Self {
        let changed = topic.subscribe();
        let offsets = vec![0; partitions.len()];
        MemoryReader {
            topic,
            partitions,
            offsets,
            next: 0,
            changed,
            gate,
            bounded,
            end: None,
        }
    }

    /// Skips what the partitions hold now: reading starts with the next record appended
    /// (`auto.offset.reset = latest`, the default of push queries).
    pub fn from_end(mut self) -> Self {
        self.offsets = self.partitions.iter().map(|p| self.topic.len(*p)).collect();
        self
    }

    /// Reads `partitions` of `topic` from the beginning up to what they hold now, then ends:
    /// a snapshot, as pull queries need.
    pub fn snapshot(topic: Arc<Topic>, partitions: Vec<usize>) -> Self {
        let end = partitions.iter().map(|p| topic.len(*p)).collect();
        let mut r = MemoryReader::new(topic, partitions, None, true);
        r.end = Some(end);
        r
    }

    /// The next offset of each partition read.
    pub fn positions(&self) -> std::collections::BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .zip(&self.offsets)
            .map(|(p, o)| (*p as i32, *o))
            .collect()
    }

    /// Continues partitions from the given offsets (a restored checkpoint).
    pub fn seek(&mut self, offsets: &std::collections::BTreeMap<i32, i64>) {
        for (i, p) in self.partitions.iter().enumerate() {
            if let Some(o) = offsets.get(&(*p as i32)) {
                self.offsets[i] = *o;
            }
        }
    }

    /// Reads up to `max` available records, round-robin over partitions.
    pub fn poll(&mut self, max: usize) -> Vec<SourceRecord> {
        let gate = self.gate.as_ref().map(|g| g.limit(&self.topic.name));
        for _ in 0..self.partitions.len() {
            let i = self.next % self.partitions.len();
            self.next += 1;
            let limit = match (&self.end, gate) {
                (Some(end), Some(g)) => Some(end[i].min(g)),
                (Some(end), None) => Some(end[i]),
                (None, g) => g,
            };
            let recs = self
                .topic
                .read(self.partitions[i], self.offsets[i], max, limit);
            if !recs.is_empty() {
                self.offsets[i] += recs.len() as i64;
                return recs;
            }
        }
        Vec::new()
    }

    /// Whether everything has been read and nothing more can arrive (run-until-idle mode only).
    pub fn exhausted(&self) -> bool {
        if let Some(end) = &self.end {
            return self.offsets.iter().zip(end).all(|(o, e)| o >= e);
        }
        self.bounded
            && !self.topic.has_writers()
            && self
                .partitions
                .iter()
                .zip(&self.offsets)
                .all(|(p, o)| self.topic.len(*p) <= *o)
    }

    /// Partitions read by this reader.
    pub fn partitions(&self) -> &[usize] {
        &self.partitions
    }

    /// A receiver signalled when the topic changes.
    pub fn changed(&mut self) -> &mut watch::Receiver<u64> {
        &mut self.changed
    }
}
