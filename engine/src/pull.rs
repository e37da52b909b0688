//! Pull queries: `SELECT … FROM relation [WHERE …]` without `EMIT CHANGES` answers from the
//! relation's current contents and ends. The relation is read as a snapshot (up to what its topic
//! or file holds now); a table's changelog is folded to the latest row per key (and window), and
//! only then are the query's WHERE and projection applied, so an update that no longer matches
//! hides the older row that did.

use std::collections::BTreeMap;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::Int8Type;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use riffle_sql::ast::Query;
use riffle_sql::catalog::{Column, Connector};
use riffle_sql::plan::{ChangeOp, PlanNode, QueryPlan, StreamSchema};

use crate::error::{EngineError, Result};
use crate::operators::filter::FilterOp;
use crate::operators::project::ProjectOp;
use crate::operators::{OpContext, Operator};

/// The answer to a pull query.
#[derive(Debug)]
pub struct PullResult {
    /// Result columns (keys first).
    pub columns: Vec<Column>,
    /// Result layout.
    pub schema: StreamSchema,
    /// The rows, in the result layout.
    pub batch: RecordBatch,
}

/// Why a query cannot be answered as a pull query, if it cannot.
pub fn check_shape(q: &Query) -> Result<()> {
    let why = if !q.joins.is_empty() {
        Some("joins")
    } else if q.window.is_some() || q.from.tvf.is_some() {
        Some("windows")
    } else if !q.group_by.is_empty() || q.having.is_some() {
        Some("aggregation")
    } else if !q.partition_by.is_empty() {
        Some("PARTITION BY")
    } else if q.from.match_recognize.is_some() {
        Some("MATCH_RECOGNIZE")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(w) => Err(EngineError::Catalog(format!(
            "pull queries (SELECT without EMIT CHANGES) read one stream or table's current \
             contents and cannot use {w}; add EMIT CHANGES for a push query"
        ))),
    }
}

/// The filter and projection steps above the source, bottom first.
pub fn steps(plan: &QueryPlan) -> Result<(&PlanNode, Vec<&PlanNode>)> {
    let mut steps = Vec::new();
    let mut cur = &plan.root;
    loop {
        match cur {
            PlanNode::Source(_) => break,
            PlanNode::Filter(f) => {
                steps.push(cur);
                cur = &f.input;
            }
            PlanNode::Project(p) => {
                steps.push(cur);
                cur = &p.input;
            }
            _ => {
                return Err(EngineError::Catalog(
                    "pull queries support only WHERE and a projection; add EMIT CHANGES for a push query"
                        .into(),
                ));
            }
        }
    }
    steps.reverse();
    Ok((cur, steps))
}

/// Whether the source can be read as a snapshot.
pub fn check_source(plan_source: &PlanNode) -> Result<()> {
    let PlanNode::Source(s) = plan_source else {
        return Ok(());
    };
    match s.def.connector {
        Connector::Topic | Connector::File { .. } => Ok(()),
        _ => Err(EngineError::Catalog(format!(
            "{} has no stored contents to pull from (connector {}); use EMIT CHANGES",
            s.def.name,
            match s.def.connector {
                Connector::Datagen(_) => "datagen",
                Connector::Nexmark(_) => "nexmark",
                Connector::Stdout => "stdout",
                _ => "blackhole",
            }
        ))),
    }
}

/// Folds a table changelog to the latest row per key (and window bounds), in key order.
pub fn latest_per_key(schema: &StreamSchema, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let mut key_cols: Vec<usize> = (0..schema.key_count).collect();
    if let Some(ws) = schema.window_start() {
        key_cols.extend([ws, ws + 1]);
    }
    let fields = key_cols
        .iter()
        .map(|i| SortField::new(schema.arrow.field(*i).data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let mut latest: BTreeMap<OwnedRow, RecordBatch> = BTreeMap::new();
    for b in batches {
        let cols: Vec<_> = key_cols.iter().map(|i| b.column(*i).clone()).collect();
        let keys = converter.convert_columns(&cols)?;
        let ops = b.column(schema.op()).as_primitive::<Int8Type>();
        for i in 0..b.num_rows() {
            let key = keys.row(i).owned();
            if ChangeOp::from_i8(ops.value(i)).is_retraction() {
                latest.remove(&key);
            } else {
                latest.insert(key, b.slice(i, 1));
            }
        }
    }
    let rows: Vec<RecordBatch> = latest.into_values().collect();
    Ok(concat_batches(&schema.arrow, &rows)?)
}

/// Applies the query's filter and projection to the snapshot rows.
pub fn finish(
    steps: &[&PlanNode],
    snapshot: RecordBatch,
    ctx: &mut OpContext,
) -> Result<RecordBatch> {
    let mut current = snapshot;
    for step in steps {
        let mut op: Box<dyn Operator> = match step {
            PlanNode::Filter(f) => {
                let input = f.input.schema();
                // Snapshot rows are plain rows: non-matching ones are dropped, never retracted.
                Box::new(FilterOp::new(
                    f.predicate.physical.clone(),
                    true,
                    input.op(),
                ))
            }
            PlanNode::Project(p) => Box::new(ProjectOp::new(
                p.exprs.iter().map(|e| e.physical.clone()).collect(),
                p.input.schema().clone(),
                p.schema.clone(),
                p.drop_null_keys,
            )),
            _ => continue,
        };
        let schema = step.schema().arrow.clone();
        let out = op.process(current, ctx)?;
        current = concat_batches(&schema, &out)?;
    }
    Ok(current)
}
