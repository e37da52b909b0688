//! Row storage and output assembly of the stream-table and table-table joins: rows are kept as
//! one-row slices of their input batches, and output rows are assembled column by column from
//! the key source, the left row (or NULLs) and the right row (or NULLs).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Int8Array, Int32Array, Int64Array, RecordBatch, new_null_array,
};
use datafusion::arrow::compute::concat;
use riffle_sql::plan::{ChangeOp, StreamSchema};

use crate::error::Result;

/// One output row of a join.
pub struct JoinedRow {
    /// One-row batch whose leading columns are the output key.
    pub key_from: RecordBatch,
    /// Left input row, or `None` for NULL padding.
    pub left: Option<RecordBatch>,
    /// Right input row, or `None` for NULL padding.
    pub right: Option<RecordBatch>,
    /// Event time of the result.
    pub rowtime: i64,
    /// Change kind.
    pub op: ChangeOp,
}

/// Assembles join output batches.
pub struct JoinOutput {
    schema: StreamSchema,
    left_input_keys: usize,
    left_values: usize,
    right_input_keys: usize,
    right_values: usize,
}

impl JoinOutput {
    /// An assembler for `schema` given the two input layouts.
    pub fn new(
        schema: StreamSchema,
        left: &StreamSchema,
        right: &StreamSchema,
        left_values: usize,
    ) -> Self {
        JoinOutput {
            schema,
            left_input_keys: left.key_count,
            left_values,
            right_input_keys: right.key_count,
            right_values: right.value_count,
        }
    }

    /// Builds a batch from joined rows.
    pub fn build(&self, rows: &[JoinedRow]) -> Result<Option<RecordBatch>> {
        if rows.is_empty() {
            return Ok(None);
        }
        let fields = self.schema.arrow.fields();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        let mut col = 0;
        let gather =
            |pick: &dyn Fn(&JoinedRow) -> Option<ArrayRef>, col: usize| -> Result<ArrayRef> {
                let dt = fields[col].data_type();
                let parts: Vec<ArrayRef> = rows
                    .iter()
                    .map(|r| pick(r).unwrap_or_else(|| new_null_array(dt, 1)))
                    .collect();
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                Ok(concat(&refs)?)
            };
        for k in 0..self.schema.key_count {
            columns.push(gather(
                &|r: &JoinedRow| Some(r.key_from.column(k).clone()),
                col,
            )?);
            col += 1;
        }
        for v in 0..self.left_values {
            let idx = self.left_input_keys + v;
            columns.push(gather(
                &|r: &JoinedRow| r.left.as_ref().map(|b| b.column(idx).clone()),
                col,
            )?);
            col += 1;
        }
        for v in 0..self.right_values {
            let idx = self.right_input_keys + v;
            columns.push(gather(
                &|r: &JoinedRow| r.right.as_ref().map(|b| b.column(idx).clone()),
                col,
            )?);
            col += 1;
        }
        let _ = col;
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.rowtime),
        )));
        columns.push(Arc::new(Int32Array::from(vec![0; rows.len()])));
        columns.push(Arc::new(Int64Array::from(vec![0; rows.len()])));
        columns.push(Arc::new(Int8Array::from_iter_values(
            rows.iter().map(|r| r.op as i8),
        )));
        Ok(Some(RecordBatch::try_new(
            self.schema.arrow.clone(),
            columns,
        )?))
    }
}
