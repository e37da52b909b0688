//! `COUNT(*)`, `COUNT()`, `COUNT(expr)`: rows, or rows where `expr` is not NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};

use super::{AggregateFunction, GroupsAggregator, ensure, is_retract};

/// `COUNT`.
#[derive(Debug)]
pub struct Count;

impl AggregateFunction for Count {
    fn name(&self) -> &'static str {
        "COUNT"
    }
    fn description(&self) -> &'static str {
        "Counts rows, or rows where the argument is not NULL"
    }
    fn return_type(&self, _args: &[DataType], _params: &[ScalarValue]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn create(&self, _: &[DataType], _: &[ScalarValue]) -> Result<Box<dyn GroupsAggregator>> {
        Ok(Box::new(CountState { counts: Vec::new() }))
    }
}

#[derive(Debug)]
struct CountState {
    counts: Vec<i64>,
}

impl GroupsAggregator for CountState {
    fn update(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        retract: Option<&BooleanArray>,
    ) -> Result<()> {
        let col = values.first();
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.counts, g, 0);
            if col.is_some_and(|c| c.is_null(i)) {
                continue;
            }
            self.counts[g] += if is_retract(retract, i) { -1 } else { 1 };
        }
        Ok(())
    }
    fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from_iter_values(
            groups
                .iter()
                .map(|&g| self.counts.get(g).copied().unwrap_or(0)),
        )))
    }
    fn merge(&mut self, into: usize, from: usize) -> Result<()> {
        ensure(&mut self.counts, into.max(from), 0);
        self.counts[into] += self.counts[from];
        Ok(())
    }
    fn reset(&mut self, group: usize) {
        if let Some(c) = self.counts.get_mut(group) {
            *c = 0;
        }
    }
    fn size(&self) -> usize {
        self.counts.len() * 8
    }
    fn state_types(&self) -> Vec<DataType> {
        vec![DataType::Int64]
    }
    fn state(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(groups)?])
    }
    fn restore(&mut self, groups: &[usize], state: &[ArrayRef]) -> Result<()> {
        let a = state[0].as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.counts, g, 0);
            self.counts[g] = a.value(i);
        }
        Ok(())
    }
}
