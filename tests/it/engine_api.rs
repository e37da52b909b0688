//! The engine API used by every front end: push queries, statements about the catalog, and
//! parallel execution giving the same results as a single subtask.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use riffle_engine::{Engine, EngineConfig, StatementResult};

async fn execute(engine: &Engine, sql: &str) -> Vec<StatementResult> {
    engine
        .execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_query_streams_inserted_rows() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    execute(&engine, "CREATE STREAM clicks (user_id STRING KEY, page STRING) WITH (kafka_topic='clicks', value_format='JSON');").await;
    let mut results = execute(
        &engine,
        "SELECT user_id, UCASE(page) AS page FROM clicks WHERE page <> '/skip' EMIT CHANGES;",
    )
    .await;
    let StatementResult::Transient(mut q) = results.remove(0) else {
        panic!("expected a push query")
    };
    execute(
        &engine,
        "INSERT INTO clicks (user_id, page) VALUES ('u1', '/pricing');\
         INSERT INTO clicks (user_id, page) VALUES ('u2', '/skip');\
         INSERT INTO clicks (user_id, page) VALUES ('u3', '/docs');",
    )
    .await;
    let mut pages = Vec::new();
    while pages.len() < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(10), q.rows.recv())
            .await
            .expect("rows arrive within 10s")
            .expect("the query is running");
        let col = batch.column(1).as_string::<i32>();
        pages.extend((0..batch.num_rows()).map(|i| col.value(i).to_string()));
    }
    assert_eq!(pages, ["/PRICING", "/DOCS"]);
    q.handle.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_explain_show_and_terminate() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    execute(&engine, "CREATE STREAM orders (id STRING KEY, account STRING, amount DOUBLE) WITH (kafka_topic='orders', value_format='JSON');").await;
    execute(
        &engine,
        "CREATE TABLE totals AS SELECT account, SUM(amount) AS total FROM orders GROUP BY account;",
    )
    .await;
    let StatementResult::Text(d) = execute(&engine, "DESCRIBE totals;").await.remove(0) else {
        panic!()
    };
    assert!(d.contains("ACCOUNT | STRING (primary key)"), "{d}");
    assert!(d.contains("TOTAL | DOUBLE"), "{d}");
    let StatementResult::Text(e) = execute(
        &engine,
        "EXPLAIN SELECT account, COUNT(*) FROM orders GROUP BY account EMIT CHANGES;",
    )
    .await
    .remove(0) else {
        panic!()
    };
    assert!(e.contains("Exchange shuffle(__K0)"), "{e}");
    assert!(e.contains("Aggregate by (__K0) [COUNT() AS __A0]"), "{e}");
    assert!(e.contains("Source ORDERS"), "{e}");
    let StatementResult::Listing { rows, .. } = execute(&engine, "SHOW QUERIES;").await.remove(0)
    else {
        panic!()
    };
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "CTAS_TOTALS_0");
    let err = engine
        .execute("DROP STREAM orders;")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CTAS_TOTALS_0"),
        "dropping a source that is read must name the query: {err}"
    );
    let StatementResult::Terminated { ids } =
        execute(&engine, "TERMINATE CTAS_TOTALS_0;").await.remove(0)
    else {
        panic!()
    };
    assert_eq!(ids, ["CTAS_TOTALS_0"]);
    execute(&engine, "DROP TABLE totals; DROP STREAM orders;").await;
    assert!(engine.catalog().get("ORDERS").is_none());
}

async fn counts_with_parallelism(parallelism: usize) -> BTreeMap<String, i64> {
    let engine = Engine::new(EngineConfig {
        parallelism,
        until_idle: true,
        ..Default::default()
    })
    .unwrap();
    execute(
        &engine,
        "CREATE STREAM events (id BIGINT, account STRING) WITH (connector='datagen', rows=20000, seed=11, \
           'fields.id.kind'='sequence', 'fields.account.length'='2');\
         CREATE TABLE counts AS SELECT account, COUNT(*) AS n FROM events GROUP BY account;",
    )
    .await;
    engine.wait_all().await.expect("the query finishes");
    let topic = engine
        .topics()
        .get("COUNTS")
        .expect("the sink topic exists");
    let mut latest = BTreeMap::new();
    for r in topic.all() {
        let key = String::from_utf8(r.record.key.clone().unwrap()).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(r.record.value.as_ref().unwrap()).unwrap();
        latest.insert(key, v["N"].as_i64().unwrap());
    }
    latest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_aggregation_matches_a_single_subtask() {
    let one = counts_with_parallelism(1).await;
    let four = counts_with_parallelism(4).await;
    assert_eq!(one, four);
    assert_eq!(one.values().sum::<i64>(), 20000);
    assert!(
        one.len() > 100,
        "two random characters give many accounts, got {}",
        one.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagen_is_deterministic_for_a_seed() {
    async fn ids(seed: u64) -> Vec<i64> {
        let engine = Engine::new(EngineConfig {
            until_idle: true,
            ..Default::default()
        })
        .unwrap();
        execute(
            &engine,
            &format!(
                "CREATE STREAM g (n BIGINT) WITH (connector='datagen', rows=50, seed={seed}, 'fields.n.min'='0', 'fields.n.max'='1000000');"
            ),
        )
        .await;
        let StatementResult::Transient(mut q) = execute(&engine, "SELECT n FROM g EMIT CHANGES;")
            .await
            .remove(0)
        else {
            panic!()
        };
        let mut out = Vec::new();
        while let Some(b) = q.rows.recv().await {
            let a = b.column(0).as_primitive::<Int64Type>();
            out.extend((0..a.len()).map(|i| a.value(i)));
        }
        out
    }
    let a = ids(5).await;
    assert_eq!(a.len(), 50);
    assert_eq!(a, ids(5).await);
    assert_ne!(a, ids(6).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_state_of_joins_and_pattern_matching() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    execute(&engine, "CREATE STREAM clicks (user_id STRING KEY, account STRING, page STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECONDS) WITH (kafka_topic='clicks', value_format='JSON');").await;
    execute(&engine, "CREATE TABLE accounts (account STRING PRIMARY KEY, tier STRING) WITH (kafka_topic='accounts', value_format='JSON');").await;
    let explain = |sql: &'static str| {
        let engine = &engine;
        async move {
            match execute(engine, sql).await.remove(0) {
                StatementResult::Text(t) => t,
                _ => panic!("EXPLAIN returns text"),
            }
        }
    };
    let e = explain("EXPLAIN SELECT c.account, c.user_id, a.tier FROM clicks c JOIN accounts a ON c.account = a.account EMIT CHANGES;").await;
    assert!(e.contains("state: the latest table row per key"), "{e}");
    let e = explain("EXPLAIN SELECT a.user_id, b.page FROM clicks a JOIN clicks b ON a.user_id = b.user_id AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '1' MINUTE EMIT CHANGES;").await;
    assert!(e.contains("before_ms: 0, after_ms: 60000"), "{e}");
    assert!(e.contains("state: rows of both sides for 60000 ms"), "{e}");
    let e = explain("EXPLAIN SELECT * FROM clicks MATCH_RECOGNIZE (PARTITION BY account ORDER BY ts MEASURES COUNT(B.*) AS n PATTERN (A B+?) WITHIN INTERVAL '10' MINUTES DEFINE A AS A.page = '/pricing', B AS B.page <> A.page) AS m EMIT CHANGES;").await;
    assert!(e.contains("MatchRecognize pattern (A B+?)"), "{e}");
    assert!(e.contains("within 600000ms"), "{e}");
    assert!(e.contains("state: per partition"), "{e}");
    assert!(e.contains("Exchange shuffle(__P0)"), "{e}");
}

/// Runs a pull query and returns its rows as JSON arrays.
async fn pull(engine: &Engine, sql: &str) -> Vec<serde_json::Value> {
    match execute(engine, sql).await.remove(0) {
        StatementResult::Pull(p) => riffle::output::row_values(&p.batch, &p.schema)
            .into_iter()
            .map(|(_, cells)| serde_json::Value::Array(cells))
            .collect(),
        other => panic!("{sql}: expected rows, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_queries_answer_from_current_state() {
    use serde_json::json;
    let engine = Engine::new(EngineConfig::default()).unwrap();
    execute(&engine, "CREATE STREAM views (user_id STRING KEY, page STRING) WITH (kafka_topic='views', value_format='JSON');").await;
    execute(&engine, "CREATE TABLE per_user AS SELECT user_id, COUNT(*) AS n, LATEST_BY_OFFSET(page) AS last_page FROM views GROUP BY user_id;").await;
    execute(&engine, "CREATE TABLE per_window AS SELECT user_id, COUNT(*) AS n FROM views WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY user_id;").await;
    for (user, page, ts) in [
        ("u1", "/a", 1000),
        ("u2", "/b", 2000),
        ("u1", "/c", 12000),
        ("u1", "/d", 13000),
    ] {
        execute(
            &engine,
            &format!(
                "INSERT INTO views (user_id, page, ROWTIME) VALUES ('{user}', '{page}', {ts});"
            ),
        )
        .await;
    }
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = pull(&engine, "SELECT * FROM per_user WHERE user_id = 'u1';").await;
        if rows == [json!(["u1", 3, "/d"])] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The latest row per key, not the history of updates.
    assert_eq!(rows, [json!(["u1", 3, "/d"])]);
    // Range filters on any column; the key need not be selected.
    assert_eq!(
        pull(&engine, "SELECT n, user_id FROM per_user WHERE n < 3;").await,
        [json!([1, "u2"])]
    );
    // Windowed tables: bounds on WINDOWSTART pick windows, whose bounds close each row.
    let mut windows = Vec::new();
    for _ in 0..100 {
        windows = pull(
            &engine,
            "SELECT user_id, n FROM per_window WHERE user_id = 'u1' AND WINDOWSTART >= 10000;",
        )
        .await;
        if windows == [json!(["u1", 2, 10000, 20000])] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(windows, [json!(["u1", 2, 10000, 20000])]);
    // Streams: every row currently stored, LIMIT applies.
    assert_eq!(
        pull(&engine, "SELECT page FROM views LIMIT 2;").await,
        [json!(["/a"]), json!(["/b"])]
    );
    // What a pull query cannot do is refused with a reason.
    let err = engine
        .execute("SELECT user_id, COUNT(*) FROM views GROUP BY user_id;")
        .await
        .expect_err("an aggregating pull query is refused")
        .to_string();
    assert!(err.contains("cannot use aggregation"), "{err}");
}
