//! Numeric functions with ksqlDB's result types: `ROUND`, `CEIL`, `FLOOR`, `SIGN`, `SQRT`, `EXP`,
//! `LN`, `LOG`, `POWER`, `MOD`, `RANDOM`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int32Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

use super::arity;
use crate::udf::SimpleUdf;
use crate::value::{array_arg, int_arg, result};

/// The numeric functions.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        SimpleUdf::udf("ROUND", (1, 2), round_type, round),
        SimpleUdf::udf("CEIL", (1, 1), ceil_floor_type, ceil),
        SimpleUdf::udf("FLOOR", (1, 1), ceil_floor_type, floor),
        SimpleUdf::udf("SIGN", (1, 1), |_, _| Ok(DataType::Int32), sign),
        SimpleUdf::udf("SQRT", (1, 1), double, |a, n, _| unary_f64(a, n, f64::sqrt)),
        SimpleUdf::udf("EXP", (1, 1), double, |a, n, _| unary_f64(a, n, f64::exp)),
        SimpleUdf::udf("LN", (1, 1), double, |a, n, _| unary_f64(a, n, f64::ln)),
        SimpleUdf::udf("LOG", (1, 2), double, log),
        SimpleUdf::udf("POWER", (2, 2), double, power),
        SimpleUdf::udf("MOD", (2, 2), mod_type, modulo),
        SimpleUdf::volatile_udf("RANDOM", (0, 0), double, random),
    ]
}

fn mod_type(args: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    Ok(
        if args.iter().all(|t| is_integer(t) || *t == DataType::Null) {
            DataType::Int64
        } else {
            DataType::Float64
        },
    )
}

/// `MOD(a, b)`: the remainder of `a / b` with the sign of `a`; NULL when `b` is zero.
fn modulo(args: &[ColumnarValue], rows: usize, out: &DataType) -> Result<ColumnarValue> {
    let a = cast(&array_arg(&args[0], rows)?, out)?;
    let b = cast(&array_arg(&args[1], rows)?, out)?;
    let zero = datafusion::arrow::compute::kernels::cmp::eq(
        &b,
        &datafusion::arrow::array::Scalar::new(cast(
            &datafusion::arrow::array::Int64Array::from(vec![0]),
            out,
        )?),
    )?;
    let b = datafusion::arrow::compute::nullif(&b, &zero)?;
    result(
        datafusion::arrow::compute::kernels::numeric::rem(&a, &b)?,
        args,
    )
}

fn double(_: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Float64)
}

fn is_integer(dt: &DataType) -> bool {
    dt.is_integer()
}

fn round_type(args: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    Ok(match (&args[0], args.len()) {
        (DataType::Decimal128(p, s), 1) => {
            DataType::Decimal128(((*p as i16 - *s as i16).max(1)) as u8, 0)
        }
        (DataType::Decimal128(p, s), _) => DataType::Decimal128(*p, *s),
        (dt, _) if is_integer(dt) => dt.clone(),
        (DataType::Null, _) => DataType::Int64,
        (_, 1) => DataType::Int64,
        _ => DataType::Float64,
    })
}

fn ceil_floor_type(args: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    Ok(match &args[0] {
        DataType::Decimal128(p, s) => {
            DataType::Decimal128(((*p as i16 - *s as i16).max(1)) as u8, 0)
        }
        dt if is_integer(dt) => dt.clone(),
        _ => DataType::Float64,
    })
}

fn f64_arg(v: &ColumnarValue, rows: usize) -> Result<Float64Array> {
    let a = array_arg(v, rows)?;
    Ok(cast(&a, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

fn unary_f64(args: &[ColumnarValue], rows: usize, f: fn(f64) -> f64) -> Result<ColumnarValue> {
    let a = f64_arg(&args[0], rows)?;
    let out: Float64Array = a.iter().map(|v| v.map(f)).collect();
    result(Arc::new(out), args)
}

fn log(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    if args.len() == 1 {
        return unary_f64(args, rows, f64::ln);
    }
    let b = f64_arg(&args[0], rows)?;
    let x = f64_arg(&args[1], rows)?;
    let out: Float64Array = b
        .iter()
        .zip(x.iter())
        .map(|(b, x)| Some(x?.ln() / b?.ln()))
        .collect();
    result(Arc::new(out), args)
}

fn power(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let b = f64_arg(&args[0], rows)?;
    let e = f64_arg(&args[1], rows)?;
    let out: Float64Array = b
        .iter()
        .zip(e.iter())
        .map(|(b, e)| Some(b?.powf(e?)))
        .collect();
    result(Arc::new(out), args)
}

fn random(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let out: Float64Array = (0..rows.max(1))
        .map(|_| {
            // splitmix64: good enough for RANDOM(), which promises no particular distribution quality.
            let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            Some((z >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect();
    let _ = args;
    Ok(ColumnarValue::Array(Arc::new(out)))
}

fn sign(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let a = f64_arg(&args[0], rows)?;
    let out: Int32Array = a
        .iter()
        .map(|v| {
            v.map(|v| {
                if v > 0.0 {
                    1
                } else if v < 0.0 {
                    -1
                } else {
                    0
                }
            })
        })
        .collect();
    result(Arc::new(out), args)
}

/// Java's `Math.round`: half rounds toward positive infinity.
fn java_round(v: f64) -> f64 {
    (v + 0.5).floor()
}

/// Rounds a scaled decimal value to `places` fractional digits, half away from zero (HALF_UP).
fn round_decimal(v: i128, scale: i8, places: i64) -> i128 {
    let drop = scale as i64 - places;
    if drop <= 0 {
        return v;
    }
    let f = 10i128.pow(drop as u32);
    let q = v / f;
    let r = v % f;
    let adj = if r.abs() * 2 >= f { v.signum() } else { 0 };
    (q + adj) * f
}

fn round(args: &[ColumnarValue], rows: usize, ret: &DataType) -> Result<ColumnarValue> {
    arity("ROUND", args, 1, 2)?;
    let a = array_arg(&args[0], rows)?;
    let places = if args.len() == 2 {
        Some(int_arg(&args[1], rows)?)
    } else {
        None
    };
    let place = |i: usize| -> Option<i64> {
        match &places {
            None => Some(0),
            Some(p) => (!p.is_null(i)).then(|| p.value(i)),
        }
    };
    let out: ArrayRef = match (a.data_type(), ret) {
        (DataType::Decimal128(_, s), DataType::Decimal128(p2, s2)) => {
            let d = a.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
            let s = *s;
            let vals: Decimal128Array = (0..d.len())
                .map(|i| {
                    if d.is_null(i) {
                        return None;
                    }
                    let places = place(i)?;
                    let r = round_decimal(d.value(i), s, places);
                    // Re-express at the result scale.
                    let diff = *s2 as i32 - s as i32;
                    Some(if diff >= 0 {
                        r * 10i128.pow(diff as u32)
                    } else {
                        r / 10i128.pow((-diff) as u32)
                    })
                })
                .collect();
            Arc::new(vals.with_precision_and_scale(*p2, *s2)?)
        }
        (dt, _) if is_integer(dt) => a.clone(),
        (_, DataType::Int64) => {
            let f = f64_arg(&args[0], rows)?;
            let out: datafusion::arrow::array::Int64Array =
                f.iter().map(|v| v.map(|v| java_round(v) as i64)).collect();
            Arc::new(out)
        }
        (_, _) => {
            let f = f64_arg(&args[0], rows)?;
            let out: Float64Array = (0..f.len())
                .map(|i| {
                    if f.is_null(i) {
                        return None;
                    }
                    let p = place(i)?;
                    let m = 10f64.powi(p as i32);
                    Some(java_round(f.value(i) * m) / m)
                })
                .collect();
            Arc::new(out)
        }
    };
    result(out, args)
}

fn ceil_floor(
    args: &[ColumnarValue],
    rows: usize,
    ret: &DataType,
    up: bool,
) -> Result<ColumnarValue> {
    let a = array_arg(&args[0], rows)?;
    let out: ArrayRef = match (a.data_type(), ret) {
        (DataType::Decimal128(_, s), DataType::Decimal128(p2, _)) => {
            let d = a.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>();
            let f = 10i128.pow(*s as u32);
            let vals: Decimal128Array = d
                .iter()
                .map(|v| {
                    v.map(|v| {
                        let q = v.div_euclid(f);
                        let r = v.rem_euclid(f);
                        if up && r != 0 { q + 1 } else { q }
                    })
                })
                .collect();
            Arc::new(vals.with_precision_and_scale(*p2, 0)?)
        }
        (dt, _) if is_integer(dt) => a.clone(),
        _ => {
            let f = f64_arg(&args[0], rows)?;
            let out: Float64Array = f
                .iter()
                .map(|v| v.map(|v| if up { v.ceil() } else { v.floor() }))
                .collect();
            Arc::new(out)
        }
    };
    result(out, args)
}

fn ceil(args: &[ColumnarValue], rows: usize, ret: &DataType) -> Result<ColumnarValue> {
    ceil_floor(args, rows, ret, true)
}

fn floor(args: &[ColumnarValue], rows: usize, ret: &DataType) -> Result<ColumnarValue> {
    ceil_floor(args, rows, ret, false)
}

/// Guard used by planners: the numeric functions accept numbers only.
pub fn check_numeric(name: &str, dt: &DataType) -> Result<()> {
    if dt.is_numeric() || matches!(dt, DataType::Null) {
        Ok(())
    } else {
        exec_err!("{name} expects a number, got {dt}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_rounding_is_half_up() {
        assert_eq!(round_decimal(125, 2, 1), 130);
        assert_eq!(round_decimal(-125, 2, 1), -130);
        assert_eq!(round_decimal(124, 2, 1), 120);
        assert_eq!(java_round(-2.5), -2.0);
        assert_eq!(java_round(2.5), 3.0);
    }
}
