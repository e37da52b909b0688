//! The engine: executes statements against a catalog, starts and stops queries, and owns the
//! in-memory topics and the processing log. The shell, `riffle run`, the server and the
//! conformance runner all drive this one type.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use riffle_sql::ast::{
    CreateAsSelect, CreateSource, CreateView, ExplainTarget, PropertyValue, Query, ShowKind,
    SourceKind, Statement, StatementKind,
};
use riffle_sql::catalog::{
    Catalog, Column, Connector, Defaults, FormatKind, FormatSpec, SourceDef, connector_from,
    formats_from, prop, resolve_column_name, source_from_create, view_from_create,
};
use riffle_sql::expr::{ExprPlanner, Scope};
use riffle_sql::plan::{PlanNode, QueryPlan, ROWTIME, StreamSchema};
use riffle_sql::planner::Planner;
use riffle_sql::types::display_arrow;
use riffle_udfs::FunctionRegistry;
use tokio::sync::mpsc;

use crate::config::EngineConfig;
use crate::connectors::kafka::{self, KafkaProducer};
use crate::connectors::memory::{ReadGate, TopicStore};
use crate::error::{EngineError, Result};
use crate::formats::RecordEncoder;
use crate::processing_log::ProcessingLog;
use crate::query::{QueryHandle, QueryKind};
use crate::record::Record;
use crate::runtime::build::{Services, SinkSpec, launch};
use crate::runtime::checkpointer::{Durability, resume_point};
use crate::state::QueryStateDir;

/// A push query streaming rows to its client.
pub struct TransientQuery {
    /// The running query.
    pub handle: Arc<QueryHandle>,
    /// Result columns (keys first).
    pub columns: Vec<Column>,
    /// Result layout.
    pub schema: StreamSchema,
    /// Batches in the result layout (with change kinds), as they are produced.
    pub rows: mpsc::UnboundedReceiver<RecordBatch>,
    /// Stop after this many rows.
    pub limit: Option<u64>,
}

/// What a statement did.
pub enum StatementResult {
    /// A stream or table was declared.
    Created {
        /// Stream or table.
        kind: SourceKind,
        /// Its name.
        name: String,
    },
    /// A persistent query started.
    QueryStarted {
        /// Query id.
        query_id: String,
        /// The relation it writes.
        sink: String,
    },
    /// Rows were inserted.
    Inserted {
        /// Target relation.
        target: String,
    },
    /// A relation was dropped.
    Dropped {
        /// Its name.
        name: String,
    },
    /// Queries were terminated.
    Terminated {
        /// Their ids.
        ids: Vec<String>,
    },
    /// A table of text (SHOW, PRINT).
    Listing {
        /// Column headers.
        headers: Vec<String>,
        /// Rows.
        rows: Vec<Vec<String>>,
    },
    /// Free text (DESCRIBE, EXPLAIN).
    Text(String),
    /// A session property was set or unset.
    Property {
        /// Property name.
        name: String,
        /// New value (`None` when unset).
        value: Option<String>,
    },
    /// A push query is running.
    Transient(TransientQuery),
    /// The rows of a pull query.
    Pull(crate::pull::PullResult),
}

impl std::fmt::Debug for StatementResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatementResult::Created { kind, name } => write!(f, "Created {kind} {name}"),
            StatementResult::QueryStarted { query_id, sink } => {
                write!(f, "Started {query_id} -> {sink}")
            }
            StatementResult::Inserted { target } => write!(f, "Inserted into {target}"),
            StatementResult::Dropped { name } => write!(f, "Dropped {name}"),
            StatementResult::Terminated { ids } => write!(f, "Terminated {ids:?}"),
            StatementResult::Listing { headers, rows } => {
                write!(f, "Listing {headers:?} ({} rows)", rows.len())
            }
            StatementResult::Text(t) => write!(f, "{t}"),
            StatementResult::Property { name, value } => write!(f, "Property {name}={value:?}"),
            StatementResult::Transient(t) => write!(f, "Transient query {}", t.handle.id),
            StatementResult::Pull(p) => write!(f, "Pull query ({} rows)", p.batch.num_rows()),
        }
    }
}

/// The streaming SQL engine.
pub struct Engine {
    config: EngineConfig,
    catalog: RwLock<Catalog>,
    registry: FunctionRegistry,
    topics: Arc<TopicStore>,
    log: Arc<ProcessingLog>,
    queries: Mutex<BTreeMap<String, Arc<QueryHandle>>>,
    properties: Mutex<BTreeMap<String, String>>,
    query_counter: AtomicU64,
    /// Numbers push and pull queries apart from persistent ones, so a persistent query's id
    /// (and with it its state directory and consumer group) depends only on the statements
    /// that created persistent queries before it.
    transient_counter: AtomicU64,
    stepped: bool,
    producer: std::sync::OnceLock<Arc<KafkaProducer>>,
}

impl Engine {
    /// An engine with its own in-memory topics.
    pub fn new(config: EngineConfig) -> Result<Self> {
        let topics = Arc::new(TopicStore::new());
        let log = ProcessingLog::new(
            config.processing_log_topic.clone(),
            topics.clone(),
            config.processing_log_file.clone(),
            config.processing_log_stderr,
            config.kafka.clone(),
        )
        .map_err(|e| EngineError::Io {
            context: "opening the processing log file".into(),
            source: e,
        })?;
        Ok(Engine {
            config,
            catalog: RwLock::new(Catalog::new()),
            registry: FunctionRegistry::builtin(),
            topics,
            log: Arc::new(log),
            queries: Mutex::new(BTreeMap::new()),
            properties: Mutex::new(BTreeMap::new()),
            query_counter: AtomicU64::new(0),
            transient_counter: AtomicU64::new(0),
            stepped: false,
            producer: std::sync::OnceLock::new(),
        })
    }

    /// An engine whose persistent queries read only what a [`ReadGate`] allows (the conformance
    /// runner feeds records one at a time this way).
    pub fn new_stepped(config: EngineConfig) -> Result<Self> {
        let mut e = Self::new(config)?;
        e.stepped = true;
        Ok(e)
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The in-memory topics.
    pub fn topics(&self) -> &Arc<TopicStore> {
        &self.topics
    }

    /// The processing log.
    pub fn processing_log(&self) -> &Arc<ProcessingLog> {
        &self.log
    }

    /// The function registry.
    pub fn registry(&self) -> &FunctionRegistry {
        &self.registry
    }

    /// A snapshot of the catalog.
    pub fn catalog(&self) -> Catalog {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The session properties set with `SET`.
    pub fn properties(&self) -> BTreeMap<String, String> {
        self.properties
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets a session property (as `SET 'name'='value'` does).
    pub fn set_property(&self, name: &str, value: &str) {
        self.properties
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), value.to_string());
    }

    /// A running query by id.
    pub fn query(&self, id: &str) -> Option<Arc<QueryHandle>> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// All queries, by id.
    pub fn queries(&self) -> Vec<Arc<QueryHandle>> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn defaults(&self) -> Defaults {
        let p = self.properties.lock().unwrap_or_else(|e| e.into_inner());
        Defaults {
            key_format: p.get("ksql.persistence.default.format.key").cloned(),
            value_format: p.get("ksql.persistence.default.format.value").cloned(),
            wrap_single_values: p
                .get("ksql.persistence.wrap.single.values")
                .map(|v| v.eq_ignore_ascii_case("true")),
            topic_prefix: p
                .get("ksql.output.topic.name.prefix")
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn services(&self) -> Services {
        let props = self.properties();
        Services {
            config: self.config.clone(),
            topics: self.topics.clone(),
            log: self.log.clone(),
            snapshot: false,
            from_end: false,
            kafka_from_end: props
                .get("auto.offset.reset")
                .is_some_and(|v| v.eq_ignore_ascii_case("latest")),
            exactly_once: self.exactly_once(),
        }
    }

    /// Whether Kafka sinks write transactions (`processing.guarantee`, default exactly-once).
    fn exactly_once(&self) -> bool {
        self.properties()
            .get("processing.guarantee")
            .is_none_or(|v| !v.eq_ignore_ascii_case("at_least_once"))
    }

    /// The time between checkpoints of a query writing `def`: its `CHECKPOINT_INTERVAL`, the
    /// session's `checkpoint.interval`, or the engine's.
    fn checkpoint_interval(&self, def: &SourceDef) -> Result<std::time::Duration> {
        let text = prop(&def.properties, "CHECKPOINT_INTERVAL")
            .or_else(|| self.properties().get("checkpoint.interval").cloned());
        match text {
            None => Ok(self.config.checkpoint_interval),
            Some(t) => parse_duration(&t).ok_or_else(|| {
                EngineError::Catalog(format!(
                    "checkpoint interval '{t}' is not a duration: use milliseconds or a number \
                     with ms, s or min, e.g. '500ms' or '10s'"
                ))
            }),
        }
    }

    /// Durability of a persistent query: where it checkpoints and what it resumes.
    fn durability(
        &self,
        id: &str,
        plan: &QueryPlan,
        def: &SourceDef,
    ) -> Result<Option<Durability>> {
        let Some(root) = &self.config.state_dir else {
            return Ok(None);
        };
        if self.stepped {
            return Ok(None);
        }
        let dir = QueryStateDir::new(root, id);
        let plan_hash = plan_hash(plan, def, self.config.parallelism);
        let transactional =
            self.config.kafka.is_some() && def.connector == Connector::Topic && self.exactly_once();
        let interval = self.checkpoint_interval(def)?;
        // The transactional producer starts first: initialising its `transactional.id` fences
        // any earlier instance of the query and settles its open transaction, so the committed
        // epoch read next cannot change under us.
        let producer = match (&self.config.kafka, transactional) {
            (Some(k), true) => Some(Arc::new(KafkaProducer::new(
                k,
                Some(&kafka::transactional_id(k, id)),
            )?)),
            _ => None,
        };
        let resume = resume_point(&self.config, &dir, id, &plan_hash, transactional)?;
        let resumed = resume.as_ref().map(|m| m.epoch).unwrap_or(0);
        if let Some(p) = &producer {
            p.set_epoch(resumed + 1);
            tracing::info!(
                target: crate::runtime::checkpointer::LOG_TARGET,
                "query {id}: run {} resumes after checkpoint {resumed}",
                p.run_id()
            );
        }
        Ok(Some(Durability {
            dir,
            resume,
            plan_hash,
            interval,
            keep: self.config.checkpoints_kept,
            producer,
        }))
    }

    /// Creates (with declared `PARTITIONS`) or checks the Kafka topic of a relation.
    fn prepare_topic(&self, def: &SourceDef, create: bool) -> Result<()> {
        if def.connector != Connector::Topic {
            return Ok(());
        }
        let Some(k) = &self.config.kafka else {
            self.topics
                .get_or_create(&def.topic, self.partitions_for(def));
            return Ok(());
        };
        let declared = prop(&def.properties, "PARTITIONS").is_some();
        if create || declared {
            let replicas = prop(&def.properties, "REPLICAS")
                .and_then(|r| r.parse::<i32>().ok())
                .unwrap_or(1);
            let n = kafka::ensure_topic(k, &def.topic, def.partitions.max(1) as usize, replicas)?;
            if declared && n != def.partitions.max(1) as usize {
                return Err(EngineError::Catalog(format!(
                    "kafka topic {} exists with {n} partitions, but {} declares PARTITIONS={}",
                    def.topic, def.name, def.partitions
                )));
            }
            return Ok(());
        }
        match kafka::partition_count(k, &def.topic)? {
            Some(_) => Ok(()),
            None => Err(EngineError::Catalog(format!(
                "kafka topic {} does not exist: create it, or declare PARTITIONS in the WITH \
                 clause of {} to have riffle create it",
                def.topic, def.name
            ))),
        }
    }

    /// A producer for statements that write records themselves (`INSERT … VALUES`).
    fn kafka_producer(&self) -> Result<Arc<KafkaProducer>> {
        if let Some(p) = self.producer.get() {
            return Ok(p.clone());
        }
        let k = self
            .config
            .kafka
            .as_ref()
            .ok_or_else(|| EngineError::Connector("internal: no Kafka cluster".into()))?;
        let p = Arc::new(KafkaProducer::new(k, None)?);
        Ok(self.producer.get_or_init(|| p).clone())
    }

    fn partitions_for(&self, def: &SourceDef) -> usize {
        if self.config.single_partition_topics {
            1
        } else {
            def.partitions.max(1) as usize
        }
    }

    /// Parses and executes a script, statement by statement, stopping at the first error.
    pub async fn execute(&self, sql: &str) -> Result<Vec<StatementResult>> {
        let statements = riffle_sql::parse_script(sql)?;
        let mut out = Vec::new();
        for s in &statements {
            out.push(self.execute_statement(s).await?);
        }
        Ok(out)
    }

    /// Executes one parsed statement.
    pub async fn execute_statement(&self, stmt: &Statement) -> Result<StatementResult> {
        self.execute_statement_with(stmt, &BTreeMap::new()).await
    }

    /// Executes one statement with request-scoped properties overriding the session's (as
    /// ksqlDB's `streamsProperties`), e.g. `auto.offset.reset` for one push query.
    pub async fn execute_statement_with(
        &self,
        stmt: &Statement,
        overrides: &BTreeMap<String, String>,
    ) -> Result<StatementResult> {
        if let StatementKind::Select(q) = &stmt.kind {
            return self.select(q, &stmt.text, overrides).await;
        }
        match &stmt.kind {
            StatementKind::CreateSource(c) => self.create_source(c, &stmt.text),
            StatementKind::CreateView(v) => self.create_view(v, &stmt.text),
            StatementKind::CreateAsSelect(c) => self.create_as_select(c, &stmt.text),
            StatementKind::InsertInto { target, query } => {
                self.insert_into(target, query, &stmt.text)
            }
            StatementKind::InsertValues {
                target,
                columns,
                values,
            } => self.insert_values(target, columns.as_deref(), values),
            StatementKind::Select(q) => self.select(q, &stmt.text, overrides).await,
            StatementKind::Terminate { query_id } => self.terminate(query_id.as_deref()).await,
            StatementKind::Drop {
                kind,
                name,
                if_exists,
                delete_topic,
            } => {
                self.drop_source(*kind, name, *if_exists, *delete_topic)
                    .await
            }
            StatementKind::Show(kind) => Ok(self.show(kind)),
            StatementKind::Describe { name, extended } => self.describe(name, *extended),
            StatementKind::DescribeFunction(name) => self.describe_function(name),
            StatementKind::Explain(target) => self.explain(target),
            StatementKind::Print { topic, limit, .. } => self.print(topic, *limit),
            StatementKind::Set { name, value } => {
                self.set_property(name, value);
                Ok(StatementResult::Property {
                    name: name.clone(),
                    value: Some(value.clone()),
                })
            }
            StatementKind::Unset(name) => {
                self.properties
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                Ok(StatementResult::Property {
                    name: name.clone(),
                    value: None,
                })
            }
        }
    }

    /// Types and plans the computed columns of a new relation: each is planned over the declared
    /// columns only (a computed column cannot read another), then compiled over the full layout.
    fn plan_computed(&self, def: &mut SourceDef) -> Result<()> {
        if def.computed.is_empty() {
            return Ok(());
        }
        let mut declared = def.clone();
        declared
            .columns
            .retain(|c| !def.computed.iter().any(|cc| cc.name == c.name));
        let scope = Planner::source_scope(&declared, &def.name);
        for cc in &def.computed {
            let planned =
                ExprPlanner::new(scope.clone(), &self.registry).plan_physical(&cc.expr)?;
            if let Some(col) = def.columns.iter_mut().find(|c| c.name == cc.name) {
                col.data_type = planned.data_type.clone();
            }
        }
        let scope = Planner::source_scope(def, &def.name);
        let mut computed = std::mem::take(&mut def.computed);
        for cc in &mut computed {
            cc.planned =
                Some(ExprPlanner::new(scope.clone(), &self.registry).plan_physical(&cc.expr)?);
        }
        def.computed = computed;
        Ok(())
    }

    /// `CREATE VIEW`: records the query; it is planned afresh wherever the view is read.
    fn create_view(&self, v: &CreateView, sql: &str) -> Result<StatementResult> {
        if let Some(existing) = self
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&v.name)
        {
            if v.if_not_exists {
                return Ok(StatementResult::Created {
                    kind: existing.kind,
                    name: existing.name.clone(),
                });
            }
            if !v.or_replace {
                return Err(EngineError::Catalog(format!(
                    "cannot create view {}: a relation with that name already exists",
                    v.name
                )));
            }
        }
        let plan = self.plan_for_client(&v.query)?;
        let timestamp = self.view_time_attribute(&v.query);
        let def = view_from_create(v, plan.columns.clone(), timestamp, sql);
        let name = def.name.clone();
        self.catalog
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def);
        Ok(StatementResult::Created {
            kind: SourceKind::Stream,
            name,
        })
    }

    /// The output column of a view that passes its source's event-time column through
    /// unchanged, which makes it the view's time attribute (usable in window TVFs).
    fn view_time_attribute(&self, q: &Query) -> Option<String> {
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        riffle_sql::catalog::view_time_attribute(&catalog, q)
    }

    fn create_source(&self, c: &CreateSource, sql: &str) -> Result<StatementResult> {
        let mut def = source_from_create(c, sql, &self.defaults())?;
        self.plan_computed(&mut def)?;
        {
            let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
            if let Some(existing) = catalog.get(&def.name) {
                if c.if_not_exists {
                    return Ok(StatementResult::Created {
                        kind: existing.kind,
                        name: existing.name.clone(),
                    });
                }
                if !c.or_replace {
                    return Err(EngineError::Catalog(format!(
                        "cannot create {} {}: a {} with that name already exists",
                        c.kind,
                        def.name,
                        existing.kind.to_string().to_lowercase()
                    )));
                }
            }
        }
        self.prepare_topic(&def, false)?;
        let name = def.name.clone();
        let kind = def.kind;
        self.catalog
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def);
        Ok(StatementResult::Created { kind, name })
    }

    fn plan(&self, q: &Query) -> Result<QueryPlan> {
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        Ok(Planner::new(&catalog, &self.registry).plan_query(q)?)
    }

    /// Plans a push or pull query answered to a client.
    fn plan_for_client(&self, q: &Query) -> Result<QueryPlan> {
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        Ok(Planner::new(&catalog, &self.registry)
            .for_client()
            .plan_query(q)?)
    }

    /// Builds the definition of the relation a `CREATE … AS SELECT` writes.
    fn sink_def(&self, c: &CreateAsSelect, plan: &QueryPlan, sql: &str) -> Result<SourceDef> {
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        let source = catalog.require(c.query.base_source())?;
        let defaults = self.defaults();
        let has_keys = plan.columns.iter().any(|col| col.key);
        let connector = connector_from(&c.properties)?;
        let inherited =
            (connector == Connector::Topic).then_some((&source.key_format, &source.value_format));
        let mut props = c.properties.clone();
        if connector != Connector::Topic
            && prop(&props, "VALUE_FORMAT").is_none()
            && prop(&props, "FORMAT").is_none()
        {
            props.insert("VALUE_FORMAT".into(), PropertyValue::String("JSON".into()));
        }
        let (mut key_format, value_format) = formats_from(&props, &defaults, inherited, has_keys)?;
        if !has_keys && prop(&props, "KEY_FORMAT").is_none() && prop(&props, "FORMAT").is_none() {
            key_format = FormatSpec::new(FormatKind::None);
        }
        let key_count = plan.columns.iter().filter(|col| col.key).count();
        if key_format.kind == FormatKind::Kafka
            && (key_count > 1
                || plan
                    .columns
                    .iter()
                    .any(|col| col.key && col.data_type.is_nested()))
        {
            // The KAFKA format holds one primitive; compound keys need JSON.
            key_format = FormatSpec::new(FormatKind::Json);
        }
        let topic = match prop(&c.properties, "KAFKA_TOPIC") {
            Some(t) => t,
            None => format!("{}{}", defaults.topic_prefix, c.name),
        };
        let timestamp = prop(&c.properties, "TIMESTAMP")
            .map(|t| resolve_column_name(&plan.columns, &t))
            .transpose()?;
        let partitions = match prop(&c.properties, "PARTITIONS") {
            Some(p) => p.parse().map_err(|_| {
                EngineError::Catalog(format!("PARTITIONS must be a number, got {p}"))
            })?,
            None => source.partitions,
        };
        Ok(SourceDef {
            name: c.name.clone(),
            kind: c.kind,
            columns: plan.columns.clone(),
            topic,
            key_format,
            value_format,
            timestamp,
            timestamp_format: prop(&c.properties, "TIMESTAMP_FORMAT"),
            window: plan.window,
            connector,
            partitions,
            is_source: false,
            watermark_delay_ms: 0,
            sql: sql.to_string(),
            properties: c.properties.clone(),
            computed: Vec::new(),
            view: None,
        })
    }

    fn next_query_id(&self, prefix: &str, sink: Option<&str>) -> String {
        let n = self.query_counter.fetch_add(1, Ordering::SeqCst);
        match sink {
            Some(s) => format!("{prefix}_{}_{n}", s.to_uppercase()),
            None => format!("{prefix}_{n}"),
        }
    }

    fn start_persistent(
        &self,
        id: String,
        sql: &str,
        plan: QueryPlan,
        def: Arc<SourceDef>,
    ) -> Result<StatementResult> {
        let gate = self.stepped.then(|| Arc::new(ReadGate::default()));
        let durability = self.durability(&id, &plan, &def)?;
        let handle = launch(
            &id,
            sql,
            plan,
            SinkSpec::Relation(def.clone()),
            Some(def.name.clone()),
            QueryKind::Persistent,
            &self.services(),
            gate,
            durability,
        )?;
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Arc::new(handle));
        Ok(StatementResult::QueryStarted {
            query_id: id,
            sink: def.name.clone(),
        })
    }

    fn create_as_select(&self, c: &CreateAsSelect, sql: &str) -> Result<StatementResult> {
        let plan = self.plan(&c.query)?;
        if plan.kind != c.kind {
            let (made, wanted) = (plan.kind, c.kind);
            return Err(EngineError::Catalog(format!(
                "invalid result type: the SELECT produces a {made}, so use CREATE {made} AS SELECT instead of CREATE {wanted} AS SELECT"
            )));
        }
        let existing = self
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&c.name);
        if let Some(existing) = &existing {
            if c.if_not_exists {
                return Ok(StatementResult::Created {
                    kind: existing.kind,
                    name: existing.name.clone(),
                });
            }
            if !c.or_replace {
                return Err(EngineError::Catalog(format!(
                    "cannot create {} {}: a relation with that name already exists",
                    c.kind, c.name
                )));
            }
        }
        let def = self.sink_def(c, &plan, sql)?;
        let prefix = if c.kind == SourceKind::Stream {
            "CSAS"
        } else {
            "CTAS"
        };
        let id = match existing.as_ref().and_then(|_| self.writer_of(&c.name)) {
            Some(old) => {
                // CREATE OR REPLACE keeps the query id and replaces its plan.
                if let Some(h) = self
                    .queries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&old)
                {
                    h.stop();
                }
                old
            }
            None => self.next_query_id(prefix, Some(&c.name)),
        };
        let def = self
            .catalog
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def);
        self.prepare_topic(&def, true)?;
        self.start_persistent(id, sql, plan, def)
    }

    fn writer_of(&self, relation: &str) -> Option<String> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|q| q.sink.as_deref() == Some(relation) && q.kind == QueryKind::Persistent)
            .map(|q| q.id.clone())
    }

    fn insert_into(&self, target: &str, q: &Query, sql: &str) -> Result<StatementResult> {
        let def = self
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .require(target)?;
        if def.view.is_some() {
            return Err(EngineError::Catalog(format!(
                "{target} is a view and cannot be written"
            )));
        }
        if def.connector != Connector::Topic && def.key_columns().next().is_none() {
            // Flink-style sink: columns by position, cast to the sink's types; changelogs allowed.
            let plan = Planner::conform_to(self.plan_for_client(q)?, &def)?;
            let id = self.next_query_id("INSERTQUERY", None);
            return self.start_persistent(id, sql, plan, def);
        }
        let plan = self.plan(q)?;
        if def.kind != SourceKind::Stream || plan.kind != SourceKind::Stream {
            return Err(EngineError::Catalog(format!(
                "INSERT INTO … SELECT writes streams only; {target} is a {} and the query produces a {}",
                def.kind, plan.kind
            )));
        }
        let target_cols: Vec<(String, bool, String)> = def
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.key, display_arrow(&c.data_type)))
            .collect();
        let query_cols: Vec<(String, bool, String)> = plan
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.key, display_arrow(&c.data_type)))
            .collect();
        if target_cols != query_cols {
            return Err(EngineError::Catalog(format!(
                "incompatible schema: {target} has ({}) but the query produces ({})",
                fmt_cols(&target_cols),
                fmt_cols(&query_cols)
            )));
        }
        let id = self.next_query_id("INSERTQUERY", None);
        self.start_persistent(id, sql, plan, def)
    }

    fn insert_values(
        &self,
        target: &str,
        columns: Option<&[String]>,
        values: &[datafusion::sql::sqlparser::ast::Expr],
    ) -> Result<StatementResult> {
        let def = self
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .require(target)?;
        let names: Vec<String> = match columns {
            Some(c) => c.to_vec(),
            None => def.columns.iter().map(|c| c.name.clone()).collect(),
        };
        if names.len() != values.len() {
            return Err(EngineError::Catalog(format!(
                "INSERT INTO {target}: {} column(s) but {} value(s)",
                names.len(),
                values.len()
            )));
        }
        let empty = Schema::empty();
        let one_row = RecordBatch::try_new_with_options(
            Arc::new(empty),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        let mut planner = ExprPlanner::new(Scope::default(), &self.registry);
        let mut given: BTreeMap<String, ArrayRef> = BTreeMap::new();
        let mut rowtime = None;
        for (n, v) in names.iter().zip(values) {
            let p = planner.plan_physical(v)?;
            let arr = p.physical.evaluate(&one_row)?.into_array(1)?;
            if n == ROWTIME {
                let a = cast(&arr, &DataType::Int64)?;
                rowtime = datafusion::common::ScalarValue::try_from_array(&a, 0)?
                    .try_into()
                    .ok()
                    .and_then(|v: i64| (v >= 0).then_some(v));
                continue;
            }
            let col = def.column(n).ok_or_else(|| {
                EngineError::Catalog(format!("INSERT INTO {target}: no column named {n}"))
            })?;
            given.insert(n.clone(), cast(&arr, &col.data_type)?);
        }
        self.insert_arrays(&def, given, rowtime)?;
        Ok(StatementResult::Inserted {
            target: target.to_string(),
        })
    }

    /// Appends one row, given as column arrays of length 1, to a topic-backed relation.
    fn insert_arrays(
        &self,
        def: &SourceDef,
        mut given: BTreeMap<String, ArrayRef>,
        rowtime: Option<i64>,
    ) -> Result<()> {
        let target = &def.name;
        let schema = Planner::source_schema(def);
        let mut cols: Vec<ArrayRef> = Vec::new();
        for c in def.key_columns().chain(def.value_columns()) {
            cols.push(
                given
                    .remove(&c.name)
                    .unwrap_or_else(|| datafusion::arrow::array::new_null_array(&c.data_type, 1)),
            );
        }
        let ts = rowtime.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        if schema.windowed {
            return Err(EngineError::Catalog(format!(
                "cannot INSERT VALUES into the windowed {target}"
            )));
        }
        cols.push(Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            ts,
        ])));
        cols.push(Arc::new(datafusion::arrow::array::Int32Array::from(vec![
            0,
        ])));
        cols.push(Arc::new(datafusion::arrow::array::Int64Array::from(vec![
            0,
        ])));
        cols.push(Arc::new(datafusion::arrow::array::Int8Array::from(vec![0])));
        let batch = RecordBatch::try_new(schema.arrow.clone(), cols)?;
        let encoder = RecordEncoder::new(def, &schema).map_err(EngineError::Format)?;
        let key = encoder
            .encode_key(&batch, 0, None)
            .map_err(EngineError::Format)?;
        let value = encoder
            .encode_value(&batch, 0)
            .map_err(EngineError::Format)?;
        if def.connector != Connector::Topic {
            return Err(EngineError::Catalog(format!(
                "INSERT VALUES needs a topic-backed relation; {target} is not"
            )));
        }
        if self.config.kafka.is_some() {
            let p = self.kafka_producer()?;
            p.send(
                &def.topic,
                &Record {
                    key,
                    value,
                    timestamp: ts,
                    headers: vec![],
                },
            )?;
            return p.flush();
        }
        let topic = self
            .topics
            .get_or_create(&def.topic, self.partitions_for(def));
        let partition = match &key {
            Some(k) if topic.partitions() > 1 => {
                crate::operators::sink::partition_for(k, topic.partitions())
            }
            _ => 0,
        };
        topic.append(
            partition,
            Record {
                key,
                value,
                timestamp: ts,
                headers: vec![],
            },
        );
        Ok(())
    }

    /// Appends one row given as a JSON object (column name → value, as the relation's JSON
    /// format would read it; `ROWTIME` sets the record time), as `/inserts-stream` needs.
    pub fn insert_json(
        &self,
        target: &str,
        row: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let def = self
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .require(target)?;
        let mut flat = (*def).clone();
        for c in flat.columns.iter_mut() {
            c.key = false;
        }
        flat.key_format = FormatSpec::new(FormatKind::None);
        flat.value_format = FormatSpec::new(FormatKind::Json);
        flat.window = None;
        let schema = Planner::source_schema(&flat);
        let decoder = crate::formats::RecordDecoder::new(&flat, schema.clone(), "inserts-stream")
            .map_err(EngineError::Format)?;
        let rowtime = row
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(ROWTIME))
            .and_then(|(_, v)| v.as_i64());
        let value = serde_json::to_vec(row).map_err(|e| EngineError::Format(e.to_string()))?;
        let record = crate::record::SourceRecord {
            partition: 0,
            offset: 0,
            record: Arc::new(Record {
                key: None,
                value: Some(value),
                timestamp: rowtime.unwrap_or(0),
                headers: vec![],
            }),
            topic: Arc::from(target),
        };
        let decoded = decoder.decode(&[record]);
        if let Some(e) = decoded.errors.first() {
            return Err(EngineError::Format(e.message.clone()));
        }
        let mut given = BTreeMap::new();
        for (i, f) in schema.value_fields().iter().enumerate() {
            let present = row.keys().any(|k| k.eq_ignore_ascii_case(f.name()));
            if present {
                given.insert(
                    f.name().clone(),
                    decoded.batch.column(schema.key_count + i).clone(),
                );
            }
        }
        self.insert_arrays(&def, given, rowtime)
    }

    async fn select(
        &self,
        q: &Query,
        sql: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<StatementResult> {
        if q.emit.is_none() {
            return self.pull(q, sql).await;
        }
        let plan = self.plan_for_client(q)?;
        // Push queries start at the end of their topics unless asked for earliest, as ksqlDB.
        let reset = overrides
            .get("auto.offset.reset")
            .cloned()
            .or_else(|| self.properties().get("auto.offset.reset").cloned())
            .unwrap_or_else(|| "latest".to_string());
        let mut services = self.services();
        services.from_end = !reset.eq_ignore_ascii_case("earliest");
        let id = format!(
            "transient_{}_{}",
            q.base_source(),
            self.transient_counter.fetch_add(1, Ordering::SeqCst)
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let columns = plan.columns.clone();
        let schema = plan.root.schema().clone();
        let limit = plan.limit;
        let handle = launch(
            &id,
            sql,
            plan,
            SinkSpec::Channel(tx),
            None,
            QueryKind::Transient,
            &services,
            None,
            None,
        )?;
        let handle = Arc::new(handle);
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), handle.clone());
        Ok(StatementResult::Transient(TransientQuery {
            handle,
            columns,
            schema,
            rows: rx,
            limit,
        }))
    }

    /// Answers a pull query from the relation's current contents.
    async fn pull(&self, q: &Query, sql: &str) -> Result<StatementResult> {
        use crate::pull;
        pull::check_shape(q)?;
        let plan = self.plan_for_client(q)?;
        let (source, steps) = pull::steps(&plan)?;
        pull::check_source(source)?;
        let PlanNode::Source(src) = source else {
            return Err(EngineError::Catalog(
                "internal: pull query without a source".into(),
            ));
        };
        let source_plan = QueryPlan {
            root: source.clone(),
            kind: src.def.kind,
            columns: src.def.columns.clone(),
            window: src.def.window,
            emit: riffle_sql::ast::Emit::Changes,
            limit: None,
        };
        let id = format!(
            "pull_{}_{}",
            q.base_source(),
            self.transient_counter.fetch_add(1, Ordering::SeqCst)
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut services = self.services();
        services.snapshot = true;
        let handle = launch(
            &id,
            sql,
            source_plan,
            SinkSpec::Channel(tx),
            None,
            QueryKind::Transient,
            &services,
            None,
            None,
        )?;
        let mut batches = Vec::new();
        while let Some(b) = rx.recv().await {
            batches.push(b);
        }
        if let crate::runtime::coordinator::QueryStatus::Failed(m) = handle.wait().await {
            return Err(EngineError::QueryFailed {
                query: id,
                message: m,
            });
        }
        let layout = source.schema();
        let snapshot = if src.def.kind == SourceKind::Table {
            pull::latest_per_key(layout, &batches)?
        } else {
            datafusion::arrow::compute::concat_batches(&layout.arrow, &batches)?
        };
        let mut ctx = crate::operators::OpContext {
            query: id,
            log: self.log.clone(),
            watermark: i64::MIN,
            metrics: Arc::new(crate::metrics::QueryMetrics::default()),
        };
        let mut batch = pull::finish(&steps, snapshot, &mut ctx)?;
        if let Some(l) = plan.limit {
            batch = batch.slice(0, (l as usize).min(batch.num_rows()));
        }
        Ok(StatementResult::Pull(pull::PullResult {
            columns: plan.columns.clone(),
            schema: plan.root.schema().clone(),
            batch,
        }))
    }

    /// Removes a finished transient query from the query list.
    pub fn forget(&self, id: &str) {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    async fn terminate(&self, id: Option<&str>) -> Result<StatementResult> {
        let handles: Vec<Arc<QueryHandle>> = {
            let mut q = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            match id {
                None => std::mem::take(&mut *q).into_values().collect(),
                Some(id) => {
                    let key = q
                        .keys()
                        .find(|k| k.eq_ignore_ascii_case(id))
                        .cloned()
                        .ok_or_else(|| {
                            EngineError::Catalog(format!("no running query with id {id}"))
                        })?;
                    q.remove(&key).into_iter().collect()
                }
            }
        };
        let mut ids = Vec::new();
        for h in handles {
            h.terminate().await;
            ids.push(h.id.clone());
        }
        Ok(StatementResult::Terminated { ids })
    }

    async fn drop_source(
        &self,
        kind: SourceKind,
        name: &str,
        if_exists: bool,
        delete_topic: bool,
    ) -> Result<StatementResult> {
        let def = self
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name);
        let Some(def) = def else {
            if if_exists {
                return Ok(StatementResult::Dropped {
                    name: name.to_string(),
                });
            }
            return Err(EngineError::Catalog(format!(
                "{kind} {name} does not exist"
            )));
        };
        if def.kind != kind {
            return Err(EngineError::Catalog(format!(
                "{name} is a {}, not a {kind}",
                def.kind
            )));
        }
        let readers: Vec<String> = self
            .queries()
            .iter()
            .filter(|q| q.kind == QueryKind::Persistent && q.sources.contains(&def.name))
            .map(|q| q.id.clone())
            .collect();
        if !readers.is_empty() {
            return Err(EngineError::Catalog(format!(
                "cannot drop {name}: queries read from it ({}); TERMINATE them first",
                readers.join(", ")
            )));
        }
        if let Some(writer) = self.writer_of(&def.name) {
            self.terminate(Some(&writer)).await?;
        }
        self.catalog
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if delete_topic {
            self.topics.delete(&def.topic);
        }
        Ok(StatementResult::Dropped {
            name: name.to_string(),
        })
    }

    fn show(&self, kind: &ShowKind) -> StatementResult {
        let catalog = self.catalog.read().unwrap_or_else(|e| e.into_inner());
        let fmt = |d: &SourceDef| {
            format!(
                "{}/{}",
                d.key_format.kind.name(),
                d.value_format.kind.name()
            )
        };
        match kind {
            ShowKind::Streams | ShowKind::Tables => {
                let want = if *kind == ShowKind::Streams {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                let rows = catalog
                    .all()
                    .filter(|d| d.kind == want)
                    .map(|d| {
                        vec![
                            d.name.clone(),
                            d.topic.clone(),
                            fmt(d),
                            self.writer_of(&d.name).unwrap_or_default(),
                        ]
                    })
                    .collect();
                StatementResult::Listing {
                    headers: vec![
                        "Name".into(),
                        "Topic".into(),
                        "Format (key/value)".into(),
                        "Written by".into(),
                    ],
                    rows,
                }
            }
            ShowKind::Queries => {
                let rows = self
                    .queries()
                    .iter()
                    .map(|q| {
                        vec![
                            q.id.clone(),
                            format!("{:?}", q.status()),
                            q.sink.clone().unwrap_or_else(|| "(client)".into()),
                            q.metrics.rows_in.load(Ordering::Relaxed).to_string(),
                            q.metrics.rows_out.load(Ordering::Relaxed).to_string(),
                            q.errors.total().to_string(),
                            q.sql.clone(),
                        ]
                    })
                    .collect();
                StatementResult::Listing {
                    headers: [
                        "Query ID",
                        "Status",
                        "Sink",
                        "Rows in",
                        "Rows out",
                        "Errors",
                        "Statement",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                    rows,
                }
            }
            ShowKind::Topics => StatementResult::Listing {
                headers: vec!["Topic".into(), "Partitions".into(), "Records".into()],
                rows: self
                    .topics
                    .list()
                    .into_iter()
                    .map(|(n, p, r)| vec![n, p.to_string(), r.to_string()])
                    .collect(),
            },
            ShowKind::Functions => StatementResult::Listing {
                headers: vec!["Function".into(), "Type".into()],
                rows: self
                    .registry
                    .list()
                    .into_iter()
                    .map(|(n, t)| vec![n, t.to_string()])
                    .collect(),
            },
            ShowKind::Properties => StatementResult::Listing {
                headers: vec!["Property".into(), "Value".into()],
                rows: self
                    .properties
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.clone()])
                    .collect(),
            },
        }
    }

    fn describe(&self, name: &str, extended: bool) -> Result<StatementResult> {
        let def = self
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .require(name)?;
        let mut out = format!(
            "Name                 : {}\nType                 : {}\n",
            def.name, def.kind
        );
        out.push_str(&format!(
            "Key format           : {}\nValue format         : {}\n",
            def.key_format.kind.name(),
            def.value_format.kind.name()
        ));
        match &def.connector {
            Connector::Topic => out.push_str(&format!("Topic                : {}\n", def.topic)),
            other => out.push_str(&format!("Connector            : {other:?}\n")),
        }
        if let Some(ts) = &def.timestamp {
            out.push_str(&format!("Timestamp column     : {ts}\n"));
        }
        if let Some(w) = &def.window {
            out.push_str(&format!(
                "Windowed key         : {}{}\n",
                w.window_type.name(),
                w.size_ms.map(|s| format!(" ({s} ms)")).unwrap_or_default()
            ));
        }
        out.push_str("\n Field | Type\n");
        for c in &def.columns {
            out.push_str(&format!(
                " {} | {}{}\n",
                c.name,
                display_arrow(&c.data_type),
                if c.key {
                    if def.kind == SourceKind::Table {
                        " (primary key)"
                    } else {
                        " (key)"
                    }
                } else {
                    ""
                }
            ));
        }
        if extended {
            let queries = self.queries();
            out.push_str("\nQueries that write from this relation:\n");
            for q in queries
                .iter()
                .filter(|q| q.sink.as_deref() == Some(&def.name))
            {
                out.push_str(&format!(
                    " {} ({:?}): {} rows in, {} rows out, {} processing-log entries, state {} bytes\n",
                    q.id,
                    q.status(),
                    q.metrics.rows_in.load(Ordering::Relaxed),
                    q.metrics.rows_out.load(Ordering::Relaxed),
                    q.errors.total(),
                    q.metrics.state_bytes.load(Ordering::Relaxed)
                ));
            }
            out.push_str("Queries that read from this relation:\n");
            for q in queries.iter().filter(|q| q.sources.contains(&def.name)) {
                out.push_str(&format!(" {}\n", q.id));
            }
        }
        Ok(StatementResult::Text(out))
    }

    fn describe_function(&self, name: &str) -> Result<StatementResult> {
        if let Some(d) = self.registry.aggregate_description(name) {
            return Ok(StatementResult::Text(format!(
                "{} (aggregate): {d}",
                name.to_uppercase()
            )));
        }
        match self.registry.scalar(name) {
            Some(f) => Ok(StatementResult::Text(format!(
                "{} (scalar function {})",
                name.to_uppercase(),
                f.name()
            ))),
            None => Err(EngineError::Catalog(format!("unknown function {name}"))),
        }
    }

    fn explain(&self, target: &ExplainTarget) -> Result<StatementResult> {
        match target {
            ExplainTarget::QueryId(id) => {
                let q = self
                    .queries()
                    .into_iter()
                    .find(|q| q.id.eq_ignore_ascii_case(id))
                    .ok_or_else(|| {
                        EngineError::Catalog(format!("no running query with id {id}"))
                    })?;
                Ok(StatementResult::Text(format!(
                    "{}\n{}",
                    q.sql,
                    q.plan.explain()
                )))
            }
            ExplainTarget::Statement(s) => {
                let q = match &s.kind {
                    StatementKind::Select(q) => q,
                    StatementKind::CreateAsSelect(c) => &c.query,
                    StatementKind::InsertInto { query, .. } => query,
                    _ => {
                        return Err(EngineError::Catalog(
                            "EXPLAIN takes a query or a query id".into(),
                        ));
                    }
                };
                let plan = if matches!(s.kind, StatementKind::Select(_)) {
                    self.plan_for_client(q)?
                } else {
                    self.plan(q)?
                };
                Ok(StatementResult::Text(plan.explain()))
            }
        }
    }

    fn print(&self, topic: &str, limit: Option<u64>) -> Result<StatementResult> {
        let headers = ["rowtime", "partition", "offset", "key", "value"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(k) = &self.config.kafka {
            let rows = crate::connectors::kafka::print::print_topic(k, topic, limit)?;
            return Ok(StatementResult::Listing { headers, rows });
        }
        let t = self
            .topics
            .get(topic)
            .or_else(|| self.topics.get(&topic.to_uppercase()))
            .ok_or_else(|| EngineError::Catalog(format!("topic {topic} does not exist")))?;
        let text = |b: &Option<Vec<u8>>| match b {
            None => "<null>".to_string(),
            Some(b) => String::from_utf8(b.clone())
                .unwrap_or_else(|_| crate::formats::convert::b64_encode(b)),
        };
        let rows = t
            .all()
            .into_iter()
            .take(limit.map(|l| l as usize).unwrap_or(usize::MAX))
            .map(|r| {
                vec![
                    r.record.timestamp.to_string(),
                    r.partition.to_string(),
                    r.offset.to_string(),
                    text(&r.record.key),
                    text(&r.record.value),
                ]
            })
            .collect();
        Ok(StatementResult::Listing { headers, rows })
    }

    /// Waits until every persistent query finished (run-until-idle mode) or one failed.
    pub async fn wait_all(&self) -> Result<()> {
        for q in self.queries() {
            if let crate::runtime::coordinator::QueryStatus::Failed(m) = q.wait().await {
                return Err(EngineError::QueryFailed {
                    query: q.id.clone(),
                    message: m,
                });
            }
        }
        Ok(())
    }

    /// Terminates every query.
    pub async fn shutdown(&self) {
        let _ = self.terminate(None).await;
        let log = self.log.clone();
        let _ = tokio::task::spawn_blocking(move || log.flush()).await;
    }
}

/// Reads a duration: milliseconds, or a number with `ms`, `s`, `sec`, `min` or `h`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim().to_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" | "sec" | "second" | "seconds" => n * 1000.0,
        "min" | "minute" | "minutes" => n * 60_000.0,
        "h" | "hour" | "hours" => n * 3_600_000.0,
        _ => return None,
    };
    (ms > 0.0).then(|| std::time::Duration::from_millis(ms as u64))
}

/// Identifies the plan a query's state belongs to: its operators, its sink's topic and formats,
/// and the parallelism (state is partitioned by subtask).
fn plan_hash(plan: &QueryPlan, sink: &SourceDef, parallelism: usize) -> String {
    use sha2::Digest;
    let text = format!(
        "{}\nsink {} {} {}\nparallelism {parallelism}",
        plan.explain(),
        sink.topic,
        sink.key_format.kind.name(),
        sink.value_format.kind.name()
    );
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn fmt_cols(cols: &[(String, bool, String)]) -> String {
    cols.iter()
        .map(|(n, k, t)| format!("{n} {t}{}", if *k { " KEY" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fields of a result, for clients rendering rows.
pub fn result_fields(columns: &[Column]) -> Vec<Field> {
    columns
        .iter()
        .map(|c| Field::new(&c.name, c.data_type.clone(), true))
        .collect()
}
