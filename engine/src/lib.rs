//! riffle-engine: the runtime. Statements are executed by the [`Engine`]; continuous queries run
//! as operator chains on tokio tasks over Arrow batches, with watermarks, barriers and changelog
//! rows; connectors read and write in-memory topics, files and generated data.

#![warn(missing_docs)]

pub mod config;
pub mod connectors;
pub mod engine;
pub mod error;
pub mod formats;
pub mod metrics;
pub mod operators;
pub mod processing_log;
pub mod pull;
pub mod query;
pub mod record;
pub mod runtime;
pub mod state;

pub use config::EngineConfig;
pub use engine::{Engine, StatementResult, TransientQuery};
pub use error::{EngineError, Result};
