//! `riffle server`: the REST API, compatible with ksqlDB's so existing ksqlDB clients work
//! unchanged. Statements go to `POST /ksql` (JSON, or a whole SQL file as the body for CI);
//! queries stream from `POST /query`, `POST /query-stream` and the `/ws/query` WebSocket; rows
//! are inserted with `POST /inserts-stream`; `GET /metrics` serves Prometheus text. Binds
//! 127.0.0.1 by default; optional HTTP Basic auth and bearer tokens; request bodies are capped.
//! With a state directory, the statements defining streams, tables and persistent queries are
//! kept in a command log and replayed when the server restarts.

pub mod command_log;
mod inserts;
mod ksql;
mod metrics;
mod query;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crate::engine_args::{EngineArgs, EngineFileConfig};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use riffle_engine::Engine;
use riffle_engine::query::QueryHandle;
use serde_json::{Value, json};

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// HTTP Basic credentials (user, password) every request must carry, if set.
    pub basic_auth: Option<(String, String)>,
    /// Bearer tokens accepted instead of Basic credentials.
    pub tokens: Vec<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Runs a fixed queries file and refuses statements that change anything.
    pub headless: bool,
    /// Result batches a push-query client may fall behind by before it is cut off (so a slow
    /// client never holds memory or the query back).
    pub max_pending_batches: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            basic_auth: None,
            tokens: Vec::new(),
            max_body_bytes: 16 * 1024 * 1024,
            headless: false,
            max_pending_batches: 4096,
        }
    }
}

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Settings.
    pub config: ServerConfig,
    /// Running push queries by id, for `/close-query`.
    push_queries: Mutex<HashMap<String, Arc<QueryHandle>>>,
    /// Outcome of every command by id, for `/status/{id}`.
    commands: Mutex<HashMap<String, (String, String)>>,
    /// Sequence number of the last command.
    command_seq: AtomicU64,
    /// Where statements that define what the server runs are recorded, when it keeps state.
    command_log: Option<command_log::CommandLog>,
}

impl AppState {
    /// State for an engine and config.
    pub fn new(engine: Arc<Engine>, config: ServerConfig) -> Arc<Self> {
        Self::with_command_log(engine, config, None)
    }

    /// State for an engine and config that records its defining statements in `log`.
    pub fn with_command_log(
        engine: Arc<Engine>,
        config: ServerConfig,
        log: Option<command_log::CommandLog>,
    ) -> Arc<Self> {
        Arc::new(AppState {
            engine,
            config,
            push_queries: Mutex::new(HashMap::new()),
            commands: Mutex::new(HashMap::new()),
            command_seq: AtomicU64::new(0),
            command_log: log,
        })
    }

    /// Records a statement that succeeded in the command log, if the server keeps one.
    pub fn record(&self, stmt: &riffle_sql::ast::Statement) {
        if let Some(log) = &self.command_log
            && let Err(e) = log.record(stmt)
        {
            tracing::warn!("cannot append to {}: {e}", log.path().display());
        }
    }
}

/// An error answered with a ksqlDB-shaped JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    /// A statement that could not be parsed or executed (400, error code 40001).
    pub fn statement(message: impl Into<String>, statement: &str, entities: Vec<Value>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({
                "@type": "statement_error",
                "error_code": 40001,
                "message": message.into(),
                "statementText": statement,
                "entities": entities,
            }),
        }
    }

    /// A request that is wrong in itself (bad JSON, missing fields).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"@type": "generic_error", "error_code": 40000, "message": message.into()}),
        }
    }

    /// Something that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            body: json!({"@type": "generic_error", "error_code": 40400, "message": message.into()}),
        }
    }

    fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            body: json!({
                "@type": "generic_error",
                "error_code": 40100,
                "message": "Unauthorized: send valid HTTP Basic credentials or a bearer token",
            }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"riffle\""),
            );
        }
        r
    }
}

/// Parses a JSON request body, answering 400 with the parser's message when it is not JSON.
pub fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// Whether the request carries acceptable credentials.
fn authorized(config: &ServerConfig, headers: &HeaderMap) -> bool {
    if config.basic_auth.is_none() && config.tokens.is_empty() {
        return true;
    }
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return config.tokens.iter().any(|t| t == token.trim());
    }
    if let (Some(encoded), Some((user, pass))) = (value.strip_prefix("Basic "), &config.basic_auth)
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        return decoded.as_deref() == Some(&format!("{user}:{pass}"));
    }
    false
}

async fn auth(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let open = request.uri().path() == "/healthcheck";
    if !open && !authorized(&state.config, request.headers()) {
        return ApiError::unauthorized().into_response();
    }
    next.run(request).await
}

async fn info() -> axum::Json<Value> {
    axum::Json(json!({
        "KsqlServerInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "kafkaClusterId": "riffle-embedded",
            "ksqlServiceId": "riffle_",
            "serverStatus": "RUNNING",
        }
    }))
}

async fn healthcheck() -> axum::Json<Value> {
    axum::Json(json!({
        "isHealthy": true,
        "details": {"metastore": {"isHealthy": true}, "kafka": {"isHealthy": true}},
    }))
}

async fn status(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let commands = state.commands.lock().unwrap_or_else(|e| e.into_inner());
    match commands.get(&id) {
        Some((status, message)) => Ok(axum::Json(json!({"status": status, "message": message}))),
        None => Err(ApiError::not_found(format!("no command with id {id}"))),
    }
}

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/ksql", post(ksql::ksql))
        .route("/query", post(query::query))
        .route("/query-stream", post(query::query_stream))
        .route("/close-query", post(query::close_query))
        .route("/inserts-stream", post(inserts::inserts_stream))
        .route("/ws/query", get(query::websocket))
        .route("/info", get(info))
        .route("/healthcheck", get(healthcheck))
        .route("/status/{*id}", get(status))
        .route("/metrics", get(metrics::metrics))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Serves until the process is stopped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

/// Settings read from `riffle server --config FILE` (JSON); command-line flags override them.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// HTTP Basic credentials.
    pub basic_auth: Option<BasicAuth>,
    /// Accepted bearer tokens.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Largest request body in bytes.
    pub max_body_bytes: Option<usize>,
    /// Engine settings: Kafka client properties, state directory, checkpoint interval.
    #[serde(default)]
    pub engine: EngineFileConfig,
}

/// HTTP Basic credentials in the config file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// `riffle server` options from the command line.
#[derive(Debug, Default)]
pub struct ServerOptions {
    /// `host:port` to listen on (default 127.0.0.1:8088).
    pub listen: Option<String>,
    /// JSON config file.
    pub config: Option<std::path::PathBuf>,
    /// A queries file to run in headless mode.
    pub queries_file: Option<std::path::PathBuf>,
    /// `user:password` for HTTP Basic auth.
    pub basic_auth: Option<String>,
    /// Accepted bearer tokens.
    pub tokens: Vec<String>,
    /// Largest request body in bytes.
    pub max_body_bytes: Option<usize>,
    /// Engine flags.
    pub engine: EngineArgs,
}

/// Starts the engine (running the queries file, if any) and serves until Ctrl-C.
pub async fn run_server(opts: ServerOptions) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context as _;
    let file: ConfigFile = match &opts.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("bad config {}", p.display()))?
        }
        None => ConfigFile::default(),
    };
    let mut config = ServerConfig::default();
    if let Some(l) = opts.listen.or(file.listen) {
        config.listen = l
            .parse()
            .with_context(|| format!("--listen {l}: expected host:port such as 127.0.0.1:8088"))?;
    }
    config.basic_auth = match opts.basic_auth {
        Some(ua) => {
            let (u, p) = ua
                .split_once(':')
                .context("--basic-auth expects user:password")?;
            Some((u.to_string(), p.to_string()))
        }
        None => file.basic_auth.map(|b| (b.user, b.password)),
    };
    config.tokens = if opts.tokens.is_empty() {
        file.tokens
    } else {
        opts.tokens
    };
    if let Some(m) = opts.max_body_bytes.or(file.max_body_bytes) {
        config.max_body_bytes = m;
    }
    config.headless = opts.queries_file.is_some();
    let mut engine_config = riffle_engine::EngineConfig::default();
    opts.engine.apply(&file.engine, &mut engine_config)?;
    let state_dir = engine_config.state_dir.clone();
    let engine = Arc::new(Engine::new(engine_config)?);
    let mut log = None;
    if let (Some(dir), false) = (&state_dir, config.headless) {
        let l = command_log::CommandLog::open(dir)
            .with_context(|| format!("cannot open the command log in {}", dir.display()))?;
        let (ran, failed) = l.replay(&engine).await?;
        if ran + failed.len() > 0 {
            eprintln!(
                "replayed {ran} statement(s) from {}{}",
                l.path().display(),
                if failed.is_empty() {
                    ""
                } else {
                    "; these failed:"
                }
            );
        }
        for f in failed {
            eprintln!("  {f}");
        }
        log = Some(l);
    }
    if let Some(path) = &opts.queries_file {
        let sql = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if let Err(e) = engine.execute(&sql).await {
            eprintln!("{}: {e}", path.display());
            return Ok(std::process::ExitCode::from(1));
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    eprintln!(
        "riffle server listening on http://{}{}",
        listener.local_addr()?,
        if config.headless {
            " (headless: running the queries file)"
        } else {
            ""
        }
    );
    let state = AppState::with_command_log(engine.clone(), config, log);
    tokio::select! {
        r = serve(listener, state) => r?,
        _ = tokio::signal::ctrl_c() => eprintln!("Stopping…"),
    }
    engine.shutdown().await;
    Ok(std::process::ExitCode::SUCCESS)
}
