//! Statement parser: ksqlDB's statement grammar on top of sqlparser's tokenizer and expression
//! parser. Unquoted identifiers are upper-cased at the token level, so every later stage compares
//! names exactly, as ksqlDB does.

use std::time::Duration;

use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};

use crate::ast::*;
use crate::dialect::RiffleDialect;
use crate::error::{Position, Result, SqlError};
use crate::types::TypeParser;

/// Parses a script of `;`-separated statements.
pub fn parse_script(sql: &str) -> Result<Vec<Statement>> {
    let dialect = RiffleDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| {
            let pos = Position {
                line: e.location.line,
                column: e.location.column,
            };
            SqlError::Syntax {
                position: pos,
                message: e.message,
            }
        })?;
    let tokens: Vec<TokenWithSpan> = tokens.into_iter().map(normalize_token).collect();
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let offsets = LineOffsets::new(sql);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let start = parser.peek_token();
        if start.token == Token::EOF {
            break;
        }
        let kind = StatementParser { p: &mut parser }
            .parse_statement()
            .map_err(|e| syntax_error_at_end(e, sql))?;
        let end = parser.peek_token();
        if !matches!(end.token, Token::SemiColon | Token::EOF) {
            return Err(syntax_error(ParserError::ParserError(format!(
                "Expected: end of statement (;), found: {}{}",
                end.token, end.span.start
            ))));
        }
        let position = Position {
            line: start.span.start.line,
            column: start.span.start.column,
        };
        let from = offsets.offset(start.span.start.line, start.span.start.column);
        let to = if end.token == Token::EOF {
            sql.len()
        } else {
            offsets.offset(end.span.start.line, end.span.start.column)
        };
        let text = sql[from..to].trim().to_string();
        statements.push(Statement {
            kind,
            text,
            position,
        });
    }
    Ok(statements)
}

/// Parses exactly one statement.
pub fn parse_statement(sql: &str) -> Result<Statement> {
    let mut stmts = parse_script(sql)?;
    match stmts.len() {
        1 => Ok(stmts.remove(0)),
        0 => Err(SqlError::Syntax {
            position: Position { line: 1, column: 1 },
            message: "Expected: a statement, found: end of input".into(),
        }),
        n => Err(SqlError::semantic(format!(
            "expected one statement, found {n}"
        ))),
    }
}

/// Tokenizes text with riffle's identifier normalization.
pub fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>> {
    let dialect = RiffleDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Syntax {
            position: Position {
                line: e.location.line,
                column: e.location.column,
            },
            message: e.message,
        })?;
    Ok(tokens.into_iter().map(normalize_token).collect())
}

/// Parses a standalone expression (used for `PARTITION BY` defaults, tests and tools).
pub fn parse_expr(sql: &str) -> Result<Expr> {
    let dialect = RiffleDialect;
    let tokens = tokenize(sql)?;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let e = parser.parse_expr().map_err(syntax_error)?;
    let end = parser.peek_token();
    if end.token != Token::EOF {
        return Err(syntax_error(ParserError::ParserError(format!(
            "Expected: end of expression, found: {}{}",
            end.token, end.span.start
        ))));
    }
    Ok(e)
}

/// The normalized name of an identifier token: upper-case unless quoted.
pub fn normalize_word(w: &Word) -> String {
    w.value.clone()
}

fn normalize_token(mut t: TokenWithSpan) -> TokenWithSpan {
    if let Token::Word(w) = &mut t.token
        && w.quote_style.is_none()
    {
        w.value = w.value.to_uppercase();
    }
    t
}

/// Turns a sqlparser error into a [`SqlError::Syntax`] with its line and column.
pub fn syntax_error(e: ParserError) -> SqlError {
    let raw = match e {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
        ParserError::RecursionLimitExceeded => "statement nested too deeply".to_string(),
    };
    let (message, position) = split_location(&raw);
    SqlError::Syntax {
        position: position.unwrap_or_default(),
        message,
    }
}

fn syntax_error_at_end(e: ParserError, sql: &str) -> SqlError {
    match syntax_error(e) {
        SqlError::Syntax { position, message } if position.line == 0 => {
            let line = sql.lines().count().max(1) as u64;
            let column = sql
                .lines()
                .last()
                .map(|l| l.chars().count() + 1)
                .unwrap_or(1) as u64;
            SqlError::Syntax {
                position: Position { line, column },
                message,
            }
        }
        other => other,
    }
}

fn split_location(raw: &str) -> (String, Option<Position>) {
    if let Some(idx) = raw.rfind(" at Line: ") {
        let rest = &raw[idx + " at Line: ".len()..];
        let mut parts = rest.split(", Column: ");
        let line = parts.next().and_then(|l| l.trim().parse().ok());
        let column = parts.next().and_then(|c| c.trim().parse().ok());
        if let (Some(line), Some(column)) = (line, column) {
            return (raw[..idx].to_string(), Some(Position { line, column }));
        }
    }
    (raw.to_string(), None)
}

/// " at Line: l, Column: c" for a token, in sqlparser's style, so it can be split off later.
pub fn location_suffix(t: &TokenWithSpan) -> String {
    t.span.start.to_string()
}

struct LineOffsets {
    lines: Vec<(usize, Vec<usize>)>,
    len: usize,
}

impl LineOffsets {
    fn new(sql: &str) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        for line in sql.split_inclusive('\n') {
            let chars: Vec<usize> = line.char_indices().map(|(i, _)| start + i).collect();
            lines.push((start, chars));
            start += line.len();
        }
        LineOffsets {
            lines,
            len: sql.len(),
        }
    }

    fn offset(&self, line: u64, column: u64) -> usize {
        let Some((start, chars)) = self.lines.get(line.saturating_sub(1) as usize) else {
            return self.len;
        };
        chars
            .get(column.saturating_sub(1) as usize)
            .copied()
            .unwrap_or_else(|| chars.last().map(|c| c + 1).unwrap_or(*start).min(self.len))
    }
}

/// Keywords that end a select item or relation and so can never be an implicit alias.
const CLAUSE_WORDS: &[&str] = &[
    "FROM",
    "WHERE",
    "GROUP",
    "HAVING",
    "WINDOW",
    "EMIT",
    "LIMIT",
    "PARTITION",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "ON",
    "WITHIN",
    "AS",
    "CROSS",
    "MATCH_RECOGNIZE",
];

/// Clause keywords that end a row pattern (they cannot be pattern variables without quotes).
const PATTERN_STOP_WORDS: &[&str] = &["DEFINE", "WITHIN", "SUBSET", "MEASURES", "AS"];

/// Words that cannot name a relation without quotes.
const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "HAVING",
    "WINDOW",
    "EMIT",
    "LIMIT",
    "PARTITION",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "ON",
    "WITHIN",
    "AS",
    "BY",
    "AND",
    "OR",
    "NOT",
    "WITH",
    "CREATE",
    "INSERT",
    "VALUES",
];

struct StatementParser<'p, 'a> {
    p: &'p mut Parser<'a>,
}

type PResult<T> = std::result::Result<T, ParserError>;

impl StatementParser<'_, '_> {
    fn peek_word(&self) -> Option<String> {
        match &self.p.peek_token_ref().token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.clone()),
            _ => None,
        }
    }

    fn peek_nth_word(&self, n: usize) -> Option<String> {
        match &self.p.peek_nth_token_ref(n).token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.clone()),
            _ => None,
        }
    }

    /// Consumes the word if it is next (case-insensitive, unquoted).
    fn eat(&mut self, word: &str) -> bool {
        if self.peek_word().as_deref() == Some(word) {
            self.p.next_token();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, word: &str) -> PResult<()> {
        if self.eat(word) {
            Ok(())
        } else {
            self.p.expected(word, self.p.peek_token())
        }
    }

    fn ident(&mut self, what: &str) -> PResult<String> {
        let t = self.p.next_token();
        match &t.token {
            Token::Word(w) => Ok(normalize_word(w)),
            _ => self.p.expected(what, t),
        }
    }

    fn parse_statement(&mut self) -> PResult<StatementKind> {
        let Some(first) = self.peek_word() else {
            return self.p.expected("a statement", self.p.peek_token());
        };
        match first.as_str() {
            "CREATE" => self.parse_create(),
            "INSERT" => self.parse_insert(),
            "SELECT" => Ok(StatementKind::Select(self.parse_query()?)),
            "TERMINATE" => {
                self.p.next_token();
                if self.eat("ALL") {
                    Ok(StatementKind::Terminate { query_id: None })
                } else {
                    let id = self.ident("a query id")?;
                    Ok(StatementKind::Terminate { query_id: Some(id) })
                }
            }
            "DROP" => {
                self.p.next_token();
                let kind = self.parse_kind()?;
                let if_exists = if self.eat("IF") {
                    self.expect("EXISTS")?;
                    true
                } else {
                    false
                };
                let name = self.ident("a stream or table name")?;
                let delete_topic = if self.eat("DELETE") {
                    self.expect("TOPIC")?;
                    true
                } else {
                    false
                };
                Ok(StatementKind::Drop {
                    kind,
                    name,
                    if_exists,
                    delete_topic,
                })
            }
            "SHOW" | "LIST" => {
                self.p.next_token();
                let what =
                    self.ident("STREAMS, TABLES, QUERIES, TOPICS, FUNCTIONS or PROPERTIES")?;
                let kind = match what.as_str() {
                    "STREAMS" => ShowKind::Streams,
                    "TABLES" => ShowKind::Tables,
                    "QUERIES" => ShowKind::Queries,
                    "TOPICS" => ShowKind::Topics,
                    "FUNCTIONS" => ShowKind::Functions,
                    "PROPERTIES" => ShowKind::Properties,
                    _ => {
                        self.p.prev_token();
                        return self.p.expected(
                            "STREAMS, TABLES, QUERIES, TOPICS, FUNCTIONS or PROPERTIES",
                            self.p.peek_token(),
                        );
                    }
                };
                self.eat("EXTENDED");
                Ok(StatementKind::Show(kind))
            }
            "DESCRIBE" => {
                self.p.next_token();
                if self.eat("FUNCTION") {
                    return Ok(StatementKind::DescribeFunction(
                        self.ident("a function name")?,
                    ));
                }
                if matches!(self.peek_word().as_deref(), Some("STREAMS" | "TABLES"))
                    && matches!(
                        self.p.peek_nth_token_ref(1).token,
                        Token::SemiColon | Token::EOF
                    )
                {
                    let what = self.ident("STREAMS or TABLES")?;
                    return Ok(StatementKind::Show(if what == "STREAMS" {
                        ShowKind::Streams
                    } else {
                        ShowKind::Tables
                    }));
                }
                let extended = self.eat("EXTENDED");
                let name = self.ident("a stream or table name")?;
                Ok(StatementKind::Describe { name, extended })
            }
            "EXPLAIN" => {
                self.p.next_token();
                let start = self.p.peek_token();
                let is_statement = matches!(
                    self.peek_word().as_deref(),
                    Some("SELECT" | "CREATE" | "INSERT")
                );
                if is_statement {
                    let kind = self.parse_statement()?;
                    let inner = Statement {
                        kind,
                        text: String::new(),
                        position: Position {
                            line: start.span.start.line,
                            column: start.span.start.column,
                        },
                    };
                    Ok(StatementKind::Explain(Box::new(ExplainTarget::Statement(
                        Box::new(inner),
                    ))))
                } else {
                    let id = self.ident("a query id or a statement")?;
                    Ok(StatementKind::Explain(Box::new(ExplainTarget::QueryId(id))))
                }
            }
            "PRINT" => {
                self.p.next_token();
                let t = self.p.next_token();
                let topic = match &t.token {
                    Token::Word(w) => w.value.clone(),
                    Token::SingleQuotedString(s) => s.clone(),
                    _ => return self.p.expected("a topic name", t),
                };
                let mut from_beginning = false;
                let mut limit = None;
                loop {
                    if self.eat("FROM") {
                        self.expect("BEGINNING")?;
                        from_beginning = true;
                    } else if self.eat("LIMIT") {
                        limit = Some(self.p.parse_literal_uint()?);
                    } else if self.eat("INTERVAL") || self.eat("SAMPLE") {
                        self.p.parse_literal_uint()?;
                    } else {
                        break;
                    }
                }
                Ok(StatementKind::Print {
                    topic,
                    from_beginning,
                    limit,
                })
            }
            "SET" => {
                self.p.next_token();
                let name = self.p.parse_literal_string()?;
                self.p.expect_token(&Token::Eq)?;
                let value = self.p.parse_literal_string()?;
                Ok(StatementKind::Set { name, value })
            }
            "UNSET" => {
                self.p.next_token();
                Ok(StatementKind::Unset(self.p.parse_literal_string()?))
            }
            _ => self.p.expected(
                "CREATE, INSERT, SELECT, TERMINATE, DROP, SHOW, DESCRIBE, EXPLAIN, PRINT or SET",
                self.p.peek_token(),
            ),
        }
    }

    fn parse_kind(&mut self) -> PResult<SourceKind> {
        if self.eat("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.eat("TABLE") {
            Ok(SourceKind::Table)
        } else {
            self.p.expected("STREAM or TABLE", self.p.peek_token())
        }
    }

    fn parse_create(&mut self) -> PResult<StatementKind> {
        self.expect("CREATE")?;
        let or_replace = if self.eat("OR") {
            self.expect("REPLACE")?;
            true
        } else {
            false
        };
        let is_source = self.eat("SOURCE");
        self.eat("TEMPORARY");
        if self.eat("VIEW") {
            let if_not_exists = if self.eat("IF") {
                self.expect("NOT")?;
                self.expect("EXISTS")?;
                true
            } else {
                false
            };
            let name = self.ident("a view name")?;
            self.expect("AS")?;
            let query = self.parse_query()?;
            return Ok(StatementKind::CreateView(CreateView {
                name,
                query,
                or_replace,
                if_not_exists,
            }));
        }
        let kind = self.parse_kind()?;
        let if_not_exists = if self.eat("IF") {
            self.expect("NOT")?;
            self.expect("EXISTS")?;
            true
        } else {
            false
        };
        let name = self.ident("a stream or table name")?;
        let mut columns = Vec::new();
        let mut watermark = None;
        let has_columns = self.p.consume_token(&Token::LParen);
        if has_columns {
            loop {
                if self.eat("WATERMARK") {
                    watermark = Some(self.parse_watermark()?);
                } else if self.peek_word().as_deref() == Some("PRIMARY")
                    && self.peek_nth_word(1).as_deref() == Some("KEY")
                {
                    // Flink: PRIMARY KEY (a, b) NOT ENFORCED
                    self.p.next_token();
                    self.p.next_token();
                    self.p.expect_token(&Token::LParen)?;
                    let mut keys = Vec::new();
                    loop {
                        keys.push(self.ident("a column name")?);
                        if !self.p.consume_token(&Token::Comma) {
                            break;
                        }
                    }
                    self.p.expect_token(&Token::RParen)?;
                    if self.eat("NOT") {
                        self.expect("ENFORCED")?;
                    }
                    for c in columns.iter_mut() {
                        let c: &mut ColumnDef = c;
                        if keys.contains(&c.name) {
                            c.key = true;
                        }
                    }
                } else {
                    columns.push(self.parse_column_def()?);
                }
                if self.p.consume_token(&Token::RParen) {
                    break;
                }
                self.p.expect_token(&Token::Comma)?;
            }
        }
        let properties = if self.eat("WITH") {
            self.parse_properties()?
        } else {
            Properties::new()
        };
        if self.eat("AS") {
            if has_columns {
                return Err(ParserError::ParserError(
                    "a CREATE … AS SELECT statement cannot declare columns: they come from the query"
                        .into(),
                ));
            }
            let query = self.parse_query()?;
            return Ok(StatementKind::CreateAsSelect(CreateAsSelect {
                kind,
                name,
                properties,
                or_replace,
                if_not_exists,
                query,
            }));
        }
        Ok(StatementKind::CreateSource(CreateSource {
            kind,
            name,
            columns,
            properties,
            or_replace,
            if_not_exists,
            is_source,
            watermark,
        }))
    }

    fn parse_watermark(&mut self) -> PResult<WatermarkDef> {
        self.expect("FOR")?;
        let column = self.ident("a column name")?;
        self.expect("AS")?;
        let e = self.p.parse_expr()?;
        let delay = match &e {
            Expr::Identifier(_) => Duration::ZERO,
            Expr::BinaryOp { right, op, .. }
                if *op == datafusion::sql::sqlparser::ast::BinaryOperator::Minus =>
            {
                interval_duration(right).ok_or_else(|| {
                    ParserError::ParserError(format!(
                        "WATERMARK FOR {column} AS {column} - INTERVAL 'n' UNIT expected, found {e}"
                    ))
                })?
            }
            _ => {
                return Err(ParserError::ParserError(format!(
                    "WATERMARK FOR {column} AS {column} - INTERVAL 'n' UNIT expected, found {e}"
                )));
            }
        };
        Ok(WatermarkDef { column, delay })
    }

    fn parse_column_def(&mut self) -> PResult<ColumnDef> {
        let name = self.ident("a column name")?;
        if self.eat("AS") {
            // Flink computed column; its type comes from the expression.
            let expr = self.p.parse_expr()?;
            return Ok(ColumnDef {
                name,
                data_type: crate::types::SqlType::String,
                key: false,
                header: None,
                computed: Some(expr),
            });
        }
        let data_type = TypeParser::new(self.p).parse()?;
        let mut key = false;
        let mut header = None;
        loop {
            if self.eat("KEY") {
                key = true;
            } else if self.peek_word().as_deref() == Some("PRIMARY") {
                self.p.next_token();
                self.expect("KEY")?;
                key = true;
            } else if self.eat("HEADERS") {
                header = Some(HeaderSpec::All);
            } else if self.eat("HEADER") {
                self.p.expect_token(&Token::LParen)?;
                let k = self.p.parse_literal_string()?;
                self.p.expect_token(&Token::RParen)?;
                header = Some(HeaderSpec::Key(k));
            } else if self.eat("NOT") {
                self.expect("NULL")?;
            } else {
                break;
            }
        }
        Ok(ColumnDef {
            name,
            data_type,
            key,
            header,
            computed: None,
        })
    }

    fn parse_properties(&mut self) -> PResult<Properties> {
        self.p.expect_token(&Token::LParen)?;
        let mut props = Properties::new();
        if self.p.consume_token(&Token::RParen) {
            return Ok(props);
        }
        loop {
            let t = self.p.next_token();
            let key = match &t.token {
                Token::Word(w) => w.value.to_uppercase(),
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s.to_uppercase(),
                _ => return self.p.expected("a property name", t),
            };
            self.p.expect_token(&Token::Eq)?;
            let t = self.p.next_token();
            let value = match &t.token {
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
                    PropertyValue::String(s.clone())
                }
                Token::Number(n, _) => PropertyValue::Number(n.clone()),
                Token::Minus => match self.p.next_token().token {
                    Token::Number(n, _) => PropertyValue::Number(format!("-{n}")),
                    _ => return self.p.expected("a number", t),
                },
                Token::Word(w) if w.keyword == Keyword::TRUE => PropertyValue::Boolean(true),
                Token::Word(w) if w.keyword == Keyword::FALSE => PropertyValue::Boolean(false),
                Token::Word(w) => PropertyValue::String(w.value.clone()),
                _ => return self.p.expected("a property value", t),
            };
            props.insert(key, value);
            if self.p.consume_token(&Token::RParen) {
                break;
            }
            self.p.expect_token(&Token::Comma)?;
        }
        Ok(props)
    }

    fn parse_insert(&mut self) -> PResult<StatementKind> {
        self.expect("INSERT")?;
        self.expect("INTO")?;
        let target = self.ident("a stream or table name")?;
        if self.eat("WITH") {
            // INSERT INTO x WITH (QUERY_ID='…') SELECT …: properties are accepted and ignored.
            self.parse_properties()?;
        }
        let mut columns = None;
        if self.p.consume_token(&Token::LParen) {
            let mut cols = Vec::new();
            loop {
                cols.push(self.ident("a column name")?);
                if self.p.consume_token(&Token::RParen) {
                    break;
                }
                self.p.expect_token(&Token::Comma)?;
            }
            columns = Some(cols);
        }
        if self.eat("VALUES") {
            self.p.expect_token(&Token::LParen)?;
            let mut values = Vec::new();
            if !self.p.consume_token(&Token::RParen) {
                loop {
                    values.push(self.p.parse_expr()?);
                    if self.p.consume_token(&Token::RParen) {
                        break;
                    }
                    self.p.expect_token(&Token::Comma)?;
                }
            }
            return Ok(StatementKind::InsertValues {
                target,
                columns,
                values,
            });
        }
        if columns.is_some() {
            return self.p.expected("VALUES", self.p.peek_token());
        }
        if self.peek_word().as_deref() != Some("SELECT") {
            return self.p.expected("SELECT or VALUES", self.p.peek_token());
        }
        Ok(StatementKind::InsertInto {
            target,
            query: self.parse_query()?,
        })
    }

    fn is_clause_word(&self) -> bool {
        match &self.p.peek_token_ref().token {
            Token::Word(w) if w.quote_style.is_none() => CLAUSE_WORDS.contains(&w.value.as_str()),
            _ => false,
        }
    }

    fn parse_alias(&mut self) -> PResult<Option<String>> {
        if self.eat("AS") {
            return Ok(Some(self.ident("an alias")?));
        }
        match &self.p.peek_token_ref().token {
            Token::Word(_) if !self.is_clause_word() => Ok(Some(self.ident("an alias")?)),
            _ => Ok(None),
        }
    }

    fn parse_query(&mut self) -> PResult<Query> {
        self.expect("SELECT")?;
        let mut projection = Vec::new();
        loop {
            projection.push(self.parse_select_item()?);
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        self.expect("FROM")?;
        let from = self.parse_relation()?;
        let mut joins = Vec::new();
        loop {
            let kind = if self.eat("JOIN") {
                JoinKind::Inner
            } else if self.eat("INNER") {
                self.expect("JOIN")?;
                JoinKind::Inner
            } else if self.eat("LEFT") {
                self.eat("OUTER");
                self.expect("JOIN")?;
                JoinKind::Left
            } else if self.eat("RIGHT") {
                self.eat("OUTER");
                self.expect("JOIN")?;
                JoinKind::Right
            } else if self.eat("FULL") {
                self.eat("OUTER");
                self.expect("JOIN")?;
                JoinKind::Full
            } else {
                break;
            };
            let relation = self.parse_relation()?;
            let within = if self.eat("WITHIN") {
                Some(self.parse_within()?)
            } else {
                None
            };
            self.expect("ON")?;
            let on = self.p.parse_expr()?;
            joins.push(Join {
                kind,
                relation,
                within,
                on,
            });
        }
        let window = if self.eat("WINDOW") {
            Some(self.parse_window()?)
        } else {
            None
        };
        let selection = if self.eat("WHERE") {
            Some(self.p.parse_expr()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if self.eat("GROUP") {
            self.expect("BY")?;
            group_by = self.parse_expr_list()?;
        }
        let mut partition_by = Vec::new();
        if self.eat("PARTITION") {
            self.expect("BY")?;
            partition_by = self.parse_expr_list()?;
        }
        let having = if self.eat("HAVING") {
            Some(self.p.parse_expr()?)
        } else {
            None
        };
        let emit = if self.eat("EMIT") {
            if self.eat("CHANGES") {
                Some(Emit::Changes)
            } else if self.eat("FINAL") {
                Some(Emit::Final)
            } else {
                return self.p.expected("CHANGES or FINAL", self.p.peek_token());
            }
        } else {
            None
        };
        let limit = if self.eat("LIMIT") {
            Some(self.p.parse_literal_uint()?)
        } else {
            None
        };
        Ok(Query {
            projection,
            from,
            joins,
            window,
            selection,
            group_by,
            partition_by,
            having,
            emit,
            limit,
        })
    }

    /// A comma-separated expression list; a parenthesized list `(a, b)` is flattened.
    fn parse_expr_list(&mut self) -> PResult<Vec<Expr>> {
        let mut out = Vec::new();
        loop {
            match self.p.parse_expr()? {
                Expr::Tuple(items) => out.extend(items),
                Expr::Nested(inner) => out.push(*inner),
                e => out.push(e),
            }
            if !self.p.consume_token(&Token::Comma) {
                break;
            }
        }
        Ok(out)
    }

    fn parse_select_item(&mut self) -> PResult<SelectItem> {
        if self.p.consume_token(&Token::Mul) {
            return Ok(SelectItem::Wildcard);
        }
        if matches!(self.p.peek_token_ref().token, Token::Word(_))
            && self.p.peek_nth_token_ref(1).token == Token::Period
            && self.p.peek_nth_token_ref(2).token == Token::Mul
        {
            let q = self.ident("a source name")?;
            self.p.next_token();
            self.p.next_token();
            return Ok(SelectItem::QualifiedWildcard(q));
        }
        let expr = self.p.parse_expr()?;
        let alias = self.parse_alias()?;
        Ok(SelectItem::Expr { expr, alias })
    }

    fn parse_relation(&mut self) -> PResult<Relation> {
        if self.p.peek_token_ref().token == Token::LParen {
            let start = self.p.next_token().span.start;
            let query = self.parse_query()?;
            self.p.expect_token(&Token::RParen)?;
            let alias = self.parse_alias()?;
            return Ok(Relation {
                name: alias
                    .clone()
                    .unwrap_or_else(|| format!("SUBQUERY_{}_{}", start.line, start.column)),
                alias,
                tvf: None,
                match_recognize: None,
                subquery: Some(Box::new(query)),
            });
        }
        if self.peek_word().as_deref() == Some("TABLE")
            && self.p.peek_nth_token_ref(1).token == Token::LParen
        {
            self.p.next_token();
            self.p.next_token();
            let (name, tvf) = self.parse_window_tvf()?;
            self.p.expect_token(&Token::RParen)?;
            let alias = self.parse_alias()?;
            return Ok(Relation {
                name,
                alias,
                tvf: Some(tvf),
                match_recognize: None,
                subquery: None,
            });
        }
        if let Token::Word(w) = &self.p.peek_token_ref().token
            && w.quote_style.is_none()
            && RESERVED.contains(&w.value.as_str())
        {
            return self
                .p
                .expected("a stream or table name", self.p.peek_token());
        }
        let name = self.ident("a stream or table name")?;
        let match_recognize = if self.eat("MATCH_RECOGNIZE") {
            Some(Box::new(self.parse_match_recognize()?))
        } else {
            None
        };
        let alias = self.parse_alias()?;
        Ok(Relation {
            name,
            alias,
            tvf: None,
            match_recognize,
            subquery: None,
        })
    }

    /// `TUMBLE|HOP|CUMULATE|SESSION(TABLE t [PARTITION BY k, …], DESCRIPTOR(ts), INTERVAL …)`,
    /// after `TABLE(`.
    fn parse_window_tvf(&mut self) -> PResult<(String, WindowTvf)> {
        let func = self.ident("TUMBLE, HOP, CUMULATE or SESSION")?;
        if !matches!(func.as_str(), "TUMBLE" | "HOP" | "CUMULATE" | "SESSION") {
            self.p.prev_token();
            return self
                .p
                .expected("TUMBLE, HOP, CUMULATE or SESSION", self.p.peek_token());
        }
        self.p.expect_token(&Token::LParen)?;
        self.expect("TABLE")?;
        let name = self.ident("a stream or table name")?;
        let mut partition_by = Vec::new();
        if func == "SESSION" && self.eat("PARTITION") {
            self.expect("BY")?;
            loop {
                partition_by.push(self.ident("a column name")?);
                if !(self.p.peek_token_ref().token == Token::Comma
                    && self.peek_nth_word(1).as_deref() != Some("DESCRIPTOR"))
                {
                    break;
                }
                self.p.next_token();
            }
        }
        self.p.expect_token(&Token::Comma)?;
        self.expect("DESCRIPTOR")?;
        self.p.expect_token(&Token::LParen)?;
        let time_column = self.ident("the time attribute column")?;
        self.p.expect_token(&Token::RParen)?;
        let mut intervals = Vec::new();
        while self.p.consume_token(&Token::Comma) {
            let t = self.p.peek_token();
            let e = self.p.parse_expr()?;
            match interval_duration(&e) {
                Some(d) if !d.is_zero() => intervals.push(d),
                _ => {
                    return self
                        .p
                        .expected("a positive INTERVAL such as INTERVAL '10' MINUTES", t);
                }
            }
        }
        self.p.expect_token(&Token::RParen)?;
        let wanted = match func.as_str() {
            "HOP" | "CUMULATE" => 2,
            _ => 1,
        };
        if intervals.len() != wanted {
            return Err(ParserError::ParserError(format!(
                "{func} takes {wanted} interval argument(s) after DESCRIPTOR(…), found {}{}",
                intervals.len(),
                self.p.peek_token().span.start
            )));
        }
        let kind = match func.as_str() {
            "TUMBLE" => WindowKind::Tumbling { size: intervals[0] },
            "HOP" => {
                let (advance, size) = (intervals[0], intervals[1]);
                if advance > size {
                    return Err(ParserError::ParserError(format!(
                        "HOP slide ({} ms) must be at most the window size ({} ms)",
                        advance.as_millis(),
                        size.as_millis()
                    )));
                }
                WindowKind::Hopping { size, advance }
            }
            "CUMULATE" => {
                let (step, size) = (intervals[0], intervals[1]);
                if step > size || size.as_millis() % step.as_millis() != 0 {
                    return Err(ParserError::ParserError(format!(
                        "CUMULATE size ({} ms) must be a multiple of its step ({} ms)",
                        size.as_millis(),
                        step.as_millis()
                    )));
                }
                WindowKind::Cumulate { step, size }
            }
            _ => WindowKind::Session { gap: intervals[0] },
        };
        Ok((
            name,
            WindowTvf {
                kind,
                time_column,
                partition_by,
            },
        ))
    }

    /// The body of `MATCH_RECOGNIZE ( … )`.
    fn parse_match_recognize(&mut self) -> PResult<MatchRecognize> {
        self.p.expect_token(&Token::LParen)?;
        let mut partition_by = Vec::new();
        if self.eat("PARTITION") {
            self.expect("BY")?;
            partition_by = self.parse_expr_list()?;
        }
        let mut order_by = Vec::new();
        if self.eat("ORDER") {
            self.expect("BY")?;
            loop {
                order_by.push(self.p.parse_expr()?);
                if self.eat("DESC") {
                    self.p.prev_token();
                    return self.p.expected(
                        "ASC (MATCH_RECOGNIZE orders rows by ascending time)",
                        self.p.peek_token(),
                    );
                }
                self.eat("ASC");
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
        }
        let mut measures = Vec::new();
        if self.eat("MEASURES") {
            loop {
                let final_semantics = if self.eat("FINAL") {
                    true
                } else {
                    self.eat("RUNNING");
                    false
                };
                let expr = self.p.parse_expr()?;
                self.expect("AS")?;
                let name = self.ident("a measure name")?;
                measures.push(Measure {
                    expr,
                    name,
                    final_semantics,
                });
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
        }
        let mut all_rows = false;
        if self.eat("ONE") {
            self.expect("ROW")?;
            self.expect("PER")?;
            self.expect("MATCH")?;
        } else if self.eat("ALL") {
            self.expect("ROWS")?;
            self.expect("PER")?;
            self.expect("MATCH")?;
            all_rows = true;
        }
        let mut after_match = AfterMatch::PastLastRow;
        if self.eat("AFTER") {
            self.expect("MATCH")?;
            self.expect("SKIP")?;
            after_match = if self.eat("PAST") {
                self.expect("LAST")?;
                self.expect("ROW")?;
                AfterMatch::PastLastRow
            } else {
                self.expect("TO")?;
                if self.eat("NEXT") {
                    self.expect("ROW")?;
                    AfterMatch::ToNextRow
                } else if self.eat("FIRST") {
                    AfterMatch::ToFirst(self.ident("a pattern variable")?)
                } else if self.eat("LAST") {
                    AfterMatch::ToLast(self.ident("a pattern variable")?)
                } else {
                    AfterMatch::ToLast(
                        self.ident("NEXT ROW, FIRST v, LAST v or a pattern variable")?,
                    )
                }
            };
        }
        self.expect("PATTERN")?;
        self.p.expect_token(&Token::LParen)?;
        let pattern = self.parse_pattern_alt()?;
        self.p.expect_token(&Token::RParen)?;
        let within = if self.eat("WITHIN") {
            let t = self.p.peek_token();
            let e = self.p.parse_expr()?;
            match interval_duration(&e) {
                Some(d) => Some(d),
                None => return self.p.expected("INTERVAL 'n' UNIT", t),
            }
        } else {
            None
        };
        let mut define = Vec::new();
        if self.eat("DEFINE") {
            loop {
                let var = self.ident("a pattern variable")?;
                self.expect("AS")?;
                define.push((var, self.p.parse_expr()?));
                if !self.p.consume_token(&Token::Comma) {
                    break;
                }
            }
        }
        self.p.expect_token(&Token::RParen)?;
        Ok(MatchRecognize {
            partition_by,
            order_by,
            measures,
            all_rows,
            after_match,
            pattern,
            within,
            define,
        })
    }

    /// `p1 | p2 | …`
    fn parse_pattern_alt(&mut self) -> PResult<Pattern> {
        let mut alts = vec![self.parse_pattern_concat()?];
        while self.p.consume_token(&Token::Pipe) {
            alts.push(self.parse_pattern_concat()?);
        }
        Ok(if alts.len() == 1 {
            alts.remove(0)
        } else {
            Pattern::Alt(alts)
        })
    }

    /// A sequence of quantified terms.
    fn parse_pattern_concat(&mut self) -> PResult<Pattern> {
        let mut items = Vec::new();
        loop {
            match &self.p.peek_token_ref().token {
                Token::Word(w)
                    if w.quote_style.is_none()
                        && PATTERN_STOP_WORDS.contains(&w.value.as_str()) =>
                {
                    break;
                }
                Token::Word(_) | Token::LParen => items.push(self.parse_pattern_term()?),
                _ => break,
            }
        }
        match items.len() {
            0 => self
                .p
                .expected("a pattern variable or (", self.p.peek_token()),
            1 => Ok(items.remove(0)),
            _ => Ok(Pattern::Concat(items)),
        }
    }

    /// Whether the next token is a `?` (reluctant marker or optional quantifier).
    fn eat_question(&mut self) -> bool {
        let is_q = match &self.p.peek_token_ref().token {
            Token::Placeholder(s) => s == "?",
            Token::Question => true,
            _ => false,
        };
        if is_q {
            self.p.next_token();
        }
        is_q
    }

    /// A variable or group followed by quantifiers.
    fn parse_pattern_term(&mut self) -> PResult<Pattern> {
        let mut p = if self.p.consume_token(&Token::LParen) {
            let inner = self.parse_pattern_alt()?;
            self.p.expect_token(&Token::RParen)?;
            inner
        } else {
            Pattern::Var(self.ident("a pattern variable")?)
        };
        loop {
            let (min, max) = if self.p.consume_token(&Token::Mul) {
                (0, None)
            } else if self.p.consume_token(&Token::Plus) {
                (1, None)
            } else if self.eat_question() {
                (0, Some(1))
            } else if self.p.consume_token(&Token::LBrace) {
                let min = if self.p.peek_token_ref().token == Token::Comma {
                    0
                } else {
                    self.p.parse_literal_uint()? as u32
                };
                let max = if self.p.consume_token(&Token::Comma) {
                    if self.p.peek_token_ref().token == Token::RBrace {
                        None
                    } else {
                        Some(self.p.parse_literal_uint()? as u32)
                    }
                } else {
                    Some(min)
                };
                self.p.expect_token(&Token::RBrace)?;
                if max.is_some_and(|m| m < min || m == 0) {
                    return Err(ParserError::ParserError(format!(
                        "quantifier {{{min},{}}} must allow at least one row and have min <= max{}",
                        max.unwrap_or_default(),
                        self.p.peek_token().span.start
                    )));
                }
                (min, max)
            } else {
                break;
            };
            let greedy = !self.eat_question();
            p = Pattern::Repeat {
                inner: Box::new(p),
                min,
                max,
                greedy,
            };
        }
        Ok(p)
    }

    fn parse_duration(&mut self) -> PResult<Duration> {
        let t = self.p.next_token();
        let n: f64 = match &t.token {
            Token::Number(n, _) => n
                .parse()
                .map_err(|_| ParserError::ParserError(format!("bad number {n}{}", t.span.start)))?,
            _ => return self.p.expected("a duration such as 30 SECONDS", t),
        };
        let u = self.p.next_token();
        let unit = match &u.token {
            Token::Word(w) => w.value.to_uppercase(),
            _ => {
                return self.p.expected(
                    "a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS)",
                    u,
                );
            }
        };
        let ms = match unit.trim_end_matches('S') {
            "MILLISECOND" => 1.0,
            "SECOND" => 1000.0,
            "MINUTE" => 60_000.0,
            "HOUR" => 3_600_000.0,
            "DAY" => 86_400_000.0,
            "WEEK" => 7.0 * 86_400_000.0,
            _ => {
                return self.p.expected(
                    "a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS, DAYS)",
                    u,
                );
            }
        };
        Ok(Duration::from_millis((n * ms) as u64))
    }

    fn parse_grace(&mut self) -> PResult<Option<Duration>> {
        if self.eat("GRACE") {
            self.expect("PERIOD")?;
            Ok(Some(self.parse_duration()?))
        } else {
            Ok(None)
        }
    }

    fn parse_within(&mut self) -> PResult<JoinWindow> {
        let (before, after) = if self.p.consume_token(&Token::LParen) {
            let b = self.parse_duration()?;
            self.p.expect_token(&Token::Comma)?;
            let a = self.parse_duration()?;
            self.p.expect_token(&Token::RParen)?;
            (b, a)
        } else {
            let d = self.parse_duration()?;
            (d, d)
        };
        let grace = self.parse_grace()?;
        Ok(JoinWindow {
            before,
            after,
            grace,
        })
    }

    fn parse_window(&mut self) -> PResult<WindowSpec> {
        let kind_word = self.ident("TUMBLING, HOPPING or SESSION")?;
        self.p.expect_token(&Token::LParen)?;
        let kind = match kind_word.as_str() {
            "TUMBLING" => {
                self.expect("SIZE")?;
                WindowKind::Tumbling {
                    size: self.parse_duration()?,
                }
            }
            "HOPPING" => {
                self.expect("SIZE")?;
                let size = self.parse_duration()?;
                self.p.expect_token(&Token::Comma)?;
                self.expect("ADVANCE")?;
                self.expect("BY")?;
                let advance = self.parse_duration()?;
                WindowKind::Hopping { size, advance }
            }
            "SESSION" => WindowKind::Session {
                gap: self.parse_duration()?,
            },
            _ => {
                self.p.prev_token();
                self.p.prev_token();
                return self
                    .p
                    .expected("TUMBLING, HOPPING or SESSION", self.p.peek_token());
            }
        };
        let mut grace = None;
        let mut retention = None;
        while self.p.consume_token(&Token::Comma) {
            if self.eat("RETENTION") {
                retention = Some(self.parse_duration()?);
            } else if let Some(g) = self.parse_grace()? {
                grace = Some(g);
            } else {
                return self
                    .p
                    .expected("RETENTION or GRACE PERIOD", self.p.peek_token());
            }
        }
        self.p.expect_token(&Token::RParen)?;
        if let WindowKind::Hopping { size, advance } = &kind
            && (advance.is_zero() || advance > size)
        {
            return Err(ParserError::ParserError(format!(
                "HOPPING window ADVANCE BY ({} ms) must be positive and at most SIZE ({} ms)",
                advance.as_millis(),
                size.as_millis()
            )));
        }
        Ok(WindowSpec {
            kind,
            grace,
            retention,
        })
    }
}

/// The length of an `INTERVAL 'n' UNIT` expression.
pub fn interval_duration(e: &Expr) -> Option<Duration> {
    use datafusion::sql::sqlparser::ast::{DateTimeField, Value};
    let Expr::Interval(iv) = e else { return None };
    let text = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            _ => return None,
        },
        _ => return None,
    };
    let mut parts = text.split_whitespace();
    let n: f64 = parts.next()?.parse().ok()?;
    let unit_from_text = parts.next().map(|u| u.to_uppercase());
    let ms = match (&iv.leading_field, unit_from_text.as_deref()) {
        (Some(DateTimeField::Millisecond | DateTimeField::Milliseconds), _) => 1.0,
        (Some(DateTimeField::Second | DateTimeField::Seconds), _) => 1000.0,
        (Some(DateTimeField::Minute | DateTimeField::Minutes), _) => 60_000.0,
        (Some(DateTimeField::Hour | DateTimeField::Hours), _) => 3_600_000.0,
        (Some(DateTimeField::Day | DateTimeField::Days), _) => 86_400_000.0,
        (None, Some(u)) => match u.trim_end_matches('S') {
            "MILLISECOND" => 1.0,
            "SECOND" => 1000.0,
            "MINUTE" => 60_000.0,
            "HOUR" => 3_600_000.0,
            "DAY" => 86_400_000.0,
            _ => return None,
        },
        _ => return None,
    };
    Some(Duration::from_millis((n * ms) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_create_stream_with_keys_and_properties() {
        let s = parse_statement(
            "CREATE STREAM test (ID BIGINT KEY, name varchar, `Mixed` STRUCT<a INT>) \
             WITH (kafka_topic='t', value_format='JSON', partitions=4);",
        )
        .unwrap();
        let StatementKind::CreateSource(c) = s.kind else {
            panic!("not a create")
        };
        assert_eq!(c.name, "TEST");
        assert_eq!(c.columns.len(), 3);
        assert!(c.columns[0].key);
        assert_eq!(c.columns[1].name, "NAME");
        assert_eq!(c.columns[2].name, "Mixed");
        assert_eq!(
            c.properties["KAFKA_TOPIC"],
            PropertyValue::String("t".into())
        );
        assert_eq!(
            c.properties["PARTITIONS"],
            PropertyValue::Number("4".into())
        );
    }

    #[test]
    fn parses_windowed_aggregate_query() {
        let s = parse_statement(
            "CREATE TABLE s2 AS SELECT id, max(value) FROM test \
             WINDOW HOPPING (SIZE 30 SECONDS, ADVANCE BY 10 SECONDS, GRACE PERIOD 1 MINUTE) \
             WHERE value > 0 GROUP BY id HAVING count(*) > 1 EMIT FINAL;",
        )
        .unwrap();
        let StatementKind::CreateAsSelect(c) = s.kind else {
            panic!("not CTAS")
        };
        let q = c.query;
        assert_eq!(
            q.window.unwrap(),
            WindowSpec {
                kind: WindowKind::Hopping {
                    size: Duration::from_secs(30),
                    advance: Duration::from_secs(10)
                },
                grace: Some(Duration::from_secs(60)),
                retention: None
            }
        );
        assert_eq!(q.group_by.len(), 1);
        assert_eq!(q.emit, Some(Emit::Final));
        assert!(q.having.is_some());
    }

    #[test]
    fn arrow_binds_tighter_than_arithmetic() {
        let e = parse_expr("itemid->itemid * 10").unwrap();
        assert_eq!(e.to_string(), "ITEMID -> ITEMID * 10");
        let Expr::BinaryOp { left, .. } = e else {
            panic!("expected a product")
        };
        assert!(matches!(*left, Expr::BinaryOp { .. }));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err =
            parse_script("CREATE STREAM s (a INT) WITH (kafka_topic='t');\nSELECT a FROM WHERE x;")
                .unwrap_err();
        let SqlError::Syntax { position, message } = err else {
            panic!("not a syntax error")
        };
        assert_eq!(
            position,
            Position {
                line: 2,
                column: 15
            }
        );
        assert!(message.contains("Expected"), "{message}");
    }

    #[test]
    fn statement_text_is_kept() {
        let s = parse_script("SHOW STREAMS;\n  DESCRIBE foo ;").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].text, "DESCRIBE foo");
    }
}
