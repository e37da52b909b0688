//! ksqlDB's scalar functions. Each submodule groups functions by domain and exposes `functions()`.

pub mod cast;
pub mod conditional;
pub mod datetime;
pub mod extract;
pub mod java_time;
pub mod json;
pub mod math;
pub mod string;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

use crate::value::{result, string_arg};

/// Every built-in scalar function riffle defines itself.
pub fn functions() -> Vec<ScalarUDF> {
    let mut f = Vec::new();
    f.extend(math::functions());
    f.extend(string::functions());
    f.extend(extract::functions());
    f.extend(datetime::functions());
    f.extend(json::functions());
    f.extend(conditional::functions());
    f
}

/// Checks the argument count for a function.
pub(crate) fn arity(name: &str, args: &[ColumnarValue], min: usize, max: usize) -> Result<()> {
    if args.len() < min || args.len() > max {
        return exec_err!("{name} takes {min}..{max} arguments, got {}", args.len());
    }
    Ok(())
}

/// Applies `f` to each row of string arguments; a NULL argument gives NULL without calling `f`.
pub(crate) fn map_strings(
    args: &[ColumnarValue],
    rows: usize,
    f: impl Fn(&[&str]) -> Option<String>,
) -> Result<ColumnarValue> {
    let cols = args
        .iter()
        .map(|a| string_arg(a, rows))
        .collect::<Result<Vec<_>>>()?;
    let n = if crate::value::all_scalar(args) && !args.is_empty() {
        1
    } else {
        rows
    };
    let mut b = StringBuilder::with_capacity(n, n * 8);
    let mut vals: Vec<&str> = Vec::with_capacity(cols.len());
    for i in 0..n {
        vals.clear();
        let mut null = false;
        for c in &cols {
            use datafusion::arrow::array::Array;
            if c.is_null(i) {
                null = true;
                break;
            }
            vals.push(c.value(i));
        }
        if null {
            b.append_null();
        } else {
            b.append_option(f(&vals));
        }
    }
    let arr: ArrayRef = std::sync::Arc::new(b.finish());
    result(arr, args)
}
