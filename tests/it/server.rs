//! The REST API against a started server with a real HTTP client: every endpoint, malformed and
//! oversized requests, credentials, clients that disconnect or read slowly, many concurrent push
//! queries, the WebSocket, and headless mode.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use riffle::server::{AppState, ServerConfig, serve};
use riffle_engine::{Engine, EngineConfig};
use serde_json::{Value, json};

/// Starts a server on a free port; returns its base URL and engine.
async fn start(config: ServerConfig) -> (String, Arc<Engine>) {
    let engine = Arc::new(Engine::new(EngineConfig::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, AppState::new(engine.clone(), config)));
    (format!("http://{addr}"), engine)
}

async fn ksql(client: &reqwest::Client, base: &str, sql: &str) -> (u16, Value) {
    let r = client
        .post(format!("{base}/ksql"))
        .json(&json!({"ksql": sql, "streamsProperties": {}}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

const CLICKS: &str = "CREATE STREAM clicks (user_id STRING KEY, page STRING) \
                      WITH (kafka_topic='clicks', value_format='JSON');";

/// Reads lines of a streaming response until `n` lines arrived (or panics after 10 s).
async fn lines(resp: reqwest::Response, n: usize) -> Vec<String> {
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let read = async {
        while buf.lines().filter(|l| !l.trim().is_empty()).count() < n {
            match body.next().await {
                Some(Ok(chunk)) => buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => break,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("expected {n} lines, got: {buf}"));
    buf.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ksql_runs_statements_and_reports_errors_as_ksqldb_does() {
    let (base, _) = start(ServerConfig::default()).await;
    let c = reqwest::Client::new();
    let (status, body) = ksql(
        &c,
        &base,
        &format!("{CLICKS} CREATE TABLE counts AS SELECT user_id, COUNT(*) AS n FROM clicks GROUP BY user_id;"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["@type"], "currentStatus");
    assert_eq!(body[0]["commandStatus"]["message"], "Stream created");
    assert_eq!(body[1]["commandStatus"]["queryId"], "CTAS_COUNTS_0");
    // /status answers for the command ids it handed out.
    let id = body[1]["commandId"].as_str().unwrap();
    let st: Value = c
        .get(format!("{base}/status/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["status"], "SUCCESS");
    let missing = c.get(format!("{base}/status/nope")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);

    let (status, body) = ksql(&c, &base, "SHOW STREAMS; DESCRIBE counts; SHOW QUERIES;").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["streams"][0]["name"], "CLICKS");
    assert_eq!(body[1]["sourceDescription"]["fields"][0]["type"], "KEY");
    assert_eq!(body[2]["queries"][0]["id"], "CTAS_COUNTS_0");

    // A syntax error names the line, the column and what was expected.
    let (status, body) = ksql(&c, &base, "SELEC * FROM clicks;").await;
    assert_eq!(status, 400);
    assert_eq!(body["@type"], "statement_error");
    assert_eq!(body["error_code"], 40001);
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("line 1, column 1") && msg.contains("Expected"),
        "{msg}"
    );

    // The second statement fails: its text is named and the first one's entity is kept.
    let (status, body) = ksql(
        &c,
        &base,
        "CREATE STREAM other (a INT) WITH (kafka_topic='o', value_format='JSON'); SELECT nope FROM other EMIT CHANGES;",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["statementText"]
            .as_str()
            .unwrap()
            .starts_with("SELECT nope")
    );
    assert_eq!(
        body["entities"][0]["commandStatus"]["message"],
        "Stream created"
    );

    // Malformed JSON and a missing field are 400s with a message, never a panic.
    let r = c
        .post(format!("{base}/ksql"))
        .header("Content-Type", "application/json")
        .body("{\"ksql\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("not valid JSON"));
    let r = c
        .post(format!("{base}/ksql"))
        .json(&json!({"sql": "SHOW STREAMS;"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // CI: a whole SQL file as the body.
    let r = c
        .post(format!("{base}/ksql"))
        .header("Content-Type", "application/sql")
        .body("CREATE STREAM ci (a INT) WITH (kafka_topic='ci', value_format='JSON');\nINSERT INTO ci (a) VALUES (1);\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pull_and_push_queries_stream_rows() {
    let (base, _) = start(ServerConfig::default()).await;
    let c = reqwest::Client::new();
    ksql(&c, &base, &format!("{CLICKS} CREATE TABLE counts AS SELECT user_id, COUNT(*) AS n FROM clicks GROUP BY user_id; INSERT INTO clicks (user_id, page) VALUES ('u1', '/a'); INSERT INTO clicks (user_id, page) VALUES ('u1', '/b'); INSERT INTO clicks (user_id, page) VALUES ('u2', '/a');")).await;
    // Pull: the table's current state, by key.
    let mut counts = Value::Null;
    for _ in 0..50 {
        let r = c
            .post(format!("{base}/query"))
            .json(&json!({"ksql": "SELECT * FROM counts WHERE user_id = 'u1';"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        counts = serde_json::from_str(&r.text().await.unwrap()).expect("a JSON array");
        if counts[1]["row"]["columns"] == json!(["u1", 2]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counts[0]["header"]["schema"],
        "`USER_ID` STRING, `N` BIGINT"
    );
    assert_eq!(counts[1]["row"]["columns"], json!(["u1", 2]));
    assert_eq!(counts.as_array().unwrap().len(), 2);

    // Push, delimited: header line, then rows as they are inserted.
    let resp = c
        .post(format!("{base}/query-stream"))
        .json(&json!({"sql": "SELECT user_id, page FROM clicks EMIT CHANGES;"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let inserter = {
        let (c, base) = (c.clone(), base.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ksql(
                &c,
                &base,
                "INSERT INTO clicks (user_id, page) VALUES ('u3', '/new');",
            )
            .await
        })
    };
    let got = lines(resp, 2).await;
    let header: Value = serde_json::from_str(&got[0]).unwrap();
    assert_eq!(header["columnNames"], json!(["USER_ID", "PAGE"]));
    // Push queries start at the latest offset, as ksqlDB's do.
    assert_eq!(got[1], r#"["u3","/new"]"#);
    inserter.await.unwrap();

    // /close-query ends a running push query (its response completes); closing it twice is an
    // error.
    let resp = c
        .post(format!("{base}/query-stream"))
        .json(&json!({"sql": "SELECT page FROM clicks EMIT CHANGES;"}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let header: Value =
        serde_json::from_slice(first.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let query_id = header["queryId"].as_str().unwrap().to_string();
    let r = c
        .post(format!("{base}/close-query"))
        .json(&json!({"queryId": query_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .post(format!("{base}/close-query"))
        .json(&json!({"queryId": query_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the closed query's response must end");

    // Earliest offsets and LIMIT, as a JSON array.
    let r = c
        .post(format!("{base}/query-stream"))
        .header("Accept", "application/json")
        .json(
            &json!({"sql": "SELECT page FROM clicks EMIT CHANGES LIMIT 2;",
                      "properties": {"auto.offset.reset": "earliest"}}),
        )
        .send()
        .await
        .unwrap();
    let body: Value = tokio::time::timeout(Duration::from_secs(10), r.json())
        .await
        .expect("LIMIT ends the query")
        .unwrap();
    assert_eq!(body[1], json!(["/a"]));
    assert_eq!(body[2], json!(["/b"]));
    assert_eq!(body.as_array().unwrap().len(), 3);

    // Statements other than queries are refused at the query endpoints, and vice versa.
    let r = c
        .post(format!("{base}/query"))
        .json(&json!({"ksql": "SHOW STREAMS;"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (status, _) = ksql(&c, &base, "SELECT * FROM clicks EMIT CHANGES;").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inserts_stream_acknowledges_each_row() {
    let (base, _) = start(ServerConfig::default()).await;
    let c = reqwest::Client::new();
    ksql(&c, &base, "CREATE STREAM orders (id STRING KEY, amount DOUBLE) WITH (kafka_topic='orders', value_format='JSON');").await;
    let r = c
        .post(format!("{base}/inserts-stream"))
        .body("{\"target\": \"orders\"}\n{\"ID\": \"o1\", \"AMOUNT\": 10.5}\n{\"ID\": \"o2\", \"AMOUNT\": \"lots\"}\n{\"ID\": \"o3\", \"AMOUNT\": 3}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let acks: Vec<Value> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(acks[0], json!({"status": "ok", "seq": 0}));
    assert_eq!(acks[1]["status"], "error");
    assert_eq!(acks[2], json!({"status": "ok", "seq": 2}));
    let r = c
        .post(format!("{base}/query"))
        .json(&json!({"ksql": "SELECT id, amount FROM orders;"}))
        .send()
        .await
        .unwrap();
    let rows: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(rows[1]["row"]["columns"], json!(["o1", 10.5]));
    assert_eq!(rows[2]["row"]["columns"], json!(["o3", 3.0]));
    let r = c
        .post(format!("{base}/inserts-stream"))
        .body("{\"target\": \"nope\"}\n{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn info_health_and_metrics() {
    let (base, _) = start(ServerConfig::default()).await;
    let c = reqwest::Client::new();
    ksql(&c, &base, &format!("{CLICKS} CREATE STREAM pages AS SELECT user_id, page FROM clicks; INSERT INTO clicks (user_id, page) VALUES ('u1', '/a');")).await;
    let info: Value = c
        .get(format!("{base}/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["KsqlServerInfo"]["serverStatus"], "RUNNING");
    let health: Value = c
        .get(format!("{base}/healthcheck"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["isHealthy"], true);
    let mut text = String::new();
    for _ in 0..50 {
        text = c
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("riffle_query_rows_out_total{query=\"CSAS_PAGES_0\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for needle in [
        "riffle_query_rows_in_total{query=\"CSAS_PAGES_0\"} 1",
        "riffle_query_rows_out_total{query=\"CSAS_PAGES_0\"} 1",
        "riffle_query_late_rows_total",
        "riffle_query_errors_total{query=\"CSAS_PAGES_0\",kind=\"deserialization\"} 0",
        "riffle_query_state_bytes",
        "riffle_query_checkpoint_duration_seconds",
        "# EOF",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_and_body_size_are_enforced() {
    let (base, _) = start(ServerConfig {
        basic_auth: Some(("ci".into(), "s3cret".into())),
        tokens: vec!["tok-123".into()],
        max_body_bytes: 1024,
        ..ServerConfig::default()
    })
    .await;
    let c = reqwest::Client::new();
    let show = json!({"ksql": "SHOW STREAMS;"});
    let none = c
        .post(format!("{base}/ksql"))
        .json(&show)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status().as_u16(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = c
        .post(format!("{base}/ksql"))
        .basic_auth("ci", Some("guess"))
        .json(&show)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let bad_token = c
        .post(format!("{base}/ksql"))
        .bearer_auth("tok-999")
        .json(&show)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_token.status().as_u16(), 401);
    let ok = c
        .post(format!("{base}/ksql"))
        .basic_auth("ci", Some("s3cret"))
        .json(&show)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let ok = c
        .post(format!("{base}/ksql"))
        .bearer_auth("tok-123")
        .json(&show)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // The health check stays open for load balancers.
    let health = c.get(format!("{base}/healthcheck")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    // Bodies over the limit are refused before they are read.
    let big = format!("{{\"ksql\": \"{}\"}}", "x".repeat(4096));
    let r = c
        .post(format!("{base}/ksql"))
        .bearer_auth("tok-123")
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
}

/// The running push queries the server reports.
async fn push_queries(c: &reqwest::Client, base: &str) -> usize {
    let (_, body) = ksql(c, base, "SHOW QUERIES;").await;
    body[0]["queries"]
        .as_array()
        .map(|q| q.iter().filter(|q| q["queryType"] == "PUSH").count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disconnected_and_slow_clients_do_not_hold_queries() {
    let (base, engine) = start(ServerConfig {
        max_pending_batches: 64,
        ..ServerConfig::default()
    })
    .await;
    let c = reqwest::Client::new();
    ksql(
        &c,
        &base,
        &format!("{CLICKS} CREATE STREAM copies AS SELECT user_id, page FROM clicks;"),
    )
    .await;
    // A client reads the header, then hangs up mid-stream.
    let resp = c
        .post(format!("{base}/query-stream"))
        .json(&json!({"sql": "SELECT * FROM clicks EMIT CHANGES;"}))
        .send()
        .await
        .unwrap();
    let _ = lines(resp, 1).await;
    let mut n = usize::MAX;
    for _ in 0..100 {
        n = push_queries(&c, &base).await;
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n, 0, "the push query of a departed client must stop");

    // A client that never reads: the persistent query keeps flowing, and the client is cut off
    // once it falls too far behind.
    let stalled = c
        .post(format!("{base}/query-stream"))
        .json(&json!({"sql": "SELECT * FROM clicks EMIT CHANGES;"}))
        .send()
        .await
        .unwrap();
    let rows = 3000;
    for i in 0..rows {
        engine
            .insert_json(
                "CLICKS",
                json!({"USER_ID": format!("u{i}"), "PAGE": "/p"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
    }
    let copies = engine
        .queries()
        .into_iter()
        .find(|q| q.id == "CSAS_COPIES_0")
        .unwrap();
    let mut out = 0;
    for _ in 0..200 {
        out = copies
            .metrics
            .rows_out
            .load(std::sync::atomic::Ordering::Relaxed);
        if out >= rows {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(out >= rows, "the persistent query stalled at {out} rows");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_push_clients_each_see_every_row() {
    let (base, _) = start(ServerConfig::default()).await;
    let c = reqwest::Client::new();
    ksql(&c, &base, CLICKS).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let resp = c
            .post(format!("{base}/query-stream"))
            .json(&json!({"sql": "SELECT user_id, page FROM clicks EMIT CHANGES;"}))
            .send()
            .await
            .unwrap();
        clients.push(tokio::spawn(lines(resp, 6)));
    }
    // Every client has its query running before the rows go in.
    let mut running = 0;
    for _ in 0..100 {
        running = push_queries(&c, &base).await;
        if running == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(running, 20);
    for i in 0..5 {
        ksql(
            &c,
            &base,
            &format!("INSERT INTO clicks (user_id, page) VALUES ('u{i}', '/p{i}');"),
        )
        .await;
    }
    for client in clients {
        let got = client.await.unwrap();
        assert_eq!(got.len(), 6, "{got:?}");
        assert_eq!(got[1], r#"["u0","/p0"]"#);
        assert_eq!(got[5], r#"["u4","/p4"]"#);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_push_query() {
    use tokio_tungstenite::tungstenite::Message;
    let (base, _) = start(ServerConfig::default()).await;
    let c = reqwest::Client::new();
    ksql(
        &c,
        &base,
        &format!("{CLICKS} INSERT INTO clicks (user_id, page) VALUES ('u1', '/a');"),
    )
    .await;
    let url = format!(
        "{}/ws/query?sql=SELECT%20page%20FROM%20clicks%20EMIT%20CHANGES%3B&auto.offset.reset=earliest",
        base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("messages arrive")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            texts.push(t.to_string());
        }
    }
    let header: Value = serde_json::from_str(&texts[0]).unwrap();
    assert_eq!(header["columnNames"], json!(["PAGE"]));
    assert_eq!(texts[1], r#"["/a"]"#);
    ws.close(None).await.unwrap();
    let mut n = usize::MAX;
    for _ in 0..100 {
        n = push_queries(&c, &base).await;
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n, 0, "closing the socket stops the query");
}

/// Kills the server process when the test ends, whatever happens.
struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_server_runs_its_queries_file_and_refuses_statements() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("riffle-headless-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pipeline.sql");
    std::fs::write(
        &file,
        format!("{CLICKS}\nCREATE TABLE counts AS SELECT user_id, COUNT(*) AS n FROM clicks GROUP BY user_id;\nINSERT INTO clicks (user_id, page) VALUES ('u1', '/a');\n"),
    )
    .unwrap();
    let mut child = std::process::Command::new(riffle_tests::riffle_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--queries-file"])
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stderr = child.stderr.take().unwrap();
    let _guard = ServerProcess(child);
    let mut first = String::new();
    std::io::BufReader::new(stderr)
        .read_line(&mut first)
        .unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in: {first}"))
        .to_string();
    assert!(first.contains("headless"), "{first}");
    let c = reqwest::Client::new();
    let (status, body) = ksql(
        &c,
        &base,
        "CREATE STREAM more (a INT) WITH (kafka_topic='m', value_format='JSON');",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("headless"),
        "{body}"
    );
    let (status, body) = ksql(&c, &base, "SHOW QUERIES;").await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["queries"][0]["id"], "CTAS_COUNTS_0");
    let mut rows = Value::Null;
    for _ in 0..50 {
        let r = c
            .post(format!("{base}/query"))
            .json(&json!({"ksql": "SELECT * FROM counts;"}))
            .send()
            .await
            .unwrap();
        rows = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        if rows[1]["row"]["columns"] == json!(["u1", 1]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows[1]["row"]["columns"], json!(["u1", 1]));
}

/// A `riffle server` process whose stderr lines are collected.
struct LoggedServer {
    _process: ServerProcess,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
    base: String,
}

impl LoggedServer {
    fn start(state: &std::path::Path) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(riffle_tests::riffle_bin())
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                "--checkpoint-interval",
                "200ms",
            ])
            .arg("--state-dir")
            .arg(state)
            .env("RIFFLE_LOG", "riffle::checkpoint=info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(l);
            }
        });
        let mut server = LoggedServer {
            _process: ServerProcess(child),
            lines,
            base: String::new(),
        };
        let line = server.wait_for("listening on");
        server.base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in: {line}"))
            .to_string();
        server
    }

    /// Waits (up to 30 s) for a stderr line containing `text`.
    fn wait_for(&self, text: &str) -> String {
        for _ in 0..300 {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "no line with {text:?} within 30 s:\n{}",
            self.lines.lock().unwrap().join("\n")
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_runs_its_queries_again_from_their_checkpoints() {
    let state = tempfile::tempdir().unwrap();
    let c = reqwest::Client::new();
    let first = LoggedServer::start(state.path());
    let (status, body) = ksql(
        &c,
        &first.base,
        "CREATE STREAM events (k STRING, v BIGINT) WITH (connector='datagen', rate=200, seed=3, \
         'fields.k.values'='a,b,c');\
         CREATE TABLE totals AS SELECT k, COUNT(*) AS n FROM events GROUP BY k;\
         CREATE STREAM skipped AS SELECT * FROM events WHERE v < 0;\
         TERMINATE CSAS_SKIPPED_1;",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    first.wait_for("query CTAS_TOTALS_0: checkpoint 2 committed");
    drop(first);

    // A new process on the same state directory: the command log brings the stream, the table
    // and the query back, and the query resumes its newest checkpoint.
    let second = LoggedServer::start(state.path());
    let replayed = second.wait_for("replayed");
    assert!(replayed.contains("replayed 4 statement(s)"), "{replayed}");
    second.wait_for("query CTAS_TOTALS_0 resumes checkpoint");
    let (status, body) = ksql(&c, &second.base, "SHOW QUERIES;").await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body[0]["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["CTAS_TOTALS_0"],
        "the terminated query stays terminated"
    );
    second.wait_for("query CTAS_TOTALS_0: checkpoint");
}
