//! The command line: errors point at the offending line and column, pipelines run to completion
//! with `--until-idle`.

use riffle_tests::{riffle, stderr, stdout};

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("riffle-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn syntax_errors_show_line_column_and_caret() {
    let f = temp_file(
        "bad.sql",
        "CREATE STREAM s (id STRING KEY, n INT)\n  WITH (kafka_topic='s', value_format='JSON');\nSELECT id FROM s WHERE n > ;\n",
    );
    let out = riffle(&["run", f.to_str().unwrap(), "--until-idle"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("syntax error at line 3, column 28"), "{err}");
    assert!(err.contains("Expected: an expression"), "{err}");
    assert!(
        err.contains("SELECT id FROM s WHERE n > ;\n                           ^"),
        "{err}"
    );
}

#[test]
fn semantic_errors_name_the_column() {
    let f = temp_file(
        "unknown.sql",
        "CREATE STREAM s (id STRING KEY, n INT) WITH (kafka_topic='s', value_format='JSON');\nCREATE STREAM t AS SELECT id, m FROM s;\n",
    );
    let out = riffle(&["run", f.to_str().unwrap(), "--until-idle"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("column 'M' cannot be resolved"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_file_pipeline_runs_until_idle_and_writes_its_output() {
    let dir = std::env::temp_dir().join(format!("riffle-cli-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.csv");
    std::fs::write(&input, "a,1\nb,2\na,3\nnot-a-row\n").unwrap();
    let output = dir.join("out.jsonl");
    let sql = format!(
        "CREATE STREAM src (name STRING, n INT) WITH (connector='file', path='{}', value_format='DELIMITED');\n\
         CREATE TABLE totals WITH (connector='file', path='{}') AS SELECT name, SUM(n) AS total FROM src GROUP BY name;\n",
        input.display(),
        output.display()
    );
    let f = temp_file("pipe.sql", &sql);
    let out = riffle(&[
        "run",
        f.to_str().unwrap(),
        "--until-idle",
        "--parallelism",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // The file is read as one batch, so each key's total is emitted once, in first-seen order.
    assert_eq!(
        lines,
        [r#"{"NAME":"a","TOTAL":4}"#, r#"{"NAME":"b","TOTAL":2}"#]
    );
    assert!(
        stderr(&out).contains("unexpected field count"),
        "the bad row is reported: {}",
        stderr(&out)
    );
}

#[test]
fn queries_started_before_the_inserts_of_a_script_see_them() {
    // Queries are created first, rows inserted after, and a second query reads the first one's
    // output: with --until-idle nothing may finish before the script's last INSERT ran.
    let file = temp_file(
        "late_inserts.sql",
        "CREATE STREAM ticks (symbol STRING KEY, price BIGINT, ts TIMESTAMP,
             WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
           WITH (kafka_topic='ticks', value_format='JSON');
         CREATE STREAM v_shapes AS
           SELECT * FROM ticks MATCH_RECOGNIZE (
             PARTITION BY symbol ORDER BY ts
             MEASURES FIRST(down.ts) AS fell_at, LAST(up.ts) AS recovered_at, MIN(down.price) AS bottom
             AFTER MATCH SKIP PAST LAST ROW
             PATTERN (start_row down+ up+) WITHIN INTERVAL '1' HOUR
             DEFINE down AS down.price < PREV(down.price), up AS up.price > PREV(up.price)
           ) AS m;
         CREATE STREAM printed WITH (connector='stdout') AS SELECT * FROM v_shapes;
         INSERT INTO ticks (symbol, price, ts) VALUES ('A', 10, 0);
         INSERT INTO ticks (symbol, price, ts) VALUES ('A', 8, 1000);
         INSERT INTO ticks (symbol, price, ts) VALUES ('A', 7, 2000);
         INSERT INTO ticks (symbol, price, ts) VALUES ('A', 9, 3000);
         INSERT INTO ticks (symbol, price, ts) VALUES ('A', 6, 4000);",
    );
    let out = riffle(&["run", file.to_str().unwrap(), "--until-idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        r#"{"SYMBOL":"A","FELL_AT":1000,"RECOVERED_AT":3000,"BOTTOM":7}"#
    );
}
