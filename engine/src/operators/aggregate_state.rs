//! Shared state of the aggregation operators: group slots keyed by the key's row-format bytes
//! (plus window), one streaming accumulator per aggregate, the latest event time per group, and
//! the assembly of changelog output (`+I`, or `-U old` / `+U new`) in the aggregate layout.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int8Array, Int32Array, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::{interleave, take};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use riffle_sql::plan::{AggSpec, ChangeOp, StreamSchema};
use riffle_udfs::aggregate::GroupsAggregator;

use crate::error::Result;
use crate::state::RowCodec;

/// Accumulators and bookkeeping for all groups of one aggregation.
pub struct AggregateState {
    specs: Vec<AggSpec>,
    accs: Vec<Box<dyn GroupsAggregator>>,
    /// Latest event time aggregated into each group.
    pub max_ts: Vec<i64>,
    /// Whether the group has produced output (so its next change is an update).
    pub live: Vec<bool>,
    /// Key of each group.
    pub keys: Vec<Option<OwnedRow>>,
    free: Vec<usize>,
    /// Converts key columns to comparable rows and back.
    pub converter: RowConverter,
}

/// Where an output row's aggregate values come from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// Values before this batch, at this index of the "old" evaluation.
    Old(usize),
    /// Values after this batch, at this index of the "new" evaluation.
    New(usize),
}

/// One output row of an aggregation.
#[derive(Debug, Clone, Copy)]
pub struct OutRow {
    /// Group slot.
    pub group: usize,
    /// Change kind.
    pub op: ChangeOp,
    /// Which evaluation its values come from.
    pub values: Source,
    /// Window bounds, for windowed layouts.
    pub window: (i64, i64),
    /// Event time.
    pub rowtime: i64,
}

impl AggregateState {
    /// State for the aggregates of an aggregate node whose input has key fields `key_schema`.
    pub fn new(specs: &[AggSpec], input: &StreamSchema) -> Result<Self> {
        let accs = specs
            .iter()
            .map(|s| s.func.create(&s.arg_types, &s.params))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let fields: Vec<SortField> = input
            .key_fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(AggregateState {
            specs: specs.to_vec(),
            accs,
            max_ts: Vec::new(),
            live: Vec::new(),
            keys: Vec::new(),
            free: Vec::new(),
            converter: RowConverter::new(fields)?,
        })
    }

    /// Allocates a group slot for `key`.
    pub fn alloc(&mut self, key: OwnedRow) -> usize {
        let g = match self.free.pop() {
            Some(g) => g,
            None => {
                self.max_ts.push(i64::MIN);
                self.live.push(false);
                self.keys.push(None);
                self.max_ts.len() - 1
            }
        };
        self.keys[g] = Some(key);
        self.max_ts[g] = i64::MIN;
        self.live[g] = false;
        g
    }

    /// Frees a group slot (its window closed).
    pub fn release(&mut self, g: usize) {
        for a in &mut self.accs {
            a.reset(g);
        }
        self.keys[g] = None;
        self.live[g] = false;
        self.max_ts[g] = i64::MIN;
        self.free.push(g);
    }

    /// Number of groups in use.
    pub fn len(&self) -> usize {
        self.keys.len() - self.free.len()
    }

    /// Whether no group is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies input rows `rows` of `batch` to `groups` (parallel to `rows`).
    pub fn update(
        &mut self,
        batch: &RecordBatch,
        key_count: usize,
        rows: &UInt32Array,
        groups: &[usize],
        retract: Option<&BooleanArray>,
        rowtimes: &Int64Array,
    ) -> Result<()> {
        for (spec, acc) in self.specs.iter().zip(self.accs.iter_mut()) {
            let args: Vec<ArrayRef> = spec
                .args
                .iter()
                .map(|a| take(batch.column(key_count + a), rows, None))
                .collect::<std::result::Result<_, _>>()?;
            acc.update(&args, groups, retract)?;
        }
        for (i, &g) in groups.iter().enumerate() {
            let ts = rowtimes.value(rows.value(i) as usize);
            if ts > self.max_ts[g] {
                self.max_ts[g] = ts;
            }
        }
        Ok(())
    }

    /// Merges group `from` into `into` (session windows).
    pub fn merge(&mut self, into: usize, from: usize) -> Result<()> {
        for a in &mut self.accs {
            a.merge(into, from)?;
        }
        self.max_ts[into] = self.max_ts[into].max(self.max_ts[from]);
        Ok(())
    }

    /// Current aggregate values of `groups`, one array per aggregate.
    pub fn evaluate(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        Ok(self
            .accs
            .iter()
            .map(|a| a.evaluate(groups))
            .collect::<datafusion::common::Result<_>>()?)
    }

    /// Column types of a group's stored state: each accumulator's state columns, then the
    /// group's latest event time and whether it has produced output.
    pub fn state_types(&self) -> Vec<DataType> {
        let mut t: Vec<DataType> = self.accs.iter().flat_map(|a| a.state_types()).collect();
        t.push(DataType::Int64);
        t.push(DataType::Boolean);
        t
    }

    /// A codec for stored group states.
    pub fn codec(&self) -> Result<RowCodec> {
        RowCodec::new(&self.state_types())
    }

    /// The state of each listed group as columns of [`state_types`](Self::state_types), one
    /// row per group.
    pub fn state_columns(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        let mut cols = Vec::new();
        for a in &self.accs {
            cols.extend(a.state(groups)?);
        }
        cols.push(Arc::new(Int64Array::from_iter_values(
            groups.iter().map(|&g| self.max_ts[g]),
        )));
        cols.push(Arc::new(BooleanArray::from_iter(
            groups.iter().map(|&g| Some(self.live[g])),
        )));
        Ok(cols)
    }

    /// The stored form of each listed group's state.
    pub fn encode_groups(&self, codec: &RowCodec, groups: &[usize]) -> Result<Vec<Vec<u8>>> {
        if groups.is_empty() {
            return Ok(vec![]);
        }
        let cols = self.state_columns(groups)?;
        let rows = codec.encode(&cols)?;
        Ok((0..groups.len())
            .map(|i| rows.row(i).as_ref().to_vec())
            .collect())
    }

    /// Sets each listed group to a stored state (as [`encode_groups`](Self::encode_groups)
    /// made it).
    pub fn decode_groups(
        &mut self,
        codec: &RowCodec,
        groups: &[usize],
        stored: &[&[u8]],
    ) -> Result<()> {
        if groups.is_empty() {
            return Ok(());
        }
        let cols = codec.decode(stored.iter().copied())?;
        self.restore_columns(groups, &cols)
    }

    /// Sets each listed group to the state in the matching row of `cols` (as
    /// [`state_columns`](Self::state_columns) made them).
    pub fn restore_columns(&mut self, groups: &[usize], cols: &[ArrayRef]) -> Result<()> {
        if cols.len() != self.state_types().len() {
            return Err(crate::error::EngineError::DataFusion(format!(
                "damaged group state: {} columns where the aggregates keep {}",
                cols.len(),
                self.state_types().len()
            )));
        }
        let mut at = 0;
        for a in self.accs.iter_mut() {
            let n = a.state_types().len();
            a.restore(groups, &cols[at..at + n])?;
            at += n;
        }
        let ts = cols[at]
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| crate::error::EngineError::DataFusion("damaged group state".into()))?;
        let live = cols[at + 1]
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| crate::error::EngineError::DataFusion("damaged group state".into()))?;
        for (i, &g) in groups.iter().enumerate() {
            self.max_ts[g] = ts.value(i);
            self.live[g] = live.value(i);
        }
        Ok(())
    }

    /// The key of a stored entry, from its bytes.
    pub fn key_from_bytes(&self, bytes: &[u8]) -> OwnedRow {
        self.converter.parser().parse(bytes).owned()
    }

    /// Approximate bytes of state.
    pub fn size(&self) -> usize {
        self.accs.iter().map(|a| a.size()).sum::<usize>() + self.keys.len() * 48
    }

    /// Builds the output batch for `rows` given old and new evaluations.
    pub fn build(
        &self,
        schema: &StreamSchema,
        rows: &[OutRow],
        old: &[ArrayRef],
        new: &[ArrayRef],
    ) -> Result<RecordBatch> {
        let key_rows: Vec<_> = rows
            .iter()
            .map(|r| {
                self.keys[r.group].as_ref().map(|k| k.row()).ok_or_else(|| {
                    crate::error::EngineError::DataFusion("internal: group without key".into())
                })
            })
            .collect::<Result<_>>()?;
        let mut columns = self.converter.convert_rows(key_rows)?;
        for (i, _) in self.specs.iter().enumerate() {
            let empty;
            let old_arr: &dyn Array = match old.get(i) {
                Some(a) => a.as_ref(),
                None => {
                    empty = datafusion::arrow::array::new_empty_array(new[i].data_type());
                    empty.as_ref()
                }
            };
            let indices: Vec<(usize, usize)> = rows
                .iter()
                .map(|r| match r.values {
                    Source::Old(j) => (0, j),
                    Source::New(j) => (1, j),
                })
                .collect();
            columns.push(interleave(&[old_arr, new[i].as_ref()], &indices)?);
        }
        if schema.windowed {
            columns.push(Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.window.0),
            )));
            columns.push(Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.window.1),
            )));
        }
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.rowtime),
        )));
        columns.push(Arc::new(Int32Array::from(vec![0; rows.len()])));
        columns.push(Arc::new(Int64Array::from(vec![0; rows.len()])));
        columns.push(Arc::new(Int8Array::from_iter_values(
            rows.iter().map(|r| r.op as i8),
        )));
        Ok(RecordBatch::try_new(schema.arrow.clone(), columns)?)
    }

    /// Emits changes for `touched` groups: an insert for a new group, `-U old, +U new` otherwise.
    /// `old` holds the values of the touched groups that were live, in `touched` order.
    pub fn changes(&mut self, touched: &[(usize, (i64, i64))], was_live: &[bool]) -> Vec<OutRow> {
        let mut out = Vec::with_capacity(touched.len() * 2);
        let mut old_idx = 0;
        for (j, (&(g, window), &live)) in touched.iter().zip(was_live).enumerate() {
            let rowtime = self.max_ts[g];
            if live {
                out.push(OutRow {
                    group: g,
                    op: ChangeOp::UpdateBefore,
                    values: Source::Old(old_idx),
                    window,
                    rowtime,
                });
                out.push(OutRow {
                    group: g,
                    op: ChangeOp::UpdateAfter,
                    values: Source::New(j),
                    window,
                    rowtime,
                });
                old_idx += 1;
            } else {
                out.push(OutRow {
                    group: g,
                    op: ChangeOp::Insert,
                    values: Source::New(j),
                    window,
                    rowtime,
                });
            }
            self.live[g] = true;
        }
        out
    }
}
