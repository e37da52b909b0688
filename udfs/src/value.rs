//! Small helpers shared by functions: argument access, map construction, Java-style number text.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Int64Array, MapArray, StringArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;

/// Materializes an argument as an array of `rows` values.
pub fn array_arg(v: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    v.to_array(rows)
}

/// An argument as strings (casting other types to text).
pub fn string_arg(v: &ColumnarValue, rows: usize) -> Result<StringArray> {
    let a = array_arg(v, rows)?;
    let a = cast(&a, &DataType::Utf8)?;
    Ok(a.as_string::<i32>().clone())
}

/// An argument as bytes.
pub fn binary_arg(v: &ColumnarValue, rows: usize) -> Result<BinaryArray> {
    let a = array_arg(v, rows)?;
    let a = cast(&a, &DataType::Binary)?;
    Ok(a.as_binary::<i32>().clone())
}

/// An argument as 64-bit integers.
pub fn int_arg(v: &ColumnarValue, rows: usize) -> Result<Int64Array> {
    let a = array_arg(v, rows)?;
    let a = cast(&a, &DataType::Int64)?;
    Ok(a.as_primitive::<Int64Type>().clone())
}

/// Whether every argument is a scalar, so the result can be a scalar too.
pub fn all_scalar(args: &[ColumnarValue]) -> bool {
    args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)))
}

/// Wraps a result array, collapsing to a scalar when all inputs were scalars.
pub fn result(array: ArrayRef, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    if all_scalar(args) && !args.is_empty() && array.len() == 1 {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// The Arrow map type used for SQL maps (string keys are not sorted).
pub fn map_type(key: DataType, value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key, false),
                Field::new("value", value, true),
            ])),
            false,
        )),
        false,
    )
}

/// Builds a single map value from parallel key and value lists.
pub fn map_scalar(
    keys: &[ScalarValue],
    values: &[ScalarValue],
    key_type: &DataType,
    value_type: &DataType,
) -> Result<ScalarValue> {
    let k: ArrayRef = if keys.is_empty() {
        datafusion::arrow::array::new_empty_array(key_type)
    } else {
        cast(&ScalarValue::iter_to_array(keys.to_vec())?, key_type)?
    };
    let v: ArrayRef = if values.is_empty() {
        datafusion::arrow::array::new_empty_array(value_type)
    } else {
        cast(&ScalarValue::iter_to_array(values.to_vec())?, value_type)?
    };
    let DataType::Map(entries_field, sorted) = map_type(key_type.clone(), value_type.clone())
    else {
        unreachable!("map_type builds a map")
    };
    let DataType::Struct(fields) = entries_field.data_type().clone() else {
        unreachable!("map entries are a struct")
    };
    let entries = StructArray::try_new(fields, vec![k, v], None)?;
    let offsets = OffsetBuffer::from_lengths([keys.len()]);
    let map = MapArray::try_new(entries_field, offsets, entries, None, sorted)?;
    ScalarValue::try_from_array(&map, 0)
}

/// Formats a double the way Java's `Double.toString` does (`1.0`, `1.0E10`, `1.5E-4`), which is
/// what ksqlDB users see in JSON and delimited output.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let abs = v.abs();
    if (1e-3..1e7).contains(&abs) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        // Rust's `{:e}` gives the shortest round-trip digits: "1.5e-4" / "1e10".
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exp}")
    }
}

/// Parses the partial ISO timestamps ksqlDB accepts when a string is compared with ROWTIME:
/// `2018`, `2018-01-01`, `2018-01-01T00:00:00.001`, with an optional zone (`Z`, `+0445`).
pub fn parse_partial_timestamp(s: &str) -> Option<i64> {
    use chrono_like::*;
    let s = s.trim();
    let (main, offset_secs) = split_zone(s)?;
    let (date, time) = match main.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (main, None),
    };
    let mut dparts = date.split('-');
    let year: i64 = dparts.next()?.parse().ok()?;
    let month: i64 = dparts.next().map(|m| m.parse().ok()).unwrap_or(Some(1))?;
    let day: i64 = dparts.next().map(|d| d.parse().ok()).unwrap_or(Some(1))?;
    let (mut h, mut mi, mut sec, mut ms) = (0i64, 0i64, 0i64, 0i64);
    if let Some(t) = time {
        let (hms, frac) = match t.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let mut tp = hms.split(':');
        h = tp.next()?.parse().ok()?;
        mi = tp.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
        sec = tp.next().map(|x| x.parse().ok()).unwrap_or(Some(0))?;
        if let Some(f) = frac {
            let f3: String = f.chars().chain("000".chars()).take(3).collect();
            ms = f3.parse().ok()?;
        }
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 86400 + h * 3600 + mi * 60 + sec) - offset_secs) * 1000 + ms)
}

mod chrono_like {
    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    }

    /// Splits a trailing zone designator off a timestamp, returning its offset in seconds.
    pub fn split_zone(s: &str) -> Option<(&str, i64)> {
        if let Some(rest) = s.strip_suffix('Z') {
            return Some((rest, 0));
        }
        if let Some(t_pos) = s.find('T') {
            let time = &s[t_pos..];
            if let Some(p) = time.rfind(['+', '-']) {
                let zone = &time[p..];
                let sign = if zone.starts_with('-') { -1 } else { 1 };
                let digits: String = zone[1..].chars().filter(|c| c.is_ascii_digit()).collect();
                if digits.len() == 4 || digits.len() == 2 {
                    let h: i64 = digits[..2].parse().ok()?;
                    let m: i64 = if digits.len() == 4 {
                        digits[2..].parse().ok()?
                    } else {
                        0
                    };
                    return Some((&s[..t_pos + p], sign * (h * 3600 + m * 60)));
                }
            }
        }
        Some((s, 0))
    }
}

/// The wider of two types, following ksqlDB's numeric widening (INT < BIGINT < DECIMAL < DOUBLE).
pub fn wider(a: &DataType, b: &DataType) -> DataType {
    use DataType::*;
    match (a, b) {
        (x, y) if x == y => x.clone(),
        (Null, y) => y.clone(),
        (x, Null) => x.clone(),
        (Float64, _) | (_, Float64) => Float64,
        (Decimal128(p1, s1), Decimal128(p2, s2)) => {
            let s = (*s1).max(*s2);
            let int = (*p1 as i16 - *s1 as i16).max(*p2 as i16 - *s2 as i16);
            Decimal128(((int + s as i16).min(38)) as u8, s)
        }
        (Decimal128(p, s), Int32) | (Int32, Decimal128(p, s)) => {
            wider(&Decimal128(*p, *s), &Decimal128(10, 0))
        }
        (Decimal128(p, s), Int64) | (Int64, Decimal128(p, s)) => {
            wider(&Decimal128(*p, *s), &Decimal128(19, 0))
        }
        (Int64, Int32) | (Int32, Int64) => Int64,
        (x, _) => x.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(1e10), "1.0E10");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(123.456), "123.456");
        assert_eq!(java_double(-2.5e-7), "-2.5E-7");
        assert_eq!(
            java_double(1.7976931348623157e308),
            "1.7976931348623157E308"
        );
    }
}
