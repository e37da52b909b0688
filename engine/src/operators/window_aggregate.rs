//! Tumbling, hopping and cumulating window aggregation. Each row is assigned to every window
//! containing its event time; a window accepts rows until the watermark passes its end plus the grace period,
//! then its state is dropped (and, with `EMIT FINAL`, its result is emitted exactly once). Rows
//! whose windows have all closed are late: they go to the processing log, never silently lost.
//!
//! With checkpoints, the windows changed since the last barrier are written to the query's store
//! at each checkpoint barrier, keyed by window end, start and key, so closed windows expire with
//! one range delete; the operator's watermark is stored with them.

use std::collections::{BTreeMap, HashMap, HashSet};

use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::row::OwnedRow;
use riffle_sql::ast::{Emit, WindowKind};
use riffle_sql::plan::{AggregateNode, ChangeOp, StreamSchema};

use super::aggregate_state::{AggregateState, OutRow, Source};
use super::{OpContext, Operator, OperatorState, ops_of};
use crate::error::{EngineError, Result};
use crate::processing_log::{ErrorKind, ErrorRecord};
use crate::runtime::Barrier;
use crate::state::{RowCodec, StateTable};

/// Big-endian bytes of `v` that sort like the signed number.
pub fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The number whose [`ordered_i64`] bytes these are.
pub fn from_ordered_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

/// Key of a window's state: end, start, then the group key.
fn window_key(end: i64, start: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + key.len());
    k.extend_from_slice(&ordered_i64(end));
    k.extend_from_slice(&ordered_i64(start));
    k.extend_from_slice(key);
    k
}

/// Persistence of an aggregation's windows in the state store.
pub struct WindowStore {
    store: OperatorState,
    windows: StateTable,
    meta: StateTable,
    codec: Option<RowCodec>,
    /// Groups changed since the last write.
    pub dirty: HashSet<usize>,
    /// Windows ending at or before this closed since the last write.
    pub closed_upto: Option<i64>,
}

impl WindowStore {
    /// The window tables of an operator.
    pub fn new(store: OperatorState) -> Self {
        WindowStore {
            windows: store.table("windows"),
            meta: store.table("meta"),
            store,
            codec: None,
            dirty: HashSet::new(),
            closed_upto: None,
        }
    }

    /// Whether state is written (the query takes checkpoints).
    pub fn active(&self) -> bool {
        self.store.checkpoints()
    }

    fn codec(&mut self, state: &AggregateState) -> Result<&RowCodec> {
        if self.codec.is_none() {
            self.codec = Some(state.codec()?);
        }
        self.codec
            .as_ref()
            .ok_or_else(|| EngineError::DataFusion("internal: no codec".into()))
    }

    /// Reads stored windows back: calls `add(key, start, end)` for each, which returns the group
    /// slot to fill. Returns the stored watermark.
    pub fn restore(
        &mut self,
        state: &mut AggregateState,
        mut add: impl FnMut(&mut AggregateState, OwnedRow, i64, i64) -> usize,
    ) -> Result<Option<i64>> {
        if !self.store.restored() {
            return Ok(None);
        }
        let entries = self.windows.scan()?;
        let mut groups = Vec::with_capacity(entries.len());
        for (k, _) in &entries {
            if k.len() < 16 {
                return Err(EngineError::DataFusion("damaged window state key".into()));
            }
            let end = from_ordered_i64(&k[0..8]);
            let start = from_ordered_i64(&k[8..16]);
            let key = state.key_from_bytes(&k[16..]);
            groups.push(add(state, key, start, end));
        }
        let values: Vec<&[u8]> = entries.iter().map(|(_, v)| v.as_slice()).collect();
        self.codec(state)?;
        if let Some(codec) = self.codec.as_ref() {
            state.decode_groups(codec, &groups, &values)?;
        }
        let wm = self.meta.get_many(&[b"watermark"])?;
        Ok(wm
            .into_iter()
            .next()
            .flatten()
            .filter(|v| v.len() == 8)
            .map(|v| from_ordered_i64(&v)))
    }

    /// Writes what changed: closed windows expire, changed ones are stored, with the watermark.
    pub fn write(
        &mut self,
        state: &AggregateState,
        bounds: &[(i64, i64)],
        watermark: i64,
    ) -> Result<()> {
        if let Some(upto) = self.closed_upto.take() {
            self.windows
                .delete_range(&ordered_i64(i64::MIN), &ordered_i64(upto.saturating_add(1)))?;
        }
        let groups: Vec<usize> = self
            .dirty
            .drain()
            .filter(|g| state.keys[*g].is_some())
            .collect();
        self.codec(state)?;
        let Some(codec) = self.codec.as_ref() else {
            return Ok(());
        };
        let values = state.encode_groups(codec, &groups)?;
        let keys: Vec<Vec<u8>> = groups
            .iter()
            .map(|&g| {
                let (start, end) = bounds[g];
                let key = state.keys[g].as_ref().map(|k| k.as_ref()).unwrap_or(&[]);
                window_key(end, start, key)
            })
            .collect();
        self.windows.write(
            keys.iter()
                .map(|k| k.as_slice())
                .zip(values.iter().map(|v| v.as_slice())),
            std::iter::empty(),
        )?;
        let wm = ordered_i64(watermark);
        self.meta
            .write([(&b"watermark"[..], &wm[..])], std::iter::empty())
    }
}

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
    index: WindowIndex,
    watermark: i64,
    persisted: WindowStore,
}

/// The open windows of an aggregation: group slot by key and bounds, and by end.
#[derive(Default)]
struct WindowIndex {
    groups: HashMap<(OwnedRow, i64, i64), usize>,
    by_end: BTreeMap<i64, Vec<usize>>,
    bounds: Vec<(i64, i64)>,
}

impl WindowIndex {
    /// Allocates the group of a window.
    fn add(&mut self, state: &mut AggregateState, key: OwnedRow, start: i64, end: i64) -> usize {
        let g = state.alloc(key.clone());
        self.groups.insert((key, start, end), g);
        self.by_end.entry(end).or_default().push(g);
        if self.bounds.len() <= g {
            self.bounds.resize(g + 1, (0, 0));
        }
        self.bounds[g] = (start, end);
        g
    }
}

impl WindowAggregateOp {
    /// Builds the operator for a tumbling, hopping or cumulating aggregate node, restoring its
    /// windows from the store when the query resumes a checkpoint.
    pub fn new(node: &AggregateNode, store: OperatorState) -> Result<Self> {
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
        let mut state = AggregateState::new(&node.aggregates, &input)?;
        let mut index = WindowIndex::default();
        let mut persisted = WindowStore::new(store);
        let restored = persisted.restore(&mut state, |st, key, start, end| {
            index.add(st, key, start, end)
        })?;
        Ok(WindowAggregateOp {
            state,
            input,
            output: node.schema.clone(),
            assigner,
            grace: node.grace_ms(),
            emit: node.emit,
            index,
            watermark: restored.unwrap_or(i64::MIN),
            persisted,
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
                let g = match self.index.groups.get(&(key.clone(), start, end)) {
                    Some(g) => *g,
                    None => self.index.add(&mut self.state, key, start, end),
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
        let touched_groups: Vec<usize> = touched.iter().map(|(g, _)| *g).collect();
        if self.persisted.active() {
            self.persisted.dirty.extend(touched_groups.iter().copied());
        }
        if self.emit == Emit::Final {
            return Ok(vec![]);
        }
        let new = self.state.evaluate(&touched_groups)?;
        let out = self.state.changes(&touched, &was_live);
        Ok(vec![self.state.build(&self.output, &out, &old, &new)?])
    }

    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        if barrier.checkpoint.is_some() && self.persisted.active() {
            self.persisted
                .write(&self.state, &self.index.bounds, self.watermark)?;
        }
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if self.persisted.active() {
            self.persisted
                .write(&self.state, &self.index.bounds, self.watermark)?;
        }
        Ok(vec![])
    }

    fn on_watermark(&mut self, wm: i64, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.watermark = wm;
        let limit = wm.saturating_sub(self.grace);
        let closing: Vec<i64> = self.index.by_end.range(..=limit).map(|(e, _)| *e).collect();
        if closing.is_empty() {
            return Ok(vec![]);
        }
        let mut finals: Vec<(usize, (i64, i64))> = Vec::new();
        for end in closing {
            for g in self.index.by_end.remove(&end).unwrap_or_default() {
                finals.push((g, self.index.bounds[g]));
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
                self.index.groups.remove(&(key, start, end));
            }
            self.persisted.dirty.remove(&g);
            self.persisted.closed_upto =
                Some(self.persisted.closed_upto.map_or(end, |u| u.max(end)));
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
    fn ordered_keys_sort_like_numbers() {
        let mut v = vec![5i64, -3, i64::MIN, 0, i64::MAX, -1];
        let mut enc: Vec<[u8; 8]> = v.iter().map(|x| super::ordered_i64(*x)).collect();
        enc.sort();
        v.sort();
        let back: Vec<i64> = enc.iter().map(|b| super::from_ordered_i64(b)).collect();
        assert_eq!(back, v);
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
