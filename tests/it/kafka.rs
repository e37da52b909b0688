//! Streams and tables over a real Kafka-protocol broker (tansu, started by scripts/test.sh):
//! windowed aggregation, a table from a compacted-style topic, a Debezium CDC table, `PRINT`,
//! and bad records reaching the processing-log topic while the query goes on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use riffle_engine::config::KafkaConfig;
use riffle_engine::runtime::coordinator::QueryStatus;
use riffle_engine::{Engine, EngineConfig, StatementResult};
use riffle_tests::kafka::{
    Out, bootstrap, create_topic, latest_by_key, produce, read_until, unique,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// An engine on the test broker, checkpointing every 200 ms into a temporary directory.
fn engine(state: &tempfile::TempDir, processing_log: &str) -> Arc<Engine> {
    // Each test is its own deployment: consumer groups and transactional ids do not collide
    // with other tests' (or earlier runs') queries of the same name.
    let mut kafka = KafkaConfig::new(bootstrap());
    kafka.service_id = unique("riffle_test");
    let config = EngineConfig {
        kafka: Some(kafka),
        state_dir: Some(state.path().to_path_buf()),
        checkpoint_interval: Duration::from_millis(200),
        processing_log_topic: processing_log.to_string(),
        parallelism: 2,
        ..Default::default()
    };
    Arc::new(Engine::new(config).expect("the engine starts"))
}

async fn execute(engine: &Engine, sql: &str) -> Vec<StatementResult> {
    engine
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Reads a topic on a blocking thread (the engine's tasks keep running on the runtime).
async fn read(
    topic: &str,
    done: impl Fn(&[riffle_tests::kafka::In]) -> bool + Send + 'static,
) -> Vec<riffle_tests::kafka::In> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || read_until(&topic, WAIT, done))
        .await
        .expect("the reader thread finishes")
}

/// Waits until the latest value per key of `topic` is `want`, and checks it.
async fn expect_latest(topic: &str, want: &[(&str, serde_json::Value)]) {
    let want: BTreeMap<String, serde_json::Value> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let expected = want.clone();
    let records = read(topic, move |r| latest_by_key(r) == expected).await;
    assert_eq!(latest_by_key(&records), want);
}

fn page_view(account: &str, user: &str, ts: i64) -> Out {
    Out::kv(account, &json!({"user_id": user, "ts": ts}).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_aggregation_reads_and_writes_kafka() {
    let input = unique("page_views");
    let output = unique("views_per_minute");
    create_topic(&input, 2);
    produce(
        &input,
        &[
            page_view("acme", "u1", 1_000).to(0),
            page_view("acme", "u2", 20_000).to(1),
            page_view("globex", "u3", 30_000).to(0),
            page_view("acme", "u4", 59_000).to(1),
            page_view("acme", "u5", 61_000).to(0),
            // Out of order but inside the first window, before the watermark passes its end.
            page_view("globex", "u6", 50_000).to(1),
            // Both partitions move past 2 minutes: the first two windows close.
            page_view("initech", "u7", 130_000).to(0),
            page_view("initech", "u8", 131_000).to(1),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let engine = engine(&state, &unique("log"));
    execute(
        &engine,
        &format!(
            "CREATE STREAM views (account STRING KEY, user_id STRING, ts BIGINT) \
             WITH (kafka_topic='{input}', value_format='JSON', timestamp='ts');\
             CREATE TABLE per_minute WITH (kafka_topic='{output}', partitions=2) AS \
             SELECT account, COUNT(*) AS views FROM views \
             WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 0 SECONDS) \
             GROUP BY account EMIT FINAL;"
        ),
    )
    .await;
    let records = read(&output, |r| r.len() >= 3).await;
    let mut got = BTreeMap::new();
    for r in &records {
        let key = r.key.as_deref().expect("windowed keys");
        let (account, start) = key.split_at(key.len() - 8);
        let start = i64::from_be_bytes(start.try_into().unwrap());
        let window = (String::from_utf8_lossy(account).to_string(), start);
        let again = got.insert(window.clone(), r.json()["VIEWS"].clone());
        assert!(again.is_none(), "window {window:?} was emitted twice");
    }
    let want: BTreeMap<(String, i64), serde_json::Value> = [
        (("acme".to_string(), 0), json!(3)),
        (("globex".to_string(), 0), json!(2)),
        (("acme".to_string(), 60_000), json!(1)),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "each closed window once, with its final count");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_from_a_compacted_topic_aggregates_upserts_and_deletes() {
    let input = unique("accounts");
    let output = unique("accounts_per_segment");
    create_topic(&input, 1);
    let account = |id: &str, segment: &str| Out::kv(id, &json!({"segment": segment}).to_string());
    produce(
        &input,
        &[
            account("a", "enterprise"),
            account("b", "smb"),
            account("c", "enterprise"),
            account("a", "smb"),
            Out::tombstone("c"),
            account("d", "enterprise"),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let engine = engine(&state, &unique("log"));
    execute(
        &engine,
        &format!(
            "CREATE TABLE accounts (id STRING PRIMARY KEY, segment STRING) \
             WITH (kafka_topic='{input}', value_format='JSON');\
             CREATE TABLE per_segment WITH (kafka_topic='{output}', partitions=1) AS \
             SELECT segment, COUNT(*) AS accounts FROM accounts GROUP BY segment EMIT CHANGES;"
        ),
    )
    .await;
    expect_latest(
        &output,
        &[
            ("enterprise", json!({"ACCOUNTS": 1})),
            ("smb", json!({"ACCOUNTS": 2})),
        ],
    )
    .await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_change_events_feed_a_table() {
    let input = unique("dbserver_public_leads");
    let output = unique("leads_per_status");
    create_topic(&input, 1);
    let key = |id: i64| json!({"schema": {"type": "struct"}, "payload": {"id": id}}).to_string();
    let event = |id: i64, op: &str, before: serde_json::Value, after: serde_json::Value| {
        // Half of the events carry Kafka Connect's schema wrapper, as with schemas.enable=true.
        let body = json!({"before": before, "after": after, "op": op,
                          "source": {"connector": "postgresql", "table": "leads"}, "ts_ms": 1});
        let value = if id % 2 == 0 {
            json!({"schema": {"type": "struct", "name": "leads.Envelope"}, "payload": body})
        } else {
            body
        };
        Out::kv(&key(id), &value.to_string())
    };
    let row = |id: i64, status: &str| json!({"id": id, "status": status, "email": "x@y.z"});
    produce(
        &input,
        &[
            event(1, "r", json!(null), row(1, "new")),
            event(2, "c", json!(null), row(2, "new")),
            event(3, "c", json!(null), row(3, "new")),
            event(1, "u", row(1, "new"), row(1, "qualified")),
            event(2, "d", row(2, "new"), json!(null)),
            Out::tombstone(&key(2)),
            event(3, "u", row(3, "new"), row(3, "qualified")),
            event(4, "c", json!(null), row(4, "new")),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let engine = engine(&state, &unique("log"));
    execute(
        &engine,
        &format!(
            "CREATE TABLE leads (id INT PRIMARY KEY, status STRING, email STRING) \
             WITH (kafka_topic='{input}', value_format='DEBEZIUM_JSON');\
             CREATE TABLE per_status WITH (kafka_topic='{output}', partitions=1) AS \
             SELECT status, COUNT(*) AS leads FROM leads GROUP BY status EMIT CHANGES;"
        ),
    )
    .await;
    expect_latest(
        &output,
        &[
            ("new", json!({"LEADS": 1})),
            ("qualified", json!({"LEADS": 2})),
        ],
    )
    .await;
    let q = &engine.queries()[0];
    assert_eq!(
        q.errors.total(),
        0,
        "tombstones and every Debezium operation decode cleanly"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_lists_a_topics_records() {
    let topic = unique("Leads_Print");
    create_topic(&topic, 1);
    produce(
        &topic,
        &[
            Out::kv("k1", r#"{"status":"new"}"#),
            Out::kv("k2", r#"{"status":"won"}"#),
            Out::tombstone("k1"),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let engine = engine(&state, &unique("log"));
    // Unquoted names arrive upper-cased; the topic is found ignoring case, as in ksqlDB.
    let StatementResult::Listing { headers, rows } =
        execute(&engine, &format!("PRINT {topic} FROM BEGINNING LIMIT 3;"))
            .await
            .remove(0)
    else {
        panic!("PRINT lists records")
    };
    assert_eq!(headers, ["rowtime", "partition", "offset", "key", "value"]);
    let cells: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r[2].clone(), r[3].clone(), r[4].clone()))
        .collect();
    assert_eq!(
        cells,
        [
            ("0".into(), "k1".into(), r#"{"status":"new"}"#.into()),
            ("1".into(), "k2".into(), r#"{"status":"won"}"#.into()),
            ("2".into(), "k1".into(), "<null>".into()),
        ]
    );
    let err = engine
        .execute(&format!("PRINT '{topic}_missing';"))
        .await
        .expect_err("a missing topic is an error");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_reach_the_processing_log_topic_and_the_query_goes_on() {
    let input = unique("orders");
    let output = unique("big_orders");
    let log = unique("processing_log");
    create_topic(&input, 1);
    produce(
        &input,
        &[
            Out::kv("o1", r#"{"amount": 12000}"#),
            Out::kv("o2", r#"{"amount": "#),
            Out::kv("o3", r#"{"amount": 15000}"#),
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let engine = engine(&state, &log);
    execute(
        &engine,
        &format!(
            "CREATE STREAM orders (id STRING KEY, amount DOUBLE) \
             WITH (kafka_topic='{input}', value_format='JSON');\
             CREATE STREAM big WITH (kafka_topic='{output}', partitions=1) AS \
             SELECT id, amount FROM orders WHERE amount > 10000;"
        ),
    )
    .await;
    let records = read(&output, |r| r.len() >= 2).await;
    let ids: Vec<String> = records.iter().map(|r| r.key_text()).collect();
    assert_eq!(ids, ["o1", "o3"]);

    let entries = read(&log, |r| !r.is_empty()).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = entries[0].json();
    assert_eq!(e["type"], "DESERIALIZATION");
    assert_eq!(e["topic"], json!(input));
    assert_eq!(e["partition"], 0);
    assert_eq!(e["offset"], 1);
    assert!(
        e["message"].as_str().unwrap().contains("invalid JSON"),
        "{e}"
    );
    assert_eq!(
        e["value_base64"], "eyJhbW91bnQiOiA=",
        "the raw bytes, base64"
    );

    // The query kept running: a record after the bad one still comes through.
    produce(&input, &[Out::kv("o4", r#"{"amount": 20000}"#)]);
    let records = read(&output, |r| r.len() >= 3).await;
    assert_eq!(records[2].key_text(), "o4");
    let q = &engine.queries()[0];
    assert_eq!(q.status(), QueryStatus::Running);
    assert_eq!(q.errors.total(), 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_of_a_query_fences_the_first() {
    let input = unique("zombie_in");
    let output = unique("zombie_out");
    create_topic(&input, 1);
    produce(&input, &[Out::kv("o1", r#"{"amount": 12000}"#)]);
    let state = tempfile::tempdir().unwrap();
    let service = unique("riffle_zombie");
    let start = || async {
        let mut kafka = KafkaConfig::new(bootstrap());
        kafka.service_id = service.clone();
        let engine = Engine::new(EngineConfig {
            kafka: Some(kafka),
            state_dir: Some(state.path().to_path_buf()),
            checkpoint_interval: Duration::from_millis(200),
            parallelism: 1,
            ..Default::default()
        })
        .unwrap();
        execute(
            &engine,
            &format!(
                "CREATE STREAM orders (id STRING KEY, amount DOUBLE) \
                 WITH (kafka_topic='{input}', value_format='JSON');\
                 CREATE STREAM big WITH (kafka_topic='{output}', partitions=1) AS \
                 SELECT id, amount FROM orders WHERE amount > 10000;"
            ),
        )
        .await;
        engine
    };
    let old = start().await;
    read(&output, |r| !r.is_empty()).await;
    // The same query started again (a restarted process while the old one still runs): its
    // producer takes over the transactional id, and the old instance can no longer commit.
    let new = start().await;
    produce(&input, &[Out::kv("o2", r#"{"amount": 15000}"#)]);
    let zombie = old.queries()[0].clone();
    let status = tokio::time::timeout(WAIT, zombie.wait())
        .await
        .expect("the old instance stops within 60s");
    let QueryStatus::Failed(reason) = status else {
        panic!("the old instance should fail, it is {status:?}")
    };
    // Kafka answers the fenced producer's next transactional call with "there is a newer
    // producer with the same transactionalId which fences the current one"; tansu sometimes
    // leaves its EndTxn unanswered instead, so the commit times out. Either way it commits
    // nothing.
    assert!(
        reason.contains("fences the current one") || reason.contains("committing the transaction"),
        "{reason}"
    );
    let records = read(&output, |r| r.iter().any(|r| r.key_text() == "o2")).await;
    assert!(records.iter().any(|r| r.key_text() == "o1"));
    assert_eq!(new.queries()[0].status(), QueryStatus::Running);
    new.shutdown().await;
}
