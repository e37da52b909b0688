//! Writes Arrow values as text: JSON for the JSON format, plain fields for DELIMITED, and the
//! ksqlDB conventions for both (Java double text, exact DECIMAL scale, base64 BYTES, epoch numbers
//! for temporal types).

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::*;

use super::convert::b64_encode;
use riffle_udfs::value::java_double;

/// Formats an unscaled decimal with its scale (`12345`, 2 → `123.45`).
pub fn decimal_text(v: i128, scale: i8) -> String {
    if scale <= 0 {
        return (v * 10i128.pow((-scale) as u32)).to_string();
    }
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let s = scale as usize;
    let padded = if digits.len() <= s {
        format!("{}{}", "0".repeat(s - digits.len() + 1), digits)
    } else {
        digits
    };
    let (i, f) = padded.split_at(padded.len() - s);
    format!("{}{i}.{f}", if neg { "-" } else { "" })
}

fn json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// Appends the JSON text of `a[i]`.
pub fn write_json(out: &mut String, a: &ArrayRef, i: usize) {
    if a.is_null(i) {
        out.push_str("null");
        return;
    }
    match a.data_type() {
        DataType::Boolean => out.push_str(if a.as_boolean().value(i) {
            "true"
        } else {
            "false"
        }),
        DataType::Int8 => out.push_str(&a.as_primitive::<Int8Type>().value(i).to_string()),
        DataType::Int16 => out.push_str(&a.as_primitive::<Int16Type>().value(i).to_string()),
        DataType::Int32 => out.push_str(&a.as_primitive::<Int32Type>().value(i).to_string()),
        DataType::Int64 => out.push_str(&a.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::UInt64 => out.push_str(&a.as_primitive::<UInt64Type>().value(i).to_string()),
        DataType::Float64 => {
            let v = a.as_primitive::<Float64Type>().value(i);
            if v.is_finite() {
                out.push_str(&java_double(v))
            } else {
                json_string(out, &java_double(v))
            }
        }
        DataType::Float32 => {
            out.push_str(&java_double(a.as_primitive::<Float32Type>().value(i) as f64))
        }
        DataType::Decimal128(_, s) => out.push_str(&decimal_text(
            a.as_primitive::<Decimal128Type>().value(i),
            *s,
        )),
        DataType::Utf8 => json_string(out, a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => json_string(out, a.as_string::<i64>().value(i)),
        DataType::Utf8View => json_string(out, a.as_string_view().value(i)),
        DataType::Binary => json_string(out, &b64_encode(a.as_binary::<i32>().value(i))),
        DataType::Timestamp(TimeUnit::Millisecond, _) => out.push_str(
            &a.as_primitive::<TimestampMillisecondType>()
                .value(i)
                .to_string(),
        ),
        DataType::Timestamp(_, _) | DataType::Date64 | DataType::Time64(_) => {
            let c = datafusion::arrow::compute::cast(a, &DataType::Int64);
            match c {
                Ok(c) => out.push_str(&c.as_primitive::<Int64Type>().value(i).to_string()),
                Err(_) => out.push_str("null"),
            }
        }
        DataType::Date32 => out.push_str(&a.as_primitive::<Date32Type>().value(i).to_string()),
        DataType::Time32(TimeUnit::Millisecond) => out.push_str(
            &a.as_primitive::<Time32MillisecondType>()
                .value(i)
                .to_string(),
        ),
        DataType::List(_) => {
            let inner = a.as_list::<i32>().value(i);
            out.push('[');
            for j in 0..inner.len() {
                if j > 0 {
                    out.push(',');
                }
                write_json(out, &inner, j);
            }
            out.push(']');
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            out.push('{');
            for (j, f) in fields.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                json_string(out, f.name());
                out.push(':');
                write_json(out, s.column(j), i);
            }
            out.push('}');
        }
        DataType::Map(_, _) => {
            let entries = a.as_map().value(i);
            let (k, v) = (entries.column(0), entries.column(1));
            out.push('{');
            for j in 0..entries.len() {
                if j > 0 {
                    out.push(',');
                }
                json_string(out, &plain_text(k, j).unwrap_or_default());
                out.push(':');
                write_json(out, v, j);
            }
            out.push('}');
        }
        DataType::Null => out.push_str("null"),
        _ => {
            let f = datafusion::arrow::util::display::ArrayFormatter::try_new(
                a.as_ref(),
                &Default::default(),
            );
            match f {
                Ok(f) => json_string(out, &f.value(i).to_string()),
                Err(_) => out.push_str("null"),
            }
        }
    }
}

/// The plain text of `a[i]` (strings unquoted), or `None` for NULL.
pub fn plain_text(a: &ArrayRef, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
        DataType::Utf8View => a.as_string_view().value(i).to_string(),
        DataType::Binary => b64_encode(a.as_binary::<i32>().value(i)),
        _ => {
            let mut s = String::new();
            write_json(&mut s, a, i);
            s
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_keeps_scale() {
        assert_eq!(decimal_text(105000, 4), "10.5000");
        assert_eq!(decimal_text(-7, 2), "-0.07");
        assert_eq!(decimal_text(5, 0), "5");
        assert_eq!(decimal_text(123, 5), "0.00123");
    }
}
