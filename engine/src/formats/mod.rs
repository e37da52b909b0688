//! Record formats: turning Kafka-style key/value bytes into Arrow batches of a relation's layout
//! and back. JSON, DELIMITED, KAFKA (primitive big-endian) and NONE, with ksqlDB's conventions
//! (case-insensitive JSON fields, wrapped single values, windowed key suffixes).

pub mod convert;
pub mod debezium;
pub mod delimited;
pub mod text;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int8Array, Int32Array, Int64Array, RecordBatch,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use riffle_sql::ast::{HeaderSpec, SourceKind};
use riffle_sql::catalog::{FormatKind, FormatSpec, SourceDef, WindowInfo};
use riffle_sql::plan::{ChangeOp, StreamSchema};
use riffle_udfs::scalar::java_time::JavaFormat;
use serde_json::Value;

use self::convert::{b64_encode, build_column, lookup};
use crate::processing_log::{ErrorKind, ErrorRecord};
use crate::record::{Record, SourceRecord};

/// Decodes records of one relation into batches.
#[derive(Debug, Clone)]
pub struct RecordDecoder {
    schema: StreamSchema,
    key_types: Vec<(String, DataType)>,
    value_types: Vec<(String, DataType, Option<HeaderSpec>)>,
    key_format: FormatSpec,
    value_format: FormatSpec,
    window: Option<WindowInfo>,
    timestamp: Option<(usize, Option<JavaFormat>)>,
    query: String,
}

/// A decoded batch plus the records that could not be decoded.
pub struct Decoded {
    /// Rows in the relation's layout.
    pub batch: RecordBatch,
    /// One entry per dropped record.
    pub errors: Vec<ErrorRecord>,
}

fn key_suffix_len(window: &Option<WindowInfo>) -> usize {
    match window {
        None => 0,
        Some(w) if w.window_type.key_has_end() => 16,
        Some(_) => 8,
    }
}

fn primitive_from_bytes(b: &[u8], dt: &DataType) -> Result<Value, String> {
    let fixed = |n: usize| -> Result<&[u8], String> {
        if b.len() == n {
            Ok(b)
        } else {
            Err(format!(
                "expected {n} bytes for a KAFKA-format {dt}, got {}",
                b.len()
            ))
        }
    };
    Ok(match dt {
        DataType::Int32 => {
            let v = i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| "bad length")?);
            Value::from(v)
        }
        DataType::Int64 | DataType::Timestamp(..) => {
            let v = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| "bad length")?);
            Value::from(v)
        }
        DataType::Float64 => {
            let v = f64::from_be_bytes(fixed(8)?.try_into().map_err(|_| "bad length")?);
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        DataType::Utf8 => {
            Value::String(String::from_utf8(b.to_vec()).map_err(|e| format!("invalid UTF-8: {e}"))?)
        }
        DataType::Binary => Value::String(b64_encode(b)),
        other => return Err(format!("the KAFKA format does not support {other}")),
    })
}

/// Reads the cells of a key or value from bytes. `columns` are the expected names and types.
fn cells_from_bytes(
    bytes: &[u8],
    format: &FormatSpec,
    columns: &[(String, DataType)],
    unwrap_single: bool,
) -> Result<Vec<Option<Value>>, String> {
    match format.kind {
        FormatKind::None => Ok(vec![None; columns.len()]),
        FormatKind::Kafka => match columns.len() {
            0 => Ok(vec![]),
            1 => Ok(vec![Some(primitive_from_bytes(bytes, &columns[0].1)?)]),
            n => Err(format!(
                "the KAFKA format supports one column, this relation has {n}"
            )),
        },
        FormatKind::Delimited => {
            let fields = delimited::parse_line(bytes, format.delimiter)?;
            if fields.len() != columns.len() {
                return Err(format!(
                    "unexpected field count: got {} delimited field(s), expected {}",
                    fields.len(),
                    columns.len()
                ));
            }
            Ok(fields.into_iter().map(|f| f.map(Value::String)).collect())
        }
        FormatKind::Json | FormatKind::DebeziumJson => {
            // Like Jackson, read the first JSON value and ignore anything after it.
            let v: Value = serde_json::Deserializer::from_slice(bytes)
                .into_iter::<Value>()
                .next()
                .ok_or_else(|| "empty JSON".to_string())?
                .map_err(|e| format!("invalid JSON: {e}"))?;
            if columns.len() == 1 && unwrap_single {
                return Ok(vec![Some(v)]);
            }
            match v {
                Value::Object(obj) => Ok(columns
                    .iter()
                    .map(|(n, _)| lookup(&obj, n).cloned())
                    .collect()),
                Value::Null => Ok(vec![None; columns.len()]),
                other => Err(format!("expected a JSON object, got {other}")),
            }
        }
        FormatKind::Avro | FormatKind::Protobuf | FormatKind::JsonSr => Err(format!(
            "the {} format is not supported",
            format.kind.name()
        )),
    }
}

impl RecordDecoder {
    /// A decoder for a relation read by `query`.
    pub fn new(def: &SourceDef, schema: StreamSchema, query: &str) -> Result<Self, String> {
        let key_types = def
            .key_columns()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect();
        let value_types = def
            .value_columns()
            .map(|c| (c.name.clone(), c.data_type.clone(), c.header.clone()))
            .collect::<Vec<_>>();
        let timestamp = match &def.timestamp {
            None => None,
            Some(col) => {
                let idx = schema.arrow.index_of(col).map_err(|_| {
                    format!("timestamp column {col} is not a column of {}", def.name)
                })?;
                let fmt = def
                    .timestamp_format
                    .as_deref()
                    .map(JavaFormat::new)
                    .transpose()?;
                Some((idx, fmt))
            }
        };
        Ok(RecordDecoder {
            schema,
            key_types,
            value_types,
            key_format: def.key_format.clone(),
            value_format: def.value_format.clone(),
            window: def.window,
            timestamp,
            query: query.to_string(),
        })
    }

    /// The layout produced.
    pub fn schema(&self) -> &StreamSchema {
        &self.schema
    }

    /// The key cells of a record, and for windowed keys the window bounds from the key suffix.
    fn decode_key(
        &self,
        r: &Record,
        suffix: usize,
        window: &mut (i64, i64),
    ) -> Result<Vec<Option<Value>>, String> {
        let Some(k) = &r.key else {
            return Ok(vec![None; self.key_types.len()]);
        };
        if suffix == 0 {
            return cells_from_bytes(k, &self.key_format, &self.key_types, true);
        }
        if k.len() < suffix {
            return Err("windowed key is too short".to_string());
        }
        let (inner, tail) = k.split_at(k.len() - suffix);
        let read = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        *window = if suffix == 16 {
            (read(&tail[8..16]), read(&tail[0..8]))
        } else {
            let start = read(tail);
            (
                start,
                start + self.window.and_then(|w| w.size_ms).unwrap_or(0),
            )
        };
        cells_from_bytes(inner, &self.key_format, &self.key_types, true)
    }

    /// Decodes records; undecodable ones are dropped and reported.
    pub fn decode(&self, records: &[SourceRecord]) -> Decoded {
        let mut errors = Vec::new();
        let kcols = self.key_types.len();
        let body_cols: Vec<(String, DataType)> = self
            .value_types
            .iter()
            .filter(|(_, _, h)| h.is_none())
            .map(|(n, t, _)| (n.clone(), t.clone()))
            .collect();
        let mut key_cells: Vec<Vec<Option<Value>>> = vec![Vec::with_capacity(records.len()); kcols];
        let mut value_cells: Vec<Vec<Option<Value>>> =
            vec![Vec::with_capacity(records.len()); self.value_types.len()];
        let mut kept: Vec<&SourceRecord> = Vec::with_capacity(records.len());
        let mut windows: Vec<(i64, i64)> = Vec::new();
        let mut ops: Vec<i8> = Vec::with_capacity(records.len());
        let suffix = key_suffix_len(&self.window);
        let unwrap_single = self.value_format.wrap_single_value == Some(false);
        let debezium = (self.value_format.kind == FormatKind::DebeziumJson).then(|| {
            let keys: Vec<String> = self.key_types.iter().map(|(n, _)| n.clone()).collect();
            let values: Vec<String> = body_cols.iter().map(|(n, _)| n.clone()).collect();
            (keys, values)
        });
        for sr in records {
            let r = &sr.record;
            let mut window = (0i64, 0i64);
            let (keys, values, op) = match &debezium {
                Some((key_names, value_names)) => match debezium::decode_change(
                    r.key.as_deref(),
                    r.value.as_deref(),
                    key_names,
                    value_names,
                ) {
                    Ok((k, v, op)) => (Ok(k), Ok(v), op),
                    Err(e) => (Err(e), Ok(vec![]), ChangeOp::Insert),
                },
                None => {
                    let keys = self.decode_key(r, suffix, &mut window);
                    let (values, op) = match &r.value {
                        None => (Ok(vec![None; body_cols.len()]), ChangeOp::Delete),
                        Some(v) => (
                            cells_from_bytes(v, &self.value_format, &body_cols, unwrap_single),
                            ChangeOp::Insert,
                        ),
                    };
                    (keys, values, op)
                }
            };
            match (keys, values) {
                (Ok(k), Ok(v)) => {
                    for (i, c) in k.into_iter().enumerate() {
                        key_cells[i].push(c);
                    }
                    let mut body = v.into_iter();
                    for (i, (_, _, h)) in self.value_types.iter().enumerate() {
                        let cell = match h {
                            None => body.next().flatten(),
                            Some(spec) => header_cell(r, spec),
                        };
                        value_cells[i].push(cell);
                    }
                    windows.push(window);
                    ops.push(op as i8);
                    kept.push(sr);
                }
                (Err(e), _) | (_, Err(e)) => {
                    errors.push(
                        ErrorRecord::new(&self.query, ErrorKind::Deserialization, e).with_record(
                            &sr.topic,
                            sr.partition,
                            sr.offset,
                            r,
                        ),
                    );
                }
            }
        }
        let mut row_errors: Vec<(usize, String)> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.arrow.fields().len());
        for (i, (_, dt)) in self.key_types.iter().enumerate() {
            let refs: Vec<Option<&Value>> = key_cells[i].iter().map(|c| c.as_ref()).collect();
            columns.push(build_column(&refs, dt, &mut row_errors));
        }
        for (i, (_, dt, _)) in self.value_types.iter().enumerate() {
            let refs: Vec<Option<&Value>> = value_cells[i].iter().map(|c| c.as_ref()).collect();
            columns.push(build_column(&refs, dt, &mut row_errors));
        }
        if self.schema.windowed {
            columns.push(Arc::new(Int64Array::from_iter_values(
                windows.iter().map(|w| w.0),
            )));
            columns.push(Arc::new(Int64Array::from_iter_values(
                windows.iter().map(|w| w.1),
            )));
        }
        let mut rowtime: Vec<i64> = kept.iter().map(|r| r.record.timestamp).collect();
        let mut bad: Vec<Option<String>> = vec![None; kept.len()];
        for (row, e) in row_errors {
            bad[row].get_or_insert(e);
        }
        if let Some((idx, fmt)) = &self.timestamp {
            let col = &columns[*idx];
            for (row, ts) in rowtime.iter_mut().enumerate() {
                if bad[row].is_some() || ops[row] == ChangeOp::Delete as i8 {
                    continue;
                }
                match extract_timestamp(col, row, fmt.as_ref()) {
                    Ok(t) => *ts = t,
                    Err(e) => bad[row] = Some(format!("invalid timestamp: {e}")),
                }
            }
        }
        columns.push(Arc::new(Int64Array::from(rowtime)));
        columns.push(Arc::new(Int32Array::from_iter_values(
            kept.iter().map(|r| r.partition),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            kept.iter().map(|r| r.offset),
        )));
        columns.push(Arc::new(Int8Array::from(ops)));
        let batch = match RecordBatch::try_new(self.schema.arrow.clone(), columns) {
            Ok(b) => b,
            Err(e) => {
                for sr in &kept {
                    errors.push(
                        ErrorRecord::new(&self.query, ErrorKind::Deserialization, e.to_string())
                            .with_record(&sr.topic, sr.partition, sr.offset, &sr.record),
                    );
                }
                return Decoded {
                    batch: RecordBatch::new_empty(self.schema.arrow.clone()),
                    errors,
                };
            }
        };
        if bad.iter().any(Option::is_some) {
            for (row, reason) in bad.iter().enumerate() {
                if let Some(reason) = reason {
                    let sr = kept[row];
                    let kind = if reason.starts_with("invalid timestamp") {
                        ErrorKind::Timestamp
                    } else {
                        ErrorKind::Deserialization
                    };
                    errors.push(
                        ErrorRecord::new(&self.query, kind, reason.clone()).with_record(
                            &sr.topic,
                            sr.partition,
                            sr.offset,
                            &sr.record,
                        ),
                    );
                }
            }
            let keep: BooleanArray = bad.iter().map(|b| Some(b.is_none())).collect();
            let batch = filter_record_batch(&batch, &keep).unwrap_or(batch);
            return Decoded { batch, errors };
        }
        Decoded { batch, errors }
    }
}

fn header_cell(r: &Record, spec: &HeaderSpec) -> Option<Value> {
    match spec {
        HeaderSpec::Key(k) => r
            .headers
            .iter()
            .rev()
            .find(|(hk, _)| hk == k)
            .and_then(|(_, v)| v.as_ref().map(|v| Value::String(b64_encode(v)))),
        HeaderSpec::All => Some(Value::Array(
            r.headers
                .iter()
                .map(|(k, v)| {
                    serde_json::json!({"KEY": k, "VALUE": v.as_ref().map(|v| b64_encode(v))})
                })
                .collect(),
        )),
    }
}

/// Reads an event time from a column value: BIGINT millis, TIMESTAMP, or text in `fmt`.
pub fn extract_timestamp(
    col: &ArrayRef,
    row: usize,
    fmt: Option<&JavaFormat>,
) -> Result<i64, String> {
    if col.is_null(row) {
        return Err("the timestamp column is NULL".into());
    }
    let ts = match col.data_type() {
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row) as i64,
        DataType::Float64 => col.as_primitive::<Float64Type>().value(row) as i64,
        DataType::Timestamp(..) => {
            let c = datafusion::arrow::compute::cast(col, &DataType::Int64)
                .map_err(|e| e.to_string())?;
            c.as_primitive::<Int64Type>().value(row)
        }
        DataType::Utf8 => {
            let s = col.as_string::<i32>().value(row);
            match fmt {
                Some(f) => f.parse_millis(s, &chrono_tz::Tz::UTC)?,
                None => s
                    .parse::<i64>()
                    .map_err(|_| format!("'{s}' is not epoch milliseconds"))?,
            }
        }
        other => return Err(format!("a {other} column cannot hold event time")),
    };
    if ts < 0 {
        return Err(format!("negative timestamp {ts}"));
    }
    Ok(ts)
}

/// Encodes rows of a relation's layout into records.
#[derive(Debug, Clone)]
pub struct RecordEncoder {
    key_format: FormatSpec,
    value_format: FormatSpec,
    key_count: usize,
    value_count: usize,
    value_names: Vec<String>,
    key_names: Vec<String>,
    window: Option<WindowInfo>,
    kind: SourceKind,
}

impl RecordEncoder {
    /// An encoder writing `def`'s formats for batches of `schema`.
    pub fn new(def: &SourceDef, schema: &StreamSchema) -> Result<Self, String> {
        let encoder = RecordEncoder {
            key_format: def.key_format.clone(),
            value_format: def.value_format.clone(),
            key_count: schema.key_count,
            value_count: schema.value_count,
            value_names: schema
                .value_fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            key_names: schema
                .key_fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
            window: def.window,
            kind: def.kind,
        };
        for (fmt, n, what) in [
            (&encoder.key_format, encoder.key_count, "key"),
            (&encoder.value_format, encoder.value_count, "value"),
        ] {
            if fmt.kind == FormatKind::Kafka && n > 1 {
                return Err(format!(
                    "the KAFKA format can hold one {what} column, but {} has {n}; use JSON or DELIMITED",
                    def.name
                ));
            }
        }
        Ok(encoder)
    }

    /// Whether the relation is a table (changelog) rather than a stream.
    pub fn is_table(&self) -> bool {
        self.kind == SourceKind::Table
    }

    fn encode_part(
        &self,
        batch: &RecordBatch,
        row: usize,
        range: std::ops::Range<usize>,
        names: &[String],
        format: &FormatSpec,
        unwrap_single: bool,
    ) -> Result<Option<Vec<u8>>, String> {
        let cols: Vec<&ArrayRef> = range.map(|i| batch.column(i)).collect();
        match format.kind {
            FormatKind::None => Ok(None),
            _ if cols.is_empty() => Ok(None),
            FormatKind::Kafka => {
                let a = cols[0];
                if a.is_null(row) {
                    return Ok(None);
                }
                Ok(Some(match a.data_type() {
                    DataType::Int32 => a
                        .as_primitive::<Int32Type>()
                        .value(row)
                        .to_be_bytes()
                        .to_vec(),
                    DataType::Int64 => a
                        .as_primitive::<Int64Type>()
                        .value(row)
                        .to_be_bytes()
                        .to_vec(),
                    DataType::Float64 => a
                        .as_primitive::<Float64Type>()
                        .value(row)
                        .to_be_bytes()
                        .to_vec(),
                    DataType::Utf8 => a.as_string::<i32>().value(row).as_bytes().to_vec(),
                    DataType::Binary => a.as_binary::<i32>().value(row).to_vec(),
                    other => return Err(format!("the KAFKA format does not support {other}")),
                }))
            }
            FormatKind::Delimited => {
                let fields: Vec<Option<String>> =
                    cols.iter().map(|c| text::plain_text(c, row)).collect();
                if cols.len() == 1 && fields[0].is_none() {
                    return Ok(None);
                }
                Ok(Some(
                    delimited::write_line(&fields, format.delimiter).into_bytes(),
                ))
            }
            FormatKind::Json | FormatKind::DebeziumJson => {
                let mut out = String::new();
                if cols.len() == 1 && unwrap_single {
                    if cols[0].is_null(row) {
                        return Ok(None);
                    }
                    text::write_json(&mut out, cols[0], row);
                } else {
                    out.push('{');
                    for (i, (c, n)) in cols.iter().zip(names).enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&serde_json::to_string(n).unwrap_or_default());
                        out.push(':');
                        text::write_json(&mut out, c, row);
                    }
                    out.push('}');
                }
                Ok(Some(out.into_bytes()))
            }
            other => Err(format!("the {} format is not supported", other.name())),
        }
    }

    /// Encodes the key of a row (with the window suffix for windowed relations).
    pub fn encode_key(
        &self,
        batch: &RecordBatch,
        row: usize,
        window: Option<(i64, i64)>,
    ) -> Result<Option<Vec<u8>>, String> {
        let all_null =
            self.key_count > 1 && (0..self.key_count).all(|c| batch.column(c).is_null(row));
        let inner = if all_null {
            // A compound key whose every column is NULL is a null key.
            None
        } else {
            self.encode_part(
                batch,
                row,
                0..self.key_count,
                &self.key_names,
                &self.key_format,
                true,
            )?
        };
        match (self.window, window) {
            (Some(w), Some((start, end))) => {
                let mut k = inner.unwrap_or_default();
                if w.window_type.key_has_end() {
                    k.extend_from_slice(&end.to_be_bytes());
                }
                k.extend_from_slice(&start.to_be_bytes());
                Ok(Some(k))
            }
            _ => Ok(inner),
        }
    }

    /// Encodes the value of a row.
    pub fn encode_value(&self, batch: &RecordBatch, row: usize) -> Result<Option<Vec<u8>>, String> {
        let unwrap = self.value_format.wrap_single_value == Some(false);
        self.encode_part(
            batch,
            row,
            self.key_count..self.key_count + self.value_count,
            &self.value_names,
            &self.value_format,
            unwrap,
        )
    }
}
