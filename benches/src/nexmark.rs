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
use riffle_engine::connectors::nexmark::{BLOCK_EVENTS, NexmarkReader};
use riffle_engine::{Engine, EngineConfig};
use riffle_sql::catalog::Connector;
use riffle_sql::planner::Planner;

/// Every query of the suite, in order; `cep/…` are the MATCH_RECOGNIZE queries.
pub const QUERIES: &[&str] = &[
    "q0",
    "q1",
    "q2",
    "q3",
    "q4",
    "q5",
    "q6",
    "q7",
    "q8",
    "q9",
    "q10",
    "q11",
    "q12",
    "q13",
    "q14",
    "q15",
    "q16",
    "q17",
    "q18",
    "q19",
    "q20",
    "q21",
    "q22",
    "cep/q0",
    "cep/q1",
    "cep/q2",
    "cep/q3",
    STATE_QUERY,
];

/// Not a query of the kit: an unbounded GROUP BY with one group per event (10 M keys at the
/// default size), q4/q9-style state too large for memory, as Flink SQL over the data generator.
pub const STATE_QUERY: &str = "state/groupby";

/// The script of [`STATE_QUERY`].
fn state_script(w: &Workload) -> String {
    format!(
        "CREATE TABLE keyed (k BIGINT, v BIGINT) WITH ('connector' = 'datagen', \
         'number-of-rows' = '{}', 'fields.k.kind' = 'sequence', 'fields.v.min' = '0', \
         'fields.v.max' = '1000000');\n\
         CREATE TABLE per_key (k BIGINT, n BIGINT, total BIGINT, top BIGINT) \
         WITH ('connector' = 'blackhole');\n\
         INSERT INTO per_key SELECT k, COUNT(*), SUM(v), MAX(v) FROM keyed GROUP BY k;\n",
        w.events
    )
}

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
    if query == STATE_QUERY {
        return Ok(state_script(w));
    }
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

/// Where a streaming run's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The generator, inside the timed run (the suite as written).
    Generator,
    /// Events generated before timing starts and replayed from memory, as the batch queries
    /// read them: the dataflow alone is timed.
    Memory,
}

/// Runs one query of the suite to completion and measures it.
pub async fn run(query: &str, w: &Workload, parallelism: usize) -> Result<Measurement, String> {
    run_fed(query, w, parallelism, Feed::Generator).await
}

/// Runs one query of the suite to completion, its events coming from `feed`, and measures it.
pub async fn run_fed(
    query: &str,
    w: &Workload,
    parallelism: usize,
    feed: Feed,
) -> Result<Measurement, String> {
    let sql = script(query, w).map_err(|e| e.to_string())?;
    let nexmark_events = match feed {
        Feed::Generator => None,
        Feed::Memory => Some(Arc::new(generate(w).await?.0)),
    };
    let engine = Engine::new(EngineConfig {
        until_idle: true,
        parallelism,
        nexmark_events,
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
/// stateless queries, of its regular joins and of q7's and q8's joins with window aggregates
/// (which, over the whole input, give the same rows).
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
        "q7" => {
            "SELECT B.BID['AUCTION'], B.BID['PRICE'], B.BID['BIDDER'], B.BID['dateTime'], \
             B.BID['EXTRA'] FROM DATAGEN B JOIN \
             (SELECT MAX(BID['PRICE']) AS MAXPRICE, \
              date_bin(INTERVAL '10 seconds', BID['dateTime']) + INTERVAL '10 seconds' AS WEND \
              FROM DATAGEN WHERE EVENT_TYPE = 2 GROUP BY 2) B1 \
             ON B.BID['PRICE'] = B1.MAXPRICE \
             WHERE B.EVENT_TYPE = 2 \
             AND B.BID['dateTime'] BETWEEN B1.WEND - INTERVAL '10 seconds' AND B1.WEND"
        }
        "q8" => {
            "SELECT P.ID, P.NAME, P.STARTTIME FROM \
             (SELECT PERSON['ID'] AS ID, PERSON['NAME'] AS NAME, \
              date_bin(INTERVAL '10 seconds', PERSON['dateTime']) AS STARTTIME \
              FROM DATAGEN WHERE EVENT_TYPE = 0 GROUP BY 1, 2, 3) P \
             JOIN (SELECT AUCTION['SELLER'] AS SELLER, \
              date_bin(INTERVAL '10 seconds', AUCTION['dateTime']) AS STARTTIME \
              FROM DATAGEN WHERE EVENT_TYPE = 1 GROUP BY 1, 2) A \
             ON P.ID = A.SELLER AND P.STARTTIME = A.STARTTIME"
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
    let (batches, columns) = generate(w).await?;
    batches
        .iter()
        .map(|b| b.project(&columns).map_err(text))
        .collect()
}

/// Generates the workload's events in the `datagen` source's layout (as a streaming source
/// reads them), with the indices of the declared columns.
async fn generate(w: &Workload) -> Result<(Vec<RecordBatch>, Vec<usize>), String> {
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
    // The reader makes one block of events per poll, whatever the size asked for.
    while let Poll::Batch(b) = reader.poll(BLOCK_EVENTS as usize).map_err(text)? {
        out.push(b);
    }
    Ok((out, keep))
}

/// Runs the DataFusion batch form of `query` ([`batch_sql`]) over the workload's events held in
/// memory (generation is not timed) three times and reports the fastest run.
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
    // The fastest of three runs: a batch query takes a fraction of a second, so one run is at
    // the mercy of whatever else the machine does.
    let mut best: Option<Measurement> = None;
    for _ in 0..3 {
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let results = ctx
            .sql(sql)
            .await
            .map_err(text)?
            .collect()
            .await
            .map_err(text)?;
        let m = Measurement {
            events: w.events,
            rows_out: results.iter().map(|b| b.num_rows() as u64).sum(),
            seconds: t0.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - cpu0,
            peak_rss: peak_rss(),
        };
        if best.as_ref().is_none_or(|b| m.seconds < b.seconds) {
            best = Some(m);
        }
    }
    best.ok_or_else(|| "the batch query did not run".to_string())
}

#[cfg(test)]
mod tests {
    use super::{Feed, Workload, batch_sql, run, run_batch, run_fed};

    /// Over the whole input, the streaming queries must give the rows DataFusion computes in
    /// batch from the same events: the stateless ones and the regular joins, whether the
    /// events come from the generator or are replayed from memory.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streaming_rows_equal_batch_rows() {
        // 1,000 events per second of event time: 20 s, so q7 and q8 join several windows.
        let w = Workload {
            events: 20_000,
            tps: 1_000,
        };
        for q in ["q0", "q1", "q2", "q3", "q7", "q8", "q20"] {
            assert!(batch_sql(q).is_some());
            let streaming = run(q, &w, 2).await.unwrap_or_else(|e| panic!("{q}: {e}"));
            let replayed = run_fed(q, &w, 2, Feed::Memory)
                .await
                .unwrap_or_else(|e| panic!("{q} from memory: {e}"));
            let batch = run_batch(q, &w)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"));
            assert!(batch.rows_out > 0, "{q}: the batch query finds rows");
            assert_eq!(streaming.rows_out, batch.rows_out, "{q}");
            assert_eq!(replayed.rows_out, batch.rows_out, "{q} from memory");
        }
    }
}
