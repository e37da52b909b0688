//! `latency`: event-to-output latency of a filter query and a tumbling-window query at a fixed
//! input rate, in-process, printed as a markdown table (see `riffle_benches::latency`).
//!
//! Usage: `cargo run --release -p riffle-benches --bin latency -- [--rate 100000] [--seconds 20]`

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use riffle_benches::latency::{self, LatencyQuery, LatencyRun};

#[derive(Parser)]
#[command(about = "Measure event-to-output latency at a fixed input rate")]
struct Args {
    /// Input events per second.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Seconds of timed results per query (after a two-second warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Subtasks per operator after a shuffle.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let run = LatencyRun {
        rate: args.rate,
        measure: Duration::from_secs(args.seconds),
        parallelism: args.parallelism,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.parallelism.max(1))
        .enable_all()
        .build()?;
    println!(
        "Event-to-output latency at {} events/s, {} s timed per query\n",
        args.rate, args.seconds
    );
    println!("| query | events in | rows timed | p50 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for q in [LatencyQuery::Filter, LatencyQuery::TumblingWindow] {
        let r = rt
            .block_on(latency::measure(q, &run))
            .map_err(|e| anyhow::anyhow!("{}: {e}", q.name()))?;
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} |",
            q.name(),
            r.events_in,
            r.rows,
            r.p50_ms,
            r.p99_ms,
            r.max_ms
        );
    }
    Ok(())
}
