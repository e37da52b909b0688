//! Functions that pull one part out of a string: `REGEXP_EXTRACT` (ksqlDB's and Flink's) and
//! Flink's `SPLIT_INDEX`.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};
use regex::Regex;

use crate::udf::SimpleUdf;
use crate::value::{int_arg, result, string_arg};

/// The functions of this module.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        SimpleUdf::udf(
            "REGEXP_EXTRACT",
            (2, 3),
            |_, _| Ok(DataType::Utf8),
            regexp_extract,
        ),
        SimpleUdf::udf(
            "SPLIT_INDEX",
            (3, 3),
            |_, _| Ok(DataType::Utf8),
            split_index,
        ),
    ]
}

/// `REGEXP_EXTRACT`. ksqlDB writes `REGEXP_EXTRACT(pattern, string [, group])` (default group 0,
/// the whole match); Flink writes `REGEXP_EXTRACT(string, pattern [, index])` (default index 1).
/// The pattern is the constant argument: when the second argument is a constant and the first
/// is not, the call is read in Flink's order, otherwise in ksqlDB's.
fn regexp_extract(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let flink =
        matches!(args[1], ColumnarValue::Scalar(_)) && matches!(args[0], ColumnarValue::Array(_));
    let (pattern, text, default_group) = if flink {
        (&args[1], &args[0], 1)
    } else {
        (&args[0], &args[1], 0)
    };
    let patterns = string_arg(pattern, rows)?;
    let texts = string_arg(text, rows)?;
    let groups = match args.get(2) {
        Some(g) => Some(int_arg(g, rows)?),
        None => None,
    };
    let mut compiled: HashMap<String, Regex> = HashMap::new();
    let mut out = Vec::with_capacity(rows);
    for i in 0..texts.len() {
        let group = match &groups {
            None => Some(default_group),
            Some(g) if g.is_null(i) => None,
            Some(g) => Some(g.value(i)),
        };
        if patterns.is_null(i) || texts.is_null(i) || group.is_none() {
            out.push(None);
            continue;
        }
        let p = patterns.value(i);
        if !compiled.contains_key(p) {
            match Regex::new(p) {
                Ok(re) => compiled.insert(p.to_string(), re),
                Err(e) => return exec_err!("REGEXP_EXTRACT: invalid pattern '{p}': {e}"),
            };
        }
        let re = &compiled[p];
        let value = group
            .and_then(|g| usize::try_from(g).ok())
            .and_then(|g| re.captures(texts.value(i)).and_then(|c| c.get(g)))
            .map(|m| m.as_str().to_string());
        out.push(value);
    }
    result(std::sync::Arc::new(StringArray::from(out)), args)
}

/// Flink's `SPLIT_INDEX(string, delimiter, index)`: the `index`-th (0-based) piece of the string
/// split at the delimiter; NULL when there is no such piece or an argument is NULL.
fn split_index(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let texts = string_arg(&args[0], rows)?;
    let delims = string_arg(&args[1], rows)?;
    let idx = int_arg(&args[2], rows)?;
    let out: StringArray = (0..texts.len())
        .map(|i| {
            if texts.is_null(i) || delims.is_null(i) || idx.is_null(i) {
                return None;
            }
            let d = delims.value(i);
            let n = usize::try_from(idx.value(i)).ok()?;
            if d.is_empty() {
                return None;
            }
            texts.value(i).split(d).nth(n).map(str::to_string)
        })
        .collect();
    result(std::sync::Arc::new(out), args)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::ColumnarValue;

    use super::{regexp_extract, split_index};

    fn column(v: &[Option<&str>]) -> ColumnarValue {
        ColumnarValue::Array(std::sync::Arc::new(StringArray::from(v.to_vec())))
    }

    fn text(s: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s.into())))
    }

    fn strings(v: ColumnarValue) -> Vec<Option<String>> {
        let a = v.to_array(1).unwrap();
        let s = a.as_string::<i32>();
        (0..s.len())
            .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
            .collect()
    }

    #[test]
    fn regexp_extract_reads_both_argument_orders() {
        let urls = column(&[Some("a=1&channel_id=77&b=2"), Some("x=1"), None]);
        let flink = regexp_extract(
            &[
                urls.clone(),
                text("(&|^)channel_id=([^&]*)"),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(2))),
            ],
            3,
            &DataType::Utf8,
        )
        .unwrap();
        assert_eq!(strings(flink), [Some("77".to_string()), None, None]);
        let ksql = regexp_extract(&[text("channel_id=\\d+"), urls], 3, &DataType::Utf8).unwrap();
        assert_eq!(
            strings(ksql),
            [Some("channel_id=77".to_string()), None, None]
        );
    }

    #[test]
    fn split_index_is_zero_based_and_null_past_the_end() {
        let urls = column(&[Some("https://www.nexmark.com/a/b/c/item.htm"), Some("x")]);
        let third = split_index(
            &[
                urls.clone(),
                text("/"),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(3))),
            ],
            2,
            &DataType::Utf8,
        )
        .unwrap();
        assert_eq!(strings(third), [Some("a".to_string()), None]);
    }
}
