//! Criterion benchmarks of riffle's hot paths: JSON decoding into Arrow batches and encoding
//! back, state writes as a checkpoint makes them (one RocksDB write batch), and whole pipelines
//! (filter/project, hash aggregation with a key shuffle, tumbling window assignment) over
//! generated rows. `cargo bench -p riffle-benches`; CI runs them once as tests
//! (`cargo test --benches`).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use riffle_benches::{json_orders, run_pipeline};
use riffle_engine::formats::{RecordDecoder, RecordEncoder};
use riffle_engine::state::store::StateStore;
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
    let schema = Planner::source_schema(&def);
    let encoder = RecordEncoder::new(&def, &schema).expect("an encoder");
    let batch = decoder.decode(&records).batch;
    g.bench_function("json_encode_4096", |b| {
        b.iter(|| {
            (0..batch.num_rows())
                .filter_map(|row| encoder.encode_value(&batch, row).ok().flatten())
                .map(|v| v.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

/// 100,000 changed entries (16-byte keys, 64-byte values) written in one batch, as an operator
/// flushes its changes at a checkpoint barrier.
fn state_writes(c: &mut Criterion) {
    const ENTRIES: usize = 100_000;
    let store = Arc::new(StateStore::temporary(1).expect("a state store"));
    let table = store.table("bench", 0);
    let keys: Vec<Vec<u8>> = (0..ENTRIES as u64)
        .map(|i| [i.to_be_bytes(), (i * 7).to_be_bytes()].concat())
        .collect();
    let value = vec![42u8; 64];
    let mut g = c.benchmark_group("state");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function("checkpoint_write_100k", |b| {
        b.iter(|| {
            table
                .write(keys.iter().map(|k| (k.as_slice(), value.as_slice())), [])
                .expect("written")
        })
    });
    g.finish();
}

criterion_group!(benches, json_decode, state_writes, pipelines);
criterion_main!(benches);
