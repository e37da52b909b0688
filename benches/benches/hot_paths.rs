//! Criterion benchmarks of riffle's hot paths: JSON decoding into Arrow batches, and whole
//! pipelines (filter/project, hash aggregation with a key shuffle, tumbling windows) over
//! generated rows. `cargo bench -p riffle-benches`; CI runs them once as tests
//! (`cargo test --benches`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use riffle_benches::{json_orders, run_pipeline};
use riffle_engine::formats::RecordDecoder;
use riffle_sql::ast::StatementKind;
use riffle_sql::catalog::{Defaults, source_from_create};
use riffle_sql::planner::Planner;

const ROWS: u64 = 200_000;

fn source(extra: &str) -> String {
    format!(
        "CREATE STREAM src (id BIGINT, account STRING, amount DOUBLE, ts BIGINT) WITH (connector='datagen', rows={ROWS}, seed=1, \
         timestamp='ts', 'fields.id.kind'='sequence', 'fields.ts.kind'='sequence', 'fields.ts.step'='10', \
         'fields.account.length'='3', 'fields.amount.min'='0', 'fields.amount.max'='1000');{extra}"
    )
}

fn pipelines(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS));
    let cases = [
        (
            "filter_project",
            "CREATE STREAM out WITH (connector='blackhole') AS SELECT id, account, amount * 1.1 AS gross FROM src WHERE amount > 500;",
        ),
        (
            "group_by_count",
            "CREATE TABLE out WITH (connector='blackhole') AS SELECT account, COUNT(*) AS n, SUM(amount) AS total FROM src GROUP BY account;",
        ),
        (
            "tumbling_window",
            "CREATE TABLE out WITH (connector='blackhole') AS SELECT account, COUNT(*) AS n FROM src \
             WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY account EMIT FINAL;",
        ),
    ];
    for (name, query) in cases {
        let sql = source(query);
        g.bench_function(name, |b| b.iter(|| rt.block_on(run_pipeline(&sql, 2))));
    }
    g.finish();
}

fn json_decode(c: &mut Criterion) {
    let stmt = riffle_sql::parse_statement(
        "CREATE STREAM orders (ID STRING KEY, ACCOUNT STRING, AMOUNT DECIMAL(12,2), CURRENCY STRING, ITEMS INT) \
         WITH (kafka_topic='orders', value_format='JSON');",
    )
    .expect("valid DDL");
    let StatementKind::CreateSource(create) = stmt.kind else {
        unreachable!("a CREATE STREAM")
    };
    let def =
        source_from_create(&create, &stmt.text, &Defaults::default()).expect("a valid source");
    let decoder =
        RecordDecoder::new(&def, Planner::source_schema(&def), "bench").expect("a decoder");
    let records = json_orders(4096);
    let mut g = c.benchmark_group("format");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("json_decode_4096", |b| {
        b.iter(|| decoder.decode(&records).batch.num_rows())
    });
    g.finish();
}

criterion_group!(benches, json_decode, pipelines);
criterion_main!(benches);
