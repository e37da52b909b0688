//! SQL types (ksqlDB's type system) and their Arrow representation.
//!
//! riffle uses Arrow types at run time; [`SqlType`] exists so DDL, casts and `DESCRIBE` speak the
//! user's language (`STRING`, `ARRAY<INT>`, `STRUCT<A INT>`), and so the mapping is one place.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Result, SqlError};

/// A ksqlDB SQL type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `BOOLEAN`
    Boolean,
    /// `INT` / `INTEGER` (32-bit)
    Int,
    /// `BIGINT` (64-bit)
    BigInt,
    /// `DOUBLE` (64-bit float)
    Double,
    /// `DECIMAL(precision, scale)`
    Decimal(u8, i8),
    /// `STRING` / `VARCHAR`
    String,
    /// `BYTES`
    Bytes,
    /// `TIMESTAMP` (milliseconds since the epoch, no zone)
    Timestamp,
    /// `DATE` (days since the epoch)
    Date,
    /// `TIME` (milliseconds of the day)
    Time,
    /// `ARRAY<T>`
    Array(Box<SqlType>),
    /// `MAP<K, V>`
    Map(Box<SqlType>, Box<SqlType>),
    /// `STRUCT<name T, …>`
    Struct(Vec<(String, SqlType)>),
}

impl SqlType {
    /// The Arrow type riffle uses for values of this SQL type.
    pub fn to_arrow(&self) -> DataType {
        match self {
            SqlType::Boolean => DataType::Boolean,
            SqlType::Int => DataType::Int32,
            SqlType::BigInt => DataType::Int64,
            SqlType::Double => DataType::Float64,
            SqlType::Decimal(p, s) => DataType::Decimal128(*p, *s),
            SqlType::String => DataType::Utf8,
            SqlType::Bytes => DataType::Binary,
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time32(TimeUnit::Millisecond),
            SqlType::Array(inner) => {
                DataType::List(Arc::new(Field::new("item", inner.to_arrow(), true)))
            }
            SqlType::Map(k, v) => map_type(k.to_arrow(), v.to_arrow()),
            SqlType::Struct(fields) => DataType::Struct(Fields::from(
                fields
                    .iter()
                    .map(|(n, t)| Field::new(n, t.to_arrow(), true))
                    .collect::<Vec<_>>(),
            )),
        }
    }

    /// The SQL type of an Arrow type, when it has one.
    pub fn from_arrow(dt: &DataType) -> Result<SqlType> {
        Ok(match dt {
            DataType::Boolean => SqlType::Boolean,
            DataType::Int8 | DataType::Int16 | DataType::Int32 => SqlType::Int,
            DataType::UInt8 | DataType::UInt16 => SqlType::Int,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => SqlType::BigInt,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => SqlType::Double,
            DataType::Decimal128(p, s) => SqlType::Decimal(*p, *s),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::String,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => SqlType::Bytes,
            DataType::FixedSizeBinary(_) => SqlType::Bytes,
            DataType::Timestamp(_, _) => SqlType::Timestamp,
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Time32(_) | DataType::Time64(_) => SqlType::Time,
            DataType::Null => SqlType::String,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                SqlType::Array(Box::new(SqlType::from_arrow(f.data_type())?))
            }
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => SqlType::Map(
                    Box::new(SqlType::from_arrow(kv[0].data_type())?),
                    Box::new(SqlType::from_arrow(kv[1].data_type())?),
                ),
                other => {
                    return Err(SqlError::Unsupported(format!(
                        "map entries of type {other}"
                    )));
                }
            },
            DataType::Struct(fields) => SqlType::Struct(
                fields
                    .iter()
                    .map(|f| Ok((f.name().clone(), SqlType::from_arrow(f.data_type())?)))
                    .collect::<Result<Vec<_>>>()?,
            ),
            other => return Err(SqlError::Unsupported(format!("values of type {other}"))),
        })
    }

    /// Parses a type from text, e.g. `ARRAY<STRUCT<A INT>>`.
    pub fn parse(text: &str) -> Result<SqlType> {
        let dialect = crate::dialect::RiffleDialect;
        let mut parser =
            Parser::new(&dialect).with_tokens_with_locations(crate::parser::tokenize(text)?);
        let ty = TypeParser::new(&mut parser)
            .parse()
            .map_err(crate::parser::syntax_error)?;
        Ok(ty)
    }
}

/// Builds the Arrow map type riffle uses: non-sorted entries `{key, value}`, nullable values.
pub fn map_type(key: DataType, value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key, false),
                Field::new("value", value, true),
            ])),
            false,
        )),
        false,
    )
}

/// Renders an Arrow type with ksqlDB's type names, for `DESCRIBE` and error messages.
pub fn display_arrow(dt: &DataType) -> String {
    match SqlType::from_arrow(dt) {
        Ok(t) => t.to_string(),
        Err(_) => dt.to_string(),
    }
}

fn needs_quotes(name: &str) -> bool {
    name.is_empty()
        || name
            .chars()
            .any(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        || name.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Quotes an identifier with backticks when reading it back unquoted would change it.
pub fn quote_ident(name: &str) -> String {
    if needs_quotes(name) {
        format!("`{}`", name.replace('`', "``"))
    } else {
        name.to_string()
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => write!(f, "BOOLEAN"),
            SqlType::Int => write!(f, "INTEGER"),
            SqlType::BigInt => write!(f, "BIGINT"),
            SqlType::Double => write!(f, "DOUBLE"),
            SqlType::Decimal(p, s) => write!(f, "DECIMAL({p}, {s})"),
            SqlType::String => write!(f, "STRING"),
            SqlType::Bytes => write!(f, "BYTES"),
            SqlType::Timestamp => write!(f, "TIMESTAMP"),
            SqlType::Date => write!(f, "DATE"),
            SqlType::Time => write!(f, "TIME"),
            SqlType::Array(t) => write!(f, "ARRAY<{t}>"),
            SqlType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            SqlType::Struct(fields) => {
                write!(f, "STRUCT<")?;
                for (i, (n, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{} {t}", quote_ident(n))?;
                }
                write!(f, ">")
            }
        }
    }
}

/// Parses ksqlDB type syntax from a sqlparser token stream, splitting `>>` where nested types close.
pub struct TypeParser<'a, 'b> {
    parser: &'b mut Parser<'a>,
    pending_gt: usize,
}

impl<'a, 'b> TypeParser<'a, 'b> {
    /// Wraps a parser positioned at the start of a type.
    pub fn new(parser: &'b mut Parser<'a>) -> Self {
        TypeParser {
            parser,
            pending_gt: 0,
        }
    }

    /// Parses one complete type.
    pub fn parse(mut self) -> Result<SqlType, ParserError> {
        let t = self.parse_type()?;
        if self.pending_gt > 0 {
            return self
                .parser
                .expected("end of type", self.parser.peek_token());
        }
        Ok(t)
    }

    fn expect_lt(&mut self) -> Result<(), ParserError> {
        self.parser.expect_token(&Token::Lt).map(|_| ())
    }

    fn expect_gt(&mut self) -> Result<(), ParserError> {
        if self.pending_gt > 0 {
            self.pending_gt -= 1;
            return Ok(());
        }
        let tok = self.parser.next_token();
        match tok.token {
            Token::Gt => Ok(()),
            Token::ShiftRight => {
                self.pending_gt += 1;
                Ok(())
            }
            _ => self.parser.expected(">", tok),
        }
    }

    fn parse_type(&mut self) -> Result<SqlType, ParserError> {
        let tok = self.parser.next_token();
        let Token::Word(w) = &tok.token else {
            return self.parser.expected("a type name", tok);
        };
        let name = w.value.to_ascii_uppercase();
        Ok(match name.as_str() {
            "BOOLEAN" | "BOOL" => SqlType::Boolean,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" => SqlType::BigInt,
            "DOUBLE" | "FLOAT" | "REAL" => SqlType::Double,
            "STRING" | "VARCHAR" | "TEXT" => {
                // VARCHAR(n) (and ksqlDB's VARCHAR(STRING)) are accepted; lengths are not enforced.
                if self.parser.consume_token(&Token::LParen) {
                    match &self.parser.peek_token_ref().token {
                        Token::Word(w) if w.value.eq_ignore_ascii_case("STRING") => {
                            self.parser.next_token();
                        }
                        _ => {
                            self.parser.parse_literal_uint()?;
                        }
                    }
                    self.parser.expect_token(&Token::RParen)?;
                }
                SqlType::String
            }
            "BYTES" => SqlType::Bytes,
            "TIMESTAMP" => {
                if self.parser.consume_token(&Token::LParen) {
                    self.parser.parse_literal_uint()?;
                    self.parser.expect_token(&Token::RParen)?;
                }
                SqlType::Timestamp
            }
            "DATE" => SqlType::Date,
            "TIME" => SqlType::Time,
            "DECIMAL" | "NUMERIC" => {
                self.parser.expect_token(&Token::LParen)?;
                let p = self.parser.parse_literal_uint()?;
                let s = if self.parser.consume_token(&Token::Comma) {
                    self.parser.parse_literal_uint()?
                } else {
                    0
                };
                self.parser.expect_token(&Token::RParen)?;
                if p == 0 || p > 38 || s > p {
                    return Err(ParserError::ParserError(format!(
                        "DECIMAL precision must be 1..38 and scale at most the precision, got DECIMAL({p}, {s})"
                    )));
                }
                SqlType::Decimal(p as u8, s as i8)
            }
            "ARRAY" => {
                self.expect_lt()?;
                let inner = self.parse_type()?;
                self.expect_gt()?;
                SqlType::Array(Box::new(inner))
            }
            "MAP" => {
                self.expect_lt()?;
                let k = self.parse_type()?;
                self.parser.expect_token(&Token::Comma)?;
                let v = self.parse_type()?;
                self.expect_gt()?;
                SqlType::Map(Box::new(k), Box::new(v))
            }
            "STRUCT" | "ROW" => {
                self.expect_lt()?;
                let mut fields = Vec::new();
                let closes = |p: &Self| {
                    p.pending_gt > 0
                        || matches!(
                            p.parser.peek_token_ref().token,
                            Token::Gt | Token::ShiftRight
                        )
                };
                if !closes(self) {
                    loop {
                        let tok = self.parser.next_token();
                        let fname = match &tok.token {
                            Token::Word(w) => crate::parser::normalize_word(w),
                            _ => return self.parser.expected("a field name", tok),
                        };
                        let ft = self.parse_type()?;
                        fields.push((fname, ft));
                        // A `>>` that closed an inner type also closes this struct.
                        if self.pending_gt > 0 || !self.parser.consume_token(&Token::Comma) {
                            break;
                        }
                    }
                }
                self.expect_gt()?;
                SqlType::Struct(fields)
            }
            _ => {
                return Err(ParserError::ParserError(format!(
                    "unknown type {}{}",
                    w.value,
                    crate::parser::location_suffix(&tok)
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_types_round_trip_through_text() {
        let t = SqlType::parse("ARRAY<MAP<STRING, STRUCT<a INT, `b` ARRAY<BIGINT>>>>").unwrap();
        let nested = SqlType::parse("STRUCT<A STRUCT<B ARRAY<INT>>, C INT>").unwrap();
        assert_eq!(
            nested.to_string(),
            "STRUCT<A STRUCT<B ARRAY<INTEGER>>, C INTEGER>"
        );
        assert_eq!(
            t.to_string(),
            "ARRAY<MAP<STRING, STRUCT<A INTEGER, `b` ARRAY<BIGINT>>>>"
        );
        assert_eq!(SqlType::parse(&t.to_string()).unwrap(), t);
        assert_eq!(SqlType::from_arrow(&t.to_arrow()).unwrap(), t);
    }

    #[test]
    fn decimal_bounds_are_checked() {
        assert!(SqlType::parse("DECIMAL(2, 3)").is_err());
        assert_eq!(
            SqlType::parse("decimal(4,2)").unwrap(),
            SqlType::Decimal(4, 2)
        );
    }
}
