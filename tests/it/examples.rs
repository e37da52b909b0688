//! The RevOps examples run on a fresh machine (generator and files, no Kafka) and print their
//! results deterministically.

use riffle_tests::{repo_root, riffle, stderr, stdout};

#[test]
fn high_intent_prints_the_same_detections_every_time() {
    let first = riffle(&["run", "examples/revops/high_intent.sql", "--until-idle"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let second = riffle(&["run", "examples/revops/high_intent.sql", "--until-idle"]);
    assert_eq!(
        stdout(&first),
        stdout(&second),
        "two runs printed different detections"
    );
    let golden =
        std::fs::read_to_string(repo_root().join("tests/golden/high_intent.jsonl")).unwrap();
    assert_eq!(
        stdout(&first),
        golden,
        "the detections changed; review and update tests/golden/high_intent.jsonl"
    );
    for line in stdout(&first).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).expect("each detection is a JSON object");
        assert_eq!(v["EVENT"], "high.intent.detected");
        assert!(v["DISTINCT_VIEWERS"].as_i64().unwrap() >= 4, "{line}");
    }
}

#[test]
fn order_routing_sends_big_orders_to_the_cfo_and_reports_the_bad_one() {
    let out = riffle(&["run", "examples/revops/order_routing.sql", "--until-idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfo: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let ids: Vec<&str> = cfo
        .iter()
        .map(|v| v["ORDER_ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["O-1002", "O-1005", "O-1008", "O-1010"]);
    let standard =
        std::fs::read_to_string(repo_root().join("examples/revops/out/standard_orders.jsonl"))
            .unwrap();
    let standard_ids: Vec<String> = standard
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["ORDER_ID"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        standard_ids,
        ["O-1001", "O-1003", "O-1004", "O-1006", "O-1009"]
    );
    let err = stderr(&out);
    assert!(
        err.contains("invalid decimal 'not a number'"),
        "the malformed order must be reported: {err}"
    );
}

#[test]
fn pii_masking_never_prints_an_email() {
    let out = riffle(&["run", "examples/revops/pii_masking.sql", "--until-idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 5);
    assert!(!text.contains('@'), "an email leaked: {text}");
    // The same person hashes alike whatever the case and spacing of the address.
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["EMAIL_SHA256"], rows[2]["EMAIL_SHA256"]);
    assert_eq!(
        rows[0]["EMAIL_SHA256"], "73bc7cab2b5f60c919f890e22eb1a04bc43c33f38c1f9eba423de70f8b72261f",
        "sha256 of ada.lovelace@acme.com"
    );
    assert_eq!(rows[0]["PHONE"], "-n-nnn-nnn-0101");
}

/// Runs an example and parses the JSON lines it prints.
fn run_example(path: &str) -> Vec<serde_json::Value> {
    let out = riffle(&["run", path, "--until-idle"]);
    assert!(out.status.success(), "{path}: {}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}: {l}")))
        .collect()
}

#[test]
fn enrichment_joins_every_click_with_its_company() {
    let rows = run_example("examples/revops/enrichment.sql");
    let summary: Vec<(String, String, serde_json::Value)> = rows
        .iter()
        .map(|r| {
            (
                r["CLICK_ID"].as_str().unwrap().to_string(),
                r["ACCOUNT_ID"].as_str().unwrap().to_string(),
                r["TIER"].clone(),
            )
        })
        .collect();
    let tier = |t: &str| serde_json::Value::String(t.to_string());
    assert_eq!(
        summary,
        [
            ("C-1".into(), "acme".into(), tier("enterprise")),
            ("C-2".into(), "globex".into(), tier("enterprise")),
            // Initech's latest company record moved it to enterprise.
            ("C-3".into(), "initech".into(), tier("enterprise")),
            // No company record: the click is kept, its company fields are NULL.
            ("C-4".into(), "wayne".into(), serde_json::Value::Null),
            ("C-5".into(), "umbrella".into(), tier("mid-market")),
            ("C-6".into(), "acme".into(), tier("enterprise")),
            ("C-7".into(), "hooli".into(), tier("smb")),
            ("C-8".into(), "globex".into(), tier("enterprise")),
        ]
    );
    assert_eq!(rows[0]["COMPANY"], "Acme Corp");
    assert_eq!(rows[2]["ARR"], 140000);
}

#[test]
fn churn_risk_flags_two_low_days_but_not_one() {
    let rows = run_example("examples/revops/churn_risk.sql");
    let alerts: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["ACCOUNT_ID"].as_str().unwrap(),
                r["DETECTED_ON"].as_str().unwrap(),
                r["PCT_OF_BASELINE"].as_i64().unwrap(),
            )
        })
        .collect();
    // Initech has a single low day and recovers; Acme is steady; Hooli has no baseline yet.
    assert_eq!(
        alerts,
        [("globex", "2026-01-05", 60), ("umbrella", "2026-01-06", 64)]
    );
    assert!(rows.iter().all(|r| r["EVENT"] == "usage.drop.detected"));
    assert_eq!(rows[0]["BASELINE_SEATS"], 80.0);
}

#[test]
fn buying_committee_needs_four_people_in_ten_minutes_then_a_demo() {
    let rows = run_example("examples/revops/buying_committee.sql");
    assert_eq!(
        rows.len(),
        1,
        "only Acme forms a committee (Globex: 2 people, Initech: too slow, Hooli: no demo): {rows:?}"
    );
    let r = &rows[0];
    assert_eq!(r["ACCOUNT_ID"], "acme");
    assert_eq!(r["EVENT"], "buying.committee.detected");
    assert_eq!(r["STAKEHOLDERS"], 5);
    assert_eq!(r["PRICING_VIEWS"], 6);
    assert_eq!(r["REQUESTED_BY"], "bob");
    assert_eq!(r["DEMO_REQUESTED_AT"], "2026-01-06T09:12:00Z");
}
