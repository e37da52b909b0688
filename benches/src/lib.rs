//! Benchmark fixtures: pipelines over generated data run to completion in-process, and record
//! batches for the decoding benchmarks.

#![warn(missing_docs)]

pub mod latency;
pub mod nexmark;

use std::sync::Arc;

use riffle_engine::record::{Record, SourceRecord};
use riffle_engine::{Engine, EngineConfig};

/// Runs a script whose sources are bounded to completion and returns the rows written.
pub async fn run_pipeline(sql: &str, parallelism: usize) -> u64 {
    let engine = Engine::new(EngineConfig {
        until_idle: true,
        parallelism,
        ..Default::default()
    })
    .expect("the engine starts");
    engine.execute(sql).await.expect("the pipeline starts");
    engine.wait_all().await.expect("the pipeline finishes");
    engine
        .queries()
        .iter()
        .map(|q| {
            q.metrics
                .rows_out
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum()
}

/// `n` JSON order records, as a topic would hold them.
pub fn json_orders(n: usize) -> Vec<SourceRecord> {
    let topic: Arc<str> = Arc::from("orders");
    (0..n)
        .map(|i| SourceRecord {
            partition: 0,
            offset: i as i64,
            topic: topic.clone(),
            record: Arc::new(Record {
                key: Some(format!("o{i}").into_bytes()),
                value: Some(
                    format!(
                        r#"{{"ACCOUNT":"acct{}","AMOUNT":{}.{:02},"CURRENCY":"USD","ITEMS":{}}}"#,
                        i % 100,
                        i % 20_000,
                        i % 100,
                        i % 7
                    )
                    .into_bytes(),
                ),
                timestamp: i as i64,
                headers: vec![],
            }),
        })
        .collect()
}
