//! Projection: computes the key and value columns of the next layout from expressions; window
//! bounds, event time, source coordinates and change kind pass through unchanged.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::kernels::boolean::and;
use datafusion::arrow::compute::{cast, is_not_null};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use riffle_sql::plan::StreamSchema;

use super::{OpContext, Operator, evaluate, filter, is_pick};
use crate::error::Result;

/// Computes new columns.
pub struct ProjectOp {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    input: StreamSchema,
    output: StreamSchema,
    drop_null_keys: bool,
}

impl ProjectOp {
    /// A projection from `input` to `output` layouts.
    pub fn new(
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        input: StreamSchema,
        output: StreamSchema,
        drop_null_keys: bool,
    ) -> Self {
        ProjectOp {
            exprs,
            input,
            output,
            drop_null_keys,
        }
    }
}

impl ProjectOp {
    /// Whether the projection may drop rows (those whose new key is NULL).
    pub fn drops_rows(&self) -> bool {
        self.drop_null_keys && self.output.key_count > 0
    }

    /// Whether every expression only picks existing data (columns, struct fields, literals):
    /// computing it for rows a filter would drop costs nothing and cannot fail.
    pub fn only_picks(&self) -> bool {
        self.exprs
            .iter()
            .all(|e| is_pick(e) || (e.as_ref() as &dyn std::any::Any).is::<Literal>())
    }
}

impl Operator for ProjectOp {
    fn name(&self) -> &'static str {
        "Project"
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output.arrow.fields().len());
        for (e, f) in self.exprs.iter().zip(self.output.arrow.fields()) {
            let a = evaluate(e, &batch, ctx)?;
            let a = if a.data_type() == f.data_type() {
                a
            } else {
                cast(&a, f.data_type())?
            };
            columns.push(a);
        }
        if let (Some(ws), true) = (self.input.window_start(), self.output.windowed) {
            columns.push(batch.column(ws).clone());
            columns.push(batch.column(ws + 1).clone());
        }
        let sys = self.input.rowtime();
        for i in 0..4 {
            columns.push(batch.column(sys + i).clone());
        }
        let out = RecordBatch::try_new(self.output.arrow.clone(), columns)?;
        if self.drops_rows() && (0..self.output.key_count).any(|k| out.column(k).null_count() > 0) {
            let mut mask = is_not_null(out.column(0))?;
            for k in 1..self.output.key_count {
                mask = and(&mask, &is_not_null(out.column(k))?)?;
            }
            return Ok(vec![filter(&out, &mask)?]);
        }
        Ok(vec![out])
    }
}
