//! Stream operators. Each operator is a synchronous state machine over Arrow batches; the runtime
//! chains operators of one stage inside a task and moves batches, watermarks and barriers between
//! stages over bounded channels. One operator per file.

pub mod aggregate_state;
pub mod computed_columns;
pub mod filter;
pub mod filter_project;
pub mod group_aggregate;
pub mod join_rows;
pub mod match_recognize;
pub mod pattern_matcher;
pub mod project;
pub mod session_window;
pub mod sink;
pub mod stream_stream_join;
pub mod stream_table_join;
pub mod table_source;
pub mod table_table_join;
pub mod window_aggregate;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int8Array, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::Int8Type;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use riffle_sql::plan::ChangeOp;

use crate::error::Result;
use crate::metrics::QueryMetrics;
use crate::processing_log::{ErrorKind, ErrorRecord, ProcessingLog};
use crate::runtime::Barrier;
use crate::state::{StateStore, StateTable};

/// What an operator can reach besides its input: the query's identity, the processing log, the
/// current watermark and metrics.
pub struct OpContext {
    /// Query id, for processing-log entries.
    pub query: String,
    /// Where bad rows are reported.
    pub log: Arc<ProcessingLog>,
    /// The stage's current watermark.
    pub watermark: i64,
    /// The query's counters.
    pub metrics: Arc<QueryMetrics>,
}

impl OpContext {
    /// Reports a processing-log entry.
    pub fn report(&self, e: ErrorRecord) {
        self.log.report(e)
    }

    /// Reports function errors raised while evaluating expressions, with the row's coordinates.
    pub fn report_function_errors(&self, messages: Vec<String>) {
        for m in messages {
            self.log
                .report(ErrorRecord::new(&self.query, ErrorKind::Function, m));
        }
    }
}

/// An operator subtask's access to its query's state store.
#[derive(Debug, Clone)]
pub struct OperatorState {
    store: Arc<StateStore>,
    name: String,
    subtask: usize,
}

impl OperatorState {
    /// The state of operator `op` of stage `stage`, subtask `subtask`.
    pub fn new(store: Arc<StateStore>, stage: usize, op: usize, subtask: usize) -> Self {
        OperatorState {
            store,
            name: format!("s{stage}o{op}"),
            subtask,
        }
    }

    /// State for operators run outside a query's dataflow (pull queries, tests): a temporary
    /// store that takes no checkpoints.
    pub fn temporary() -> Result<Self> {
        Ok(OperatorState::new(
            Arc::new(StateStore::temporary(usize::MAX)?),
            0,
            0,
            0,
        ))
    }

    /// The operator's state table `what` (a column family of the query's store).
    pub fn table(&self, what: &str) -> StateTable {
        self.store
            .table(&format!("{}.{what}", self.name), self.subtask)
    }

    /// Whether the query takes checkpoints: state is then written at every checkpoint barrier.
    pub fn checkpoints(&self) -> bool {
        self.store.takes_checkpoints()
    }

    /// Whether the store was restored from a checkpoint (tables may hold entries).
    pub fn restored(&self) -> bool {
        self.store.restored()
    }

    /// Entries the operator subtask keeps in memory before evicting to the store.
    pub fn cache_entries(&self) -> usize {
        self.store.cache_entries()
    }

    /// Whether an operator that last passed checkpoint `passed` may write to the store now.
    pub fn may_write(&self, passed: u64) -> bool {
        self.store.may_write_between_barriers(passed)
    }

    /// The state of the table materialization at the head of stage `stage`, subtask `subtask`.
    pub fn table_source(store: Arc<StateStore>, stage: usize, subtask: usize) -> Self {
        OperatorState {
            store,
            name: format!("s{stage}table"),
            subtask,
        }
    }

    /// At a checkpoint barrier (and at the end of input), replaces the operator's stored
    /// snapshot with its current state.
    pub fn checkpoint(&self, barrier: Option<Barrier>, op: &impl Snapshot) -> Result<()> {
        if !self.checkpoints() || barrier.is_some_and(|b| b.checkpoint.is_none()) {
            return Ok(());
        }
        let bytes = op.snapshot()?;
        self.table("snapshot")
            .write([(&b"s"[..], bytes.as_slice())], std::iter::empty())
    }

    /// When the query resumes a checkpoint, restores the operator from its stored snapshot.
    pub fn resume(&self, op: &mut impl Snapshot) -> Result<()> {
        if !self.restored() {
            return Ok(());
        }
        let found = self.table("snapshot").get_many(&[b"s"])?;
        match found.into_iter().next().flatten() {
            Some(bytes) => op.restore(&bytes),
            None => Ok(()),
        }
    }
}

/// An operator whose state is written whole at each checkpoint (see [`crate::state::snapshot`]).
pub trait Snapshot {
    /// The operator's state as bytes.
    fn snapshot(&self) -> Result<Vec<u8>>;
    /// Replaces the operator's state with a snapshot's.
    fn restore(&mut self, bytes: &[u8]) -> Result<()>;
}

/// A stream operator.
pub trait Operator: Send {
    /// Name for logs and EXPLAIN.
    fn name(&self) -> &'static str;
    /// Processes one batch, returning output batches.
    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>>;
    /// Processes a batch that arrived on input `side` (0 = left, 1 = right; joins only).
    fn process_side(
        &mut self,
        _side: usize,
        batch: RecordBatch,
        ctx: &mut OpContext,
    ) -> Result<Vec<RecordBatch>> {
        self.process(batch, ctx)
    }
    /// The watermark advanced to `wm`: close windows, fire timers.
    fn on_watermark(&mut self, _wm: i64, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        Ok(vec![])
    }
    /// A barrier passed; on a checkpoint barrier, write the state that changed since the last
    /// one to the state store.
    fn on_barrier(&mut self, _barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        Ok(())
    }
    /// The input ended.
    fn on_end(&mut self, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        Ok(vec![])
    }
    /// Input `side` has delivered everything its sources held at start (joins only).
    fn on_side_caught_up(
        &mut self,
        _side: usize,
        _ctx: &mut OpContext,
    ) -> Result<Vec<RecordBatch>> {
        Ok(vec![])
    }
}

/// Operators of one stage, applied in order.
#[derive(Default)]
pub struct Chain {
    ops: Vec<Box<dyn Operator>>,
}

impl Chain {
    /// A chain of operators.
    pub fn new(ops: Vec<Box<dyn Operator>>) -> Self {
        Chain { ops }
    }

    fn push(
        &mut self,
        from: usize,
        batches: Vec<RecordBatch>,
        ctx: &mut OpContext,
    ) -> Result<Vec<RecordBatch>> {
        let mut current = batches;
        for op in self.ops.iter_mut().skip(from) {
            let mut next = Vec::new();
            for b in current {
                if b.num_rows() == 0 {
                    continue;
                }
                next.extend(op.process(b, ctx)?);
            }
            current = next;
        }
        Ok(current.into_iter().filter(|b| b.num_rows() > 0).collect())
    }

    /// Runs a batch through every operator.
    pub fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.push(0, vec![batch], ctx)
    }

    /// Runs a batch that arrived on input `side` through every operator (the first operator
    /// sees the side).
    pub fn process_side(
        &mut self,
        side: usize,
        batch: RecordBatch,
        ctx: &mut OpContext,
    ) -> Result<Vec<RecordBatch>> {
        let Some(first) = self.ops.first_mut() else {
            return Ok(vec![batch]);
        };
        let out = first.process_side(side, batch, ctx)?;
        self.push(1, out, ctx)
    }

    /// Delivers a watermark to each operator in turn, passing on what each emits.
    pub fn watermark(&mut self, wm: i64, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        ctx.watermark = wm;
        let mut out = Vec::new();
        for i in 0..self.ops.len() {
            let emitted = self.ops[i].on_watermark(wm, ctx)?;
            if !emitted.is_empty() {
                out.extend(self.push(i + 1, emitted, ctx)?);
            }
        }
        Ok(out)
    }

    /// Delivers a barrier to every operator.
    pub fn barrier(&mut self, barrier: Barrier, ctx: &mut OpContext) -> Result<()> {
        for op in &mut self.ops {
            op.on_barrier(barrier, ctx)?;
        }
        Ok(())
    }

    /// Tells the first operator that input `side` caught up, passing on what it emits.
    pub fn side_caught_up(&mut self, side: usize, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let Some(first) = self.ops.first_mut() else {
            return Ok(vec![]);
        };
        let out = first.on_side_caught_up(side, ctx)?;
        self.push(1, out, ctx)
    }

    /// Ends every operator in turn.
    pub fn end(&mut self, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for i in 0..self.ops.len() {
            let emitted = self.ops[i].on_end(ctx)?;
            if !emitted.is_empty() {
                out.extend(self.push(i + 1, emitted, ctx)?);
            }
        }
        Ok(out)
    }
}

/// The change kinds of a batch.
pub fn ops_of(batch: &RecordBatch, op_index: usize) -> Int8Array {
    batch.column(op_index).as_primitive::<Int8Type>().clone()
}

/// Whether `e` picks existing data without computing: a column, or a field of a struct it picks
/// (`get_field` with literal field names). Picking is zero-copy and cannot fail.
pub fn is_pick(e: &Arc<dyn PhysicalExpr>) -> bool {
    let any: &dyn std::any::Any = e.as_ref();
    if any.is::<Column>() {
        return true;
    }
    any.downcast_ref::<ScalarFunctionExpr>().is_some_and(|f| {
        let args = f.args();
        f.name() == "get_field"
            && args.first().is_some_and(is_pick)
            && args[1..]
                .iter()
                .all(|a| (a.as_ref() as &dyn std::any::Any).is::<Literal>())
    })
}

/// Evaluates an expression over a batch; when the batch fails as a whole, evaluates row by row so
/// only failing rows become NULL (each reported), as ksqlDB does for per-row function errors.
pub fn evaluate(
    expr: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
    ctx: &OpContext,
) -> Result<ArrayRef> {
    riffle_udfs::errors::drain();
    match expr
        .evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
    {
        Ok(a) => {
            let errs = riffle_udfs::errors::drain();
            ctx.report_function_errors(errs);
            Ok(a)
        }
        Err(batch_err) => {
            let dt = expr.data_type(batch.schema().as_ref())?;
            let mut parts: Vec<ArrayRef> = Vec::with_capacity(batch.num_rows());
            for i in 0..batch.num_rows() {
                let row = batch.slice(i, 1);
                match expr.evaluate(&row).and_then(|v| v.into_array(1)) {
                    Ok(a) => parts.push(a),
                    Err(e) => {
                        ctx.report(ErrorRecord::new(
                            &ctx.query,
                            ErrorKind::Function,
                            format!("{expr}: {e}"),
                        ));
                        parts.push(datafusion::arrow::array::new_null_array(&dt, 1));
                    }
                }
            }
            ctx.report_function_errors(riffle_udfs::errors::drain());
            if parts.is_empty() {
                return Err(batch_err.into());
            }
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            Ok(datafusion::arrow::compute::concat(&refs)?)
        }
    }
}

/// Keeps rows where `mask` is true.
pub fn filter(batch: &RecordBatch, mask: &BooleanArray) -> Result<RecordBatch> {
    Ok(filter_record_batch(batch, mask)?)
}

/// Whether a change kind removes a row.
pub fn is_retraction(op: i8) -> bool {
    ChangeOp::from_i8(op).is_retraction()
}
