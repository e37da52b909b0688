//! `riffle`: the command line of the riffle streaming SQL engine.
//!
//! - `riffle run pipeline.sql [--until-idle]` runs a SQL file as a pipeline;
//! - `riffle shell [--server URL]` is the interactive shell;
//! - `riffle server [--queries-file FILE]` serves the ksqlDB-compatible REST API;
//! - `riffle test PATH… [--names FILE]` runs QTT-format conformance files.

use riffle::engine_args::EngineArgs;
use riffle::{qtt, repl, run, server};
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
        /// Also append processing-log entries (bad records, late rows) to this file.
        #[arg(long)]
        processing_log: Option<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// The interactive shell (an embedded engine, or a server with --server).
    Shell {
        /// Talk to a running `riffle server` at this URL instead of an embedded engine.
        #[arg(long)]
        server: Option<String>,
        /// HTTP Basic credentials for the server, as user:password.
        #[arg(long)]
        basic_auth: Option<String>,
        /// Bearer token for the server.
        #[arg(long)]
        token: Option<String>,
        /// History file (default ~/.riffle_history).
        #[arg(long)]
        history: Option<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Serve the ksqlDB-compatible REST API.
    Server {
        /// Address to listen on (default 127.0.0.1:8088).
        #[arg(long)]
        listen: Option<String>,
        /// JSON config file (listen, basic_auth {user, password}, tokens, max_body_bytes).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run this SQL file's queries and refuse statements over REST (headless mode).
        #[arg(long)]
        queries_file: Option<PathBuf>,
        /// Require HTTP Basic auth with user:password.
        #[arg(long)]
        basic_auth: Option<String>,
        /// Accept this bearer token (repeatable).
        #[arg(long = "token")]
        tokens: Vec<String>,
        /// Largest accepted request body in bytes (default 16 MiB).
        #[arg(long)]
        max_body_bytes: Option<usize>,
        #[command(flatten)]
        engine: EngineArgs,
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
    if let Command::Shell {
        server,
        basic_auth,
        token,
        history,
        engine,
    } = cli.command
    {
        let auth = match (basic_auth, token) {
            (_, Some(t)) => Some(format!("Bearer {t}")),
            (Some(ua), None) => {
                use base64::Engine as _;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(ua)
                ))
            }
            (None, None) => None,
        };
        let opts = repl::ShellOptions {
            server,
            auth,
            history,
            engine,
        };
        return match repl::run_shell(runtime.handle().clone(), opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Shell { .. } => Ok(ExitCode::SUCCESS),
            Command::Server {
                listen,
                config,
                queries_file,
                basic_auth,
                tokens,
                max_body_bytes,
                engine,
            } => {
                server::run_server(server::ServerOptions {
                    listen,
                    config,
                    queries_file,
                    basic_auth,
                    tokens,
                    max_body_bytes,
                    engine,
                })
                .await
            }
            Command::Run {
                file,
                until_idle,
                processing_log,
                engine,
            } => run::run_file(&file, until_idle, processing_log, &engine).await,
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
