//! `MIN` and `MAX`: the smallest / largest non-NULL value of a comparable column.

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};

use super::{AggregateFunction, GroupsAggregator, ensure, scalars_to_array};

fn check(dt: Option<&DataType>, name: &str) -> Result<DataType> {
    match dt {
        Some(
            dt @ (DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _)
            | DataType::Utf8
            | DataType::Binary
            | DataType::Date32
            | DataType::Time32(_)
            | DataType::Timestamp(_, _)
            | DataType::Boolean),
        ) => Ok(dt.clone()),
        Some(DataType::Null) => Ok(DataType::Int32),
        Some(other) => exec_err!("{name} does not accept values of type {other}"),
        None => exec_err!("{name} takes one argument"),
    }
}

/// `MIN`.
#[derive(Debug)]
pub struct Min;
/// `MAX`.
#[derive(Debug)]
pub struct Max;

macro_rules! extreme {
    ($t:ident, $name:literal, $desc:literal, $keep_new:expr) => {
        impl AggregateFunction for $t {
            fn name(&self) -> &'static str {
                $name
            }
            fn description(&self) -> &'static str {
                $desc
            }
            fn return_type(&self, args: &[DataType], _: &[ScalarValue]) -> Result<DataType> {
                check(args.first(), $name)
            }
            fn create(
                &self,
                args: &[DataType],
                _: &[ScalarValue],
            ) -> Result<Box<dyn GroupsAggregator>> {
                let dt = check(args.first(), $name)?;
                Ok(Box::new(ExtremeState {
                    dt,
                    values: Vec::new(),
                    keep_new: $keep_new,
                }))
            }
            fn supports_retract(&self) -> bool {
                false
            }
        }
    };
}

extreme!(
    Min,
    "MIN",
    "Smallest non-NULL value",
    |o: std::cmp::Ordering| o.is_lt()
);
extreme!(
    Max,
    "MAX",
    "Largest non-NULL value",
    |o: std::cmp::Ordering| o.is_gt()
);

#[derive(Debug)]
struct ExtremeState {
    dt: DataType,
    values: Vec<Option<ScalarValue>>,
    keep_new: fn(std::cmp::Ordering) -> bool,
}

impl ExtremeState {
    fn offer(&mut self, g: usize, v: ScalarValue) {
        ensure(&mut self.values, g, None);
        let replace = match &self.values[g] {
            None => true,
            Some(cur) => v.partial_cmp(cur).is_some_and(self.keep_new),
        };
        if replace {
            self.values[g] = Some(v);
        }
    }
}

impl GroupsAggregator for ExtremeState {
    fn update(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        _retract: Option<&BooleanArray>,
    ) -> Result<()> {
        let Some(col) = values.first() else {
            return exec_err!("missing argument");
        };
        let col = datafusion::arrow::compute::cast(col, &self.dt)?;
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.values, g, None);
            if col.is_valid(i) {
                let v = ScalarValue::try_from_array(&col, i)?;
                self.offer(g, v);
            }
        }
        Ok(())
    }
    fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef> {
        scalars_to_array(
            groups
                .iter()
                .map(|&g| self.values.get(g).cloned().flatten())
                .collect(),
            &self.dt,
        )
    }
    fn merge(&mut self, into: usize, from: usize) -> Result<()> {
        ensure(&mut self.values, into.max(from), None);
        if let Some(v) = self.values[from].clone() {
            self.offer(into, v);
        }
        Ok(())
    }
    fn reset(&mut self, group: usize) {
        if let Some(v) = self.values.get_mut(group) {
            *v = None;
        }
    }
    fn size(&self) -> usize {
        self.values.len() * 48
    }
    fn state_types(&self) -> Vec<DataType> {
        vec![self.dt.clone()]
    }
    fn state(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(groups)?])
    }
    fn restore(&mut self, groups: &[usize], state: &[ArrayRef]) -> Result<()> {
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.values, g, None);
            self.values[g] = if state[0].is_valid(i) {
                Some(ScalarValue::try_from_array(&state[0], i)?)
            } else {
                None
            };
        }
        Ok(())
    }
}
