//! The catalog model: what a declared stream or table is (columns, keys, topic, formats, time),
//! built from `CREATE` statements and shared by the planner and the engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;

use crate::ast::{
    CreateSource, CreateView, HeaderSpec, Properties, PropertyValue, Query, SelectItem, SourceKind,
};
use crate::error::{Result, SqlError};

/// A declared column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Name, exactly as resolved (upper-case unless quoted).
    pub name: String,
    /// Arrow type.
    pub data_type: DataType,
    /// Part of the key (stream `KEY` or table `PRIMARY KEY`).
    pub key: bool,
    /// Filled from record headers rather than the value.
    pub header: Option<HeaderSpec>,
}

/// Serialization formats for keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatKind {
    /// JSON objects (or bare values for keys and unwrapped single values).
    Json,
    /// Comma (or other) separated values.
    Delimited,
    /// Kafka's primitive serializers: big-endian numbers, UTF-8 strings.
    Kafka,
    /// No data: the key or value is ignored.
    None,
    /// Debezium change events in JSON (`before`/`after`/`op`).
    DebeziumJson,
    /// Avro with a schema registry (not supported yet).
    Avro,
    /// Protobuf with a schema registry (not supported yet).
    Protobuf,
    /// JSON with a schema registry (not supported yet).
    JsonSr,
}

impl FormatKind {
    /// Parses a format name as written in `WITH (…)`.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_uppercase().as_str() {
            "JSON" => FormatKind::Json,
            "DELIMITED" | "CSV" => FormatKind::Delimited,
            "KAFKA" => FormatKind::Kafka,
            "NONE" => FormatKind::None,
            "DEBEZIUM_JSON" | "DEBEZIUM-JSON" => FormatKind::DebeziumJson,
            "AVRO" => FormatKind::Avro,
            "PROTOBUF" | "PROTOBUF_NOSR" => FormatKind::Protobuf,
            "JSON_SR" => FormatKind::JsonSr,
            other => {
                return Err(SqlError::semantic(format!(
                    "unknown format '{other}': expected JSON, DELIMITED, KAFKA, NONE or DEBEZIUM_JSON"
                )));
            }
        })
    }

    /// The name shown to users.
    pub fn name(&self) -> &'static str {
        match self {
            FormatKind::Json => "JSON",
            FormatKind::Delimited => "DELIMITED",
            FormatKind::Kafka => "KAFKA",
            FormatKind::None => "NONE",
            FormatKind::DebeziumJson => "DEBEZIUM_JSON",
            FormatKind::Avro => "AVRO",
            FormatKind::Protobuf => "PROTOBUF",
            FormatKind::JsonSr => "JSON_SR",
        }
    }
}

/// A format plus its options.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatSpec {
    /// Which format.
    pub kind: FormatKind,
    /// Field delimiter for DELIMITED.
    pub delimiter: char,
    /// For values with one column: wrap it in an object (JSON) — `None` means the default (wrap).
    pub wrap_single_value: Option<bool>,
}

impl FormatSpec {
    /// A format with default options.
    pub fn new(kind: FormatKind) -> Self {
        FormatSpec {
            kind,
            delimiter: ',',
            wrap_single_value: None,
        }
    }

    /// Whether a single value column is written wrapped in an object.
    pub fn wraps_single(&self) -> bool {
        self.wrap_single_value.unwrap_or(true)
    }
}

/// The type of window of a windowed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    /// Tumbling time window.
    Tumbling,
    /// Hopping time window.
    Hopping,
    /// Session window.
    Session,
    /// Cumulating window (Flink's `CUMULATE`): windows of several sizes share a start.
    Cumulate,
}

impl WindowType {
    /// The name as written in SQL.
    pub fn name(&self) -> &'static str {
        match self {
            WindowType::Tumbling => "TUMBLING",
            WindowType::Hopping => "HOPPING",
            WindowType::Session => "SESSION",
            WindowType::Cumulate => "CUMULATE",
        }
    }

    /// Whether serialized keys carry the window end as well as its start (the end cannot be
    /// derived from a fixed size).
    pub fn key_has_end(&self) -> bool {
        matches!(self, WindowType::Session | WindowType::Cumulate)
    }
}

/// Describes a windowed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowInfo {
    /// Window type.
    pub window_type: WindowType,
    /// Window size in milliseconds (time windows only).
    pub size_ms: Option<i64>,
}

/// Where a relation's records live.
#[derive(Debug, Clone, PartialEq)]
pub enum Connector {
    /// A topic: Kafka when configured, otherwise an in-memory topic.
    Topic,
    /// A file of JSON lines or CSV rows.
    File {
        /// File path.
        path: String,
    },
    /// Generated rows.
    Datagen(DatagenOptions),
    /// Rows printed to standard output (sink only).
    Stdout,
    /// Rows discarded (sink only; for benchmarks).
    Blackhole,
    /// The Nexmark benchmark's event generator.
    Nexmark(NexmarkOptions),
    /// A view: rows come from its query, planned where the view is read.
    View,
}

/// Options of the Nexmark generator, named as in Flink's nexmark connector.
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkOptions {
    /// Total events (`events.num`); `None` is unbounded.
    pub events: Option<u64>,
    /// Events per second of event time (`first-event.rate`, `next-event.rate`).
    pub rate: u64,
    /// Relative share of person events (`person.proportion`).
    pub person_proportion: u64,
    /// Relative share of auction events (`auction.proportion`).
    pub auction_proportion: u64,
    /// Relative share of bid events (`bid.proportion`).
    pub bid_proportion: u64,
    /// Random seed: the same seed gives the same events.
    pub seed: u64,
    /// Event time of the first event, in epoch milliseconds (`base-time`).
    pub base_time_ms: i64,
}

impl Default for NexmarkOptions {
    fn default() -> Self {
        NexmarkOptions {
            events: None,
            rate: 10_000_000,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            seed: 0,
            base_time_ms: 1_767_225_600_000,
        }
    }
}

/// A Flink computed column (`name AS expr`): filled from the other columns when a row is read.
#[derive(Debug, Clone)]
pub struct ComputedColumn {
    /// Column name.
    pub name: String,
    /// The expression over the declared columns.
    pub expr: datafusion::sql::sqlparser::ast::Expr,
    /// The expression planned over the relation's layout (set when the relation is created).
    pub planned: Option<crate::expr::PlannedExpr>,
}

/// Options of the data generator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DatagenOptions {
    /// Total rows; `None` is unbounded.
    pub rows: Option<u64>,
    /// Rows per second; `None` is as fast as possible.
    pub rate: Option<f64>,
    /// Random seed: the same seed gives the same rows.
    pub seed: u64,
    /// Per-column options (`fields.<col>.<option>`), keyed by column then option.
    pub fields: BTreeMap<String, BTreeMap<String, String>>,
}

/// A declared stream or table.
#[derive(Debug, Clone)]
pub struct SourceDef {
    /// Name.
    pub name: String,
    /// Stream or table.
    pub kind: SourceKind,
    /// Columns: key columns first, in declaration order, then value columns.
    pub columns: Vec<Column>,
    /// Topic name (for topic-backed relations; otherwise the relation name).
    pub topic: String,
    /// Key format.
    pub key_format: FormatSpec,
    /// Value format.
    pub value_format: FormatSpec,
    /// Column holding event time, if not the record timestamp.
    pub timestamp: Option<String>,
    /// Java pattern for a string `timestamp` column.
    pub timestamp_format: Option<String>,
    /// Windowed key, for relations produced by windowed aggregations.
    pub window: Option<WindowInfo>,
    /// Where records are read from / written to.
    pub connector: Connector,
    /// Partitions for created topics.
    pub partitions: u32,
    /// `CREATE SOURCE`: read-only.
    pub is_source: bool,
    /// Bounded out-of-orderness for the watermark, in milliseconds.
    pub watermark_delay_ms: i64,
    /// The statement that created it.
    pub sql: String,
    /// The raw `WITH` properties.
    pub properties: Properties,
    /// Computed columns (also listed in `columns`, typed by the engine at creation).
    pub computed: Vec<ComputedColumn>,
    /// The query of a view.
    pub view: Option<Box<Query>>,
}

impl SourceDef {
    /// Key columns.
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.key)
    }

    /// Value columns.
    pub fn value_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.key)
    }

    /// Looks up a column by exact name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Session-level settings that shape how `CREATE` statements are interpreted.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// `ksql.persistence.default.format.key` (KAFKA when unset).
    pub key_format: Option<String>,
    /// `ksql.persistence.default.format.value`.
    pub value_format: Option<String>,
    /// `ksql.persistence.wrap.single.values`.
    pub wrap_single_values: Option<bool>,
    /// `ksql.output.topic.name.prefix`.
    pub topic_prefix: String,
}

/// Reads a property as text.
pub fn prop(props: &Properties, key: &str) -> Option<String> {
    props.get(key).map(PropertyValue::as_text)
}

fn delimiter(text: &str) -> Result<char> {
    match text.to_uppercase().as_str() {
        "TAB" => Ok('\t'),
        "SPACE" => Ok(' '),
        _ => {
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(SqlError::semantic(format!(
                    "a delimiter must be one character, TAB or SPACE; got '{text}'"
                ))),
            }
        }
    }
}

fn parse_bool(text: &str, what: &str) -> Result<bool> {
    match text.to_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SqlError::semantic(format!(
            "{what} must be true or false, got '{text}'"
        ))),
    }
}

/// Builds key and value format specs from `WITH` properties, falling back to `inherited` formats
/// (for `CREATE … AS SELECT`) and then to session defaults.
pub fn formats_from(
    props: &Properties,
    defaults: &Defaults,
    inherited: Option<(&FormatSpec, &FormatSpec)>,
    has_key_columns: bool,
) -> Result<(FormatSpec, FormatSpec)> {
    let both = prop(props, "FORMAT");
    let key_name = prop(props, "KEY_FORMAT").or_else(|| both.clone());
    let value_name = prop(props, "VALUE_FORMAT").or_else(|| both.clone());
    let mut key = match (key_name, inherited) {
        (Some(k), _) => FormatSpec::new(FormatKind::parse(&k)?),
        (None, Some((k, _))) => k.clone(),
        (None, None) => FormatSpec::new(FormatKind::parse(
            defaults.key_format.as_deref().unwrap_or("KAFKA"),
        )?),
    };
    let mut value = match (value_name, inherited) {
        (Some(v), _) => FormatSpec::new(FormatKind::parse(&v)?),
        (None, Some((_, v))) => FormatSpec {
            wrap_single_value: None,
            ..v.clone()
        },
        (None, None) => match &defaults.value_format {
            Some(v) => FormatSpec::new(FormatKind::parse(v)?),
            None => {
                return Err(SqlError::semantic(
                    "missing VALUE_FORMAT (or FORMAT) in the WITH clause, e.g. WITH (value_format='JSON')",
                ));
            }
        },
    };
    if !has_key_columns && prop(props, "KEY_FORMAT").is_none() && both.is_none() {
        key = FormatSpec::new(FormatKind::None);
    } else if has_key_columns && key.kind == FormatKind::None {
        key = FormatSpec::new(FormatKind::parse(
            defaults.key_format.as_deref().unwrap_or("KAFKA"),
        )?);
    }
    if let Some(d) = prop(props, "KEY_DELIMITER") {
        key.delimiter = delimiter(&d)?;
    }
    if let Some(d) = prop(props, "VALUE_DELIMITER") {
        value.delimiter = delimiter(&d)?;
    }
    if let Some(w) = prop(props, "WRAP_SINGLE_VALUE") {
        value.wrap_single_value = Some(parse_bool(&w, "WRAP_SINGLE_VALUE")?);
    } else if value.wrap_single_value.is_none() {
        value.wrap_single_value = defaults.wrap_single_values;
    }
    for f in [&key, &value] {
        if matches!(
            f.kind,
            FormatKind::Avro | FormatKind::Protobuf | FormatKind::JsonSr
        ) {
            return Err(SqlError::Unsupported(format!(
                "the {} format needs a schema registry, which riffle does not support yet",
                f.kind.name()
            )));
        }
    }
    Ok((key, value))
}

/// Parses the connector properties of a relation.
pub fn connector_from(props: &Properties) -> Result<Connector> {
    let Some(kind) = prop(props, "CONNECTOR") else {
        return Ok(Connector::Topic);
    };
    Ok(match kind.to_lowercase().as_str() {
        "kafka" | "topic" => Connector::Topic,
        "file" | "filesystem" => Connector::File {
            path: prop(props, "PATH").ok_or_else(|| {
                SqlError::semantic("connector='file' needs path='…' in the WITH clause")
            })?,
        },
        "datagen" => {
            let num = |k: &str| -> Result<Option<f64>> {
                prop(props, k)
                    .map(|v| {
                        v.parse::<f64>().map_err(|_| {
                            SqlError::semantic(format!(
                                "{} must be a number, got '{v}'",
                                k.to_lowercase()
                            ))
                        })
                    })
                    .transpose()
            };
            let mut fields: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for (k, v) in props {
                if let Some(rest) = k.strip_prefix("FIELDS.")
                    && let Some((col, opt)) = rest.rsplit_once('.')
                {
                    fields
                        .entry(col.to_string())
                        .or_default()
                        .insert(opt.to_lowercase(), v.as_text());
                }
            }
            Connector::Datagen(DatagenOptions {
                rows: num("ROWS")?.or(num("NUMBER-OF-ROWS")?).map(|v| v as u64),
                rate: num("RATE")?.or(num("ROWS-PER-SECOND")?),
                seed: num("SEED")?.unwrap_or(0.0) as u64,
                fields,
            })
        }
        "stdout" | "print" => Connector::Stdout,
        "blackhole" => Connector::Blackhole,
        "nexmark" => Connector::Nexmark(nexmark_options(props)?),
        other => {
            return Err(SqlError::semantic(format!(
                "unknown connector '{other}': expected kafka, file, datagen, nexmark, stdout or blackhole"
            )));
        }
    })
}

/// Reads the Nexmark generator's options.
fn nexmark_options(props: &Properties) -> Result<NexmarkOptions> {
    let num = |k: &str| -> Result<Option<u64>> {
        prop(props, k)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    SqlError::semantic(format!(
                        "nexmark option '{}' must be a non-negative integer, got '{v}'",
                        k.to_lowercase()
                    ))
                })
            })
            .transpose()
    };
    let d = NexmarkOptions::default();
    let opts = NexmarkOptions {
        events: num("EVENTS.NUM")?.filter(|n| *n > 0),
        rate: num("FIRST-EVENT.RATE")?
            .or(num("NEXT-EVENT.RATE")?)
            .unwrap_or(d.rate),
        person_proportion: num("PERSON.PROPORTION")?.unwrap_or(d.person_proportion),
        auction_proportion: num("AUCTION.PROPORTION")?.unwrap_or(d.auction_proportion),
        bid_proportion: num("BID.PROPORTION")?.unwrap_or(d.bid_proportion),
        seed: num("SEED")?.unwrap_or(d.seed),
        base_time_ms: num("BASE-TIME")?
            .map(|v| v as i64)
            .unwrap_or(d.base_time_ms),
    };
    if opts.rate == 0 {
        return Err(SqlError::semantic(
            "nexmark option 'first-event.rate' must be positive",
        ));
    }
    if opts.person_proportion + opts.auction_proportion + opts.bid_proportion == 0 {
        return Err(SqlError::semantic(
            "nexmark proportions (person/auction/bid) must not all be zero",
        ));
    }
    Ok(opts)
}

/// Builds the catalog entry of a view; its columns are those its query produces.
pub fn view_from_create(
    c: &CreateView,
    columns: Vec<Column>,
    timestamp: Option<String>,
    sql: &str,
) -> SourceDef {
    view_def(&c.name, c.query.clone(), columns, timestamp, sql)
}

/// The event-time column a view over `q` carries: its source's timestamp column when the query
/// passes it through (under its alias, if renamed).
pub fn view_time_attribute(catalog: &Catalog, q: &Query) -> Option<String> {
    use datafusion::sql::sqlparser::ast::Expr as SqlExpr;
    let source_time = catalog.get(q.base_source())?.timestamp.clone()?;
    for item in &q.projection {
        match item {
            SelectItem::Wildcard => return Some(source_time),
            SelectItem::QualifiedWildcard(_) => {}
            SelectItem::Expr { expr, alias } => {
                let name = match expr {
                    SqlExpr::Identifier(id) => Some(&id.value),
                    SqlExpr::CompoundIdentifier(ids) if ids.len() == 2 => Some(&ids[1].value),
                    _ => None,
                };
                if name == Some(&source_time) {
                    return Some(alias.clone().unwrap_or(source_time));
                }
            }
        }
    }
    None
}

/// The catalog entry of a view named `name` over `query`.
pub fn view_def(
    name: &str,
    query: Query,
    columns: Vec<Column>,
    timestamp: Option<String>,
    sql: &str,
) -> SourceDef {
    SourceDef {
        name: name.to_string(),
        kind: SourceKind::Stream,
        columns,
        topic: name.to_string(),
        key_format: FormatSpec::new(FormatKind::None),
        value_format: FormatSpec::new(FormatKind::Json),
        timestamp,
        timestamp_format: None,
        window: None,
        connector: Connector::View,
        partitions: 1,
        is_source: true,
        watermark_delay_ms: 0,
        sql: sql.to_string(),
        properties: Properties::new(),
        computed: Vec::new(),
        view: Some(Box::new(query)),
    }
}

/// Builds a source definition from a `CREATE STREAM|TABLE (…) WITH (…)` statement.
pub fn source_from_create(c: &CreateSource, sql: &str, defaults: &Defaults) -> Result<SourceDef> {
    let mut keys = Vec::new();
    let mut values = Vec::new();
    let mut computed = Vec::new();
    for col in &c.columns {
        if is_reserved(&col.name) {
            return Err(SqlError::semantic(format!(
                "'{}' is a reserved column name (system column)",
                col.name
            )));
        }
        let column = Column {
            name: col.name.clone(),
            data_type: col.data_type.to_arrow(),
            key: col.key,
            header: col.header.clone(),
        };
        if let Some(expr) = &col.computed {
            if col.key {
                return Err(SqlError::semantic(format!(
                    "computed column '{}' cannot be a key",
                    col.name
                )));
            }
            computed.push(ComputedColumn {
                name: col.name.clone(),
                expr: expr.clone(),
                planned: None,
            });
        }
        if col.key {
            keys.push(column)
        } else {
            values.push(column)
        }
    }
    let mut seen = std::collections::HashSet::new();
    for col in keys.iter().chain(values.iter()) {
        if !seen.insert(col.name.clone()) {
            return Err(SqlError::semantic(format!(
                "duplicate column name '{}'",
                col.name
            )));
        }
    }
    let connector = connector_from(&c.properties)?;
    let mut kind = c.kind;
    if c.kind == SourceKind::Table && keys.is_empty() && !c.columns.is_empty() {
        if connector == Connector::Topic {
            return Err(SqlError::semantic(format!(
                "table {} needs a PRIMARY KEY column, e.g. (ID INT PRIMARY KEY, …)",
                c.name
            )));
        }
        // A Flink table without a primary key over a connector is an append-only stream.
        kind = SourceKind::Stream;
    }
    let props = &c.properties;
    let is_file_or_gen = connector != Connector::Topic;
    let mut fmt_props = props.clone();
    if is_file_or_gen && prop(props, "VALUE_FORMAT").is_none() && prop(props, "FORMAT").is_none() {
        fmt_props.insert("VALUE_FORMAT".into(), PropertyValue::String("JSON".into()));
    }
    let (key_format, value_format) = formats_from(&fmt_props, defaults, None, !keys.is_empty())?;
    let topic = match (&connector, prop(props, "KAFKA_TOPIC")) {
        (_, Some(t)) => t,
        (Connector::Topic, None) => {
            return Err(SqlError::semantic(format!(
                "missing KAFKA_TOPIC in the WITH clause of {} (or set connector='file'/'datagen')",
                c.name
            )));
        }
        _ => c.name.clone(),
    };
    let partitions = match prop(props, "PARTITIONS") {
        Some(p) => p.parse().map_err(|_| {
            SqlError::semantic(format!("PARTITIONS must be a positive integer, got '{p}'"))
        })?,
        None => 1,
    };
    let mut columns = keys;
    columns.extend(values);
    let timestamp = prop(props, "TIMESTAMP")
        .map(|t| resolve_column_name(&columns, &t))
        .transpose()?
        .or_else(|| c.watermark.as_ref().map(|w| w.column.clone()));
    let window = match prop(props, "WINDOW_TYPE") {
        None => None,
        Some(t) => {
            let window_type = match t.to_uppercase().as_str() {
                "TUMBLING" => WindowType::Tumbling,
                "HOPPING" => WindowType::Hopping,
                "SESSION" => WindowType::Session,
                "CUMULATE" => WindowType::Cumulate,
                other => return Err(SqlError::semantic(format!("unknown WINDOW_TYPE '{other}'"))),
            };
            let size_ms = prop(props, "WINDOW_SIZE")
                .map(|s| parse_duration_text(&s))
                .transpose()?;
            Some(WindowInfo {
                window_type,
                size_ms,
            })
        }
    };
    Ok(SourceDef {
        name: c.name.clone(),
        kind,
        columns,
        topic,
        key_format,
        value_format,
        timestamp,
        timestamp_format: prop(props, "TIMESTAMP_FORMAT"),
        window,
        connector,
        partitions,
        is_source: c.is_source,
        watermark_delay_ms: c
            .watermark
            .as_ref()
            .map(|w| w.delay.as_millis() as i64)
            .unwrap_or(0),
        sql: sql.to_string(),
        properties: c.properties.clone(),
        computed,
        view: None,
    })
}

/// Resolves a column named in a property: exact match first, then case-insensitive.
pub fn resolve_column_name(columns: &[Column], name: &str) -> Result<String> {
    if let Some(c) = columns.iter().find(|c| c.name == name) {
        return Ok(c.name.clone());
    }
    let upper = name.to_uppercase();
    columns
        .iter()
        .find(|c| c.name == upper)
        .map(|c| c.name.clone())
        .ok_or_else(|| SqlError::Unknown(format!("timestamp column '{name}' does not exist")))
}

/// Parses `'30 SECONDS'`-style text into milliseconds.
pub fn parse_duration_text(s: &str) -> Result<i64> {
    let mut parts = s.split_whitespace();
    let n: f64 = parts
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| SqlError::semantic(format!("bad duration '{s}'")))?;
    let unit = parts.next().unwrap_or("MILLISECONDS").to_uppercase();
    let ms = match unit.trim_end_matches('S') {
        "MILLISECOND" => 1.0,
        "SECOND" => 1000.0,
        "MINUTE" => 60_000.0,
        "HOUR" => 3_600_000.0,
        "DAY" => 86_400_000.0,
        _ => return Err(SqlError::semantic(format!("bad duration unit in '{s}'"))),
    };
    Ok((n * ms) as i64)
}

/// System column names that cannot be declared.
pub const SYSTEM_COLUMNS: &[&str] = &[
    "ROWTIME",
    "ROWPARTITION",
    "ROWOFFSET",
    "WINDOWSTART",
    "WINDOWEND",
];

/// Whether a name is reserved for a system column.
pub fn is_reserved(name: &str) -> bool {
    SYSTEM_COLUMNS.contains(&name)
}

/// The set of declared relations.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    sources: BTreeMap<String, Arc<SourceDef>>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks up a relation by name.
    pub fn get(&self, name: &str) -> Option<Arc<SourceDef>> {
        self.sources.get(name).cloned()
    }

    /// Looks up a relation, with an error naming it when missing.
    pub fn require(&self, name: &str) -> Result<Arc<SourceDef>> {
        self.get(name).ok_or_else(|| {
            SqlError::Unknown(format!(
                "{name} does not exist: no stream or table by that name"
            ))
        })
    }

    /// Adds or replaces a relation.
    pub fn insert(&mut self, def: SourceDef) -> Arc<SourceDef> {
        let def = Arc::new(def);
        self.sources.insert(def.name.clone(), def.clone());
        def
    }

    /// Removes a relation.
    pub fn remove(&mut self, name: &str) -> Option<Arc<SourceDef>> {
        self.sources.remove(name)
    }

    /// All relations, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<SourceDef>> {
        self.sources.values()
    }

    /// The relation reading or writing a topic, if any.
    pub fn by_topic(&self, topic: &str) -> Option<Arc<SourceDef>> {
        self.sources.values().find(|s| s.topic == topic).cloned()
    }
}
