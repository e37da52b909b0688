//! `POST /ksql`: runs statements and answers with ksqlDB's entity array. The body is ksqlDB's JSON
//! (`{"ksql": "…", "streamsProperties": {…}}`) or, for CI, a SQL file as is
//! (`curl --data-binary @pipeline.sql -H 'Content-Type: application/sql'`). A failing statement
//! answers 400 with a `statement_error` naming the statement, the position and the entities of
//! the statements that ran before it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use riffle_engine::query::QueryKind;
use riffle_engine::{EngineError, StatementResult};
use riffle_sql::ast::{ShowKind, SourceKind, Statement, StatementKind};
use riffle_sql::catalog::SourceDef;
use serde_json::{Value, json};

use super::{ApiError, AppState, json_body};

/// The SQL text of a `/ksql` request.
fn request_sql(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let looks_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if content_type.contains("json") || (looks_json && !content_type.contains("sql")) {
        let v = json_body(body)?;
        return v["ksql"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::bad_request("the request needs a \"ksql\" string field"));
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the SQL body is not valid UTF-8"))
}

/// Whether a statement changes streams, tables, queries or settings.
fn mutates(kind: &StatementKind) -> bool {
    matches!(
        kind,
        StatementKind::CreateSource(_)
            | StatementKind::CreateAsSelect(_)
            | StatementKind::InsertInto { .. }
            | StatementKind::InsertValues { .. }
            | StatementKind::Terminate { .. }
            | StatementKind::Drop { .. }
            | StatementKind::Set { .. }
            | StatementKind::Unset(_)
    )
}

/// Handles `POST /ksql`.
pub async fn ksql(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let sql = request_sql(&headers, &body)?;
    let statements = riffle_sql::parse_script(&sql)
        .map_err(|e| ApiError::statement(e.to_string(), &sql, vec![]))?;
    let mut entities = Vec::new();
    for stmt in &statements {
        if matches!(
            stmt.kind,
            StatementKind::Select(_) | StatementKind::Print { .. }
        ) {
            return Err(ApiError::statement(
                "SELECT and PRINT stream their results: send them to POST /query or /query-stream",
                &stmt.text,
                entities,
            ));
        }
        if state.config.headless && mutates(&stmt.kind) {
            return Err(ApiError::statement(
                "the server runs in headless mode (--queries-file): it does not accept \
                 statements that change streams, tables, queries or properties",
                &stmt.text,
                entities,
            ));
        }
        let result = match state.engine.execute_statement(stmt).await {
            Ok(r) => r,
            Err(e) => {
                let message = match &e {
                    EngineError::Sql(s) => match s.position() {
                        Some(p) if p.line > 0 => {
                            format!("{s} (statement at line {})", stmt.position.line)
                        }
                        _ => s.to_string(),
                    },
                    other => other.to_string(),
                };
                return Err(ApiError::statement(message, &stmt.text, entities));
            }
        };
        state.record(stmt);
        if let Some(e) = entity(&state, stmt, result) {
            entities.push(e);
        }
    }
    Ok(Json(Value::Array(entities)))
}

/// A `currentStatus` entity, recorded for `/status/{commandId}`.
fn current_status(
    state: &AppState,
    stmt: &Statement,
    command_id: String,
    message: String,
    query_id: Option<&str>,
) -> Value {
    let seq = state.command_seq.fetch_add(1, Ordering::SeqCst) + 1;
    state
        .commands
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(command_id.clone(), ("SUCCESS".into(), message.clone()));
    json!({
        "@type": "currentStatus",
        "statementText": stmt.text,
        "commandId": command_id,
        "commandStatus": {"status": "SUCCESS", "message": message, "queryId": query_id},
        "commandSequenceNumber": seq,
        "warnings": [],
    })
}

fn kind_word(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Stream => "stream",
        SourceKind::Table => "table",
    }
}

/// The ksqlDB entity for a statement's result (`None` for results ksqlDB keeps client-side).
fn entity(state: &AppState, stmt: &Statement, result: StatementResult) -> Option<Value> {
    let engine = &state.engine;
    Some(match result {
        StatementResult::Created { kind, name } => current_status(
            state,
            stmt,
            format!("{}/`{name}`/create", kind_word(kind)),
            format!(
                "{} created",
                if kind == SourceKind::Stream {
                    "Stream"
                } else {
                    "Table"
                }
            ),
            None,
        ),
        StatementResult::QueryStarted { query_id, sink } => {
            let kind = engine
                .catalog()
                .get(&sink)
                .map(|d| d.kind)
                .unwrap_or(SourceKind::Stream);
            current_status(
                state,
                stmt,
                format!("{}/`{sink}`/create", kind_word(kind)),
                format!("Created query with ID {query_id}"),
                Some(&query_id),
            )
        }
        StatementResult::Inserted { target } => current_status(
            state,
            stmt,
            format!(
                "insert/`{target}`/{}",
                state.command_seq.load(Ordering::SeqCst) + 1
            ),
            format!("Inserted a row into {target}"),
            None,
        ),
        StatementResult::Dropped { name } => current_status(
            state,
            stmt,
            format!("source/`{name}`/drop"),
            format!("Source `{name}` was dropped."),
            None,
        ),
        StatementResult::Terminated { ids } => current_status(
            state,
            stmt,
            format!("terminate/{}/execute", ids.join(",")),
            "Query terminated.".into(),
            None,
        ),
        StatementResult::Property { .. } => return None,
        StatementResult::Listing { headers, rows } => match &stmt.kind {
            StatementKind::Show(kind) => show(state, stmt, kind.clone()),
            _ => json!({
                "@type": "text",
                "statementText": stmt.text,
                "text": crate::output::table(&headers, &rows),
                "warnings": [],
            }),
        },
        StatementResult::Text(text) => match &stmt.kind {
            StatementKind::Describe { name, extended } => match engine.catalog().get(name) {
                Some(def) => source_description(state, stmt, &def, *extended),
                None => json!({"@type": "text", "statementText": stmt.text, "text": text}),
            },
            StatementKind::Explain(_) => json!({
                "@type": "queryDescription",
                "statementText": stmt.text,
                "queryDescription": {"statementText": stmt.text, "executionPlan": text},
                "warnings": [],
            }),
            _ => json!({"@type": "text", "statementText": stmt.text, "text": text, "warnings": []}),
        },
        StatementResult::Transient(t) => {
            // Not reachable from /ksql (SELECT is refused above); stop it all the same.
            t.handle.stop();
            return None;
        }
        StatementResult::Pull(_) => return None,
    })
}

fn source_entry(def: &SourceDef) -> Value {
    json!({
        "type": def.kind.to_string(),
        "name": def.name,
        "topic": def.topic,
        "keyFormat": def.key_format.kind.name(),
        "valueFormat": def.value_format.kind.name(),
        "isWindowed": def.window.is_some(),
    })
}

fn show(state: &AppState, stmt: &Statement, kind: ShowKind) -> Value {
    let engine = &state.engine;
    let catalog = engine.catalog();
    let of_kind = |k: SourceKind| -> Vec<Value> {
        catalog
            .all()
            .filter(|d| d.kind == k)
            .map(|d| source_entry(d))
            .collect()
    };
    match kind {
        ShowKind::Streams => json!({
            "@type": "streams", "statementText": stmt.text,
            "streams": of_kind(SourceKind::Stream), "warnings": [],
        }),
        ShowKind::Tables => json!({
            "@type": "tables", "statementText": stmt.text,
            "tables": of_kind(SourceKind::Table), "warnings": [],
        }),
        ShowKind::Queries => {
            let queries: Vec<Value> = engine
                .queries()
                .iter()
                .map(|q| {
                    let status = format!("{:?}", q.status()).to_uppercase();
                    json!({
                        "queryString": q.sql,
                        "sinks": q.sink.iter().collect::<Vec<_>>(),
                        "sinkKafkaTopics": q.sink.iter()
                            .filter_map(|s| catalog.get(s).map(|d| d.topic.clone()))
                            .collect::<Vec<_>>(),
                        "id": q.id,
                        "statusCount": {status.clone(): 1},
                        "queryType": match q.kind {
                            QueryKind::Persistent => "PERSISTENT",
                            QueryKind::Transient => "PUSH",
                        },
                        "state": status,
                    })
                })
                .collect();
            json!({"@type": "queries", "statementText": stmt.text, "queries": queries, "warnings": []})
        }
        ShowKind::Topics => {
            let topics: Vec<Value> = engine
                .topics()
                .list()
                .into_iter()
                .map(|(name, partitions, _)| {
                    json!({"name": name, "replicaInfo": vec![1; partitions]})
                })
                .collect();
            json!({"@type": "kafka_topics", "statementText": stmt.text, "topics": topics, "warnings": []})
        }
        ShowKind::Functions => {
            let functions: Vec<Value> = engine
                .registry()
                .list()
                .into_iter()
                .map(|(name, kind)| json!({"name": name, "type": kind}))
                .collect();
            json!({"@type": "function_names", "statementText": stmt.text, "functions": functions, "warnings": []})
        }
        ShowKind::Properties => json!({
            "@type": "properties", "statementText": stmt.text, "properties": [], "warnings": [],
        }),
    }
}

fn source_description(
    state: &AppState,
    stmt: &Statement,
    def: &SourceDef,
    extended: bool,
) -> Value {
    let fields: Vec<Value> = def
        .columns
        .iter()
        .map(|c| {
            let mut f = json!({
                "name": c.name,
                "schema": {
                    "type": riffle_sql::types::display_arrow(&c.data_type),
                    "fields": null,
                    "memberSchema": null,
                },
            });
            if c.key {
                f["type"] = json!("KEY");
            }
            f
        })
        .collect();
    let queries = state.engine.queries();
    let reading: Vec<Value> = queries
        .iter()
        .filter(|q| q.sources.iter().any(|s| s == &def.name))
        .map(|q| json!({"id": q.id, "queryString": q.sql, "sinks": q.sink.iter().collect::<Vec<_>>()}))
        .collect();
    let writing: Vec<Value> = queries
        .iter()
        .filter(|q| q.sink.as_deref() == Some(def.name.as_str()))
        .map(|q| json!({"id": q.id, "queryString": q.sql, "sinks": [def.name]}))
        .collect();
    json!({
        "@type": "sourceDescription",
        "statementText": stmt.text,
        "sourceDescription": {
            "name": def.name,
            "type": def.kind.to_string(),
            "fields": fields,
            "topic": def.topic,
            "keyFormat": def.key_format.kind.name(),
            "valueFormat": def.value_format.kind.name(),
            "timestamp": def.timestamp.clone().unwrap_or_default(),
            "windowType": def.window.map(|w| w.window_type.name()),
            "readQueries": reading,
            "writeQueries": writing,
            "partitions": def.partitions,
            "replication": 1,
            "statement": def.sql,
            "extended": extended,
        },
        "warnings": [],
    })
}
