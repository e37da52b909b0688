//! Flink window table-valued functions (`TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL …))`,
//! `HOP`, `CUMULATE`, `SESSION`) are rewritten into the equivalent ksqlDB windowed aggregation,
//! so both dialects run on the same window operators: the window columns leave `GROUP BY`, the
//! TVF becomes a `WINDOW` clause with no grace period (Flink drops rows behind the watermark) and
//! `EMIT FINAL` (Flink emits each window once, when the watermark passes its end), and
//! `window_start`, `window_end` and `window_time` become `TIMESTAMP`s computed from the window
//! bounds. A session's `window_end` follows Flink (last event + gap), where ksqlDB's `WINDOWEND`
//! is the last event itself.

use std::ops::ControlFlow;
use std::time::Duration;

use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, visit_expressions_mut};

use crate::ast::{Emit, Query, SelectItem, WindowSpec};
use crate::catalog::Catalog;
use crate::error::{Result, SqlError};
use crate::parser::parse_expr;

/// The columns a window TVF adds.
const WINDOW_COLUMNS: &[&str] = &["WINDOW_START", "WINDOW_END", "WINDOW_TIME"];

/// What a window column becomes after the rewrite; `end_offset_ms` is added to ksqlDB's
/// `WINDOWEND` (a session's gap).
fn replacement(name: &str, end_offset_ms: i64) -> String {
    match name {
        "WINDOW_START" => "FROM_UNIXTIME(WINDOWSTART)".to_string(),
        "WINDOW_END" => format!("FROM_UNIXTIME(WINDOWEND + {end_offset_ms})"),
        _ => format!("FROM_UNIXTIME(WINDOWEND + {})", end_offset_ms - 1),
    }
}

/// The window column an expression names (`window_start` or `alias.window_start`), if any.
fn window_column(e: &SqlExpr, alias: &str) -> Option<&'static str> {
    let name = match e {
        SqlExpr::Identifier(id) => id.value.as_str(),
        SqlExpr::CompoundIdentifier(ids) if ids.len() == 2 && ids[0].value == alias => {
            ids[1].value.as_str()
        }
        SqlExpr::Nested(inner) => return window_column(inner, alias),
        _ => return None,
    };
    WINDOW_COLUMNS.iter().find(|n| **n == name).copied()
}

/// Replaces window column references by their computed form.
fn rewrite(e: &mut SqlExpr, alias: &str, end_offset_ms: i64) -> Result<()> {
    let mut failed = None;
    let _ = visit_expressions_mut(e, |node: &mut SqlExpr| {
        if let Some(name) = window_column(node, alias) {
            match parse_expr(&replacement(name, end_offset_ms)) {
                Ok(replacement) => *node = replacement,
                Err(err) => {
                    failed = Some(err);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Rewrites a query whose `FROM` is a window TVF into a windowed aggregation; other queries are
/// returned unchanged.
pub fn desugar(q: &Query, catalog: &Catalog) -> Result<Query> {
    let Some(tvf) = &q.from.tvf else {
        return Ok(q.clone());
    };
    let def = catalog.require(&q.from.name)?;
    let time_attr = def.timestamp.as_deref().unwrap_or("ROWTIME");
    if tvf.time_column != time_attr && tvf.time_column != "ROWTIME" {
        return Err(SqlError::semantic(format!(
            "DESCRIPTOR({}) must name the time attribute of {}, which is {time_attr} (declare \
             another with WATERMARK FOR col AS … or TIMESTAMP='col')",
            tvf.time_column, q.from.name
        )));
    }
    if q.window.is_some() {
        return Err(SqlError::semantic(
            "a window TVF cannot be combined with a WINDOW clause",
        ));
    }
    if !q.joins.is_empty() {
        return Err(SqlError::semantic(
            "window TVFs cannot be joined in the same SELECT; aggregate first, then join the result",
        ));
    }
    let alias = q.from.qualifier().to_string();
    let mut saw = Vec::new();
    let mut group_by = Vec::new();
    for g in &q.group_by {
        match window_column(g, &alias) {
            Some("WINDOW_TIME") => {
                return Err(SqlError::semantic(
                    "GROUP BY window_time is not supported; group by window_start, window_end",
                ));
            }
            Some(name) => saw.push(name),
            None => group_by.push(g.clone()),
        }
    }
    if !(saw.contains(&"WINDOW_START") && saw.contains(&"WINDOW_END")) {
        return Err(SqlError::semantic(format!(
            "a query over TABLE({}(…)) must aggregate by window: GROUP BY window_start, window_end[, …]",
            match tvf.kind {
                crate::ast::WindowKind::Tumbling { .. } => "TUMBLE",
                crate::ast::WindowKind::Hopping { .. } => "HOP",
                crate::ast::WindowKind::Cumulate { .. } => "CUMULATE",
                crate::ast::WindowKind::Session { .. } => "SESSION",
            }
        )));
    }
    for p in &tvf.partition_by {
        let grouped = group_by.iter().any(|g| match g {
            SqlExpr::Identifier(id) => &id.value == p,
            SqlExpr::CompoundIdentifier(ids) => ids.last().is_some_and(|i| &i.value == p),
            _ => false,
        });
        if !grouped {
            return Err(SqlError::semantic(format!(
                "SESSION partition column {p} must appear in GROUP BY"
            )));
        }
    }
    if group_by.is_empty() {
        // One group per window: a constant key (the window operators group by key and window).
        group_by.push(parse_expr("'*'")?);
    }
    let end_offset_ms = match &tvf.kind {
        crate::ast::WindowKind::Session { gap } => gap.as_millis() as i64,
        _ => 0,
    };
    let mut out = q.clone();
    out.from.tvf = None;
    out.group_by = group_by;
    out.window = Some(WindowSpec {
        kind: tvf.kind.clone(),
        grace: Some(Duration::ZERO),
        retention: None,
    });
    out.emit = Some(q.emit.unwrap_or(Emit::Final));
    for item in &mut out.projection {
        if let SelectItem::Expr { expr, alias: a } = item {
            if a.is_none()
                && let Some(name) = window_column(expr, &alias)
            {
                *a = Some(name.to_string());
            }
            rewrite(expr, &alias, end_offset_ms)?;
        }
    }
    if let Some(h) = &mut out.having {
        rewrite(h, &alias, end_offset_ms)?;
    }
    if let Some(w) = &out.selection
        && WINDOW_COLUMNS
            .iter()
            .any(|n| w.to_string().to_uppercase().contains(n))
    {
        return Err(SqlError::semantic(
            "window_start, window_end and window_time can be used after aggregation (select list, \
             HAVING), not in WHERE",
        ));
    }
    Ok(out)
}
