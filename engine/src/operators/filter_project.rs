//! A filter followed by a projection that only picks columns and struct fields (a Flink view
//! such as Nexmark's `bid` over the wide event table): the predicate is evaluated on the input,
//! the projection picks its (zero-copy) columns, and only the narrow result is filtered — the
//! wide input is never copied.

use datafusion::arrow::array::RecordBatch;

use super::filter::FilterOp;
use super::project::ProjectOp;
use super::{OpContext, Operator, filter};
use crate::error::Result;

/// [`FilterOp`] then [`ProjectOp`], filtering after projecting.
pub struct FilterProjectOp {
    filter: FilterOp,
    project: ProjectOp,
}

impl FilterProjectOp {
    /// Fuses `filter` and `project`; `None` when the projection computes values or may drop
    /// rows itself (then filtering first is cheaper, or needed).
    pub fn fuse(filter: FilterOp, project: ProjectOp) -> Option<Self> {
        (project.only_picks() && !project.drops_rows())
            .then_some(FilterProjectOp { filter, project })
    }
}

impl Operator for FilterProjectOp {
    fn name(&self) -> &'static str {
        "FilterProject"
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let mask = self.filter.mask(&batch, ctx)?;
        let all = mask.true_count() == batch.num_rows();
        let mut out = self.project.process(batch, ctx)?;
        if !all {
            for b in &mut out {
                *b = filter(b, &mask)?;
            }
        }
        Ok(out)
    }
}
