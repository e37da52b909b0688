//! Stream-stream join within a time window. Rows of both sides are kept for the window plus the
//! grace period (by stream time, the largest event time seen); each arriving row joins the other
//! side's rows whose time lies in the window. Outer joins pad unmatched rows with NULLs: at once
//! in the legacy form (no `GRACE PERIOD`), or when the row's window closes when a grace period is
//! declared — unless a match arrives first. Kept and pending rows are checkpointed.

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use riffle_sql::ast::JoinKind;
use riffle_sql::plan::{ChangeOp, JoinNode, JoinType, StreamSchema};

use super::join_rows::{JoinOutput, JoinedRow};
use super::{OpContext, Operator, OperatorState, Snapshot, ops_of};
use crate::error::{EngineError, Result};
use crate::runtime::Barrier;
use crate::state::snapshot;

/// The `(time, seq)` of one side's kept rows and of its pending outer rows, in batch order.
type SideMarks = (Vec<(i64, u64)>, Vec<(i64, u64)>);

/// Bookkeeping of a snapshot: stream time, the next sequence number, and each side's marks.
type Bookkeeping = (i64, u64, [SideMarks; 2]);

struct Entry {
    ts: i64,
    seq: u64,
    row: RecordBatch,
}

#[derive(Default)]
struct Side {
    store: HashMap<OwnedRow, Vec<Entry>>,
    pending: BTreeMap<(i64, u64), (OwnedRow, RecordBatch)>,
}

/// Windowed stream-stream join.
pub struct StreamStreamJoinOp {
    kind: JoinKind,
    before: i64,
    after: i64,
    grace: Option<i64>,
    retention: i64,
    sides: [Side; 2],
    inputs: [StreamSchema; 2],
    converter: RowConverter,
    output: JoinOutput,
    stream_time: i64,
    seq: u64,
    /// No kept row is older than this (a lower bound): expiry scans the state only once the
    /// retention limit passes it, not for every row.
    oldest: i64,
    store: OperatorState,
}

impl StreamStreamJoinOp {
    /// Builds the operator for a stream-stream join node, restoring the kept rows when the
    /// query resumes a checkpoint.
    pub fn new(node: &JoinNode, store: OperatorState) -> Result<Self> {
        let JoinType::StreamStream {
            before_ms,
            after_ms,
            grace_ms,
        } = node.join_type
        else {
            return Err(EngineError::DataFusion(
                "internal: not a stream-stream join".into(),
            ));
        };
        let left = node.left.schema().clone();
        let right = node.right.schema().clone();
        let converter = RowConverter::new(vec![SortField::new(
            left.key_fields()[0].data_type().clone(),
        )])?;
        let mut op = StreamStreamJoinOp {
            kind: node.kind,
            before: before_ms,
            after: after_ms,
            grace: grace_ms,
            retention: node.join_type.retention_ms(),
            sides: [Side::default(), Side::default()],
            output: JoinOutput::new(node.schema.clone(), &left, &right, left.value_count),
            inputs: [left, right],
            converter,
            stream_time: i64::MIN,
            seq: 0,
            oldest: i64::MIN,
            store: store.clone(),
        };
        store.resume(&mut op)?;
        Ok(op)
    }

    fn outer(&self, side: usize) -> bool {
        matches!(
            (self.kind, side),
            (JoinKind::Full, _) | (JoinKind::Left, 0) | (JoinKind::Right, 1)
        )
    }

    /// How far after a row of `side` a partner may arrive.
    fn after_of(&self, side: usize) -> i64 {
        if side == 0 { self.after } else { self.before }
    }

    fn padded(side: usize, row: RecordBatch, ts: i64) -> JoinedRow {
        let (left, right) = if side == 0 {
            (Some(row.clone()), None)
        } else {
            (None, Some(row.clone()))
        };
        JoinedRow {
            key_from: row,
            left,
            right,
            rowtime: ts,
            op: ChangeOp::Insert,
        }
    }

    fn expire(&mut self) {
        let limit = self.stream_time.saturating_sub(self.retention);
        if limit <= self.oldest {
            return;
        }
        let mut oldest = i64::MAX;
        for s in &mut self.sides {
            s.store.retain(|_, entries| {
                entries.retain(|e| e.ts >= limit);
                oldest = entries.iter().map(|e| e.ts).fold(oldest, i64::min);
                !entries.is_empty()
            });
        }
        self.oldest = oldest;
    }

    fn close_pending(&mut self, out: &mut Vec<JoinedRow>) {
        let Some(grace) = self.grace else { return };
        for side in 0..2 {
            let after = self.after_of(side);
            let st = self.stream_time;
            // Pending rows are ordered by time: the closed ones are a prefix.
            let closed: Vec<(i64, u64)> = self.sides[side]
                .pending
                .keys()
                .take_while(|(ts, _)| ts.saturating_add(after).saturating_add(grace) < st)
                .copied()
                .collect();
            for k in closed {
                if let Some((_, row)) = self.sides[side].pending.remove(&k) {
                    out.push(Self::padded(side, row, k.0));
                }
            }
        }
    }
}

/// Snapshot layout: per side, its kept rows then its pending rows (see [`Bookkeeping`]).
impl Snapshot for StreamStreamJoinOp {
    fn snapshot(&self) -> Result<Vec<u8>> {
        let mut batches = Vec::with_capacity(4);
        let mut marks: [SideMarks; 2] = Default::default();
        for (side, mark) in marks.iter_mut().enumerate() {
            let kept: Vec<&Entry> = self.sides[side].store.values().flatten().collect();
            mark.0 = kept.iter().map(|e| (e.ts, e.seq)).collect();
            batches.push(concat_batches(
                &self.inputs[side].arrow,
                kept.iter().map(|e| &e.row),
            )?);
            let pending = &self.sides[side].pending;
            mark.1 = pending.keys().copied().collect();
            batches.push(concat_batches(
                &self.inputs[side].arrow,
                pending.values().map(|(_, r)| r),
            )?);
        }
        let meta: Bookkeeping = (self.stream_time, self.seq, marks);
        snapshot::encode(&meta, &batches)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let ((stream_time, seq, marks), batches) = snapshot::decode::<Bookkeeping>(bytes)?;
        if batches.len() != 4 {
            return Err(EngineError::DataFusion(
                "damaged operator snapshot: a stream-stream join needs four batches".into(),
            ));
        }
        self.stream_time = stream_time;
        self.seq = seq;
        for (side, (kept_marks, pending_marks)) in marks.into_iter().enumerate() {
            let kept = &batches[2 * side];
            let keys = self.converter.convert_columns(&kept.columns()[..1])?;
            for (i, (ts, seq)) in kept_marks.into_iter().enumerate().take(kept.num_rows()) {
                let row = kept.slice(i, 1);
                self.sides[side]
                    .store
                    .entry(keys.row(i).owned())
                    .or_default()
                    .push(Entry { ts, seq, row });
            }
            let pending = &batches[2 * side + 1];
            let keys = self.converter.convert_columns(&pending.columns()[..1])?;
            for (i, mark) in pending_marks
                .into_iter()
                .enumerate()
                .take(pending.num_rows())
            {
                let entry = (keys.row(i).owned(), pending.slice(i, 1));
                self.sides[side].pending.insert(mark, entry);
            }
        }
        Ok(())
    }
}

impl Operator for StreamStreamJoinOp {
    fn name(&self) -> &'static str {
        "StreamStreamJoin"
    }

    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        self.store.checkpoint(Some(barrier), self)
    }

    fn on_end(&mut self, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.store.checkpoint(None, self)?;
        Ok(vec![])
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.process_side(0, batch, ctx)
    }

    fn process_side(
        &mut self,
        side: usize,
        batch: RecordBatch,
        _ctx: &mut OpContext,
    ) -> Result<Vec<RecordBatch>> {
        let schema = &self.inputs[side];
        let times = batch
            .column(schema.rowtime())
            .as_primitive::<Int64Type>()
            .clone();
        let ops = ops_of(&batch, schema.op());
        let keys = self.converter.convert_columns(&batch.columns()[..1])?;
        let other = 1 - side;
        let mut out = Vec::new();
        for i in 0..batch.num_rows() {
            if ops.value(i) == ChangeOp::Delete as i8 {
                continue;
            }
            let t = times.value(i);
            self.stream_time = self.stream_time.max(t);
            self.expire();
            let key = keys.row(i).owned();
            let row = batch.slice(i, 1);
            let (lo, hi) = if side == 0 {
                (t.saturating_sub(self.before), t.saturating_add(self.after))
            } else {
                (t.saturating_sub(self.after), t.saturating_add(self.before))
            };
            let mut matches: Vec<(i64, u64, RecordBatch)> = self.sides[other]
                .store
                .get(&key)
                .map(|es| {
                    es.iter()
                        .filter(|e| e.ts >= lo && e.ts <= hi)
                        .map(|e| (e.ts, e.seq, e.row.clone()))
                        .collect()
                })
                .unwrap_or_default();
            matches.sort_by_key(|(ts, seq, _)| (*ts, *seq));
            for (ts, seq, m) in &matches {
                self.sides[other].pending.remove(&(*ts, *seq));
                let (left, right) = if side == 0 {
                    (row.clone(), m.clone())
                } else {
                    (m.clone(), row.clone())
                };
                out.push(JoinedRow {
                    key_from: row.clone(),
                    left: Some(left),
                    right: Some(right),
                    rowtime: t.max(*ts),
                    op: ChangeOp::Insert,
                });
            }
            let seq = self.seq;
            self.seq += 1;
            if matches.is_empty() && self.outer(side) {
                let closed = match self.grace {
                    None => true,
                    Some(g) => {
                        t.saturating_add(self.after_of(side)).saturating_add(g) < self.stream_time
                    }
                };
                if closed {
                    out.push(Self::padded(side, row.clone(), t));
                } else {
                    self.sides[side]
                        .pending
                        .insert((t, seq), (key.clone(), row.clone()));
                }
            }
            if t >= self.stream_time.saturating_sub(self.retention) {
                self.oldest = self.oldest.min(t);
                self.sides[side]
                    .store
                    .entry(key)
                    .or_default()
                    .push(Entry { ts: t, seq, row });
            }
            self.close_pending(&mut out);
        }
        Ok(self.output.build(&out)?.into_iter().collect())
    }
}
