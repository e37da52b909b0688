//! riffle's end-to-end tests (one test binary, see BUILD-NOTES: each extra binary relinks a large
//! executable).

mod chaos;
mod cli;
mod conformance;
mod engine_api;
mod examples;
mod kafka;
mod own_qtt;
mod restart;
mod server;
mod shell;
mod window_tvf;
