//! Casts with ksqlDB's text forms: `CAST(x AS STRING)` prints doubles like Java (`1.0E10`),
//! arrays as `[1, 2]`, maps as `{k=v}` and structs as `Struct{A=1}`; `CAST(s AS BOOLEAN)` accepts
//! prefixes of `true`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

use crate::udf::SimpleUdf;
use crate::value::{array_arg, java_double, result, string_arg};

/// `CAST(x AS STRING)` for non-string `x`.
pub fn to_text_udf() -> Arc<ScalarUDF> {
    Arc::new(SimpleUdf::udf(
        "TO_TEXT",
        (1, 1),
        |_, _| Ok(DataType::Utf8),
        to_text,
    ))
}

/// `CAST(s AS BOOLEAN)` for strings.
pub fn to_boolean_udf() -> Arc<ScalarUDF> {
    Arc::new(SimpleUdf::udf(
        "TO_BOOLEAN",
        (1, 1),
        |_, _| Ok(DataType::Boolean),
        to_boolean,
    ))
}

/// ksqlDB's reading of a string as a boolean: prefixes of `true` and `yes` are true, anything
/// else false.
pub fn parse_boolean(s: &str) -> bool {
    let l = s.trim().to_lowercase();
    !l.is_empty() && ("true".starts_with(&l) || "yes".starts_with(&l))
}

fn to_boolean(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let s = string_arg(&args[0], rows)?;
    let out: BooleanArray = s.iter().map(|v| v.map(parse_boolean)).collect();
    result(Arc::new(out), args)
}

/// Renders one value of an array as ksqlDB prints it.
pub fn value_text(a: &ArrayRef, i: usize) -> Result<String> {
    if a.is_null(i) {
        return Ok("null".into());
    }
    Ok(match a.data_type() {
        DataType::Float64 => java_double(
            a.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .value(i),
        ),
        DataType::Float32 => java_double(
            a.as_primitive::<datafusion::arrow::datatypes::Float32Type>()
                .value(i) as f64,
        ),
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            let inner = l.value(i);
            let parts = (0..inner.len())
                .map(|j| value_text(&inner, j))
                .collect::<Result<Vec<_>>>()?;
            format!("[{}]", parts.join(", "))
        }
        DataType::Map(_, _) => {
            let m = a.as_map();
            let entries = m.value(i);
            let keys = entries.column(0);
            let vals = entries.column(1);
            let parts = (0..entries.len())
                .map(|j| Ok(format!("{}={}", value_text(keys, j)?, value_text(vals, j)?)))
                .collect::<Result<Vec<_>>>()?;
            format!("{{{}}}", parts.join(", "))
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let parts = fields
                .iter()
                .enumerate()
                .filter(|(j, _)| !s.column(*j).is_null(i))
                .map(|(j, f)| Ok(format!("{}={}", f.name(), value_text(s.column(j), i)?)))
                .collect::<Result<Vec<_>>>()?;
            format!("Struct{{{}}}", parts.join(","))
        }
        _ => {
            let f = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())?;
            f.value(i).to_string()
        }
    })
}

fn to_text(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let a = array_arg(&args[0], rows)?;
    let n = if matches!(args[0], ColumnarValue::Scalar(_)) {
        1
    } else {
        rows
    };
    let mut b = StringBuilder::new();
    for i in 0..n {
        if a.is_null(i) {
            b.append_null();
        } else {
            b.append_value(value_text(&a, i)?);
        }
    }
    let _ = ScalarValue::Null;
    result(Arc::new(b.finish()), args)
}
