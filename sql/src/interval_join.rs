//! Flink's interval join: `a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '10' MINUTE
//! AND a.ts`. The time conditions are folded into the bounds of ksqlDB's `WITHIN (before,
//! after)`, so both forms run on the same stream-stream join operator.

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr as SqlExpr};

use crate::error::{Result, SqlError};
use crate::parser::interval_duration;

/// Which input of the join a time attribute belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The relation before `JOIN`.
    Left,
    /// The joined relation.
    Right,
}

/// A join condition split into its key equality and its time bounds: right rows join left rows
/// whose time lies in `[left - before_ms, left + after_ms]`.
#[derive(Debug, Clone)]
pub struct IntervalCondition {
    /// The equality between the two sides.
    pub equality: SqlExpr,
    /// How long before the left row a right row may be.
    pub before_ms: i64,
    /// How long after the left row a right row may be.
    pub after_ms: i64,
}

/// The conjuncts of an `AND` tree.
pub(crate) fn conjuncts(e: &SqlExpr, out: &mut Vec<SqlExpr>) {
    match e {
        SqlExpr::Nested(inner) => conjuncts(inner, out),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        other => out.push(other.clone()),
    }
}

/// `ts`, `ts + INTERVAL …` or `ts - INTERVAL …` over a time attribute: its side and offset.
fn time_term(e: &SqlExpr, side_of: &dyn Fn(&SqlExpr) -> Option<Side>) -> Option<(Side, i64)> {
    match e {
        SqlExpr::Nested(inner) => time_term(inner, side_of),
        SqlExpr::BinaryOp { left, op, right }
            if matches!(op, BinaryOperator::Plus | BinaryOperator::Minus) =>
        {
            let d = interval_duration(right)?.as_millis() as i64;
            let (side, off) = time_term(left, side_of)?;
            Some((
                side,
                if *op == BinaryOperator::Plus {
                    off + d
                } else {
                    off - d
                },
            ))
        }
        _ => side_of(e).map(|s| (s, 0)),
    }
}

/// Bounds on `right - left` gathered from the time conjuncts.
#[derive(Default)]
struct Bounds {
    lower: Option<i64>,
    upper: Option<i64>,
}

impl Bounds {
    /// Records `lhs op rhs` where both sides are time terms; false if it is not a time condition
    /// between the two inputs.
    fn add(&mut self, lhs: (Side, i64), op: &BinaryOperator, rhs: (Side, i64)) -> bool {
        // lhs.t + a OP rhs.t + b, rewritten as right - left OP k.
        let (op, k) = match (lhs.0, rhs.0) {
            (Side::Right, Side::Left) => (op.clone(), rhs.1 - lhs.1),
            (Side::Left, Side::Right) => (flip(op), lhs.1 - rhs.1),
            _ => return false,
        };
        match op {
            BinaryOperator::GtEq => self.lower = Some(self.lower.map_or(k, |l| l.max(k))),
            BinaryOperator::Gt => self.lower = Some(self.lower.map_or(k + 1, |l| l.max(k + 1))),
            BinaryOperator::LtEq => self.upper = Some(self.upper.map_or(k, |u| u.min(k))),
            BinaryOperator::Lt => self.upper = Some(self.upper.map_or(k - 1, |u| u.min(k - 1))),
            _ => return false,
        }
        true
    }
}

fn flip(op: &BinaryOperator) -> BinaryOperator {
    match op {
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        other => other.clone(),
    }
}

/// Splits `on` into a key equality and time bounds when it has the interval-join form; `None`
/// when it has no time conditions (a plain equi-join). `side_of` tells whether an expression is
/// the time attribute of the left or right input.
pub fn split(
    on: &SqlExpr,
    side_of: &dyn Fn(&SqlExpr) -> Option<Side>,
) -> Result<Option<IntervalCondition>> {
    let mut parts = Vec::new();
    conjuncts(on, &mut parts);
    if parts.len() < 2 {
        return Ok(None);
    }
    let mut bounds = Bounds::default();
    let mut equality = Vec::new();
    for p in &parts {
        let is_time = match p {
            SqlExpr::Between {
                expr,
                negated: false,
                low,
                high,
            } => match (
                time_term(expr, side_of),
                time_term(low, side_of),
                time_term(high, side_of),
            ) {
                (Some(x), Some(lo), Some(hi)) => {
                    bounds.add(x, &BinaryOperator::GtEq, lo)
                        && bounds.add(x, &BinaryOperator::LtEq, hi)
                }
                _ => false,
            },
            SqlExpr::BinaryOp { left, op, right } => {
                match (time_term(left, side_of), time_term(right, side_of)) {
                    (Some(l), Some(r)) => bounds.add(l, op, r),
                    _ => false,
                }
            }
            _ => false,
        };
        if !is_time {
            equality.push(p.clone());
        }
    }
    if bounds.lower.is_none() && bounds.upper.is_none() {
        return Ok(None);
    }
    let (Some(lower), Some(upper)) = (bounds.lower, bounds.upper) else {
        return Err(SqlError::semantic(format!(
            "interval join condition {on} needs both a lower and an upper bound on the time \
             difference, e.g. b.ts BETWEEN a.ts - INTERVAL '10' MINUTE AND a.ts"
        )));
    };
    if lower > upper {
        return Err(SqlError::semantic(format!(
            "interval join condition {on} can never hold: its time bounds are empty"
        )));
    }
    if equality.len() != 1 {
        return Err(SqlError::semantic(format!(
            "interval join condition {on} must have exactly one key equality besides its time \
             bounds, found {}",
            equality.len()
        )));
    }
    Ok(Some(IntervalCondition {
        equality: equality.remove(0),
        before_ms: -lower,
        after_ms: upper,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_expr;

    fn side(e: &SqlExpr) -> Option<Side> {
        match e.to_string().as_str() {
            "A.TS" => Some(Side::Left),
            "B.TS" => Some(Side::Right),
            _ => None,
        }
    }

    fn bounds(sql: &str) -> (String, i64, i64) {
        let c = split(&parse_expr(sql).unwrap(), &side).unwrap().unwrap();
        (c.equality.to_string(), c.before_ms, c.after_ms)
    }

    #[test]
    fn between_and_comparisons_become_within_bounds() {
        assert_eq!(
            bounds("a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '10' MINUTE AND a.ts"),
            ("A.K = B.K".into(), 600_000, 0)
        );
        assert_eq!(
            bounds(
                "a.k = b.k AND a.ts >= b.ts - INTERVAL '1' SECOND AND a.ts < b.ts + INTERVAL '2' SECOND"
            ),
            ("A.K = B.K".into(), 1_999, 1_000)
        );
    }

    #[test]
    fn plain_equality_is_not_an_interval_join() {
        assert!(
            split(&parse_expr("a.k = b.k").unwrap(), &side)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn one_sided_bounds_are_rejected() {
        let e = parse_expr("a.k = b.k AND b.ts >= a.ts").unwrap();
        assert!(
            split(&e, &side)
                .unwrap_err()
                .to_string()
                .contains("upper bound")
        );
    }
}
