//! Row-pattern matching state for one partition of a `MATCH_RECOGNIZE`: the rows still
//! referenced, and one *attempt* per candidate start row, each a list of NFA threads in
//! preference order (a Pike VM whose threads carry their row-to-variable history). Attempts run
//! side by side but are resolved in start order, so `AFTER MATCH SKIP` behaves exactly as if
//! matching restarted sequentially.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use riffle_sql::match_recognize::{MatchAgg, Nav, SkipTo, Term};
use riffle_sql::pattern::{Inst, Program};

use crate::error::Result;

/// One row of a partition, as scalars of the operator's input layout.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// Every column of the input layout.
    pub values: Vec<ScalarValue>,
    /// Event time.
    pub rowtime: i64,
}

/// A row mapped to a pattern variable, linked to the thread's earlier mappings (threads that
/// fork share their common history).
#[derive(Debug)]
pub struct Step {
    /// The row's sequence number in its partition.
    pub seq: u64,
    /// The pattern variable.
    pub var: usize,
    prev: Option<Arc<Step>>,
}

/// The mappings of a history, first row first.
pub fn entries(last: &Arc<Step>) -> Vec<(u64, usize)> {
    let mut out = Vec::new();
    let mut cur = Some(last);
    while let Some(s) = cur {
        out.push((s.seq, s.var));
        cur = s.prev.as_ref();
    }
    out.reverse();
    out
}

#[derive(Debug, Clone)]
struct Thread {
    pc: usize,
    history: Option<Arc<Step>>,
}

/// Matching from one start row.
#[derive(Debug)]
struct Attempt {
    start: u64,
    start_time: i64,
    threads: Vec<Thread>,
    best: Option<Arc<Step>>,
}

/// A thread asking whether the new row may be mapped to `var`.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The pattern variable.
    pub var: usize,
    /// The thread's history with the new row appended.
    pub entries: Vec<(u64, usize)>,
}

/// A completed match.
#[derive(Debug, Clone)]
pub struct Found {
    /// Rows and their variables, in order.
    pub entries: Vec<(u64, usize)>,
    /// 1-based number of the match within its partition.
    pub number: u64,
    /// Why `AFTER MATCH SKIP TO` could not be honoured, if it could not.
    pub skip_problem: Option<String>,
}

/// A history as its `(row, variable)` mappings, for snapshots.
type Mappings = Vec<(u64, usize)>;

/// A saved attempt: start row, start time, threads (program counter, history), best match.
type SavedAttempt = (u64, i64, Vec<(usize, Option<Mappings>)>, Option<Mappings>);

/// The saved form of a partition's matching state (its rows are saved separately, in order).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SavedMatcher {
    base: u64,
    next: u64,
    skip_until: u64,
    matches: u64,
    /// The attempts in start order.
    attempts: Vec<SavedAttempt>,
    /// Completed matches not yet emitted: mappings, number, skip problem.
    completed: Vec<(Mappings, u64, Option<String>)>,
}

fn chain(m: &[(u64, usize)]) -> Option<Arc<Step>> {
    m.iter().fold(None, |prev, &(seq, var)| {
        Some(Arc::new(Step { seq, var, prev }))
    })
}

/// The matching state of one partition.
#[derive(Debug, Default)]
pub struct PartitionMatcher {
    rows: VecDeque<StoredRow>,
    base: u64,
    next: u64,
    attempts: VecDeque<Attempt>,
    completed: VecDeque<Found>,
    skip_until: u64,
    matches: u64,
}

impl PartitionMatcher {
    /// The state to save and the rows kept, oldest first.
    pub fn save(&self) -> (SavedMatcher, Vec<&StoredRow>) {
        let saved = SavedMatcher {
            base: self.base,
            next: self.next,
            skip_until: self.skip_until,
            matches: self.matches,
            attempts: self
                .attempts
                .iter()
                .map(|a| {
                    let threads = a
                        .threads
                        .iter()
                        .map(|t| (t.pc, t.history.as_ref().map(entries)))
                        .collect();
                    (a.start, a.start_time, threads, a.best.as_ref().map(entries))
                })
                .collect(),
            completed: self
                .completed
                .iter()
                .map(|f| (f.entries.clone(), f.number, f.skip_problem.clone()))
                .collect(),
        };
        (saved, self.rows.iter().collect())
    }

    /// A matcher in a saved state, with its kept rows.
    pub fn restored(saved: SavedMatcher, rows: Vec<StoredRow>) -> Self {
        PartitionMatcher {
            rows: rows.into(),
            base: saved.base,
            next: saved.next,
            attempts: saved
                .attempts
                .into_iter()
                .map(|(start, start_time, threads, best)| Attempt {
                    start,
                    start_time,
                    threads: threads
                        .into_iter()
                        .map(|(pc, h)| Thread {
                            pc,
                            history: h.as_deref().and_then(chain),
                        })
                        .collect(),
                    best: best.as_deref().and_then(chain),
                })
                .collect(),
            completed: saved
                .completed
                .into_iter()
                .map(|(entries, number, skip_problem)| Found {
                    entries,
                    number,
                    skip_problem,
                })
                .collect(),
            skip_until: saved.skip_until,
            matches: saved.matches,
        }
    }

    /// The stored row with sequence number `seq`, if still kept.
    pub fn row(&self, seq: u64) -> Option<&StoredRow> {
        seq.checked_sub(self.base)
            .and_then(|i| self.rows.get(i as usize))
    }

    /// The number the next match will get.
    pub fn next_match_number(&self) -> u64 {
        self.matches + 1
    }

    /// Appends a row, starting a new attempt at it unless an earlier match skipped past it, and
    /// returns the candidates whose DEFINE conditions decide the next step.
    pub fn push(
        &mut self,
        row: StoredRow,
        program: &Program,
        within_ms: Option<i64>,
    ) -> (u64, Vec<Candidate>) {
        let seq = self.next;
        self.next += 1;
        let time = row.rowtime;
        self.rows.push_back(row);
        if seq >= self.skip_until {
            let mut pcs = Vec::new();
            program.closure(0, &mut pcs);
            let threads: Vec<Thread> = pcs
                .into_iter()
                .filter(|pc| program.insts[*pc] != Inst::Match)
                .map(|pc| Thread { pc, history: None })
                .collect();
            if !threads.is_empty() {
                self.attempts.push_back(Attempt {
                    start: seq,
                    start_time: time,
                    threads,
                    best: None,
                });
            }
        }
        let mut candidates = Vec::new();
        for a in self.attempts.iter_mut() {
            if within_ms.is_some_and(|w| time - a.start_time > w) {
                a.threads.clear();
                continue;
            }
            for t in &a.threads {
                if let Inst::Var(var) = program.insts[t.pc] {
                    let mut entries = t.history.as_ref().map(entries).unwrap_or_default();
                    entries.push((seq, var));
                    candidates.push(Candidate { var, entries });
                }
            }
        }
        (seq, candidates)
    }

    /// Advances every thread by the row `seq` given the verdict for each candidate (in the order
    /// `push` returned them).
    pub fn advance(&mut self, seq: u64, verdicts: &[bool], program: &Program) {
        let mut k = 0;
        for a in self.attempts.iter_mut() {
            let old = std::mem::take(&mut a.threads);
            let mut cut = false;
            for t in old {
                let Inst::Var(var) = program.insts[t.pc] else {
                    continue;
                };
                let ok = verdicts.get(k).copied().unwrap_or(false);
                k += 1;
                if cut || !ok {
                    continue;
                }
                let step = Arc::new(Step {
                    seq,
                    var,
                    prev: t.history.clone(),
                });
                let mut pcs = Vec::new();
                program.closure(t.pc + 1, &mut pcs);
                for pc in pcs {
                    if program.insts[pc] == Inst::Match {
                        // Lower-preference threads can no longer win.
                        a.best = Some(step.clone());
                        cut = true;
                        break;
                    }
                    if !a
                        .threads
                        .iter()
                        .any(|x| x.pc == pc && ptr_eq(&x.history, &Some(step.clone())))
                    {
                        a.threads.push(Thread {
                            pc,
                            history: Some(step.clone()),
                        });
                    }
                }
            }
        }
    }

    /// Stops attempts that can no longer grow: at end of input, or (with `WITHIN`) once the
    /// watermark is past their deadline.
    pub fn expire(&mut self, watermark: i64, within_ms: Option<i64>) {
        for a in self.attempts.iter_mut() {
            let done = watermark == i64::MAX
                || within_ms.is_some_and(|w| a.start_time.saturating_add(w) < watermark);
            if done {
                a.threads.clear();
            }
        }
    }

    /// Resolves finished attempts in start order, applying `AFTER MATCH SKIP`; an attempt whose
    /// more preferred threads are still alive waits, and so do the attempts after it.
    pub fn resolve(&mut self, skip: SkipTo) {
        while let Some(front) = self.attempts.front() {
            if !front.threads.is_empty() {
                break;
            }
            let Some(a) = self.attempts.pop_front() else {
                break;
            };
            let Some(best) = a.best else { continue };
            let e = entries(&best);
            self.matches += 1;
            let start = a.start;
            let last = e.last().map(|x| x.0).unwrap_or(start);
            let target = match skip {
                SkipTo::PastLastRow => Some(last + 1),
                SkipTo::NextRow => Some(start + 1),
                SkipTo::First(v) => e.iter().find(|x| x.1 == v).map(|x| x.0),
                SkipTo::Last(v) => e.iter().rev().find(|x| x.1 == v).map(|x| x.0),
            };
            // SQL:2016 makes these an error; a stream keeps going at the next row instead.
            let skip_problem = match target {
                None => Some("no row of the match is mapped to the AFTER MATCH SKIP TO variable"),
                Some(t) if t <= start => {
                    Some("AFTER MATCH SKIP TO would restart at the match's first row")
                }
                Some(_) => None,
            }
            .map(|m| format!("{m}; matching resumes at the row after the match's first row"));
            let resume = target.unwrap_or(start + 1).max(start + 1);
            self.attempts.retain(|x| x.start >= resume);
            self.skip_until = self.skip_until.max(resume);
            self.completed.push_back(Found {
                entries: e,
                number: self.matches,
                skip_problem,
            });
        }
    }

    /// Completed matches whose `lookahead` rows after their last row have arrived (what `NEXT`
    /// needs), or all of them when the input ended.
    pub fn ready(&mut self, lookahead: u64, ended: bool) -> Vec<Found> {
        let mut out = Vec::new();
        while let Some(f) = self.completed.front() {
            let last = f.entries.last().map(|e| e.0).unwrap_or(0);
            if !ended && self.next <= last + lookahead {
                break;
            }
            if let Some(f) = self.completed.pop_front() {
                out.push(f);
            }
        }
        out
    }

    /// Drops rows no attempt can reach any more (keeping `max_prev` rows for `PREV`); call once
    /// the matches taken are emitted.
    pub fn prune(&mut self, max_prev: u64) {
        let oldest = self
            .attempts
            .iter()
            .map(|a| a.start)
            .chain(
                self.completed
                    .iter()
                    .filter_map(|f| f.entries.first().map(|e| e.0)),
            )
            .min()
            .unwrap_or(self.next);
        let keep_from = oldest.saturating_sub(max_prev);
        while self.base < keep_from && !self.rows.is_empty() {
            self.rows.pop_front();
            self.base += 1;
        }
    }

    /// The value of a term for a match (or partial match) whose rows are `entries`; the last entry
    /// is the current row.
    pub fn term(
        &self,
        t: &Term,
        entries: &[(u64, usize)],
        match_number: u64,
        program: &Program,
        dt: &DataType,
    ) -> Result<ScalarValue> {
        let null = || ScalarValue::try_from(dt);
        let value = |seq: u64, col: usize| -> Result<ScalarValue> {
            match self.row(seq) {
                Some(r) => Ok(r.values[col].clone()),
                None => Ok(null()?),
            }
        };
        let of_var = |var: Option<usize>| {
            entries
                .iter()
                .filter(move |e| var.is_none_or(|v| e.1 == v))
                .map(|e| e.0)
        };
        Ok(match t {
            Term::Nav {
                nav,
                var,
                column,
                offset,
            } => {
                let seq = match nav {
                    Nav::Last => of_var(*var).rev().nth(*offset),
                    Nav::First => of_var(*var).nth(*offset),
                    Nav::Prev => of_var(*var)
                        .next_back()
                        .and_then(|s| s.checked_sub(*offset as u64)),
                    Nav::Next => of_var(*var)
                        .next_back()
                        .map(|s| s + *offset as u64)
                        .filter(|s| *s < self.next),
                };
                match seq {
                    Some(s) => value(s, *column)?,
                    None => null()?,
                }
            }
            Term::Agg { func, var, column } => {
                let rows = of_var(*var);
                match (func, column) {
                    (MatchAgg::Count, None) => ScalarValue::Int64(Some(rows.count() as i64)),
                    (_, None) => null()?,
                    (func, Some(col)) => {
                        let mut vals = Vec::new();
                        for s in rows {
                            let v = value(s, *col)?;
                            if !v.is_null() {
                                vals.push(v);
                            }
                        }
                        aggregate(*func, vals, dt)?
                    }
                }
            }
            Term::Classifier => match entries.last() {
                Some((_, v)) => ScalarValue::Utf8(Some(program.vars[*v].clone())),
                None => null()?,
            },
            Term::MatchNumber => ScalarValue::Int64(Some(match_number as i64)),
            Term::MatchRowtime => match entries.last().and_then(|(s, _)| self.row(*s)) {
                Some(r) => ScalarValue::TimestampMillisecond(Some(r.rowtime), None),
                None => null()?,
            },
        })
    }
}

fn ptr_eq(a: &Option<Arc<Step>>, b: &Option<Arc<Step>>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        (None, None) => true,
        _ => false,
    }
}

/// Folds non-null values into an aggregate of type `dt`.
fn aggregate(func: MatchAgg, vals: Vec<ScalarValue>, dt: &DataType) -> Result<ScalarValue> {
    let n = vals.len();
    match func {
        MatchAgg::Count => return Ok(ScalarValue::Int64(Some(n as i64))),
        MatchAgg::CountDistinct => {
            let distinct: std::collections::HashSet<&ScalarValue> = vals.iter().collect();
            return Ok(ScalarValue::Int64(Some(distinct.len() as i64)));
        }
        _ => {}
    }
    if vals.is_empty() {
        return Ok(ScalarValue::try_from(dt)?);
    }
    Ok(match func {
        MatchAgg::Sum | MatchAgg::Avg => {
            let target = if func == MatchAgg::Avg {
                &DataType::Float64
            } else {
                dt
            };
            let mut acc = ScalarValue::try_from(target)?;
            for v in vals {
                let v = v.cast_to(target)?;
                acc = if acc.is_null() { v } else { acc.add(&v)? };
            }
            if func == MatchAgg::Avg {
                match acc {
                    ScalarValue::Float64(Some(s)) => ScalarValue::Float64(Some(s / n as f64)),
                    other => other,
                }
            } else {
                acc
            }
        }
        MatchAgg::Min | MatchAgg::Max => {
            let mut best = vals[0].clone();
            for v in vals.into_iter().skip(1) {
                let better = match v.partial_cmp(&best) {
                    Some(std::cmp::Ordering::Less) => func == MatchAgg::Min,
                    Some(std::cmp::Ordering::Greater) => func == MatchAgg::Max,
                    _ => false,
                };
                if better {
                    best = v;
                }
            }
            best
        }
        MatchAgg::Count | MatchAgg::CountDistinct => ScalarValue::Int64(Some(n as i64)),
    })
}
