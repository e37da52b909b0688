//! Turns a streaming plan into running tasks: the plan is cut into stages at exchanges; the first
//! stage runs in one task per source subtask, later stages in `parallelism` tasks each, linked by
//! bounded channels; the last stage ends in the sink.

use std::sync::Arc;

use riffle_sql::ast::{SourceKind, WindowKind};
use riffle_sql::catalog::{Connector, FormatKind, SourceDef};
use riffle_sql::plan::{
    FilterNode, JoinType, PlanNode, ProjectNode, QueryPlan, SourceNode, StreamSchema,
};
use riffle_udfs::scalar::java_time::JavaFormat;
use tokio::sync::mpsc;

use super::checkpointer::{Checkpointer, Durability, GroupCommitter};
use super::coordinator::{Coordinator, QueryStatus};
use super::exchange::{Output, Sender};
use super::source_task::{SourceTask, WatermarkTracker};
use super::stage_task::StageTask;
use super::{Message, SourceCommand};
use crate::config::EngineConfig;
use crate::connectors::SourceReader;
use crate::connectors::datagen::DatagenReader;
use crate::connectors::file::{FileReader, create_sink_file, resume_sink_file};
use crate::connectors::kafka::source::StartOffset;
use crate::connectors::kafka::{self, KafkaProducer, KafkaReader};
use crate::connectors::memory::{MemoryReader, ReadGate, TopicStore};
use crate::connectors::nexmark::NexmarkReader;
use crate::error::{EngineError, Result};
use crate::formats::{RecordDecoder, RecordEncoder};
use crate::metrics::QueryMetrics;
use crate::operators::computed_columns::ComputedColumns;
use crate::operators::filter::FilterOp;
use crate::operators::filter_project::{FilterProjectOp, Step};
use crate::operators::group_aggregate::GroupAggregateOp;
use crate::operators::match_recognize::MatchRecognizeOp;
use crate::operators::project::ProjectOp;
use crate::operators::session_window::SessionWindowOp;
use crate::operators::sink::{SinkOp, SinkTarget};
use crate::operators::stream_stream_join::StreamStreamJoinOp;
use crate::operators::stream_table_join::StreamTableJoinOp;
use crate::operators::table_source::TableSourceOp;
use crate::operators::table_table_join::TableTableJoinOp;
use crate::operators::window_aggregate::WindowAggregateOp;
use crate::operators::{Chain, OpContext, Operator, OperatorState};
use crate::processing_log::ProcessingLog;
use crate::query::{QueryHandle, QueryKind};
use crate::state::{Manifest, StateStore};

/// Where a query's results go.
#[derive(Clone)]
pub enum SinkSpec {
    /// A relation (topic, file, stdout, blackhole).
    Relation(Arc<SourceDef>),
    /// A client channel (transient queries).
    Channel(mpsc::UnboundedSender<datafusion::arrow::array::RecordBatch>),
}

/// Shared services a query needs.
pub struct Services {
    /// Engine configuration.
    pub config: EngineConfig,
    /// In-memory topics.
    pub topics: Arc<TopicStore>,
    /// Processing log.
    pub log: Arc<ProcessingLog>,
    /// Read sources up to what they hold now, then end (pull queries).
    pub snapshot: bool,
    /// Start reading topics at their current end (push queries with
    /// `auto.offset.reset = latest`).
    pub from_end: bool,
    /// Persistent queries start Kafka partitions without a checkpoint at their end
    /// (`auto.offset.reset = latest`) instead of their beginning.
    pub kafka_from_end: bool,
    /// Kafka sinks of durable queries write one transaction per checkpoint
    /// (`processing.guarantee = exactly_once`).
    pub exactly_once: bool,
}

/// What the sink of a query is given besides its definition.
#[derive(Clone, Default)]
struct SinkResources {
    /// The producer of a Kafka sink.
    producer: Option<Arc<KafkaProducer>>,
    /// The checkpoint being resumed (file sinks continue from its length).
    resume: Option<Manifest>,
}

/// The key under which a source's positions are checkpointed.
fn position_key(stage: usize, topic: &str) -> String {
    format!("s{stage}:{topic}")
}

/// The key under which a source subtask's event times are checkpointed.
fn subtask_key(stage: usize, topic: &str, subtask: usize) -> String {
    format!("s{stage}:{topic}#{subtask}")
}

/// A source subtask's reader and, for record-yielding connectors, its decoder.
type Reader = (SourceReader, Option<RecordDecoder>);

/// What feeds a stage.
enum StageInput<'a> {
    /// A relation read by source tasks.
    Source(&'a SourceNode),
    /// Upstream stages (one, or two for a join) with the key width they shuffle by.
    Upstreams(Vec<(usize, usize)>),
}

/// A group of operators run together in one task per subtask.
struct StageDef<'a> {
    input: StageInput<'a>,
    ops: Vec<&'a PlanNode>,
}

/// Cuts the plan into stages at exchanges and joins; returns the stage id of `node`.
fn collect_stages<'a>(node: &'a PlanNode, stages: &mut Vec<StageDef<'a>>) -> Result<usize> {
    let mut ops: Vec<&'a PlanNode> = Vec::new();
    let mut cur = node;
    let input = loop {
        match cur {
            PlanNode::Source(s) => break StageInput::Source(s),
            PlanNode::Exchange(e) => {
                let up = collect_stages(&e.input, stages)?;
                break StageInput::Upstreams(vec![(up, e.input.schema().key_count)]);
            }
            PlanNode::Join(j) => {
                let mut ups = Vec::new();
                for side in [&j.left, &j.right] {
                    let PlanNode::Exchange(e) = side.as_ref() else {
                        return Err(EngineError::DataFusion(
                            "internal: join inputs must be exchanges".into(),
                        ));
                    };
                    let up = collect_stages(&e.input, stages)?;
                    ups.push((up, e.input.schema().key_count));
                }
                ops.push(cur);
                break StageInput::Upstreams(ups);
            }
            PlanNode::Filter(f) => {
                ops.push(cur);
                cur = &f.input;
            }
            PlanNode::Project(p) => {
                ops.push(cur);
                cur = &p.input;
            }
            PlanNode::Aggregate(a) => {
                ops.push(cur);
                cur = &a.input;
            }
            PlanNode::MatchRecognize(m) => {
                ops.push(cur);
                cur = &m.input;
            }
        }
    };
    ops.reverse();
    stages.push(StageDef { input, ops });
    Ok(stages.len() - 1)
}

fn filter_op(f: &FilterNode) -> FilterOp {
    let input = f.input.schema();
    FilterOp::new(
        f.predicate.physical.clone(),
        input.kind == SourceKind::Stream,
        input.op(),
    )
}

fn project_op(p: &ProjectNode) -> ProjectOp {
    ProjectOp::new(
        p.exprs.iter().map(|e| e.physical.clone()).collect(),
        p.input.schema().clone(),
        p.schema.clone(),
        p.drop_null_keys,
    )
}

/// The run of filters and picking projections starting at `nodes[at]`, as one operator, and
/// how many nodes it covers.
fn fused(nodes: &[&PlanNode], at: usize) -> Option<(FilterProjectOp, usize)> {
    let mut steps = Vec::new();
    let mut prev: Option<&PlanNode> = None;
    for &node in &nodes[at..] {
        let (input, step) = match node {
            PlanNode::Filter(f) => (&f.input, Step::Filter(filter_op(f))),
            PlanNode::Project(p) => (&p.input, Step::Project(project_op(p))),
            _ => break,
        };
        let chained = prev.is_none_or(|p| std::ptr::eq(input.as_ref(), p));
        if !chained || !FilterProjectOp::admits(&steps, &step) {
            break;
        }
        steps.push(step);
        prev = Some(node);
    }
    let covered = steps.len();
    FilterProjectOp::fuse(steps).map(|op| (op, covered))
}

fn operator_for(node: &PlanNode, state: OperatorState) -> Result<Option<Box<dyn Operator>>> {
    Ok(match node {
        PlanNode::Source(_) | PlanNode::Exchange(_) => None,
        PlanNode::Join(j) => Some(match j.join_type {
            JoinType::StreamStream { .. } => {
                Box::new(StreamStreamJoinOp::new(j, state)?) as Box<dyn Operator>
            }
            JoinType::StreamTable => Box::new(StreamTableJoinOp::new(j, state)?),
            JoinType::TableTable | JoinType::ForeignKey => {
                Box::new(TableTableJoinOp::new(j, state)?)
            }
        }),
        PlanNode::Filter(f) => Some(Box::new(filter_op(f))),
        PlanNode::Project(p) => Some(Box::new(project_op(p))),
        PlanNode::MatchRecognize(m) => Some(Box::new(MatchRecognizeOp::new(m, state)?)),
        PlanNode::Aggregate(a) => match a.window.as_ref().map(|w| &w.kind) {
            None => Some(Box::new(GroupAggregateOp::new(a, state)?)),
            Some(WindowKind::Session { .. }) => Some(Box::new(SessionWindowOp::new(a, state)?)),
            Some(_) => Some(Box::new(WindowAggregateOp::new(a, state)?)),
        },
    })
}

/// A definition whose every column is read from the record value (files and generators have no
/// separate key).
fn all_value_def(def: &SourceDef) -> SourceDef {
    let mut d = def.clone();
    for c in d.columns.iter_mut() {
        c.key = false;
    }
    d.key_format = riffle_sql::catalog::FormatSpec::new(FormatKind::None);
    d
}

/// The computed-column step of a source, if it declares computed columns.
fn computed_columns(src: &SourceNode) -> Result<Option<ComputedColumns>> {
    let def = &src.def;
    if def.computed.is_empty() {
        return Ok(None);
    }
    let mut columns = Vec::new();
    for cc in &def.computed {
        let idx = src.schema.arrow.index_of(&cc.name)?;
        let planned = cc.planned.as_ref().ok_or_else(|| {
            EngineError::Catalog(format!(
                "computed column {} of {} was not planned",
                cc.name, def.name
            ))
        })?;
        columns.push((idx, planned.physical.clone()));
    }
    let time_column = match &def.timestamp {
        Some(t) if def.computed.iter().any(|c| &c.name == t) => Some(src.schema.arrow.index_of(t)?),
        _ => None,
    };
    Ok(Some(ComputedColumns::new(
        columns,
        time_column,
        src.schema.rowtime(),
    )?))
}

fn source_readers(
    src: &SourceNode,
    services: &Services,
    gate: &Option<Arc<ReadGate>>,
    query: &str,
    stage: usize,
    resume: Option<&Manifest>,
) -> Result<Vec<Reader>> {
    let saved = resume.and_then(|m| m.sources.get(&position_key(stage, &src.def.topic)));
    let mut readers = open_readers(src, services, gate, query, saved)?;
    if let Some(saved) = saved {
        for (r, _) in readers.iter_mut() {
            r.seek(saved)?;
        }
    }
    Ok(readers)
}

/// The readers of a source; Kafka readers are opened at the `saved` positions of a resumed
/// checkpoint (other readers are moved there afterwards by [`SourceReader::seek`]).
fn open_readers(
    src: &SourceNode,
    services: &Services,
    gate: &Option<Arc<ReadGate>>,
    query: &str,
    saved: Option<&std::collections::BTreeMap<i32, i64>>,
) -> Result<Vec<Reader>> {
    let def = &src.def;
    let cfg = &services.config;
    let decoder = |d: &SourceDef| {
        if d.computed
            .iter()
            .any(|c| Some(&c.name) == d.timestamp.as_ref())
        {
            // Event time comes from a computed column, filled after decoding.
            let mut d = d.clone();
            d.timestamp = None;
            return RecordDecoder::new(&d, src.schema.clone(), query).map_err(EngineError::Format);
        }
        RecordDecoder::new(d, src.schema.clone(), query).map_err(EngineError::Format)
    };
    Ok(match &def.connector {
        Connector::Topic if cfg.kafka.is_some() => {
            let Some(kcfg) = cfg.kafka.as_ref() else {
                return Ok(vec![]);
            };
            if services.snapshot {
                return Err(EngineError::Connector(format!(
                    "pull queries read in-memory topics; {} is a Kafka topic: query a table that a \
                     persistent query materializes, or use a push query (EMIT CHANGES)",
                    def.topic
                )));
            }
            let partitions = kafka::partition_count(kcfg, &def.topic)?.ok_or_else(|| {
                EngineError::Connector(format!(
                    "kafka topic {} of {} does not exist (declare PARTITIONS to create it)",
                    def.topic, def.name
                ))
            })?;
            let n = cfg.parallelism.clamp(1, partitions);
            let group = kafka::group_for_query(kcfg, query);
            let fallback = if services.from_end || services.kafka_from_end {
                StartOffset::Latest
            } else {
                StartOffset::Earliest
            };
            let mut out = Vec::new();
            for i in 0..n {
                let start = (0..partitions)
                    .filter(|p| p % n == i)
                    .map(|p| {
                        let p = p as i32;
                        let at = saved
                            .and_then(|s| s.get(&p))
                            .map(|o| StartOffset::At(*o))
                            .unwrap_or(fallback);
                        (p, at)
                    })
                    .collect();
                let reader = KafkaReader::open(kcfg, &group, &def.topic, &start)?;
                out.push((SourceReader::Kafka(Box::new(reader)), Some(decoder(def)?)));
            }
            out
        }
        Connector::Topic => {
            let partitions = if cfg.single_partition_topics {
                1
            } else {
                def.partitions.max(1) as usize
            };
            let topic = services.topics.get_or_create(&def.topic, partitions);
            let n = cfg.parallelism.clamp(1, topic.partitions());
            let mut out = Vec::new();
            for i in 0..n {
                let parts: Vec<usize> = (0..topic.partitions()).filter(|p| p % n == i).collect();
                let reader = if services.snapshot {
                    MemoryReader::snapshot(topic.clone(), parts)
                } else if services.from_end {
                    MemoryReader::new(topic.clone(), parts, gate.clone(), cfg.until_idle).from_end()
                } else {
                    MemoryReader::new(topic.clone(), parts, gate.clone(), cfg.until_idle)
                };
                out.push((SourceReader::Memory(reader), Some(decoder(def)?)));
            }
            out
        }
        Connector::File { path } => {
            let skip = def.value_format.kind == FormatKind::Delimited
                && riffle_sql::catalog::prop(&def.properties, "CSV.HEADER")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let flat = all_value_def(def);
            vec![(
                SourceReader::File(FileReader::open(path, skip)?),
                Some(decoder(&flat)?),
            )]
        }
        Connector::Datagen(opts) => {
            vec![(
                SourceReader::Datagen(DatagenReader::new(def, opts, src.schema.clone())?),
                None,
            )]
        }
        Connector::Nexmark(opts) => {
            let subtasks = cfg.parallelism.max(1);
            let mut out = Vec::with_capacity(subtasks);
            for i in 0..subtasks {
                let reader = match &cfg.nexmark_events {
                    Some(events) => {
                        NexmarkReader::replaying(opts, src.schema.clone(), events.clone())?
                    }
                    None => NexmarkReader::new(opts, src.schema.clone()),
                };
                out.push((
                    SourceReader::Nexmark(Box::new(reader.split(i, subtasks))),
                    None,
                ));
            }
            out
        }
        Connector::Stdout | Connector::Blackhole => {
            return Err(EngineError::Connector(format!(
                "{} is write-only (connector stdout/blackhole) and cannot be read",
                def.name
            )));
        }
        Connector::View => {
            return Err(EngineError::Connector(format!(
                "view {} is planned where it is read and has no reader of its own",
                def.name
            )));
        }
    })
}

fn sink_op(
    sink: SinkSpec,
    schema: &StreamSchema,
    services: &Services,
    coordinator: Arc<Coordinator>,
    resources: &SinkResources,
) -> Result<SinkOp> {
    match sink {
        SinkSpec::Channel(tx) => Ok(SinkOp::new(
            schema.clone(),
            None,
            SinkTarget::Channel(tx),
            None,
            schema.kind == SourceKind::Table,
            coordinator,
            "client".into(),
        )),
        SinkSpec::Relation(def) => {
            let timestamp = match &def.timestamp {
                None => None,
                Some(col) => {
                    let idx = schema.arrow.index_of(col).map_err(|_| {
                        EngineError::Catalog(format!(
                            "timestamp column {col} is not a column of {}",
                            def.name
                        ))
                    })?;
                    let fmt = def
                        .timestamp_format
                        .as_deref()
                        .map(JavaFormat::new)
                        .transpose()
                        .map_err(EngineError::Format)?;
                    Some((idx, fmt))
                }
            };
            let target = match &def.connector {
                Connector::Topic if services.config.kafka.is_some() => SinkTarget::Kafka {
                    producer: resources.producer.clone().ok_or_else(|| {
                        EngineError::Connector("internal: Kafka sink without a producer".into())
                    })?,
                    topic: def.topic.clone(),
                },
                Connector::Topic => {
                    let partitions = if services.config.single_partition_topics {
                        1
                    } else {
                        def.partitions.max(1) as usize
                    };
                    SinkTarget::Topic(services.topics.get_or_create(&def.topic, partitions))
                }
                Connector::File { path } => {
                    let resumed = resources
                        .resume
                        .as_ref()
                        .and_then(|m| m.file_sinks.get(path).copied());
                    let writer = match resumed {
                        Some(len) => resume_sink_file(path, len)?,
                        None => create_sink_file(path)?,
                    };
                    SinkTarget::File {
                        writer,
                        csv: def.value_format.kind == FormatKind::Delimited,
                        path: path.clone(),
                        written: resumed.unwrap_or(0),
                    }
                }
                Connector::Stdout => SinkTarget::Stdout,
                Connector::Blackhole => SinkTarget::Blackhole,
                Connector::Datagen(_) | Connector::Nexmark(_) => {
                    return Err(EngineError::Connector(format!(
                        "{} is a generator and cannot be written",
                        def.name
                    )));
                }
                Connector::View => {
                    return Err(EngineError::Connector(format!(
                        "{} is a view and cannot be written",
                        def.name
                    )));
                }
            };
            let encoder = RecordEncoder::new(&def, schema).map_err(EngineError::Format)?;
            Ok(SinkOp::new(
                schema.clone(),
                Some(encoder),
                target,
                timestamp,
                def.kind == SourceKind::Table,
                coordinator,
                def.name.clone(),
            ))
        }
    }
}

/// Starts a query's tasks.
#[allow(clippy::too_many_arguments)]
pub fn launch(
    id: &str,
    sql: &str,
    plan: QueryPlan,
    sink: SinkSpec,
    sink_name: Option<String>,
    kind: QueryKind,
    services: &Services,
    gate: Option<Arc<ReadGate>>,
    durability: Option<Durability>,
) -> Result<QueryHandle> {
    let mut stages: Vec<StageDef> = Vec::new();
    let root = collect_stages(&plan.root, &mut stages)?;
    let cfg = &services.config;
    let store = match &durability {
        Some(d) => {
            let s = StateStore::durable(d.dir.live(), cfg.state_cache_entries);
            if d.resume.is_some() {
                s.mark_restored();
            }
            Arc::new(s)
        }
        None => Arc::new(StateStore::temporary(cfg.state_cache_entries)?),
    };
    let resume = durability.as_ref().and_then(|d| d.resume.clone());
    let kafka_sink = matches!(&sink, SinkSpec::Relation(d) if d.connector == Connector::Topic)
        && cfg.kafka.is_some();
    let transactional = kafka_sink && durability.is_some() && services.exactly_once;
    let producer = match (&cfg.kafka, kafka_sink) {
        (Some(k), true) => match durability.as_ref().and_then(|d| d.producer.clone()) {
            Some(p) if transactional => Some(p),
            _ => Some(Arc::new(KafkaProducer::new(
                k,
                transactional
                    .then(|| kafka::transactional_id(k, id))
                    .as_deref(),
            )?)),
        },
        _ => None,
    };
    let kafka_sources = cfg.kafka.is_some()
        && plan
            .root
            .sources()
            .iter()
            .any(|s| s.def.connector == Connector::Topic);
    let resources = SinkResources {
        producer: producer.clone(),
        resume: resume.clone(),
    };
    // Files, stdout and client channels take one writer (one ordered stream of rows).
    let single_writer = match &sink {
        SinkSpec::Channel(_) => true,
        SinkSpec::Relation(d) => matches!(d.connector, Connector::File { .. } | Connector::Stdout),
    };
    let mut readers: Vec<Option<Vec<Reader>>> = Vec::new();
    let mut parallelism: Vec<usize> = Vec::new();
    for (i, st) in stages.iter().enumerate() {
        match &st.input {
            StageInput::Source(src) => {
                let r = if i == root && single_writer {
                    source_readers_limited(src, services, &gate, id, i, resume.as_ref())?
                } else {
                    source_readers(src, services, &gate, id, i, resume.as_ref())?
                };
                parallelism.push(r.len());
                readers.push(Some(r));
            }
            StageInput::Upstreams(_) => {
                // Foreign-key joins see both tables whole: one subtask.
                let fk = st
                    .ops
                    .iter()
                    .any(|n| matches!(n, PlanNode::Join(j) if j.join_type == JoinType::ForeignKey));
                let p = if (i == root && single_writer) || fk {
                    1
                } else {
                    cfg.parallelism.max(1)
                };
                parallelism.push(p);
                readers.push(None);
            }
        }
    }
    let sink_tasks = parallelism[root];
    let coordinator = Arc::new(Coordinator::new(sink_tasks));
    let metrics = Arc::new(QueryMetrics::default());
    let errors = services.log.counts(id);
    let ctx = || OpContext {
        query: id.to_string(),
        log: services.log.clone(),
        watermark: i64::MIN,
        metrics: metrics.clone(),
    };
    let last_schema = plan.root.schema().clone();
    let build_chain = |stage: usize, subtask: usize| -> Result<Chain> {
        let mut ops: Vec<Box<dyn Operator>> = Vec::new();
        if let StageInput::Source(src) = &stages[stage].input
            && src.def.kind == SourceKind::Table
        {
            ops.push(Box::new(TableSourceOp::new(
                src.schema.clone(),
                src.materialize,
                OperatorState::table_source(store.clone(), stage, subtask),
            )?));
        }
        let nodes = &stages[stage].ops;
        let mut o = 0;
        while o < nodes.len() {
            if let Some((op, covered)) = fused(nodes, o) {
                ops.push(Box::new(op));
                o += covered;
                continue;
            }
            let state = OperatorState::new(store.clone(), stage, o, subtask);
            if let Some(op) = operator_for(nodes[o], state)? {
                ops.push(op);
            }
            o += 1;
        }
        if stage == root {
            ops.push(Box::new(sink_op(
                sink.clone(),
                &last_schema,
                services,
                coordinator.clone(),
                &resources,
            )?));
        }
        Ok(Chain::new(ops))
    };
    // Channels into every non-source stage, and who feeds each.
    let mut senders: Vec<Vec<Sender>> = vec![vec![]; stages.len()];
    let mut receivers: Vec<Vec<mpsc::Receiver<(usize, Message)>>> =
        (0..stages.len()).map(|_| vec![]).collect();
    // For each stage: (downstream stage, sender offset, key width) it outputs to.
    let mut downstream: Vec<Option<(usize, usize, usize)>> = vec![None; stages.len()];
    let mut sides: Vec<Vec<usize>> = vec![vec![]; stages.len()];
    for (s, st) in stages.iter().enumerate() {
        if let StageInput::Upstreams(ups) = &st.input {
            for _ in 0..parallelism[s] {
                let (tx, rx) = mpsc::channel(cfg.channel_capacity.max(1));
                senders[s].push(tx);
                receivers[s].push(rx);
            }
            let mut offset = 0;
            for (side, (up, key_width)) in ups.iter().enumerate() {
                downstream[*up] = Some((s, offset, *key_width));
                for _ in 0..parallelism[*up] {
                    sides[s].push(side);
                }
                offset += parallelism[*up];
            }
        }
    }
    let output_of = |stage: usize, me: usize| -> Output {
        match downstream[stage] {
            None => Output::None,
            Some((s, offset, key_count)) => Output::Shuffle {
                txs: senders[s].clone(),
                me: offset + me,
                key_count,
            },
        }
    };
    let mut handles = Vec::new();
    let mut controls = Vec::new();
    for (s, st) in stages.iter().enumerate() {
        match &st.input {
            StageInput::Source(src) => {
                let rs = readers[s].take().unwrap_or_default();
                for (i, (reader, decoder)) in rs.into_iter().enumerate() {
                    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel::<SourceCommand>();
                    controls.push(ctl_tx);
                    let assigned = reader.assigned_partitions();
                    let task =
                        SourceTask {
                            computed: computed_columns(src)?,
                            reader,
                            caught_up: false,
                            decoder,
                            chain: build_chain(s, i)?,
                            output: output_of(s, i),
                            control: ctl_rx,
                            ctx: ctx(),
                            max_batch: cfg.max_batch_rows.max(1),
                            watermarks: WatermarkTracker::new(
                                src.def.watermark_delay_ms,
                                cfg.idle_timeout,
                            )
                            .expecting(&assigned)
                            .resuming(resume.as_ref().and_then(|m| {
                                m.event_times.get(&subtask_key(s, &src.def.topic, i))
                            })),
                            time_columns: (src.schema.rowtime(), src.schema.partition()),
                            position_key: position_key(s, &src.def.topic),
                            subtask_key: subtask_key(s, &src.def.topic, i),
                            coordinator: coordinator.clone(),
                            commit_gate: transactional && s == root,
                        };
                    handles.push(spawn(id, coordinator.clone(), task.run()));
                }
            }
            StageInput::Upstreams(_) => {
                let rxs = std::mem::take(&mut receivers[s]);
                for (j, rx) in rxs.into_iter().enumerate() {
                    let task = StageTask {
                        input: rx,
                        upstreams: sides[s].len(),
                        sides: sides[s].clone(),
                        chain: build_chain(s, j)?,
                        output: output_of(s, j),
                        ctx: ctx(),
                        commit_gate: (transactional && s == root).then(|| coordinator.clone()),
                    };
                    handles.push(spawn(id, coordinator.clone(), task.run()));
                }
            }
        }
    }
    drop(senders);
    let checkpointer = match durability {
        Some(d) => {
            let group = match &cfg.kafka {
                Some(k) if kafka_sources || transactional => {
                    Some(Arc::new(GroupCommitter::new(k, id)?))
                }
                _ => None,
            };
            let next_epoch = d.resume.as_ref().map(|m| m.epoch + 1).unwrap_or(1);
            let c = Checkpointer {
                query: id.to_string(),
                coordinator: coordinator.clone(),
                controls: controls.clone(),
                store: store.clone(),
                durability: d,
                next_epoch,
                producer,
                group,
                metrics: metrics.clone(),
            };
            Some(tokio::spawn(c.run()))
        }
        None => None,
    };
    Ok(QueryHandle {
        id: id.to_string(),
        sql: sql.to_string(),
        sink: sink_name,
        sources: plan
            .root
            .sources()
            .iter()
            .map(|s| s.def.name.clone())
            .collect(),
        plan,
        kind,
        controls,
        coordinator,
        tasks: std::sync::Mutex::new(handles),
        metrics,
        errors,
        gate,
        store,
        checkpointer: std::sync::Mutex::new(checkpointer),
    })
}

/// Source readers restricted to one subtask (for single-writer sinks fed directly by sources).
fn source_readers_limited(
    src: &SourceNode,
    services: &Services,
    gate: &Option<Arc<ReadGate>>,
    query: &str,
    stage: usize,
    resume: Option<&Manifest>,
) -> Result<Vec<Reader>> {
    let limited = Services {
        config: EngineConfig {
            parallelism: 1,
            ..services.config.clone()
        },
        topics: services.topics.clone(),
        log: services.log.clone(),
        snapshot: services.snapshot,
        from_end: services.from_end,
        kafka_from_end: services.kafka_from_end,
        exactly_once: services.exactly_once,
    };
    source_readers(src, &limited, gate, query, stage, resume)
}

fn spawn(
    id: &str,
    coordinator: Arc<Coordinator>,
    fut: impl std::future::Future<Output = Result<()>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let id = id.to_string();
    tokio::spawn(async move {
        if let Err(e) = fut.await
            && !matches!(e, EngineError::Stopped)
        {
            tracing::error!("query {id} failed: {e}");
            coordinator.set_status(QueryStatus::Failed(e.to_string()));
        }
    })
}
