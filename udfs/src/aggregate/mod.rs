//! Streaming aggregate functions. Unlike batch accumulators these keep one state per group that
//! can be read at any time without being consumed, can subtract rows (aggregations over tables
//! receive retractions) and can merge two groups (session windows joining).

mod collect;
mod count;
mod min_max;
mod offset;
mod sum_avg;
mod topk;

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};

pub use collect::{CollectList, CollectSet, CountDistinct, Histogram};
pub use count::Count;
pub use min_max::{Max, Min};
pub use offset::{EarliestByOffset, LatestByOffset};
pub use sum_avg::{Avg, Sum};
pub use topk::{TopK, TopKDistinct};

/// An aggregate function: resolves types and creates per-query group state.
pub trait AggregateFunction: Send + Sync + Debug {
    /// The SQL name.
    fn name(&self) -> &'static str;
    /// One line for `SHOW FUNCTIONS` / `DESCRIBE FUNCTION`.
    fn description(&self) -> &'static str;
    /// How many of `arg_count` arguments are per-row values; the rest must be literals.
    fn value_args(&self, arg_count: usize) -> usize {
        arg_count.min(1)
    }
    /// The result type for these value argument types and literal parameters.
    fn return_type(&self, args: &[DataType], params: &[ScalarValue]) -> Result<DataType>;
    /// Creates empty state for any number of groups.
    fn create(
        &self,
        args: &[DataType],
        params: &[ScalarValue],
    ) -> Result<Box<dyn GroupsAggregator>>;
    /// Whether rows can be subtracted (required for aggregations over tables).
    fn supports_retract(&self) -> bool {
        true
    }
}

/// State of one aggregate call for many groups, addressed by dense group indices.
pub trait GroupsAggregator: Send + Debug {
    /// Adds (or, where `retract` is true, subtracts) each row to its group.
    fn update(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        retract: Option<&BooleanArray>,
    ) -> Result<()>;
    /// The current result of each listed group; state is not consumed.
    fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef>;
    /// Folds group `from` into group `into` (used when session windows merge).
    fn merge(&mut self, into: usize, from: usize) -> Result<()>;
    /// Clears a group so its index can be reused.
    fn reset(&mut self, group: usize);
    /// Approximate bytes held, for metrics.
    fn size(&self) -> usize;
    /// Types of the columns [`state`](Self::state) returns.
    fn state_types(&self) -> Vec<DataType>;
    /// The state of each listed group, one row per group (for checkpoints and for evicting
    /// groups from memory).
    fn state(&self, groups: &[usize]) -> Result<Vec<ArrayRef>>;
    /// Sets each listed group to the state in the matching row of `state`.
    fn restore(&mut self, groups: &[usize], state: &[ArrayRef]) -> Result<()>;
}

/// Grows a vector so `index` is valid, filling with `fill`.
pub(crate) fn ensure<T: Clone>(v: &mut Vec<T>, index: usize, fill: T) {
    if v.len() <= index {
        v.resize(index + 1, fill);
    }
}

/// Whether row `i` is a retraction.
pub(crate) fn is_retract(retract: Option<&BooleanArray>, i: usize) -> bool {
    retract.is_some_and(|r| r.value(i))
}

/// Builds an array from per-group scalars of type `dt` (nulls where `None`).
pub(crate) fn scalars_to_array(
    values: Vec<Option<ScalarValue>>,
    dt: &DataType,
) -> Result<ArrayRef> {
    let null = ScalarValue::try_from(dt)?;
    let vals: Vec<ScalarValue> = values
        .into_iter()
        .map(|v| v.unwrap_or_else(|| null.clone()))
        .collect();
    if vals.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(dt));
    }
    ScalarValue::iter_to_array(vals)
}

/// A `List(dt)` array holding one list of scalars per group (state snapshots).
pub(crate) fn scalar_lists<'a>(
    lists: impl Iterator<Item = &'a [ScalarValue]>,
    dt: &DataType,
) -> Result<ArrayRef> {
    let scalars: Vec<ScalarValue> = lists.map(|v| list_scalar(v, dt)).collect();
    if scalars.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(
            &DataType::new_list(dt.clone(), true),
        ));
    }
    ScalarValue::iter_to_array(scalars)
}

/// The scalars of list `row` of a `List` array.
pub(crate) fn list_values(a: &ArrayRef, row: usize) -> Result<Vec<ScalarValue>> {
    use datafusion::arrow::array::{Array, AsArray};
    let inner = a.as_list::<i32>().value(row);
    (0..inner.len())
        .map(|i| ScalarValue::try_from_array(&inner, i))
        .collect()
}

/// The state of aggregates that keep, per group, a list of values each paired with a number
/// (a count or an arrival sequence): a list of the values and a list of the numbers per group.
pub(crate) fn paired_lists<T>(
    per_group: &[Vec<T>],
    groups: &[usize],
    dt: &DataType,
    value: impl Fn(&T) -> ScalarValue,
    number: impl Fn(&T) -> i64,
) -> Result<Vec<ArrayRef>> {
    let entries = |g: usize| per_group.get(g).map(Vec::as_slice).unwrap_or_default();
    let vals: Vec<Vec<ScalarValue>> = groups
        .iter()
        .map(|&g| entries(g).iter().map(&value).collect())
        .collect();
    let numbers = groups
        .iter()
        .map(|&g| entries(g).iter().map(&number).collect());
    Ok(vec![
        scalar_lists(vals.iter().map(|v| v.as_slice()), dt)?,
        int_lists(numbers),
    ])
}

/// A `List(Int64)` array of one list of numbers per group.
pub(crate) fn int_lists(lists: impl Iterator<Item = Vec<i64>>) -> ArrayRef {
    Arc::new(datafusion::arrow::array::ListArray::from_iter_primitive::<
        datafusion::arrow::datatypes::Int64Type,
        _,
        _,
    >(lists.map(|v| Some(v.into_iter().map(Some)))))
}

/// The numbers of list `row` of a `List(Int64)` array.
pub(crate) fn int_list_values(a: &ArrayRef, row: usize) -> Vec<i64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    a.as_list::<i32>()
        .value(row)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

/// Builds an `ARRAY<dt>` scalar from values.
pub(crate) fn list_scalar(values: &[ScalarValue], dt: &DataType) -> ScalarValue {
    ScalarValue::List(ScalarValue::new_list_nullable(values, dt))
}

/// Every built-in aggregate function.
pub fn builtin() -> Vec<Arc<dyn AggregateFunction>> {
    vec![
        Arc::new(Count),
        Arc::new(Sum),
        Arc::new(Avg),
        Arc::new(Min),
        Arc::new(Max),
        Arc::new(CountDistinct),
        Arc::new(CollectList),
        Arc::new(CollectSet),
        Arc::new(Histogram),
        Arc::new(EarliestByOffset),
        Arc::new(LatestByOffset),
        Arc::new(TopK),
        Arc::new(TopKDistinct),
    ]
}
