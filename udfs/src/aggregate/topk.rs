//! `TOPK(x, k)` and `TOPKDISTINCT(x, k)`: the `k` largest values of a group, largest first.

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};

use super::{
    AggregateFunction, GroupsAggregator, ensure, list_scalar, list_values, scalars_to_array,
};

fn k_of(name: &str, params: &[ScalarValue]) -> Result<usize> {
    match params.first() {
        Some(ScalarValue::Int32(Some(k))) if *k > 0 => Ok(*k as usize),
        Some(ScalarValue::Int64(Some(k))) if *k > 0 => Ok(*k as usize),
        _ => exec_err!("{name}(column, k) needs a positive integer literal k"),
    }
}

#[derive(Debug)]
struct TopKState {
    dt: DataType,
    k: usize,
    distinct: bool,
    values: Vec<Vec<ScalarValue>>,
}

impl TopKState {
    fn offer(&mut self, g: usize, v: ScalarValue) {
        let vals = &mut self.values[g];
        if self.distinct && vals.contains(&v) {
            return;
        }
        let pos = vals
            .iter()
            .position(|x| v.partial_cmp(x).is_some_and(|o| o.is_gt()))
            .unwrap_or(vals.len());
        vals.insert(pos, v);
        vals.truncate(self.k);
    }
}

impl GroupsAggregator for TopKState {
    fn update(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        _retract: Option<&BooleanArray>,
    ) -> Result<()> {
        let Some(col) = values.first() else {
            return exec_err!("missing argument");
        };
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.values, g, Vec::new());
            if col.is_valid(i) {
                self.offer(g, ScalarValue::try_from_array(col, i)?);
            }
        }
        Ok(())
    }
    fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef> {
        let out = groups
            .iter()
            .map(|&g| {
                Some(list_scalar(
                    self.values.get(g).map(|v| v.as_slice()).unwrap_or(&[]),
                    &self.dt,
                ))
            })
            .collect();
        scalars_to_array(out, &DataType::new_list(self.dt.clone(), true))
    }
    fn merge(&mut self, into: usize, from: usize) -> Result<()> {
        ensure(&mut self.values, into.max(from), Vec::new());
        for v in self.values[from].clone() {
            self.offer(into, v);
        }
        Ok(())
    }
    fn reset(&mut self, group: usize) {
        if let Some(v) = self.values.get_mut(group) {
            v.clear();
        }
    }
    fn size(&self) -> usize {
        self.values.iter().map(|v| 24 + v.len() * 48).sum()
    }
    fn state_types(&self) -> Vec<DataType> {
        vec![DataType::new_list(self.dt.clone(), true)]
    }
    fn state(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(groups)?])
    }
    fn restore(&mut self, groups: &[usize], state: &[ArrayRef]) -> Result<()> {
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.values, g, Vec::new());
            self.values[g] = list_values(&state[0], i)?;
        }
        Ok(())
    }
}

macro_rules! topk_fn {
    ($t:ident, $name:literal, $desc:literal, $distinct:expr) => {
        #[doc = $desc]
        #[derive(Debug)]
        pub struct $t;

        impl AggregateFunction for $t {
            fn name(&self) -> &'static str {
                $name
            }
            fn description(&self) -> &'static str {
                $desc
            }
            fn return_type(&self, args: &[DataType], params: &[ScalarValue]) -> Result<DataType> {
                let Some(dt) = args.first() else {
                    return exec_err!("{} takes a column", $name);
                };
                k_of($name, params)?;
                Ok(DataType::new_list(dt.clone(), true))
            }
            fn create(
                &self,
                args: &[DataType],
                params: &[ScalarValue],
            ) -> Result<Box<dyn GroupsAggregator>> {
                let Some(dt) = args.first() else {
                    return exec_err!("{} takes a column", $name);
                };
                Ok(Box::new(TopKState {
                    dt: dt.clone(),
                    k: k_of($name, params)?,
                    distinct: $distinct,
                    values: Vec::new(),
                }))
            }
            fn supports_retract(&self) -> bool {
                false
            }
        }
    };
}

topk_fn!(
    TopK,
    "TOPK",
    "The k largest values of a group, largest first",
    false
);
topk_fn!(
    TopKDistinct,
    "TOPKDISTINCT",
    "The k largest distinct values of a group, largest first",
    true
);
