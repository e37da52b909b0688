//! Turns rows of state (keys, accumulator states, stored input rows) into bytes for RocksDB and
//! back, with Arrow's row format: a whole batch of rows is encoded or decoded in one call.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, Rows, SortField};

use crate::error::{EngineError, Result};

/// Encodes rows of fixed column types to bytes and decodes them again.
#[derive(Debug)]
pub struct RowCodec {
    converter: RowConverter,
}

impl RowCodec {
    /// A codec for rows of these column types.
    pub fn new(types: &[DataType]) -> Result<Self> {
        let fields = types.iter().map(|t| SortField::new(t.clone())).collect();
        let converter = RowConverter::new(fields).map_err(|e| {
            EngineError::DataFusion(format!("this state cannot be stored in RocksDB: {e}"))
        })?;
        Ok(RowCodec { converter })
    }

    /// The rows of `columns` (all of one length); `rows.row(i).as_ref()` is row `i`'s bytes.
    pub fn encode(&self, columns: &[ArrayRef]) -> Result<Rows> {
        Ok(self.converter.convert_columns(columns)?)
    }

    /// Columns holding the rows whose bytes are given, in order.
    pub fn decode<'a>(&self, rows: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let parser = self.converter.parser();
        let parsed: Vec<_> = rows.into_iter().map(|b| parser.parse(b)).collect();
        Ok(self.converter.convert_rows(parsed)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::DataType;

    use super::RowCodec;

    #[test]
    fn rows_round_trip() {
        let codec = RowCodec::new(&[DataType::Utf8, DataType::Int64]).unwrap();
        let a = Arc::new(StringArray::from(vec![Some("x"), None, Some("zz")])) as _;
        let b = Arc::new(Int64Array::from(vec![1, 2, 3])) as _;
        let rows = codec.encode(&[a, b]).unwrap();
        let bytes: Vec<Vec<u8>> = (0..3).map(|i| rows.row(i).as_ref().to_vec()).collect();
        let back = codec
            .decode([bytes[2].as_slice(), bytes[0].as_slice()])
            .unwrap();
        let s = back[0].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.value(0), "zz");
        assert_eq!(s.value(1), "x");
        let n = back[1].as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(n.values().to_vec(), vec![3, 1]);
    }
}
