//! Runs one QTT case against an embedded engine, reproducing the Java runner's execution model:
//! statements in order; then, query by query in creation order, each input record of the query's
//! source topics is produced and processed before the next (one record per batch, every update
//! emitted); then outputs are decoded with the sink's formats and compared in order per topic.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::anyhow;
use base64::Engine as _;
use datafusion::arrow::datatypes::DataType;
use riffle_engine::record::Record;
use riffle_engine::{Engine, EngineConfig, StatementResult};
use riffle_sql::ast::SourceKind;
use riffle_sql::catalog::{FormatKind, SourceDef};
use riffle_sql::types::SqlType;
use serde_json::Value;

use super::compare::compare;
use super::model::{Case, Post, TestRecord};

/// The outcome of a case.
pub enum Outcome {
    /// It passed.
    Pass,
    /// It failed, with the reason.
    Fail(String),
}

fn kafka_bytes(spec: &Value, ty: &DataType) -> Result<Vec<u8>, String> {
    let num = |v: &Value| -> Result<f64, String> {
        match v {
            Value::Number(n) => n.to_string().parse().map_err(|_| format!("bad number {n}")),
            Value::String(s) => s.parse().map_err(|_| format!("bad number {s}")),
            other => Err(format!("cannot write {other} as a number")),
        }
    };
    Ok(match ty {
        DataType::Int32 => (num(spec)? as i32).to_be_bytes().to_vec(),
        DataType::Int64 => (num(spec)? as i64).to_be_bytes().to_vec(),
        DataType::Float64 => num(spec)?.to_be_bytes().to_vec(),
        DataType::Binary | DataType::Utf8 => match spec {
            Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        },
        other => return Err(format!("the KAFKA format cannot hold {other}")),
    })
}

/// Serializes a key or value spec with a relation's format.
fn serialize(
    spec: &Value,
    format: FormatKind,
    columns: &[(String, DataType)],
) -> Result<Option<Vec<u8>>, String> {
    if spec.is_null() {
        return Ok(None);
    }
    Ok(Some(match format {
        FormatKind::None => return Ok(None),
        FormatKind::Kafka => match columns.first() {
            Some((_, ty)) => kafka_bytes(spec, ty)?,
            None => match spec {
                Value::String(s) => s.clone().into_bytes(),
                other => other.to_string().into_bytes(),
            },
        },
        FormatKind::Delimited => match spec {
            Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        },
        _ => spec.to_string().into_bytes(),
    }))
}

fn key_columns(def: &SourceDef) -> Vec<(String, DataType)> {
    def.key_columns()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect()
}

fn value_columns(def: &SourceDef) -> Vec<(String, DataType)> {
    def.value_columns()
        .filter(|c| c.header.is_none())
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect()
}

fn input_record(r: &TestRecord, owner: Option<&SourceDef>) -> Result<Record, String> {
    let (kf, vf, kc, vc) = match owner {
        Some(d) => (
            d.key_format.kind,
            d.value_format.kind,
            key_columns(d),
            value_columns(d),
        ),
        None => (FormatKind::Json, FormatKind::Json, vec![], vec![]),
    };
    let mut key = match &r.key {
        None => None,
        Some(k) => serialize(k, kf, &kc)?,
    };
    if let Some(w) = &r.window {
        let mut k = key.unwrap_or_default();
        if w.kind.eq_ignore_ascii_case("session") {
            k.extend_from_slice(&w.end.to_be_bytes());
        }
        k.extend_from_slice(&w.start.to_be_bytes());
        key = Some(k);
    }
    let value = serialize(&r.value, vf, &vc)?;
    let headers = r
        .headers
        .iter()
        .flatten()
        .map(|h| {
            let k = h
                .get("KEY")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let v = h
                .get("VALUE")
                .and_then(Value::as_str)
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
            (k, v)
        })
        .collect();
    Ok(Record {
        key,
        value,
        timestamp: r.timestamp.unwrap_or(0),
        headers,
    })
}

/// Turns output bytes back into a comparable JSON value with the relation's format.
fn deserialize(
    bytes: &Option<Vec<u8>>,
    format: FormatKind,
    columns: &[(String, DataType)],
) -> Result<Value, String> {
    let Some(b) = bytes else {
        return Ok(Value::Null);
    };
    Ok(match format {
        FormatKind::None => Value::Null,
        FormatKind::Delimited => {
            Value::String(String::from_utf8(b.clone()).map_err(|e| e.to_string())?)
        }
        FormatKind::Kafka => {
            let ty = columns
                .first()
                .map(|c| c.1.clone())
                .unwrap_or(DataType::Utf8);
            let arr: [u8; 8] = b.as_slice().try_into().unwrap_or([0; 8]);
            match ty {
                DataType::Int32 => {
                    let a: [u8; 4] = b
                        .as_slice()
                        .try_into()
                        .map_err(|_| "expected 4 bytes".to_string())?;
                    Value::from(i32::from_be_bytes(a))
                }
                DataType::Int64 => Value::from(i64::from_be_bytes(arr)),
                DataType::Float64 => {
                    let text = riffle_udfs::value::java_double(f64::from_be_bytes(arr));
                    serde_json::from_str(&text).unwrap_or(Value::Null)
                }
                _ => Value::String(String::from_utf8_lossy(b).to_string()),
            }
        }
        _ => serde_json::from_slice(b).map_err(|e| format!("output is not JSON: {e}"))?,
    })
}

fn struct_of(cols: &[(String, DataType)]) -> DataType {
    DataType::Struct(
        cols.iter()
            .map(|(n, t)| datafusion::arrow::datatypes::Field::new(n, t.clone(), true))
            .collect::<Vec<_>>()
            .into(),
    )
}

/// The type used to compare a key or value: the single column's type, or a struct of them.
fn compare_type(cols: &[(String, DataType)], unwrapped_single: bool) -> Option<DataType> {
    if cols.len() == 1 && unwrapped_single {
        return Some(cols[0].1.clone());
    }
    Some(struct_of(cols))
}

async fn feed_and_run(engine: &Engine, case: &Case, query_ids: &[String]) -> anyhow::Result<()> {
    let catalog = engine.catalog();
    let inputs = &case.raw.inputs;
    let mut produced: Vec<Option<i64>> = vec![None; inputs.len()];
    let input_topics: HashSet<&str> = inputs.iter().map(|r| r.topic.as_str()).collect();
    for id in query_ids {
        let Some(q) = engine.query(id) else { continue };
        let Some(gate) = q.gate.clone() else { continue };
        let source_topics: Vec<String> = q
            .sources
            .iter()
            .filter_map(|s| catalog.get(s))
            .map(|d| d.topic.clone())
            .collect();
        for (i, r) in inputs.iter().enumerate() {
            if !source_topics.contains(&r.topic) {
                continue;
            }
            let offset = match produced[i] {
                Some(o) => o,
                None => {
                    let owner = catalog.by_topic(&r.topic);
                    let rec =
                        input_record(r, owner.as_deref()).map_err(|e| anyhow!("input {i}: {e}"))?;
                    let topic = engine.topics().get_or_create(&r.topic, 1);
                    let o = topic.append(0, rec);
                    produced[i] = Some(o);
                    o
                }
            };
            gate.allow(&r.topic, offset + 1);
            q.flush().await?;
        }
        for t in &source_topics {
            if !input_topics.contains(t.as_str()) {
                let len = engine.topics().get(t).map(|t| t.len(0)).unwrap_or(0);
                gate.allow(t, len);
            }
        }
        q.flush().await?;
    }
    // Produce inputs nobody reads, so their topics are complete too.
    for (i, r) in inputs.iter().enumerate() {
        if produced[i].is_none() {
            let owner = catalog.by_topic(&r.topic);
            if let Ok(rec) = input_record(r, owner.as_deref()) {
                engine.topics().get_or_create(&r.topic, 1).append(0, rec);
            }
        }
    }
    Ok(())
}

fn check_outputs(engine: &Engine, case: &Case) -> Result<(), String> {
    let catalog = engine.catalog();
    let lenient = case
        .properties
        .get("use.exact.numeric.comparison")
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    let no_inputs = case.raw.inputs.is_empty();
    let mut by_topic: BTreeMap<&str, Vec<&TestRecord>> = BTreeMap::new();
    for r in &case.raw.outputs {
        by_topic.entry(r.topic.as_str()).or_default().push(r);
    }
    for (topic, expected) in by_topic {
        let def = catalog
            .by_topic(topic)
            .ok_or_else(|| format!("no information found for topic {topic}"))?;
        let actual = engine
            .topics()
            .get(topic)
            .map(|t| t.all())
            .unwrap_or_default();
        let kc = key_columns(&def);
        let vc = value_columns(&def);
        let render = |recs: &[riffle_engine::record::SourceRecord]| -> String {
            recs.iter()
                .map(|r| {
                    let k =
                        deserialize(&r.record.key, def.key_format.kind, &kc).unwrap_or(Value::Null);
                    let v = deserialize(&r.record.value, def.value_format.kind, &vc)
                        .unwrap_or(Value::Null);
                    format!("{{key: {k}, value: {v}, ts: {}}}", r.record.timestamp)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        if expected.len() != actual.len() {
            return Err(format!(
                "topic {topic}: expected {} record(s), got {}: [{}]",
                expected.len(),
                actual.len(),
                render(&actual)
            ));
        }
        let unwrap_value = def.value_format.wrap_single_value == Some(false)
            || def.value_format.kind != FormatKind::Json;
        for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
            let ctx = |m: String| {
                format!(
                    "topic {topic} record {i}: {m}; actual records: [{}]",
                    render(&actual)
                )
            };
            let mut key_bytes = a.record.key.clone();
            match (&e.window, def.window) {
                (Some(w), Some(info)) => {
                    let kb = key_bytes.clone().unwrap_or_default();
                    let suffix = if info.window_type.key_has_end() {
                        16
                    } else {
                        8
                    };
                    if kb.len() < suffix {
                        return Err(ctx("windowed key too short".into()));
                    }
                    let (inner, tail) = kb.split_at(kb.len() - suffix);
                    let read = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
                    let (start, end) = if suffix == 16 {
                        (read(&tail[8..16]), read(&tail[0..8]))
                    } else {
                        let s = read(tail);
                        (s, s + info.size_ms.unwrap_or(0))
                    };
                    if (start, end) != (w.start, w.end) {
                        return Err(ctx(format!(
                            "window: expected [{}, {}], got [{start}, {end}]",
                            w.start, w.end
                        )));
                    }
                    key_bytes = if inner.is_empty() && kc.is_empty() {
                        None
                    } else {
                        Some(inner.to_vec())
                    };
                }
                (Some(_), None) => {
                    return Err(ctx("expected a windowed key, got an unwindowed one".into()));
                }
                (None, Some(_)) => {
                    return Err(ctx("expected an unwindowed key, got a windowed one".into()));
                }
                (None, None) => {}
            }
            let actual_key = deserialize(&key_bytes, def.key_format.kind, &kc).map_err(&ctx)?;
            let expected_key = e.key.clone().unwrap_or(Value::Null);
            compare(
                &expected_key,
                &actual_key,
                compare_type(&kc, true).as_ref(),
                lenient,
                "key",
            )
            .map_err(&ctx)?;
            let actual_value =
                deserialize(&a.record.value, def.value_format.kind, &vc).map_err(&ctx)?;
            compare(
                &e.value,
                &actual_value,
                compare_type(&vc, unwrap_value).as_ref(),
                lenient,
                "value",
            )
            .map_err(&ctx)?;
            if let Some(ts) = e.timestamp
                && !(no_inputs && ts == 0)
                && ts != a.record.timestamp
            {
                return Err(ctx(format!(
                    "timestamp: expected {ts}, got {}",
                    a.record.timestamp
                )));
            }
            if e.headers.as_ref().is_none_or(|h| h.is_empty()) != a.record.headers.is_empty() {
                return Err(ctx("headers differ".into()));
            }
        }
    }
    Ok(())
}

fn parse_schema(text: &str) -> Result<Vec<(String, SqlType, bool)>, String> {
    // "ID BIGINT KEY, NAME STRING": parse as a CREATE column list.
    let stmt = riffle_sql::parse_statement(&format!(
        "CREATE STREAM X ({text}) WITH (kafka_topic='x', value_format='JSON');"
    ))
    .map_err(|e| format!("cannot parse expected schema '{text}': {e}"))?;
    match stmt.kind {
        riffle_sql::ast::StatementKind::CreateSource(c) => Ok(c
            .columns
            .into_iter()
            .map(|c| (c.name, c.data_type, c.key))
            .collect()),
        _ => Err("bad schema".into()),
    }
}

fn check_post(engine: &Engine, post: &Post) -> Result<(), String> {
    let catalog = engine.catalog();
    for s in &post.sources {
        let def = catalog
            .get(&s.name)
            .ok_or_else(|| format!("post: source {} does not exist", s.name))?;
        let want = if s.kind.eq_ignore_ascii_case("table") {
            SourceKind::Table
        } else {
            SourceKind::Stream
        };
        if def.kind != want {
            return Err(format!(
                "post: {} is a {}, expected a {}",
                s.name, def.kind, want
            ));
        }
        if let Some(schema) = &s.schema {
            let expected = parse_schema(schema)?;
            let actual: Vec<(String, SqlType, bool)> = def
                .columns
                .iter()
                .map(|c| {
                    Ok((
                        c.name.clone(),
                        SqlType::from_arrow(&c.data_type).map_err(|e| e.to_string())?,
                        c.key,
                    ))
                })
                .collect::<Result<_, String>>()?;
            if expected != actual {
                let fmt = |v: &[(String, SqlType, bool)]| {
                    v.iter()
                        .map(|(n, t, k)| format!("{n} {t}{}", if *k { " KEY" } else { "" }))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(format!(
                    "post: {} schema: expected ({}), got ({})",
                    s.name,
                    fmt(&expected),
                    fmt(&actual)
                ));
            }
        }
        if let Some(kf) = &s.key_format {
            if let Some(f) = &kf.format
                && !f.eq_ignore_ascii_case(def.key_format.kind.name())
            {
                return Err(format!(
                    "post: {} key format: expected {f}, got {}",
                    s.name,
                    def.key_format.kind.name()
                ));
            }
            let actual_type = def.window.map(|w| w.window_type.name().to_string());
            let expected_type = kf.window_type.clone().map(|t| t.to_uppercase());
            if actual_type != expected_type {
                return Err(format!(
                    "post: {} window type: expected {expected_type:?}, got {actual_type:?}",
                    s.name
                ));
            }
            let actual_size = def.window.and_then(|w| w.size_ms);
            if actual_size != kf.window_size {
                return Err(format!(
                    "post: {} window size: expected {:?}, got {actual_size:?}",
                    s.name, kf.window_size
                ));
            }
        }
        if let Some(vf) = &s.value_format
            && !vf.eq_ignore_ascii_case(def.value_format.kind.name())
        {
            return Err(format!(
                "post: {} value format: expected {vf}, got {}",
                s.name,
                def.value_format.kind.name()
            ));
        }
    }
    if let Some(t) = &post.topics
        && let Some(bl) = &t.blacklist
    {
        let re =
            regex::Regex::new(bl).map_err(|e| format!("post: bad blacklist regex {bl}: {e}"))?;
        for (name, _, _) in engine.topics().list() {
            if re.is_match(&name) {
                return Err(format!("post: topic {name} matches the blacklist {bl}"));
            }
        }
    }
    Ok(())
}

/// Runs one case.
pub async fn run_case(case: &Case) -> Outcome {
    match run_case_inner(case).await {
        Ok(o) => o,
        Err(e) => Outcome::Fail(format!("{e:#}")),
    }
}

async fn run_case_inner(case: &Case) -> anyhow::Result<Outcome> {
    let engine = Arc::new(Engine::new_stepped(EngineConfig::conformance())?);
    for (k, v) in &case.properties {
        engine.set_property(k, v);
    }
    let expect_error = case.raw.expected_exception.is_some();
    // The expected message, when given, must appear in riffle's error (riffle's own test files
    // use riffle's messages; ksqlDB's messages differ and its negative cases are advisory).
    let expected_message = case
        .raw
        .expected_exception
        .as_ref()
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let error_outcome = |text: String| -> Outcome {
        match &expected_message {
            Some(m) if !text.contains(m.as_str()) => {
                Outcome::Fail(format!("expected an error containing '{m}', got: {text}"))
            }
            _ => Outcome::Pass,
        }
    };
    let statements = match riffle_sql::parse_script(&case.sql) {
        Ok(s) => s,
        Err(e) => {
            return Ok(if expect_error {
                error_outcome(e.to_string())
            } else {
                Outcome::Fail(format!("parse error: {e}"))
            });
        }
    };
    let mut query_ids = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        match engine.execute_statement(s).await {
            Ok(StatementResult::QueryStarted { query_id, .. }) => query_ids.push(query_id),
            Ok(StatementResult::Transient(t)) => engine.forget(&t.handle.id),
            Ok(_) => {}
            Err(e) => {
                engine.shutdown().await;
                if expect_error && i + 1 == statements.len() {
                    return Ok(error_outcome(e.to_string()));
                }
                return Ok(Outcome::Fail(format!("statement {} failed: {e}", i + 1)));
            }
        }
    }
    if query_ids.is_empty()
        && !expect_error
        && !case.raw.outputs.is_empty()
        && case.raw.inputs.is_empty()
    {
        // INSERT VALUES-only tests still need a query; nothing to run.
    }
    let fed = feed_and_run(&engine, case, &query_ids).await;
    let result = match fed {
        Err(e) if expect_error => {
            let _ = e;
            Outcome::Pass
        }
        Err(e) => Outcome::Fail(format!("{e:#}")),
        Ok(()) if expect_error => {
            Outcome::Fail("expected an error, but the case ran without one".into())
        }
        Ok(()) => match check_outputs(&engine, case).and_then(|_| match &case.raw.post {
            Some(p) => check_post(&engine, p),
            None => Ok(()),
        }) {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(e),
        },
    };
    engine.shutdown().await;
    Ok(result)
}
