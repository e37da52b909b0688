//! The riffle SQL dialect for sqlparser: ksqlDB lexical rules (backtick identifiers, `->` struct
//! dereference binding tighter than arithmetic) plus ksqlDB expression forms sqlparser does not
//! know: `STRUCT(name := expr, …)`, `MAP(key := value, …)` and `CAST(expr AS <ksql type>)`.

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgOperator,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart,
};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::types::{SqlType, TypeParser};

/// Name used to smuggle a riffle [`SqlType`] through sqlparser's `DataType::Custom` in casts.
pub const RIFFLE_TYPE: &str = "__RIFFLE_TYPE";
/// Internal function name for a `MAP(k := v, …)` constructor; arguments alternate key, value.
pub const MAP_CONSTRUCTOR: &str = "__RIFFLE_MAP";
/// Internal marker for a `struct->*` select item.
pub const STRUCT_STAR: &str = "__RIFFLE_STRUCT_STAR";
/// Internal function name for a `STRUCT(f := v, …)` constructor; arguments are named.
pub const STRUCT_CONSTRUCTOR: &str = "__RIFFLE_STRUCT";

/// sqlparser dialect implementing ksqlDB's lexical and expression rules.
#[derive(Debug, Default, Clone, Copy)]
pub struct RiffleDialect;

impl Dialect for RiffleDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$' || ch == '@'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        false
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        // `a->b` is a field access and binds like `a.b` or `a[1]`, not like a JSON operator.
        match parser.peek_token_ref().token {
            Token::Arrow => Some(Ok(50)),
            // `:=` separates names from values in STRUCT(…) and MAP(…); it is never an operator.
            Token::Assignment => Some(Ok(0)),
            _ => None,
        }
    }

    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        _precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        // `s->*` selects every field of a struct; the planner expands the marker.
        if parser.peek_token_ref().token == Token::Arrow
            && parser.peek_nth_token_ref(1).token == Token::Mul
        {
            parser.next_token();
            parser.next_token();
            return Some(Ok(function(
                STRUCT_STAR,
                vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(expr.clone()))],
            )));
        }
        None
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let tok = parser.peek_token_ref().token.clone();
        let next = parser.peek_nth_token_ref(1).token.clone();
        let Token::Word(w) = tok else { return None };
        if next != Token::LParen || w.quote_style.is_some() {
            return None;
        }
        match w.value.to_ascii_uppercase().as_str() {
            "STRUCT" => Some(parse_struct(parser)),
            "MAP" => Some(parse_map(parser)),
            "CAST" => Some(parse_cast(parser)),
            // Keywords sqlparser gives special syntax to; in ksqlDB they are plain functions.
            "SUBSTRING" | "TRIM" | "CEIL" | "FLOOR" | "POSITION" | "OVERLAY" | "EXTRACT"
            | "LEFT" | "RIGHT" => Some(parse_plain_function(parser)),
            _ => None,
        }
    }
}

fn function(name: &str, args: Vec<FunctionArg>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn parse_plain_function(parser: &mut Parser) -> Result<Expr, ParserError> {
    let name = parser.parse_identifier()?;
    parser.expect_token(&Token::LParen)?;
    let mut args = Vec::new();
    if !parser.consume_token(&Token::RParen) {
        loop {
            args.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(
                parser.parse_expr()?,
            )));
            if parser.consume_token(&Token::RParen) {
                break;
            }
            parser.expect_token(&Token::Comma)?;
        }
    }
    Ok(function(&name.value, args))
}

fn parse_struct(parser: &mut Parser) -> Result<Expr, ParserError> {
    parser.next_token();
    parser.expect_token(&Token::LParen)?;
    let mut args = Vec::new();
    if !parser.consume_token(&Token::RParen) {
        loop {
            let name = parser.parse_identifier()?;
            parser.expect_token(&Token::Assignment)?;
            let value = parser.parse_expr()?;
            args.push(FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(value),
                operator: FunctionArgOperator::Assignment,
            });
            if parser.consume_token(&Token::RParen) {
                break;
            }
            parser.expect_token(&Token::Comma)?;
        }
    }
    Ok(function(STRUCT_CONSTRUCTOR, args))
}

fn parse_map(parser: &mut Parser) -> Result<Expr, ParserError> {
    parser.next_token();
    parser.expect_token(&Token::LParen)?;
    let mut args = Vec::new();
    if !parser.consume_token(&Token::RParen) {
        loop {
            let key = parser.parse_expr()?;
            parser.expect_token(&Token::Assignment)?;
            let value = parser.parse_expr()?;
            args.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(key)));
            args.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(value)));
            if parser.consume_token(&Token::RParen) {
                break;
            }
            parser.expect_token(&Token::Comma)?;
        }
    }
    Ok(function(MAP_CONSTRUCTOR, args))
}

fn parse_cast(parser: &mut Parser) -> Result<Expr, ParserError> {
    parser.next_token();
    parser.expect_token(&Token::LParen)?;
    let expr = parser.parse_expr()?;
    parser.expect_keyword(Keyword::AS)?;
    let ty = TypeParser::new(parser).parse()?;
    parser.expect_token(&Token::RParen)?;
    Ok(Expr::Cast {
        kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
        expr: Box::new(expr),
        data_type: encode_type(&ty),
        array: false,
        format: None,
    })
}

/// Encodes a riffle type into a sqlparser data type so it survives inside the AST.
pub fn encode_type(ty: &SqlType) -> DataType {
    DataType::Custom(
        ObjectName(vec![ObjectNamePart::Identifier(Ident::new(RIFFLE_TYPE))]),
        vec![ty.to_string()],
    )
}
