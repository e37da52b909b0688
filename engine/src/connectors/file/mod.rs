//! File connector: reads a file of JSON lines or delimited rows (one record per line; every
//! column, key or value, comes from the line) and is exhausted at its end.

use std::io::{BufRead, BufReader};
use std::sync::Arc;

use crate::connectors::Poll;
use crate::error::{EngineError, Result};
use crate::record::{Record, SourceRecord};

/// Reads lines of a file as records.
pub struct FileReader {
    path: String,
    lines: Option<std::io::Lines<BufReader<std::fs::File>>>,
    offset: i64,
    skip_header: bool,
    topic: Arc<str>,
}

impl FileReader {
    /// Opens `path`; with `skip_header` the first line is ignored (CSV headers).
    pub fn open(path: &str, skip_header: bool) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| EngineError::Io {
            context: format!("opening source file {path}"),
            source: e,
        })?;
        Ok(FileReader {
            path: path.to_string(),
            lines: Some(BufReader::new(f).lines()),
            offset: 0,
            skip_header,
            topic: Arc::from(path),
        })
    }

    /// Lines read so far (the offset of the next one).
    pub fn position(&self) -> i64 {
        self.offset
    }

    /// Skips to line `offset` (a restored checkpoint).
    pub fn seek(&mut self, offset: i64) -> Result<()> {
        while self.offset < offset {
            let Some(lines) = self.lines.as_mut() else {
                return Ok(());
            };
            match lines.next() {
                None => self.lines = None,
                Some(Err(e)) => {
                    return Err(EngineError::Io {
                        context: format!("reading {}", self.path),
                        source: e,
                    });
                }
                Some(Ok(_)) => self.offset += 1,
            }
        }
        Ok(())
    }

    /// Reads up to `max` lines.
    pub fn poll(&mut self, max: usize) -> Result<Poll> {
        let Some(lines) = self.lines.as_mut() else {
            return Ok(Poll::Exhausted);
        };
        let now = chrono::Utc::now().timestamp_millis();
        let mut out = Vec::new();
        while out.len() < max {
            match lines.next() {
                None => {
                    self.lines = None;
                    break;
                }
                Some(Err(e)) => {
                    return Err(EngineError::Io {
                        context: format!("reading {}", self.path),
                        source: e,
                    });
                }
                Some(Ok(line)) => {
                    let offset = self.offset;
                    self.offset += 1;
                    if offset == 0 && self.skip_header {
                        continue;
                    }
                    if line.trim().is_empty() {
                        continue;
                    }
                    out.push(SourceRecord {
                        partition: 0,
                        offset,
                        record: Arc::new(Record {
                            key: None,
                            value: Some(line.into_bytes()),
                            timestamp: now,
                            headers: vec![],
                        }),
                        topic: self.topic.clone(),
                    });
                }
            }
        }
        if out.is_empty() {
            return Ok(if self.lines.is_none() {
                Poll::Exhausted
            } else {
                Poll::Idle
            });
        }
        Ok(Poll::Records(out))
    }
}

/// Opens a file sink that resumes a checkpoint: the file is cut back to the `length` it had at
/// the checkpoint (dropping what was written after it) and appended to.
pub fn resume_sink_file(path: &str, length: u64) -> Result<std::io::BufWriter<std::fs::File>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| EngineError::Io {
            context: format!("opening sink file {path}"),
            source: e,
        })?;
    f.set_len(length).map_err(|e| EngineError::Io {
        context: format!("truncating sink file {path} to its checkpointed length {length}"),
        source: e,
    })?;
    Ok(std::io::BufWriter::new(f))
}

/// Opens a file for a file sink (truncating it), creating parent directories.
pub fn create_sink_file(path: &str) -> Result<std::io::BufWriter<std::fs::File>> {
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| EngineError::Io {
            context: format!("creating directory for {path}"),
            source: e,
        })?;
    }
    let f = std::fs::File::create(path).map_err(|e| EngineError::Io {
        context: format!("creating sink file {path}"),
        source: e,
    })?;
    Ok(std::io::BufWriter::new(f))
}
