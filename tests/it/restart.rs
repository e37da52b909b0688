//! State that spans a restart: for every stateful operator, a query runs over the first part of
//! its input in one engine, which then shuts down (taking its last checkpoint); a second engine
//! on the same state directory gets the whole input again and resumes the query from the
//! checkpoint. Together the two runs must write exactly what one uninterrupted run writes —
//! which they only can if the operator's state (sessions, join buffers, table rows, partial
//! pattern matches, windows, groups) and the sources' positions and watermarks were restored.

use std::path::Path;
use std::time::Duration;

use riffle_engine::{Engine, EngineConfig, StatementResult};

struct Case {
    ddl: &'static str,
    first: &'static str,
    second: &'static str,
    query: &'static str,
}

fn config(state: Option<&Path>) -> EngineConfig {
    EngineConfig {
        parallelism: 1,
        single_partition_topics: true,
        max_batch_rows: 1,
        state_dir: state.map(Path::to_path_buf),
        // The only checkpoint is the one taken at shutdown.
        checkpoint_interval: Duration::from_secs(3600),
        ..Default::default()
    }
}

/// Runs the case's query: `before` is inserted before it starts, `live` while it runs. Returns
/// what the query wrote to the topic `out`, as `key => value` lines.
async fn run(state: Option<&Path>, case: &Case, before: &[&str], live: &[&str]) -> Vec<String> {
    let engine = Engine::new(config(state)).expect("the engine starts");
    for sql in [case.ddl].iter().chain(before).chain([&case.query]) {
        if let Err(e) = engine.execute(sql).await {
            panic!("{sql}: {e}");
        }
    }
    let queries = engine.queries();
    assert_eq!(queries.len(), 1, "one persistent query");
    let flush = || async {
        tokio::time::timeout(Duration::from_secs(30), queries[0].flush())
            .await
            .expect("the query processes its input within 30s")
            .expect("the query runs")
    };
    flush().await;
    for sql in live {
        if let Err(e) = engine.execute(sql).await {
            panic!("{sql}: {e}");
        }
        flush().await;
    }
    // Read after shutdown: everything the query wrote before it stopped is in.
    engine.shutdown().await;
    engine
        .topics()
        .get("out")
        .map(|t| t.all())
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let text = |b: &Option<Vec<u8>>| {
                b.as_deref()
                    .map(|b| String::from_utf8_lossy(b).to_string())
                    .unwrap_or_else(|| "<tombstone>".into())
            };
            format!("{} => {}", text(&r.record.key), text(&r.record.value))
        })
        .collect()
}

/// Checks that a query stopped after the first part of its input and resumed for the second
/// writes what one uninterrupted run writes, and that the second part's output depends on
/// restored state. The first part exists before the query starts; the second arrives while it
/// runs.
async fn spans_a_restart(case: Case) {
    let state = tempfile::tempdir().unwrap();
    let before = run(Some(state.path()), &case, &[case.first], &[]).await;
    // The in-memory topics are gone with the engine: the first part is written again, to the
    // same offsets, and the resumed query skips it.
    let after = run(Some(state.path()), &case, &[case.first], &[case.second]).await;
    let whole = run(None, &case, &[case.first], &[case.second]).await;
    let fresh = run(None, &case, &[], &[case.second]).await;
    let resumed: Vec<String> = before.iter().chain(&after).cloned().collect();
    assert_eq!(resumed, whole, "output before the restart: {before:#?}");
    assert_ne!(
        after, fresh,
        "the second part alone gives the same output: the case does not exercise restored state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_windows_span_a_restart() {
    spans_a_restart(Case {
        ddl: "CREATE STREAM clicks (user_id STRING KEY, ts BIGINT) \
              WITH (kafka_topic='clicks', value_format='JSON', timestamp='ts');",
        first: "INSERT INTO clicks (user_id, ts) VALUES ('u1', 1000);\
                INSERT INTO clicks (user_id, ts) VALUES ('u2', 2000);\
                INSERT INTO clicks (user_id, ts) VALUES ('u1', 20000);",
        second: "INSERT INTO clicks (user_id, ts) VALUES ('u1', 40000);\
                 INSERT INTO clicks (user_id, ts) VALUES ('u2', 200000);",
        query: "CREATE TABLE visits WITH (kafka_topic='out', value_format='JSON') AS \
                SELECT user_id, COUNT(*) AS clicks FROM clicks \
                WINDOW SESSION (30 SECONDS) GROUP BY user_id EMIT CHANGES;",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_windows_and_groups_span_a_restart() {
    spans_a_restart(Case {
        ddl: "CREATE STREAM views (account STRING KEY, ts BIGINT) \
              WITH (kafka_topic='views', value_format='JSON', timestamp='ts');",
        first: "INSERT INTO views (account, ts) VALUES ('acme', 1000);\
                INSERT INTO views (account, ts) VALUES ('acme', 2000);",
        second: "INSERT INTO views (account, ts) VALUES ('acme', 3000);\
                 INSERT INTO views (account, ts) VALUES ('acme', 125000);",
        query: "CREATE TABLE per_minute WITH (kafka_topic='out', value_format='JSON') AS \
                SELECT account, COUNT(*) AS views FROM views \
                WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 0 SECONDS) \
                GROUP BY account EMIT FINAL;",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_stream_joins_span_a_restart() {
    spans_a_restart(Case {
        ddl: "CREATE STREAM orders (id STRING KEY, amount BIGINT, ts BIGINT) \
              WITH (kafka_topic='orders', value_format='JSON', timestamp='ts');\
              CREATE STREAM shipments (id STRING KEY, carrier STRING, ts BIGINT) \
              WITH (kafka_topic='shipments', value_format='JSON', timestamp='ts');",
        first: "INSERT INTO orders (id, amount, ts) VALUES ('o1', 100, 1000);\
                INSERT INTO orders (id, amount, ts) VALUES ('o2', 200, 2000);",
        second: "INSERT INTO shipments (id, carrier, ts) VALUES ('o1', 'ups', 30000);\
                 INSERT INTO shipments (id, carrier, ts) VALUES ('o2', 'dhl', 90000);",
        query: "CREATE STREAM shipped WITH (kafka_topic='out', value_format='JSON') AS \
                SELECT o.id AS id, o.amount, s.carrier FROM orders o \
                JOIN shipments s WITHIN 1 MINUTE ON o.id = s.id;",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_table_joins_span_a_restart() {
    spans_a_restart(Case {
        ddl: "CREATE TABLE companies (account STRING PRIMARY KEY, segment STRING) \
              WITH (kafka_topic='companies', value_format='JSON');\
              CREATE STREAM clicks (user_id STRING KEY, account STRING) \
              WITH (kafka_topic='clicks', value_format='JSON');",
        first: "INSERT INTO companies (account, segment) VALUES ('acme', 'enterprise');\
                INSERT INTO clicks (user_id, account) VALUES ('u1', 'acme');",
        second: "INSERT INTO clicks (user_id, account) VALUES ('u2', 'acme');",
        query: "CREATE STREAM enriched WITH (kafka_topic='out', value_format='JSON') AS \
                SELECT c.user_id, c.account, co.segment FROM clicks c \
                LEFT JOIN companies co ON c.account = co.account;",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_table_joins_span_a_restart() {
    spans_a_restart(Case {
        ddl: "CREATE TABLE leads (id STRING PRIMARY KEY, status STRING) \
              WITH (kafka_topic='leads', value_format='JSON');\
              CREATE TABLE owners (id STRING PRIMARY KEY, owner STRING) \
              WITH (kafka_topic='owners', value_format='JSON');",
        first: "INSERT INTO leads (id, status) VALUES ('l1', 'new');\
                INSERT INTO owners (id, owner) VALUES ('l1', 'ann');",
        second: "INSERT INTO leads (id, status) VALUES ('l1', 'qualified');",
        query: "CREATE TABLE assigned WITH (kafka_topic='out', value_format='JSON') AS \
                SELECT l.id AS id, l.status, o.owner FROM leads l \
                JOIN owners o ON l.id = o.id;",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_aggregations_span_a_restart() {
    spans_a_restart(Case {
        ddl: "CREATE TABLE leads (id STRING PRIMARY KEY, status STRING) \
              WITH (kafka_topic='leads', value_format='JSON');",
        first: "INSERT INTO leads (id, status) VALUES ('l1', 'new');\
                INSERT INTO leads (id, status) VALUES ('l2', 'new');",
        second: "INSERT INTO leads (id, status) VALUES ('l1', 'qualified');",
        query: "CREATE TABLE per_status WITH (kafka_topic='out', value_format='JSON') AS \
                SELECT status, COUNT(*) AS leads FROM leads GROUP BY status;",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_recognize_patterns_span_a_restart() {
    spans_a_restart(Case {
        ddl: "CREATE STREAM ticks (symbol STRING KEY, price BIGINT, ts BIGINT) \
              WITH (kafka_topic='ticks', value_format='JSON', timestamp='ts');",
        first: "INSERT INTO ticks (symbol, price, ts) VALUES ('ACME', 10, 1000);\
                INSERT INTO ticks (symbol, price, ts) VALUES ('ACME', 8, 2000);\
                INSERT INTO ticks (symbol, price, ts) VALUES ('ACME', 6, 3000);",
        second: "INSERT INTO ticks (symbol, price, ts) VALUES ('ACME', 9, 4000);\
                 INSERT INTO ticks (symbol, price, ts) VALUES ('ACME', 12, 5000);\
                 INSERT INTO ticks (symbol, price, ts) VALUES ('ACME', 11, 6000);",
        query: "CREATE STREAM v_shapes WITH (kafka_topic='out', value_format='JSON') AS \
                SELECT * FROM ticks MATCH_RECOGNIZE ( \
                  PARTITION BY symbol ORDER BY ts \
                  MEASURES FIRST(down.ts) AS fell_at, LAST(up.ts) AS recovered_at, \
                           MIN(down.price) AS bottom \
                  AFTER MATCH SKIP PAST LAST ROW \
                  PATTERN (start_row down+ up+) \
                  DEFINE down AS down.price < PREV(down.price), \
                         up AS up.price > PREV(up.price) \
                ) AS m;",
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_query_is_refused_unless_starting_fresh() {
    let state = tempfile::tempdir().unwrap();
    let ddl = "CREATE STREAM views (account STRING KEY, ts BIGINT) \
               WITH (kafka_topic='views', value_format='JSON', timestamp='ts');\
               INSERT INTO views (account, ts) VALUES ('acme', 1000);";
    let engine = Engine::new(config(Some(state.path()))).unwrap();
    engine.execute(ddl).await.unwrap();
    engine
        .execute(
            "CREATE TABLE counts AS SELECT account, COUNT(*) AS n FROM views GROUP BY account;",
        )
        .await
        .unwrap();
    engine.queries()[0].flush().await.unwrap();
    engine.shutdown().await;

    let changed =
        "CREATE TABLE counts AS SELECT account, SUM(ts) AS n FROM views GROUP BY account;";
    let engine = Engine::new(config(Some(state.path()))).unwrap();
    engine.execute(ddl).await.unwrap();
    let err = engine
        .execute(changed)
        .await
        .expect_err("state of another plan is refused");
    let msg = err.to_string();
    assert!(msg.contains("cannot resume its checkpoint"), "{msg}");
    assert!(msg.contains("--fresh-state"), "{msg}");
    engine.shutdown().await;

    let fresh = EngineConfig {
        fresh_state: true,
        ..config(Some(state.path()))
    };
    let engine = Engine::new(fresh).unwrap();
    engine.execute(ddl).await.unwrap();
    let started = engine
        .execute(changed)
        .await
        .expect("a fresh start is allowed");
    assert!(
        matches!(started.last(), Some(StatementResult::QueryStarted { .. })),
        "{started:?}"
    );
    engine.shutdown().await;
}

/// Runs a GROUP BY over 40,000 generated rows with 10,000 keys until idle and returns the final
/// count per key, and whether the query's RocksDB store was used.
async fn count_per_key(
    state: Option<&Path>,
    cache_entries: usize,
) -> (Vec<(String, String)>, bool) {
    let config = EngineConfig {
        parallelism: 2,
        until_idle: true,
        state_dir: state.map(Path::to_path_buf),
        checkpoint_interval: Duration::from_millis(50),
        state_cache_entries: cache_entries,
        ..Default::default()
    };
    let engine = Engine::new(config).unwrap();
    engine
        .execute(
            "CREATE STREAM events (id BIGINT, amount BIGINT) WITH (connector='datagen', \
             rows=40000, seed=11, 'fields.id.min'='0', 'fields.id.max'='9999');\
             CREATE TABLE per_id WITH (kafka_topic='out', value_format='JSON') AS \
             SELECT id, COUNT(*) AS n, SUM(amount) AS total FROM events GROUP BY id;",
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(120), engine.wait_all())
        .await
        .expect("the query finishes within 120s")
        .expect("the query succeeds");
    let used_store = engine.queries()[0].store.is_open();
    engine.shutdown().await;
    let mut latest = std::collections::BTreeMap::new();
    for r in engine.topics().get("out").expect("output").all() {
        let key: String = r
            .record
            .key
            .iter()
            .flatten()
            .map(|b| format!("{b:02x}"))
            .collect();
        let value = String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default());
        latest.insert(key, value.to_string());
    }
    (latest.into_iter().collect(), used_store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_beyond_the_memory_cache_live_in_rocksdb() {
    let (in_memory, used) = count_per_key(None, 1_000_000).await;
    assert!(!used, "with room for every group, RocksDB is not touched");
    assert!(in_memory.len() > 9_000, "{} keys", in_memory.len());
    // 100 groups per subtask in memory for 10,000 keys: almost every group is evicted to
    // RocksDB and read back when its key comes again. Without checkpoints the store is a
    // temporary one, opened only by evictions; with them, evictions interleave with barriers.
    let (capped, used) = count_per_key(None, 100).await;
    assert!(used, "the capped run evicts its groups to RocksDB");
    let state = tempfile::tempdir().unwrap();
    let (checkpointed, _) = count_per_key(Some(state.path()), 100).await;
    for run in [&capped, &checkpointed] {
        let differ: Vec<_> = run
            .iter()
            .zip(&in_memory)
            .filter(|(a, b)| a != b)
            .take(5)
            .collect();
        assert!(differ.is_empty(), "groups differ, e.g. {differ:?}");
        assert_eq!(run.len(), in_memory.len());
    }
}
