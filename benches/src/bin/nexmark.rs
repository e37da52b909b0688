//! `nexmark`: runs the Nexmark suite (`../shared/nexmark/queries/`, Flink SQL as written) from the
//! in-process generator into blackhole sinks and prints a markdown table of events/s, events per
//! CPU-second and peak RSS. Each query runs in its own child process so peak RSS is its own.
//! `--batch` adds, for the queries with a batch form, DataFusion batch runs over the events
//! held in memory and streaming runs replaying the same events from memory (generation untimed):
//! the streaming ÷ batch ratio compares the two.
//!
//! Usage: `cargo run --release -p riffle-benches --bin nexmark -- [--events N] [--queries q0,q1]`

use std::process::Command;

use anyhow::Result;
use clap::Parser;
use riffle_benches::nexmark::{self, Feed, Measurement, QUERIES, Workload};

#[derive(Parser)]
#[command(about = "Run the Nexmark queries and print throughput, CPU and memory")]
struct Args {
    /// Events per query.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Comma-separated queries (default: all of q0–q22 and cep/q0–q3).
    #[arg(long)]
    queries: Option<String>,
    /// Subtasks per operator after a shuffle.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Also run the queries that have a batch form as DataFusion batch queries over the same
    /// events held in memory, and as streaming queries replaying those events from memory.
    #[arg(long)]
    batch: bool,
    /// Internal: run one streaming query in this process and print its measurement.
    #[arg(long, hide = true)]
    one: Option<String>,
    /// Internal: with --one, replay events generated before timing starts.
    #[arg(long, hide = true)]
    from_memory: bool,
    /// Internal: run one batch query in this process and print its measurement.
    #[arg(long, hide = true)]
    one_batch: Option<String>,
}

fn line(m: &Measurement) -> String {
    format!(
        "{} {} {:.6} {:.6} {}",
        m.events, m.rows_out, m.seconds, m.cpu_seconds, m.peak_rss
    )
}

fn parse_line(s: &str) -> Option<Measurement> {
    let l = s.lines().rev().find(|l| l.starts_with("MEASURED "))?;
    let f: Vec<&str> = l.split_whitespace().skip(1).collect();
    Some(Measurement {
        events: f.first()?.parse().ok()?,
        rows_out: f.get(1)?.parse().ok()?,
        seconds: f.get(2)?.parse().ok()?,
        cpu_seconds: f.get(3)?.parse().ok()?,
        peak_rss: f.get(4)?.parse().ok()?,
    })
}

fn child(args: &[&str]) -> Result<Measurement, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match parse_line(&stdout) {
        Some(m) if out.status.success() => Ok(m),
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed without a message")
                .to_string())
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let w = Workload {
        events: args.events,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.parallelism.max(1))
        .enable_all()
        .build()?;
    if let Some(q) = &args.one {
        let feed = if args.from_memory {
            Feed::Memory
        } else {
            Feed::Generator
        };
        let m = rt
            .block_on(nexmark::run_fed(q, &w, args.parallelism, feed))
            .map_err(|e| anyhow::anyhow!("{q}: {e}"))?;
        println!("MEASURED {}", line(&m));
        return Ok(());
    }
    if let Some(q) = &args.one_batch {
        let m = rt
            .block_on(nexmark::run_batch(q, &w))
            .map_err(|e| anyhow::anyhow!("{q}: {e}"))?;
        println!("MEASURED {}", line(&m));
        return Ok(());
    }
    let queries: Vec<String> = match &args.queries {
        Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
        None => QUERIES.iter().map(|s| s.to_string()).collect(),
    };
    let events = args.events.to_string();
    let par = args.parallelism.to_string();
    println!(
        "Nexmark, {} events per query, parallelism {}, blackhole sinks\n",
        args.events, args.parallelism
    );
    println!(
        "| query | rows out | seconds | events/s | events/s per core | peak RSS (MB) | status |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut streaming = Vec::new();
    let mut failures = 0;
    for q in &queries {
        match child(&["--one", q, "--events", &events, "--parallelism", &par]) {
            Ok(m) => {
                println!(
                    "| {q} | {} | {:.2} | {:.0} | {:.0} | {:.0} | ok |",
                    m.rows_out,
                    m.seconds,
                    m.events_per_second(),
                    m.events_per_core_second(),
                    m.peak_rss as f64 / 1e6
                );
                streaming.push((q.clone(), m));
            }
            Err(e) => {
                failures += 1;
                println!("| {q} | | | | | | cannot run: {} |", e.replace('|', "/"));
            }
        }
    }
    if args.batch {
        println!("\nStreaming vs DataFusion batch over the same events held in memory\n");
        println!(
            "| query | batch events/s | streaming events/s (events in memory) | streaming ÷ batch | \
             streaming events/s per core (events in memory) |"
        );
        println!("|---|---:|---:|---:|---:|");
        for (q, _) in &streaming {
            if nexmark::batch_sql(q).is_none() {
                continue;
            }
            let common = ["--events", &events, "--parallelism", &par];
            let batch = child(&[&["--one-batch", q][..], &common].concat());
            let replayed = child(&[&["--one", q, "--from-memory"][..], &common].concat());
            match (batch, replayed) {
                (Ok(b), Ok(m)) => println!(
                    "| {q} | {:.0} | {:.0} | {:.2} | {:.0} |",
                    b.events_per_second(),
                    m.events_per_second(),
                    m.events_per_second() / b.events_per_second(),
                    m.events_per_core_second()
                ),
                (Err(e), _) | (_, Err(e)) => println!("| {q} | failed: {e} | | | |"),
            }
        }
    }
    if failures > 0 {
        println!("\n{failures} of {} queries could not run", queries.len());
    }
    Ok(())
}
