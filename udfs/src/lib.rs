//! riffle's function library: ksqlDB's scalar functions as DataFusion UDFs, streaming aggregate
//! functions that can retract and merge (for tables and session windows), and the registry the
//! planner resolves names against.

#![warn(missing_docs)]

pub mod aggregate;
pub mod errors;
pub mod registry;
pub mod scalar;
pub mod udf;
pub mod value;

pub use registry::FunctionRegistry;

/// Errors raised by functions at plan or run time.
#[derive(Debug, thiserror::Error)]
pub enum UdfError {
    /// The function was called with arguments it cannot accept.
    #[error("{0}")]
    Arguments(String),
    /// An Arrow or DataFusion error.
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

/// Result alias for this crate.
pub type Result<T, E = UdfError> = std::result::Result<T, E>;
