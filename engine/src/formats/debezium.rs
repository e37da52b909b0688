//! `DEBEZIUM_JSON`: Debezium's change-event envelope (`before`, `after`, `op`, `source`), with or
//! without the `schema`/`payload` wrapper, read as a changelog. Creates, snapshot reads and
//! updates become upserts of the `after` image; deletes remove the key of the `before` image;
//! Kafka tombstones (the null value Debezium sends after a delete) remove their key as well.
//! Key columns come from the row image, falling back to the record key (a JSON object, wrapped
//! or not, or a bare value).

use riffle_sql::plan::ChangeOp;
use serde_json::Value;

use super::convert::lookup;

/// One decoded change: key cells, value cells and the change kind.
pub type Change = (Vec<Option<Value>>, Vec<Option<Value>>, ChangeOp);

fn first_json(bytes: &[u8]) -> Result<Value, String> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .next()
        .ok_or_else(|| "empty JSON".to_string())?
        .map_err(|e| format!("invalid JSON: {e}"))
}

/// Strips Kafka Connect's `{"schema": …, "payload": …}` wrapper when present.
fn unwrap_payload(v: Value) -> Value {
    match v {
        Value::Object(mut obj) if obj.contains_key("payload") && obj.contains_key("schema") => {
            obj.remove("payload").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// Key cells from a record key: an object's fields by name, or a bare value for one column.
fn key_from_bytes(key: Option<&[u8]>, names: &[String]) -> Result<Vec<Option<Value>>, String> {
    let Some(bytes) = key else {
        return Ok(vec![None; names.len()]);
    };
    let v = match first_json(bytes) {
        Ok(v) => unwrap_payload(v),
        // A plain-text key (e.g. a KAFKA-format string).
        Err(_) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
    };
    Ok(match v {
        Value::Object(obj) => names.iter().map(|n| lookup(&obj, n).cloned()).collect(),
        Value::Null => vec![None; names.len()],
        other if names.len() == 1 => vec![Some(other)],
        other => {
            return Err(format!(
                "the record key {other} does not name the {} key columns",
                names.len()
            ));
        }
    })
}

/// Decodes one Debezium record. `value` is `None` for a tombstone.
pub fn decode_change(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    key_names: &[String],
    value_names: &[String],
) -> Result<Change, String> {
    let Some(value) = value else {
        let keys = key_from_bytes(key, key_names)?;
        return Ok((keys, vec![None; value_names.len()], ChangeOp::Delete));
    };
    let envelope = match unwrap_payload(first_json(value)?) {
        Value::Object(obj) => obj,
        Value::Null => {
            let keys = key_from_bytes(key, key_names)?;
            return Ok((keys, vec![None; value_names.len()], ChangeOp::Delete));
        }
        other => return Err(format!("expected a Debezium change event, got {other}")),
    };
    let op = match envelope.get("op") {
        Some(Value::String(op)) => op.as_str(),
        _ => {
            return Err(
                "not a Debezium change event: the envelope has no \"op\" field".to_string(),
            );
        }
    };
    let (image_field, kind) = match op {
        "c" | "r" | "u" => ("after", ChangeOp::Insert),
        "d" => ("before", ChangeOp::Delete),
        "t" => return Err("Debezium truncate events carry no row; skipped".to_string()),
        "m" => return Err("Debezium message events carry no row; skipped".to_string()),
        other => return Err(format!("unknown Debezium operation \"{other}\"")),
    };
    let image = match envelope.get(image_field) {
        Some(Value::Object(img)) => Some(img),
        Some(Value::Null) | None if kind == ChangeOp::Delete => None,
        _ => {
            return Err(format!(
                "Debezium \"{op}\" event without an \"{image_field}\" row image"
            ));
        }
    };
    let mut keys: Vec<Option<Value>> = key_names
        .iter()
        .map(|n| image.and_then(|img| lookup(img, n).cloned()))
        .collect();
    if keys.iter().any(Option::is_none) {
        let from_key = key_from_bytes(key, key_names)?;
        for (k, alt) in keys.iter_mut().zip(from_key) {
            if k.is_none() {
                *k = alt;
            }
        }
    }
    let values = value_names
        .iter()
        .map(|n| image.and_then(|img| lookup(img, n).cloned()))
        .collect();
    Ok((keys, values, kind))
}

#[cfg(test)]
mod tests {
    use riffle_sql::plan::ChangeOp;
    use serde_json::json;

    use super::decode_change;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_uppercase()).collect()
    }

    #[test]
    fn reads_each_operation_with_and_without_the_schema_wrapper() {
        let k = names(&["id"]);
        let v = names(&["status"]);
        let create = json!({"before": null, "after": {"id": 7, "status": "new"}, "op": "c",
                            "source": {"table": "leads"}});
        let (keys, vals, op) =
            decode_change(None, Some(create.to_string().as_bytes()), &k, &v).unwrap();
        assert_eq!(
            (keys, vals, op),
            (
                vec![Some(json!(7))],
                vec![Some(json!("new"))],
                ChangeOp::Insert
            )
        );

        let update = json!({"schema": {"type": "struct"}, "payload": {
            "before": {"id": 7, "status": "new"}, "after": {"id": 7, "status": "qualified"},
            "op": "u"}});
        let (_, vals, op) =
            decode_change(None, Some(update.to_string().as_bytes()), &k, &v).unwrap();
        assert_eq!(
            (vals, op),
            (vec![Some(json!("qualified"))], ChangeOp::Insert)
        );

        let delete = json!({"before": {"id": 7, "status": "qualified"}, "after": null, "op": "d"});
        let (keys, _, op) =
            decode_change(None, Some(delete.to_string().as_bytes()), &k, &v).unwrap();
        assert_eq!((keys, op), (vec![Some(json!(7))], ChangeOp::Delete));

        let tombstone_key = json!({"schema": {}, "payload": {"id": 7}}).to_string();
        let (keys, _, op) = decode_change(Some(tombstone_key.as_bytes()), None, &k, &v).unwrap();
        assert_eq!((keys, op), (vec![Some(json!(7))], ChangeOp::Delete));
    }

    #[test]
    fn rejects_what_is_not_a_change_event() {
        let k = names(&["id"]);
        let err = decode_change(None, Some(br#"{"id": 1}"#), &k, &[]).unwrap_err();
        assert!(err.contains("no \"op\""), "{err}");
        let err = decode_change(None, Some(br#"{"op": "t"}"#), &k, &[]).unwrap_err();
        assert!(err.contains("truncate"), "{err}");
        let err = decode_change(None, Some(b"{not json"), &k, &[]).unwrap_err();
        assert!(err.contains("invalid JSON"), "{err}");
    }
}
