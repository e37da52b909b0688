//! Event-to-output latency at a fixed input rate, in-process: a rate-limited generator feeds a
//! push query and every result row is timed when it reaches the client.
//!
//! The generator stamps each row with the wall clock at the moment it hands the row to the
//! engine (its `ROWTIME`, in milliseconds), so
//! - for the filter query, a row's latency is its arrival time minus its `ROWTIME`;
//! - for the tumbling-window query (event time = wall clock, no grace), the watermark passes a
//!   window's end when the first row stamped at or after that end enters the engine, at wall
//!   time `WINDOWEND` or just after; a result row's latency is its arrival time minus `WINDOWEND`.
//!
//! `ROWTIME` has millisecond resolution: the figures include up to 1 ms of truncation, so they
//! are upper bounds.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use riffle_engine::{Engine, EngineConfig, StatementResult};

/// The two measured queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyQuery {
    /// A stateless filter: about one row in ten passes.
    Filter,
    /// A one-second tumbling-window count per user, emitted when the window closes.
    TumblingWindow,
}

impl LatencyQuery {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            LatencyQuery::Filter => "filter",
            LatencyQuery::TumblingWindow => "tumbling window (1 s, EMIT FINAL)",
        }
    }

    /// The push query, and the result column whose value (epoch milliseconds) is the instant
    /// the row could first have been produced.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            LatencyQuery::Filter => (
                "SELECT USER_ID, AMOUNT, ROWTIME AS BORN FROM CLICKS WHERE AMOUNT >= 90 \
                 EMIT CHANGES;",
                "BORN",
            ),
            LatencyQuery::TumblingWindow => (
                "SELECT USER_ID, COUNT(*) AS N, WINDOWEND AS READY FROM CLICKS \
                 WINDOW TUMBLING (SIZE 1 SECOND, GRACE PERIOD 0 SECONDS) \
                 GROUP BY USER_ID EMIT FINAL;",
                "READY",
            ),
        }
    }
}

/// Settings of one latency run.
#[derive(Debug, Clone, Copy)]
pub struct LatencyRun {
    /// Input events per second of wall-clock time.
    pub rate: u64,
    /// How long rows are timed (after the warm-up).
    pub measure: Duration,
    /// How long the query runs before timing starts.
    pub warm_up: Duration,
    /// Subtasks per operator after a shuffle.
    pub parallelism: usize,
}

impl Default for LatencyRun {
    fn default() -> Self {
        LatencyRun {
            rate: 100_000,
            measure: Duration::from_secs(20),
            warm_up: Duration::from_secs(2),
            parallelism: 2,
        }
    }
}

/// What one latency run measured.
#[derive(Debug, Clone)]
pub struct LatencyReport {
    /// Which query.
    pub query: LatencyQuery,
    /// Input rows the generator produced while timing (the achieved rate times the duration).
    pub events_in: u64,
    /// Result rows timed.
    pub rows: usize,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Largest latency in milliseconds.
    pub max_ms: f64,
}

/// The value at quantile `q` (0–1) of sorted `values` (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Latencies (ms) of the rows of `batch`, measured against `column` at `arrived` (µs).
fn latencies(batch: &RecordBatch, column: usize, arrived: i64, out: &mut Vec<f64>) {
    let col = batch.column(column);
    let Some(times) = col.as_primitive_opt::<Int64Type>() else {
        return;
    };
    for i in 0..times.len() {
        if times.is_valid(i) {
            out.push((arrived - times.value(i) * 1000) as f64 / 1000.0);
        }
    }
}

/// Runs `query` over a generator producing `run.rate` rows per second and times its results.
pub async fn measure(query: LatencyQuery, run: &LatencyRun) -> Result<LatencyReport, String> {
    let engine = Engine::new(EngineConfig {
        parallelism: run.parallelism,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let ddl = format!(
        "CREATE STREAM CLICKS (USER_ID BIGINT, PAGE VARCHAR, AMOUNT BIGINT) WITH (\
         connector = 'datagen', rate = '{}', seed = 1, \
         'fields.USER_ID.min' = '1', 'fields.USER_ID.max' = '100', \
         'fields.PAGE.values' = '/pricing,/docs,/blog', \
         'fields.AMOUNT.min' = '0', 'fields.AMOUNT.max' = '99');",
        run.rate
    );
    engine.execute(&ddl).await.map_err(|e| e.to_string())?;
    let (sql, column) = query.sql();
    let mut results = engine.execute(sql).await.map_err(|e| e.to_string())?;
    let Some(StatementResult::Transient(mut push)) = results.pop() else {
        return Err("the query did not start as a push query".into());
    };
    let column = push
        .schema
        .arrow
        .index_of(column)
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let timing_from = started + run.warm_up;
    let until = timing_from + run.measure;
    let mut values = Vec::new();
    let mut in_at_start = 0;
    while Instant::now() < until {
        let wait = until.saturating_duration_since(Instant::now());
        let Ok(received) = tokio::time::timeout(wait, push.rows.recv()).await else {
            break;
        };
        let Some(batch) = received else {
            return Err("the push query ended".into());
        };
        let arrived = now_micros();
        if Instant::now() < timing_from {
            in_at_start = push.handle.metrics.rows_in.load(Ordering::Relaxed);
            continue;
        }
        latencies(&batch, column, arrived, &mut values);
    }
    let events_in = push
        .handle
        .metrics
        .rows_in
        .load(Ordering::Relaxed)
        .saturating_sub(in_at_start);
    engine.shutdown().await;
    values.sort_by(f64::total_cmp);
    Ok(LatencyReport {
        query,
        events_in,
        rows: values.len(),
        p50_ms: quantile(&values, 0.50),
        p99_ms: quantile(&values, 0.99),
        max_ms: values.last().copied().unwrap_or(f64::NAN),
    })
}

#[cfg(test)]
mod tests {
    use super::{LatencyQuery, LatencyRun, measure, quantile};
    use std::time::Duration;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    /// Both queries produce timed rows at the requested rate: the filter about a tenth of its
    /// input, the window one row per user and second (figures are the harness's job).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_queries_time_their_results() {
        let run = LatencyRun {
            rate: 20_000,
            measure: Duration::from_secs(3),
            warm_up: Duration::from_millis(500),
            parallelism: 2,
        };
        let filter = measure(LatencyQuery::Filter, &run).await.expect("filter");
        assert!(filter.events_in > 20_000, "{filter:?}");
        let expected = filter.events_in as f64 / 10.0;
        assert!(
            (filter.rows as f64 - expected).abs() < expected * 0.3,
            "{filter:?}"
        );
        assert!(
            filter.p50_ms >= 0.0 && filter.p99_ms >= filter.p50_ms,
            "{filter:?}"
        );
        let window = measure(LatencyQuery::TumblingWindow, &run)
            .await
            .expect("window");
        assert!(window.rows >= 100, "{window:?}");
        assert!(window.p99_ms >= window.p50_ms, "{window:?}");
    }
}
