//! `WHERE` / `HAVING`: keeps rows whose predicate is true. On streams, records with a NULL value
//! (tombstones) never pass; on changelogs every change kind is tested on its own values, so an
//! update whose new value stops matching leaves only its retraction.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, Int8Array, RecordBatch};
use datafusion::arrow::compute::kernels::boolean::and;
use datafusion::arrow::compute::kernels::cmp::neq;
use datafusion::arrow::compute::prep_null_mask_filter;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, Column, IsNotNullExpr, IsNullExpr, Literal, NotExpr,
};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use riffle_sql::plan::ChangeOp;

use super::{OpContext, Operator as StreamOperator, evaluate, filter, ops_of};
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
    /// Whether the predicate cannot fail on any row (comparisons and boolean logic over
    /// columns, struct fields and literals; division only by a literal other than 0 and -1), so
    /// it may be evaluated on rows an earlier filter dropped.
    pub fn cannot_fail(&self) -> bool {
        cannot_fail(&self.predicate)
    }

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

impl StreamOperator for FilterOp {
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

/// See [`FilterOp::cannot_fail`].
fn cannot_fail(e: &Arc<dyn PhysicalExpr>) -> bool {
    let any: &dyn std::any::Any = e.as_ref();
    if any.is::<Column>() || any.is::<Literal>() {
        return true;
    }
    if let Some(b) = any.downcast_ref::<BinaryExpr>() {
        return match b.op() {
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
            | Operator::And
            | Operator::Or => cannot_fail(b.left()) && cannot_fail(b.right()),
            Operator::Divide | Operator::Modulo => {
                let divisor: &dyn std::any::Any = b.right().as_ref();
                let safe_divisor = divisor.downcast_ref::<Literal>().is_some_and(|l| {
                    let v = l.value();
                    v.data_type().is_integer()
                        && !v.is_null()
                        && !matches!(v.to_string().as_str(), "0" | "-1")
                });
                safe_divisor && cannot_fail(b.left())
            }
            _ => false,
        };
    }
    if let Some(n) = any.downcast_ref::<NotExpr>() {
        return cannot_fail(n.arg());
    }
    if let Some(n) = any.downcast_ref::<IsNullExpr>() {
        return cannot_fail(n.arg());
    }
    if let Some(n) = any.downcast_ref::<IsNotNullExpr>() {
        return cannot_fail(n.arg());
    }
    any.downcast_ref::<ScalarFunctionExpr>()
        .is_some_and(|f| f.name() == "get_field" && f.args().iter().all(cannot_fail))
}
