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
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?))
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
    let DataType::Map(entries_field, sorted) = map_type(key_type.clone(), value_type.clone()) else {
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
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let abs = v.abs();
    if (1e-3..1e7).contains(&abs) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        // Rust's `{:e}` gives the shortest round-trip digits: "1.5e-4" / "1e10".
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
        format!("{mantissa}E{exp}")
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
        assert_eq!(java_double(1.7976931348623157e308), "1.7976931348623157E308");
    }
}
