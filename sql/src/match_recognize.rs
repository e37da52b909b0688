//! `MATCH_RECOGNIZE` planning. The input is re-keyed by the `PARTITION BY` columns and exchanged so
//! one subtask sees each partition whole; the pattern compiles to a [`Program`]; every `DEFINE`
//! condition and `MEASURES` expression is split into *terms* — the values that depend on the
//! match (`A.price`, `LAST(A.price, 1)`, `PREV(price)`, `AVG(A.price)`, `CLASSIFIER()`, …),
//! which the operator computes per candidate row — and a DataFusion expression over those terms,
//! evaluated on Arrow batches.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    Value, VisitMut, VisitorMut,
};
use riffle_udfs::FunctionRegistry;

use crate::ast::{AfterMatch, MatchRecognize, SourceKind};
use crate::catalog::SourceDef;
use crate::error::{Result, SqlError};
use crate::expr::{ColumnRole, ExprPlanner, PlannedExpr, Scope, ScopeColumn, column};
use crate::pattern::Program;
use crate::plan::{
    ExchangeNode, PlanNode, ProjectNode, ROWOFFSET, ROWPARTITION, ROWTIME, StreamSchema,
};

/// Logical navigation within a match or physical navigation within the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `FIRST(v.col, n)`: the n-th row mapped to `v`, from the start of the match.
    First,
    /// `LAST(v.col, n)` (and plain `v.col` with n = 0): the n-th row mapped to `v`, from the end.
    Last,
    /// `PREV(v.col, n)`: n rows before the last row mapped to `v`, in the partition.
    Prev,
    /// `NEXT(v.col, n)`: n rows after the last row mapped to `v`, in the partition.
    Next,
}

/// An aggregate over the rows mapped to a pattern variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchAgg {
    /// `COUNT(v.*)`, `COUNT(v.col)`, `COUNT(*)`.
    Count,
    /// `COUNT(DISTINCT v.col)`.
    CountDistinct,
    /// `SUM(v.col)`.
    Sum,
    /// `AVG(v.col)` (a DOUBLE).
    Avg,
    /// `MIN(v.col)`.
    Min,
    /// `MAX(v.col)`.
    Max,
}

/// A value that depends on the match being evaluated.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// A column of a navigated row. `var` `None` means any variable.
    Nav {
        /// Direction.
        nav: Nav,
        /// Pattern variable, if qualified.
        var: Option<usize>,
        /// Column index in the operator's input layout.
        column: usize,
        /// Navigation distance.
        offset: usize,
    },
    /// An aggregate over the rows mapped to `var` (all rows when `None`).
    Agg {
        /// The function.
        func: MatchAgg,
        /// Pattern variable, if qualified.
        var: Option<usize>,
        /// Argument column; `None` counts rows.
        column: Option<usize>,
    },
    /// `CLASSIFIER()`: the variable the current row is mapped to.
    Classifier,
    /// `MATCH_NUMBER()`: 1 for the first match of the partition, and so on.
    MatchNumber,
    /// `MATCH_ROWTIME()`: the event time of the match's last row, as a TIMESTAMP.
    MatchRowtime,
}

/// A `DEFINE` condition or `MEASURES` expression: terms computed by the operator, then a
/// physical expression over a batch whose columns are those terms.
#[derive(Debug, Clone)]
pub struct MatchExpr {
    /// Terms, one column each.
    pub terms: Vec<Term>,
    /// Schema of the term batch.
    pub schema: SchemaRef,
    /// The expression over the term batch.
    pub expr: PlannedExpr,
    /// Source text for EXPLAIN and errors.
    pub display: String,
}

/// Where matching resumes after a match, with variables resolved to their numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipTo {
    /// After the last row of the match.
    PastLastRow,
    /// At the row after the match's first row.
    NextRow,
    /// At the first row mapped to the variable.
    First(usize),
    /// At the last row mapped to the variable.
    Last(usize),
}

/// One `MEASURES` item.
#[derive(Debug, Clone)]
pub struct MeasureExpr {
    /// Output column name.
    pub name: String,
    /// The computation.
    pub expr: MatchExpr,
    /// `FINAL` semantics in `ALL ROWS PER MATCH` (always final in `ONE ROW PER MATCH`).
    pub final_semantics: bool,
}

/// Recognizes a row pattern in each partition of its input, in event-time order.
#[derive(Debug, Clone)]
pub struct MatchRecognizeNode {
    /// Input: keys are the partition columns, values every column of the source.
    pub input: Box<PlanNode>,
    /// The compiled pattern.
    pub program: Program,
    /// `DEFINE` conditions by variable number (`None`: always true).
    pub defines: Vec<Option<MatchExpr>>,
    /// `MEASURES`.
    pub measures: Vec<MeasureExpr>,
    /// `ALL ROWS PER MATCH`.
    pub all_rows: bool,
    /// `AFTER MATCH SKIP`.
    pub skip: SkipTo,
    /// `WITHIN`: the longest time from the first to the last row of a match, in milliseconds.
    pub within_ms: Option<i64>,
    /// Input value columns copied to the output (`ALL ROWS PER MATCH`).
    pub passthrough: Vec<usize>,
    /// Output layout: partition keys, measures, then pass-through columns.
    pub schema: StreamSchema,
    /// Source text of the pattern, for EXPLAIN.
    pub display: String,
}

impl MatchRecognizeNode {
    /// One line for EXPLAIN, including the state the operator keeps.
    pub fn describe(&self) -> String {
        let defines: Vec<String> = self
            .defines
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                d.as_ref()
                    .map(|d| format!("{} AS {}", self.program.vars[i], d.display))
            })
            .collect();
        let measures: Vec<String> = self
            .measures
            .iter()
            .map(|m| format!("{} AS {}", m.expr.display, m.name))
            .collect();
        format!(
            "MatchRecognize pattern ({}) nfa [{}] define [{}] measures [{}] {} skip {:?}{}; state: \
             per partition, rows not yet passed by the watermark, the partial matches (NFA threads) \
             and the rows they reference{}",
            self.display,
            self.program.render(),
            defines.join(", "),
            measures.join(", "),
            if self.all_rows {
                "ALL ROWS PER MATCH"
            } else {
                "ONE ROW PER MATCH"
            },
            self.skip,
            self.within_ms
                .map(|w| format!(" within {w}ms"))
                .unwrap_or_default(),
            if self.within_ms.is_some() {
                ", pruned by WITHIN"
            } else {
                ""
            }
        )
    }
}

/// The output of planning a `MATCH_RECOGNIZE` relation.
pub struct PlannedMatch {
    /// The plan.
    pub node: PlanNode,
    /// Columns visible to the enclosing query.
    pub scope: Scope,
    /// Names of the partition (key) columns.
    pub keys: Vec<String>,
}

/// Plans `source MATCH_RECOGNIZE (…) AS alias` over `input` (the source or view read, whose
/// columns `source_scope` describes).
pub fn plan(
    def: &Arc<SourceDef>,
    input: PlanNode,
    source_scope: Scope,
    alias: &str,
    mr: &MatchRecognize,
    registry: &FunctionRegistry,
) -> Result<PlannedMatch> {
    if def.kind != SourceKind::Stream {
        return Err(SqlError::semantic(format!(
            "MATCH_RECOGNIZE needs a STREAM; {} is a TABLE",
            def.name
        )));
    }
    if def.window.is_some() {
        return Err(SqlError::semantic(format!(
            "MATCH_RECOGNIZE cannot read the windowed relation {}",
            def.name
        )));
    }
    check_order_by(def, mr)?;

    // Re-key by the partition columns; values are every source column.
    let mut exprs = Vec::new();
    let mut key_fields = Vec::new();
    let mut keys = Vec::new();
    let mut display = Vec::new();
    for (i, p) in mr.partition_by.iter().enumerate() {
        let name = match p {
            SqlExpr::Identifier(id) => id.value.clone(),
            SqlExpr::CompoundIdentifier(ids) if ids.len() == 2 => ids[1].value.clone(),
            other => {
                return Err(SqlError::semantic(format!(
                    "MATCH_RECOGNIZE PARTITION BY takes column names, found {other}"
                )));
            }
        };
        let c = source_scope.resolve(None, &name)?;
        let planned = ExprPlanner::new(source_scope.clone(), registry).plan_physical(p)?;
        key_fields.push(Field::new(format!("__P{i}"), c.data_type.clone(), true));
        display.push(format!("{name} AS __P{i} KEY"));
        keys.push((c.name.clone(), c.data_type.clone()));
        exprs.push(planned);
    }
    let mut value_fields = Vec::new();
    for c in &source_scope.columns {
        if c.role == ColumnRole::System {
            continue;
        }
        exprs.push(crate::expr::compile(column(&c.field), &source_scope)?);
        value_fields.push(Field::new(&c.name, c.data_type.clone(), true));
    }
    let pre_schema = StreamSchema::new(key_fields, value_fields, false, SourceKind::Stream);
    let input = PlanNode::Exchange(ExchangeNode {
        input: Box::new(PlanNode::Project(ProjectNode {
            input: Box::new(input),
            exprs,
            schema: pre_schema.clone(),
            drop_null_keys: false,
            display,
        })),
    });

    let program = Program::compile(&mr.pattern)?;
    let mut defines: Vec<Option<MatchExpr>> = vec![None; program.vars.len()];
    for (var, cond) in &mr.define {
        let Some(n) = program.var(var) else {
            return Err(SqlError::semantic(format!(
                "DEFINE {var}: {var} does not appear in PATTERN"
            )));
        };
        if defines[n].is_some() {
            return Err(SqlError::semantic(format!("{var} is defined twice")));
        }
        let e =
            TermPlanner::new(&program, &pre_schema, &source_scope, true).plan(cond, registry)?;
        if e.expr.data_type != DataType::Boolean {
            return Err(SqlError::semantic(format!(
                "DEFINE {var} must be a boolean condition, found {cond}"
            )));
        }
        defines[n] = Some(e);
    }
    let mut measures = Vec::new();
    for m in &mr.measures {
        let expr = TermPlanner::new(&program, &pre_schema, &source_scope, false)
            .plan(&m.expr, registry)?;
        measures.push(MeasureExpr {
            name: m.name.clone(),
            expr,
            final_semantics: m.final_semantics || !mr.all_rows,
        });
    }
    let var = |v: &str| {
        program.var(v).ok_or_else(|| {
            SqlError::semantic(format!(
                "AFTER MATCH SKIP TO {v}: {v} is not a pattern variable"
            ))
        })
    };
    let skip = match &mr.after_match {
        AfterMatch::PastLastRow => SkipTo::PastLastRow,
        AfterMatch::ToNextRow => SkipTo::NextRow,
        AfterMatch::ToFirst(v) => SkipTo::First(var(v)?),
        AfterMatch::ToLast(v) => SkipTo::Last(var(v)?),
    };

    // Output: partition keys, measures, then (ALL ROWS PER MATCH) the other input columns.
    let mut scope = Scope::default();
    let mut out_keys = Vec::new();
    let mut taken = std::collections::HashSet::new();
    for (name, dt) in &keys {
        out_keys.push(Field::new(name, dt.clone(), true));
        taken.insert(name.clone());
        scope.columns.push(ScopeColumn {
            qualifier: Some(alias.to_string()),
            name: name.clone(),
            field: name.clone(),
            data_type: dt.clone(),
            role: ColumnRole::Key,
        });
    }
    let mut out_values = Vec::new();
    for m in &measures {
        if !taken.insert(m.name.clone()) {
            return Err(SqlError::semantic(format!(
                "measure {} has the same name as another output column",
                m.name
            )));
        }
        out_values.push(Field::new(&m.name, m.expr.expr.data_type.clone(), true));
        scope.columns.push(ScopeColumn {
            qualifier: Some(alias.to_string()),
            name: m.name.clone(),
            field: m.name.clone(),
            data_type: m.expr.expr.data_type.clone(),
            role: ColumnRole::Value,
        });
    }
    let mut passthrough = Vec::new();
    if mr.all_rows {
        for (i, f) in pre_schema.value_fields().iter().enumerate() {
            if keys.iter().any(|(k, _)| k == f.name()) {
                continue;
            }
            if !taken.insert(f.name().clone()) {
                return Err(SqlError::semantic(format!(
                    "measure {} has the same name as an input column; ALL ROWS PER MATCH outputs both",
                    f.name()
                )));
            }
            passthrough.push(pre_schema.key_count + i);
            out_values.push(f.clone());
            scope.columns.push(ScopeColumn {
                qualifier: Some(alias.to_string()),
                name: f.name().clone(),
                field: f.name().clone(),
                data_type: f.data_type().clone(),
                role: ColumnRole::Value,
            });
        }
    }
    for (name, dt) in [
        (ROWTIME, DataType::Int64),
        (ROWPARTITION, DataType::Int32),
        (ROWOFFSET, DataType::Int64),
    ] {
        scope.columns.push(ScopeColumn {
            qualifier: Some(alias.to_string()),
            name: name.to_string(),
            field: name.to_string(),
            data_type: dt,
            role: ColumnRole::System,
        });
    }
    let schema = StreamSchema::new(out_keys, out_values, false, SourceKind::Stream);
    let node = PlanNode::MatchRecognize(MatchRecognizeNode {
        input: Box::new(input),
        program,
        defines,
        measures,
        all_rows: mr.all_rows,
        skip,
        within_ms: mr.within.map(|w| w.as_millis() as i64),
        passthrough,
        schema,
        display: pattern_text(&mr.pattern),
    });
    Ok(PlannedMatch {
        node,
        scope,
        keys: keys.into_iter().map(|(k, _)| k).collect(),
    })
}

/// `ORDER BY` must be the time attribute, ascending.
fn check_order_by(def: &SourceDef, mr: &MatchRecognize) -> Result<()> {
    let time_attr = def.timestamp.as_deref().unwrap_or(ROWTIME);
    let ok = match mr.order_by.as_slice() {
        [SqlExpr::Identifier(id)] => id.value == time_attr || id.value == ROWTIME,
        [SqlExpr::CompoundIdentifier(ids)] if ids.len() == 2 => {
            ids[1].value == time_attr || ids[1].value == ROWTIME
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(SqlError::semantic(format!(
            "MATCH_RECOGNIZE must ORDER BY the time attribute of {} ({time_attr}) alone, ascending",
            def.name
        )))
    }
}

/// The pattern as SQL text.
fn pattern_text(p: &crate::ast::Pattern) -> String {
    use crate::ast::Pattern;
    match p {
        Pattern::Var(v) => v.clone(),
        Pattern::Concat(items) => items.iter().map(pattern_text).collect::<Vec<_>>().join(" "),
        Pattern::Alt(items) => items
            .iter()
            .map(pattern_text)
            .collect::<Vec<_>>()
            .join(" | "),
        Pattern::Repeat {
            inner,
            min,
            max,
            greedy,
        } => {
            let inner = match inner.as_ref() {
                Pattern::Var(v) => v.clone(),
                other => format!("({})", pattern_text(other)),
            };
            let q = match (min, max) {
                (0, None) => "*".to_string(),
                (1, None) => "+".to_string(),
                (0, Some(1)) => "?".to_string(),
                (n, None) => format!("{{{n},}}"),
                (n, Some(m)) if n == m => format!("{{{n}}}"),
                (n, Some(m)) => format!("{{{n},{m}}}"),
            };
            format!("{inner}{q}{}", if *greedy { "" } else { "?" })
        }
    }
}

/// Rewrites match-dependent references into term columns `__T<i>`.
struct TermPlanner<'a> {
    program: &'a Program,
    input: &'a StreamSchema,
    source: &'a Scope,
    define: bool,
    terms: Vec<Term>,
    types: Vec<DataType>,
}

impl<'a> TermPlanner<'a> {
    fn new(program: &'a Program, input: &'a StreamSchema, source: &'a Scope, define: bool) -> Self {
        TermPlanner {
            program,
            input,
            source,
            define,
            terms: Vec::new(),
            types: Vec::new(),
        }
    }

    fn plan(mut self, e: &SqlExpr, registry: &FunctionRegistry) -> Result<MatchExpr> {
        let mut rewritten = e.clone();
        if let ControlFlow::Break(err) = rewritten.visit(&mut self) {
            return Err(err);
        }
        let fields: Vec<Field> = self
            .types
            .iter()
            .enumerate()
            .map(|(i, dt)| Field::new(format!("__T{i}"), dt.clone(), true))
            .collect();
        let scope = Scope {
            columns: fields
                .iter()
                .map(|f| ScopeColumn {
                    qualifier: None,
                    name: f.name().clone(),
                    field: f.name().clone(),
                    data_type: f.data_type().clone(),
                    role: ColumnRole::Value,
                })
                .collect(),
        };
        let expr = ExprPlanner::new(scope, registry).plan_physical(&rewritten)?;
        Ok(MatchExpr {
            terms: self.terms,
            schema: Arc::new(Schema::new(fields)),
            expr,
            display: e.to_string(),
        })
    }

    /// Adds a term, returning its placeholder identifier.
    fn term(&mut self, t: Term, dt: DataType) -> SqlExpr {
        let i = match self.terms.iter().position(|x| *x == t) {
            Some(i) => i,
            None => {
                self.terms.push(t);
                self.types.push(dt);
                self.terms.len() - 1
            }
        };
        SqlExpr::Identifier(Ident::new(format!("__T{i}")))
    }

    /// `col` or `v.col`: the variable (if any), the input column and its type.
    fn column_ref(&self, e: &SqlExpr) -> Result<(Option<usize>, usize, DataType)> {
        let (var, name) = match e {
            SqlExpr::Identifier(id) => (None, id.value.clone()),
            SqlExpr::CompoundIdentifier(ids) if ids.len() == 2 => {
                let v = self.program.var(&ids[0].value).ok_or_else(|| {
                    SqlError::semantic(format!(
                        "{e}: {} is not a pattern variable of PATTERN",
                        ids[0].value
                    ))
                })?;
                (Some(v), ids[1].value.clone())
            }
            other => {
                return Err(SqlError::semantic(format!(
                    "expected a column such as A.price, found {other}"
                )));
            }
        };
        let c = self.source.resolve(None, &name)?;
        let index = match c.name.as_str() {
            ROWTIME => self.input.rowtime(),
            ROWPARTITION => self.input.partition(),
            ROWOFFSET => self.input.offset(),
            n => self.input.arrow.index_of(n).map_err(|_| {
                SqlError::semantic(format!("column {n} is not available in MATCH_RECOGNIZE"))
            })?,
        };
        Ok((var, index, c.data_type.clone()))
    }

    fn function(
        &mut self,
        f: &datafusion::sql::sqlparser::ast::Function,
    ) -> Result<Option<SqlExpr>> {
        let name = f.name.to_string().to_uppercase();
        let args: Vec<&FunctionArg> = match &f.args {
            FunctionArguments::List(l) => l.args.iter().collect(),
            FunctionArguments::None => vec![],
            FunctionArguments::Subquery(_) => return Ok(None),
        };
        let expr_arg = |i: usize| -> Option<&SqlExpr> {
            match args.get(i) {
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) => Some(e),
                _ => None,
            }
        };
        match name.as_str() {
            "FIRST" | "LAST" | "PREV" | "NEXT" => {
                let nav = match name.as_str() {
                    "FIRST" => Nav::First,
                    "LAST" => Nav::Last,
                    "PREV" => Nav::Prev,
                    _ => Nav::Next,
                };
                if nav == Nav::Next && self.define {
                    return Err(SqlError::semantic(
                        "NEXT cannot be used in DEFINE: rows after the current one are not known yet",
                    ));
                }
                let target = expr_arg(0).ok_or_else(|| {
                    SqlError::semantic(format!("{name} takes a column such as A.price"))
                })?;
                let (var, column, dt) = self.column_ref(target)?;
                let offset = match args.len() {
                    1 => match nav {
                        Nav::Prev | Nav::Next => 1,
                        _ => 0,
                    },
                    2 => match expr_arg(1) {
                        Some(SqlExpr::Value(v)) => match &v.value {
                            Value::Number(n, _) => n.parse::<usize>().map_err(|_| {
                                SqlError::semantic(format!(
                                    "{name}: the offset must be a non-negative integer, found {n}"
                                ))
                            })?,
                            other => {
                                return Err(SqlError::semantic(format!(
                                    "{name}: the offset must be an integer literal, found {other}"
                                )));
                            }
                        },
                        _ => {
                            return Err(SqlError::semantic(format!(
                                "{name}: the offset must be an integer literal"
                            )));
                        }
                    },
                    _ => {
                        return Err(SqlError::semantic(format!(
                            "{name} takes a column and an optional offset"
                        )));
                    }
                };
                Ok(Some(self.term(
                    Term::Nav {
                        nav,
                        var,
                        column,
                        offset,
                    },
                    dt,
                )))
            }
            "CLASSIFIER" => Ok(Some(self.term(Term::Classifier, DataType::Utf8))),
            "MATCH_NUMBER" => Ok(Some(self.term(Term::MatchNumber, DataType::Int64))),
            "MATCH_ROWTIME" => Ok(Some(self.term(
                Term::MatchRowtime,
                DataType::Timestamp(TimeUnit::Millisecond, None),
            ))),
            "COUNT" | "SUM" | "AVG" | "MIN" | "MAX" => {
                let distinct = matches!(
                    &f.args,
                    FunctionArguments::List(l)
                        if l.duplicate_treatment == Some(DuplicateTreatment::Distinct)
                );
                if distinct && name != "COUNT" {
                    return Err(SqlError::semantic(format!(
                        "{name}(DISTINCT …) is not supported in MATCH_RECOGNIZE; COUNT(DISTINCT …) is"
                    )));
                }
                let func = match name.as_str() {
                    "COUNT" if distinct => MatchAgg::CountDistinct,
                    "COUNT" => MatchAgg::Count,
                    "SUM" => MatchAgg::Sum,
                    "AVG" => MatchAgg::Avg,
                    "MIN" => MatchAgg::Min,
                    _ => MatchAgg::Max,
                };
                let (var, column, dt) = match args.as_slice() {
                    [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]
                        if func == MatchAgg::Count =>
                    {
                        (None, None, DataType::Int64)
                    }
                    [FunctionArg::Unnamed(FunctionArgExpr::QualifiedWildcard(v))]
                        if func == MatchAgg::Count =>
                    {
                        let v = v.to_string();
                        let n = self.program.var(&v).ok_or_else(|| {
                            SqlError::semantic(format!(
                                "COUNT({v}.*): {v} is not a pattern variable"
                            ))
                        })?;
                        (Some(n), None, DataType::Int64)
                    }
                    [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => {
                        let (var, column, dt) = self.column_ref(e)?;
                        (var, Some(column), dt)
                    }
                    _ => {
                        return Err(SqlError::semantic(format!(
                            "{name} in MATCH_RECOGNIZE takes one column such as A.price"
                        )));
                    }
                };
                let out = match func {
                    MatchAgg::Count | MatchAgg::CountDistinct => DataType::Int64,
                    MatchAgg::Avg => DataType::Float64,
                    MatchAgg::Min | MatchAgg::Max => dt,
                    MatchAgg::Sum => match dt {
                        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                            DataType::Int64
                        }
                        DataType::Float32 | DataType::Float64 => DataType::Float64,
                        DataType::Decimal128(_, s) => DataType::Decimal128(38, s),
                        other => {
                            return Err(SqlError::semantic(format!(
                                "SUM needs a numeric column, found {other}"
                            )));
                        }
                    },
                };
                Ok(Some(self.term(Term::Agg { func, var, column }, out)))
            }
            _ => Ok(None),
        }
    }
}

impl VisitorMut for TermPlanner<'_> {
    type Break = SqlError;

    fn pre_visit_expr(&mut self, e: &mut SqlExpr) -> ControlFlow<SqlError> {
        let replacement = match e {
            SqlExpr::Identifier(id) if id.value.starts_with("__T") => Ok(None),
            SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => {
                self.column_ref(e).map(|(var, column, dt)| {
                    Some(self.term(
                        Term::Nav {
                            nav: Nav::Last,
                            var,
                            column,
                            offset: 0,
                        },
                        dt,
                    ))
                })
            }
            SqlExpr::Function(f) => {
                let f = f.clone();
                self.function(&f)
            }
            _ => Ok(None),
        };
        match replacement {
            Ok(Some(r)) => {
                *e = r;
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(err) => ControlFlow::Break(err),
        }
    }
}
