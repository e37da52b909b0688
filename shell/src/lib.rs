//! The riffle command line as a library: `riffle run` (pipelines), `riffle test` (the QTT
//! conformance runner) and result rendering, so the binary and the end-to-end tests share them.

#![warn(missing_docs)]

pub mod client;
pub mod engine_args;
pub mod output;
pub mod qtt;
pub mod repl;
pub mod run;
pub mod server;
