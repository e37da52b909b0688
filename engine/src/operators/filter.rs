//! `WHERE` / `HAVING`: keeps rows whose predicate is true. On streams, records with a NULL value
//! (tombstones) never pass; on changelogs every change kind is tested on its own values, so an
//! update whose new value stops matching leaves only its retraction.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::kernels::boolean::and;
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

impl Operator for FilterOp {
    fn name(&self) -> &'static str {
        "Filter"
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let result = evaluate(&self.predicate, &batch, ctx)?;
        let mask = result
            .as_boolean_opt()
            .cloned()
            .unwrap_or_else(|| BooleanArray::from(vec![false; batch.num_rows()]));
        // NULL means "not true".
        let mask: BooleanArray = mask.iter().map(|v| Some(v == Some(true))).collect();
        let mask = if self.is_stream {
            let ops = ops_of(&batch, self.op_index);
            let live: BooleanArray = ops
                .iter()
                .map(|o| Some(o != Some(ChangeOp::Delete as i8)))
                .collect();
            and(&mask, &live)?
        } else {
            mask
        };
        Ok(vec![filter(&batch, &mask)?])
    }
}
