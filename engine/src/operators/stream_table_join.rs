//! Stream-table join: the table side keeps its latest row per key; each stream row joins the row
//! present at that moment (LEFT pads with NULLs when there is none). Table changes emit nothing.
//! Stream rows wait until the table side has loaded what its source held at start (as Kafka
//! Streams bootstraps a global table), so a pipeline started over existing data enriches every
//! row the same way on every run. The table rows (and stream rows still waiting) are
//! checkpointed.

use std::collections::HashMap;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use riffle_sql::ast::JoinKind;
use riffle_sql::plan::{ChangeOp, JoinNode, StreamSchema};

use super::join_rows::{JoinOutput, JoinedRow};
use super::{OpContext, Operator, OperatorState, Snapshot, ops_of};
use crate::error::Result;
use crate::runtime::Barrier;
use crate::state::snapshot;

/// Stream-table join.
pub struct StreamTableJoinOp {
    kind: JoinKind,
    inputs: [StreamSchema; 2],
    table: HashMap<OwnedRow, RecordBatch>,
    converter: RowConverter,
    output: JoinOutput,
    table_loaded: bool,
    waiting: Vec<RecordBatch>,
    store: OperatorState,
}

impl StreamTableJoinOp {
    /// Builds the operator for a stream-table join node, restoring its state when the query
    /// resumes a checkpoint.
    pub fn new(node: &JoinNode, store: OperatorState) -> Result<Self> {
        let left = node.left.schema().clone();
        let right = node.right.schema().clone();
        let mut op = StreamTableJoinOp {
            kind: node.kind,
            converter: RowConverter::new(vec![SortField::new(
                left.key_fields()[0].data_type().clone(),
            )])?,
            output: JoinOutput::new(node.schema.clone(), &left, &right, left.value_count),
            inputs: [left, right],
            table: HashMap::new(),
            table_loaded: false,
            waiting: Vec::new(),
            store: store.clone(),
        };
        store.resume(&mut op)?;
        Ok(op)
    }

    fn release_waiting(&mut self, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.table_loaded = true;
        let mut out = Vec::new();
        for b in std::mem::take(&mut self.waiting) {
            out.extend(self.process_side(0, b, ctx)?);
        }
        Ok(out)
    }
}

/// Snapshot layout: the table rows, then the waiting stream batches.
impl Snapshot for StreamTableJoinOp {
    fn snapshot(&self) -> Result<Vec<u8>> {
        let table = concat_batches(&self.inputs[1].arrow, self.table.values())?;
        let mut batches = vec![table];
        batches.extend(self.waiting.iter().cloned());
        snapshot::encode(&self.table_loaded, &batches)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let (loaded, mut batches) = snapshot::decode::<bool>(bytes)?;
        self.table_loaded = loaded;
        if batches.is_empty() {
            return Ok(());
        }
        let table = batches.remove(0);
        let keys = self.converter.convert_columns(&table.columns()[..1])?;
        for i in 0..table.num_rows() {
            self.table.insert(keys.row(i).owned(), table.slice(i, 1));
        }
        self.waiting = batches;
        Ok(())
    }
}

impl Operator for StreamTableJoinOp {
    fn name(&self) -> &'static str {
        "StreamTableJoin"
    }

    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        self.store.checkpoint(Some(barrier), self)
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.process_side(0, batch, ctx)
    }

    fn process_side(
        &mut self,
        side: usize,
        batch: RecordBatch,
        ctx: &mut OpContext,
    ) -> Result<Vec<RecordBatch>> {
        let schema = &self.inputs[side];
        let ops = ops_of(&batch, schema.op());
        let keys = self.converter.convert_columns(&batch.columns()[..1])?;
        if side == 1 {
            for i in 0..batch.num_rows() {
                let key = keys.row(i).owned();
                let followed =
                    i + 1 < batch.num_rows() && ops.value(i + 1) == ChangeOp::UpdateAfter as i8;
                if ops.value(i) == ChangeOp::UpdateBefore as i8 && followed {
                    continue;
                }
                if ops.value(i) == ChangeOp::Delete as i8
                    || ops.value(i) == ChangeOp::UpdateBefore as i8
                {
                    self.table.remove(&key);
                } else {
                    self.table.insert(key, batch.slice(i, 1));
                }
            }
            ctx.metrics.state_bytes.store(
                (self.table.len() * 64) as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            return Ok(vec![]);
        }
        if !self.table_loaded {
            self.waiting.push(batch);
            return Ok(vec![]);
        }
        let times = batch
            .column(schema.rowtime())
            .as_primitive::<Int64Type>()
            .clone();
        let mut out = Vec::new();
        for i in 0..batch.num_rows() {
            if ops.value(i) == ChangeOp::Delete as i8 {
                continue;
            }
            let row = batch.slice(i, 1);
            let right = self.table.get(&keys.row(i).owned()).cloned();
            if right.is_none() && self.kind != JoinKind::Left {
                continue;
            }
            out.push(JoinedRow {
                key_from: row.clone(),
                left: Some(row),
                right,
                rowtime: times.value(i),
                op: ChangeOp::Insert,
            });
        }
        Ok(self.output.build(&out)?.into_iter().collect())
    }

    fn on_side_caught_up(&mut self, side: usize, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if side == 1 && !self.table_loaded {
            return self.release_waiting(ctx);
        }
        Ok(vec![])
    }

    fn on_end(&mut self, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if self.store.checkpoints() {
            // Stopped, not exhausted (an exhausted table side released the rows already):
            // waiting rows stay in the snapshot for the resumed query.
            return self.store.checkpoint(None, self).map(|()| vec![]);
        }
        self.release_waiting(ctx)
    }
}
