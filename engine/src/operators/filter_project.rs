//! Filters and projections that only pick columns and struct fields, run as one operator (a
//! Flink view such as Nexmark's `bid` over the wide event table, then a query's own `WHERE` and
//! select list): projections pick their (zero-copy) columns from the unfiltered rows, the
//! filters' masks are combined, and only the narrow result is filtered once — the wide input is
//! never copied.

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::kernels::boolean::and;

use super::filter::FilterOp;
use super::project::ProjectOp;
use super::{OpContext, Operator, filter};
use crate::error::Result;

/// One step of a fused run.
pub enum Step {
    /// Keep rows where the predicate holds.
    Filter(FilterOp),
    /// Pick the next layout's columns.
    Project(ProjectOp),
}

/// A run of filters and picking projections, filtering once at the end.
pub struct FilterProjectOp {
    steps: Vec<Step>,
}

impl FilterProjectOp {
    /// Whether `step` may join a run after `earlier` steps: projections must only pick and keep
    /// every row; filters after the first are evaluated on rows an earlier filter dropped, so
    /// their predicates must be unable to fail.
    pub fn admits(earlier: &[Step], step: &Step) -> bool {
        match step {
            Step::Project(p) => p.only_picks() && !p.drops_rows(),
            Step::Filter(f) => earlier.is_empty() || f.cannot_fail(),
        }
    }

    /// Fuses `steps` (each admitted after the ones before it); `None` when fewer than two steps
    /// or no filter (nothing to gain).
    pub fn fuse(steps: Vec<Step>) -> Option<Self> {
        let filters = steps
            .iter()
            .filter(|s| matches!(s, Step::Filter(_)))
            .count();
        (steps.len() >= 2 && filters > 0).then_some(FilterProjectOp { steps })
    }
}

impl Operator for FilterProjectOp {
    fn name(&self) -> &'static str {
        "FilterProject"
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mut current = batch;
        let mut mask: Option<BooleanArray> = None;
        for step in &mut self.steps {
            match step {
                Step::Filter(f) => {
                    let m = f.mask(&current, ctx)?;
                    mask = Some(match mask {
                        Some(before) => and(&before, &m)?,
                        None => m,
                    });
                }
                Step::Project(p) => {
                    let Some(next) = p.process(current, ctx)?.pop() else {
                        return Ok(vec![]);
                    };
                    current = next;
                }
            }
        }
        match mask {
            Some(m) if m.true_count() < current.num_rows() => Ok(vec![filter(&current, &m)?]),
            _ => Ok(vec![current]),
        }
    }
}
