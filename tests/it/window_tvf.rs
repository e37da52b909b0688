//! Flink window TVFs and ksqlDB WINDOW clauses run on the same operators: on the same
//! out-of-order input (small batches, so some rows fall behind the watermark and are dropped by
//! both) they produce the same windows with the same aggregates.

use std::collections::BTreeSet;
use std::path::Path;

use riffle_engine::{Engine, EngineConfig};

/// The generated click stream: 4 users, random amounts, event times spread over 5 minutes in
/// random order, watermark 20 seconds behind the largest time seen.
const CLICKS: &str = "CREATE STREAM clicks (user_id STRING KEY, amount INT, ts TIMESTAMP, \
     WATERMARK FOR ts AS ts - INTERVAL '20' SECONDS) WITH (connector='datagen', rows='3000', \
     'fields.user_id.values'='u1,u2,u3,u4', 'fields.amount.min'='1', 'fields.amount.max'='100', \
     'fields.ts.min'='1767225600000', 'fields.ts.max'='1767225900000', format='JSON');";

/// One window result: user, window start and end (ms), count and sum.
type Window = (String, i64, i64, i64, i64);

fn read(path: &Path, start: &str, end: &str, end_offset: i64) -> BTreeSet<Window> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["USER_ID"].as_str().expect("USER_ID").to_string(),
                v[start].as_i64().expect("window start"),
                v[end].as_i64().expect("window end") + end_offset,
                v["C"].as_i64().expect("C"),
                v["S"].as_i64().expect("S"),
            )
        })
        .collect()
}

/// Runs a TVF query and its ksqlDB equivalent on the same input and compares their windows;
/// `session_gap_ms` is added to ksqlDB's session end (Flink's session `window_end` is the last
/// event plus the gap).
async fn assert_same_windows(name: &str, tvf: &str, window: &str, session_gap_ms: i64) {
    let dir = std::env::temp_dir().join(format!("riffle-tvf-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("tvf.jsonl"), dir.join("window.jsonl"));
    let config = EngineConfig {
        parallelism: 2,
        max_batch_rows: 16,
        until_idle: true,
        processing_log_stderr: false,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config).unwrap();
    let sql = format!(
        "{CLICKS}
         CREATE TABLE tvf_out WITH (connector='file', path='{}', format='JSON') AS
           SELECT user_id, window_start, window_end, COUNT(*) AS c, SUM(amount) AS s
           FROM TABLE({tvf}) GROUP BY user_id, window_start, window_end;
         CREATE TABLE window_out WITH (connector='file', path='{}', format='JSON') AS
           SELECT user_id, COUNT(*) AS c, SUM(amount) AS s FROM clicks
           WINDOW {window} GROUP BY user_id EMIT FINAL;",
        a.display(),
        b.display()
    );
    engine
        .execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    engine.wait_all().await.expect("both queries finish");
    let from_tvf = read(&a, "WINDOW_START", "WINDOW_END", 0);
    let from_window = read(&b, "WINDOWSTART", "WINDOWEND", session_gap_ms);
    assert!(
        from_tvf.len() >= 8,
        "expected several windows, got {from_tvf:?}"
    );
    assert_eq!(from_tvf, from_window, "{name}: the two forms disagree");
    let counted: i64 = from_tvf.iter().map(|w| w.3).sum();
    let late = engine
        .processing_log()
        .counts("CTAS_TVF_OUT_0")
        .late
        .load(std::sync::atomic::Ordering::Relaxed) as i64;
    if session_gap_ms == 0 {
        assert!(late > 0, "{name}: the input was meant to have late rows");
        assert!(
            counted < 3000,
            "{name}: late rows must not be counted ({counted} counted)"
        );
    }
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tumble_matches_window_tumbling() {
    assert_same_windows(
        "tumble",
        "TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECONDS)",
        "TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 0 SECONDS)",
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hop_matches_window_hopping() {
    assert_same_windows(
        "hop",
        "HOP(TABLE clicks, DESCRIPTOR(ts), INTERVAL '5' SECONDS, INTERVAL '15' SECONDS)",
        "HOPPING (SIZE 15 SECONDS, ADVANCE BY 5 SECONDS, GRACE PERIOD 0 SECONDS)",
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_matches_window_session() {
    assert_same_windows(
        "session",
        "SESSION(TABLE clicks PARTITION BY user_id, DESCRIPTOR(ts), INTERVAL '400' MILLISECONDS)",
        "SESSION (400 MILLISECONDS, GRACE PERIOD 0 SECONDS)",
        400,
    )
    .await;
}
