//! Stream-stream join within a time window. Rows of both sides are kept for the window plus the
//! grace period (by stream time, the largest event time seen); each arriving row joins the other
//! side's rows whose time lies in the window. Outer joins pad unmatched rows with NULLs: at once
//! in the legacy form (no `GRACE PERIOD`), or when the row's window closes when a grace period is
//! declared — unless a match arrives first. Kept and pending rows are checkpointed.
//!
//! Kept rows stay in the input batches they arrived in (a batch is dropped once none of its
//! rows is kept) and are referred to by batch and row; output batches are gathered from those
//! batches column by column (`interleave`), not assembled row by row.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int8Array, Int32Array, Int64Array, RecordBatch, new_null_array,
};
use datafusion::arrow::compute::{cast, concat_batches, interleave, interleave_record_batch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::row::{RowConverter, SortField};
use riffle_sql::ast::JoinKind;
use riffle_sql::plan::{ChangeOp, JoinNode, JoinType, StreamSchema};
use smallvec::SmallVec;

use super::{OpContext, Operator, OperatorState, Snapshot, ops_of};
use crate::error::{EngineError, Result};
use crate::runtime::Barrier;
use crate::state::snapshot;

/// The `(time, seq)` of one side's kept rows and of its pending outer rows, in batch order.
type SideMarks = (Vec<(i64, u64)>, Vec<(i64, u64)>);

/// Bookkeeping of a snapshot: stream time, the next sequence number, and each side's marks.
type Bookkeeping = (i64, u64, [SideMarks; 2]);

/// A kept row: its time, its arrival number, and where it lives (kept batch id, row).
#[derive(Debug, Clone, Copy)]
struct Entry {
    ts: i64,
    seq: u64,
    batch: u32,
    row: u32,
}

/// A join key in the row format (bytes compare equal when the keys are equal).
type Key = Box<[u8]>;

#[derive(Default)]
struct Side {
    /// Kept rows by key; most keys hold one row, kept inline.
    store: HashMap<Key, SmallVec<[Entry; 1]>>,
    /// Input batches holding kept rows, by id, with how many of their rows are kept.
    batches: HashMap<u32, (RecordBatch, usize)>,
    next_batch: u32,
    pending: BTreeMap<(i64, u64), (Key, RecordBatch)>,
}

impl Side {
    /// Forgets kept rows older than `limit`, and the batches left without kept rows; returns
    /// the oldest time still kept (or `oldest` if older).
    fn expire(&mut self, limit: i64, mut oldest: i64) -> i64 {
        let Side { store, batches, .. } = self;
        store.retain(|_, entries| {
            entries.retain(|e| {
                let keep = e.ts >= limit;
                if !keep && let Some(b) = batches.get_mut(&e.batch) {
                    b.1 -= 1;
                    if b.1 == 0 {
                        batches.remove(&e.batch);
                    }
                }
                keep
            });
            oldest = entries.iter().map(|e| e.ts).fold(oldest, i64::min);
            !entries.is_empty()
        });
        oldest
    }
}

/// Where one output row's parts come from: `(source, row)` into the left and right source
/// lists of [`Gather`], `None` for NULL padding.
struct OutRow {
    left: Option<(usize, usize)>,
    right: Option<(usize, usize)>,
    rowtime: i64,
}

/// The rows of one output batch, as references into the batches they come from.
#[derive(Default)]
struct Gather {
    sources: [Vec<RecordBatch>; 2],
    kept: HashMap<(usize, u32), usize>,
    rows: Vec<OutRow>,
}

impl Gather {
    /// Adds `batch` as a source of `side`; returns its index.
    fn add(&mut self, side: usize, batch: RecordBatch) -> usize {
        self.sources[side].push(batch);
        self.sources[side].len() - 1
    }

    /// The source index of kept batch `id` of `side`, adding it on first use.
    fn kept(&mut self, side: usize, id: u32, sides: &[Side; 2]) -> Option<usize> {
        if let Some(i) = self.kept.get(&(side, id)) {
            return Some(*i);
        }
        let batch = sides[side].batches.get(&id)?.0.clone();
        let i = self.add(side, batch);
        self.kept.insert((side, id), i);
        Some(i)
    }

    /// Gathers column `col` of `side`'s sources (cast to `dt`), with a trailing one-row NULL
    /// source for padding.
    fn column(
        &self,
        side: usize,
        col: usize,
        dt: &datafusion::arrow::datatypes::DataType,
    ) -> Result<Vec<ArrayRef>> {
        let mut arrays = Vec::with_capacity(self.sources[side].len() + 1);
        for b in &self.sources[side] {
            let a = b.column(col);
            arrays.push(if a.data_type() == dt {
                a.clone()
            } else {
                cast(a, dt)?
            });
        }
        arrays.push(new_null_array(dt, 1));
        Ok(arrays)
    }

    /// Builds the output batch: the key from the left row (the right one when the left is
    /// padding), then the left values, the right values and the system columns.
    fn build(&self, out: &StreamSchema, inputs: &[StreamSchema; 2]) -> Result<Option<RecordBatch>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let fields = out.arrow.fields();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        let gather = |arrays: &[ArrayRef], indices: &[(usize, usize)]| -> Result<ArrayRef> {
            let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
            Ok(interleave(&refs, indices)?)
        };
        for k in 0..out.key_count {
            let dt = fields[k].data_type();
            let mut arrays = self.column(0, k, dt)?;
            let lefts = arrays.len();
            arrays.extend(self.column(1, k, dt)?);
            let indices: Vec<(usize, usize)> = self
                .rows
                .iter()
                .map(|r| match (r.left, r.right) {
                    (Some(l), _) => l,
                    (None, Some((s, i))) => (lefts + s, i),
                    (None, None) => (lefts - 1, 0),
                })
                .collect();
            columns.push(gather(&arrays, &indices)?);
        }
        let mut col = out.key_count;
        for (side, input) in inputs.iter().enumerate() {
            for v in 0..input.value_count {
                let arrays = self.column(side, input.key_count + v, fields[col].data_type())?;
                let null = (arrays.len() - 1, 0);
                let indices: Vec<(usize, usize)> = self
                    .rows
                    .iter()
                    .map(|r| if side == 0 { r.left } else { r.right }.unwrap_or(null))
                    .collect();
                columns.push(gather(&arrays, &indices)?);
                col += 1;
            }
        }
        let n = self.rows.len();
        columns.push(Arc::new(Int64Array::from_iter_values(
            self.rows.iter().map(|r| r.rowtime),
        )));
        columns.push(Arc::new(Int32Array::from(vec![0; n])));
        columns.push(Arc::new(Int64Array::from(vec![0; n])));
        columns.push(Arc::new(Int8Array::from(vec![ChangeOp::Insert as i8; n])));
        Ok(Some(RecordBatch::try_new(out.arrow.clone(), columns)?))
    }
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
    output: StreamSchema,
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
            output: node.schema.clone(),
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

    /// An output row of `side`'s row `(source, row)` padded with NULLs.
    fn padded(side: usize, at: (usize, usize), rowtime: i64) -> OutRow {
        OutRow {
            left: (side == 0).then_some(at),
            right: (side == 1).then_some(at),
            rowtime,
        }
    }

    fn expire(&mut self) {
        let limit = self.stream_time.saturating_sub(self.retention);
        if limit <= self.oldest {
            return;
        }
        let mut oldest = i64::MAX;
        for s in &mut self.sides {
            oldest = s.expire(limit, oldest);
        }
        self.oldest = oldest;
    }

    fn close_pending(&mut self, out: &mut Gather) {
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
                    let at = (out.add(side, row), 0);
                    out.rows.push(Self::padded(side, at, k.0));
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
            let s = &self.sides[side];
            let ids: Vec<u32> = s.batches.keys().copied().collect();
            let position: HashMap<u32, usize> =
                ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
            let kept: Vec<&Entry> = s.store.values().flatten().collect();
            mark.0 = kept.iter().map(|e| (e.ts, e.seq)).collect();
            let indices: Vec<(usize, usize)> = kept
                .iter()
                .filter_map(|e| Some((*position.get(&e.batch)?, e.row as usize)))
                .collect();
            let sources: Vec<&RecordBatch> = ids
                .iter()
                .filter_map(|id| s.batches.get(id))
                .map(|b| &b.0)
                .collect();
            batches.push(if indices.is_empty() {
                RecordBatch::new_empty(self.inputs[side].arrow.clone())
            } else {
                interleave_record_batch(&sources, &indices)?
            });
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
            let s = &mut self.sides[side];
            let id = s.next_batch;
            s.next_batch += 1;
            let mut count = 0;
            for (i, (ts, seq)) in kept_marks.into_iter().enumerate().take(kept.num_rows()) {
                s.store
                    .entry(Key::from(keys.row(i).as_ref()))
                    .or_default()
                    .push(Entry {
                        ts,
                        seq,
                        batch: id,
                        row: i as u32,
                    });
                self.oldest = self.oldest.min(ts);
                count += 1;
            }
            if count > 0 {
                s.batches.insert(id, (kept.clone(), count));
            }
            let pending = &batches[2 * side + 1];
            let keys = self.converter.convert_columns(&pending.columns()[..1])?;
            for (i, mark) in pending_marks
                .into_iter()
                .enumerate()
                .take(pending.num_rows())
            {
                let entry = (Key::from(keys.row(i).as_ref()), pending.slice(i, 1));
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
        let mut out = Gather::default();
        let current = out.add(side, batch.clone());
        let id = self.sides[side].next_batch;
        self.sides[side].next_batch += 1;
        // Counts the rows kept from this batch (expiry may drop some again before the end).
        self.sides[side].batches.insert(id, (batch.clone(), 0));
        for i in 0..batch.num_rows() {
            if ops.value(i) == ChangeOp::Delete as i8 {
                continue;
            }
            let t = times.value(i);
            self.stream_time = self.stream_time.max(t);
            self.expire();
            let row_key = keys.row(i);
            let key: &[u8] = row_key.as_ref();
            let (lo, hi) = if side == 0 {
                (t.saturating_sub(self.before), t.saturating_add(self.after))
            } else {
                (t.saturating_sub(self.after), t.saturating_add(self.before))
            };
            let mut matches: SmallVec<[Entry; 4]> = self.sides[other]
                .store
                .get(key)
                .map(|es| {
                    es.iter()
                        .filter(|e| e.ts >= lo && e.ts <= hi)
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            matches.sort_by_key(|e| (e.ts, e.seq));
            let here = (current, i);
            for m in &matches {
                self.sides[other].pending.remove(&(m.ts, m.seq));
                let Some(src) = out.kept(other, m.batch, &self.sides) else {
                    continue;
                };
                let there = (src, m.row as usize);
                let (left, right) = if side == 0 {
                    (here, there)
                } else {
                    (there, here)
                };
                out.rows.push(OutRow {
                    left: Some(left),
                    right: Some(right),
                    rowtime: t.max(m.ts),
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
                    out.rows.push(Self::padded(side, here, t));
                } else {
                    self.sides[side]
                        .pending
                        .insert((t, seq), (Key::from(key), batch.slice(i, 1)));
                }
            }
            if t >= self.stream_time.saturating_sub(self.retention) {
                self.oldest = self.oldest.min(t);
                let s = &mut self.sides[side];
                let entry = Entry {
                    ts: t,
                    seq,
                    batch: id,
                    row: i as u32,
                };
                match s.store.get_mut(key) {
                    Some(entries) => entries.push(entry),
                    None => {
                        s.store
                            .insert(Key::from(key), SmallVec::from_elem(entry, 1));
                    }
                }
                s.batches.entry(id).or_insert_with(|| (batch.clone(), 0)).1 += 1;
            }
            self.close_pending(&mut out);
        }
        if self.sides[side].batches.get(&id).is_some_and(|b| b.1 == 0) {
            self.sides[side].batches.remove(&id);
        }
        Ok(out.build(&self.output, &self.inputs)?.into_iter().collect())
    }
}
