//! The Nexmark suite as written: the Flink SQL files of `../shared/nexmark/queries/` with their
//! `${…}` placeholders filled, run in-process from the generator into blackhole sinks, and the
//! measurements (events/s, events per CPU-second, peak RSS) the harness reports.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use riffle_engine::connectors::Poll;
use riffle_engine::connectors::nexmark::NexmarkReader;
use riffle_engine::{Engine, EngineConfig};
use riffle_sql::catalog::Connector;
use riffle_sql::planner::Planner;

/// Every query of the suite, in order; `cep/…` are the MATCH_RECOGNIZE queries.
pub const QUERIES: &[&str] = &[
    "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12", "q13", "q14",
    "q15", "q16", "q17", "q18", "q19", "q20", "q21", "q22", "cep/q0", "cep/q1", "cep/q2", "cep/q3",
];

/// Where the shared Nexmark kit lives (`../shared/nexmark` from the project root).
pub fn kit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/nexmark/queries")
}

/// Generator settings substituted into the DDL.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Events to generate.
    pub events: u64,
    /// Event-time rate (events per second of event time).
    pub tps: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            events: 10_000_000,
            tps: 10_000_000,
        }
    }
}

/// Fills the placeholders the suite's scripts use.
pub fn fill(sql: &str, w: &Workload) -> String {
    sql.replace("${TPS}", &w.tps.to_string())
        .replace("${EVENTS_NUM}", &w.events.to_string())
        .replace("${PERSON_PROPORTION}", "1")
        .replace("${AUCTION_PROPORTION}", "3")
        .replace("${BID_PROPORTION}", "46")
        .replace("${NEXMARK_TABLE}", "datagen")
}

/// The whole script for one query: generator DDL, views, then the query file, each statement
/// terminated (the kit's files omit the final semicolon).
pub fn script(query: &str, w: &Workload) -> std::io::Result<String> {
    let dir = kit_dir();
    let sub = if query.starts_with("cep/") {
        "cep/"
    } else {
        ""
    };
    let mut out = String::new();
    for file in [
        format!("{sub}ddl_gen.sql"),
        format!("{sub}ddl_views.sql"),
        format!("{query}.sql"),
    ] {
        let text = std::fs::read_to_string(dir.join(&file)).map_err(|e| {
            std::io::Error::new(e.kind(), format!("{}: {e}", dir.join(&file).display()))
        })?;
        out.push_str(text.trim_end());
        out.push_str(";\n");
    }
    Ok(fill(&out, w))
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// Events generated.
    pub events: u64,
    /// Rows the sinks received.
    pub rows_out: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// CPU seconds (user + system) of the process.
    pub cpu_seconds: f64,
    /// Peak resident set size in bytes.
    pub peak_rss: u64,
}

impl Measurement {
    /// Events per wall-clock second.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    /// Events per CPU-second: throughput per core actually used.
    pub fn events_per_core_second(&self) -> f64 {
        self.events as f64 / self.cpu_seconds.max(1e-9)
    }
}

/// CPU seconds used by this process so far (from `/proc/self/stat`).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the full line, 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of this process in bytes (`VmHWM`).
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Runs one query of the suite to completion and measures it.
pub async fn run(query: &str, w: &Workload, parallelism: usize) -> Result<Measurement, String> {
    let sql = script(query, w).map_err(|e| e.to_string())?;
    let engine = Engine::new(EngineConfig {
        until_idle: true,
        parallelism,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    engine.execute(&sql).await.map_err(|e| e.to_string())?;
    engine.wait_all().await.map_err(|e| e.to_string())?;
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let rows_out = engine
        .queries()
        .iter()
        .map(|q| {
            q.metrics
                .rows_out
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    engine.shutdown().await;
    Ok(Measurement {
        events: w.events,
        rows_out,
        seconds,
        cpu_seconds: cpu,
        peak_rss: peak_rss(),
    })
}

/// Batch equivalents (DataFusion SQL over the generator's table `datagen`) of the suite's
/// stateless queries and of its regular joins (which, over the whole input, give the same rows).
pub fn batch_sql(query: &str) -> Option<&'static str> {
    Some(match query {
        "q0" => {
            "SELECT BID['AUCTION'], BID['BIDDER'], BID['PRICE'], BID['dateTime'], BID['EXTRA'] \
             FROM DATAGEN WHERE EVENT_TYPE = 2"
        }
        "q1" => {
            "SELECT BID['AUCTION'], BID['BIDDER'], CAST(0.908 * BID['PRICE'] AS DECIMAL(23, 3)), \
             BID['dateTime'], BID['EXTRA'] FROM DATAGEN WHERE EVENT_TYPE = 2"
        }
        "q2" => {
            "SELECT BID['AUCTION'], BID['PRICE'] FROM DATAGEN \
             WHERE EVENT_TYPE = 2 AND BID['AUCTION'] % 123 = 0"
        }
        "q3" => {
            "SELECT P.PERSON['NAME'], P.PERSON['CITY'], P.PERSON['STATE'], A.AUCTION['ID'] \
             FROM DATAGEN A JOIN DATAGEN P ON A.AUCTION['SELLER'] = P.PERSON['ID'] \
             WHERE A.EVENT_TYPE = 1 AND P.EVENT_TYPE = 0 AND A.AUCTION['CATEGORY'] = 10 \
             AND (P.PERSON['STATE'] = 'OR' OR P.PERSON['STATE'] = 'ID' OR P.PERSON['STATE'] = 'CA')"
        }
        "q20" => {
            "SELECT B.BID['AUCTION'], B.BID['PRICE'], A.AUCTION['ITEMNAME'] \
             FROM DATAGEN B JOIN DATAGEN A ON B.BID['AUCTION'] = A.AUCTION['ID'] \
             WHERE B.EVENT_TYPE = 2 AND A.EVENT_TYPE = 1 AND A.AUCTION['CATEGORY'] = 10"
        }
        _ => return None,
    })
}

/// An error as the text the harness reports.
fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Generates the workload's events as batches of the `datagen` table's columns.
pub async fn events_in_memory(w: &Workload) -> Result<Vec<RecordBatch>, String> {
    let engine = Engine::new(EngineConfig::default()).map_err(text)?;
    let ddl = std::fs::read_to_string(kit_dir().join("ddl_gen.sql")).map_err(text)?;
    engine.execute(&fill(&ddl, w)).await.map_err(text)?;
    let def = engine.catalog().require("DATAGEN").map_err(text)?;
    let Connector::Nexmark(opts) = &def.connector else {
        return Err("datagen is not a nexmark source".into());
    };
    let schema = Planner::source_schema(&def);
    let mut reader = NexmarkReader::new(opts, schema.clone());
    let keep: Vec<usize> = (0..schema.key_count + schema.value_count).collect();
    let mut out = Vec::new();
    while let Poll::Batch(b) = reader.poll(8192).map_err(text)? {
        out.push(b.project(&keep).map_err(text)?);
    }
    Ok(out)
}

/// Runs the DataFusion batch form of `query` ([`batch_sql`]) over the workload's events held in
/// memory (generation is not timed) and measures it.
pub async fn run_batch(query: &str, w: &Workload) -> Result<Measurement, String> {
    let sql = batch_sql(query).ok_or_else(|| format!("no batch form of {query}"))?;
    let batches = events_in_memory(w).await?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or("the generator made no events")?;
    // The generator's columns are upper-case, as riffle names them: keep identifiers as written.
    let config =
        SessionConfig::new().set_bool("datafusion.sql_parser.enable_ident_normalization", false);
    let ctx = SessionContext::new_with_config(config);
    let table = MemTable::try_new(schema, vec![batches]).map_err(text)?;
    ctx.register_table(TableReference::bare("DATAGEN"), Arc::new(table))
        .map_err(text)?;
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let results = ctx
        .sql(sql)
        .await
        .map_err(text)?
        .collect()
        .await
        .map_err(text)?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(Measurement {
        events: w.events,
        rows_out: results.iter().map(|b| b.num_rows() as u64).sum(),
        seconds,
        cpu_seconds: cpu_seconds() - cpu0,
        peak_rss: peak_rss(),
    })
}

#[cfg(test)]
mod tests {
    use super::{Workload, batch_sql, run, run_batch};

    /// Over the whole input, the streaming queries must give the rows DataFusion computes in
    /// batch from the same events: the stateless ones and the regular joins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streaming_rows_equal_batch_rows() {
        let w = Workload {
            events: 20_000,
            ..Default::default()
        };
        for q in ["q0", "q1", "q2", "q3", "q20"] {
            assert!(batch_sql(q).is_some());
            let streaming = run(q, &w, 2).await.unwrap_or_else(|e| panic!("{q}: {e}"));
            let batch = run_batch(q, &w)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"));
            assert!(batch.rows_out > 0, "{q}: the batch query finds rows");
            assert_eq!(streaming.rows_out, batch.rows_out, "{q}");
        }
    }
}
