//! Engine settings shared by `riffle run`, `riffle shell` and `riffle server`: the Kafka cluster,
//! where state and checkpoints live, and parallelism. They come from command-line flags and,
//! for the server, its JSON config file (flags win).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use riffle_engine::EngineConfig;
use riffle_engine::config::KafkaConfig;

/// Engine flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EngineArgs {
    /// Kafka bootstrap servers (`host:port,…`): `kafka_topic` relations then live in this
    /// cluster instead of in memory.
    #[arg(long, value_name = "SERVERS")]
    pub kafka: Option<String>,
    /// A librdkafka client property for every consumer and producer, as `name=value`
    /// (repeatable), e.g. `security.protocol=SASL_SSL`.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    pub kafka_properties: Vec<String>,
    /// Where persistent queries keep state and checkpoints and resume from on restart
    /// (default with --kafka: riffle-state in the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Time between checkpoints, e.g. `10s` or `500ms` (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub checkpoint_interval: Option<String>,
    /// Discard the state of queries whose statement changed since it was checkpointed (instead
    /// of refusing to start them); they reprocess their input.
    #[arg(long)]
    pub fresh_state: bool,
    /// Groups or windows one operator subtask keeps in memory; the rest live in RocksDB.
    #[arg(long, value_name = "N")]
    pub state_cache_entries: Option<usize>,
    /// Names this deployment in the Kafka cluster: prefix of its queries' consumer groups and
    /// transactional ids (default `riffle`).
    #[arg(long, value_name = "ID")]
    pub service_id: Option<String>,
    /// Subtasks per operator after a shuffle (default: number of cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
}

/// Engine settings in a JSON config file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineFileConfig {
    /// Kafka client properties; `bootstrap.servers` names the cluster.
    #[serde(default)]
    pub kafka: BTreeMap<String, String>,
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// Time between checkpoints.
    pub checkpoint_interval: Option<String>,
    /// Prefix of consumer groups and transactional ids.
    pub service_id: Option<String>,
}

impl EngineArgs {
    /// Applies the flags (over `file`'s settings) to `config`.
    pub fn apply(&self, file: &EngineFileConfig, config: &mut EngineConfig) -> anyhow::Result<()> {
        let mut props = file.kafka.clone();
        for p in &self.kafka_properties {
            let Some((k, v)) = p.split_once('=') else {
                bail!("--kafka-property needs name=value, got '{p}'");
            };
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
        let bootstrap = self
            .kafka
            .clone()
            .or_else(|| props.remove("bootstrap.servers"));
        props.remove("bootstrap.servers");
        if let Some(b) = bootstrap {
            let mut kafka = KafkaConfig::new(b);
            kafka.properties = props;
            if let Some(id) = self.service_id.clone().or_else(|| file.service_id.clone()) {
                kafka.service_id = id;
            }
            config.kafka = Some(kafka);
        } else if !props.is_empty() {
            bail!("Kafka properties were given but no bootstrap servers (--kafka HOST:PORT)");
        }
        config.state_dir = self.state_dir.clone().or_else(|| file.state_dir.clone());
        if config.state_dir.is_none() && config.kafka.is_some() {
            config.state_dir = Some(std::env::temp_dir().join("riffle-state"));
        }
        if let Some(t) = self
            .checkpoint_interval
            .as_ref()
            .or(file.checkpoint_interval.as_ref())
        {
            config.checkpoint_interval = riffle_engine::engine::parse_duration(t)
                .with_context(|| format!("--checkpoint-interval '{t}' is not a duration"))?;
        }
        config.fresh_state = self.fresh_state;
        if let Some(n) = self.state_cache_entries {
            config.state_cache_entries = n.max(1);
        }
        if let Some(p) = self.parallelism {
            config.parallelism = p.max(1);
        }
        Ok(())
    }
}
