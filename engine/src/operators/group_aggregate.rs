//! Non-windowed `GROUP BY`: one group per key, updated by every input row and emitted as a table
//! changelog. Over a table input, retractions (`-U`, `-D`) subtract their old values first, so a
//! row moving between groups updates both.
//!
//! Groups live in memory up to the state cache size; past it, the groups are written to the
//! query's RocksDB store and dropped from memory, and a key not in memory is looked up there.
//! At each checkpoint barrier the groups changed since the last one are written in one batch.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::{Array, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::row::{OwnedRow, Rows};
use riffle_sql::plan::{AggregateNode, ChangeOp, StreamSchema};

use super::aggregate_state::AggregateState;
use super::{OpContext, Operator, OperatorState, is_retraction, ops_of};
use crate::error::Result;
use crate::runtime::Barrier;
use crate::state::{RowCodec, StateTable};

/// `GROUP BY` without a window.
pub struct GroupAggregateOp {
    input: StreamSchema,
    output: StreamSchema,
    state: AggregateState,
    /// Group slot of each key in memory, by the key's row bytes.
    groups: HashMap<Vec<u8>, usize>,
    store: OperatorState,
    table: StateTable,
    codec: Option<RowCodec>,
    dirty: HashSet<usize>,
    /// The table may hold groups that are not in memory.
    backed: bool,
    /// The last checkpoint epoch whose barrier passed.
    passed: u64,
}

impl GroupAggregateOp {
    /// Builds the operator for an aggregate node.
    pub fn new(node: &AggregateNode, store: OperatorState) -> Result<Self> {
        let input = node.input.schema().clone();
        Ok(GroupAggregateOp {
            state: AggregateState::new(&node.aggregates, &input)?,
            input,
            output: node.schema.clone(),
            groups: HashMap::new(),
            table: store.table("groups"),
            backed: store.restored(),
            store,
            codec: None,
            dirty: HashSet::new(),
            passed: 0,
        })
    }

    fn codec(&mut self) -> Result<&RowCodec> {
        if self.codec.is_none() {
            self.codec = Some(self.state.codec()?);
        }
        self.codec
            .as_ref()
            .ok_or_else(|| crate::error::EngineError::DataFusion("internal: no codec".into()))
    }

    /// Brings the groups of `keys` that are only in the store into memory.
    fn load_missing(&mut self, keys: &Rows) -> Result<()> {
        if !self.backed {
            return Ok(());
        }
        let mut missing: Vec<OwnedRow> = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..keys.num_rows() {
            let row = keys.row(i);
            if !self.groups.contains_key(row.as_ref()) && seen.insert(row) {
                missing.push(row.owned());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let lookup: Vec<&[u8]> = missing.iter().map(|k| k.as_ref()).collect();
        let found = self.table.get_many(&lookup)?;
        let mut groups = Vec::new();
        let mut stored = Vec::new();
        for (key, value) in missing.into_iter().zip(found) {
            if let Some(v) = value {
                let g = self.state.alloc(key.clone());
                self.groups.insert(key.as_ref().to_vec(), g);
                groups.push(g);
                stored.push(v);
            }
        }
        let refs: Vec<&[u8]> = stored.iter().map(|v| v.as_slice()).collect();
        self.codec()?;
        let codec = self.codec.as_ref();
        if let Some(codec) = codec {
            self.state.decode_groups(codec, &groups, &refs)?;
        }
        Ok(())
    }

    /// Writes the groups changed since the last write.
    fn write_dirty(&mut self) -> Result<()> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let groups: Vec<usize> = self.dirty.drain().collect();
        self.codec()?;
        let Some(codec) = self.codec.as_ref() else {
            return Ok(());
        };
        let values = self.state.encode_groups(codec, &groups)?;
        let keys: Vec<&[u8]> = groups
            .iter()
            .map(|&g| {
                self.state.keys[g]
                    .as_ref()
                    .map(|k| k.as_ref())
                    .unwrap_or(&[])
            })
            .collect();
        self.table.write(
            keys.iter()
                .copied()
                .zip(values.iter().map(|v| v.as_slice())),
            std::iter::empty(),
        )?;
        self.backed = true;
        Ok(())
    }

    /// Past the cache size, writes every group to the store and drops them from memory.
    fn maybe_evict(&mut self) -> Result<()> {
        if self.groups.len() <= self.store.cache_entries() || !self.store.may_write(self.passed) {
            return Ok(());
        }
        self.write_dirty()?;
        for (_, g) in self.groups.drain() {
            self.state.release(g);
        }
        self.backed = true;
        Ok(())
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
        self.load_missing(&keys)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut groups = Vec::with_capacity(batch.num_rows());
        let mut touched: Vec<(usize, (i64, i64))> = Vec::new();
        let mut was_live = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..batch.num_rows() {
            let op = ops.value(i);
            if is_stream && op == ChangeOp::Delete as i8 {
                continue;
            }
            let row = keys.row(i);
            let g = match self.groups.get(row.as_ref()) {
                Some(g) => *g,
                None => {
                    let g = self.state.alloc(row.owned());
                    self.groups.insert(row.as_ref().to_vec(), g);
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
        let out = self.state.build(&self.output, &out_rows, &old, &new)?;
        self.dirty.extend(touched_groups);
        ctx.metrics.state_bytes.store(
            self.state.size() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.maybe_evict()?;
        Ok(vec![out])
    }

    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        if let (Some(epoch), true) = (barrier.checkpoint, self.store.checkpoints()) {
            self.write_dirty()?;
            self.passed = epoch;
        }
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        if self.store.checkpoints() {
            self.write_dirty()?;
        }
        Ok(vec![])
    }
}
