//! Engine errors, written for the person running the query.

use riffle_sql::SqlError;

/// Everything that can go wrong while executing statements or running queries.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The statement could not be parsed or planned.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A name that must exist does not, or one that must not exist does.
    #[error("{0}")]
    Catalog(String),
    /// A running query failed.
    #[error("query {query} failed: {message}")]
    QueryFailed {
        /// The query id.
        query: String,
        /// Why it failed.
        message: String,
    },
    /// A connector (topic, file, generator) failed.
    #[error("{0}")]
    Connector(String),
    /// Data could not be encoded or decoded.
    #[error("{0}")]
    Format(String),
    /// An I/O error with the path or resource it concerns.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error from Arrow or DataFusion while processing batches.
    #[error("{0}")]
    DataFusion(String),
    /// The query or engine was stopped.
    #[error("stopped")]
    Stopped,
}

impl From<datafusion::error::DataFusionError> for EngineError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        EngineError::DataFusion(e.to_string())
    }
}

impl From<datafusion::arrow::error::ArrowError> for EngineError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        EngineError::DataFusion(e.to_string())
    }
}

/// Result alias for this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
