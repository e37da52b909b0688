//! Session window aggregation: per key, rows closer than the inactivity gap form one session.
//! A row extending or bridging sessions merges them: the replaced sessions are retracted
//! (tombstones for their windows) and the merged session is emitted. Sessions close when the
//! watermark passes their end plus gap plus grace; rows that could only join closed sessions are
//! late. Open sessions and their accumulators are checkpointed.

use std::collections::HashMap;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::row::OwnedRow;
use riffle_sql::ast::{Emit, WindowKind};
use riffle_sql::plan::{AggregateNode, ChangeOp, StreamSchema};

use super::aggregate_state::{AggregateState, OutRow, Source};
use super::{OpContext, Operator, OperatorState, Snapshot, ops_of};
use crate::error::{EngineError, Result};
use crate::processing_log::{ErrorKind, ErrorRecord};
use crate::runtime::Barrier;
use crate::state::snapshot;

#[derive(Debug, Clone, Copy)]
struct Session {
    start: i64,
    end: i64,
    group: usize,
}

/// Session-window aggregation.
pub struct SessionWindowOp {
    input: StreamSchema,
    output: StreamSchema,
    state: AggregateState,
    gap: i64,
    grace: i64,
    emit: Emit,
    sessions: HashMap<OwnedRow, Vec<Session>>,
    watermark: i64,
    store: OperatorState,
}

impl SessionWindowOp {
    /// Builds the operator for a session aggregate node, restoring open sessions when the query
    /// resumes a checkpoint.
    pub fn new(node: &AggregateNode, store: OperatorState) -> Result<Self> {
        let input = node.input.schema().clone();
        let gap = match node.window.as_ref().map(|w| &w.kind) {
            Some(WindowKind::Session { gap }) => gap.as_millis() as i64,
            _ => {
                return Err(crate::error::EngineError::DataFusion(
                    "internal: session operator without a session window".into(),
                ));
            }
        };
        let mut op = SessionWindowOp {
            state: AggregateState::new(&node.aggregates, &input)?,
            input,
            output: node.schema.clone(),
            gap,
            grace: node.grace_ms(),
            emit: node.emit,
            sessions: HashMap::new(),
            watermark: i64::MIN,
            store: store.clone(),
        };
        store.resume(&mut op)?;
        Ok(op)
    }

    fn expired(&self, end: i64) -> bool {
        self.watermark != i64::MIN
            && end.saturating_add(self.gap).saturating_add(self.grace) < self.watermark
    }

    /// Removes (and for EMIT FINAL, emits) every closed session.
    fn close_sessions(&mut self) -> Result<Option<RecordBatch>> {
        let mut closed: Vec<Session> = Vec::new();
        let (gap, grace, wm) = (self.gap, self.grace, self.watermark);
        for list in self.sessions.values_mut() {
            list.retain(|s| {
                let done = wm != i64::MIN && s.end.saturating_add(gap).saturating_add(grace) < wm;
                if done {
                    closed.push(*s);
                }
                !done
            });
        }
        self.sessions.retain(|_, l| !l.is_empty());
        if closed.is_empty() {
            return Ok(None);
        }
        closed.sort_by_key(|s| (s.end, s.start));
        let mut out = None;
        if self.emit == Emit::Final {
            let groups: Vec<usize> = closed.iter().map(|s| s.group).collect();
            let new = self.state.evaluate(&groups)?;
            let rows: Vec<OutRow> = closed
                .iter()
                .enumerate()
                .map(|(j, s)| OutRow {
                    group: s.group,
                    op: ChangeOp::Insert,
                    values: Source::New(j),
                    window: (s.start, s.end),
                    rowtime: self.state.max_ts[s.group],
                })
                .collect();
            out = Some(self.state.build(&self.output, &rows, &[], &new)?);
        }
        for s in closed {
            self.state.release(s.group);
        }
        Ok(out)
    }
}

/// Snapshot layout: one batch with a row per open session (key bytes, start, end, then the
/// accumulator state columns); the bookkeeping is the watermark.
impl Snapshot for SessionWindowOp {
    fn snapshot(&self) -> Result<Vec<u8>> {
        let all: Vec<(&OwnedRow, &Session)> = self
            .sessions
            .iter()
            .flat_map(|(k, l)| l.iter().map(move |s| (k, s)))
            .collect();
        let groups: Vec<usize> = all.iter().map(|(_, s)| s.group).collect();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from_iter_values(
                all.iter().map(|(k, _)| k.as_ref()),
            )),
            Arc::new(Int64Array::from_iter_values(
                all.iter().map(|(_, s)| s.start),
            )),
            Arc::new(Int64Array::from_iter_values(all.iter().map(|(_, s)| s.end))),
        ];
        cols.extend(self.state.state_columns(&groups)?);
        let batch = RecordBatch::try_from_iter_with_nullable(
            cols.into_iter()
                .enumerate()
                .map(|(i, c)| (format!("c{i}"), c, true)),
        )?;
        snapshot::encode(&self.watermark, &[batch])
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let (watermark, batches) = snapshot::decode::<i64>(bytes)?;
        self.watermark = watermark;
        let Some(b) = batches.first() else {
            return Ok(());
        };
        let damaged = || EngineError::DataFusion("damaged session window snapshot".into());
        if b.num_columns() < 3 {
            return Err(damaged());
        }
        let keys = b
            .column(0)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(damaged)?;
        let starts = b.column(1).as_primitive::<Int64Type>();
        let ends = b.column(2).as_primitive::<Int64Type>();
        let mut groups = Vec::with_capacity(b.num_rows());
        for i in 0..b.num_rows() {
            let key = self.state.key_from_bytes(keys.value(i));
            let group = self.state.alloc(key.clone());
            groups.push(group);
            self.sessions.entry(key).or_default().push(Session {
                start: starts.value(i),
                end: ends.value(i),
                group,
            });
        }
        self.state.restore_columns(&groups, &b.columns()[3..])
    }
}

impl Operator for SessionWindowOp {
    fn name(&self) -> &'static str {
        "SessionWindow"
    }

    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        self.store.checkpoint(Some(barrier), self)
    }

    fn on_end(&mut self, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.store.checkpoint(None, self)?;
        Ok(vec![])
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let kc = self.input.key_count;
        let ops = ops_of(&batch, self.input.op());
        let times = batch
            .column(self.input.rowtime())
            .as_primitive::<Int64Type>()
            .clone();
        let keys = self
            .state
            .converter
            .convert_columns(&batch.columns()[..kc])?;
        let mut outputs = Vec::new();
        for i in 0..batch.num_rows() {
            if ops.value(i) == ChangeOp::Delete as i8
                || ops.value(i) == ChangeOp::UpdateBefore as i8
            {
                continue;
            }
            let ts = times.value(i);
            let key = keys.row(i).owned();
            let list = self.sessions.remove(&key).unwrap_or_default();
            let (overlap, keep): (Vec<Session>, Vec<Session>) = list.into_iter().partition(|s| {
                !self.expired(s.end) && s.end >= ts - self.gap && s.start <= ts + self.gap
            });
            let start = overlap.iter().map(|s| s.start).min().unwrap_or(ts).min(ts);
            let end = overlap.iter().map(|s| s.end).max().unwrap_or(ts).max(ts);
            if self.expired(end) {
                let mut list = keep;
                list.extend(overlap);
                self.sessions.insert(key, list);
                let mut e = ErrorRecord::new(
                    &ctx.query,
                    ErrorKind::LateRow,
                    format!(
                        "row at event time {ts} arrived after its session closed (watermark {})",
                        self.watermark
                    ),
                );
                e.rowtime = Some(ts);
                ctx.report(e);
                continue;
            }
            // Retract every merged session whose window changes, then fold them into one group.
            let mut rows: Vec<OutRow> = Vec::new();
            let retired: Vec<Session> = overlap
                .iter()
                .copied()
                .filter(|s| (s.start, s.end) != (start, end))
                .collect();
            let old_groups: Vec<usize> = retired.iter().map(|s| s.group).collect();
            let old = self.state.evaluate(&old_groups)?;
            for (j, s) in retired.iter().enumerate() {
                rows.push(OutRow {
                    group: s.group,
                    op: ChangeOp::Delete,
                    values: Source::Old(j),
                    window: (s.start, s.end),
                    rowtime: self.state.max_ts[s.group],
                });
            }
            let unchanged = overlap
                .iter()
                .find(|s| (s.start, s.end) == (start, end))
                .copied();
            let target = match unchanged.or_else(|| overlap.first().copied()) {
                Some(s) => s.group,
                None => self.state.alloc(key.clone()),
            };
            for s in &overlap {
                if s.group != target {
                    self.state.merge(target, s.group)?;
                }
            }
            let was_live = unchanged.is_some() && self.state.live[target];
            let old_same = if was_live {
                self.state.evaluate(&[target])?
            } else {
                vec![]
            };
            self.state.update(
                &batch,
                kc,
                &UInt32Array::from(vec![i as u32]),
                &[target],
                None,
                &times,
            )?;
            let new = self.state.evaluate(&[target])?;
            let rowtime = self.state.max_ts[target];
            let mut build_rows = rows.clone();
            let old_all: Vec<_> = if was_live {
                old_same.clone()
            } else {
                old.clone()
            };
            if was_live {
                build_rows.push(OutRow {
                    group: target,
                    op: ChangeOp::UpdateBefore,
                    values: Source::Old(0),
                    window: (start, end),
                    rowtime,
                });
                build_rows.push(OutRow {
                    group: target,
                    op: ChangeOp::UpdateAfter,
                    values: Source::New(0),
                    window: (start, end),
                    rowtime,
                });
            } else {
                build_rows.push(OutRow {
                    group: target,
                    op: ChangeOp::Insert,
                    values: Source::New(0),
                    window: (start, end),
                    rowtime,
                });
            }
            if self.emit == Emit::Changes {
                // Tombstones of retired sessions come from `old`; the update pair from `old_same`.
                if !rows.is_empty() {
                    outputs.push(self.state.build(&self.output, &rows, &old, &new)?);
                }
                let tail: Vec<OutRow> = build_rows[rows.len()..].to_vec();
                outputs.push(self.state.build(&self.output, &tail, &old_all, &new)?);
            }
            for s in &overlap {
                if s.group != target {
                    self.state.release(s.group);
                }
            }
            self.state.live[target] = true;
            let mut list = keep;
            list.push(Session {
                start,
                end,
                group: target,
            });
            self.sessions.insert(key, list);
        }
        ctx.metrics.state_bytes.store(
            self.state.size() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if outputs.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![concat_batches(&self.output.arrow, &outputs)?])
    }

    fn on_watermark(&mut self, wm: i64, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.watermark = wm;
        Ok(self.close_sessions()?.into_iter().collect())
    }
}
