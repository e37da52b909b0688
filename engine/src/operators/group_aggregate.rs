//! Non-windowed `GROUP BY`: one group per key, updated by every input row and emitted as a table
//! changelog. Over a table input, retractions (`-U`, `-D`) subtract their old values first, so a
//! row moving between groups updates both.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::row::OwnedRow;
use riffle_sql::plan::{AggregateNode, ChangeOp, StreamSchema};

use super::aggregate_state::AggregateState;
use super::{OpContext, Operator, is_retraction, ops_of};
use crate::error::Result;

/// `GROUP BY` without a window.
pub struct GroupAggregateOp {
    input: StreamSchema,
    output: StreamSchema,
    state: AggregateState,
    groups: HashMap<OwnedRow, usize>,
}

impl GroupAggregateOp {
    /// Builds the operator for an aggregate node.
    pub fn new(node: &AggregateNode) -> Result<Self> {
        let input = node.input.schema().clone();
        Ok(GroupAggregateOp {
            state: AggregateState::new(&node.aggregates, &input)?,
            input,
            output: node.schema.clone(),
            groups: HashMap::new(),
        })
    }
}

impl Operator for GroupAggregateOp {
    fn name(&self) -> &'static str {
        "GroupAggregate"
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let kc = self.input.key_count;
        let ops = ops_of(&batch, self.input.op());
        let is_stream = self.input.kind == riffle_sql::ast::SourceKind::Stream;
        let keys = self
            .state
            .converter
            .convert_columns(&batch.columns()[..kc])?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut groups = Vec::with_capacity(batch.num_rows());
        let mut touched: Vec<(usize, (i64, i64))> = Vec::new();
        let mut was_live = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..batch.num_rows() {
            let op = ops.value(i);
            if is_stream && op == ChangeOp::Delete as i8 {
                continue;
            }
            let owned = keys.row(i).owned();
            let g = match self.groups.get(&owned) {
                Some(g) => *g,
                None => {
                    let g = self.state.alloc(owned.clone());
                    self.groups.insert(owned, g);
                    g
                }
            };
            rows.push(i as u32);
            groups.push(g);
            if seen.insert(g) {
                touched.push((g, (0, 0)));
                was_live.push(self.state.live[g]);
            }
        }
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let live_groups: Vec<usize> = touched
            .iter()
            .zip(&was_live)
            .filter(|(_, l)| **l)
            .map(|((g, _), _)| *g)
            .collect();
        let old = self.state.evaluate(&live_groups)?;
        let rows = UInt32Array::from(rows);
        let retract: Option<BooleanArray> = (!is_stream).then(|| {
            rows.values()
                .iter()
                .map(|&r| Some(is_retraction(ops.value(r as usize))))
                .collect()
        });
        let rowtimes = batch
            .column(self.input.rowtime())
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .unwrap_or_else(|| Int64Array::from(vec![0; batch.num_rows()]));
        self.state
            .update(&batch, kc, &rows, &groups, retract.as_ref(), &rowtimes)?;
        let touched_groups: Vec<usize> = touched.iter().map(|(g, _)| *g).collect();
        let new = self.state.evaluate(&touched_groups)?;
        let out_rows = self.state.changes(&touched, &was_live);
        ctx.metrics.state_bytes.store(
            self.state.size() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(vec![self.state.build(
            &self.output,
            &out_rows,
            &old,
            &new,
        )?])
    }
}
