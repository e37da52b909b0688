//! The statements riffle understands, as parsed from text. Scalar expressions are sqlparser
//! [`Expr`]s with identifiers already normalized (unquoted names upper-cased, as ksqlDB does).

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::sql::sqlparser::ast::Expr;

use crate::error::Position;
use crate::types::SqlType;

/// One statement together with its source text and where it starts.
#[derive(Debug, Clone)]
pub struct Statement {
    /// What the statement does.
    pub kind: StatementKind,
    /// The statement's text, without the trailing semicolon.
    pub text: String,
    /// Where the statement starts in the script.
    pub position: Position,
}

/// Whether a relation is an append-only stream or a changelog table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SourceKind {
    /// Append-only event log.
    Stream,
    /// Changelog keyed by its primary key.
    Table,
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceKind::Stream => write!(f, "STREAM"),
            SourceKind::Table => write!(f, "TABLE"),
        }
    }
}

/// A column declaration in `CREATE STREAM|TABLE (…)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Column name (normalized).
    pub name: String,
    /// Declared type.
    pub data_type: SqlType,
    /// `KEY` / `PRIMARY KEY`.
    pub key: bool,
    /// `HEADERS` or `HEADER('name')`: filled from Kafka record headers.
    pub header: Option<HeaderSpec>,
    /// Flink computed column `name AS expr`: derived from the other columns on read.
    pub computed: Option<Expr>,
}

/// Where a header column takes its value from.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderSpec {
    /// All headers, as `ARRAY<STRUCT<KEY STRING, VALUE BYTES>>`.
    All,
    /// The value of the last header with this key, as `BYTES`.
    Key(String),
}

/// Properties of a `WITH (…)` clause; keys are upper-cased, values are literal text.
pub type Properties = BTreeMap<String, PropertyValue>;

/// A property value: ksqlDB allows strings, numbers and booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    /// `'text'`
    String(String),
    /// `4`, `1.5`
    Number(String),
    /// `true` / `false`
    Boolean(bool),
}

impl PropertyValue {
    /// The value as text, whatever its literal kind.
    pub fn as_text(&self) -> String {
        match self {
            PropertyValue::String(s) | PropertyValue::Number(s) => s.clone(),
            PropertyValue::Boolean(b) => b.to_string(),
        }
    }
}

/// `CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name (cols) WITH (…)`.
#[derive(Debug, Clone)]
pub struct CreateSource {
    /// Stream or table.
    pub kind: SourceKind,
    /// Name (normalized).
    pub name: String,
    /// Declared columns (may be empty when a schema comes from elsewhere).
    pub columns: Vec<ColumnDef>,
    /// `WITH` properties.
    pub properties: Properties,
    /// `OR REPLACE`.
    pub or_replace: bool,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// `CREATE SOURCE …`: read-only, materialized for pull queries.
    pub is_source: bool,
    /// Flink-style `WATERMARK FOR col AS col - INTERVAL …`.
    pub watermark: Option<WatermarkDef>,
}

/// A declared event-time watermark: rows carry `column` as event time, and the watermark trails
/// the largest seen by `delay`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkDef {
    /// Event-time column.
    pub column: String,
    /// Bounded out-of-orderness.
    pub delay: Duration,
}

/// `CREATE [OR REPLACE] VIEW name AS SELECT …`: a named query, expanded where it is read.
#[derive(Debug, Clone)]
pub struct CreateView {
    /// Name (normalized).
    pub name: String,
    /// The query.
    pub query: Query,
    /// `OR REPLACE`.
    pub or_replace: bool,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
}

/// `CREATE [OR REPLACE] STREAM|TABLE name [WITH (…)] AS SELECT …`.
#[derive(Debug, Clone)]
pub struct CreateAsSelect {
    /// Stream or table.
    pub kind: SourceKind,
    /// Name of the new relation (normalized).
    pub name: String,
    /// Sink properties.
    pub properties: Properties,
    /// `OR REPLACE`.
    pub or_replace: bool,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// The continuous query.
    pub query: Query,
}

/// Which `SHOW` listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShowKind {
    /// `SHOW STREAMS`
    Streams,
    /// `SHOW TABLES`
    Tables,
    /// `SHOW QUERIES`
    Queries,
    /// `SHOW TOPICS`
    Topics,
    /// `SHOW FUNCTIONS`
    Functions,
    /// `SHOW PROPERTIES`
    Properties,
}

/// Everything a statement can be.
#[derive(Debug, Clone)]
pub enum StatementKind {
    /// Declares a stream or table over existing data.
    CreateSource(CreateSource),
    /// Names a query.
    CreateView(CreateView),
    /// Creates a relation fed by a persistent query.
    CreateAsSelect(CreateAsSelect),
    /// `INSERT INTO target SELECT …`: a persistent query writing into an existing stream.
    InsertInto {
        /// Target stream.
        target: String,
        /// The query.
        query: Query,
    },
    /// `INSERT INTO target [(cols)] VALUES (…)`.
    InsertValues {
        /// Target stream or table.
        target: String,
        /// Explicit column list, if given.
        columns: Option<Vec<String>>,
        /// One value expression per column.
        values: Vec<Expr>,
    },
    /// A transient query (push with `EMIT CHANGES`, or pull).
    Select(Query),
    /// `TERMINATE query_id` / `TERMINATE ALL`.
    Terminate {
        /// The query to stop; `None` means all.
        query_id: Option<String>,
    },
    /// `DROP STREAM|TABLE [IF EXISTS] name [DELETE TOPIC]`.
    Drop {
        /// Stream or table.
        kind: SourceKind,
        /// Name.
        name: String,
        /// `IF EXISTS`.
        if_exists: bool,
        /// `DELETE TOPIC`.
        delete_topic: bool,
    },
    /// `SHOW …` / `LIST …`.
    Show(ShowKind),
    /// `DESCRIBE [EXTENDED] name`.
    Describe {
        /// Relation name.
        name: String,
        /// `EXTENDED`.
        extended: bool,
    },
    /// `DESCRIBE FUNCTION name`.
    DescribeFunction(String),
    /// `EXPLAIN statement` or `EXPLAIN query_id`.
    Explain(Box<ExplainTarget>),
    /// `PRINT topic [FROM BEGINNING] [LIMIT n]`.
    Print {
        /// Topic name, as written.
        topic: String,
        /// Start from the earliest record.
        from_beginning: bool,
        /// Stop after this many records.
        limit: Option<u64>,
    },
    /// `SET 'name' = 'value'`.
    Set {
        /// Property name.
        name: String,
        /// Property value.
        value: String,
    },
    /// `UNSET 'name'`.
    Unset(String),
}

/// What `EXPLAIN` is asked about.
#[derive(Debug, Clone)]
pub enum ExplainTarget {
    /// A running query, by id.
    QueryId(String),
    /// A statement that is planned but not run.
    Statement(Box<Statement>),
}

/// A time window declared with `WINDOW …`.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowKind {
    /// Fixed-size, non-overlapping.
    Tumbling {
        /// Window length.
        size: Duration,
    },
    /// Fixed-size, overlapping, starting every `advance`.
    Hopping {
        /// Window length.
        size: Duration,
        /// Distance between window starts.
        advance: Duration,
    },
    /// Flink's cumulating windows: windows share a start every `size` and end every `step`
    /// within it (`[0, step)`, `[0, 2·step)`, …, `[0, size)`).
    Cumulate {
        /// Distance between window ends.
        step: Duration,
        /// Largest window length.
        size: Duration,
    },
    /// Activity sessions separated by at least `gap` of inactivity.
    Session {
        /// Inactivity gap.
        gap: Duration,
    },
}

/// `WINDOW kind (…, GRACE PERIOD g, RETENTION r)`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    /// Tumbling, hopping or session.
    pub kind: WindowKind,
    /// How long after a window ends late rows are still accepted.
    pub grace: Option<Duration>,
    /// How long closed windows are kept for pull queries.
    pub retention: Option<Duration>,
}

/// `EMIT CHANGES` or `EMIT FINAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Every update is emitted.
    Changes,
    /// Each window is emitted once, when it closes.
    Final,
}

/// An item of the select list.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // select lists are short; boxing every expression buys nothing
pub enum SelectItem {
    /// `*`
    Wildcard,
    /// `alias.*`
    QualifiedWildcard(String),
    /// `expr [AS alias]`
    Expr {
        /// The expression.
        expr: Expr,
        /// The alias, if any (normalized).
        alias: Option<String>,
    },
}

/// A Flink window table-valued function over a relation:
/// `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL …))`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowTvf {
    /// The window shape.
    pub kind: WindowKind,
    /// The time attribute column (`DESCRIPTOR(col)`).
    pub time_column: String,
    /// `SESSION(TABLE t PARTITION BY k, …)` partition columns.
    pub partition_by: Vec<String>,
}

/// A named relation in `FROM` / `JOIN`.
#[derive(Debug, Clone)]
pub struct Relation {
    /// Stream or table name (normalized).
    pub name: String,
    /// Alias (normalized); defaults to the name.
    pub alias: Option<String>,
    /// A window table-valued function applied to the relation.
    pub tvf: Option<WindowTvf>,
    /// A `MATCH_RECOGNIZE` clause applied to the relation.
    pub match_recognize: Option<Box<MatchRecognize>>,
    /// A derived table, `(SELECT …) AS alias`: the relation is this query's result.
    pub subquery: Option<Box<Query>>,
}

/// Where matching resumes after a match (`AFTER MATCH SKIP …`).
#[derive(Debug, Clone, PartialEq)]
pub enum AfterMatch {
    /// `SKIP PAST LAST ROW` (the default).
    PastLastRow,
    /// `SKIP TO NEXT ROW`.
    ToNextRow,
    /// `SKIP TO FIRST v`.
    ToFirst(String),
    /// `SKIP TO LAST v` (also `SKIP TO v`).
    ToLast(String),
}

/// A row pattern (`PATTERN (…)`).
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// A pattern variable.
    Var(String),
    /// Patterns in sequence.
    Concat(Vec<Pattern>),
    /// One of several patterns, preferring the first.
    Alt(Vec<Pattern>),
    /// A quantified pattern: `min..=max` repetitions (`max` `None` = unbounded), greedy or
    /// reluctant.
    Repeat {
        /// The repeated pattern.
        inner: Box<Pattern>,
        /// Fewest repetitions.
        min: u32,
        /// Most repetitions.
        max: Option<u32>,
        /// Prefer more repetitions (`*`) or fewer (`*?`).
        greedy: bool,
    },
}

/// One `MEASURES` item.
#[derive(Debug, Clone)]
pub struct Measure {
    /// The expression over pattern variables.
    pub expr: Expr,
    /// The output column name.
    pub name: String,
    /// `FINAL`: evaluate over the complete match even in `ALL ROWS PER MATCH` (the default there
    /// is `RUNNING`, the match up to the output row).
    pub final_semantics: bool,
}

/// A `MATCH_RECOGNIZE` clause (SQL:2016 row pattern recognition).
#[derive(Debug, Clone)]
pub struct MatchRecognize {
    /// `PARTITION BY` expressions.
    pub partition_by: Vec<Expr>,
    /// `ORDER BY` expressions; the first must be the time attribute, ascending.
    pub order_by: Vec<Expr>,
    /// `MEASURES expr AS name`.
    pub measures: Vec<Measure>,
    /// `ALL ROWS PER MATCH` (else `ONE ROW PER MATCH`).
    pub all_rows: bool,
    /// `AFTER MATCH SKIP …`.
    pub after_match: AfterMatch,
    /// `PATTERN (…)`.
    pub pattern: Pattern,
    /// `WITHIN INTERVAL …`: longest time from the first to the last row of a match.
    pub within: Option<Duration>,
    /// `DEFINE v AS condition`.
    pub define: Vec<(String, Expr)>,
}

impl Query {
    /// The stream or table the query reads first: the first relation of `FROM`, or for a
    /// derived table, the one its query reads first.
    pub fn base_source(&self) -> &str {
        match &self.from.subquery {
            Some(sub) => sub.base_source(),
            None => &self.from.name,
        }
    }
}

impl Relation {
    /// The name used to qualify the relation's columns.
    pub fn qualifier(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

/// The kind of join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// `[INNER] JOIN`
    Inner,
    /// `LEFT [OUTER] JOIN`
    Left,
    /// `RIGHT [OUTER] JOIN`
    Right,
    /// `FULL [OUTER] JOIN`
    Full,
}

/// `WITHIN` on a stream-stream join: how far apart in time two rows may be.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinWindow {
    /// How long before the left row a right row may be.
    pub before: Duration,
    /// How long after the left row a right row may be.
    pub after: Duration,
    /// `GRACE PERIOD` for the join window.
    pub grace: Option<Duration>,
}

/// One `JOIN` of the `FROM` clause.
#[derive(Debug, Clone)]
pub struct Join {
    /// Join kind.
    pub kind: JoinKind,
    /// The right relation.
    pub relation: Relation,
    /// `WITHIN` clause.
    pub within: Option<JoinWindow>,
    /// Join condition.
    pub on: Expr,
}

/// A `SELECT` statement in ksqlDB's clause order.
#[derive(Debug, Clone)]
pub struct Query {
    /// Select list.
    pub projection: Vec<SelectItem>,
    /// First relation of `FROM`.
    pub from: Relation,
    /// Joins, in order.
    pub joins: Vec<Join>,
    /// `WINDOW` clause.
    pub window: Option<WindowSpec>,
    /// `WHERE` predicate.
    pub selection: Option<Expr>,
    /// `GROUP BY` expressions.
    pub group_by: Vec<Expr>,
    /// `PARTITION BY` expressions.
    pub partition_by: Vec<Expr>,
    /// `HAVING` predicate.
    pub having: Option<Expr>,
    /// `EMIT CHANGES|FINAL`.
    pub emit: Option<Emit>,
    /// `LIMIT n`.
    pub limit: Option<u64>,
}
