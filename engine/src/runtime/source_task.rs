//! Source task: polls a connector, decodes records into batches, tracks event time per partition
//! to produce watermarks, runs the source stage's operator chain and injects barriers on command.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::max;
use datafusion::arrow::datatypes::{Int32Type, Int64Type};
use tokio::sync::mpsc;

use std::sync::Arc;

use super::coordinator::{Coordinator, FINAL_EPOCH};
use super::exchange::Output;
use super::{Barrier, Message, SourceCommand};
use crate::connectors::{Poll, SourceReader};
use crate::error::Result;
use crate::formats::RecordDecoder;
use crate::operators::computed_columns::ComputedColumns;
use crate::operators::{Chain, OpContext};

/// Per-partition event-time tracking with bounded out-of-orderness and idleness.
pub struct WatermarkTracker {
    delay: i64,
    idle_timeout: Option<Duration>,
    partitions: HashMap<i32, (i64, Instant)>,
    emitted: i64,
}

impl WatermarkTracker {
    /// A tracker trailing the largest event time per partition by `delay` milliseconds.
    pub fn new(delay: i64, idle_timeout: Option<Duration>) -> Self {
        WatermarkTracker {
            delay,
            idle_timeout,
            partitions: HashMap::new(),
            emitted: i64::MIN,
        }
    }

    /// Holds the watermark back until each of `partitions` has delivered a row (or turned idle):
    /// a partition the reader was assigned counts before its first record arrives.
    pub fn expecting(mut self, partitions: &[i32]) -> Self {
        let now = Instant::now();
        for p in partitions {
            self.partitions.entry(*p).or_insert((i64::MIN, now));
        }
        self
    }

    /// Continues from event times saved at a checkpoint (largest per partition): the first
    /// [`advance`](Self::advance) then re-emits the watermark they imply.
    pub fn resuming(mut self, saved: Option<&BTreeMap<i32, i64>>) -> Self {
        let now = Instant::now();
        for (p, ts) in saved.into_iter().flatten() {
            let e = self.partitions.entry(*p).or_insert((i64::MIN, now));
            e.0 = e.0.max(*ts);
        }
        self
    }

    /// The largest event time seen per partition.
    pub fn event_times(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .iter()
            .filter(|(_, (ts, _))| *ts > i64::MIN)
            .map(|(p, (ts, _))| (*p, *ts))
            .collect()
    }

    /// Observes a batch's partitions and event times.
    pub fn observe(&mut self, batch: &RecordBatch, rowtime: usize, partition: usize) {
        let times = batch.column(rowtime).as_primitive::<Int64Type>();
        let parts = batch.column(partition).as_primitive::<Int32Type>();
        let now = Instant::now();
        // Most batches come from one partition: one max over the column then.
        if let Some(&first) = parts.values().first()
            && parts.values().iter().all(|p| *p == first)
        {
            if let Some(max) = max(times) {
                let e = self.partitions.entry(first).or_insert((i64::MIN, now));
                e.0 = e.0.max(max);
                e.1 = now;
            }
            return;
        }
        for i in 0..batch.num_rows() {
            let e = self
                .partitions
                .entry(parts.value(i))
                .or_insert((i64::MIN, now));
            e.0 = e.0.max(times.value(i));
            e.1 = now;
        }
    }

    /// The watermark if it advanced since last emitted.
    pub fn advance(&mut self) -> Option<i64> {
        let now = Instant::now();
        let active: Vec<i64> = self
            .partitions
            .values()
            .filter(|(_, seen)| {
                self.idle_timeout
                    .is_none_or(|t| now.duration_since(*seen) < t)
            })
            .map(|(ts, _)| *ts)
            .collect();
        let base = if active.is_empty() {
            self.partitions.values().map(|(ts, _)| *ts).max()?
        } else {
            active.into_iter().min()?
        };
        let wm = base.saturating_sub(self.delay);
        if wm > self.emitted {
            self.emitted = wm;
            Some(wm)
        } else {
            None
        }
    }
}

enum Wake {
    Command(Option<SourceCommand>),
    Data,
    Timer,
}

/// Everything a source task owns.
pub struct SourceTask {
    /// Fills computed columns (and computed event time) before anything else sees a batch.
    pub computed: Option<ComputedColumns>,
    /// The connector reader.
    pub reader: SourceReader,
    /// Whether [`Message::CaughtUp`] was sent (the first time the reader had nothing more).
    pub caught_up: bool,
    /// Decoder for record-yielding connectors.
    pub decoder: Option<RecordDecoder>,
    /// Operators of the source stage.
    pub chain: Chain,
    /// Where results go.
    pub output: Output,
    /// Control commands from the query.
    pub control: mpsc::UnboundedReceiver<SourceCommand>,
    /// Operator context.
    pub ctx: OpContext,
    /// Largest batch.
    pub max_batch: usize,
    /// Watermark tracking.
    pub watermarks: WatermarkTracker,
    /// Column indices of ROWTIME and ROWPARTITION.
    pub time_columns: (usize, usize),
    /// Names this source in checkpoint manifests (its stage and topic or file).
    pub position_key: String,
    /// Names this source subtask's event times in checkpoint manifests.
    pub subtask_key: String,
    /// The query's barrier bookkeeping.
    pub coordinator: Arc<Coordinator>,
    /// The stage ends in a transactional sink: after a checkpoint barrier, wait until the
    /// checkpoint committed before writing more.
    pub commit_gate: bool,
}

impl SourceTask {
    async fn emit(&mut self, batch: RecordBatch) -> Result<()> {
        let batch = match &self.computed {
            Some(c) => c.apply(batch, &self.ctx)?,
            None => batch,
        };
        self.ctx.metrics.add_in(batch.num_rows());
        self.watermarks
            .observe(&batch, self.time_columns.0, self.time_columns.1);
        let out = self.chain.process(batch, &mut self.ctx)?;
        self.output.batches(out).await?;
        if let Some(wm) = self.watermarks.advance() {
            self.watermark(wm).await?;
        }
        Ok(())
    }

    async fn watermark(&mut self, wm: i64) -> Result<()> {
        let out = self.chain.watermark(wm, &mut self.ctx)?;
        self.output.batches(out).await?;
        self.output.control(Message::Watermark(wm)).await
    }

    /// Polls once; returns false when the source is exhausted.
    async fn step(&mut self) -> Result<Option<bool>> {
        match self.reader.poll(self.max_batch)? {
            Poll::Records(recs) => {
                let Some(decoder) = &self.decoder else {
                    return Ok(Some(true));
                };
                let decoded = decoder.decode(&recs);
                for e in decoded.errors {
                    self.ctx.report(e);
                }
                if decoded.batch.num_rows() > 0 {
                    self.emit(decoded.batch).await?;
                }
                Ok(Some(true))
            }
            Poll::Batch(b) => {
                self.emit(b).await?;
                Ok(Some(true))
            }
            Poll::Idle => Ok(None),
            Poll::Exhausted => Ok(Some(false)),
        }
    }

    async fn finish(&mut self) -> Result<()> {
        self.watermark(i64::MAX).await?;
        self.end().await
    }

    /// Reports final positions and ends the stream.
    async fn end(&mut self) -> Result<()> {
        self.coordinator
            .report_positions(FINAL_EPOCH, &self.position_key, self.reader.positions());
        let out = self.chain.end(&mut self.ctx)?;
        self.output.batches(out).await?;
        self.output.control(Message::End).await
    }

    async fn barrier(&mut self, b: Barrier) -> Result<()> {
        if self.reader.drains_before_barrier() {
            while let Some(true) = self.step().await? {}
        }
        if let Some(epoch) = b.checkpoint {
            self.coordinator
                .report_positions(epoch, &self.position_key, self.reader.positions());
            self.coordinator.report_event_times(
                epoch,
                &self.subtask_key,
                self.watermarks.event_times(),
            );
        }
        self.chain.barrier(b, &mut self.ctx)?;
        self.output.control(Message::Barrier(b)).await?;
        if let (true, Some(epoch)) = (self.commit_gate, b.checkpoint) {
            self.coordinator
                .wait_committed(epoch)
                .await
                .map_err(|_| crate::error::EngineError::Stopped)?;
        }
        Ok(())
    }

    /// Runs until the source is exhausted (run-until-idle) or stopped.
    pub async fn run(mut self) -> Result<()> {
        // A resumed source starts at the watermark it had reached at the checkpoint.
        if let Some(wm) = self.watermarks.advance() {
            self.watermark(wm).await?;
        }
        loop {
            while let Ok(cmd) = self.control.try_recv() {
                match cmd {
                    SourceCommand::Barrier(e) => self.barrier(e).await?,
                    SourceCommand::Stop => return self.end().await,
                }
            }
            if let Some(rx) = self.reader.changed() {
                rx.borrow_and_update();
            }
            match self.step().await? {
                Some(true) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Some(false) => return self.finish().await,
                None => {
                    if !self.caught_up {
                        self.caught_up = true;
                        self.output.control(Message::CaughtUp).await?;
                    }
                }
            }
            // Idle: wait for data, a command, the rate limiter or the idleness check.
            let wait_until = self
                .reader
                .next_ready()
                .unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(wait_until));
            let wake = {
                let control = &mut self.control;
                let changed = self.reader.changed();
                tokio::select! {
                    cmd = control.recv() => Wake::Command(cmd),
                    _ = async move {
                        match changed {
                            Some(rx) => { let _ = rx.changed().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => Wake::Data,
                    _ = sleep => Wake::Timer,
                }
            };
            match wake {
                Wake::Command(Some(SourceCommand::Barrier(e))) => self.barrier(e).await?,
                Wake::Command(Some(SourceCommand::Stop)) | Wake::Command(None) => {
                    return self.end().await;
                }
                Wake::Data => {}
                Wake::Timer => {
                    if let Some(wm) = self.watermarks.advance() {
                        self.watermark(wm).await?;
                    }
                }
            }
        }
    }
}
