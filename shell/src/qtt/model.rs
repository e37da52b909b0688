//! Loading QTT test files: JSON with comments, expanded into one case per format and config, named
//! `<file stem> - <name>[ - <FORMAT>][ - <prop>=<config>]`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

/// A test file.
#[derive(Debug, Deserialize)]
pub struct TestFile {
    /// The cases.
    pub tests: Vec<RawCase>,
}

/// A case as written in the file.
#[derive(Debug, Deserialize, Clone)]
pub struct RawCase {
    /// Case name.
    pub name: String,
    /// Statements, joined with newlines into one script.
    pub statements: Vec<String>,
    /// Formats to expand `{FORMAT}` with.
    #[serde(default)]
    pub format: Vec<String>,
    /// Config values to expand the `{CONFIG}` property with.
    #[serde(default)]
    pub config: Vec<String>,
    /// Engine properties.
    #[serde(default)]
    pub properties: BTreeMap<String, Value>,
    /// Input records.
    #[serde(default)]
    pub inputs: Vec<TestRecord>,
    /// Expected output records.
    #[serde(default)]
    pub outputs: Vec<TestRecord>,
    /// Topic setup.
    #[serde(default)]
    pub topics: Vec<Value>,
    /// The case expects a failure.
    #[serde(rename = "expectedException")]
    pub expected_exception: Option<Value>,
    /// Post-conditions.
    pub post: Option<Post>,
    /// `false` disables the case.
    pub enabled: Option<bool>,
}

/// An input or expected output record.
#[derive(Debug, Deserialize, Clone)]
pub struct TestRecord {
    /// Topic name.
    pub topic: String,
    /// Key spec; missing means null.
    pub key: Option<Value>,
    /// Value spec; null is a tombstone.
    #[serde(default)]
    pub value: Value,
    /// Record timestamp.
    pub timestamp: Option<i64>,
    /// Window of a windowed key.
    pub window: Option<WindowSpec>,
    /// Headers.
    pub headers: Option<Vec<Value>>,
}

/// A window in a record.
#[derive(Debug, Deserialize, Clone)]
pub struct WindowSpec {
    /// Window start.
    pub start: i64,
    /// Window end.
    pub end: i64,
    /// `time` or `session`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Post-conditions.
#[derive(Debug, Deserialize, Clone, Default)]
pub struct Post {
    /// Expected sources.
    #[serde(default)]
    pub sources: Vec<PostSource>,
    /// Expected topics.
    pub topics: Option<PostTopics>,
}

/// An expected source.
#[derive(Debug, Deserialize, Clone)]
pub struct PostSource {
    /// Name.
    pub name: String,
    /// `stream` or `table`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Schema text, e.g. `ID BIGINT KEY, NAME STRING`.
    pub schema: Option<String>,
    /// Key format expectations.
    #[serde(rename = "keyFormat")]
    pub key_format: Option<PostKeyFormat>,
    /// Value format name.
    #[serde(rename = "valueFormat")]
    pub value_format: Option<String>,
}

/// Expected key format.
#[derive(Debug, Deserialize, Clone)]
pub struct PostKeyFormat {
    /// Format name.
    pub format: Option<String>,
    /// `TUMBLING`, `HOPPING` or `SESSION`.
    #[serde(rename = "windowType")]
    pub window_type: Option<String>,
    /// Window size in milliseconds.
    #[serde(rename = "windowSize")]
    pub window_size: Option<i64>,
}

/// Expected topics.
#[derive(Debug, Deserialize, Clone)]
pub struct PostTopics {
    /// No topic may match this regex.
    pub blacklist: Option<String>,
}

/// One expanded case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Full display name.
    pub name: String,
    /// File it came from.
    pub file: String,
    /// The script.
    pub sql: String,
    /// Properties (with `{CONFIG}` replaced).
    pub properties: BTreeMap<String, String>,
    /// The raw case.
    pub raw: RawCase,
}

/// Reads a file, removing `//` and `/* */` comments outside strings.
pub fn read_json_with_comments(path: &Path) -> anyhow::Result<Value> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut stripped = String::new();
    json_comments::StripComments::new(f)
        .read_to_string(&mut stripped)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&stripped).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Loads a file and expands its cases.
pub fn load(path: &Path) -> anyhow::Result<Vec<Case>> {
    let json = read_json_with_comments(path)?;
    let file: TestFile = serde_json::from_value(json)
        .with_context(|| format!("{} is not a QTT file", path.display()))?;
    if file.tests.is_empty() {
        bail!("{} has no tests", path.display());
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut out = Vec::new();
    for raw in file.tests {
        if raw.enabled == Some(false) {
            continue;
        }
        let formats: Vec<Option<String>> = if raw.format.is_empty() {
            vec![None]
        } else {
            raw.format.iter().cloned().map(Some).collect()
        };
        let configs: Vec<Option<String>> = if raw.config.is_empty() {
            vec![None]
        } else {
            raw.config.iter().cloned().map(Some).collect()
        };
        let config_key = raw
            .properties
            .iter()
            .find(|(_, v)| value_text(v).eq_ignore_ascii_case("{CONFIG}"))
            .map(|(k, _)| k.clone());
        for f in &formats {
            for c in &configs {
                let mut name = format!("{stem} - {}", raw.name);
                if let Some(f) = f {
                    name.push_str(&format!(" - {f}"));
                }
                let mut properties: BTreeMap<String, String> = raw
                    .properties
                    .iter()
                    .map(|(k, v)| (k.clone(), value_text(v)))
                    .collect();
                if let (Some(c), Some(k)) = (c, &config_key) {
                    name.push_str(&format!(" - {k}={c}"));
                    properties.insert(k.clone(), c.clone());
                }
                let joined = raw.statements.join("\n");
                let sql = match f {
                    Some(f) => joined.replace("{FORMAT}", f),
                    None => joined,
                };
                out.push(Case {
                    name,
                    file: path.display().to_string(),
                    sql,
                    properties,
                    raw: raw.clone(),
                });
            }
        }
    }
    Ok(out)
}
