//! A serialized record as it sits in a topic or file: key and value bytes, timestamp, headers.

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Key bytes; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Record timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A record read from a partition at an offset.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    /// Partition it was read from.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// The record.
    pub record: std::sync::Arc<Record>,
    /// Topic (or file) name, for error reports.
    pub topic: std::sync::Arc<str>,
}
