//! Builds Arrow columns from loosely typed cells (JSON values or delimited text) with ksqlDB's
//! coercions: numeric strings become numbers, DECIMALs keep their exact digits, BYTES are base64,
//! nested values follow the declared type. Cells that do not fit are reported per row.

use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int32Builder, Int64Builder, StringBuilder, Time32MillisecondBuilder,
    TimestampMillisecondBuilder, new_null_array,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use serde_json::Value;

/// Decodes base64 (standard alphabet, padding optional).
pub fn b64_decode(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
        .map_err(|e| format!("invalid base64 '{s}': {e}"))
}

/// Encodes bytes as standard base64.
pub fn b64_encode(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Parses decimal text into an unscaled value at `scale`, rounding half up; checks precision.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let t = text.trim();
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (
            &t[..i],
            t[i + 1..]
                .parse::<i32>()
                .map_err(|_| format!("invalid decimal '{text}'"))?,
        ),
        None => (t, 0),
    };
    let neg = mantissa.starts_with('-');
    let m = mantissa.trim_start_matches(['-', '+']);
    let (int_part, frac_part) = m.split_once('.').unwrap_or((m, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .chars()
            .chain(frac_part.chars())
            .all(|c| c.is_ascii_digit())
    {
        return Err(format!("invalid decimal '{text}'"));
    }
    let digits: String = format!("{int_part}{frac_part}");
    let mut frac_len = frac_part.len() as i32 - exp;
    let mut unscaled: i128 = digits.trim_start_matches('0').parse().unwrap_or(0);
    if frac_len < 0 {
        unscaled = unscaled
            .checked_mul(
                10i128
                    .checked_pow((-frac_len) as u32)
                    .ok_or("decimal out of range")?,
            )
            .ok_or_else(|| format!("decimal '{text}' out of range"))?;
        frac_len = 0;
    }
    let target = scale as i32;
    let value = if frac_len > target {
        let f = 10i128.pow((frac_len - target) as u32);
        let q = unscaled / f;
        let r = unscaled % f;
        if r * 2 >= f { q + 1 } else { q }
    } else {
        unscaled
            .checked_mul(10i128.pow((target - frac_len) as u32))
            .ok_or_else(|| format!("decimal '{text}' out of range"))?
    };
    let limit = 10i128.pow(precision as u32);
    if value >= limit {
        return Err(format!(
            "decimal '{text}' does not fit DECIMAL({precision}, {scale})"
        ));
    }
    Ok(if neg { -value } else { value })
}

fn as_i64(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else {
                let text = n.to_string();
                let f: f64 = text
                    .parse()
                    .map_err(|_| format!("'{text}' is not an integer"))?;
                if f.fract() == 0.0 && f.abs() < 9.2e18 {
                    Ok(f as i64)
                } else {
                    Err(format!("'{text}' is not an integer"))
                }
            }
        }
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("'{s}' is not an integer")),
        other => Err(format!("cannot read {other} as an integer")),
    }
}

fn as_f64(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n
            .to_string()
            .parse::<f64>()
            .map_err(|_| format!("'{n}' is not a number")),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("'{s}' is not a number")),
        other => Err(format!("cannot read {other} as a number")),
    }
}

fn as_bool(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("cannot read {other} as a boolean")),
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn as_millis(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) if s.trim().parse::<i64>().is_err() => {
            riffle_sql::expr::parse_partial_timestamp(s)
                .ok_or_else(|| format!("'{s}' is not a timestamp"))
        }
        other => as_i64(other),
    }
}

fn as_days(v: &Value) -> Result<i32, String> {
    match v {
        Value::String(s) if s.trim().parse::<i64>().is_err() => {
            riffle_sql::expr::parse_partial_timestamp(s)
                .map(|ms| ms.div_euclid(86_400_000) as i32)
                .ok_or_else(|| format!("'{s}' is not a date"))
        }
        other => as_i64(other).map(|d| d as i32),
    }
}

/// Converts one cell to a scalar of type `dt`.
pub fn to_scalar(v: Option<&Value>, dt: &DataType) -> Result<ScalarValue, String> {
    let v = match v {
        None | Some(Value::Null) => {
            return ScalarValue::try_from(dt).map_err(|e| e.to_string());
        }
        Some(v) => v,
    };
    Ok(match dt {
        DataType::Boolean => ScalarValue::Boolean(Some(as_bool(v)?)),
        DataType::Int32 => {
            let i = as_i64(v)?;
            ScalarValue::Int32(Some(
                i32::try_from(i).map_err(|_| format!("{i} does not fit INT"))?,
            ))
        }
        DataType::Int64 => ScalarValue::Int64(Some(as_i64(v)?)),
        DataType::Float64 => ScalarValue::Float64(Some(as_f64(v)?)),
        DataType::Decimal128(p, s) => {
            let text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                other => return Err(format!("cannot read {other} as a decimal")),
            };
            ScalarValue::Decimal128(Some(parse_decimal(&text, *p, *s)?), *p, *s)
        }
        DataType::Utf8 => ScalarValue::Utf8(Some(as_text(v))),
        DataType::Binary => match v {
            Value::String(s) => ScalarValue::Binary(Some(b64_decode(s)?)),
            other => {
                return Err(format!(
                    "cannot read {other} as BYTES (base64 text expected)"
                ));
            }
        },
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            ScalarValue::TimestampMillisecond(Some(as_millis(v)?), tz.clone())
        }
        DataType::Date32 => ScalarValue::Date32(Some(as_days(v)?)),
        DataType::Time32(TimeUnit::Millisecond) => {
            ScalarValue::Time32Millisecond(Some(as_i64(v)? as i32))
        }
        DataType::List(field) => {
            let Value::Array(items) = v else {
                return Err(format!("cannot read {v} as an ARRAY"));
            };
            let vals = items
                .iter()
                .map(|i| to_scalar(Some(i), field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            ScalarValue::List(ScalarValue::new_list_nullable(&vals, field.data_type()))
        }
        DataType::Struct(fields) => {
            let Value::Object(obj) = v else {
                return Err(format!("cannot read {v} as a STRUCT"));
            };
            let mut arrays = Vec::with_capacity(fields.len());
            for f in fields.iter() {
                let cell = lookup(obj, f.name());
                let s = to_scalar(cell, f.data_type())?;
                arrays.push(s.to_array().map_err(|e| e.to_string())?);
            }
            let sa = datafusion::arrow::array::StructArray::try_new(fields.clone(), arrays, None)
                .map_err(|e| e.to_string())?;
            ScalarValue::Struct(Arc::new(sa))
        }
        DataType::Map(entries, _) => {
            let Value::Object(obj) = v else {
                return Err(format!("cannot read {v} as a MAP"));
            };
            let DataType::Struct(kv) = entries.data_type() else {
                return Err("bad map type".into());
            };
            let mut keys = Vec::new();
            let mut vals = Vec::new();
            for (k, item) in obj {
                keys.push(to_scalar(
                    Some(&Value::String(k.clone())),
                    kv[0].data_type(),
                )?);
                vals.push(to_scalar(Some(item), kv[1].data_type())?);
            }
            riffle_udfs::value::map_scalar(&keys, &vals, kv[0].data_type(), kv[1].data_type())
                .map_err(|e| e.to_string())?
        }
        other => return Err(format!("unsupported column type {other}")),
    })
}

/// Finds a field in a JSON object: exact name first, then ignoring case.
pub fn lookup<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Builds one column from cells; rows that fail are reported as `(row, reason)` and get NULL.
pub fn build_column(
    cells: &[Option<&Value>],
    dt: &DataType,
    errors: &mut Vec<(usize, String)>,
) -> ArrayRef {
    macro_rules! prim {
        ($builder:expr, $conv:expr) => {{
            let mut b = $builder;
            for (i, c) in cells.iter().enumerate() {
                match c {
                    None | Some(Value::Null) => b.append_null(),
                    Some(v) => match $conv(v) {
                        Ok(x) => b.append_value(x),
                        Err(e) => {
                            errors.push((i, e));
                            b.append_null();
                        }
                    },
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match dt {
        DataType::Boolean => prim!(BooleanBuilder::new(), as_bool),
        DataType::Int32 => prim!(Int32Builder::new(), |v: &Value| -> Result<i32, String> {
            let i = as_i64(v)?;
            i32::try_from(i).map_err(|_| format!("{i} does not fit INT"))
        }),
        DataType::Int64 => prim!(Int64Builder::new(), as_i64),
        DataType::Float64 => prim!(Float64Builder::new(), as_f64),
        DataType::Utf8 => prim!(
            StringBuilder::new(),
            |v: &Value| -> Result<String, String> { Ok(as_text(v)) }
        ),
        DataType::Binary => prim!(BinaryBuilder::new(), |v: &Value| match v {
            Value::String(s) => b64_decode(s),
            other => Err(format!(
                "cannot read {other} as BYTES (base64 text expected)"
            )),
        }),
        DataType::Timestamp(TimeUnit::Millisecond, None) => {
            prim!(TimestampMillisecondBuilder::new(), as_millis)
        }
        DataType::Date32 => prim!(Date32Builder::new(), as_days),
        DataType::Time32(TimeUnit::Millisecond) => {
            prim!(Time32MillisecondBuilder::new(), |v: &Value| as_i64(v)
                .map(|x| x as i32))
        }
        DataType::Decimal128(p, s) => {
            let (p, s) = (*p, *s);
            let builder = Decimal128Builder::new()
                .with_precision_and_scale(p, s)
                .unwrap_or_default();
            prim!(builder, |v: &Value| {
                let text = match v {
                    Value::Number(n) => n.to_string(),
                    Value::String(t) => t.clone(),
                    other => return Err(format!("cannot read {other} as a decimal")),
                };
                parse_decimal(&text, p, s)
            })
        }
        _ => {
            let mut scalars = Vec::with_capacity(cells.len());
            for (i, c) in cells.iter().enumerate() {
                match to_scalar(*c, dt) {
                    Ok(s) => scalars.push(s),
                    Err(e) => {
                        errors.push((i, e));
                        scalars.push(ScalarValue::try_from(dt).unwrap_or(ScalarValue::Null));
                    }
                }
            }
            if scalars.is_empty() {
                return new_null_array(dt, 0);
            }
            match ScalarValue::iter_to_array(scalars) {
                Ok(a) if a.data_type() == dt => a,
                Ok(a) => datafusion::arrow::compute::cast(&a, dt)
                    .unwrap_or_else(|_| new_null_array(dt, cells.len())),
                Err(e) => {
                    for i in 0..cells.len() {
                        errors.push((i, e.to_string()));
                    }
                    new_null_array(dt, cells.len())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_exact_digits() {
        assert_eq!(parse_decimal("10.5", 6, 4).unwrap(), 105000);
        assert_eq!(parse_decimal("-0.07", 4, 2).unwrap(), -7);
        assert_eq!(parse_decimal("1.2345E+3", 10, 2).unwrap(), 123450);
        assert_eq!(parse_decimal("1.005", 5, 2).unwrap(), 101);
        assert!(parse_decimal("12345", 4, 0).is_err());
        assert!(parse_decimal("abc", 4, 0).is_err());
    }

    #[test]
    fn numeric_strings_are_coerced() {
        let v = Value::String("2".into());
        let mut errors = Vec::new();
        let a = build_column(
            &[Some(&v), None, Some(&Value::String("x".into()))],
            &DataType::Int32,
            &mut errors,
        );
        assert_eq!(a.len(), 3);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 2);
    }
}
