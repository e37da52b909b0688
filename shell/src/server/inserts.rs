//! `POST /inserts-stream`: the body is a JSON object naming the target (`{"target": "S"}`)
//! followed by one JSON object per row; the answer is one acknowledgement per row, in order,
//! `{"status":"ok","seq":n}` or an error naming what was wrong with that row (other rows are
//! still inserted).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, AppState};

/// Handles `POST /inserts-stream`.
pub async fn inserts_stream(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if state.config.headless {
        return Err(ApiError::bad_request(
            "the server runs in headless mode (--queries-file) and does not accept inserts",
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the request body is not valid UTF-8"))?;
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let target = match values.next() {
        Some(Ok(v)) => v["target"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiError::bad_request("the first object must be {\"target\": \"…\"}"))?,
        Some(Err(e)) => {
            return Err(ApiError::bad_request(format!(
                "the request body is not valid JSON: {e}"
            )));
        }
        None => return Err(ApiError::bad_request("the request body is empty")),
    };
    if state.engine.catalog().get(&target).is_none()
        && state.engine.catalog().get(&target.to_uppercase()).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "cannot insert into {target}: no such stream or table"
        )));
    }
    let target = if state.engine.catalog().get(&target).is_some() {
        target
    } else {
        target.to_uppercase()
    };
    let mut acks = String::new();
    for (seq, row) in values.enumerate() {
        let ack = match row {
            Ok(Value::Object(obj)) => match state.engine.insert_json(&target, &obj) {
                Ok(()) => json!({"status": "ok", "seq": seq}),
                Err(e) => json!({"status": "error", "seq": seq, "error_code": 40000,
                                 "message": e.to_string()}),
            },
            Ok(other) => json!({"status": "error", "seq": seq, "error_code": 40000,
                                "message": format!("a row must be a JSON object, got {other}")}),
            Err(e) => {
                acks.push_str(
                    &json!({"status": "error", "seq": seq, "error_code": 40000,
                            "message": format!("invalid JSON: {e}")})
                    .to_string(),
                );
                acks.push('\n');
                break;
            }
        };
        acks.push_str(&ack.to_string());
        acks.push('\n');
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/vnd.ksqlapi.delimited.v1")],
        acks,
    )
        .into_response())
}
