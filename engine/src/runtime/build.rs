//! Turns a streaming plan into running tasks: the plan is cut into stages at exchanges; the first
//! stage runs in one task per source subtask, later stages in `parallelism` tasks each, linked by
//! bounded channels; the last stage ends in the sink.

use std::sync::Arc;

use riffle_sql::ast::{SourceKind, WindowKind};
use riffle_sql::catalog::{Connector, FormatKind, SourceDef};
use riffle_sql::plan::{PlanNode, QueryPlan, SourceNode, StreamSchema};
use riffle_udfs::scalar::java_time::JavaFormat;
use tokio::sync::mpsc;

use super::coordinator::{Coordinator, QueryStatus};
use super::exchange::{Output, Sender};
use super::source_task::{SourceTask, WatermarkTracker};
use super::stage_task::StageTask;
use super::{Message, SourceCommand};
use crate::config::EngineConfig;
use crate::connectors::datagen::DatagenReader;
use crate::connectors::file::{FileReader, create_sink_file};
use crate::connectors::memory::{MemoryReader, ReadGate, TopicStore};
use crate::connectors::SourceReader;
use crate::error::{EngineError, Result};
use crate::formats::{RecordDecoder, RecordEncoder};
use crate::metrics::QueryMetrics;
use crate::operators::filter::FilterOp;
use crate::operators::group_aggregate::GroupAggregateOp;
use crate::operators::project::ProjectOp;
use crate::operators::session_window::SessionWindowOp;
use crate::operators::sink::{SinkOp, SinkTarget};
use crate::operators::table_source::TableSourceOp;
use crate::operators::window_aggregate::WindowAggregateOp;
use crate::operators::{Chain, OpContext, Operator};
use crate::processing_log::ProcessingLog;
use crate::query::{QueryHandle, QueryKind};

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
}

fn linearize(root: &PlanNode) -> Vec<&PlanNode> {
    let mut out = vec![root];
    let mut cur = root;
    loop {
        let next = match cur {
            PlanNode::Source(_) => break,
            PlanNode::Filter(f) => &f.input,
            PlanNode::Project(p) => &p.input,
            PlanNode::Exchange(e) => &e.input,
            PlanNode::Aggregate(a) => &a.input,
        };
        out.push(next);
        cur = next;
    }
    out.reverse();
    out
}

fn operator_for(node: &PlanNode) -> Result<Option<Box<dyn Operator>>> {
    Ok(match node {
        PlanNode::Source(_) | PlanNode::Exchange(_) => None,
        PlanNode::Filter(f) => {
            let input = f.input.schema();
            Some(Box::new(FilterOp::new(f.predicate.physical.clone(), input.kind == SourceKind::Stream, input.op())))
        }
        PlanNode::Project(p) => Some(Box::new(ProjectOp::new(
            p.exprs.iter().map(|e| e.physical.clone()).collect(),
            p.input.schema().clone(),
            p.schema.clone(),
            p.drop_null_keys,
        ))),
        PlanNode::Aggregate(a) => match a.window.as_ref().map(|w| &w.kind) {
            None => Some(Box::new(GroupAggregateOp::new(a)?)),
            Some(WindowKind::Session { .. }) => Some(Box::new(SessionWindowOp::new(a)?)),
            Some(_) => Some(Box::new(WindowAggregateOp::new(a)?)),
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

fn source_readers(
    src: &SourceNode,
    services: &Services,
    gate: &Option<Arc<ReadGate>>,
    query: &str,
) -> Result<Vec<(SourceReader, Option<RecordDecoder>)>> {
    let def = &src.def;
    let cfg = &services.config;
    let decoder = |d: &SourceDef| RecordDecoder::new(d, src.schema.clone(), query).map_err(EngineError::Format);
    Ok(match &def.connector {
        Connector::Topic => {
            let partitions = if cfg.single_partition_topics { 1 } else { def.partitions.max(1) as usize };
            let topic = services.topics.get_or_create(&def.topic, partitions);
            let n = cfg.parallelism.clamp(1, topic.partitions());
            let mut out = Vec::new();
            for i in 0..n {
                let parts: Vec<usize> = (0..topic.partitions()).filter(|p| p % n == i).collect();
                out.push((
                    SourceReader::Memory(MemoryReader::new(topic.clone(), parts, gate.clone(), cfg.until_idle)),
                    Some(decoder(def)?),
                ));
            }
            out
        }
        Connector::File { path } => {
            let skip = def.value_format.kind == FormatKind::Delimited
                && riffle_sql::catalog::prop(&def.properties, "CSV.HEADER").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let flat = all_value_def(def);
            vec![(SourceReader::File(FileReader::open(path, skip)?), Some(decoder(&flat)?))]
        }
        Connector::Datagen(opts) => {
            vec![(SourceReader::Datagen(DatagenReader::new(def, opts, src.schema.clone())?), None)]
        }
        Connector::Stdout | Connector::Blackhole => {
            return Err(EngineError::Connector(format!(
                "{} is write-only (connector stdout/blackhole) and cannot be read",
                def.name
            )));
        }
    })
}

fn sink_op(sink: SinkSpec, schema: &StreamSchema, services: &Services, coordinator: Arc<Coordinator>) -> Result<SinkOp> {
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
                        EngineError::Catalog(format!("timestamp column {col} is not a column of {}", def.name))
                    })?;
                    let fmt = def.timestamp_format.as_deref().map(JavaFormat::new).transpose().map_err(EngineError::Format)?;
                    Some((idx, fmt))
                }
            };
            let target = match &def.connector {
                Connector::Topic => {
                    let partitions =
                        if services.config.single_partition_topics { 1 } else { def.partitions.max(1) as usize };
                    SinkTarget::Topic(services.topics.get_or_create(&def.topic, partitions))
                }
                Connector::File { path } => SinkTarget::File {
                    writer: create_sink_file(path)?,
                    csv: def.value_format.kind == FormatKind::Delimited,
                },
                Connector::Stdout => SinkTarget::Stdout,
                Connector::Blackhole => SinkTarget::Blackhole,
                Connector::Datagen(_) => {
                    return Err(EngineError::Connector(format!("{} is a generator and cannot be written", def.name)));
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
) -> Result<QueryHandle> {
    let nodes = linearize(&plan.root);
    let PlanNode::Source(src) = nodes[0] else {
        return Err(EngineError::DataFusion("internal: plan does not start at a source".into()));
    };
    let mut segments: Vec<Vec<&PlanNode>> = vec![vec![]];
    let mut exchange_keys = Vec::new();
    for n in &nodes[1..] {
        if let PlanNode::Exchange(e) = n {
            exchange_keys.push(e.input.schema().key_count);
            segments.push(vec![]);
        } else if let Some(last) = segments.last_mut() {
            last.push(n);
        }
    }
    let n_stages = segments.len();
    let cfg = &services.config;
    // Files and client channels take one writer; so does any sink fed directly by sources.
    let single_writer = match &sink {
        SinkSpec::Channel(_) => true,
        SinkSpec::Relation(d) => matches!(d.connector, Connector::File { .. }),
    };
    let mut readers = source_readers(src, services, &gate, id)?;
    if n_stages == 1 && readers.len() > 1 && single_writer {
        readers = source_readers_limited(src, services, &gate, id)?;
    }
    let mut parallelism: Vec<usize> = (0..n_stages)
        .map(|i| if i == 0 { readers.len() } else { cfg.parallelism.max(1) })
        .collect();
    if single_writer && n_stages > 1 {
        parallelism[n_stages - 1] = 1;
    }
    let sink_tasks = parallelism[n_stages - 1];
    let coordinator = Arc::new(Coordinator::new(sink_tasks));
    let metrics = Arc::new(QueryMetrics::default());
    let errors = services.log.counts(id);
    let ctx = || OpContext { query: id.to_string(), log: services.log.clone(), watermark: i64::MIN, metrics: metrics.clone() };
    let last_schema = plan.root.schema().clone();
    let table_source = src.def.kind == SourceKind::Table;
    let build_chain = |stage: usize| -> Result<Chain> {
        let mut ops: Vec<Box<dyn Operator>> = Vec::new();
        if stage == 0 && table_source {
            ops.push(Box::new(TableSourceOp::new(src.schema.clone(), src.materialize)?));
        }
        for n in &segments[stage] {
            if let Some(op) = operator_for(n)? {
                ops.push(op);
            }
        }
        if stage == n_stages - 1 {
            ops.push(Box::new(sink_op(sink.clone(), &last_schema, services, coordinator.clone())?));
        }
        Ok(Chain::new(ops))
    };
    let mut senders: Vec<Vec<Sender>> = vec![vec![]; n_stages];
    let mut receivers: Vec<Vec<mpsc::Receiver<(usize, Message)>>> = (0..n_stages).map(|_| vec![]).collect();
    for s in 1..n_stages {
        for _ in 0..parallelism[s] {
            let (tx, rx) = mpsc::channel(cfg.channel_capacity.max(1));
            senders[s].push(tx);
            receivers[s].push(rx);
        }
    }
    let output_of = |stage: usize, me: usize| -> Output {
        if stage + 1 == n_stages {
            Output::None
        } else {
            Output::Shuffle { txs: senders[stage + 1].clone(), me, key_count: exchange_keys[stage] }
        }
    };
    let mut handles = Vec::new();
    let mut controls = Vec::new();
    for (i, (reader, decoder)) in readers.into_iter().enumerate() {
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel::<SourceCommand>();
        controls.push(ctl_tx);
        let task = SourceTask {
            reader,
            decoder,
            chain: build_chain(0)?,
            output: output_of(0, i),
            control: ctl_rx,
            ctx: ctx(),
            max_batch: cfg.max_batch_rows.max(1),
            watermarks: WatermarkTracker::new(src.def.watermark_delay_ms, cfg.idle_timeout),
            time_columns: (src.schema.rowtime(), src.schema.partition()),
        };
        handles.push(spawn(id, coordinator.clone(), task.run()));
    }
    for s in 1..n_stages {
        let rxs = std::mem::take(&mut receivers[s]);
        for (j, rx) in rxs.into_iter().enumerate() {
            let task = StageTask { input: rx, upstreams: parallelism[s - 1], chain: build_chain(s)?, output: output_of(s, j), ctx: ctx() };
            handles.push(spawn(id, coordinator.clone(), task.run()));
        }
    }
    drop(senders);
    Ok(QueryHandle {
        id: id.to_string(),
        sql: sql.to_string(),
        sink: sink_name,
        sources: plan.root.sources().iter().map(|s| s.def.name.clone()).collect(),
        plan,
        kind,
        controls,
        coordinator,
        tasks: std::sync::Mutex::new(handles),
        metrics,
        errors,
        gate,
    })
}

/// Source readers restricted to one subtask (for single-writer sinks fed directly by sources).
fn source_readers_limited(
    src: &SourceNode,
    services: &Services,
    gate: &Option<Arc<ReadGate>>,
    query: &str,
) -> Result<Vec<(SourceReader, Option<RecordDecoder>)>> {
    let limited = Services {
        config: EngineConfig { parallelism: 1, ..services.config.clone() },
        topics: services.topics.clone(),
        log: services.log.clone(),
    };
    source_readers(src, &limited, gate, query)
}

fn spawn(
    id: &str,
    coordinator: Arc<Coordinator>,
    fut: impl std::future::Future<Output = Result<()>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let id = id.to_string();
    tokio::spawn(async move {
        if let Err(e) = fut.await {
            if !matches!(e, EngineError::Stopped) {
                tracing::error!("query {id} failed: {e}");
                coordinator.set_status(QueryStatus::Failed(e.to_string()));
            }
        }
    })
}
