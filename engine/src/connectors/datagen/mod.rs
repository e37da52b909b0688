//! Data generator connector (`connector='datagen'`): schema-driven rows built directly as Arrow
//! batches. Deterministic: each column draws from its own generator seeded from the query's seed
//! and the column name, so the same seed yields the same rows whatever the batch sizes. Options
//! follow Flink's datagen connector: `rows`, `rate`, `seed`, and per column
//! `fields.<col>.kind` (`random`/`sequence`), `min`, `max`, `length`, `start`, `step`, `values`
//! (comma-separated choices) and `null-rate`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int8Array,
    Int32Array, Int32Builder, Int64Array, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use riffle_sql::catalog::{DatagenOptions, SourceDef};
use riffle_sql::plan::StreamSchema;

use crate::connectors::Poll;
use crate::error::{EngineError, Result};
use crate::formats::extract_timestamp;

/// How one column is generated.
#[derive(Debug)]
struct ColumnGen {
    data_type: DataType,
    rng: ChaCha8Rng,
    sequence: bool,
    min: f64,
    max: f64,
    start: i64,
    step: i64,
    length: usize,
    values: Vec<String>,
    null_rate: f64,
}

fn opt_f64(o: &BTreeMap<String, String>, k: &str, col: &str) -> Result<Option<f64>> {
    o.get(k)
        .map(|v| {
            v.trim().parse::<f64>().map_err(|_| {
                EngineError::Connector(format!(
                    "datagen option fields.{col}.{k} must be a number, got '{v}'"
                ))
            })
        })
        .transpose()
}

impl ColumnGen {
    fn new(
        name: &str,
        data_type: &DataType,
        opts: Option<&BTreeMap<String, String>>,
        seed: u64,
    ) -> Result<Self> {
        let empty = BTreeMap::new();
        let o = opts.unwrap_or(&empty);
        let mut h: u64 = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        let (default_min, default_max) = match data_type {
            DataType::Int32 | DataType::Int64 => (0.0, 1000.0),
            _ => (0.0, 100.0),
        };
        Ok(ColumnGen {
            data_type: data_type.clone(),
            rng: ChaCha8Rng::seed_from_u64(h),
            sequence: o
                .get("kind")
                .is_some_and(|k| k.eq_ignore_ascii_case("sequence")),
            min: opt_f64(o, "min", name)?.unwrap_or(default_min),
            max: opt_f64(o, "max", name)?.unwrap_or(default_max),
            start: opt_f64(o, "start", name)?.unwrap_or(0.0) as i64,
            step: opt_f64(o, "step", name)?.unwrap_or(1.0) as i64,
            length: opt_f64(o, "length", name)?.unwrap_or(8.0) as usize,
            values: o
                .get("values")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            null_rate: opt_f64(o, "null-rate", name)?.unwrap_or(0.0),
        })
    }

    fn is_null(&mut self) -> bool {
        self.null_rate > 0.0 && self.rng.random::<f64>() < self.null_rate
    }

    fn int(&mut self, row: u64) -> i64 {
        if self.sequence {
            self.start + row as i64 * self.step
        } else if let Some(v) = self.pick() {
            v.parse().unwrap_or(0)
        } else {
            let lo = self.min as i64;
            let hi = (self.max as i64).max(lo);
            self.rng.random_range(lo..=hi)
        }
    }

    fn pick(&mut self) -> Option<String> {
        if self.values.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.values.len());
        Some(self.values[i].clone())
    }

    fn generate(&mut self, first_row: u64, n: usize) -> ArrayRef {
        macro_rules! fill {
            ($b:expr, $v:expr) => {{
                let mut b = $b;
                for i in 0..n {
                    if self.is_null() {
                        b.append_null();
                    } else {
                        let row = first_row + i as u64;
                        let f: &mut dyn FnMut(&mut Self, u64) -> _ = &mut $v;
                        b.append_value(f(self, row));
                    }
                }
                Arc::new(b.finish()) as ArrayRef
            }};
        }
        match self.data_type.clone() {
            DataType::Int32 => fill!(Int32Builder::new(), |g: &mut Self, r| g.int(r) as i32),
            DataType::Int64 => fill!(Int64Builder::new(), |g: &mut Self, r| g.int(r)),
            DataType::Timestamp(TimeUnit::Millisecond, None) => {
                fill!(TimestampMillisecondBuilder::new(), |g: &mut Self, r| g
                    .int(r))
            }
            DataType::Date32 => fill!(Date32Builder::new(), |g: &mut Self, r| g.int(r) as i32),
            DataType::Boolean => fill!(BooleanBuilder::new(), |g: &mut Self, _| match g.pick() {
                Some(v) => v.eq_ignore_ascii_case("true"),
                None => g.rng.random::<bool>(),
            }),
            DataType::Float64 => fill!(Float64Builder::new(), |g: &mut Self, r| {
                if g.sequence {
                    (g.start + r as i64 * g.step) as f64
                } else if let Some(v) = g.pick() {
                    v.parse().unwrap_or(0.0)
                } else {
                    let (lo, hi) = (g.min, g.max.max(g.min));
                    // Two decimals keep generated amounts readable.
                    (g.rng.random_range(lo..=hi) * 100.0).round() / 100.0
                }
            }),
            DataType::Decimal128(p, s) => {
                let builder = Decimal128Builder::new()
                    .with_precision_and_scale(p, s)
                    .unwrap_or_default();
                fill!(builder, |g: &mut Self, _| {
                    let v: f64 = match g.pick() {
                        Some(v) => v.parse().unwrap_or(0.0),
                        None => g.rng.random_range(g.min..=g.max.max(g.min)),
                    };
                    (v * 10f64.powi(s as i32)).round() as i128
                })
            }
            DataType::Utf8 => fill!(StringBuilder::new(), |g: &mut Self, r| {
                if let Some(v) = g.pick() {
                    v
                } else if g.sequence {
                    (g.start + r as i64 * g.step).to_string()
                } else {
                    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                    (0..g.length)
                        .map(|_| CHARS[g.rng.random_range(0..CHARS.len())] as char)
                        .collect()
                }
            }),
            other => new_null_array(&other, n),
        }
    }
}

/// Generates rows for one source.
pub struct DatagenReader {
    schema: StreamSchema,
    columns: Vec<ColumnGen>,
    rows: Option<u64>,
    rate: Option<f64>,
    produced: u64,
    started: Instant,
    timestamp: Option<usize>,
}

impl DatagenReader {
    /// A generator for `def` producing batches of `schema`.
    pub fn new(def: &SourceDef, opts: &DatagenOptions, schema: StreamSchema) -> Result<Self> {
        let mut columns = Vec::new();
        for c in def.key_columns().chain(def.value_columns()) {
            columns.push(ColumnGen::new(
                &c.name,
                &c.data_type,
                opts.fields.get(&c.name),
                opts.seed,
            )?);
        }
        for k in opts.fields.keys() {
            if def.column(k).is_none() {
                return Err(EngineError::Connector(format!(
                    "datagen option fields.{k}.* names no column of {}",
                    def.name
                )));
            }
        }
        let timestamp = match &def.timestamp {
            Some(c) => Some(
                schema
                    .arrow
                    .index_of(c)
                    .map_err(|e| EngineError::Connector(e.to_string()))?,
            ),
            None => None,
        };
        Ok(DatagenReader {
            schema,
            columns,
            rows: opts.rows,
            rate: opts.rate.filter(|r| *r > 0.0),
            produced: 0,
            started: Instant::now(),
            timestamp,
        })
    }

    /// Rows produced so far.
    pub fn position(&self) -> i64 {
        self.produced as i64
    }

    /// Continues after `rows` rows (a restored checkpoint): rows are a function of their index.
    pub fn seek(&mut self, rows: i64) {
        self.produced = rows.max(0) as u64;
    }

    /// When the next row may be produced, for rate-limited generators.
    pub fn next_ready(&self) -> Option<Instant> {
        let rate = self.rate?;
        Some(self.started + Duration::from_secs_f64((self.produced + 1) as f64 / rate))
    }

    /// Produces up to `max` rows.
    pub fn poll(&mut self, max: usize) -> Result<Poll> {
        let mut n = max as u64;
        if let Some(total) = self.rows {
            if self.produced >= total {
                return Ok(Poll::Exhausted);
            }
            n = n.min(total - self.produced);
        }
        if let Some(rate) = self.rate {
            let allowed = (self.started.elapsed().as_secs_f64() * rate) as u64;
            n = n.min(allowed.saturating_sub(self.produced));
            if n == 0 {
                return Ok(Poll::Idle);
            }
        }
        let n = n as usize;
        let first = self.produced;
        let mut cols: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| c.generate(first, n))
            .collect();
        let now = chrono::Utc::now().timestamp_millis();
        let rowtime: Vec<i64> = match self.timestamp {
            Some(idx) => (0..n)
                .map(|i| extract_timestamp(&cols[idx], i, None).unwrap_or(now))
                .collect(),
            None => vec![now; n],
        };
        cols.push(Arc::new(Int64Array::from(rowtime)));
        cols.push(Arc::new(Int32Array::from(vec![0; n])));
        cols.push(Arc::new(Int64Array::from_iter_values(
            (first..first + n as u64).map(|o| o as i64),
        )));
        cols.push(Arc::new(Int8Array::from(vec![0i8; n])));
        self.produced += n as u64;
        Ok(Poll::Batch(RecordBatch::try_new(
            self.schema.arrow.clone(),
            cols,
        )?))
    }
}
