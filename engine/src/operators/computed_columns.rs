//! Computed columns (Flink `name AS expr` in `CREATE TABLE`): filled from the other columns of
//! each batch as it is read, before watermarks are tracked, so a computed column can be the
//! relation's event time (`WATERMARK FOR computed_col …`). Each expression sees only the columns
//! it reads (a `CASE` filters its whole input per branch: the wide rest is never copied).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;

use super::{OpContext, evaluate};
use crate::error::Result;

/// One computed column: where it goes, the input columns it reads, and its expression over
/// just those columns.
struct Computed {
    index: usize,
    reads: Vec<usize>,
    expr: Arc<dyn PhysicalExpr>,
}

/// `expr` over only the columns it reads, and their indices in the full batch.
fn narrowed(expr: &Arc<dyn PhysicalExpr>) -> Result<(Vec<usize>, Arc<dyn PhysicalExpr>)> {
    let mut reads: Vec<usize> = collect_columns(expr).iter().map(|c| c.index()).collect();
    reads.sort_unstable();
    reads.dedup();
    let expr = expr
        .clone()
        .transform(|e| {
            let any: &dyn std::any::Any = e.as_ref();
            Ok(match any.downcast_ref::<Column>() {
                Some(c) => {
                    let at = reads.binary_search(&c.index()).unwrap_or_default();
                    Transformed::yes(Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>)
                }
                None => Transformed::no(e),
            })
        })?
        .data;
    Ok((reads, expr))
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
                let (reads, expr) = narrowed(&expr)?;
                Ok(Computed { index, reads, expr })
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
            let a = evaluate(&c.expr, &batch.project(&c.reads)?, ctx)?;
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
