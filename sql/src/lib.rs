//! riffle-sql: the SQL front end. Parses ksqlDB-dialect statements (and Flink-style DDL pieces),
//! holds the catalog model, and plans continuous queries into a streaming plan whose scalar
//! expressions are DataFusion physical expressions evaluated on Arrow batches.

#![warn(missing_docs)]

pub mod ast;
pub mod catalog;
pub mod dialect;
pub mod error;
pub mod expr;
pub mod interval_join;
pub mod match_recognize;
pub mod parser;
pub mod pattern;
pub mod plan;
pub mod planner;
pub mod types;
pub mod window_tvf;

pub use error::{Position, SqlError};
pub use parser::{parse_script, parse_statement};
