//! Operator state: a RocksDB store per query with state tables per operator, the row codec that
//! turns state into bytes, and checkpoints on disk.

pub mod checkpoint;
pub mod codec;
pub mod snapshot;
pub mod store;

pub use checkpoint::{Manifest, QueryStateDir};
pub use codec::RowCodec;
pub use store::{StateStore, StateTable};
