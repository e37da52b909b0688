//! Whole-state snapshots for operators whose state is a set of buffered rows plus a little
//! bookkeeping (joins, session windows, table materialization, pattern matching): the rows as
//! Arrow IPC streams and the bookkeeping as JSON, in one value of the operator's state table,
//! rewritten at each checkpoint barrier. Aggregations keep their state incrementally instead
//! (see `group_aggregate` and `window_aggregate`).

use std::io::Cursor;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{EngineError, Result};

fn damaged(what: impl std::fmt::Display) -> EngineError {
    EngineError::DataFusion(format!("damaged operator snapshot: {what}"))
}

/// Encodes bookkeeping and row batches (each batch may have its own schema).
pub fn encode(meta: &impl Serialize, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(meta).map_err(damaged)?;
    let mut out = Vec::with_capacity(json.len() + 16);
    out.extend_from_slice(&(json.len() as u64).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&(batches.len() as u64).to_be_bytes());
    for b in batches {
        let mut ipc = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut ipc, &b.schema())?;
            w.write(b)?;
            w.finish()?;
        }
        out.extend_from_slice(&(ipc.len() as u64).to_be_bytes());
        out.extend_from_slice(&ipc);
    }
    Ok(out)
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if bytes.len() < n {
        return Err(damaged("truncated"));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn take_len(bytes: &mut &[u8]) -> Result<usize> {
    let b = take(bytes, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    usize::try_from(u64::from_be_bytes(a)).map_err(damaged)
}

/// Decodes what [`encode`] wrote.
pub fn decode<T: DeserializeOwned>(mut bytes: &[u8]) -> Result<(T, Vec<RecordBatch>)> {
    let n = take_len(&mut bytes)?;
    let meta = serde_json::from_slice(take(&mut bytes, n)?).map_err(damaged)?;
    let count = take_len(&mut bytes)?;
    let mut batches = Vec::with_capacity(count);
    for _ in 0..count {
        let n = take_len(&mut bytes)?;
        let reader = StreamReader::try_new(Cursor::new(take(&mut bytes, n)?), None)?;
        for b in reader {
            batches.push(b?);
        }
    }
    Ok((meta, batches))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};

    use super::{decode, encode};

    #[test]
    fn batches_of_different_schemas_round_trip() {
        let a = RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1, 2])) as _)])
            .unwrap();
        let b = RecordBatch::try_from_iter([("s", Arc::new(StringArray::from(vec!["x"])) as _)])
            .unwrap();
        let bytes = encode(&(7u64, vec![1u32, 2]), &[a.clone(), b.clone()]).unwrap();
        let (meta, batches): ((u64, Vec<u32>), _) = decode(&bytes).unwrap();
        assert_eq!(meta, (7, vec![1, 2]));
        assert_eq!(batches, vec![a, b]);
        assert!(decode::<u64>(&bytes[..bytes.len() - 3]).is_err());
    }
}
