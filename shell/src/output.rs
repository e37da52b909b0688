//! Rendering results for people: tables for listings, JSON lines for streamed rows, and error
//! messages with the offending line and a caret under the column.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int8Type;
use riffle_engine::StatementResult;
use riffle_engine::formats::text::write_json;
use riffle_sql::SqlError;
use riffle_sql::plan::{ChangeOp, StreamSchema};

/// Renders a listing as a table.
pub fn table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut t = Table::new();
    // Wrap to the terminal only when its width is known and usable (a pty may report 0).
    let arrangement = match t.width() {
        Some(w) if w >= 40 => ContentArrangement::Dynamic,
        _ => ContentArrangement::Disabled,
    };
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(arrangement);
    t.set_header(headers);
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

/// A one-line summary of a statement result (tables and text are returned whole).
pub fn describe(r: &StatementResult) -> String {
    match r {
        StatementResult::Created { kind, name } => {
            format!("Created {} {name}", kind.to_string().to_lowercase())
        }
        StatementResult::QueryStarted { query_id, sink } => {
            format!("Started query {query_id} writing {sink}")
        }
        StatementResult::Inserted { target } => format!("Inserted a row into {target}"),
        StatementResult::Dropped { name } => format!("Dropped {name}"),
        StatementResult::Terminated { ids } => format!("Terminated {}", ids.join(", ")),
        StatementResult::Listing { headers, rows } => table(headers, rows),
        StatementResult::Text(t) => t.clone(),
        StatementResult::Property {
            name,
            value: Some(v),
        } => format!("Set {name} = {v}"),
        StatementResult::Property { name, value: None } => format!("Unset {name}"),
        StatementResult::Transient(t) => format!("Streaming results of {}", t.handle.id),
        StatementResult::Pull(p) => {
            let rows: Vec<Vec<String>> = row_values(&p.batch, &p.schema)
                .into_iter()
                .map(|(_, cells)| cells.iter().map(cell_text).collect())
                .collect();
            let n = rows.len();
            format!(
                "{}\n({n} row{})",
                table(&column_names(&p.schema), &rows),
                if n == 1 { "" } else { "s" }
            )
        }
    }
}

/// The column names of a result layout: keys, values, then window bounds when windowed.
pub fn column_names(schema: &StreamSchema) -> Vec<String> {
    let mut names: Vec<String> = schema
        .key_fields()
        .iter()
        .chain(schema.value_fields().iter())
        .map(|f| f.name().clone())
        .collect();
    if schema.windowed {
        names.push("WINDOWSTART".into());
        names.push("WINDOWEND".into());
    }
    names
}

/// The SQL types of the columns of [`column_names`].
pub fn column_types(schema: &StreamSchema) -> Vec<String> {
    let n = column_names(schema).len();
    schema.arrow.fields()[..n]
        .iter()
        .map(|f| riffle_sql::types::display_arrow(f.data_type()))
        .collect()
}

/// Each row's cells as JSON values with its change kind; the old halves of updates are skipped.
pub fn row_values(
    batch: &RecordBatch,
    schema: &StreamSchema,
) -> Vec<(ChangeOp, Vec<serde_json::Value>)> {
    let ops = batch.column(schema.op()).as_primitive::<Int8Type>();
    let n = column_names(schema).len();
    let mut out = Vec::new();
    for i in 0..batch.num_rows() {
        let op = ChangeOp::from_i8(ops.value(i));
        if op == ChangeOp::UpdateBefore {
            continue;
        }
        let cells = (0..n)
            .map(|c| {
                let mut s = String::new();
                write_json(&mut s, batch.column(c), i);
                serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))
            })
            .collect();
        out.push((op, cells));
    }
    out
}

/// A cell as table text: strings without quotes, everything else as JSON.
pub fn cell_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints a push query's rows as an aligned table that grows as rows arrive.
pub struct GrowingTable {
    widths: Vec<usize>,
}

impl GrowingTable {
    /// Starts a table with these headers, returning it and the header lines to print.
    pub fn new(headers: &[String]) -> (Self, String) {
        let widths: Vec<usize> = headers.iter().map(|h| h.chars().count().max(12)).collect();
        let t = GrowingTable { widths };
        let rule = t.rule();
        let head = t.line(headers);
        (t, format!("{rule}\n{head}\n{rule}"))
    }

    fn rule(&self) -> String {
        let mut s = String::from("+");
        for w in &self.widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s
    }

    fn line(&self, cells: &[String]) -> String {
        let mut s = String::from("|");
        for (c, w) in cells.iter().zip(&self.widths) {
            let text: String = if c.chars().count() > *w {
                let mut t: String = c.chars().take(w.saturating_sub(1)).collect();
                t.push('…');
                t
            } else {
                c.clone()
            };
            s.push(' ');
            s.push_str(&text);
            s.push_str(&" ".repeat(w - text.chars().count()));
            s.push_str(" |");
        }
        s
    }

    /// One row as a table line.
    pub fn row(&self, cells: &[serde_json::Value]) -> String {
        let texts: Vec<String> = cells.iter().map(cell_text).collect();
        self.line(&texts)
    }

    /// The closing rule.
    pub fn end(&self) -> String {
        self.rule()
    }
}

/// The rows of a result batch as JSON objects (keys, values, window bounds); updates whose new
/// value follows are skipped, deletes are marked.
pub fn json_rows(batch: &RecordBatch, schema: &StreamSchema) -> Vec<String> {
    let ops = batch.column(schema.op()).as_primitive::<Int8Type>();
    let mut names: Vec<String> = schema
        .key_fields()
        .iter()
        .chain(schema.value_fields().iter())
        .map(|f| f.name().clone())
        .collect();
    let mut n = schema.key_count + schema.value_count;
    if schema.windowed {
        names.push("WINDOWSTART".into());
        names.push("WINDOWEND".into());
        n += 2;
    }
    let mut out = Vec::new();
    for i in 0..batch.num_rows() {
        let op = ChangeOp::from_i8(ops.value(i));
        if op == ChangeOp::UpdateBefore {
            continue;
        }
        let mut s = String::from("{");
        for (c, name) in names.iter().enumerate().take(n) {
            if c > 0 {
                s.push(',');
            }
            s.push_str(&serde_json::to_string(name).unwrap_or_default());
            s.push(':');
            write_json(&mut s, batch.column(c), i);
        }
        if op == ChangeOp::Delete {
            s.push_str(",\"__deleted\":true");
        }
        s.push('}');
        out.push(s);
    }
    out
}

/// An error message; syntax errors show the offending line with a caret under the column.
pub fn error_with_caret(e: &SqlError, text: &str) -> String {
    match e.position() {
        Some(p) if p.line > 0 => {
            let line = text.lines().nth((p.line - 1) as usize).unwrap_or("");
            let caret = " ".repeat(p.column.saturating_sub(1) as usize);
            format!("{e}\n{line}\n{caret}^")
        }
        _ => e.to_string(),
    }
}
