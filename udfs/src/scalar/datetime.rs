//! Date and time functions: conversions between epoch numbers, SQL temporal types and text in
//! Java date-time patterns (`TIMESTAMPTOSTRING`, `PARSE_TIMESTAMP`, `UNIX_DATE`, …).

use std::collections::HashMap;
use std::sync::Arc;

use chrono_tz::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Int32Array, Int64Array, StringBuilder, Time32MillisecondArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

use super::java_time::{JavaFormat, zone_by_name};
use crate::errors;
use crate::udf::SimpleUdf;
use crate::value::{all_scalar, int_arg, result, string_arg};

const DAY_MS: i64 = 86_400_000;

/// The date and time functions.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        SimpleUdf::udf("TIMESTAMPTOSTRING", (2, 3), utf8, |a, n, _| {
            format_fn(a, n, 1)
        }),
        SimpleUdf::udf("FORMAT_TIMESTAMP", (2, 3), utf8, |a, n, _| {
            format_fn(a, n, 1)
        }),
        SimpleUdf::udf("DATETOSTRING", (2, 2), utf8, |a, n, _| {
            format_fn(a, n, DAY_MS)
        }),
        SimpleUdf::udf("FORMAT_DATE", (2, 2), utf8, |a, n, _| {
            format_fn(a, n, DAY_MS)
        }),
        SimpleUdf::udf("FORMAT_TIME", (2, 2), utf8, |a, n, _| format_fn(a, n, 1)),
        SimpleUdf::udf(
            "STRINGTOTIMESTAMP",
            (2, 3),
            |_, _| Ok(DataType::Int64),
            |a, n, _| parse_fn(a, n, Target::Millis),
        ),
        SimpleUdf::udf("PARSE_TIMESTAMP", (2, 3), ts_type, |a, n, _| {
            parse_fn(a, n, Target::Timestamp)
        }),
        SimpleUdf::udf(
            "STRINGTODATE",
            (2, 2),
            |_, _| Ok(DataType::Int32),
            |a, n, _| parse_fn(a, n, Target::Days),
        ),
        SimpleUdf::udf(
            "PARSE_DATE",
            (2, 2),
            |_, _| Ok(DataType::Date32),
            |a, n, _| parse_fn(a, n, Target::Date),
        ),
        SimpleUdf::udf(
            "PARSE_TIME",
            (2, 2),
            |_, _| Ok(DataType::Time32(TimeUnit::Millisecond)),
            |a, n, _| parse_fn(a, n, Target::Time),
        ),
        SimpleUdf::udf("FROM_UNIXTIME", (1, 1), ts_type, from_unixtime),
        SimpleUdf::volatile_udf(
            "UNIX_TIMESTAMP",
            (0, 1),
            |_, _| Ok(DataType::Int64),
            unix_timestamp,
        ),
        SimpleUdf::volatile_udf("UNIX_DATE", (0, 1), |_, _| Ok(DataType::Int32), unix_date),
    ]
}

fn utf8(_: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Utf8)
}

fn ts_type(_: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
}

fn utc() -> Tz {
    Tz::UTC
}

/// Caches compiled patterns and zones for one batch.
#[derive(Default)]
struct Cache {
    formats: HashMap<String, Result<JavaFormat, String>>,
    zones: HashMap<String, Option<Tz>>,
}

impl Cache {
    fn format(&mut self, p: &str) -> Result<&JavaFormat, String> {
        self.formats
            .entry(p.to_string())
            .or_insert_with(|| JavaFormat::new(p))
            .as_ref()
            .map_err(|e| e.clone())
    }
    fn zone(&mut self, z: &str) -> Option<Tz> {
        *self
            .zones
            .entry(z.to_string())
            .or_insert_with(|| zone_by_name(z))
    }
}

/// Formats epoch values (`unit` milliseconds each: 1 for timestamps and times, a day for dates).
fn format_fn(args: &[ColumnarValue], rows: usize, unit: i64) -> Result<ColumnarValue> {
    let v = int_arg(&args[0], rows)?;
    let pat = string_arg(&args[1], rows)?;
    let tz = if args.len() > 2 {
        Some(string_arg(&args[2], rows)?)
    } else {
        None
    };
    let n = if all_scalar(args) { 1 } else { rows };
    let mut cache = Cache::default();
    let mut b = StringBuilder::new();
    for i in 0..n {
        if v.is_null(i) || pat.is_null(i) || tz.as_ref().is_some_and(|t| t.is_null(i)) {
            b.append_null();
            continue;
        }
        let zone = match &tz {
            Some(t) => match cache.zone(t.value(i)) {
                Some(z) => z,
                None => {
                    errors::report(format!("unknown time zone '{}'", t.value(i)));
                    b.append_null();
                    continue;
                }
            },
            None => utc(),
        };
        match cache
            .format(pat.value(i))
            .and_then(|f| f.format_millis(v.value(i) * unit, &zone))
        {
            Ok(s) => b.append_value(s),
            Err(e) => {
                errors::report(e);
                b.append_null();
            }
        }
    }
    result(Arc::new(b.finish()), args)
}

#[derive(Clone, Copy)]
enum Target {
    Millis,
    Timestamp,
    Days,
    Date,
    Time,
}

fn parse_fn(args: &[ColumnarValue], rows: usize, target: Target) -> Result<ColumnarValue> {
    let s = string_arg(&args[0], rows)?;
    let pat = string_arg(&args[1], rows)?;
    let tz = if args.len() > 2 {
        Some(string_arg(&args[2], rows)?)
    } else {
        None
    };
    let n = if all_scalar(args) { 1 } else { rows };
    let mut cache = Cache::default();
    let mut out: Vec<Option<i64>> = Vec::with_capacity(n);
    for i in 0..n {
        if s.is_null(i) || pat.is_null(i) || tz.as_ref().is_some_and(|t| t.is_null(i)) {
            out.push(None);
            continue;
        }
        let zone = match &tz {
            Some(t) => cache.zone(t.value(i)).unwrap_or_else(utc),
            None => utc(),
        };
        match cache
            .format(pat.value(i))
            .and_then(|f| f.parse_millis(s.value(i), &zone))
        {
            Ok(ms) => out.push(Some(ms)),
            Err(e) => {
                errors::report(format!(
                    "failed to parse '{}' with pattern '{}': {e}",
                    s.value(i),
                    pat.value(i)
                ));
                out.push(None);
            }
        }
    }
    let arr: ArrayRef = match target {
        Target::Millis => Arc::new(Int64Array::from(out)),
        Target::Timestamp => Arc::new(TimestampMillisecondArray::from(out)),
        Target::Days => Arc::new(Int32Array::from_iter(
            out.iter().map(|v| v.map(|v| v.div_euclid(DAY_MS) as i32)),
        )),
        Target::Date => Arc::new(Date32Array::from_iter(
            out.iter().map(|v| v.map(|v| v.div_euclid(DAY_MS) as i32)),
        )),
        Target::Time => Arc::new(Time32MillisecondArray::from_iter(
            out.iter().map(|v| v.map(|v| v.rem_euclid(DAY_MS) as i32)),
        )),
    };
    result(arr, args)
}

fn from_unixtime(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let v = int_arg(&args[0], rows)?;
    let out: TimestampMillisecondArray = v.iter().collect();
    result(Arc::new(out), args)
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn unix_timestamp(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    if args.is_empty() {
        return Ok(ColumnarValue::Scalar(ScalarValue::Int64(
            Some(now_millis()),
        )));
    }
    let v = int_arg(&args[0], rows)?;
    result(Arc::new(v), args)
}

fn unix_date(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    if args.is_empty() {
        return Ok(ColumnarValue::Scalar(ScalarValue::Int32(Some(
            now_millis().div_euclid(DAY_MS) as i32,
        ))));
    }
    let v = int_arg(&args[0], rows)?;
    let out: Int32Array = v.iter().map(|d| d.map(|d| d as i32)).collect();
    result(Arc::new(out), args)
}
