//! Computed columns (Flink `name AS expr` in `CREATE TABLE`): filled from the other columns of
//! each batch as it is read, before watermarks are tracked, so a computed column can be the
//! relation's event time (`WATERMARK FOR computed_col …`). Each expression runs over just the
//! columns and struct fields it reads, picked zero-copy (a `CASE` filters its whole input per
//! branch: the wide rest of the row is never copied).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, RecordBatchOptions,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;

use super::{OpContext, evaluate, is_pick};
use crate::error::Result;

/// One computed column: where it goes, the values it picks from the input (columns and struct
/// fields, zero-copy), and its expression over just those.
struct Computed {
    index: usize,
    picks: Vec<Arc<dyn PhysicalExpr>>,
    expr: Arc<dyn PhysicalExpr>,
}

/// `expr` rewritten over the values it picks (column `i` of the narrow input is `picks[i]`);
/// the caller sets where the column goes.
fn narrowed(expr: &Arc<dyn PhysicalExpr>) -> Result<Computed> {
    let mut picks: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
    let expr = expr
        .clone()
        .transform_down(|e| {
            if !is_pick(&e) {
                return Ok(Transformed::no(e));
            }
            let at = match picks.iter().position(|p| **p == *e) {
                Some(i) => i,
                None => {
                    picks.push(e.clone());
                    picks.len() - 1
                }
            };
            let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(&format!("__PICK{at}"), at));
            Ok(Transformed::new(column, true, TreeNodeRecursion::Jump))
        })?
        .data;
    Ok(Computed {
        index: 0,
        picks,
        expr,
    })
}

/// Fills computed columns and, when event time is a computed column, `ROWTIME`.
pub struct ComputedColumns {
    /// Each computed column.
    columns: Vec<Computed>,
    /// Index of the computed event-time column, if event time is computed.
    time_column: Option<usize>,
    /// Index of `ROWTIME`.
    rowtime: usize,
}

impl ComputedColumns {
    /// Computes `columns` (by index); `time_column` sets `ROWTIME` at index `rowtime`.
    pub fn new(
        columns: Vec<(usize, Arc<dyn PhysicalExpr>)>,
        time_column: Option<usize>,
        rowtime: usize,
    ) -> Result<Self> {
        let columns = columns
            .into_iter()
            .map(|(index, expr)| {
                Ok(Computed {
                    index,
                    ..narrowed(&expr)?
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ComputedColumns {
            columns,
            time_column,
            rowtime,
        })
    }

    /// The batch with its computed columns (and event time) filled in.
    pub fn apply(&self, batch: RecordBatch, ctx: &OpContext) -> Result<RecordBatch> {
        let schema = batch.schema();
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        for c in &self.columns {
            let picked = c
                .picks
                .iter()
                .map(|p| evaluate(p, &batch, ctx))
                .collect::<Result<Vec<_>>>()?;
            let fields: Vec<Field> = picked
                .iter()
                .enumerate()
                .map(|(i, a)| Field::new(format!("__PICK{i}"), a.data_type().clone(), true))
                .collect();
            let narrow = RecordBatch::try_new_with_options(
                Arc::new(Schema::new(fields)),
                picked,
                &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )?;
            let a = evaluate(&c.expr, &narrow, ctx)?;
            let want = schema.field(c.index).data_type();
            cols[c.index] = if a.data_type() == want {
                a
            } else {
                cast(&a, want)?
            };
        }
        if let Some(t) = self.time_column {
            let millis = match cols[t].data_type() {
                DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => {
                    cast(&cols[t], &DataType::Int64)?
                }
                _ => cast(
                    &cast(&cols[t], &DataType::Timestamp(TimeUnit::Millisecond, None))?,
                    &DataType::Int64,
                )?,
            };
            let millis = millis.as_primitive::<Int64Type>();
            cols[self.rowtime] = if millis.null_count() == 0 {
                Arc::new(millis.clone())
            } else {
                let valid = datafusion::arrow::compute::is_not_null(millis)?;
                let old: &Int64Array = cols[self.rowtime].as_primitive::<Int64Type>();
                zip(&valid, millis, old)?
            };
        }
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}
