//! Table-table joins, on the primary key or from a left column to the right table's primary key
//! (foreign-key join). Both sides keep their latest row per key; every change recomputes the
//! affected results and emits them as a changelog: a new result, an update (`-U old, +U new`)
//! or a delete when a result disappears. Both sides' rows are checkpointed.

use std::collections::{BTreeSet, HashMap};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use riffle_sql::ast::JoinKind;
use riffle_sql::plan::{ChangeOp, JoinNode, JoinType, StreamSchema};

use super::join_rows::{JoinOutput, JoinedRow};
use super::{OpContext, Operator, OperatorState, Snapshot, ops_of};
use crate::error::Result;
use crate::runtime::Barrier;
use crate::state::snapshot;

#[derive(Clone)]
struct Stored {
    row: RecordBatch,
    ts: i64,
    /// Foreign key (left rows of a foreign-key join).
    fk: Option<OwnedRow>,
}

/// A joined result: the rows it combines.
#[derive(Clone)]
struct Joined {
    left: Option<Stored>,
    right: Option<Stored>,
}

impl Joined {
    fn rowtime(&self) -> i64 {
        self.left
            .as_ref()
            .map(|s| s.ts)
            .unwrap_or(i64::MIN)
            .max(self.right.as_ref().map(|s| s.ts).unwrap_or(i64::MIN))
    }
}

/// Table-table join.
pub struct TableTableJoinOp {
    kind: JoinKind,
    foreign_key: bool,
    inputs: [StreamSchema; 2],
    state: [HashMap<OwnedRow, Stored>; 2],
    /// Foreign key → left keys referring to it.
    index: HashMap<OwnedRow, BTreeSet<OwnedRow>>,
    keys: [RowConverter; 2],
    fk_converter: Option<RowConverter>,
    output: JoinOutput,
    store: OperatorState,
}

impl TableTableJoinOp {
    /// Builds the operator for a table-table or foreign-key join node, restoring both sides
    /// when the query resumes a checkpoint.
    pub fn new(node: &JoinNode, store: OperatorState) -> Result<Self> {
        let left = node.left.schema().clone();
        let right = node.right.schema().clone();
        let foreign_key = node.join_type == JoinType::ForeignKey;
        let conv = |s: &StreamSchema| {
            RowConverter::new(
                s.key_fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )
        };
        let fk_converter = if foreign_key {
            let fk_type = left
                .value_fields()
                .last()
                .map(|f| f.data_type().clone())
                .unwrap_or(datafusion::arrow::datatypes::DataType::Null);
            Some(RowConverter::new(vec![SortField::new(fk_type)])?)
        } else {
            None
        };
        let left_values = if foreign_key {
            left.value_count - 1
        } else {
            left.value_count
        };
        let mut op = TableTableJoinOp {
            kind: node.kind,
            foreign_key,
            keys: [conv(&left)?, conv(&right)?],
            fk_converter,
            output: JoinOutput::new(node.schema.clone(), &left, &right, left_values),
            inputs: [left, right],
            state: [HashMap::new(), HashMap::new()],
            index: HashMap::new(),
            store: store.clone(),
        };
        store.resume(&mut op)?;
        Ok(op)
    }

    fn result(&self, left_key: &OwnedRow) -> Option<Joined> {
        let (l, r) = if self.foreign_key {
            let l = self.state[0].get(left_key).cloned();
            let r = l
                .as_ref()
                .and_then(|l| l.fk.as_ref())
                .and_then(|fk| self.state[1].get(fk).cloned());
            (l, r)
        } else {
            (
                self.state[0].get(left_key).cloned(),
                self.state[1].get(left_key).cloned(),
            )
        };
        let present = match self.kind {
            JoinKind::Inner => l.is_some() && r.is_some(),
            JoinKind::Left => l.is_some(),
            JoinKind::Right => r.is_some(),
            JoinKind::Full => l.is_some() || r.is_some(),
        };
        present.then_some(Joined { left: l, right: r })
    }

    fn emit(old: Option<Joined>, new: Option<Joined>, now: i64, out: &mut Vec<JoinedRow>) {
        let key_of = |j: &Joined| -> Option<RecordBatch> {
            j.left
                .as_ref()
                .map(|s| s.row.clone())
                .or_else(|| j.right.as_ref().map(|s| s.row.clone()))
        };
        let row = |j: &Joined, op: ChangeOp, ts: i64| -> Option<JoinedRow> {
            Some(JoinedRow {
                key_from: key_of(j)?,
                left: j.left.as_ref().map(|s| s.row.clone()),
                right: j.right.as_ref().map(|s| s.row.clone()),
                rowtime: ts,
                op,
            })
        };
        // A result carries the time of the change that produced it (never earlier than its rows).
        match (old, new) {
            (Some(o), Some(n)) => {
                let ts = n.rowtime().max(now);
                out.extend(row(&o, ChangeOp::UpdateBefore, ts));
                out.extend(row(&n, ChangeOp::UpdateAfter, ts));
            }
            (None, Some(n)) => out.extend(row(&n, ChangeOp::Insert, n.rowtime().max(now))),
            (Some(o), None) => out.extend(row(&o, ChangeOp::Delete, now)),
            (None, None) => {}
        }
    }
}

/// Snapshot layout: each side's rows; the bookkeeping holds their times in the same order.
/// Foreign keys and the foreign-key index are derived from the rows again.
impl Snapshot for TableTableJoinOp {
    fn snapshot(&self) -> Result<Vec<u8>> {
        let mut times: Vec<Vec<i64>> = Vec::with_capacity(2);
        let mut batches = Vec::with_capacity(2);
        for side in 0..2 {
            let stored: Vec<&Stored> = self.state[side].values().collect();
            times.push(stored.iter().map(|s| s.ts).collect());
            batches.push(concat_batches(
                &self.inputs[side].arrow,
                stored.iter().map(|s| &s.row),
            )?);
        }
        snapshot::encode(&times, &batches)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let (times, batches) = snapshot::decode::<Vec<Vec<i64>>>(bytes)?;
        for (side, (b, ts)) in batches.iter().zip(times).enumerate().take(2) {
            let kc = self.inputs[side].key_count;
            let keys = self.keys[side].convert_columns(&b.columns()[..kc])?;
            let fks = match (&self.fk_converter, side) {
                (Some(c), 0) => {
                    let col = b.column(kc + self.inputs[0].value_count - 1).clone();
                    Some((c.convert_columns(std::slice::from_ref(&col))?, col))
                }
                _ => None,
            };
            for (i, ts) in ts.into_iter().enumerate().take(b.num_rows()) {
                let key = keys.row(i).owned();
                let fk = fks
                    .as_ref()
                    .and_then(|(rows, col)| (!col.is_null(i)).then(|| rows.row(i).owned()));
                if let Some(fk) = &fk {
                    self.index
                        .entry(fk.clone())
                        .or_default()
                        .insert(key.clone());
                }
                let row = b.slice(i, 1);
                self.state[side].insert(key, Stored { row, ts, fk });
            }
        }
        Ok(())
    }
}

impl Operator for TableTableJoinOp {
    fn on_barrier(&mut self, barrier: Barrier, _ctx: &mut OpContext) -> Result<()> {
        self.store.checkpoint(Some(barrier), self)
    }

    fn on_end(&mut self, _ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.store.checkpoint(None, self)?;
        Ok(vec![])
    }

    fn name(&self) -> &'static str {
        if self.foreign_key {
            "ForeignKeyJoin"
        } else {
            "TableTableJoin"
        }
    }

    fn process(&mut self, batch: RecordBatch, ctx: &mut OpContext) -> Result<Vec<RecordBatch>> {
        self.process_side(0, batch, ctx)
    }

    fn process_side(
        &mut self,
        side: usize,
        batch: RecordBatch,
        _ctx: &mut OpContext,
    ) -> Result<Vec<RecordBatch>> {
        let schema = &self.inputs[side];
        let kc = schema.key_count;
        let ops = ops_of(&batch, schema.op());
        let times = batch
            .column(schema.rowtime())
            .as_primitive::<Int64Type>()
            .clone();
        let keys = self.keys[side].convert_columns(&batch.columns()[..kc])?;
        let fks = match (&self.fk_converter, side) {
            (Some(c), 0) => {
                let fk_col = batch.column(kc + schema.value_count - 1).clone();
                Some((c.convert_columns(std::slice::from_ref(&fk_col))?, fk_col))
            }
            _ => None,
        };
        let mut out = Vec::new();
        for i in 0..batch.num_rows() {
            let key = keys.row(i).owned();
            let ts = times.value(i);
            let op = ChangeOp::from_i8(ops.value(i));
            if op == ChangeOp::UpdateBefore
                && i + 1 < batch.num_rows()
                && ops.value(i + 1) == ChangeOp::UpdateAfter as i8
            {
                // The update that follows replaces the row.
                continue;
            }
            let deleted = matches!(op, ChangeOp::Delete | ChangeOp::UpdateBefore);
            let stored = Stored {
                row: batch.slice(i, 1),
                ts,
                fk: fks
                    .as_ref()
                    .and_then(|(rows, col)| (!col.is_null(i)).then(|| rows.row(i).owned())),
            };
            if self.foreign_key && side == 1 {
                let lefts: Vec<OwnedRow> = self
                    .index
                    .get(&key)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                let olds: Vec<Option<Joined>> = lefts.iter().map(|l| self.result(l)).collect();
                if deleted {
                    self.state[1].remove(&key);
                } else {
                    self.state[1].insert(key, stored);
                }
                for (l, old) in lefts.iter().zip(olds) {
                    let new = self.result(l);
                    Self::emit(old, new, ts, &mut out);
                }
                continue;
            }
            let old = self.result(&key);
            if deleted {
                let prev = self.state[side].remove(&key);
                if let Some(prev) = &prev
                    && let Some(fk) = &prev.fk
                    && let Some(set) = self.index.get_mut(fk)
                {
                    set.remove(&key);
                }
                if self.foreign_key
                    && side == 0
                    && old.is_none()
                    && let Some(prev) = prev
                {
                    // A deleted left row is always forwarded as a tombstone of its key.
                    out.push(JoinedRow {
                        key_from: prev.row,
                        left: None,
                        right: None,
                        rowtime: ts,
                        op: ChangeOp::Delete,
                    });
                    continue;
                }
            } else {
                if let Some(fk) = &stored.fk {
                    self.index
                        .entry(fk.clone())
                        .or_default()
                        .insert(key.clone());
                }
                if let Some(prev) = self.state[side].insert(key.clone(), stored)
                    && let Some(prev_fk) = prev.fk
                    && self.state[side].get(&key).and_then(|s| s.fk.as_ref()) != Some(&prev_fk)
                    && let Some(set) = self.index.get_mut(&prev_fk)
                {
                    set.remove(&key);
                }
            }
            let new = self.result(&key);
            Self::emit(old, new, ts, &mut out);
        }
        Ok(self.output.build(&out)?.into_iter().collect())
    }
}
