//! `WHERE` / `HAVING`: keeps rows whose predicate is true. On streams, records with a NULL value
//! (tombstones) never pass; on changelogs every change kind is tested on its own values, so an
//! update whose new value stops matching leaves only its retraction.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, Int8Array, RecordBatch};
use datafusion::arrow::compute::kernels::boolean::and;
use datafusion::arrow::compute::kernels::cmp::neq;
use datafusion::arrow::compute::prep_null_mask_filter;
use datafusion::physical_expr::PhysicalExpr;
use riffle_sql::plan::ChangeOp;

use super::{OpContext, Operator, evaluate, filter, ops_of};
use crate::error::Result;

/// Filters rows by a predicate.
pub struct FilterOp {
    predicate: Arc<dyn PhysicalExpr>,
    is_stream: bool,
    op_index: usize,
}

impl FilterOp {
    /// A filter over batches whose change-kind column is at `op_index`.
    pub fn new(predicate: Arc<dyn PhysicalExpr>, is_stream: bool, op_index: usize) -> Self {
        FilterOp {
            predicate,
            is_stream,
            op_index,
        }
    }
}

impl FilterOp {
    /// Which rows of `batch` pass: the predicate is true (NULL is not) and, on streams, the row
    /// is not a deletion.
    pub fn mask(&self, batch: &RecordBatch, ctx: &OpContext) -> Result<BooleanArray> {
        let result = evaluate(&self.predicate, batch, ctx)?;
        let mask = match result.as_boolean_opt() {
            Some(m) if m.null_count() > 0 => prep_null_mask_filter(m),
            Some(m) => m.clone(),
            None => BooleanArray::from(vec![false; batch.num_rows()]),
        };
        if !self.is_stream {
            return Ok(mask);
        }
        let ops = ops_of(batch, self.op_index);
        let live = neq(&ops, &Int8Array::new_scalar(ChangeOp::Delete as i8))?;
        let live = if live.null_count() > 0 {
            prep_null_mask_filter(&live)
        } else {
            live
        };
        Ok(and(&mask, &live)?)
    }
}

impl Operator for FilterOp {
    fn name(&self) -> &'static str {
        "Filter"
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mask = self.mask(&batch, ctx)?;
        if mask.true_count() == batch.num_rows() {
            return Ok(vec![batch]);
        }
        Ok(vec![filter(&batch, &mask)?])
    }
}
