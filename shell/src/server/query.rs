//! Query endpoints: `POST /query` (ksqlDB's chunked JSON array of `header` and `row` objects),
//! `POST /query-stream` (a header object, then one JSON array per row and line; or one JSON
//! array with `Accept: application/json`), `POST /close-query`, and the `/ws/query?sql=…`
//! WebSocket. Push queries stream until their `LIMIT`, `/close-query`, or the client leaving;
//! a client that falls too far behind is cut off so it never holds the query back.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use riffle_engine::query::QueryHandle;
use riffle_engine::{StatementResult, TransientQuery};
use riffle_sql::ast::StatementKind;
use riffle_sql::plan::ChangeOp;
use serde_json::{Value, json};

use super::{ApiError, AppState, json_body};
use crate::output;

/// How rows are framed on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `/query`: `[{"header":…},{"row":{"columns":[…]}},…]`.
    Ksql,
    /// `/query-stream`: header object, then one array per line.
    Delimited,
    /// `/query-stream` with `Accept: application/json`: `[header, [row], …]`.
    JsonArray,
}

/// Stops a push query when its client is gone.
struct PushGuard {
    state: Arc<AppState>,
    handle: Arc<QueryHandle>,
}

impl Drop for PushGuard {
    fn drop(&mut self) {
        self.handle.stop();
        self.state
            .push_queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.handle.id);
        self.state.engine.forget(&self.handle.id);
    }
}

/// A started query: its header and where its rows come from.
struct Started {
    query_id: Option<String>,
    columns: Vec<String>,
    types: Vec<String>,
    rows: Rows,
}

enum Rows {
    /// Rows still arriving.
    Push {
        query: TransientQuery,
        _guard: PushGuard,
        sent: u64,
    },
    /// All rows known up front (pull queries, PRINT).
    Fixed(VecDeque<(ChangeOp, Vec<Value>)>),
}

/// Request properties (`streamsProperties` / `properties`) as strings.
fn properties(v: &Value) -> std::collections::BTreeMap<String, String> {
    ["streamsProperties", "properties"]
        .iter()
        .filter_map(|k| v[*k].as_object())
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

/// Parses and starts a `SELECT` or `PRINT`.
async fn start(
    state: &Arc<AppState>,
    sql: &str,
    props: &std::collections::BTreeMap<String, String>,
) -> Result<Started, ApiError> {
    let stmt = riffle_sql::parse_statement(sql)
        .map_err(|e| ApiError::statement(e.to_string(), sql, vec![]))?;
    if !matches!(
        stmt.kind,
        StatementKind::Select(_) | StatementKind::Print { .. }
    ) {
        return Err(ApiError::statement(
            "only SELECT and PRINT run here; send other statements to POST /ksql",
            &stmt.text,
            vec![],
        ));
    }
    let result = state
        .engine
        .execute_statement_with(&stmt, props)
        .await
        .map_err(|e| ApiError::statement(e.to_string(), &stmt.text, vec![]))?;
    Ok(match result {
        StatementResult::Transient(query) => {
            let handle = query.handle.clone();
            state
                .push_queries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(handle.id.clone(), handle.clone());
            Started {
                query_id: Some(handle.id.clone()),
                columns: output::column_names(&query.schema),
                types: output::column_types(&query.schema),
                rows: Rows::Push {
                    query,
                    _guard: PushGuard {
                        state: state.clone(),
                        handle,
                    },
                    sent: 0,
                },
            }
        }
        StatementResult::Pull(p) => Started {
            query_id: None,
            columns: output::column_names(&p.schema),
            types: output::column_types(&p.schema),
            rows: Rows::Fixed(output::row_values(&p.batch, &p.schema).into()),
        },
        StatementResult::Listing { headers, rows } => Started {
            query_id: None,
            types: vec!["STRING".to_string(); headers.len()],
            columns: headers,
            rows: Rows::Fixed(
                rows.into_iter()
                    .map(|r| (ChangeOp::Insert, r.into_iter().map(Value::String).collect()))
                    .collect(),
            ),
        },
        other => {
            return Err(ApiError::statement(
                format!("unexpected result {other:?}"),
                &stmt.text,
                vec![],
            ));
        }
    })
}

impl Started {
    /// The next rows, or `None` when the query is over; an `Err` ends the stream with a message.
    async fn next_rows(
        &mut self,
        max_pending: usize,
    ) -> Option<Result<Vec<(ChangeOp, Vec<Value>)>, String>> {
        match &mut self.rows {
            Rows::Fixed(rows) => {
                if rows.is_empty() {
                    None
                } else {
                    Some(Ok(rows.drain(..).collect()))
                }
            }
            Rows::Push { query, sent, .. } => {
                if query.limit.is_some_and(|l| *sent >= l) {
                    return None;
                }
                if query.rows.len() > max_pending {
                    return Some(Err(format!(
                        "the client fell {} result batches behind and was disconnected",
                        query.rows.len()
                    )));
                }
                let batch = query.rows.recv().await?;
                let mut rows = output::row_values(&batch, &query.schema);
                if let Some(l) = query.limit {
                    rows.truncate((l - *sent) as usize);
                }
                *sent += rows.len() as u64;
                Some(Ok(rows))
            }
        }
    }

    fn header(&self, framing: Framing) -> String {
        match framing {
            Framing::Ksql => {
                let schema: Vec<String> = self
                    .columns
                    .iter()
                    .zip(&self.types)
                    .map(|(c, t)| format!("`{c}` {t}"))
                    .collect();
                format!(
                    "[{}",
                    json!({"header": {"queryId": self.query_id, "schema": schema.join(", ")}})
                )
            }
            Framing::Delimited | Framing::JsonArray => {
                let h = json!({
                    "queryId": self.query_id,
                    "columnNames": self.columns,
                    "columnTypes": self.types,
                });
                if framing == Framing::Delimited {
                    format!("{h}\n")
                } else {
                    format!("[{h}")
                }
            }
        }
    }
}

fn frame_row(framing: Framing, op: ChangeOp, cells: Vec<Value>) -> String {
    match framing {
        Framing::Ksql => {
            let mut row = json!({"columns": cells});
            if op == ChangeOp::Delete {
                row["tombstone"] = json!(true);
            }
            format!(",\n{}", json!({"row": row}))
        }
        Framing::Delimited => format!("{}\n", Value::Array(cells)),
        Framing::JsonArray => format!(",{}", Value::Array(cells)),
    }
}

fn frame_error(framing: Framing, message: &str) -> String {
    let e = json!({"@type": "generic_error", "error_code": 50000, "message": message});
    match framing {
        Framing::Ksql => format!(",\n{}", json!({"errorMessage": e})),
        Framing::Delimited => format!("{e}\n"),
        Framing::JsonArray => format!(",{e}"),
    }
}

fn frame_end(framing: Framing) -> &'static str {
    match framing {
        Framing::Ksql => "]\n",
        Framing::Delimited => "",
        Framing::JsonArray => "]",
    }
}

/// Streams a started query as an HTTP body.
fn stream_body(started: Started, framing: Framing, max_pending: usize) -> Body {
    enum Phase {
        Header,
        Rows,
        End,
        Done,
    }
    let stream =
        futures::stream::unfold((started, Phase::Header), move |(mut q, phase)| async move {
            let chunk = match phase {
                Phase::Header => {
                    let h = q.header(framing);
                    return Some((
                        Ok::<_, std::convert::Infallible>(Bytes::from(h)),
                        (q, Phase::Rows),
                    ));
                }
                Phase::Rows => match q.next_rows(max_pending).await {
                    Some(Ok(rows)) => {
                        let text: String = rows
                            .into_iter()
                            .map(|(op, cells)| frame_row(framing, op, cells))
                            .collect();
                        return Some((Ok(Bytes::from(text)), (q, Phase::Rows)));
                    }
                    Some(Err(message)) => {
                        return Some((
                            Ok(Bytes::from(frame_error(framing, &message))),
                            (q, Phase::End),
                        ));
                    }
                    None => frame_end(framing).to_string(),
                },
                Phase::End => frame_end(framing).to_string(),
                Phase::Done => return None,
            };
            Some((Ok(Bytes::from(chunk)), (q, Phase::Done)))
        });
    Body::from_stream(stream)
}

fn sql_field(v: &Value, names: &[&str]) -> Result<String, ApiError> {
    names
        .iter()
        .find_map(|n| v[*n].as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::bad_request(format!("the request needs a \"{}\" string field", names[0]))
        })
}

/// Handles `POST /query`.
pub async fn query(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let request = json_body(&body)?;
    let sql = sql_field(&request, &["ksql", "sql"])?;
    let started = start(&state, &sql, &properties(&request)).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        stream_body(started, Framing::Ksql, state.config.max_pending_batches),
    )
        .into_response())
}

/// Handles `POST /query-stream`.
pub async fn query_stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = json_body(&body)?;
    let sql = sql_field(&request, &["sql", "ksql"])?;
    let json_array = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let (framing, content_type) = if json_array {
        (Framing::JsonArray, "application/json")
    } else {
        (Framing::Delimited, "application/vnd.ksqlapi.delimited.v1")
    };
    let started = start(&state, &sql, &properties(&request)).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        stream_body(started, framing, state.config.max_pending_batches),
    )
        .into_response())
}

/// Handles `POST /close-query`.
pub async fn close_query(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = sql_field(&json_body(&body)?, &["queryId"])?;
    let handle = state
        .push_queries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    match handle {
        Some(h) => {
            h.stop();
            Ok(StatusCode::OK.into_response())
        }
        None => Err(ApiError::bad_request(format!(
            "no running push query with id {id}"
        ))),
    }
}

/// Handles `GET /ws/query?sql=…[&auto.offset.reset=earliest]`: rows as WebSocket text messages
/// (the header first).
pub async fn websocket(
    State(state): State<Arc<AppState>>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let sql = params
        .get("sql")
        .or_else(|| params.get("request"))
        .cloned()
        .ok_or_else(|| ApiError::bad_request("pass the query as ?sql=…"))?;
    let props: std::collections::BTreeMap<String, String> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "sql" && k.as_str() != "request")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let started = start(&state, &sql, &props).await?;
    let max_pending = state.config.max_pending_batches;
    Ok(ws.on_upgrade(move |socket| serve_socket(socket, started, max_pending)))
}

async fn serve_socket(mut socket: WebSocket, mut q: Started, max_pending: usize) {
    let header = q.header(Framing::Delimited);
    if socket
        .send(Message::Text(header.trim_end().to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            rows = q.next_rows(max_pending) => match rows {
                Some(Ok(rows)) => {
                    for (_, cells) in rows {
                        if socket.send(Message::Text(Value::Array(cells).to_string().into())).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(message)) => {
                    let e = json!({"@type": "generic_error", "error_code": 50000, "message": message});
                    let _ = socket.send(Message::Text(e.to_string().into())).await;
                    break;
                }
                None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
