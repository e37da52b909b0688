//! `EARLIEST_BY_OFFSET(x [, n] [, ignoreNulls])` and `LATEST_BY_OFFSET(…)`: the first or last
//! value(s) of a group in arrival order. With `n` the result is an array of up to `n` values.

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};

use super::{
    AggregateFunction, GroupsAggregator, ensure, int_list_values, list_scalar, list_values,
    paired_lists, scalars_to_array,
};

/// Parsed literal parameters: how many values (None = a single value) and whether NULLs count.
fn params_of(name: &str, params: &[ScalarValue]) -> Result<(Option<usize>, bool)> {
    let mut n = None;
    let mut ignore_nulls = true;
    for p in params {
        match p {
            ScalarValue::Boolean(Some(b)) => ignore_nulls = *b,
            ScalarValue::Int32(Some(v)) if *v > 0 => n = Some(*v as usize),
            ScalarValue::Int64(Some(v)) if *v > 0 => n = Some(*v as usize),
            other => {
                return exec_err!(
                    "{name}: unexpected parameter {other}; expected a positive count or a boolean"
                );
            }
        }
    }
    Ok((n, ignore_nulls))
}

#[derive(Debug)]
struct OffsetState {
    dt: DataType,
    n: Option<usize>,
    ignore_nulls: bool,
    latest: bool,
    seq: u64,
    values: Vec<Vec<(u64, ScalarValue)>>,
}

impl OffsetState {
    fn capacity(&self) -> usize {
        self.n.unwrap_or(1)
    }

    fn offer(&mut self, g: usize, seq: u64, v: ScalarValue) {
        let cap = self.capacity();
        let vals = &mut self.values[g];
        if self.latest {
            vals.push((seq, v));
            if vals.len() > cap {
                vals.remove(0);
            }
        } else if vals.len() < cap {
            vals.push((seq, v));
        }
    }
}

impl GroupsAggregator for OffsetState {
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
            if self.ignore_nulls && col.is_null(i) {
                continue;
            }
            let v = ScalarValue::try_from_array(col, i)?;
            self.seq += 1;
            let seq = self.seq;
            self.offer(g, seq, v);
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef> {
        let mut out = Vec::with_capacity(groups.len());
        for &g in groups {
            let vals = self.values.get(g);
            match self.n {
                None => out.push(vals.and_then(|v| v.first()).map(|(_, x)| x.clone())),
                Some(_) => {
                    let items: Vec<ScalarValue> = vals
                        .map(|v| v.iter().map(|(_, x)| x.clone()).collect())
                        .unwrap_or_default();
                    out.push(Some(list_scalar(&items, &self.dt)));
                }
            }
        }
        let dt = match self.n {
            None => self.dt.clone(),
            Some(_) => DataType::new_list(self.dt.clone(), true),
        };
        scalars_to_array(out, &dt)
    }

    fn merge(&mut self, into: usize, from: usize) -> Result<()> {
        ensure(&mut self.values, into.max(from), Vec::new());
        let mut all = self.values[into].clone();
        all.extend(self.values[from].iter().cloned());
        all.sort_by_key(|(s, _)| *s);
        let cap = self.capacity();
        if all.len() > cap {
            if self.latest {
                all.drain(..all.len() - cap);
            } else {
                all.truncate(cap);
            }
        }
        self.values[into] = all;
        Ok(())
    }

    fn reset(&mut self, group: usize) {
        if let Some(v) = self.values.get_mut(group) {
            v.clear();
        }
    }

    fn size(&self) -> usize {
        self.values.iter().map(|v| 24 + v.len() * 72).sum()
    }

    fn state_types(&self) -> Vec<DataType> {
        vec![
            DataType::new_list(self.dt.clone(), true),
            DataType::new_list(DataType::Int64, true),
        ]
    }

    fn state(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        paired_lists(
            &self.values,
            groups,
            &self.dt,
            |(_, x)| x.clone(),
            |(s, _)| *s as i64,
        )
    }

    fn restore(&mut self, groups: &[usize], state: &[ArrayRef]) -> Result<()> {
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.values, g, Vec::new());
            let vals = list_values(&state[0], i)?;
            let seqs = int_list_values(&state[1], i);
            if let Some(m) = seqs.iter().max() {
                self.seq = self.seq.max(*m as u64);
            }
            self.values[g] = seqs.into_iter().map(|s| s as u64).zip(vals).collect();
        }
        Ok(())
    }
}

macro_rules! offset_fn {
    ($t:ident, $name:literal, $desc:literal, $latest:expr) => {
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
                let (n, _) = params_of($name, params)?;
                Ok(match n {
                    None => dt.clone(),
                    Some(_) => DataType::new_list(dt.clone(), true),
                })
            }
            fn create(
                &self,
                args: &[DataType],
                params: &[ScalarValue],
            ) -> Result<Box<dyn GroupsAggregator>> {
                let Some(dt) = args.first() else {
                    return exec_err!("{} takes a column", $name);
                };
                let (n, ignore_nulls) = params_of($name, params)?;
                Ok(Box::new(OffsetState {
                    dt: dt.clone(),
                    n,
                    ignore_nulls,
                    latest: $latest,
                    seq: 0,
                    values: Vec::new(),
                }))
            }
            fn supports_retract(&self) -> bool {
                false
            }
        }
    };
}

offset_fn!(
    EarliestByOffset,
    "EARLIEST_BY_OFFSET",
    "The first value(s) of a group in arrival order",
    false
);
offset_fn!(
    LatestByOffset,
    "LATEST_BY_OFFSET",
    "The last value(s) of a group in arrival order",
    true
);
