//! ksqlDB conformance: every case in `tests/conformance/passing.txt` must keep passing, and the
//! in-scope pass rates must stay above the targets: 90% overall and for every category —
//! projection/filter, GROUP BY, windowed aggregation and each kind of join.

use std::collections::BTreeMap;

use riffle_tests::{repo_root, shared_dir};

/// The kind of join a join case exercises, from its file and name.
fn join_kind(stem: &str, name: &str) -> &'static str {
    let n = name.to_lowercase();
    if stem.starts_with("fk-") {
        "joins: foreign-key"
    } else if stem == "multi-joins" {
        "joins: n-way"
    } else if n.contains("stream stream")
        || n.contains("stream-stream")
        || n.contains("stream to stream")
    {
        "joins: stream-stream"
    } else if n.contains("table table") || n.contains("table-table") || n.contains("table to table")
    {
        "joins: table-table"
    } else if n.contains("stream table")
        || n.contains("stream-table")
        || n.contains("stream to table")
        || n.contains("stream->table")
    {
        "joins: stream-table"
    } else {
        "joins: other (key naming, projection)"
    }
}

fn category(name: &str) -> &'static str {
    let stem = name.split(" - ").next().unwrap_or("");
    match stem {
        "joins" | "multi-joins" | "fk-join" | "fk-n-way-join" | "join-with-custom-timestamp" => {
            join_kind(stem, name)
        }
        "tumbling-windows" | "hopping-windows" | "session-windows" | "window-bounds" => {
            "windowed aggregation"
        }
        "group-by"
        | "count"
        | "sum"
        | "average"
        | "average-udaf"
        | "collect-list"
        | "collect-set"
        | "earliest-offset-udaf"
        | "latest-offset-udaf"
        | "multi-col-keys" => "group by",
        _ if name.contains("join") => join_kind(stem, name),
        _ => "projection/filter",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_scope_cases_pass_and_passing_list_holds() {
    let shared = shared_dir();
    let tests = shared.join("conformance/ksql/tests");
    let names = shared.join("conformance/ksql/in_scope.txt");
    let summary = riffle::qtt::run_cases(&[tests], Some(&names), None, 4)
        .await
        .expect("the runner loads the cases");

    let passing_file = repo_root().join("tests/conformance/passing.txt");
    let must_pass: Vec<String> = std::fs::read_to_string(&passing_file)
        .expect("tests/conformance/passing.txt exists")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let failed: BTreeMap<&str, &str> = summary
        .failed
        .iter()
        .map(|(n, r)| (n.as_str(), r.as_str()))
        .collect();
    let regressions: Vec<String> = must_pass
        .iter()
        .filter_map(|n| failed.get(n.as_str()).map(|r| format!("{n}: {r}")))
        .collect();
    assert!(
        regressions.is_empty(),
        "cases that used to pass now fail:\n{}",
        regressions.join("\n")
    );

    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for n in &summary.passed {
        per.entry(category(n)).or_default().0 += 1;
    }
    for (n, _) in &summary.failed {
        per.entry(category(n)).or_default().1 += 1;
    }
    let total = summary.passed.len() + summary.failed.len();
    assert_eq!(total, 601, "the in-scope list has 601 cases");
    let rate = |p: usize, f: usize| p as f64 / (p + f).max(1) as f64;
    let overall = rate(summary.passed.len(), summary.failed.len());
    eprintln!(
        "conformance: {} passed, {} failed ({:.1}%)",
        summary.passed.len(),
        summary.failed.len(),
        overall * 100.0
    );
    for (c, (p, f)) in &per {
        eprintln!(
            "  {c}: {p} passed, {f} failed ({:.1}%)",
            rate(*p, *f) * 100.0
        );
    }
    assert!(
        overall >= 0.90,
        "overall pass rate {overall:.3} is below 90%"
    );
    for (c, (p, f)) in &per {
        let (p, f) = (*p, *f);
        assert!(
            rate(p, f) >= 0.90,
            "{c}: pass rate {:.3} is below 90%",
            rate(p, f)
        );
    }
}
