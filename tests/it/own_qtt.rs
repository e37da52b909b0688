//! riffle's own QTT-format tests under `tests/qtt`: windows with out-of-order and late rows,
//! EMIT FINAL vs EMIT CHANGES, malformed records, error messages, MATCH_RECOGNIZE (Flink's
//! documented examples and SQL:2016 features), Flink window TVFs and interval joins.

use riffle_tests::{repo_root, riffle, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_qtt_files_pass() {
    let dir = repo_root().join("tests/qtt");
    let summary = riffle::qtt::run_cases(&[dir], None, None, 4)
        .await
        .expect("the runner loads the cases");
    let failures: Vec<String> = summary
        .failed
        .iter()
        .map(|(n, r)| format!("{n}: {r}"))
        .collect();
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert!(
        summary.passed.len() >= 42,
        "expected at least 42 cases, ran {}",
        summary.passed.len()
    );
}

#[test]
fn test_command_reports_failures_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("riffle-qtt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.json");
    std::fs::write(
        &file,
        r#"{"tests": [
          {"name": "passes", "statements": [
             "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON');",
             "CREATE STREAM T AS SELECT K, V * 2 AS W FROM S;"],
           "inputs": [{"topic": "s", "key": "a", "value": {"V": 2}}],
           "outputs": [{"topic": "T", "key": "a", "value": {"W": 4}}]},
          {"name": "fails", "statements": [
             "CREATE STREAM S (K STRING KEY, V INT) WITH (kafka_topic='s', value_format='JSON');",
             "CREATE STREAM T AS SELECT K, V * 2 AS W FROM S;"],
           "inputs": [{"topic": "s", "key": "a", "value": {"V": 2}}],
           "outputs": [{"topic": "T", "key": "a", "value": {"W": 5}}]}
        ]}"#,
    )
    .unwrap();
    let out = riffle(&["test", file.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(
        !out.status.success(),
        "a failing case must make the exit code non-zero"
    );
    assert!(
        text.contains("FAIL broken - fails: topic T record 0: value.W: expected 5, got 4"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("1 passed, 1 failed"), "{text}");
}
