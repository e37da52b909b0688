//! An HTTP client for `riffle server` (and ksqlDB-compatible servers): statements go to
//! `POST /ksql`, queries to `POST /query-stream` whose rows arrive as one JSON array per line.
//! The shell uses it with `--server URL`.

use futures::StreamExt;
use serde_json::{Value, json};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the server: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused the request; its message.
    #[error("{message}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server answered something that is not the expected JSON.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// A connection to a server.
#[derive(Clone)]
pub struct RemoteClient {
    base: String,
    http: reqwest::Client,
    auth: Option<String>,
}

/// A running query on the server.
pub struct RemoteQuery {
    /// The server's query id (push queries).
    pub query_id: Option<String>,
    /// Result column names.
    pub columns: Vec<String>,
    lines: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    pending: Vec<u8>,
}

impl RemoteQuery {
    /// The next row, or `None` when the query ended.
    pub async fn next_row(&mut self) -> Result<Option<Vec<Value>>, ClientError> {
        loop {
            if let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=nl).collect();
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                return match serde_json::from_str::<Value>(text) {
                    Ok(Value::Array(cells)) => Ok(Some(cells)),
                    Ok(Value::Object(o)) if o.contains_key("message") => Err(ClientError::Server {
                        status: 200,
                        message: o["message"].as_str().unwrap_or_default().to_string(),
                    }),
                    Ok(other) => Err(ClientError::Protocol(other.to_string())),
                    Err(e) => Err(ClientError::Protocol(format!("{e}: {text}"))),
                };
            }
            match self.lines.next().await {
                Some(chunk) => self.pending.extend_from_slice(&chunk?),
                None => return Ok(None),
            }
        }
    }
}

impl RemoteClient {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8088`), optionally sending an
    /// `Authorization` header value.
    pub fn new(base: &str, auth: Option<String>) -> Self {
        RemoteClient {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            auth,
        }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.post(format!("{}{path}", self.base));
        match &self.auth {
            Some(a) => r.header(reqwest::header::AUTHORIZATION, a),
            None => r,
        }
    }

    async fn error_of(resp: reqwest::Response) -> ClientError {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        ClientError::Server { status, message }
    }

    /// Runs statements (not queries); returns the server's entity array.
    pub async fn ksql(&self, sql: &str) -> Result<Vec<Value>, ClientError> {
        let resp = self
            .post("/ksql")
            .json(&json!({"ksql": sql, "streamsProperties": {}}))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(Self::error_of(resp).await);
        }
        match resp.json::<Value>().await? {
            Value::Array(a) => Ok(a),
            other => Err(ClientError::Protocol(other.to_string())),
        }
    }

    /// Starts a push or pull query with request properties (e.g. `auto.offset.reset`).
    pub async fn query(
        &self,
        sql: &str,
        properties: &std::collections::BTreeMap<String, String>,
    ) -> Result<RemoteQuery, ClientError> {
        let resp = self
            .post("/query-stream")
            .header(
                reqwest::header::ACCEPT,
                "application/vnd.ksqlapi.delimited.v1",
            )
            .json(&json!({"sql": sql, "properties": properties}))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(Self::error_of(resp).await);
        }
        let mut q = RemoteQuery {
            query_id: None,
            columns: Vec::new(),
            lines: Box::pin(resp.bytes_stream()),
            pending: Vec::new(),
        };
        // The first line is the header object.
        loop {
            if let Some(nl) = q.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = q.pending.drain(..=nl).collect();
                let header: Value = serde_json::from_slice(&line)
                    .map_err(|e| ClientError::Protocol(format!("bad header: {e}")))?;
                q.query_id = header["queryId"].as_str().map(str::to_string);
                q.columns = header["columnNames"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|c| c.as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(q);
            }
            match q.lines.next().await {
                Some(chunk) => q.pending.extend_from_slice(&chunk?),
                None => {
                    return Err(ClientError::Protocol(
                        "the query ended before its header".into(),
                    ));
                }
            }
        }
    }

    /// Stops a push query.
    pub async fn close_query(&self, query_id: &str) -> Result<(), ClientError> {
        let resp = self
            .post("/close-query")
            .json(&json!({"queryId": query_id}))
            .send()
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Self::error_of(resp).await)
        }
    }
}
