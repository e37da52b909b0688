//! Turns a table's upserts into a changelog. A record with a value is an insert or update of its
//! key; a record without one deletes it. When the plan needs old values (aggregations over the
//! table) the latest row per key is kept, so an update becomes `-U old, +U new` and a delete
//! carries the row it removes; otherwise records pass through as upserts and deletes. The kept
//! rows are checkpointed, so a resumed query still knows each key's old value.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int8Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use riffle_sql::plan::{ChangeOp, StreamSchema};
use std::sync::Arc;

use super::{OpContext, Operator, OperatorState, Snapshot, filter, ops_of};
use crate::error::Result;
use crate::processing_log::{ErrorKind, ErrorRecord};
use crate::runtime::Barrier;
use crate::state::snapshot;

/// Materializes a table's changelog.
pub struct TableSourceOp {
    schema: StreamSchema,
    materialize: bool,
    converter: RowConverter,
    state: HashMap<OwnedRow, RecordBatch>,
    store: OperatorState,
}

impl TableSourceOp {
    /// A table source over batches of `schema`, restoring its rows when the query resumes.
    pub fn new(schema: StreamSchema, materialize: bool, store: OperatorState) -> Result<Self> {
        let fields: Vec<SortField> = schema
            .key_fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let mut op = TableSourceOp {
            converter: RowConverter::new(fields)?,
            schema,
            materialize,
            state: HashMap::new(),
            store: store.clone(),
        };
        if materialize {
            store.resume(&mut op)?;
        }
        Ok(op)
    }

    fn with_op_and_time(
        &self,
        rows: RecordBatch,
        op: ChangeOp,
        rowtime: i64,
    ) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = rows.columns().to_vec();
        let n = rows.num_rows();
        cols[self.schema.rowtime()] = Arc::new(Int64Array::from(vec![rowtime; n]));
        cols[self.schema.op()] = Arc::new(Int8Array::from(vec![op as i8; n]));
        Ok(RecordBatch::try_new(self.schema.arrow.clone(), cols)?)
    }
}

impl Snapshot for TableSourceOp {
    fn snapshot(&self) -> Result<Vec<u8>> {
        let rows: Vec<&RecordBatch> = self.state.values().collect();
        let all = concat_batches(&self.schema.arrow, rows)?;
        snapshot::encode(&(), &[all])
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let ((), batches) = snapshot::decode::<()>(bytes)?;
        let kc = self.schema.key_count;
        for b in batches {
            let keys = self.converter.convert_columns(&b.columns()[..kc])?;
            for i in 0..b.num_rows() {
                self.state.insert(keys.row(i).owned(), b.slice(i, 1));
            }
        }
        Ok(())
    }
}

impl Operator for TableSourceOp {
    fn name(&self) -> &'static str {
        "TableSource"
    }

    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        if self.materialize {
            self.store.checkpoint(Some(barrier), self)?;
        }
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if self.materialize {
            self.store.checkpoint(None, self)?;
        }
        Ok(vec![])
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let kc = self.schema.key_count;
        // Tables need a key: rows without one are dropped and reported.
        let has_key: BooleanArray = (0..batch.num_rows())
            .map(|r| Some(kc == 0 || (0..kc).any(|k| batch.column(k).is_valid(r))))
            .collect();
        let batch = if has_key.false_count() > 0 {
            for r in (0..batch.num_rows()).filter(|r| !has_key.value(*r)) {
                let _ = r;
                ctx.report(ErrorRecord::new(
                    &ctx.query,
                    ErrorKind::Deserialization,
                    "table record without a key: dropped",
                ));
            }
            filter(&batch, &has_key)?
        } else {
            batch
        };
        if !self.materialize || batch.num_rows() == 0 {
            return Ok(vec![batch]);
        }
        let keys = self.converter.convert_columns(&batch.columns()[..kc])?;
        let ops = ops_of(&batch, self.schema.op());
        let times = batch
            .column(self.schema.rowtime())
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned();
        let mut out = Vec::new();
        for i in 0..batch.num_rows() {
            let key = keys.row(i).owned();
            let ts = times.as_ref().map(|t| t.value(i)).unwrap_or(0);
            if ops.value(i) == ChangeOp::Delete as i8 {
                if let Some(old) = self.state.remove(&key) {
                    out.push(self.with_op_and_time(old, ChangeOp::Delete, ts)?);
                }
                continue;
            }
            let row = batch.slice(i, 1);
            match self.state.insert(key, row.clone()) {
                Some(old) => {
                    out.push(self.with_op_and_time(old, ChangeOp::UpdateBefore, ts)?);
                    out.push(self.with_op_and_time(row, ChangeOp::UpdateAfter, ts)?);
                }
                None => out.push(self.with_op_and_time(row, ChangeOp::Insert, ts)?),
            }
        }
        if out.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![concat_batches(&self.schema.arrow, &out)?])
    }
}
