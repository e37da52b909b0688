//! The streaming plan: a tree of operator nodes with typed batch layouts, produced by the planner
//! and executed by the engine. `EXPLAIN` renders it.

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use riffle_udfs::aggregate::AggregateFunction;

use crate::ast::{Emit, SourceKind, WindowKind, WindowSpec};
use crate::catalog::{Column, SourceDef, WindowInfo};
use crate::expr::PlannedExpr;
use crate::types::display_arrow;

/// Event time of the row (milliseconds since the epoch).
pub const ROWTIME: &str = "ROWTIME";
/// Source partition of the row.
pub const ROWPARTITION: &str = "ROWPARTITION";
/// Source offset of the row.
pub const ROWOFFSET: &str = "ROWOFFSET";
/// Start of the row's window (windowed relations).
pub const WINDOWSTART: &str = "WINDOWSTART";
/// End of the row's window (windowed relations).
pub const WINDOWEND: &str = "WINDOWEND";
/// Change kind of the row, see [`ChangeOp`].
pub const OP: &str = "__op";

/// The change a row carries (Flink's changelog model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ChangeOp {
    /// A new row (or a stream event).
    Insert = 0,
    /// The old value of an updated row.
    UpdateBefore = 1,
    /// The new value of an updated row.
    UpdateAfter = 2,
    /// A removed row (or a stream record with a NULL value).
    Delete = 3,
}

impl ChangeOp {
    /// Decodes the `__op` column value.
    pub fn from_i8(v: i8) -> ChangeOp {
        match v {
            1 => ChangeOp::UpdateBefore,
            2 => ChangeOp::UpdateAfter,
            3 => ChangeOp::Delete,
            _ => ChangeOp::Insert,
        }
    }

    /// Whether the row removes its values (`-U` or `-D`).
    pub fn is_retraction(self) -> bool {
        matches!(self, ChangeOp::UpdateBefore | ChangeOp::Delete)
    }
}

/// The layout of batches on an edge: `[keys][values][WINDOWSTART, WINDOWEND]?[ROWTIME,
/// ROWPARTITION, ROWOFFSET, __op]`.
#[derive(Debug, Clone)]
pub struct StreamSchema {
    /// Arrow schema of the batches.
    pub arrow: SchemaRef,
    /// Number of leading key columns.
    pub key_count: usize,
    /// Number of value columns after the keys.
    pub value_count: usize,
    /// Whether window bound columns follow the values.
    pub windowed: bool,
    /// Stream (append) or table (changelog) semantics.
    pub kind: SourceKind,
}

impl StreamSchema {
    /// Builds a layout from key and value fields.
    pub fn new(keys: Vec<Field>, values: Vec<Field>, windowed: bool, kind: SourceKind) -> Self {
        let key_count = keys.len();
        let value_count = values.len();
        let mut fields = keys;
        fields.extend(values);
        if windowed {
            fields.push(Field::new(WINDOWSTART, DataType::Int64, true));
            fields.push(Field::new(WINDOWEND, DataType::Int64, true));
        }
        fields.push(Field::new(ROWTIME, DataType::Int64, false));
        fields.push(Field::new(ROWPARTITION, DataType::Int32, false));
        fields.push(Field::new(ROWOFFSET, DataType::Int64, false));
        fields.push(Field::new(OP, DataType::Int8, false));
        StreamSchema {
            arrow: Arc::new(Schema::new(fields)),
            key_count,
            value_count,
            windowed,
            kind,
        }
    }

    /// Index of WINDOWSTART (windowed layouts only).
    pub fn window_start(&self) -> Option<usize> {
        self.windowed.then_some(self.key_count + self.value_count)
    }

    /// Index of the first system column (ROWTIME).
    pub fn rowtime(&self) -> usize {
        self.key_count + self.value_count + if self.windowed { 2 } else { 0 }
    }

    /// Index of ROWPARTITION.
    pub fn partition(&self) -> usize {
        self.rowtime() + 1
    }

    /// Index of ROWOFFSET.
    pub fn offset(&self) -> usize {
        self.rowtime() + 2
    }

    /// Index of `__op`.
    pub fn op(&self) -> usize {
        self.rowtime() + 3
    }

    /// The key fields.
    pub fn key_fields(&self) -> Vec<Field> {
        self.arrow.fields()[..self.key_count]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect()
    }

    /// The value fields.
    pub fn value_fields(&self) -> Vec<Field> {
        self.arrow.fields()[self.key_count..self.key_count + self.value_count]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect()
    }
}

/// Reads a relation.
#[derive(Debug, Clone)]
pub struct SourceNode {
    /// The relation.
    pub def: Arc<SourceDef>,
    /// Alias used in the query.
    pub alias: String,
    /// Batch layout.
    pub schema: StreamSchema,
    /// Tables only: keep the latest row per key so updates carry their old value.
    pub materialize: bool,
}

/// Keeps rows matching a predicate.
#[derive(Debug, Clone)]
pub struct FilterNode {
    /// Input.
    pub input: Box<PlanNode>,
    /// Predicate over the input layout.
    pub predicate: PlannedExpr,
    /// Text for EXPLAIN.
    pub display: String,
}

/// Computes new key and value columns; window and system columns pass through.
#[derive(Debug, Clone)]
pub struct ProjectNode {
    /// Input.
    pub input: Box<PlanNode>,
    /// Key expressions then value expressions.
    pub exprs: Vec<PlannedExpr>,
    /// Output layout.
    pub schema: StreamSchema,
    /// Drop rows whose key is NULL (grouping and re-keying do).
    pub drop_null_keys: bool,
    /// Text for EXPLAIN.
    pub display: Vec<String>,
}

/// Repartitions rows by their key columns so each key is handled by one subtask.
#[derive(Debug, Clone)]
pub struct ExchangeNode {
    /// Input.
    pub input: Box<PlanNode>,
}

/// One aggregate computed by an [`AggregateNode`].
#[derive(Debug, Clone)]
pub struct AggSpec {
    /// The function.
    pub func: Arc<dyn AggregateFunction>,
    /// Indices of the value columns (in the input layout) passed as arguments.
    pub args: Vec<usize>,
    /// Literal parameters.
    pub params: Vec<ScalarValue>,
    /// Argument types.
    pub arg_types: Vec<DataType>,
    /// Result type.
    pub data_type: DataType,
    /// Text for EXPLAIN.
    pub display: String,
}

/// Groups rows by their key columns (and window) and maintains aggregates; emits a changelog.
#[derive(Debug, Clone)]
pub struct AggregateNode {
    /// Input: keys are the group keys, values are the aggregate arguments.
    pub input: Box<PlanNode>,
    /// Aggregates, in output order.
    pub aggregates: Vec<AggSpec>,
    /// Window, if windowed.
    pub window: Option<WindowSpec>,
    /// When results are emitted.
    pub emit: Emit,
    /// Output layout: keys, aggregate results, window bounds.
    pub schema: StreamSchema,
}

impl AggregateNode {
    /// Grace period in milliseconds: the declared one, or ksqlDB's default of 24 hours minus the
    /// window size (minus the gap for sessions), never negative.
    pub fn grace_ms(&self) -> i64 {
        let Some(w) = &self.window else { return 0 };
        if let Some(g) = w.grace {
            return g.as_millis() as i64;
        }
        let size = match &w.kind {
            WindowKind::Tumbling { size }
            | WindowKind::Hopping { size, .. }
            | WindowKind::Cumulate { size, .. } => size.as_millis() as i64,
            WindowKind::Session { gap } => gap.as_millis() as i64,
        };
        (86_400_000 - size).max(0)
    }
}

/// How two inputs are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinType {
    /// Stream-stream join within a time window (`WITHIN`).
    StreamStream {
        /// How long before a left row a right row may be.
        before_ms: i64,
        /// How long after a left row a right row may be.
        after_ms: i64,
        /// Explicit grace period; `None` is the legacy behaviour (outer rows emitted at once).
        grace_ms: Option<i64>,
    },
    /// Each stream row joins the table's current row for its key.
    StreamTable,
    /// Table-table join on the primary key.
    TableTable,
    /// Table-table join from a left-table column to the right table's primary key.
    ForeignKey,
}

/// Joins two inputs partitioned by their join key.
#[derive(Debug, Clone)]
pub struct JoinNode {
    /// Left input: `[join key][left values]` (FK joins: `[left key][left values][foreign key]`).
    pub left: Box<PlanNode>,
    /// Right input: `[join key][right values]`.
    pub right: Box<PlanNode>,
    /// Inner, left, right or full.
    pub kind: crate::ast::JoinKind,
    /// Stream-stream, stream-table, table-table or foreign-key.
    pub join_type: JoinType,
    /// Output layout: `[key][left values][right values]`.
    pub schema: StreamSchema,
    /// Text for EXPLAIN.
    pub display: String,
}

impl JoinType {
    /// Milliseconds a stream-stream join keeps rows (window plus grace; legacy joins keep 24h).
    pub fn retention_ms(&self) -> i64 {
        match self {
            JoinType::StreamStream {
                before_ms,
                after_ms,
                grace_ms,
            } => {
                before_ms
                    + after_ms
                    + grace_ms.unwrap_or((86_400_000 - before_ms - after_ms).max(0))
            }
            _ => i64::MAX,
        }
    }
}

/// A node of the streaming plan.
#[derive(Debug, Clone)]
pub enum PlanNode {
    /// Recognizes row patterns per partition.
    MatchRecognize(crate::match_recognize::MatchRecognizeNode),
    /// Reads a relation.
    Source(SourceNode),
    /// Filters rows.
    Filter(FilterNode),
    /// Computes columns.
    Project(ProjectNode),
    /// Repartitions by key.
    Exchange(ExchangeNode),
    /// Aggregates by key.
    Aggregate(AggregateNode),
    /// Joins two inputs.
    Join(JoinNode),
}

impl PlanNode {
    /// The layout of this node's output.
    pub fn schema(&self) -> &StreamSchema {
        match self {
            PlanNode::Source(s) => &s.schema,
            PlanNode::Filter(f) => f.input.schema(),
            PlanNode::Project(p) => &p.schema,
            PlanNode::Exchange(e) => e.input.schema(),
            PlanNode::Aggregate(a) => &a.schema,
            PlanNode::Join(j) => &j.schema,
            PlanNode::MatchRecognize(m) => &m.schema,
        }
    }

    /// The relations read by this subtree.
    pub fn sources(&self) -> Vec<&SourceNode> {
        match self {
            PlanNode::Source(s) => vec![s],
            PlanNode::Filter(f) => f.input.sources(),
            PlanNode::Project(p) => p.input.sources(),
            PlanNode::Exchange(e) => e.input.sources(),
            PlanNode::Aggregate(a) => a.input.sources(),
            PlanNode::MatchRecognize(m) => m.input.sources(),
            PlanNode::Join(j) => {
                let mut v = j.left.sources();
                v.extend(j.right.sources());
                v
            }
        }
    }

    fn render(&self, depth: usize, out: &mut String) {
        let pad = "  ".repeat(depth);
        match self {
            PlanNode::MatchRecognize(m) => {
                let _ = writeln!(out, "{pad}{}", m.describe());
                m.input.render(depth + 1, out);
            }
            PlanNode::Source(s) => {
                let _ = writeln!(
                    out,
                    "{pad}Source {} AS {} [{}] ({}, key {}, value {}){}",
                    s.def.name,
                    s.alias,
                    s.def.kind,
                    connector_text(&s.def),
                    s.def.key_format.kind.name(),
                    s.def.value_format.kind.name(),
                    if s.materialize { ", materialized" } else { "" }
                );
            }
            PlanNode::Filter(f) => {
                let _ = writeln!(out, "{pad}Filter {}", f.display);
                f.input.render(depth + 1, out);
            }
            PlanNode::Project(p) => {
                let _ = writeln!(out, "{pad}Project {}", p.display.join(", "));
                p.input.render(depth + 1, out);
            }
            PlanNode::Exchange(e) => {
                let keys: Vec<String> = e
                    .input
                    .schema()
                    .key_fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let _ = writeln!(out, "{pad}Exchange shuffle({})", keys.join(", "));
                e.input.render(depth + 1, out);
            }
            PlanNode::Join(j) => {
                let state = match j.join_type {
                    JoinType::StreamStream { .. } => format!(
                        "rows of both sides for {} ms (window + grace), expired by stream time",
                        j.join_type.retention_ms()
                    ),
                    JoinType::StreamTable => "the latest table row per key; stream rows wait \
                                              until the table's initial contents are loaded"
                        .to_string(),
                    JoinType::TableTable => "the latest row per key of both tables".to_string(),
                    JoinType::ForeignKey => {
                        "the latest row per key of both tables and a foreign-key index".to_string()
                    }
                };
                let _ = writeln!(
                    out,
                    "{pad}Join {:?} {:?} on {}; state: {state}",
                    j.kind, j.join_type, j.display
                );
                j.left.render(depth + 1, out);
                j.right.render(depth + 1, out);
            }
            PlanNode::Aggregate(a) => {
                let window = match &a.window {
                    None => String::new(),
                    Some(w) => format!(
                        " window {} grace {}ms",
                        match &w.kind {
                            WindowKind::Tumbling { size } =>
                                format!("TUMBLING({}ms)", size.as_millis()),
                            WindowKind::Hopping { size, advance } => format!(
                                "HOPPING({}ms, advance {}ms)",
                                size.as_millis(),
                                advance.as_millis()
                            ),
                            WindowKind::Cumulate { step, size } => format!(
                                "CUMULATE({}ms, step {}ms)",
                                size.as_millis(),
                                step.as_millis()
                            ),
                            WindowKind::Session { gap } =>
                                format!("SESSION(gap {}ms)", gap.as_millis()),
                        },
                        a.grace_ms()
                    ),
                };
                let aggs: Vec<String> = a.aggregates.iter().map(|s| s.display.clone()).collect();
                let keys: Vec<String> = a
                    .input
                    .schema()
                    .key_fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let _ = writeln!(
                    out,
                    "{pad}Aggregate by ({}) [{}]{window} emit {}; state: one accumulator set per key{}",
                    keys.join(", "),
                    aggs.join(", "),
                    if a.emit == Emit::Final {
                        "FINAL"
                    } else {
                        "CHANGES"
                    },
                    if a.window.is_some() {
                        " and window, expired by watermark"
                    } else {
                        ""
                    }
                );
                a.input.render(depth + 1, out);
            }
        }
    }
}

fn connector_text(def: &SourceDef) -> String {
    match &def.connector {
        crate::catalog::Connector::Topic => format!("topic {}", def.topic),
        crate::catalog::Connector::File { path } => format!("file {path}"),
        crate::catalog::Connector::Datagen(d) => format!(
            "datagen rows={} seed={}",
            d.rows
                .map(|r| r.to_string())
                .unwrap_or_else(|| "unbounded".into()),
            d.seed
        ),
        crate::catalog::Connector::Stdout => "stdout".into(),
        crate::catalog::Connector::Blackhole => "blackhole".into(),
        crate::catalog::Connector::Nexmark(n) => format!(
            "nexmark events={} seed={}",
            n.events
                .map(|r| r.to_string())
                .unwrap_or_else(|| "unbounded".into()),
            n.seed
        ),
        crate::catalog::Connector::View => format!("view {}", def.name),
    }
}

/// A planned continuous query.
#[derive(Debug, Clone)]
pub struct QueryPlan {
    /// The operator tree.
    pub root: PlanNode,
    /// Stream or table result.
    pub kind: SourceKind,
    /// Output columns (keys first) with their names.
    pub columns: Vec<Column>,
    /// Windowed key of the result.
    pub window: Option<WindowInfo>,
    /// `EMIT` mode.
    pub emit: Emit,
    /// `LIMIT`.
    pub limit: Option<u64>,
}

impl QueryPlan {
    /// Renders the operator tree, top (sink side) first.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.name,
                    display_arrow(&c.data_type),
                    if c.key { " KEY" } else { "" }
                )
            })
            .collect();
        let _ = writeln!(out, "Result [{}] ({})", self.kind, cols.join(", "));
        self.root.render(1, &mut out);
        out
    }
}
