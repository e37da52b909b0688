//! Errors raised while parsing and planning SQL, written for the person who typed the statement.

use std::fmt;

/// A position in the statement text (1-based line and column), used to point at the offending token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line number.
    pub line: u64,
    /// 1-based column number.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Everything that can go wrong between SQL text and a streaming plan.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The text does not follow the grammar.
    #[error("syntax error at {position}: {message}")]
    Syntax {
        /// Where the parser stopped.
        position: Position,
        /// What was expected and what was found.
        message: String,
    },
    /// A name (stream, table, column, function) could not be resolved.
    #[error("{0}")]
    Unknown(String),
    /// The statement is well-formed but makes no sense (types, keys, clauses).
    #[error("{0}")]
    Semantic(String),
    /// The statement uses a feature riffle does not support yet.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A DataFusion error raised while type-checking or building an expression.
    #[error("{0}")]
    DataFusion(String),
}

impl SqlError {
    /// A semantic error with the given message.
    pub fn semantic(msg: impl Into<String>) -> Self {
        SqlError::Semantic(msg.into())
    }

    /// The position of the error in the statement text, when known.
    pub fn position(&self) -> Option<Position> {
        match self {
            SqlError::Syntax { position, .. } => Some(*position),
            _ => None,
        }
    }
}

impl From<datafusion::error::DataFusionError> for SqlError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        SqlError::DataFusion(strip_df_prefix(&e.to_string()))
    }
}

impl From<datafusion::arrow::error::ArrowError> for SqlError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        SqlError::DataFusion(e.to_string())
    }
}

/// DataFusion prefixes its messages with internal categories; users do not need them.
fn strip_df_prefix(msg: &str) -> String {
    let mut m = msg;
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "This feature is not implemented: ",
        "Arrow error: ",
        "Schema error: ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    m.to_string()
}

/// Result alias for this crate.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
