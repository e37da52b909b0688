//! `WHERE` / `HAVING`: keeps rows whose predicate is true. On streams, records with a NULL value
//! (tombstones) never pass; on changelogs every change kind is tested on its own values, so an
//! update whose new value stops matching leaves only its retraction.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, Int8Array, RecordBatch};
use datafusion::arrow::compute::kernels::boolean::and;
use datafusion::arrow::compute::kernels::cmp::neq;
use datafusion::arrow::compute::prep_null_mask_filter;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CastExpr, IsNotNullExpr, IsNullExpr, Literal, NotExpr,
};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use riffle_sql::plan::ChangeOp;

use super::{OpContext, Operator as StreamOperator, evaluate, filter, is_pick, ops_of};
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
    if is_pick(e) || constant(e).is_some() {
        return true;
    }
    let any: &dyn std::any::Any = e.as_ref();
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
            Operator::Divide | Operator::Modulo => safe_divisor(b.right()) && cannot_fail(b.left()),
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
        .is_some_and(|f| match (f.name(), f.args()) {
            ("MOD", [value, divisor]) => cannot_fail(value) && safe_divisor(divisor),
            _ => false,
        })
}

/// The value of a literal, or of a cast of one that succeeds (then it succeeds on every row).
fn constant(e: &Arc<dyn PhysicalExpr>) -> Option<ScalarValue> {
    let any: &dyn std::any::Any = e.as_ref();
    if let Some(l) = any.downcast_ref::<Literal>() {
        return Some(l.value().clone());
    }
    let c = any.downcast_ref::<CastExpr>()?;
    constant(c.expr())?.cast_to(c.cast_type()).ok()
}

/// An integer constant other than 0 and -1: dividing by it cannot fail or overflow.
fn safe_divisor(e: &Arc<dyn PhysicalExpr>) -> bool {
    constant(e).is_some_and(|v| {
        v.data_type().is_integer() && !v.is_null() && !matches!(v.to_string().as_str(), "0" | "-1")
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};

    use super::cannot_fail;

    fn int(v: i64) -> Arc<dyn PhysicalExpr> {
        Arc::new(Literal::new(ScalarValue::Int64(Some(v))))
    }

    fn bin(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    /// Only predicates that cannot fail may run on rows an earlier filter dropped: comparisons
    /// and division by a safe constant do, arithmetic that may overflow and division by a
    /// column, 0 or -1 do not.
    #[test]
    fn predicates_that_cannot_fail() {
        let a: Arc<dyn PhysicalExpr> = Arc::new(Column::new("A", 0));
        let b: Arc<dyn PhysicalExpr> = Arc::new(Column::new("B", 1));
        assert!(cannot_fail(&bin(a.clone(), Operator::Eq, int(2))));
        let modulo = bin(a.clone(), Operator::Modulo, int(123));
        assert!(cannot_fail(&bin(modulo, Operator::Eq, int(0))));
        for divisor in [int(0), int(-1), b.clone()] {
            let d = bin(a.clone(), Operator::Divide, divisor);
            assert!(!cannot_fail(&bin(d, Operator::Gt, int(1))));
        }
        assert!(!cannot_fail(&bin(
            bin(a.clone(), Operator::Plus, b),
            Operator::Gt,
            int(1)
        )));
    }
}
