//! `MATCH_RECOGNIZE`: rows wait until the watermark reaches their event time, then enter their
//! partition's [`PartitionMatcher`] in time order (ties in arrival order). Rows behind the
//! watermark on arrival are late: they go to the processing log. `DEFINE` conditions are
//! evaluated for all candidate threads of a row at once, one Arrow batch per pattern variable;
//! measures for all matches completed by a watermark are evaluated in one batch. Waiting rows stay
//! in the input batches they arrived in until released. Waiting rows and each partition's
//! partial matches are checkpointed, so a match can span a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int8Array, Int32Array, Int64Array, RecordBatch, RecordBatchOptions,
};
use datafusion::arrow::compute::interleave_record_batch;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::ScalarValue;
use riffle_sql::match_recognize::{MatchExpr, MatchRecognizeNode, Nav, Term};
use riffle_sql::plan::{ChangeOp, StreamSchema};

use super::pattern_matcher::{Candidate, Found, PartitionMatcher, SavedMatcher, StoredRow};
use super::{OpContext, Operator, OperatorState, Snapshot, evaluate, ops_of};
use crate::error::{EngineError, Result};
use crate::processing_log::{ErrorKind, ErrorRecord};
use crate::runtime::Barrier;
use crate::state::snapshot;

/// One output row before its measures are evaluated.
struct OutRow {
    keys: Vec<ScalarValue>,
    /// Per measure, the values of its terms.
    terms: Vec<Vec<ScalarValue>>,
    passthrough: Vec<ScalarValue>,
    rowtime: i64,
    partition: i32,
    offset: i64,
}

/// Row pattern recognition over a partitioned stream.
pub struct MatchRecognizeOp {
    node: MatchRecognizeNode,
    input: StreamSchema,
    partitions: HashMap<Vec<ScalarValue>, PartitionMatcher>,
    /// Rows waiting for the watermark, by (event time, arrival): their batch id and row.
    pending: BTreeMap<(i64, u64), (u32, u32)>,
    /// Input batches holding waiting rows, with how many of their rows still wait.
    waiting: HashMap<u32, (RecordBatch, usize)>,
    next_batch: u32,
    arrivals: u64,
    watermark: i64,
    max_prev: u64,
    max_next: u64,
    store: OperatorState,
}

/// Bookkeeping of a snapshot; the batches are the partition keys, each partition's kept rows
/// (in `partitions` order), then the waiting rows.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    watermark: i64,
    arrivals: u64,
    /// Per partition: its matcher state and the event times of its kept rows.
    partitions: Vec<(SavedMatcher, Vec<i64>)>,
    /// Per waiting row: event time and arrival number.
    pending: Vec<(i64, u64)>,
}

/// Rows of scalars as a batch of `columns` columns (types from `schema` when there are none).
fn rows_to_batch(
    schema: &datafusion::arrow::datatypes::Schema,
    columns: usize,
    rows: &[&[ScalarValue]],
) -> Result<RecordBatch> {
    let mut cols: Vec<(String, ArrayRef, bool)> = Vec::with_capacity(columns);
    for c in 0..columns {
        let array = if rows.is_empty() {
            datafusion::arrow::array::new_empty_array(schema.field(c).data_type())
        } else {
            ScalarValue::iter_to_array(rows.iter().map(|r| r[c].clone()))?
        };
        cols.push((format!("c{c}"), array, true));
    }
    Ok(RecordBatch::try_from_iter_with_nullable(cols)?)
}

/// The rows of a batch as scalars.
fn batch_to_rows(b: &RecordBatch) -> Result<Vec<Vec<ScalarValue>>> {
    (0..b.num_rows())
        .map(|i| {
            b.columns()
                .iter()
                .map(|c| Ok(ScalarValue::try_from_array(c, i)?))
                .collect()
        })
        .collect()
}

impl MatchRecognizeOp {
    /// Builds the operator for a plan node, restoring partial matches when the query resumes a
    /// checkpoint.
    pub fn new(node: &MatchRecognizeNode, store: OperatorState) -> Result<Self> {
        let reach = |which: Nav| {
            node.defines
                .iter()
                .flatten()
                .chain(node.measures.iter().map(|m| &m.expr))
                .flat_map(|e| e.terms.iter())
                .map(|t| match t {
                    Term::Nav { nav, offset, .. } if *nav == which => *offset as u64,
                    _ => 0,
                })
                .max()
                .unwrap_or(0)
        };
        let (max_prev, max_next) = (reach(Nav::Prev), reach(Nav::Next));
        let mut op = MatchRecognizeOp {
            input: node.input.schema().clone(),
            node: node.clone(),
            partitions: HashMap::new(),
            pending: BTreeMap::new(),
            waiting: HashMap::new(),
            next_batch: 0,
            arrivals: 0,
            watermark: i64::MIN,
            max_prev,
            max_next,
            store: store.clone(),
        };
        store.resume(&mut op)?;
        Ok(op)
    }

    /// Waiting row `row` of batch `id` as values, forgetting the batch once none of its rows waits.
    fn take_waiting(&mut self, id: u32, row: usize, rowtime: i64) -> Result<StoredRow> {
        let Some((batch, left)) = self.waiting.get_mut(&id) else {
            return Err(EngineError::DataFusion(
                "internal: a waiting MATCH_RECOGNIZE row lost its batch".into(),
            ));
        };
        let values = batch
            .columns()
            .iter()
            .map(|c| ScalarValue::try_from_array(c, row))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        *left -= 1;
        if *left == 0 {
            self.waiting.remove(&id);
        }
        Ok(StoredRow { values, rowtime })
    }

    /// The waiting rows in (event time, arrival) order, as one batch.
    fn waiting_batch(&self) -> Result<RecordBatch> {
        if self.pending.is_empty() {
            return Ok(RecordBatch::new_empty(self.input.arrow.clone()));
        }
        let ids: Vec<u32> = self.waiting.keys().copied().collect();
        let position: HashMap<u32, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let sources: Vec<&RecordBatch> = ids
            .iter()
            .filter_map(|id| self.waiting.get(id))
            .map(|(b, _)| b)
            .collect();
        let indices: Vec<(usize, usize)> = self
            .pending
            .values()
            .filter_map(|(id, row)| Some((*position.get(id)?, *row as usize)))
            .collect();
        Ok(interleave_record_batch(&sources, &indices)?)
    }

    /// Feeds rows with event time up to `upto` to their partitions, then ends attempts that can
    /// no longer grow, and returns the completed matches' output rows.
    fn release(&mut self, upto: i64, ctx: &OpContext) -> Result<Vec<RecordBatch>> {
        let kc = self.input.key_count;
        let mut outs = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > upto {
                break;
            }
            let rowtime = entry.key().0;
            let (id, at) = entry.remove();
            let row = self.take_waiting(id, at as usize, rowtime)?;
            let key = row.values[..kc].to_vec();
            let part = self.partitions.entry(key.clone()).or_default();
            let (seq, candidates) = part.push(row, &self.node.program, self.node.within_ms);
            let verdicts = evaluate_defines(&self.node, part, &candidates, ctx)?;
            part.advance(seq, &verdicts, &self.node.program);
            part.resolve(self.node.skip);
            for found in part.ready(self.max_next, false) {
                emit(&self.node, part, &key, found, &mut outs, ctx)?;
            }
            part.prune(self.max_prev);
        }
        for (key, part) in self.partitions.iter_mut() {
            part.expire(upto, self.node.within_ms);
            part.resolve(self.node.skip);
            for found in part.ready(self.max_next, upto == i64::MAX) {
                emit(&self.node, part, key, found, &mut outs, ctx)?;
            }
            part.prune(self.max_prev);
        }
        if outs.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![build(&self.node, &outs, ctx)?])
    }
}

/// Decides each candidate: its variable's DEFINE over the candidate's history (variables without
/// a DEFINE match every row).
fn evaluate_defines(
    node: &MatchRecognizeNode,
    part: &PartitionMatcher,
    candidates: &[Candidate],
    ctx: &OpContext,
) -> Result<Vec<bool>> {
    let mut verdicts = vec![false; candidates.len()];
    for (var, define) in node.defines.iter().enumerate() {
        let idx: Vec<usize> = (0..candidates.len())
            .filter(|i| candidates[*i].var == var)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let Some(define) = define else {
            for i in idx {
                verdicts[i] = true;
            }
            continue;
        };
        let mut rows = Vec::with_capacity(idx.len());
        for &i in &idx {
            let mut terms = Vec::with_capacity(define.terms.len());
            for (t, f) in define.terms.iter().zip(define.schema.fields()) {
                terms.push(part.term(
                    t,
                    &candidates[i].entries,
                    part.next_match_number(),
                    &node.program,
                    f.data_type(),
                )?);
            }
            rows.push(terms);
        }
        let result = evaluate_expr(define, &rows, ctx)?;
        let result = result.as_boolean();
        for (j, &i) in idx.iter().enumerate() {
            verdicts[i] = result.is_valid(j) && result.value(j);
        }
    }
    Ok(verdicts)
}

/// Evaluates a match expression for several rows of term values.
fn evaluate_expr(e: &MatchExpr, rows: &[Vec<ScalarValue>], ctx: &OpContext) -> Result<ArrayRef> {
    let mut columns = Vec::with_capacity(e.terms.len());
    for t in 0..e.terms.len() {
        columns.push(ScalarValue::iter_to_array(
            rows.iter().map(|r| r[t].clone()),
        )?);
    }
    let batch = RecordBatch::try_new_with_options(
        e.schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )?;
    evaluate(&e.expr.physical, &batch, ctx)
}

/// Turns a completed match into output rows: one, or one per matched row.
fn emit(
    node: &MatchRecognizeNode,
    part: &PartitionMatcher,
    key: &[ScalarValue],
    found: Found,
    outs: &mut Vec<OutRow>,
    ctx: &OpContext,
) -> Result<()> {
    if let Some(problem) = &found.skip_problem {
        let mut e = ErrorRecord::new(&ctx.query, ErrorKind::Pattern, problem.clone());
        e.rowtime = found
            .entries
            .first()
            .and_then(|(s, _)| part.row(*s))
            .map(|r| r.rowtime);
        ctx.report(e);
    }
    let n = found.entries.len();
    let rows: Vec<usize> = if node.all_rows {
        (0..n).collect()
    } else {
        vec![n - 1]
    };
    for i in rows {
        let mut terms = Vec::with_capacity(node.measures.len());
        for m in &node.measures {
            let view = if m.final_semantics {
                &found.entries[..]
            } else {
                &found.entries[..=i]
            };
            let mut values = Vec::with_capacity(m.expr.terms.len());
            for (t, f) in m.expr.terms.iter().zip(m.expr.schema.fields()) {
                values.push(part.term(t, view, found.number, &node.program, f.data_type())?);
            }
            terms.push(values);
        }
        let seq = found.entries[i].0;
        let Some(row) = part.row(seq) else {
            continue;
        };
        let input = node.input.schema();
        let as_i64 = |v: &ScalarValue| match v {
            ScalarValue::Int64(Some(x)) => *x,
            _ => 0,
        };
        outs.push(OutRow {
            keys: key.to_vec(),
            terms,
            passthrough: node
                .passthrough
                .iter()
                .map(|c| row.values[*c].clone())
                .collect(),
            rowtime: row.rowtime,
            partition: match &row.values[input.partition()] {
                ScalarValue::Int32(Some(p)) => *p,
                _ => 0,
            },
            offset: as_i64(&row.values[input.offset()]),
        });
    }
    Ok(())
}

/// Builds the output batch, evaluating every measure over all rows at once.
fn build(node: &MatchRecognizeNode, outs: &[OutRow], ctx: &OpContext) -> Result<RecordBatch> {
    let schema = &node.schema;
    let mut columns: Vec<ArrayRef> = Vec::new();
    for k in 0..schema.key_count {
        columns.push(ScalarValue::iter_to_array(
            outs.iter().map(|o| o.keys[k].clone()),
        )?);
    }
    for (mi, m) in node.measures.iter().enumerate() {
        let rows: Vec<Vec<ScalarValue>> = outs.iter().map(|o| o.terms[mi].clone()).collect();
        let values = evaluate_expr(&m.expr, &rows, ctx)?;
        let target = schema.arrow.field(columns.len()).data_type();
        columns.push(if values.data_type() == target {
            values
        } else {
            datafusion::arrow::compute::cast(&values, target)?
        });
    }
    for p in 0..node.passthrough.len() {
        columns.push(ScalarValue::iter_to_array(
            outs.iter().map(|o| o.passthrough[p].clone()),
        )?);
    }
    columns.push(Arc::new(Int64Array::from_iter_values(
        outs.iter().map(|o| o.rowtime),
    )));
    columns.push(Arc::new(Int32Array::from_iter_values(
        outs.iter().map(|o| o.partition),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        outs.iter().map(|o| o.offset),
    )));
    columns.push(Arc::new(Int8Array::from(vec![
        ChangeOp::Insert as i8;
        outs.len()
    ])));
    Ok(RecordBatch::try_new(schema.arrow.clone(), columns)?)
}

impl Operator for MatchRecognizeOp {
    fn name(&self) -> &'static str {
        "MatchRecognize"
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let ops = ops_of(&batch, self.input.op());
        let times = batch
            .column(self.input.rowtime())
            .as_primitive::<Int64Type>()
            .clone();
        let mut waiting = 0;
        for i in 0..batch.num_rows() {
            if ops.value(i) == ChangeOp::Delete as i8 {
                continue;
            }
            let ts = times.value(i);
            if ts < self.watermark {
                let mut e = ErrorRecord::new(
                    &ctx.query,
                    ErrorKind::LateRow,
                    format!(
                        "row at event time {ts} arrived after the watermark ({}) passed it; \
                         MATCH_RECOGNIZE orders rows by event time and cannot place it",
                        self.watermark
                    ),
                );
                e.rowtime = Some(ts);
                e.offset = Some(
                    batch
                        .column(self.input.offset())
                        .as_primitive::<Int64Type>()
                        .value(i),
                );
                ctx.report(e);
                continue;
            }
            self.pending
                .insert((ts, self.arrivals), (self.next_batch, i as u32));
            waiting += 1;
            self.arrivals += 1;
        }
        if waiting > 0 {
            self.waiting
                .insert(self.next_batch, (batch.clone(), waiting));
            self.next_batch += 1;
        }
        Ok(vec![])
    }

    fn on_watermark(&mut self, wm: i64, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if wm <= self.watermark {
            return Ok(vec![]);
        }
        self.watermark = wm;
        self.release(wm, ctx)
    }

    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        self.store.checkpoint(Some(barrier), self)
    }

    fn on_end(&mut self, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if self.store.checkpoints() {
            // Stopped, not exhausted (exhausted input ends with a final watermark that already
            // released everything): partial matches stay in the snapshot for the resumed query.
            return self.store.checkpoint(None, self).map(|()| vec![]);
        }
        self.watermark = i64::MAX;
        self.release(i64::MAX, ctx)
    }
}

impl Snapshot for MatchRecognizeOp {
    fn snapshot(&self) -> Result<Vec<u8>> {
        let schema = &self.input.arrow;
        let width = schema.fields().len();
        let kc = self.input.key_count;
        let parts: Vec<(&Vec<ScalarValue>, &PartitionMatcher)> = self.partitions.iter().collect();
        let keys: Vec<&[ScalarValue]> = parts.iter().map(|(k, _)| k.as_slice()).collect();
        let mut batches = vec![rows_to_batch(schema, kc, &keys)?];
        let mut saved = Saved {
            watermark: self.watermark,
            arrivals: self.arrivals,
            partitions: Vec::with_capacity(parts.len()),
            pending: self.pending.keys().copied().collect(),
        };
        for (_, part) in &parts {
            let (state, rows) = part.save();
            let values: Vec<&[ScalarValue]> = rows.iter().map(|r| r.values.as_slice()).collect();
            batches.push(rows_to_batch(schema, width, &values)?);
            saved
                .partitions
                .push((state, rows.iter().map(|r| r.rowtime).collect()));
        }
        batches.push(self.waiting_batch()?);
        snapshot::encode(&saved, &batches)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let (saved, batches) = snapshot::decode::<Saved>(bytes)?;
        if batches.len() != saved.partitions.len() + 2 {
            return Err(EngineError::DataFusion(
                "damaged MATCH_RECOGNIZE snapshot: batches do not match partitions".into(),
            ));
        }
        self.watermark = saved.watermark;
        self.arrivals = saved.arrivals;
        let keys = batch_to_rows(&batches[0])?;
        for ((key, (state, times)), rows) in keys
            .into_iter()
            .zip(saved.partitions)
            .zip(&batches[1..batches.len() - 1])
        {
            let rows = batch_to_rows(rows)?
                .into_iter()
                .zip(times)
                .map(|(values, rowtime)| StoredRow { values, rowtime })
                .collect();
            self.partitions
                .insert(key, PartitionMatcher::restored(state, rows));
        }
        let waiting = &batches[batches.len() - 1];
        let id = self.next_batch;
        self.next_batch += 1;
        let mut count = 0;
        for (i, mark) in saved
            .pending
            .into_iter()
            .enumerate()
            .take(waiting.num_rows())
        {
            self.pending.insert(mark, (id, i as u32));
            count += 1;
        }
        if count > 0 {
            self.waiting.insert(id, (waiting.clone(), count));
        }
        Ok(())
    }
}
