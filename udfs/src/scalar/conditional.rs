//! Null handling and comparisons across arguments with ksqlDB's widening: `COALESCE`, `IFNULL`,
//! `GREATEST`, `LEAST`, and `LIKE … ESCAPE` with any escape character.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, new_null_array};
use datafusion::arrow::compute::kernels::cmp::{gt, lt};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{cast, is_not_null};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

use crate::udf::SimpleUdf;
use crate::value::{array_arg, result, string_arg, wider};

/// The functions of this module.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        SimpleUdf::udf("COALESCE", (1, 64), common_type, coalesce),
        SimpleUdf::udf("IFNULL", (2, 2), common_type, coalesce),
        SimpleUdf::udf("GREATEST", (1, 64), common_type, |a, n, r| {
            extreme(a, n, r, true)
        }),
        SimpleUdf::udf("LEAST", (1, 64), common_type, |a, n, r| {
            extreme(a, n, r, false)
        }),
    ]
}

/// `LIKE` with an escape character other than backslash.
pub fn like_escape_udf() -> Arc<ScalarUDF> {
    Arc::new(SimpleUdf::udf(
        "LIKE_ESCAPE",
        (3, 3),
        |_, _| Ok(DataType::Boolean),
        like_escape,
    ))
}

fn common_type(args: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    let non_string: Vec<&DataType> = args
        .iter()
        .filter(|t| !matches!(t, DataType::Null | DataType::Utf8 | DataType::Utf8View))
        .collect();
    let pool: Vec<&DataType> = if non_string.is_empty() {
        args.iter().collect()
    } else {
        non_string
    };
    Ok(pool
        .into_iter()
        .fold(DataType::Null, |acc, t| wider(&acc, t)))
}

/// Casts an argument to the result type; strings that do not cast directly are read as
/// (partial) ISO timestamps for temporal results.
fn to_type(v: &ColumnarValue, rows: usize, ty: &DataType) -> Result<ArrayRef> {
    let a = array_arg(v, rows)?;
    if a.data_type() == ty {
        return Ok(a);
    }
    if matches!(a.data_type(), DataType::Null) {
        return Ok(new_null_array(ty, a.len()));
    }
    match cast(&a, ty) {
        Ok(c) => Ok(c),
        Err(e) if matches!(ty, DataType::Timestamp(..) | DataType::Date32) => {
            let s = string_arg(v, rows)?;
            let ms: Vec<Option<i64>> = s
                .iter()
                .map(|v| v.and_then(crate::value::parse_partial_timestamp))
                .collect();
            let ms = datafusion::arrow::array::Int64Array::from(ms);
            let as_ts = cast(
                &ms,
                &DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Millisecond, None),
            )?;
            cast(&as_ts, ty).map_err(|_| e.into())
        }
        Err(e) => Err(e.into()),
    }
}

fn coalesce(args: &[ColumnarValue], rows: usize, ret: &DataType) -> Result<ColumnarValue> {
    let mut out = to_type(&args[0], rows, ret)?;
    for a in &args[1..] {
        let next = to_type(a, rows, ret)?;
        out = zip(&is_not_null(&out)?, &out, &next)?;
    }
    result(out, args)
}

fn extreme(
    args: &[ColumnarValue],
    rows: usize,
    ret: &DataType,
    greatest: bool,
) -> Result<ColumnarValue> {
    let mut out = to_type(&args[0], rows, ret)?;
    for a in &args[1..] {
        let next = to_type(a, rows, ret)?;
        let better: BooleanArray = if greatest {
            gt(&next, &out)?
        } else {
            lt(&next, &out)?
        };
        // Take `next` where it is better, or where the running value is NULL.
        let take_next: BooleanArray = (0..out.len())
            .map(|i| Some(next.is_valid(i) && (out.is_null(i) || better.value(i))))
            .collect();
        out = zip(&take_next, &next, &out)?;
    }
    result(out, args)
}

/// SQL `LIKE` matching with `%`, `_` and an escape character.
pub fn like_match(value: &str, pattern: &str, escape: Option<char>) -> bool {
    let v: Vec<char> = value.chars().collect();
    let mut p: Vec<(char, bool)> = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            if let Some(n) = chars.next() {
                p.push((n, true));
            }
        } else {
            p.push((c, false));
        }
    }
    fn go(v: &[char], p: &[(char, bool)]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some(('%', false)) => (0..=v.len()).any(|i| go(&v[i..], &p[1..])),
            Some(('_', false)) => !v.is_empty() && go(&v[1..], &p[1..]),
            Some((c, _)) => v.first() == Some(c) && go(&v[1..], &p[1..]),
        }
    }
    go(&v, &p)
}

fn like_escape(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let v = string_arg(&args[0], rows)?;
    let p = string_arg(&args[1], rows)?;
    let e = string_arg(&args[2], rows)?;
    let n = if crate::value::all_scalar(args) {
        1
    } else {
        rows
    };
    let out: BooleanArray = (0..n)
        .map(|i| {
            if v.is_null(i) || p.is_null(i) {
                return None;
            }
            let esc = if e.is_null(i) {
                None
            } else {
                e.value(i).chars().next()
            };
            Some(like_match(v.value(i), p.value(i), esc))
        })
        .collect();
    result(Arc::new(out), args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_with_custom_escape() {
        assert!(like_match("100%", "100!%", Some('!')));
        assert!(!like_match("1000", "100!%", Some('!')));
        assert!(like_match("foobar", "%oba_", None));
        assert!(!like_match("foo", "f_", None));
    }
}
