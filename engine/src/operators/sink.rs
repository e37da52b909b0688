//! Sink: writes the final layout to its destination. For topics each row becomes a record
//! (key and value in the relation's formats, window suffix on windowed keys, event time as the
//! record timestamp); tables are written as upserts with tombstones for deletes, and an update
//! whose new value was filtered out becomes a tombstone. Files and stdout get one line per row.
//! Kafka topics get the same records through the query's producer. Barriers are acknowledged to
//! the query's coordinator once everything before them is written; at a checkpoint barrier a
//! file sink syncs and reports its length, so a resumed query can cut the file back to it.

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int8Type, Int64Type};
use riffle_sql::plan::{ChangeOp, StreamSchema};
use riffle_udfs::scalar::java_time::JavaFormat;
use tokio::sync::mpsc;

use super::{OpContext, Operator};
use crate::connectors::kafka::KafkaProducer;
use crate::connectors::memory::{Topic, WriterGuard};
use crate::error::{EngineError, Result};
use crate::formats::{RecordEncoder, delimited, extract_timestamp, text};
use crate::processing_log::{ErrorKind, ErrorRecord};
use crate::record::Record;
use crate::runtime::Barrier;
use crate::runtime::coordinator::{Coordinator, FINAL_EPOCH};

/// Where a sink writes.
pub enum SinkTarget {
    /// An in-memory topic.
    Topic(Arc<Topic>),
    /// A Kafka topic, through the query's producer.
    Kafka {
        /// The producer (shared by the query's sink subtasks).
        producer: Arc<KafkaProducer>,
        /// Topic name.
        topic: String,
    },
    /// A file of JSON lines (`csv` false) or CSV rows.
    File {
        /// Buffered file handle.
        writer: std::io::BufWriter<std::fs::File>,
        /// Write CSV instead of JSON.
        csv: bool,
        /// The file's path.
        path: String,
        /// Bytes written so far (including what a resumed checkpoint had written).
        written: u64,
    },
    /// Standard output, one JSON object per row.
    Stdout,
    /// Nothing (benchmarks).
    Blackhole,
    /// A channel to a client of a transient query.
    Channel(mpsc::UnboundedSender<RecordBatch>),
}

/// Writes rows to a target.
pub struct SinkOp {
    schema: StreamSchema,
    encoder: Option<RecordEncoder>,
    target: SinkTarget,
    timestamp: Option<(usize, Option<JavaFormat>)>,
    is_table: bool,
    coordinator: Arc<Coordinator>,
    names: Vec<String>,
    topic_name: String,
    _writer: Option<WriterGuard>,
}

impl SinkOp {
    /// A sink for batches of `schema`.
    pub fn new(
        schema: StreamSchema,
        encoder: Option<RecordEncoder>,
        target: SinkTarget,
        timestamp: Option<(usize, Option<JavaFormat>)>,
        is_table: bool,
        coordinator: Arc<Coordinator>,
        topic_name: String,
    ) -> Self {
        let mut names: Vec<String> = schema
            .key_fields()
            .iter()
            .chain(schema.value_fields().iter())
            .map(|f| f.name().clone())
            .collect();
        if schema.windowed {
            names.push("WINDOWSTART".into());
            names.push("WINDOWEND".into());
        }
        let _writer = match &target {
            SinkTarget::Topic(t) => Some(WriterGuard::new(t.clone())),
            _ => None,
        };
        SinkOp {
            schema,
            encoder,
            target,
            timestamp,
            is_table,
            coordinator,
            names,
            topic_name,
            _writer,
        }
    }

    fn row_columns(&self) -> usize {
        self.schema.key_count + self.schema.value_count + if self.schema.windowed { 2 } else { 0 }
    }

    fn row_line(&self, batch: &RecordBatch, row: usize, csv: bool) -> String {
        let n = self.row_columns();
        if csv {
            let fields: Vec<Option<String>> = (0..n)
                .map(|c| text::plain_text(batch.column(c), row))
                .collect();
            return delimited::write_line(&fields, ',');
        }
        let mut out = String::from("{");
        for c in 0..n {
            if c > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(&self.names[c]).unwrap_or_default());
            out.push(':');
            text::write_json(&mut out, batch.column(c), row);
        }
        out.push('}');
        out
    }
}

impl Operator for SinkOp {
    fn name(&self) -> &'static str {
        "Sink"
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if let SinkTarget::Channel(tx) = &self.target {
            ctx.metrics.add_out(batch.num_rows());
            tx.send(batch).map_err(|_| EngineError::Stopped)?;
            return Ok(vec![]);
        }
        let ops = batch
            .column(self.schema.op())
            .as_primitive::<Int8Type>()
            .clone();
        if let SinkTarget::Blackhole = self.target {
            // Nothing is written: count the rows that would be, without building records.
            let before = ChangeOp::UpdateBefore as i8;
            let written = ops.values().iter().filter(|op| **op != before).count();
            ctx.metrics.add_out(written);
            return Ok(vec![]);
        }
        let times = batch
            .column(self.schema.rowtime())
            .as_primitive::<Int64Type>()
            .clone();
        let window_cols = self.schema.window_start().map(|ws| {
            (
                batch.column(ws).as_primitive::<Int64Type>().clone(),
                batch.column(ws + 1).as_primitive::<Int64Type>().clone(),
            )
        });
        let mut records = Vec::new();
        let mut lines = Vec::new();
        for i in 0..batch.num_rows() {
            let op = ChangeOp::from_i8(ops.value(i));
            let tombstone = match op {
                ChangeOp::Insert | ChangeOp::UpdateAfter => false,
                ChangeOp::Delete => true,
                ChangeOp::UpdateBefore => {
                    let followed =
                        i + 1 < batch.num_rows() && ops.value(i + 1) == ChangeOp::UpdateAfter as i8;
                    if followed || !self.is_table {
                        continue;
                    }
                    true
                }
            };
            let mut ts = times.value(i);
            if let Some((idx, fmt)) = &self.timestamp
                && !tombstone
            {
                match extract_timestamp(batch.column(*idx), i, fmt.as_ref()) {
                    Ok(t) => ts = t,
                    Err(e) => {
                        let mut rec = ErrorRecord::new(
                            &ctx.query,
                            ErrorKind::Timestamp,
                            format!("output row dropped: {e}"),
                        );
                        rec.rowtime = Some(ts);
                        ctx.report(rec);
                        continue;
                    }
                }
            }
            let window = window_cols.as_ref().map(|(s, e)| (s.value(i), e.value(i)));
            match &mut self.target {
                SinkTarget::Topic(_) | SinkTarget::Kafka { .. } => {
                    let Some(enc) = &self.encoder else { continue };
                    let key = enc.encode_key(&batch, i, window);
                    let value = if tombstone {
                        Ok(None)
                    } else {
                        enc.encode_value(&batch, i)
                    };
                    match (key, value) {
                        (Ok(key), Ok(value)) => records.push(Record {
                            key,
                            value,
                            timestamp: ts,
                            headers: vec![],
                        }),
                        (Err(e), _) | (_, Err(e)) => {
                            let mut rec = ErrorRecord::new(&ctx.query, ErrorKind::Serialization, e);
                            rec.rowtime = Some(ts);
                            ctx.report(rec);
                        }
                    }
                }
                SinkTarget::File { csv, .. } => {
                    let csv = *csv;
                    lines.push(self.row_line(&batch, i, csv));
                }
                SinkTarget::Stdout => lines.push(self.row_line(&batch, i, false)),
                SinkTarget::Blackhole | SinkTarget::Channel(_) => {}
            }
        }
        ctx.metrics.add_out(records.len() + lines.len());
        match &mut self.target {
            SinkTarget::Topic(topic) => {
                let partitions = topic.partitions();
                for r in records {
                    let p = match &r.key {
                        Some(k) if partitions > 1 => partition_for(k, partitions),
                        _ => 0,
                    };
                    topic.append(p, r);
                }
            }
            SinkTarget::Kafka { producer, topic } => {
                for r in &records {
                    producer.send(topic, r)?;
                }
            }
            SinkTarget::File {
                writer, written, ..
            } => {
                for l in lines {
                    writeln!(writer, "{l}").map_err(|e| EngineError::Io {
                        context: format!("writing to the file sink {}", self.topic_name),
                        source: e,
                    })?;
                    *written += l.len() as u64 + 1;
                }
            }
            SinkTarget::Stdout => {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                for l in lines {
                    let _ = writeln!(lock, "{l}");
                }
                let _ = lock.flush();
            }
            _ => {}
        }
        Ok(vec![])
    }

    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        self.flush(barrier.checkpoint)?;
        self.coordinator.ack(barrier.id);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.flush(Some(FINAL_EPOCH))?;
        self.coordinator.sink_ended();
        Ok(vec![])
    }
}

impl SinkOp {
    /// Flushes buffered output; for a checkpoint, a file sink also syncs and reports its length.
    fn flush(&mut self, checkpoint: Option<u64>) -> Result<()> {
        if let SinkTarget::Kafka { producer, .. } = &self.target
            && !producer.is_transactional()
        {
            producer.flush()?;
        }
        if let SinkTarget::File {
            writer,
            path,
            written,
            ..
        } = &mut self.target
        {
            writer.flush().map_err(|e| EngineError::Io {
                context: format!("flushing the file sink {path}"),
                source: e,
            })?;
            if let Some(epoch) = checkpoint {
                writer.get_ref().sync_data().map_err(|e| EngineError::Io {
                    context: format!("syncing the file sink {path}"),
                    source: e,
                })?;
                self.coordinator.report_file_sink(epoch, path, *written);
            }
        }
        Ok(())
    }
}

/// The partition for a key: a stable hash of its bytes.
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    // FNV-1a: stable across runs and platforms, so keys keep their partition after restarts.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % partitions as u64) as usize
}
