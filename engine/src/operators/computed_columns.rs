//! Computed columns (Flink `name AS expr` in `CREATE TABLE`): filled from the other columns of
//! each batch as it is read, before watermarks are tracked, so a computed column can be the
//! relation's event time (`WATERMARK FOR computed_col …`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::physical_expr::PhysicalExpr;

use super::{OpContext, evaluate};
use crate::error::Result;

/// Fills computed columns and, when event time is a computed column, `ROWTIME`.
pub struct ComputedColumns {
    /// (column index, expression) for each computed column.
    columns: Vec<(usize, Arc<dyn PhysicalExpr>)>,
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
    ) -> Self {
        ComputedColumns {
            columns,
            time_column,
            rowtime,
        }
    }

    /// The batch with its computed columns (and event time) filled in.
    pub fn apply(&self, batch: RecordBatch, ctx: &OpContext) -> Result<RecordBatch> {
        let schema = batch.schema();
        let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
        for (idx, expr) in &self.columns {
            let a = evaluate(expr, &batch, ctx)?;
            let want = schema.field(*idx).data_type();
            cols[*idx] = if a.data_type() == want {
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
