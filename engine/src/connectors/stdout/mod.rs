//! Stdout connector: a sink printing one JSON object per row (keys, values and window bounds).
//! The writing itself lives in the sink operator; this module names the connector's contract.

/// Name of the connector in `WITH (connector='stdout')`.
pub const CONNECTOR: &str = "stdout";
