//! Tumbling, hopping and cumulating window aggregation. Each row is assigned to every window
//! containing its event time; a window accepts rows until the watermark passes its end plus the grace period,
//! then its state is dropped (and, with `EMIT FINAL`, its result is emitted exactly once). Rows
//! whose windows have all closed are late: they go to the processing log, never silently lost.

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::row::OwnedRow;
use riffle_sql::ast::{Emit, WindowKind};
use riffle_sql::plan::{AggregateNode, ChangeOp, StreamSchema};

use super::aggregate_state::{AggregateState, OutRow, Source};
use super::{OpContext, Operator, ops_of};
use crate::error::Result;
use crate::processing_log::{ErrorKind, ErrorRecord};

/// The start times of the windows containing `ts`, ascending (windows never start before 0, as
/// in Kafka Streams).
pub fn window_starts(ts: i64, size: i64, advance: i64) -> Vec<i64> {
    let first = ((ts - size + advance).max(0) / advance) * advance;
    let mut out = Vec::new();
    let mut s = first;
    while s <= ts {
        if ts < s + size {
            out.push(s);
        }
        s += advance;
    }
    out
}

/// The windows `[start, end)` of a cumulating window of `size` growing by `step` that contain
/// `ts`: they all start at the enclosing multiple of `size`.
pub fn cumulate_windows(ts: i64, step: i64, size: i64) -> Vec<(i64, i64)> {
    let start = ts.div_euclid(size) * size;
    let first_end = start + ((ts - start) / step + 1) * step;
    (first_end..=start + size)
        .step_by(step as usize)
        .map(|end| (start, end))
        .collect()
}

/// How rows are assigned to windows.
#[derive(Debug, Clone, Copy)]
enum Assigner {
    /// Tumbling (`advance == size`) and hopping windows.
    Sliding { size: i64, advance: i64 },
    /// Cumulating windows.
    Cumulate { step: i64, size: i64 },
}

impl Assigner {
    fn windows(&self, ts: i64) -> Vec<(i64, i64)> {
        match *self {
            Assigner::Sliding { size, advance } => window_starts(ts, size, advance)
                .into_iter()
                .map(|s| (s, s + size))
                .collect(),
            Assigner::Cumulate { step, size } => cumulate_windows(ts, step, size),
        }
    }
}

/// Time-window aggregation.
pub struct WindowAggregateOp {
    input: StreamSchema,
    output: StreamSchema,
    state: AggregateState,
    assigner: Assigner,
    grace: i64,
    emit: Emit,
    groups: HashMap<(OwnedRow, i64, i64), usize>,
    by_end: BTreeMap<i64, Vec<usize>>,
    bounds: Vec<(i64, i64)>,
    watermark: i64,
}

impl WindowAggregateOp {
    /// Builds the operator for a tumbling, hopping or cumulating aggregate node.
    pub fn new(node: &AggregateNode) -> Result<Self> {
        let input = node.input.schema().clone();
        let ms = |d: &std::time::Duration| (d.as_millis() as i64).max(1);
        let assigner = match node.window.as_ref().map(|w| &w.kind) {
            Some(WindowKind::Tumbling { size }) => Assigner::Sliding {
                size: ms(size),
                advance: ms(size),
            },
            Some(WindowKind::Hopping { size, advance }) => Assigner::Sliding {
                size: ms(size),
                advance: ms(advance),
            },
            Some(WindowKind::Cumulate { step, size }) => Assigner::Cumulate {
                step: ms(step),
                size: ms(size),
            },
            _ => {
                return Err(crate::error::EngineError::DataFusion(
                    "internal: window aggregate without a time window".into(),
                ));
            }
        };
        Ok(WindowAggregateOp {
            state: AggregateState::new(&node.aggregates, &input)?,
            input,
            output: node.schema.clone(),
            assigner,
            grace: node.grace_ms(),
            emit: node.emit,
            groups: HashMap::new(),
            by_end: BTreeMap::new(),
            bounds: Vec::new(),
            watermark: i64::MIN,
        })
    }

    fn closed(&self, end: i64) -> bool {
        self.watermark != i64::MIN && end.saturating_add(self.grace) <= self.watermark
    }
}

impl Operator for WindowAggregateOp {
    fn name(&self) -> &'static str {
        "WindowAggregate"
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        let kc = self.input.key_count;
        let ops = ops_of(&batch, self.input.op());
        let times = batch
            .column(self.input.rowtime())
            .as_primitive::<Int64Type>()
            .clone();
        let keys = self
            .state
            .converter
            .convert_columns(&batch.columns()[..kc])?;
        let mut rows = Vec::new();
        let mut groups = Vec::new();
        let mut touched: Vec<(usize, (i64, i64))> = Vec::new();
        let mut was_live = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..batch.num_rows() {
            if ops.value(i) == ChangeOp::Delete as i8
                || ops.value(i) == ChangeOp::UpdateBefore as i8
            {
                continue;
            }
            let ts = times.value(i);
            let mut accepted = false;
            for (start, end) in self.assigner.windows(ts) {
                if self.closed(end) {
                    continue;
                }
                accepted = true;
                let key = keys.row(i).owned();
                let g = match self.groups.get(&(key.clone(), start, end)) {
                    Some(g) => *g,
                    None => {
                        let g = self.state.alloc(key.clone());
                        self.groups.insert((key, start, end), g);
                        self.by_end.entry(end).or_default().push(g);
                        if self.bounds.len() <= g {
                            self.bounds.resize(g + 1, (0, 0));
                        }
                        self.bounds[g] = (start, end);
                        g
                    }
                };
                rows.push(i as u32);
                groups.push(g);
                if seen.insert(g) {
                    touched.push((g, (start, end)));
                    was_live.push(self.state.live[g]);
                }
            }
            if !accepted {
                let offset = batch
                    .column(self.input.offset())
                    .as_primitive::<Int64Type>()
                    .value(i);
                let mut e = ErrorRecord::new(
                    &ctx.query,
                    ErrorKind::LateRow,
                    format!(
                        "row at event time {ts} arrived after its window(s) closed (watermark {}, grace {} ms)",
                        self.watermark, self.grace
                    ),
                );
                e.rowtime = Some(ts);
                e.offset = Some(offset);
                ctx.report(e);
            }
        }
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let live: Vec<usize> = touched
            .iter()
            .zip(&was_live)
            .filter(|(_, l)| **l)
            .map(|((g, _), _)| *g)
            .collect();
        let old = if self.emit == Emit::Changes {
            self.state.evaluate(&live)?
        } else {
            vec![]
        };
        let rows = UInt32Array::from(rows);
        self.state
            .update(&batch, kc, &rows, &groups, None, &times)?;
        ctx.metrics.state_bytes.store(
            self.state.size() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if self.emit == Emit::Final {
            return Ok(vec![]);
        }
        let touched_groups: Vec<usize> = touched.iter().map(|(g, _)| *g).collect();
        let new = self.state.evaluate(&touched_groups)?;
        let out = self.state.changes(&touched, &was_live);
        Ok(vec![self.state.build(&self.output, &out, &old, &new)?])
    }

    fn on_watermark(&mut self, wm: i64, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.watermark = wm;
        let limit = wm.saturating_sub(self.grace);
        let closing: Vec<i64> = self.by_end.range(..=limit).map(|(e, _)| *e).collect();
        if closing.is_empty() {
            return Ok(vec![]);
        }
        let mut finals: Vec<(usize, (i64, i64))> = Vec::new();
        for end in closing {
            for g in self.by_end.remove(&end).unwrap_or_default() {
                finals.push((g, self.bounds[g]));
            }
        }
        let mut out = Vec::new();
        if self.emit == Emit::Final && !finals.is_empty() {
            let groups: Vec<usize> = finals.iter().map(|(g, _)| *g).collect();
            let new = self.state.evaluate(&groups)?;
            let rows: Vec<OutRow> = finals
                .iter()
                .enumerate()
                .map(|(j, &(g, window))| OutRow {
                    group: g,
                    op: ChangeOp::Insert,
                    values: Source::New(j),
                    window,
                    rowtime: self.state.max_ts[g],
                })
                .collect();
            out.push(self.state.build(&self.output, &rows, &[], &new)?);
        }
        for (g, (start, end)) in finals {
            if let Some(key) = self.state.keys[g].clone() {
                self.groups.remove(&(key, start, end));
            }
            self.state.release(g);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{cumulate_windows, window_starts};

    #[test]
    fn assigns_cumulating_windows() {
        assert_eq!(
            cumulate_windows(2500, 1000, 4000),
            vec![(0, 3000), (0, 4000)]
        );
        assert_eq!(cumulate_windows(3999, 1000, 4000), vec![(0, 4000)]);
        assert_eq!(
            cumulate_windows(4000, 1000, 4000),
            vec![(4000, 5000), (4000, 6000), (4000, 7000), (4000, 8000)]
        );
    }

    #[test]
    fn assigns_hopping_and_tumbling_windows() {
        assert_eq!(window_starts(10009, 30000, 30000), vec![0]);
        assert_eq!(window_starts(10009, 30000, 10000), vec![0, 10000]);
        assert_eq!(
            window_starts(35000, 30000, 10000),
            vec![10000, 20000, 30000]
        );
        assert_eq!(window_starts(0, 5000, 1000), vec![0]);
    }
}
