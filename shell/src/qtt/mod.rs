//! `riffle test`: runs QTT-format conformance files (the format of ksqlDB's query-validation
//! tests, see `shared/conformance/ksql/FORMAT.md`) and reports `N passed, M failed`.

pub mod compare;
pub mod model;
pub mod runner;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Semaphore;

use self::model::{Case, load};
use self::runner::{Outcome, run_case};

fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            entries.sort();
            files.extend(entries);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            anyhow::bail!("{} does not exist", p.display());
        }
    }
    Ok(files)
}

/// The outcome of a run: passing names and failing names with reasons, in name order.
#[derive(Debug, Default)]
pub struct Summary {
    /// Cases that passed.
    pub passed: Vec<String>,
    /// Cases that failed, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Loads the cases of `paths` and runs those named in `names` (all when `None`) whose name
/// contains `filter`, `jobs` at a time.
pub async fn run_cases(
    paths: &[PathBuf],
    names: Option<&Path>,
    filter: Option<&str>,
    jobs: usize,
) -> anyhow::Result<Summary> {
    let mut cases: BTreeMap<String, Case> = BTreeMap::new();
    for f in collect_files(paths)? {
        for c in load(&f)? {
            cases.insert(c.name.clone(), c);
        }
    }
    let wanted: Vec<String> = match names {
        Some(n) => std::fs::read_to_string(n)
            .with_context(|| format!("cannot read {}", n.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.to_string())
            .collect(),
        None => cases.keys().cloned().collect(),
    };
    let wanted: Vec<String> = wanted
        .into_iter()
        .filter(|n| filter.is_none_or(|f| n.contains(f)))
        .collect();
    let sem = Arc::new(Semaphore::new(jobs.max(1)));
    let mut handles = Vec::new();
    for name in &wanted {
        let case = cases.get(name).cloned();
        let sem = sem.clone();
        let name = name.clone();
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let outcome = match case {
                None => Outcome::Fail("no such case in the given files".into()),
                Some(c) => {
                    match tokio::time::timeout(Duration::from_secs(60), run_case(&c)).await {
                        Ok(o) => o,
                        Err(_) => Outcome::Fail("timed out after 60s".into()),
                    }
                }
            };
            (name, outcome)
        }));
    }
    let mut summary = Summary::default();
    for h in handles {
        let (name, outcome) = h.await.context("a test task panicked")?;
        match outcome {
            Outcome::Pass => summary.passed.push(name),
            Outcome::Fail(reason) => summary.failed.push((name, reason)),
        }
    }
    summary.passed.sort();
    summary.failed.sort();
    Ok(summary)
}

/// Runs the test command: prints one line per failing case and `N passed, M failed`.
pub async fn run_cli(
    paths: &[PathBuf],
    names: Option<&Path>,
    filter: Option<&str>,
    jobs: usize,
    write_passing: Option<&Path>,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    let summary = run_cases(paths, names, filter, jobs).await?;
    if verbose {
        for n in &summary.passed {
            println!("PASS {n}");
        }
    }
    for (n, reason) in &summary.failed {
        println!("FAIL {n}: {reason}");
    }
    if let Some(p) = write_passing {
        std::fs::write(p, summary.passed.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    println!(
        "{} passed, {} failed",
        summary.passed.len(),
        summary.failed.len()
    );
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
