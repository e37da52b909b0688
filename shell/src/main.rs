//! `riffle`: the command line of the riffle streaming SQL engine.
//!
//! - `riffle run pipeline.sql [--until-idle]` runs a SQL file as a pipeline;
//! - `riffle test PATH… [--names FILE]` runs QTT-format conformance files.

use riffle::{qtt, run};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// riffle: continuous SQL over event streams.
#[derive(Parser)]
#[command(name = "riffle", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every statement of a SQL file and keep its persistent queries running.
    Run {
        /// The SQL file.
        file: PathBuf,
        /// Exit once bounded sources are exhausted and every window has fired.
        #[arg(long)]
        until_idle: bool,
        /// Subtasks per operator after a shuffle (default: number of cores).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Also append processing-log entries (bad records, late rows) to this file.
        #[arg(long)]
        processing_log: Option<PathBuf>,
    },
    /// Run QTT-format test files and report failing cases.
    Test {
        /// Test files or directories of `*.json` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Only run the cases named in this file (one full name per line).
        #[arg(long)]
        names: Option<PathBuf>,
        /// Only run cases whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Cases run at the same time.
        #[arg(long, default_value_t = 8)]
        jobs: usize,
        /// Write the names of passing cases to this file.
        #[arg(long)]
        write_passing: Option<PathBuf>,
        /// Print passing cases too.
        #[arg(long)]
        verbose: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RIFFLE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run {
                file,
                until_idle,
                parallelism,
                processing_log,
            } => run::run_file(&file, until_idle, parallelism, processing_log).await,
            Command::Test {
                paths,
                names,
                filter,
                jobs,
                write_passing,
                verbose,
            } => {
                qtt::run_cli(
                    &paths,
                    names.as_deref(),
                    filter.as_deref(),
                    jobs,
                    write_passing.as_deref(),
                    verbose,
                )
                .await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
