//! Collection aggregates: `COLLECT_LIST`, `COLLECT_SET`, `COUNT_DISTINCT` and `HISTOGRAM`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};

use super::{
    AggregateFunction, GroupsAggregator, ensure, int_list_values, is_retract, list_scalar,
    list_values, paired_lists, scalars_to_array,
};

/// Largest collection kept per group (ksqlDB's `ksql.functions.collect_list.limit` default).
pub const COLLECTION_LIMIT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    List,
    Set,
    CountDistinct,
    Histogram,
}

#[derive(Debug)]
struct CollectState {
    mode: Mode,
    dt: DataType,
    values: Vec<Vec<(ScalarValue, i64)>>,
}

impl CollectState {
    fn add(&mut self, g: usize, v: ScalarValue, retract: bool) {
        let vals = &mut self.values[g];
        match self.mode {
            Mode::List => {
                if retract {
                    if let Some(pos) = vals.iter().position(|(x, _)| x == &v) {
                        vals.remove(pos);
                    }
                } else if vals.len() < COLLECTION_LIMIT {
                    vals.push((v, 1));
                }
            }
            Mode::Set | Mode::CountDistinct | Mode::Histogram => {
                if let Some(pos) = vals.iter().position(|(x, _)| x == &v) {
                    vals[pos].1 += if retract { -1 } else { 1 };
                    if vals[pos].1 <= 0 {
                        vals.remove(pos);
                    }
                } else if !retract && vals.len() < COLLECTION_LIMIT {
                    vals.push((v, 1));
                }
            }
        }
    }
}

impl GroupsAggregator for CollectState {
    fn update(
        &mut self,
        values: &[ArrayRef],
        groups: &[usize],
        retract: Option<&BooleanArray>,
    ) -> Result<()> {
        let Some(col) = values.first() else {
            return exec_err!("missing argument");
        };
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.values, g, Vec::new());
            let keep_nulls = matches!(self.mode, Mode::List | Mode::Set);
            if col.is_null(i) && !keep_nulls {
                continue;
            }
            let v = ScalarValue::try_from_array(col, i)?;
            self.add(g, v, is_retract(retract, i));
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[usize]) -> Result<ArrayRef> {
        match self.mode {
            Mode::CountDistinct => {
                Ok(Arc::new(Int64Array::from_iter_values(groups.iter().map(
                    |&g| self.values.get(g).map(|v| v.len() as i64).unwrap_or(0),
                ))))
            }
            Mode::Histogram => {
                let out_type = histogram_type();
                let mut out = Vec::with_capacity(groups.len());
                for &g in groups {
                    let entries = self.values.get(g).cloned().unwrap_or_default();
                    let keys: Vec<ScalarValue> = entries.iter().map(|(k, _)| k.clone()).collect();
                    let counts: Vec<ScalarValue> = entries
                        .iter()
                        .map(|(_, c)| ScalarValue::Int64(Some(*c)))
                        .collect();
                    out.push(Some(crate::value::map_scalar(
                        &keys,
                        &counts,
                        &DataType::Utf8,
                        &DataType::Int64,
                    )?));
                }
                scalars_to_array(out, &out_type)
            }
            Mode::List | Mode::Set => {
                let out_type = DataType::new_list(self.dt.clone(), true);
                let mut out = Vec::with_capacity(groups.len());
                for &g in groups {
                    let vals: Vec<ScalarValue> = self
                        .values
                        .get(g)
                        .map(|v| v.iter().map(|(x, _)| x.clone()).collect())
                        .unwrap_or_default();
                    out.push(Some(list_scalar(&vals, &self.dt)));
                }
                scalars_to_array(out, &out_type)
            }
        }
    }

    fn merge(&mut self, into: usize, from: usize) -> Result<()> {
        ensure(&mut self.values, into.max(from), Vec::new());
        let moved = self.values[from].clone();
        for (v, c) in moved {
            for _ in 0..c.max(1) {
                self.add(into, v.clone(), false);
            }
        }
        Ok(())
    }

    fn reset(&mut self, group: usize) {
        if let Some(v) = self.values.get_mut(group) {
            v.clear();
        }
    }

    fn size(&self) -> usize {
        self.values.iter().map(|v| 24 + v.len() * 64).sum()
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
            |(x, _)| x.clone(),
            |(_, c)| *c,
        )
    }

    fn restore(&mut self, groups: &[usize], state: &[ArrayRef]) -> Result<()> {
        for (i, &g) in groups.iter().enumerate() {
            ensure(&mut self.values, g, Vec::new());
            let vals = list_values(&state[0], i)?;
            let counts = int_list_values(&state[1], i);
            self.values[g] = vals.into_iter().zip(counts).collect();
        }
        Ok(())
    }
}

fn histogram_type() -> DataType {
    crate::value::map_type(DataType::Utf8, DataType::Int64)
}

macro_rules! collect_fn {
    ($t:ident, $name:literal, $desc:literal, $mode:expr, $ret:expr) => {
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
            fn return_type(&self, args: &[DataType], _: &[ScalarValue]) -> Result<DataType> {
                let Some(dt) = args.first() else {
                    return exec_err!("{} takes one argument", $name);
                };
                let f: fn(&DataType) -> DataType = $ret;
                Ok(f(dt))
            }
            fn create(
                &self,
                args: &[DataType],
                _: &[ScalarValue],
            ) -> Result<Box<dyn GroupsAggregator>> {
                let Some(dt) = args.first() else {
                    return exec_err!("{} takes one argument", $name);
                };
                Ok(Box::new(CollectState {
                    mode: $mode,
                    dt: dt.clone(),
                    values: Vec::new(),
                }))
            }
        }
    };
}

collect_fn!(
    CollectList,
    "COLLECT_LIST",
    "Collects the values of a group into an array, in arrival order",
    Mode::List,
    |dt| DataType::new_list(dt.clone(), true)
);
collect_fn!(
    CollectSet,
    "COLLECT_SET",
    "Collects the distinct values of a group into an array",
    Mode::Set,
    |dt| DataType::new_list(dt.clone(), true)
);
collect_fn!(
    CountDistinct,
    "COUNT_DISTINCT",
    "Counts the distinct non-NULL values of a group",
    Mode::CountDistinct,
    |_| DataType::Int64
);
collect_fn!(
    Histogram,
    "HISTOGRAM",
    "Counts how often each string value occurs in a group",
    Mode::Histogram,
    |_| histogram_type()
);
