//! `riffle shell`: the interactive shell for analysts. Statements may span lines and end at `;`;
//! history is kept in `~/.riffle_history` (Ctrl-R searches it); Tab completes keywords, stream,
//! table, column and function names. Push queries print rows as they arrive until Ctrl-C or their
//! `LIMIT`; errors point at the offending column. The engine is embedded unless `--server URL`
//! names a `riffle server`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use riffle_engine::{Engine, EngineConfig, StatementResult};
use riffle_sql::ast::StatementKind;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper, Highlighter, Hinter};
use serde_json::Value;

use crate::client::RemoteClient;
use crate::output;

/// SQL keywords offered by Tab completion.
const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "WINDOW",
    "TUMBLING",
    "HOPPING",
    "SESSION",
    "SIZE",
    "ADVANCE",
    "GRACE",
    "PERIOD",
    "EMIT",
    "CHANGES",
    "FINAL",
    "LIMIT",
    "PARTITION",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "INNER",
    "ON",
    "WITHIN",
    "AS",
    "CREATE",
    "STREAM",
    "TABLE",
    "WITH",
    "INSERT",
    "INTO",
    "VALUES",
    "DROP",
    "TERMINATE",
    "SHOW",
    "LIST",
    "STREAMS",
    "TABLES",
    "QUERIES",
    "TOPICS",
    "FUNCTIONS",
    "DESCRIBE",
    "EXTENDED",
    "EXPLAIN",
    "PRINT",
    "BEGINNING",
    "SET",
    "UNSET",
    "RUN",
    "SCRIPT",
    "OUTPUT",
    "JSON",
    "KEY",
    "PRIMARY",
    "STRING",
    "VARCHAR",
    "INT",
    "INTEGER",
    "BIGINT",
    "DOUBLE",
    "BOOLEAN",
    "DECIMAL",
    "TIMESTAMP",
    "DATE",
    "TIME",
    "BYTES",
    "ARRAY",
    "MAP",
    "STRUCT",
    "CAST",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "LIKE",
    "BETWEEN",
    "DISTINCT",
    "MATCH_RECOGNIZE",
    "MEASURES",
    "PATTERN",
    "DEFINE",
    "WATERMARK",
    "INTERVAL",
    "DESCRIPTOR",
    "EXIT",
    "QUIT",
    "HELP",
];

/// Where statements run.
enum Backend {
    /// An engine inside the shell process.
    Embedded(Arc<Engine>),
    /// A `riffle server` over HTTP.
    Remote(RemoteClient),
}

/// How push and pull query rows are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OutputMode {
    Table,
    Json,
}

/// rustyline glue: statement completion (`;`) and Tab completion.
#[derive(Helper, Hinter, Highlighter)]
struct ShellHelper {
    /// Stream, table, column and function names currently known.
    names: Arc<Mutex<Vec<String>>>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((pos, vec![]));
        }
        let upper = word.to_uppercase();
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Pair> = KEYWORDS
            .iter()
            .map(|k| k.to_string())
            .chain(names.iter().cloned())
            .filter(|c| c.to_uppercase().starts_with(&upper))
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        out.sort_by(|a, b| a.display.cmp(&b.display));
        out.dedup_by(|a, b| a.display == b.display);
        Ok((start, out))
    }
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

/// Whether the input is ready to run: it ends with `;` outside quotes and comments, or is empty
/// or a shell command (`exit`, `quit`, `help`).
pub fn is_complete(input: &str) -> bool {
    let t = input.trim();
    if t.is_empty() || matches!(t.to_lowercase().as_str(), "exit" | "quit" | "help") {
        return true;
    }
    let mut in_single = false;
    let mut in_double = false;
    let mut last = ' ';
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            '-' if !in_single && !in_double && chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            last = c;
        }
    }
    !in_single && !in_double && last == ';'
}

/// Options of `riffle shell`.
pub struct ShellOptions {
    /// Talk to this server instead of an embedded engine.
    pub server: Option<String>,
    /// `Authorization` header value for the server.
    pub auth: Option<String>,
    /// History file (default `~/.riffle_history`).
    pub history: Option<PathBuf>,
    /// Settings of the embedded engine.
    pub engine: crate::engine_args::EngineArgs,
}

/// The shell's state.
struct Shell {
    backend: Backend,
    /// `SET` properties kept by the shell and sent with each request (remote mode, as ksqlDB's
    /// CLI does).
    properties: std::collections::BTreeMap<String, String>,
    mode: OutputMode,
    names: Arc<Mutex<Vec<String>>>,
    runtime: tokio::runtime::Handle,
}

/// Runs the shell until `exit` or Ctrl-D. Must not be called from inside the runtime.
pub fn run_shell(runtime: tokio::runtime::Handle, opts: ShellOptions) -> anyhow::Result<()> {
    let backend = match &opts.server {
        Some(url) => Backend::Remote(RemoteClient::new(url, opts.auth.clone())),
        None => {
            let _guard = runtime.enter();
            let mut config = EngineConfig::default();
            opts.engine.apply(
                &crate::engine_args::EngineFileConfig::default(),
                &mut config,
            )?;
            Backend::Embedded(Arc::new(Engine::new(config)?))
        }
    };
    let names = Arc::new(Mutex::new(Vec::new()));
    let mut shell = Shell {
        backend,
        properties: Default::default(),
        mode: OutputMode::Table,
        names: names.clone(),
        runtime,
    };
    let mut editor: Editor<ShellHelper, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(ShellHelper { names }));
    let history = opts
        .history
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".riffle_history")));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "riffle {} — {}. Statements end with ';'. Type 'help' for help, 'exit' to leave.",
        env!("CARGO_PKG_VERSION"),
        match &opts.server {
            Some(url) => format!("connected to {url}"),
            None => "embedded engine".to_string(),
        }
    );
    shell.refresh_names();
    loop {
        match editor.readline("riffle> ") {
            Ok(input) => {
                let trimmed = input.trim();
                if trimmed.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(trimmed);
                if !shell.handle(trimmed) {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    if let Backend::Embedded(engine) = &shell.backend {
        shell.runtime.block_on(engine.shutdown());
    }
    Ok(())
}

const HELP: &str = "\
Statements end with ';' and may span lines. Besides SQL (CREATE, SELECT, INSERT, SHOW, DESCRIBE,
EXPLAIN, PRINT, TERMINATE, DROP, SET):
  RUN SCRIPT 'file.sql';   run every statement of a file
  OUTPUT JSON; / OUTPUT TABLE;   print query rows as JSON lines or an aligned table
  exit / quit / Ctrl-D     leave the shell
Push queries (SELECT … EMIT CHANGES) print rows as they arrive: Ctrl-C stops the query, not the
shell. SELECT without EMIT CHANGES is a pull query: the current contents, then done.";

impl Shell {
    /// Handles one input; false to leave the shell.
    fn handle(&mut self, input: &str) -> bool {
        let command = input.trim_end_matches(';').trim();
        let upper = command.to_uppercase();
        let words: Vec<&str> = upper.split_whitespace().collect();
        match words.as_slice() {
            ["EXIT"] | ["QUIT"] => return false,
            ["HELP"] => println!("{HELP}"),
            ["OUTPUT", "JSON"] => {
                self.mode = OutputMode::Json;
                println!("Query rows print as JSON lines.");
            }
            ["OUTPUT", "TABLE"] => {
                self.mode = OutputMode::Table;
                println!("Query rows print as a table.");
            }
            ["RUN", "SCRIPT", ..] => {
                let path = command["RUN SCRIPT".len()..]
                    .trim()
                    .trim_matches(|c| c == '\'' || c == '"');
                match std::fs::read_to_string(path) {
                    Ok(text) => self.run_sql(&text),
                    Err(e) => eprintln!("cannot read {path}: {e}"),
                }
            }
            _ => self.run_sql(input),
        }
        true
    }

    /// Refreshes the names Tab completion offers.
    fn refresh_names(&self) {
        let names: Vec<String> = match &self.backend {
            Backend::Embedded(engine) => {
                let catalog = engine.catalog();
                let mut n: Vec<String> = Vec::new();
                for def in catalog.all() {
                    n.push(def.name.clone());
                    n.extend(def.columns.iter().map(|c| c.name.clone()));
                }
                n.extend(engine.registry().list().into_iter().map(|(name, _)| name));
                n
            }
            Backend::Remote(client) => {
                let client = client.clone();
                self.runtime
                    .block_on(async move { client.ksql("SHOW STREAMS; SHOW TABLES;").await })
                    .map(|entities| {
                        entities
                            .iter()
                            .flat_map(|e| {
                                ["streams", "tables"]
                                    .iter()
                                    .filter_map(|k| e[*k].as_array())
                                    .flatten()
                                    .filter_map(|s| s["name"].as_str().map(str::to_string))
                                    .collect::<Vec<_>>()
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
        };
        *self.names.lock().unwrap_or_else(|e| e.into_inner()) = names;
    }

    fn run_sql(&mut self, text: &str) {
        let statements = match riffle_sql::parse_script(text) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{}", output::error_with_caret(&e, text));
                return;
            }
        };
        for stmt in statements {
            let ok = match &self.backend {
                Backend::Embedded(engine) => self.run_embedded(engine.clone(), &stmt, text),
                Backend::Remote(client) => match &stmt.kind {
                    StatementKind::Set { name, value } => {
                        self.properties.insert(name.clone(), value.clone());
                        println!("Set {name} = {value}");
                        true
                    }
                    StatementKind::Unset(name) => {
                        self.properties.remove(name);
                        println!("Unset {name}");
                        true
                    }
                    _ => self.run_remote(client.clone(), &stmt),
                },
            };
            if !ok {
                break;
            }
        }
        self.refresh_names();
    }

    fn run_embedded(
        &self,
        engine: Arc<Engine>,
        stmt: &riffle_sql::ast::Statement,
        text: &str,
    ) -> bool {
        let mode = self.mode;
        let stmt = stmt.clone();
        let text = text.to_string();
        self.runtime.block_on(async move {
            match engine.execute_statement(&stmt).await {
                Ok(StatementResult::Transient(mut t)) => {
                    let headers = output::column_names(&t.schema);
                    let mut printer = RowPrinter::new(mode, &headers);
                    let mut printed = 0u64;
                    let mut stopped = false;
                    loop {
                        tokio::select! {
                            batch = t.rows.recv() => {
                                let Some(batch) = batch else { break };
                                for (_, cells) in output::row_values(&batch, &t.schema) {
                                    printer.row(&headers, &cells);
                                    printed += 1;
                                    if t.limit.is_some_and(|l| printed >= l) {
                                        stopped = true;
                                        break;
                                    }
                                }
                                if stopped { break; }
                            }
                            _ = tokio::signal::ctrl_c() => break,
                        }
                    }
                    t.handle.terminate().await;
                    engine.forget(&t.handle.id);
                    printer.end(printed);
                    true
                }
                Ok(StatementResult::Pull(p)) if mode == OutputMode::Json => {
                    let headers = output::column_names(&p.schema);
                    let mut printer = RowPrinter::new(mode, &headers);
                    let rows = output::row_values(&p.batch, &p.schema);
                    for (_, cells) in &rows {
                        printer.row(&headers, cells);
                    }
                    printer.end(rows.len() as u64);
                    true
                }
                Ok(other) => {
                    println!("{}", output::describe(&other));
                    true
                }
                Err(riffle_engine::EngineError::Sql(e)) => {
                    eprintln!("{}", output::error_with_caret(&e, &text));
                    false
                }
                Err(e) => {
                    eprintln!("{e}");
                    false
                }
            }
        })
    }

    fn run_remote(&self, client: RemoteClient, stmt: &riffle_sql::ast::Statement) -> bool {
        let mode = self.mode;
        let properties = self.properties.clone();
        let is_query = matches!(
            stmt.kind,
            StatementKind::Select(_) | StatementKind::Print { .. }
        );
        let sql = format!("{};", stmt.text);
        self.runtime.block_on(async move {
            if is_query {
                let mut q = match client.query(&sql, &properties).await {
                    Ok(q) => q,
                    Err(e) => {
                        eprintln!("{}", remote_error(&e.to_string(), &sql));
                        return false;
                    }
                };
                let headers = q.columns.clone();
                let mut printer = RowPrinter::new(mode, &headers);
                let mut printed = 0u64;
                loop {
                    tokio::select! {
                        row = q.next_row() => match row {
                            Ok(Some(cells)) => { printer.row(&headers, &cells); printed += 1; }
                            Ok(None) => break,
                            Err(e) => { eprintln!("{e}"); break; }
                        },
                        _ = tokio::signal::ctrl_c() => {
                            if let Some(id) = &q.query_id {
                                let _ = client.close_query(id).await;
                            }
                            break;
                        }
                    }
                }
                printer.end(printed);
                return true;
            }
            match client.ksql(&sql).await {
                Ok(entities) => {
                    for e in &entities {
                        println!("{}", render_entity(e));
                    }
                    true
                }
                Err(e) => {
                    eprintln!("{}", remote_error(&e.to_string(), &sql));
                    false
                }
            }
        })
    }
}

/// A server error; syntax errors get the line and caret like local ones.
fn remote_error(message: &str, sql: &str) -> String {
    let re = regex::Regex::new(r"line (\d+), column (\d+)").ok();
    if let Some(c) = re.as_ref().and_then(|r| r.captures(message)) {
        let line: usize = c[1].parse().unwrap_or(1);
        let col: usize = c[2].parse().unwrap_or(1);
        let text = sql.lines().nth(line.saturating_sub(1)).unwrap_or("");
        return format!("{message}\n{text}\n{}^", " ".repeat(col.saturating_sub(1)));
    }
    message.to_string()
}

/// Renders one ksqlDB-shaped entity for people.
fn render_entity(e: &Value) -> String {
    let rows_of = |key: &str, cols: &[&str]| -> String {
        let rows: Vec<Vec<String>> = e[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| cols.iter().map(|c| output::cell_text(&r[*c])).collect())
                    .collect()
            })
            .unwrap_or_default();
        output::table(
            &cols.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            &rows,
        )
    };
    match e["@type"].as_str().unwrap_or_default() {
        "currentStatus" => e["commandStatus"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        "streams" => rows_of("streams", &["name", "topic", "keyFormat", "valueFormat"]),
        "tables" => rows_of(
            "tables",
            &["name", "topic", "keyFormat", "valueFormat", "isWindowed"],
        ),
        "queries" => rows_of("queries", &["id", "queryType", "state", "sinks"]),
        "kafka_topics" => rows_of("topics", &["name"]),
        "function_names" => rows_of("functions", &["name", "type"]),
        "sourceDescription" => {
            let d = &e["sourceDescription"];
            let fields: Vec<Vec<String>> = d["fields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| {
                            vec![
                                output::cell_text(&f["name"]),
                                output::cell_text(&f["schema"]["type"]),
                                output::cell_text(&f["type"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "Name: {} ({})\n{}",
                output::cell_text(&d["name"]),
                output::cell_text(&d["type"]),
                output::table(&["field".into(), "type".into(), "kind".into()], &fields)
            )
        }
        "queryDescription" => output::cell_text(&e["queryDescription"]["executionPlan"]),
        "text" => output::cell_text(&e["text"]),
        _ => serde_json::to_string_pretty(e).unwrap_or_default(),
    }
}

/// Prints query rows as they come, as a growing table or JSON lines.
struct RowPrinter {
    mode: OutputMode,
    table: Option<output::GrowingTable>,
}

impl RowPrinter {
    fn new(mode: OutputMode, headers: &[String]) -> Self {
        let table = (mode == OutputMode::Table).then(|| {
            let (t, head) = output::GrowingTable::new(headers);
            println!("{head}");
            t
        });
        RowPrinter { mode, table }
    }

    fn row(&mut self, headers: &[String], cells: &[Value]) {
        match (&self.table, self.mode) {
            (Some(t), OutputMode::Table) => println!("{}", t.row(cells)),
            _ => {
                let obj: serde_json::Map<String, Value> =
                    headers.iter().cloned().zip(cells.iter().cloned()).collect();
                println!("{}", Value::Object(obj));
            }
        }
    }

    fn end(&self, rows: u64) {
        if let Some(t) = &self.table {
            println!("{}", t.end());
        }
        println!("{rows} row{} printed.", if rows == 1 { "" } else { "s" });
    }
}

#[cfg(test)]
mod tests {
    use super::is_complete;

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes_and_comments() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT\n  1\n;  "));
        assert!(!is_complete("SELECT ';'"));
        assert!(!is_complete("SELECT 1 -- done;"));
        assert!(is_complete("SELECT 1; -- trailing comment"));
        assert!(is_complete("exit"));
        assert!(!is_complete("CREATE STREAM s (a INT)"));
    }
}
