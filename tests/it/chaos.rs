//! Exactly-once under crashes: a Kafka→Kafka pipeline (a filter, a tumbling-window aggregate and
//! a GROUP BY table) over 200,000 records runs in a `riffle run` process that is killed with
//! SIGKILL at random moments (some right after a checkpoint started) and restarted each time. Its
//! output must equal that of one uninterrupted run: nothing lost, nothing duplicated, and the
//! table's counts continue across restarts instead of starting over.
//!
//! The broker (tansu) leaves the records of aborted transactions visible even to
//! `read_committed` consumers, so the check keeps exactly the records of committed
//! transactions itself: every output record carries `riffle.txn = <run>:<epoch>`, each run logs
//! the checkpoint it resumed (which the Kafka group offsets committed atomically with the
//! output), and run `i` committed exactly the epochs after its own resume point up to the next
//! run's (for the last run: up to the epoch the group's offset on the query's commit log names
//! at the end).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use riffle_tests::kafka::{In, Out, committed, create_topic, produce, read_quiet, unique};
use riffle_tests::riffle_bin;

const RECORDS: usize = 200_000;
const PARTITIONS: i32 = 4;
const KILLS: usize = 10;

/// The output topics of one deployment of the pipeline.
struct Deployment {
    service: String,
    big: String,
    windows: String,
    accounts: String,
    sql: std::path::PathBuf,
    state: std::path::PathBuf,
    progress: Mutex<String>,
}

const QUERIES: [&str; 3] = ["CSAS_BIG_0", "CTAS_PER_WINDOW_1", "CTAS_PER_ACCOUNT_2"];

impl Deployment {
    fn new(dir: &Path, input: &str, name: &str) -> Self {
        let d = Deployment {
            service: unique(name),
            big: unique(&format!("{name}_big")),
            windows: unique(&format!("{name}_windows")),
            accounts: unique(&format!("{name}_accounts")),
            sql: dir.join(format!("{name}.sql")),
            state: dir.join(format!("{name}-state")),
            progress: Mutex::new(String::new()),
        };
        let sql = format!(
            "CREATE STREAM events (id STRING KEY, account STRING, amount BIGINT, ts BIGINT) \
               WITH (kafka_topic='{input}', value_format='JSON', timestamp='ts');\n\
             CREATE STREAM big WITH (kafka_topic='{big}', partitions=2) AS \
               SELECT id, account, amount FROM events WHERE amount >= 500;\n\
             CREATE TABLE per_window WITH (kafka_topic='{windows}', partitions=2) AS \
               SELECT account, COUNT(*) AS n, SUM(amount) AS total FROM events \
               WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 0 SECONDS) \
               GROUP BY account EMIT FINAL;\n\
             CREATE TABLE per_account WITH (kafka_topic='{accounts}', partitions=2) AS \
               SELECT account, COUNT(*) AS n, SUM(amount) AS total FROM events \
               GROUP BY account EMIT CHANGES;\n",
            big = d.big,
            windows = d.windows,
            accounts = d.accounts,
        );
        std::fs::write(&d.sql, sql).unwrap();
        d
    }

    fn topics(&self) -> [&str; 3] {
        [&self.big, &self.windows, &self.accounts]
    }

    /// Starts `riffle run` on the pipeline; its stderr lines are collected.
    fn start(&self) -> Run {
        let mut child = Command::new(riffle_bin())
            .args(["run"])
            .arg(&self.sql)
            .args(["--kafka", &riffle_tests::kafka::bootstrap()])
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--checkpoint-interval", "300ms", "--parallelism", "2"])
            .args(["--service-id", &self.service])
            .env("RIFFLE_LOG", "riffle::checkpoint=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("riffle starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Run {
            child,
            lines,
            started: Instant::now(),
        }
    }

    /// Whether every query committed offsets past the whole input.
    fn caught_up(&self, input: &str, ends: &BTreeMap<i32, i64>) -> bool {
        let offsets: Vec<BTreeMap<i32, i64>> = QUERIES
            .iter()
            .map(|q| committed(&format!("{}_{q}", self.service), input, PARTITIONS))
            .collect();
        *self.progress.lock().unwrap() = format!("committed input offsets: {offsets:?}");
        offsets.iter().all(|o| o == ends)
    }

    /// The epoch each query's group committed last.
    fn final_epochs(&self) -> BTreeMap<String, u64> {
        QUERIES
            .iter()
            .map(|q| {
                let group = format!("{}_{q}", self.service);
                let e = committed(&group, &format!("_{group}_commits"), 1)
                    .get(&0)
                    .copied()
                    .unwrap_or(0);
                (q.to_string(), e as u64)
            })
            .collect()
    }
}

struct Run {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    started: Instant,
}

impl Drop for Run {
    fn drop(&mut self) {
        // A failed assertion must not leave the process running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Run {
    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the killed process is reaped");
    }

    /// `query → (run id, resumed epoch)` as the run logged them.
    fn resumes(&self) -> BTreeMap<String, (String, u64)> {
        let mut out = BTreeMap::new();
        for l in self.log() {
            // "query Q: run R resumes after checkpoint C"
            let Some(rest) = l.split("query ").nth(1) else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            if words.len() == 7 && words[1] == "run" && words[3] == "resumes" {
                let q = words[0].trim_end_matches(':').to_string();
                out.insert(q, (words[2].to_string(), words[6].parse().unwrap()));
            }
        }
        out
    }

    /// Whether the last checkpoint line logged is one that started but did not commit.
    fn mid_checkpoint(&self) -> bool {
        self.log()
            .iter()
            .rev()
            .find(|l| l.contains(": checkpoint "))
            .is_some_and(|l| l.contains(" started") || l.contains(" durable"))
    }

    /// Milliseconds from start to the first committed checkpoint of every query.
    fn recovered_after(&self) -> Option<Duration> {
        let log = self.log();
        QUERIES
            .iter()
            .all(|q| {
                log.iter().any(|l| {
                    l.contains(&format!("query {q}: checkpoint")) && l.contains("committed")
                })
            })
            .then(|| self.started.elapsed())
    }
}

/// Keeps the records of committed transactions: run `runs[i]` of a query committed the epochs
/// after its resume point, up to the next run's (the last run: up to `last`).
fn committed_records(
    records: &[In],
    runs: &[BTreeMap<String, (String, u64)>],
    last: &BTreeMap<String, u64>,
) -> Vec<In> {
    let mut committed: BTreeSet<(String, u64)> = BTreeSet::new();
    for q in QUERIES {
        let chain: Vec<&(String, u64)> = runs.iter().filter_map(|r| r.get(q)).collect();
        for (i, (run, from)) in chain.iter().enumerate() {
            let to = chain.get(i + 1).map(|(_, e)| *e).unwrap_or(last[q]);
            for e in from + 1..=to {
                committed.insert((run.clone(), e));
            }
        }
    }
    records
        .iter()
        .filter(|r| {
            let txn = r
                .headers
                .get("riffle.txn")
                .expect("every record names its transaction");
            let (run, epoch) = txn.split_once(':').expect("run:epoch");
            committed.contains(&(run.to_string(), epoch.parse().unwrap()))
        })
        .cloned()
        .collect()
}

fn input_records(n: usize) -> Vec<Out> {
    let base = 1_767_225_600_000i64;
    let mut out: Vec<Out> = (0..n)
        .map(|i| {
            let p = (i % PARTITIONS as usize) as i32;
            let value = serde_json::json!({
                "account": format!("acct{}", (i * 7) % 50),
                "amount": (i * 37) % 1000,
                // Event time rises within each partition: no row is late.
                "ts": base + (i / PARTITIONS as usize) as i64 * 10,
            });
            Out::kv(&format!("e{i}"), &value.to_string()).to(p)
        })
        .collect();
    // One record per partition an hour later closes every window of the data above.
    for p in 0..PARTITIONS {
        let value =
            serde_json::json!({"account": "sentinel", "amount": 0, "ts": base + 3_600_000_000i64});
        out.push(Out::kv(&format!("end{p}"), &value.to_string()).to(p));
    }
    out
}

fn waiting(
    run: &Run,
    what: &str,
    limit: Duration,
    started: Instant,
    progress: impl Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    while !done() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}; {}; the run's log:\n{}",
            progress(),
            run.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Everything a deployment wrote, keeping committed transactions only.
fn outputs(d: &Deployment, runs: &[BTreeMap<String, (String, u64)>]) -> [Vec<In>; 3] {
    let last = d.final_epochs();
    d.topics()
        .map(|t| committed_records(&read_quiet(t, Duration::from_secs(3)), runs, &last))
}

fn key_value(r: &In) -> (Vec<u8>, serde_json::Value) {
    (r.key.clone().unwrap_or_default(), r.json())
}

/// What a chaos run produced.
struct Outcome {
    records: Vec<Out>,
    kills: usize,
    mid_checkpoint: usize,
    recoveries: Vec<Duration>,
    chaos_time: Duration,
    uninterrupted: Duration,
    /// The output topics of the killed pipeline as a `read_committed` consumer reads them.
    raw: [Vec<In>; 3],
    /// The same, keeping the records of committed transactions only.
    got: [Vec<In>; 3],
    /// The uninterrupted run's committed output.
    want: [Vec<In>; 3],
}

/// Runs the pipeline over `records` input records while killing it `kills` times, then once
/// without interruption, and collects both outputs.
fn chaos_pipeline(records: usize, kills: usize) -> Outcome {
    let input = unique("chaos_events");
    create_topic(&input, PARTITIONS);
    let records = input_records(records);
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| {
            (
                p,
                records.iter().filter(|r| r.partition == Some(p)).count() as i64,
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let limit = Duration::from_secs(300);

    // The input arrives over about half a minute while the pipeline is killed and restarted, so
    // every kill interrupts work in progress.
    let feeder = {
        let (input, records) = (input.clone(), records.clone());
        std::thread::spawn(move || {
            for chunk in records.chunks(2_000) {
                produce(&input, chunk);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let chaos = Deployment::new(dir.path(), &input, "chaos");
    let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random());
    let mut runs = Vec::new();
    let mut mid_checkpoint = 0;
    let mut recoveries = Vec::new();
    let t = Instant::now();
    for cycle in 0..kills {
        let mut run = chaos.start();
        if cycle > 0 {
            let started = Instant::now();
            waiting(
                &run,
                "a restarted run to commit",
                limit,
                t,
                String::new,
                || run.recovered_after().is_some(),
            );
            recoveries.push(started.elapsed());
        }
        if cycle % 3 == 1 {
            // Right after a checkpoint started: the barrier is in flight, state is being
            // snapshotted or the transaction is about to commit.
            let seen = run.log().len();
            waiting(&run, "a checkpoint to start", limit, t, String::new, || {
                run.log()[seen..].iter().any(|l| l.contains(" started"))
            });
        } else {
            std::thread::sleep(Duration::from_millis(rng.random_range(200..2500)));
        }
        run.kill();
        if run.mid_checkpoint() {
            mid_checkpoint += 1;
        }
        runs.push(run.resumes());
    }
    feeder.join().expect("the input is produced");
    let mut run = chaos.start();
    waiting(
        &run,
        "the last run to catch up",
        limit,
        t,
        || chaos.progress.lock().unwrap().clone(),
        || chaos.caught_up(&input, &ends),
    );
    runs.push(run.resumes());
    run.kill();
    let chaos_time = t.elapsed();
    let raw = chaos
        .topics()
        .map(|t| read_quiet(t, Duration::from_secs(3)));
    let got = outputs(&chaos, &runs);

    // One uninterrupted run over the same input.
    let reference = Deployment::new(dir.path(), &input, "reference");
    let t = Instant::now();
    let mut run = reference.start();
    waiting(
        &run,
        "the uninterrupted run",
        limit,
        t,
        || reference.progress.lock().unwrap().clone(),
        || reference.caught_up(&input, &ends),
    );
    let uninterrupted = t.elapsed();
    let reference_runs = vec![run.resumes()];
    run.kill();
    let want = outputs(&reference, &reference_runs);
    Outcome {
        records,
        kills,
        mid_checkpoint,
        recoveries,
        chaos_time,
        uninterrupted,
        raw,
        got,
        want,
    }
}

#[test]
fn killed_and_restarted_pipeline_loses_and_duplicates_nothing() {
    let Outcome {
        records,
        kills,
        mid_checkpoint,
        recoveries,
        chaos_time,
        uninterrupted,
        got: [big, windows, accounts],
        want: [want_big, want_windows, want_accounts],
        ..
    } = chaos_pipeline(RECORDS, KILLS);

    // The filter: every qualifying event exactly once.
    let expected_big = records[..records.len() - PARTITIONS as usize]
        .iter()
        .filter(|r| {
            let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            v["amount"].as_i64().unwrap() >= 500
        })
        .count();
    let count_keys = |rs: &[In]| {
        let mut m: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for r in rs {
            *m.entry(r.key.clone().unwrap_or_default()).or_default() += 1;
        }
        m
    };
    let want_keys = count_keys(&want_big);
    let got_keys = count_keys(&big);
    assert_eq!(
        want_keys.len(),
        expected_big,
        "the uninterrupted run is complete"
    );
    let lost = want_keys
        .keys()
        .filter(|k| !got_keys.contains_key(*k))
        .count();
    let duplicated: usize = got_keys.values().map(|n| n - 1).sum();
    eprintln!(
        "chaos: {} input records, {kills} kills ({mid_checkpoint} mid-checkpoint), {kills} restarts; \
         filter output {} records: {lost} lost, {duplicated} duplicated; \
         uninterrupted run over the whole input {uninterrupted:?}, chaos runs while the input \
         arrived {chaos_time:?}; time from restart to every query's first commit: {recoveries:?}",
        records.len(),
        big.len(),
    );
    assert_eq!((lost, duplicated), (0, 0));
    let sorted = |rs: &[In]| {
        let mut v: Vec<_> = rs.iter().map(key_value).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.to_string().cmp(&b.1.to_string())));
        v
    };
    assert_eq!(sorted(&big), sorted(&want_big));

    // The windows: each closed once, with the same counts and sums.
    assert_eq!(windows.len(), want_windows.len());
    assert_eq!(sorted(&windows), sorted(&want_windows));

    // The table: the same final row per account, and counts only ever grow (a reset or a
    // replayed update would show as a repeated or smaller count).
    let latest = |rs: &[In]| riffle_tests::kafka::latest_by_key(rs);
    assert_eq!(latest(&accounts), latest(&want_accounts));
    assert_eq!(latest(&accounts).len(), 51, "50 accounts and the sentinel");
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for r in &accounts {
        let n = r.json()["N"].as_i64().unwrap();
        let prev = last.insert(r.key_text(), n).unwrap_or(0);
        assert!(
            n > prev,
            "count of {} went from {prev} to {n}",
            r.key_text()
        );
    }
    assert!(
        mid_checkpoint >= 1,
        "at least one kill landed mid-checkpoint"
    );
}

/// The same guarantee as seen by a plain `read_committed` consumer, with no help from the
/// transaction headers: what Apache Kafka provides. tansu 0.6 leaves the records of aborted
/// transactions visible to `read_committed` consumers, so against it this test fails by design;
/// run it with `--ignored` against a broker with full transaction support.
#[test]
#[ignore = "needs a broker that hides aborted transactions from read_committed consumers (tansu 0.6 does not)"]
fn read_committed_consumers_see_each_output_record_once() {
    let o = chaos_pipeline(20_000, 4);
    let keys = |rs: &[In]| -> Vec<Vec<u8>> {
        let mut k: Vec<Vec<u8>> = rs
            .iter()
            .map(|r| r.key.clone().unwrap_or_default())
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&o.raw[0]),
        keys(&o.want[0]),
        "the filter's output, each record once"
    );
    assert_eq!(o.raw[1].len(), o.want[1].len(), "each window once");
}
