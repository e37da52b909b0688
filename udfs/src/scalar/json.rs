//! `EXTRACTJSONFIELD(json, path)`: reads one value out of a JSON string with a `$.a.b[0]` path.

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::ScalarUDF;
use serde_json::Value;

use super::map_strings;
use crate::udf::SimpleUdf;

/// The JSON functions.
pub fn functions() -> Vec<ScalarUDF> {
    vec![SimpleUdf::udf(
        "EXTRACTJSONFIELD",
        (2, 2),
        |_, _| Ok(DataType::Utf8),
        |args, rows, _| map_strings(args, rows, |v| extract(v[0], v[1])),
    )]
}

enum Step {
    Field(String),
    Index(i64),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let rest = path.strip_prefix('$')?;
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
                    j += 1;
                }
                steps.push(Step::Field(chars[start..j].iter().collect()));
                i = j;
            }
            '[' => {
                let close = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if let Some(q) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                    steps.push(Step::Field(q.to_string()));
                } else if let Some(q) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    steps.push(Step::Field(q.to_string()));
                } else {
                    steps.push(Step::Index(inner.parse().ok()?));
                }
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

/// Returns the value at `path` as text: strings unquoted, anything else as JSON.
pub fn extract(json: &str, path: &str) -> Option<String> {
    let steps = parse_path(path)?;
    // Like Jackson, read the first JSON value and ignore trailing text.
    let mut cur: Value = serde_json::Deserializer::from_str(json)
        .into_iter::<Value>()
        .next()?
        .ok()?;
    for s in steps {
        cur = match (s, cur) {
            (Step::Field(f), Value::Object(mut m)) => m.remove(&f)?,
            (Step::Index(i), Value::Array(mut a)) if i >= 0 && (i as usize) < a.len() => {
                a.swap_remove(i as usize)
            }
            _ => return None,
        };
    }
    match cur {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_nested_fields() {
        let j =
            r#"{"name":"riffle","version":1,"@type":"x","array":[1,{"a":2}],"obj":{"b":[true]}}"#;
        assert_eq!(extract(j, "$.name").as_deref(), Some("riffle"));
        assert_eq!(extract(j, "$.version").as_deref(), Some("1"));
        assert_eq!(extract(j, "$.@type").as_deref(), Some("x"));
        assert_eq!(extract(j, "$.array[1].a").as_deref(), Some("2"));
        assert_eq!(extract(j, "$.array[-1]"), None);
        assert_eq!(extract(j, "$.obj").as_deref(), Some(r#"{"b":[true]}"#));
        assert_eq!(extract("not json", "$.a"), None);
    }
}
