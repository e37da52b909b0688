//! `SUM` and `AVG` over numbers. ksqlDB semantics: `SUM` keeps the argument's type and starts at
//! zero (NULLs are skipped), `AVG` returns DOUBLE (DECIMAL for DECIMAL input) and NULL when empty.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};

use super::{AggregateFunction, GroupsAggregator, ensure, is_retract};

/// Accumulates numbers of one of three representations.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Repr {
    Int,
    Float,
    Decimal(u8, i8),
}

fn repr_of(dt: &DataType, name: &str) -> Result<Repr> {
    Ok(match dt {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Repr::Int,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => Repr::Int,
        DataType::Float32 | DataType::Float64 => Repr::Float,
        DataType::Decimal128(p, s) => Repr::Decimal(*p, *s),
        DataType::Null => Repr::Int,
        other => return exec_err!("{name} does not accept values of type {other}"),
    })
}

#[derive(Debug)]
struct NumState {
    repr: Repr,
    ints: Vec<i128>,
    floats: Vec<f64>,
    counts: Vec<i64>,
}

impl NumState {
    fn new(repr: Repr) -> Self {
        NumState {
            repr,
            ints: Vec::new(),
            floats: Vec::new(),
            counts: Vec::new(),
        }
    }

    fn update(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        retract: Option<&BooleanArray>,
    ) -> Result<()> {
        let Some(col) = values.first() else {
            return exec_err!("missing argument");
        };
        if let Some(&max) = groups.iter().max() {
            ensure(&mut self.ints, max, 0);
            ensure(&mut self.floats, max, 0.0);
            ensure(&mut self.counts, max, 0);
        }
        match self.repr {
            Repr::Int => {
                let c = cast(col, &DataType::Int64)?;
                let a = c.as_primitive::<Int64Type>();
                for (i, &g) in groups.iter().enumerate() {
                    if a.is_valid(i) {
                        let sign = if is_retract(retract, i) { -1 } else { 1 };
                        self.ints[g] += sign as i128 * a.value(i) as i128;
                        self.counts[g] += sign;
                    }
                }
            }
            Repr::Float => {
                let c = cast(col, &DataType::Float64)?;
                let a = c.as_primitive::<Float64Type>();
                for (i, &g) in groups.iter().enumerate() {
                    if a.is_valid(i) {
                        let sign = if is_retract(retract, i) { -1 } else { 1 };
                        self.floats[g] += sign as f64 * a.value(i);
                        self.counts[g] += sign;
                    }
                }
            }
            Repr::Decimal(p, s) => {
                let c = cast(col, &DataType::Decimal128(p, s))?;
                let a = c
                    .as_any()
                    .downcast_ref::<Decimal128Array>()
                    .ok_or_else(|| {
                        datafusion::error::DataFusionError::Execution("expected decimals".into())
                    })?;
                for (i, &g) in groups.iter().enumerate() {
                    if a.is_valid(i) {
                        let sign = if is_retract(retract, i) { -1 } else { 1 };
                        self.ints[g] += sign as i128 * a.value(i);
                        self.counts[g] += sign;
                    }
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, into: usize, from: usize) {
        let m = into.max(from);
        ensure(&mut self.ints, m, 0);
        ensure(&mut self.floats, m, 0.0);
        ensure(&mut self.counts, m, 0);
        self.ints[into] += self.ints[from];
        self.floats[into] += self.floats[from];
        self.counts[into] += self.counts[from];
    }

    fn state_types() -> Vec<DataType> {
        vec![
            DataType::Decimal128(38, 0),
            DataType::Float64,
            DataType::Int64,
        ]
    }

    fn state(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        Ok(vec![
            Arc::new(
                Decimal128Array::from_iter_values(
                    groups
                        .iter()
                        .map(|&g| self.ints.get(g).copied().unwrap_or(0)),
                )
                .with_precision_and_scale(38, 0)?,
            ),
            Arc::new(Float64Array::from_iter_values(
                groups
                    .iter()
                    .map(|&g| self.floats.get(g).copied().unwrap_or(0.0)),
            )),
            Arc::new(Int64Array::from_iter_values(
                groups
                    .iter()
                    .map(|&g| self.counts.get(g).copied().unwrap_or(0)),
            )),
        ])
    }

    fn restore(&mut self, groups: &[usize], state: &[ArrayRef]) -> Result<()> {
        let (Some(ints), Some(floats), Some(counts)) = (
            state[0].as_any().downcast_ref::<Decimal128Array>(),
            state[1].as_any().downcast_ref::<Float64Array>(),
            state[2].as_any().downcast_ref::<Int64Array>(),
        ) else {
            return exec_err!("SUM/AVG state has unexpected column types");
        };
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.ints, g, 0);
            ensure(&mut self.floats, g, 0.0);
            ensure(&mut self.counts, g, 0);
            self.ints[g] = ints.value(i);
            self.floats[g] = floats.value(i);
            self.counts[g] = counts.value(i);
        }
        Ok(())
    }

    fn reset(&mut self, g: usize) {
        if g < self.counts.len() {
            self.ints[g] = 0;
            self.floats[g] = 0.0;
            self.counts[g] = 0;
        }
    }
}

/// `SUM`.
#[derive(Debug)]
pub struct Sum;

impl AggregateFunction for Sum {
    fn name(&self) -> &'static str {
        "SUM"
    }
    fn description(&self) -> &'static str {
        "Sums a numeric column; NULLs are skipped and an empty sum is 0"
    }
    fn return_type(&self, args: &[DataType], _: &[ScalarValue]) -> Result<DataType> {
        let Some(dt) = args.first() else {
            return exec_err!("SUM takes one argument");
        };
        Ok(match repr_of(dt, "SUM")? {
            Repr::Int => match dt {
                DataType::Int64 | DataType::UInt32 | DataType::UInt64 => DataType::Int64,
                DataType::Null => DataType::Int32,
                _ => DataType::Int32,
            },
            Repr::Float => DataType::Float64,
            Repr::Decimal(p, s) => DataType::Decimal128(p, s),
        })
    }
    fn create(
        &self,
        args: &[DataType],
        params: &[ScalarValue],
    ) -> Result<Box<dyn GroupsAggregator>> {
        let out = self.return_type(args, params)?;
        let repr = repr_of(&args[0], "SUM")?;
        Ok(Box::new(SumState {
            state: NumState::new(repr),
            out,
        }))
    }
}

#[derive(Debug)]
struct SumState {
    state: NumState,
    out: DataType,
}

impl GroupsAggregator for SumState {
    fn update(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        retract: Option<&BooleanArray>,
    ) -> Result<()> {
        self.state.update(values, groups, retract)
    }
    fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef> {
        let st = &self.state;
        Ok(match (&st.repr, &self.out) {
            (Repr::Int, DataType::Int32) => Arc::new(Int32Array::from_iter_values(
                groups
                    .iter()
                    .map(|&g| st.ints.get(g).copied().unwrap_or(0) as i32),
            )),
            (Repr::Int, _) => Arc::new(Int64Array::from_iter_values(
                groups
                    .iter()
                    .map(|&g| st.ints.get(g).copied().unwrap_or(0) as i64),
            )),
            (Repr::Float, _) => Arc::new(Float64Array::from_iter_values(
                groups
                    .iter()
                    .map(|&g| st.floats.get(g).copied().unwrap_or(0.0)),
            )),
            (Repr::Decimal(p, s), _) => Arc::new(
                Decimal128Array::from_iter_values(
                    groups.iter().map(|&g| st.ints.get(g).copied().unwrap_or(0)),
                )
                .with_precision_and_scale(*p, *s)?,
            ),
        })
    }
    fn merge(&mut self, into: usize, from: usize) -> Result<()> {
        self.state.merge(into, from);
        Ok(())
    }
    fn reset(&mut self, group: usize) {
        self.state.reset(group)
    }
    fn size(&self) -> usize {
        self.state.counts.len() * 32
    }
    fn state_types(&self) -> Vec<DataType> {
        NumState::state_types()
    }
    fn state(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        self.state.state(groups)
    }
    fn restore(&mut self, groups: &[usize], state: &[ArrayRef]) -> Result<()> {
        self.state.restore(groups, state)
    }
}

/// `AVG`.
#[derive(Debug)]
pub struct Avg;

impl AggregateFunction for Avg {
    fn name(&self) -> &'static str {
        "AVG"
    }
    fn description(&self) -> &'static str {
        "Average of a numeric column, ignoring NULLs"
    }
    fn return_type(&self, args: &[DataType], _: &[ScalarValue]) -> Result<DataType> {
        let Some(dt) = args.first() else {
            return exec_err!("AVG takes one argument");
        };
        repr_of(dt, "AVG")?;
        Ok(DataType::Float64)
    }
    fn create(&self, args: &[DataType], _: &[ScalarValue]) -> Result<Box<dyn GroupsAggregator>> {
        let repr = repr_of(&args[0], "AVG")?;
        Ok(Box::new(AvgState {
            state: NumState::new(repr),
        }))
    }
}

#[derive(Debug)]
struct AvgState {
    state: NumState,
}

impl GroupsAggregator for AvgState {
    fn update(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        retract: Option<&BooleanArray>,
    ) -> Result<()> {
        self.state.update(values, groups, retract)
    }
    fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef> {
        let st = &self.state;
        let scale = match st.repr {
            Repr::Decimal(_, s) => 10f64.powi(s as i32),
            _ => 1.0,
        };
        Ok(Arc::new(Float64Array::from_iter(groups.iter().map(|&g| {
            let n = st.counts.get(g).copied().unwrap_or(0);
            if n == 0 {
                return None;
            }
            let total = match st.repr {
                Repr::Float => st.floats[g],
                _ => st.ints[g] as f64 / scale,
            };
            Some(total / n as f64)
        }))))
    }
    fn merge(&mut self, into: usize, from: usize) -> Result<()> {
        self.state.merge(into, from);
        Ok(())
    }
    fn reset(&mut self, group: usize) {
        self.state.reset(group)
    }
    fn size(&self) -> usize {
        self.state.counts.len() * 32
    }
    fn state_types(&self) -> Vec<DataType> {
        NumState::state_types()
    }
    fn state(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        self.state.state(groups)
    }
    fn restore(&mut self, groups: &[usize], state: &[ArrayRef]) -> Result<()> {
        self.state.restore(groups, state)
    }
}
