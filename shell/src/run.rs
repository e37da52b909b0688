//! `riffle run`: executes a SQL file as a pipeline. Push queries in the file print their rows as
//! JSON lines; persistent queries keep running until Ctrl-C, or, with `--until-idle`, until their
//! bounded sources are exhausted and every window has fired.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use riffle_engine::engine::TransientQuery;
use riffle_engine::{Engine, EngineConfig, EngineError, StatementResult};

use crate::engine_args::{EngineArgs, EngineFileConfig};
use crate::output;

/// Runs a pipeline file.
pub async fn run_file(
    file: &Path,
    until_idle: bool,
    processing_log: Option<PathBuf>,
    engine_args: &EngineArgs,
) -> anyhow::Result<ExitCode> {
    let sql =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut config = EngineConfig {
        until_idle,
        processing_log_file: processing_log,
        processing_log_stderr: true,
        ..Default::default()
    };
    engine_args.apply(&EngineFileConfig::default(), &mut config)?;
    let engine = Engine::new(config)?;
    let statements = match riffle_sql::parse_script(&sql) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {}", file.display(), output::error_with_caret(&e, &sql));
            return Ok(ExitCode::from(1));
        }
    };
    let mut printers = Vec::new();
    // Until the whole script ran, later INSERTs may still add rows to any topic.
    let hold = engine.topics().hold();
    for stmt in &statements {
        match engine.execute_statement(stmt).await {
            Ok(StatementResult::Transient(t)) => printers.push(tokio::spawn(print_rows(t))),
            Ok(StatementResult::Listing { headers, rows }) => {
                println!("{}", output::table(&headers, &rows))
            }
            Ok(StatementResult::Text(t)) => println!("{t}"),
            Ok(other) => eprintln!("{}", output::describe(&other)),
            Err(EngineError::Sql(e)) => {
                let located = match e.position() {
                    Some(p) if p.line > 0 => {
                        // Positions are relative to the whole file: show the file's line.
                        output::error_with_caret(&e, &sql)
                    }
                    _ => e.to_string(),
                };
                eprintln!(
                    "{}: statement at line {}: {located}",
                    file.display(),
                    stmt.position.line
                );
                engine.shutdown().await;
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                eprintln!(
                    "{}: statement at line {} failed: {e}",
                    file.display(),
                    stmt.position.line
                );
                engine.shutdown().await;
                return Ok(ExitCode::from(1));
            }
        }
    }
    engine.topics().release(hold);
    let result = if until_idle {
        let r = engine.wait_all().await;
        for p in printers {
            let _ = p.await;
        }
        r
    } else {
        eprintln!("Running; press Ctrl-C to stop.");
        tokio::select! {
            r = engine.wait_all() => r,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("Stopping…");
                Ok(())
            }
        }
    };
    engine.shutdown().await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

async fn print_rows(mut t: TransientQuery) {
    let mut printed = 0u64;
    while let Some(batch) = t.rows.recv().await {
        for line in output::json_rows(&batch, &t.schema) {
            println!("{line}");
            printed += 1;
            if t.limit.is_some_and(|l| printed >= l) {
                t.handle.stop();
                return;
            }
        }
    }
}
