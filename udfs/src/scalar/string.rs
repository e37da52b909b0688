//! String (and BYTES) functions with ksqlDB semantics: `CONCAT`, `CONCAT_WS`, `SUBSTRING`, `LEN`,
//! `LPAD`, `RPAD`, `SPLIT`, `INSTR`, the `MASK` family, `SHA256` and `AS_VALUE`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, Int32Array, ListBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};
use sha2::{Digest, Sha256};

use super::map_strings;
use crate::udf::SimpleUdf;
use crate::value::{all_scalar, array_arg, binary_arg, int_arg, result, string_arg};

/// The string functions.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        SimpleUdf::udf("CONCAT", (1, 64), same_as_first_text, concat),
        SimpleUdf::udf("CONCAT_WS", (2, 64), same_as_first_text, concat_ws),
        SimpleUdf::udf("SUBSTRING", (2, 3), same_as_first_text, substring),
        SimpleUdf::udf("LEN", (1, 1), |_, _| Ok(DataType::Int32), len),
        SimpleUdf::udf("LPAD", (3, 3), same_as_first_text, |a, n, r| {
            pad(a, n, r, true)
        }),
        SimpleUdf::udf("RPAD", (3, 3), same_as_first_text, |a, n, r| {
            pad(a, n, r, false)
        }),
        SimpleUdf::udf("SPLIT", (2, 2), split_type, split),
        SimpleUdf::udf("INSTR", (2, 4), |_, _| Ok(DataType::Int32), instr),
        SimpleUdf::udf("MASK", (1, 5), string, |a, n, _| {
            mask_fn(a, n, MaskRange::All)
        }),
        SimpleUdf::udf("MASK_LEFT", (2, 6), string, |a, n, _| {
            mask_fn(a, n, MaskRange::Left)
        }),
        SimpleUdf::udf("MASK_RIGHT", (2, 6), string, |a, n, _| {
            mask_fn(a, n, MaskRange::Right)
        }),
        SimpleUdf::udf("MASK_KEEP_LEFT", (2, 6), string, |a, n, _| {
            mask_fn(a, n, MaskRange::KeepLeft)
        }),
        SimpleUdf::udf("MASK_KEEP_RIGHT", (2, 6), string, |a, n, _| {
            mask_fn(a, n, MaskRange::KeepRight)
        }),
        SimpleUdf::udf("SHA256", (1, 1), string, sha256),
        SimpleUdf::udf(
            "AS_VALUE",
            (1, 1),
            |t, _| Ok(t[0].clone()),
            |a, _, _| Ok(a[0].clone()),
        ),
    ]
}

fn string(_: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Utf8)
}

fn is_binary(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

fn same_as_first_text(args: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    Ok(if args.iter().any(is_binary) {
        DataType::Binary
    } else {
        DataType::Utf8
    })
}

fn split_type(args: &[DataType], _: &[Option<ScalarValue>]) -> Result<DataType> {
    Ok(DataType::new_list(same_as_first_text(args, &[])?, true))
}

fn first_is_binary(args: &[ColumnarValue]) -> bool {
    args.iter().any(|a| is_binary(&a.data_type()))
}

/// Runs `f` over byte-string arguments row by row; NULL handling is up to `f`.
fn map_bytes(
    args: &[ColumnarValue],
    rows: usize,
    f: impl Fn(&[Option<&[u8]>]) -> Option<Vec<u8>>,
) -> Result<ColumnarValue> {
    let cols = args
        .iter()
        .map(|a| binary_arg(a, rows))
        .collect::<Result<Vec<_>>>()?;
    let n = if all_scalar(args) { 1 } else { rows };
    let mut b = BinaryBuilder::new();
    let mut vals = Vec::with_capacity(cols.len());
    for i in 0..n {
        vals.clear();
        for c in &cols {
            vals.push((!c.is_null(i)).then(|| c.value(i)));
        }
        b.append_option(f(&vals));
    }
    result(Arc::new(b.finish()), args)
}

/// Runs `f` over string arguments row by row; NULL handling is up to `f`.
fn map_opt_strings(
    args: &[ColumnarValue],
    rows: usize,
    f: impl Fn(&[Option<&str>]) -> Option<String>,
) -> Result<ColumnarValue> {
    let cols = args
        .iter()
        .map(|a| string_arg(a, rows))
        .collect::<Result<Vec<_>>>()?;
    let n = if all_scalar(args) { 1 } else { rows };
    let mut b = StringBuilder::new();
    let mut vals = Vec::with_capacity(cols.len());
    for i in 0..n {
        vals.clear();
        for c in &cols {
            vals.push((!c.is_null(i)).then(|| c.value(i)));
        }
        b.append_option(f(&vals));
    }
    result(Arc::new(b.finish()), args)
}

fn concat(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    if first_is_binary(args) {
        return map_bytes(args, rows, |v| {
            Some(v.iter().flatten().flat_map(|b| b.iter().copied()).collect())
        });
    }
    map_opt_strings(args, rows, |v| Some(v.iter().flatten().copied().collect()))
}

fn concat_ws(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    if first_is_binary(args) {
        return map_bytes(args, rows, |v| {
            let sep = v[0]?;
            let parts: Vec<&[u8]> = v[1..].iter().flatten().copied().collect();
            Some(parts.join(sep))
        });
    }
    map_opt_strings(args, rows, |v| {
        let sep = v[0]?;
        let parts: Vec<&str> = v[1..].iter().flatten().copied().collect();
        Some(parts.join(sep))
    })
}

/// ksqlDB substring bounds: 1-based `pos`, negative counts from the end, 0 means the start.
fn substring_range(len: usize, pos: i64, count: Option<i64>) -> (usize, usize) {
    let len_i = len as i64;
    let start = if pos > 0 {
        pos - 1
    } else if pos < 0 {
        (len_i + pos).max(0)
    } else {
        0
    };
    let start = start.min(len_i);
    let end = match count {
        Some(c) => (start + c.max(0)).min(len_i),
        None => len_i,
    };
    (start as usize, end.max(start) as usize)
}

fn substring(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let pos = int_arg(&args[1], rows)?;
    let count = if args.len() == 3 {
        Some(int_arg(&args[2], rows)?)
    } else {
        None
    };
    let n = if all_scalar(args) { 1 } else { rows };
    let params = |i: usize| -> Option<(i64, Option<i64>)> {
        if pos.is_null(i) {
            return None;
        }
        let c = match &count {
            None => None,
            Some(c) if c.is_null(i) => return None,
            Some(c) => Some(c.value(i)),
        };
        Some((pos.value(i), c))
    };
    if first_is_binary(args) {
        let s = binary_arg(&args[0], rows)?;
        let mut b = BinaryBuilder::new();
        for i in 0..n {
            match (s.is_null(i), params(i)) {
                (false, Some((p, c))) => {
                    let v = s.value(i);
                    let (a, e) = substring_range(v.len(), p, c);
                    b.append_value(&v[a..e]);
                }
                _ => b.append_null(),
            }
        }
        return result(Arc::new(b.finish()), args);
    }
    let s = string_arg(&args[0], rows)?;
    let mut b = StringBuilder::new();
    for i in 0..n {
        match (s.is_null(i), params(i)) {
            (false, Some((p, c))) => {
                let chars: Vec<char> = s.value(i).chars().collect();
                let (a, e) = substring_range(chars.len(), p, c);
                b.append_value(chars[a..e].iter().collect::<String>());
            }
            _ => b.append_null(),
        }
    }
    result(Arc::new(b.finish()), args)
}

fn len(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let a = array_arg(&args[0], rows)?;
    let out: Int32Array = if is_binary(a.data_type()) {
        binary_arg(&args[0], rows)?
            .iter()
            .map(|v| v.map(|v| v.len() as i32))
            .collect()
    } else {
        string_arg(&args[0], rows)?
            .iter()
            .map(|v| v.map(|v| v.chars().count() as i32))
            .collect()
    };
    result(Arc::new(out), args)
}

fn pad_units<T: Clone>(subject: &[T], len: i64, padding: &[T], left: bool) -> Option<Vec<T>> {
    if len < 0 || padding.is_empty() {
        return None;
    }
    let len = len as usize;
    if subject.len() >= len {
        return Some(subject[..len].to_vec());
    }
    let need = len - subject.len();
    let fill: Vec<T> = padding.iter().cloned().cycle().take(need).collect();
    Some(if left {
        [fill, subject.to_vec()].concat()
    } else {
        [subject.to_vec(), fill].concat()
    })
}

fn pad(args: &[ColumnarValue], rows: usize, _: &DataType, left: bool) -> Result<ColumnarValue> {
    let lens = int_arg(&args[1], rows)?;
    let n = if all_scalar(args) { 1 } else { rows };
    if first_is_binary(args) {
        let s = binary_arg(&args[0], rows)?;
        let p = binary_arg(&args[2], rows)?;
        let mut b = BinaryBuilder::new();
        for i in 0..n {
            if s.is_null(i) || p.is_null(i) || lens.is_null(i) {
                b.append_null();
                continue;
            }
            b.append_option(pad_units(s.value(i), lens.value(i), p.value(i), left));
        }
        return result(Arc::new(b.finish()), args);
    }
    let s = string_arg(&args[0], rows)?;
    let p = string_arg(&args[2], rows)?;
    let mut b = StringBuilder::new();
    for i in 0..n {
        if s.is_null(i) || p.is_null(i) || lens.is_null(i) {
            b.append_null();
            continue;
        }
        let sc: Vec<char> = s.value(i).chars().collect();
        let pc: Vec<char> = p.value(i).chars().collect();
        b.append_option(
            pad_units(&sc, lens.value(i), &pc, left).map(|v| v.into_iter().collect::<String>()),
        );
    }
    result(Arc::new(b.finish()), args)
}

fn split(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let n = if all_scalar(args) { 1 } else { rows };
    let out: ArrayRef = if first_is_binary(args) {
        let s = binary_arg(&args[0], rows)?;
        let d = binary_arg(&args[1], rows)?;
        let mut b = ListBuilder::new(BinaryBuilder::new());
        for i in 0..n {
            if s.is_null(i) || d.is_null(i) {
                b.append_null();
                continue;
            }
            let (v, delim) = (s.value(i), d.value(i));
            if delim.is_empty() {
                for byte in v {
                    b.values().append_value([*byte]);
                }
            } else {
                let mut start = 0;
                let mut j = 0;
                while j + delim.len() <= v.len() {
                    if &v[j..j + delim.len()] == delim {
                        b.values().append_value(&v[start..j]);
                        j += delim.len();
                        start = j;
                    } else {
                        j += 1;
                    }
                }
                b.values().append_value(&v[start..]);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    } else {
        let s = string_arg(&args[0], rows)?;
        let d = string_arg(&args[1], rows)?;
        let mut b = ListBuilder::new(StringBuilder::new());
        for i in 0..n {
            if s.is_null(i) || d.is_null(i) {
                b.append_null();
                continue;
            }
            let (v, delim) = (s.value(i), d.value(i));
            if delim.is_empty() {
                for c in v.chars() {
                    b.values().append_value(c.to_string());
                }
            } else {
                for part in v.split(delim) {
                    b.values().append_value(part);
                }
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    result(out, args)
}

/// Oracle-style `INSTR`: 1-based position of the `occurrence`-th match searching from `pos`
/// (backwards when `pos` is negative); 0 when not found.
fn instr_one(s: &str, sub: &str, pos: i64, occurrence: i64) -> i32 {
    let chars: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let len = chars.len() as i64;
    if occurrence <= 0 || needle.is_empty() || pos == 0 {
        return 0;
    }
    let matches_at = |i: i64| -> bool {
        i >= 0
            && i + needle.len() as i64 <= len
            && chars[i as usize..i as usize + needle.len()] == needle[..]
    };
    let mut found = 0;
    if pos > 0 {
        let mut i = pos - 1;
        while i < len {
            if matches_at(i) {
                found += 1;
                if found == occurrence {
                    return (i + 1) as i32;
                }
            }
            i += 1;
        }
    } else {
        let mut i = len + pos;
        while i >= 0 {
            if matches_at(i) {
                found += 1;
                if found == occurrence {
                    return (i + 1) as i32;
                }
            }
            i -= 1;
        }
    }
    0
}

fn instr(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    let s = string_arg(&args[0], rows)?;
    let sub = string_arg(&args[1], rows)?;
    let pos = if args.len() > 2 {
        Some(int_arg(&args[2], rows)?)
    } else {
        None
    };
    let occ = if args.len() > 3 {
        Some(int_arg(&args[3], rows)?)
    } else {
        None
    };
    let n = if all_scalar(args) { 1 } else { rows };
    let get = |a: &Option<datafusion::arrow::array::Int64Array>, i: usize, d: i64| -> Option<i64> {
        match a {
            None => Some(d),
            Some(a) => (!a.is_null(i)).then(|| a.value(i)),
        }
    };
    let out: Int32Array = (0..n)
        .map(|i| {
            if s.is_null(i) || sub.is_null(i) {
                return None;
            }
            Some(instr_one(
                s.value(i),
                sub.value(i),
                get(&pos, i, 1)?,
                get(&occ, i, 1)?,
            ))
        })
        .collect();
    result(Arc::new(out), args)
}

#[derive(Clone, Copy)]
enum MaskRange {
    All,
    Left,
    Right,
    KeepLeft,
    KeepRight,
}

/// Replacement characters for upper, lower, digit and other characters; `None` keeps the character.
type MaskChars = [Option<char>; 4];

fn mask_char(c: char, m: &MaskChars) -> char {
    let slot = if c.is_uppercase() {
        0
    } else if c.is_lowercase() {
        1
    } else if c.is_ascii_digit() {
        2
    } else {
        3
    };
    m[slot].unwrap_or(c)
}

fn mask_fn(args: &[ColumnarValue], rows: usize, range: MaskRange) -> Result<ColumnarValue> {
    let with_count = !matches!(range, MaskRange::All);
    let first_char = if with_count { 2 } else { 1 };
    let counts = if with_count {
        Some(int_arg(&args[1], rows)?)
    } else {
        None
    };
    let s = string_arg(&args[0], rows)?;
    let mut chars: Vec<Option<datafusion::arrow::array::StringArray>> = Vec::new();
    for a in args.iter().skip(first_char) {
        chars.push(Some(string_arg(a, rows)?));
    }
    let n = if all_scalar(args) { 1 } else { rows };
    let defaults = ['X', 'x', 'n', '-'];
    let mut b = StringBuilder::new();
    for i in 0..n {
        if s.is_null(i) || counts.as_ref().is_some_and(|c| c.is_null(i)) {
            b.append_null();
            continue;
        }
        let mut m: MaskChars = [
            Some(defaults[0]),
            Some(defaults[1]),
            Some(defaults[2]),
            Some(defaults[3]),
        ];
        for (slot, c) in chars.iter().enumerate() {
            if let Some(c) = c {
                m[slot] = if c.is_null(i) {
                    None
                } else {
                    c.value(i).chars().next()
                };
            }
        }
        let v: Vec<char> = s.value(i).chars().collect();
        let len = v.len();
        let k = counts
            .as_ref()
            .map(|c| c.value(i).max(0) as usize)
            .unwrap_or(0)
            .min(len);
        let masked: String = v
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let hide = match range {
                    MaskRange::All => true,
                    MaskRange::Left => j < k,
                    MaskRange::Right => j >= len - k,
                    MaskRange::KeepLeft => j >= k,
                    MaskRange::KeepRight => j < len - k,
                };
                if hide { mask_char(*c, &m) } else { *c }
            })
            .collect();
        b.append_value(masked);
    }
    result(Arc::new(b.finish()), args)
}

fn sha256(args: &[ColumnarValue], rows: usize, _: &DataType) -> Result<ColumnarValue> {
    map_strings(args, rows, |v| {
        let digest = Sha256::digest(v[0].as_bytes());
        Some(digest.iter().map(|b| format!("{b:02x}")).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instr_searches_like_ksql() {
        assert_eq!(instr_one("corporate floor", "or", -4, 1), 5);
        assert_eq!(instr_one("corporate floor", "or", -4, 2), 2);
        assert_eq!(instr_one("corporate floor", "or", 4, 2), 14);
        assert_eq!(instr_one("short", "or", -4, 2), 0);
    }

    #[test]
    fn substring_bounds() {
        assert_eq!(substring_range(11, 6, None), (5, 11));
        assert_eq!(substring_range(5, 6, Some(3)), (5, 5));
        assert_eq!(substring_range(11, 0, Some(2)), (0, 2));
        assert_eq!(substring_range(11, -3, None), (8, 11));
    }

    #[test]
    fn masks_characters_by_class() {
        let out = mask_fn(
            &[ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                "Ab1-z".into(),
            )))],
            1,
            MaskRange::All,
        )
        .unwrap();
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))) = out else {
            panic!("scalar expected")
        };
        assert_eq!(s, "Xxn-x");
    }

    #[test]
    fn sha256_is_hex() {
        let out = sha256(
            &[ColumnarValue::Scalar(ScalarValue::Utf8(Some("abc".into())))],
            1,
            &DataType::Utf8,
        )
        .unwrap();
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))) = out else {
            panic!("scalar expected")
        };
        assert_eq!(
            s,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
