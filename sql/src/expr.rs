//! Expression planning: sqlparser expressions → typed DataFusion expressions, with ksqlDB's
//! name resolution (unqualified or `source.column`, `struct->field`, `arr[i]`, `map['k']`),
//! literal typing (`1.5` is DECIMAL(2,1), `1E0` is DOUBLE), implicit conversions (string literals
//! compared with other types, `+` on strings) and aggregate extraction for `GROUP BY` queries.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::{Case, InList, Like, ScalarFunction};
use datafusion::logical_expr::{
    Between, BinaryExpr, Cast, Expr, ExprSchemable, Operator, ScalarUDF, TryCast, lit,
};
use datafusion::optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{
    self as sql, AccessExpr, BinaryOperator, Expr as SqlExpr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Subscript, UnaryOperator, Value,
};
use riffle_udfs::FunctionRegistry;
use riffle_udfs::aggregate::AggregateFunction;

use crate::dialect::{MAP_CONSTRUCTOR, RIFFLE_TYPE, STRUCT_CONSTRUCTOR};
use crate::error::{Result, SqlError};
use crate::types::{SqlType, display_arrow};

/// What a column is to the relation it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// Part of the key.
    Key,
    /// A value column.
    Value,
    /// A system column (ROWTIME, WINDOWSTART, …).
    System,
}

/// A column visible to expressions.
#[derive(Debug, Clone)]
pub struct ScopeColumn {
    /// The source alias that qualifies it, if any.
    pub qualifier: Option<String>,
    /// The user-visible name.
    pub name: String,
    /// The physical field name in batches (unique within the scope).
    pub field: String,
    /// Arrow type.
    pub data_type: DataType,
    /// Key, value or system.
    pub role: ColumnRole,
}

/// The columns an expression can reference.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Columns in physical order.
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    /// Finds a column by optional qualifier and name.
    pub fn resolve(&self, qualifier: Option<&str>, name: &str) -> Result<&ScopeColumn> {
        let matches: Vec<&ScopeColumn> = self
            .columns
            .iter()
            .filter(|c| {
                c.name == name && (qualifier.is_none() || c.qualifier.as_deref() == qualifier)
            })
            .collect();
        match matches.len() {
            1 => Ok(matches[0]),
            0 => {
                let full = match qualifier {
                    Some(q) => format!("{q}.{name}"),
                    None => name.to_string(),
                };
                Err(SqlError::Unknown(format!(
                    "column '{full}' cannot be resolved"
                )))
            }
            _ => {
                if qualifier.is_none() {
                    let unqualified: Vec<&&ScopeColumn> =
                        matches.iter().filter(|c| c.qualifier.is_none()).collect();
                    if unqualified.len() == 1 {
                        return Ok(unqualified[0]);
                    }
                }
                // A key column shared by both sides of a join resolves to the first one.
                if matches.iter().all(|c| c.role == ColumnRole::System) || qualifier.is_some() {
                    return Ok(matches[0]);
                }
                Err(SqlError::semantic(format!(
                    "column '{name}' is ambiguous: it could refer to {}",
                    matches
                        .iter()
                        .map(|c| format!("{}.{}", c.qualifier.as_deref().unwrap_or("?"), c.name))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )))
            }
        }
    }

    /// Whether `name` qualifies columns in this scope.
    pub fn is_qualifier(&self, name: &str) -> bool {
        self.columns
            .iter()
            .any(|c| c.qualifier.as_deref() == Some(name))
    }

    /// The DataFusion schema of the physical fields.
    pub fn df_schema(&self) -> Result<DFSchema> {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(&c.field, c.data_type.clone(), true))
            .collect();
        Ok(DFSchema::from_unqualified_fields(
            fields.into(),
            Default::default(),
        )?)
    }

    /// Looks up a column by physical field name.
    pub fn by_field(&self, field: &str) -> Option<&ScopeColumn> {
        self.columns.iter().find(|c| c.field == field)
    }
}

/// An aggregate call found in a `GROUP BY` query.
#[derive(Debug, Clone)]
pub struct AggCall {
    /// The function.
    pub func: Arc<dyn AggregateFunction>,
    /// Per-row argument expressions, over the aggregation's input.
    pub args: Vec<Expr>,
    /// Literal parameters (`TOPK(x, 3)` → `3`).
    pub params: Vec<ScalarValue>,
    /// Output field name.
    pub field: String,
    /// Result type.
    pub data_type: DataType,
    /// Text for EXPLAIN.
    pub display: String,
}

/// State for planning expressions after aggregation.
#[derive(Debug, Clone)]
pub struct AggMode {
    /// The aggregation's input columns.
    pub input: Scope,
    /// Grouping expressions over the input, with the field each becomes.
    pub groups: Vec<(Expr, String)>,
    /// Aggregate calls collected so far.
    pub calls: Vec<AggCall>,
}

/// Plans expressions against a scope.
pub struct ExprPlanner<'a> {
    /// Visible columns (after aggregation: group fields, aggregate results and window bounds).
    pub scope: Scope,
    registry: &'a FunctionRegistry,
    /// Present when planning the select list or HAVING of an aggregation.
    pub agg: Option<AggMode>,
}

/// A planned expression with its type and physical form.
#[derive(Debug, Clone)]
pub struct PlannedExpr {
    /// The coerced logical expression.
    pub expr: Expr,
    /// The physical expression evaluated on batches.
    pub physical: Arc<dyn PhysicalExpr>,
    /// Result type.
    pub data_type: DataType,
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// An unqualified column reference by exact physical name (no identifier normalization).
pub fn column(name: &str) -> Expr {
    Expr::Column(datafusion::common::Column::new_unqualified(name))
}

fn udf_call(f: Arc<ScalarUDF>, args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(f, args))
}

fn ident_name(i: &sql::Ident) -> String {
    i.value.clone()
}

/// Whether the expression calls an aggregate function anywhere.
pub fn contains_aggregate(e: &SqlExpr, registry: &FunctionRegistry) -> bool {
    let r = sql::visit_expressions(e, |e| {
        if let SqlExpr::Function(f) = e
            && registry.is_aggregate(&f.name.to_string())
        {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    r.is_break()
}

pub use riffle_udfs::value::parse_partial_timestamp;

/// Types a numeric literal as ksqlDB does.
pub fn number_literal(text: &str) -> Result<ScalarValue> {
    if text.contains(['e', 'E']) {
        let v: f64 = text
            .parse()
            .map_err(|_| SqlError::semantic(format!("invalid number literal {text}")))?;
        return Ok(ScalarValue::Float64(Some(v)));
    }
    if let Some((int_part, frac)) = text.split_once('.') {
        let digits: String = format!("{int_part}{frac}");
        let unscaled: i128 = digits
            .parse()
            .map_err(|_| SqlError::semantic(format!("invalid number literal {text}")))?;
        let scale = frac.len() as i8;
        let sig = unscaled
            .abs()
            .to_string()
            .trim_start_matches('0')
            .len()
            .max(1) as u8;
        let precision = sig.max(scale as u8).max(1);
        if precision > 38 {
            let v: f64 = text.parse().unwrap_or(f64::NAN);
            return Ok(ScalarValue::Float64(Some(v)));
        }
        return Ok(ScalarValue::Decimal128(Some(unscaled), precision, scale));
    }
    if let Ok(v) = text.parse::<i32>() {
        return Ok(ScalarValue::Int32(Some(v)));
    }
    if let Ok(v) = text.parse::<i64>() {
        return Ok(ScalarValue::Int64(Some(v)));
    }
    let unscaled: i128 = text
        .parse()
        .map_err(|_| SqlError::semantic(format!("invalid number literal {text}")))?;
    let precision = unscaled.abs().to_string().len().min(38) as u8;
    Ok(ScalarValue::Decimal128(Some(unscaled), precision, 0))
}

fn negate_literal(v: ScalarValue) -> Option<ScalarValue> {
    Some(match v {
        ScalarValue::Int32(Some(x)) => ScalarValue::Int32(Some(x.checked_neg()?)),
        ScalarValue::Int64(Some(x)) => match x.checked_neg() {
            Some(n) if n >= i32::MIN as i64 && n <= i32::MAX as i64 => {
                ScalarValue::Int32(Some(n as i32))
            }
            Some(n) => ScalarValue::Int64(Some(n)),
            None => return None,
        },
        ScalarValue::Float64(Some(x)) => ScalarValue::Float64(Some(-x)),
        ScalarValue::Decimal128(Some(x), p, s) => {
            let n = -x;
            if s == 0 && n >= i64::MIN as i128 && n <= i64::MAX as i128 {
                let n = n as i64;
                if n >= i32::MIN as i64 && n <= i32::MAX as i64 {
                    return Some(ScalarValue::Int32(Some(n as i32)));
                }
                return Some(ScalarValue::Int64(Some(n)));
            }
            ScalarValue::Decimal128(Some(n), p, s)
        }
        _ => return None,
    })
}

impl<'a> ExprPlanner<'a> {
    /// A planner over `scope`.
    pub fn new(scope: Scope, registry: &'a FunctionRegistry) -> Self {
        ExprPlanner {
            scope,
            registry,
            agg: None,
        }
    }

    /// A planner for the post-aggregation expressions of a `GROUP BY` query.
    pub fn for_aggregation(scope: Scope, registry: &'a FunctionRegistry, agg: AggMode) -> Self {
        ExprPlanner {
            scope,
            registry,
            agg: Some(agg),
        }
    }

    /// The function registry.
    pub fn registry(&self) -> &'a FunctionRegistry {
        self.registry
    }

    /// The type of a planned (possibly uncoerced) expression.
    pub fn type_of(&self, e: &Expr) -> Result<DataType> {
        let schema = self.scope.df_schema()?;
        let coerced = coerce(e.clone(), &schema)?;
        Ok(coerced.get_type(&schema)?)
    }

    /// Plans, coerces and compiles an expression.
    pub fn plan_physical(&mut self, e: &SqlExpr) -> Result<PlannedExpr> {
        let logical = self.plan(e)?;
        self.compile(logical)
    }

    /// Coerces and compiles an already planned expression against the current scope.
    pub fn compile(&self, logical: Expr) -> Result<PlannedExpr> {
        compile(logical, &self.scope)
    }

    /// Plans an expression to a (not yet coerced) DataFusion expression.
    pub fn plan(&mut self, e: &SqlExpr) -> Result<Expr> {
        if let Some(planned) = self.plan_in_aggregation(e)? {
            return Ok(planned);
        }
        self.plan_node(e)
    }

    /// In an aggregation, an expression is an aggregate call, a grouping expression, or is built
    /// from those.
    fn plan_in_aggregation(&mut self, e: &SqlExpr) -> Result<Option<Expr>> {
        let Some(agg) = &self.agg else {
            return Ok(None);
        };
        if let SqlExpr::Function(f) = e
            && self.registry.is_aggregate(&f.name.to_string())
        {
            return self.plan_aggregate_call(f).map(Some);
        }
        if contains_aggregate(e, self.registry) {
            return Ok(None);
        }
        let mut input = ExprPlanner::new(agg.input.clone(), self.registry);
        if let Ok(planned) = input.plan(e) {
            if let Some((_, field)) = agg.groups.iter().find(|(g, _)| *g == planned) {
                return Ok(Some(column(field.as_str())));
            }
            if is_column_ref(e) {
                let name = e.to_string();
                if self.resolve_column(e).is_err() {
                    return Err(SqlError::semantic(format!(
                        "column {name} must appear in GROUP BY or be used in an aggregate function"
                    )));
                }
            }
        }
        Ok(None)
    }

    fn plan_aggregate_call(&mut self, f: &sql::Function) -> Result<Expr> {
        let name = f.name.to_string().to_uppercase();
        let func = self
            .registry
            .aggregate(&name)
            .ok_or_else(|| SqlError::Unknown(format!("unknown aggregate function {name}")))?;
        let Some(agg) = &self.agg else {
            return Err(SqlError::semantic(format!(
                "aggregate function {name} needs a GROUP BY clause"
            )));
        };
        let raw_args = function_args(f)?;
        let mut input = ExprPlanner::new(agg.input.clone(), self.registry);
        let mut args = Vec::new();
        for a in &raw_args {
            if contains_aggregate(a, self.registry) {
                return Err(SqlError::semantic(format!(
                    "aggregate functions cannot be nested in {name}"
                )));
            }
            args.push(input.plan(a)?);
        }
        let n_values = func.value_args(args.len());
        let params_exprs = args.split_off(n_values);
        let mut params = Vec::new();
        for p in params_exprs {
            let planned = compile(p, &agg.input)?;
            match planned.expr {
                Expr::Literal(v, _) => params.push(v),
                other => {
                    return Err(SqlError::semantic(format!(
                        "{name}: parameter {other} must be a literal"
                    )));
                }
            }
        }
        let schema = agg.input.df_schema()?;
        let mut coerced_args = Vec::new();
        let mut types = Vec::new();
        for a in args {
            let c = coerce(a, &schema)?;
            types.push(c.get_type(&schema)?);
            coerced_args.push(c);
        }
        let data_type = func.return_type(&types, &params).map_err(|e| {
            SqlError::semantic(format!(
                "{name}({}): {e}",
                types
                    .iter()
                    .map(display_arrow)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let display = format!(
            "{}({})",
            name,
            raw_args
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let agg = self.agg.as_mut().expect("checked above");
        if let Some(existing) = agg
            .calls
            .iter()
            .find(|c| c.func.name() == func.name() && c.args == coerced_args && c.params == params)
        {
            return Ok(column(existing.field.as_str()));
        }
        let field = format!("__A{}", agg.calls.len());
        agg.calls.push(AggCall {
            func,
            args: coerced_args,
            params,
            field: field.clone(),
            data_type: data_type.clone(),
            display,
        });
        self.scope.columns.push(ScopeColumn {
            qualifier: None,
            name: field.clone(),
            field: field.clone(),
            data_type,
            role: ColumnRole::Value,
        });
        Ok(column(field.as_str()))
    }

    fn resolve_column(&self, e: &SqlExpr) -> Result<Expr> {
        match e {
            SqlExpr::Identifier(id) => {
                let c = self.scope.resolve(None, &ident_name(id))?;
                Ok(column(c.field.as_str()))
            }
            SqlExpr::CompoundIdentifier(ids) => self.plan_compound(ids),
            _ => Err(SqlError::semantic(format!("{e} is not a column"))),
        }
    }

    fn plan_compound(&self, ids: &[sql::Ident]) -> Result<Expr> {
        let names: Vec<String> = ids.iter().map(ident_name).collect();
        // `source.column[.field…]` when the first part is a source alias, else `column.field…`.
        let (base, rest) = if names.len() >= 2 && self.scope.is_qualifier(&names[0]) {
            let c = self.scope.resolve(Some(&names[0]), &names[1])?;
            (column(c.field.as_str()), &names[2..])
        } else {
            let c = self.scope.resolve(None, &names[0])?;
            (column(c.field.as_str()), &names[1..])
        };
        let mut e = base;
        for f in rest {
            e = self.field_access(e, f)?;
        }
        Ok(e)
    }

    fn field_access(&self, base: Expr, name: &str) -> Result<Expr> {
        let dt = self.type_of(&base)?;
        let DataType::Struct(fields) = &dt else {
            return Err(SqlError::semantic(format!(
                "cannot access field {name} of {base}: it is a {}, not a STRUCT",
                display_arrow(&dt)
            )));
        };
        let actual = fields
            .iter()
            .find(|f| f.name() == name)
            .or_else(|| fields.iter().find(|f| f.name().eq_ignore_ascii_case(name)))
            .ok_or_else(|| {
                SqlError::Unknown(format!(
                    "field {name} does not exist in {}",
                    display_arrow(&dt)
                ))
            })?;
        Ok(udf_call(
            datafusion::functions::core::get_field(),
            vec![base, lit(actual.name().as_str())],
        ))
    }

    fn subscript(&mut self, base: Expr, index: &SqlExpr) -> Result<Expr> {
        let dt = self.type_of(&base)?;
        let idx = self.plan(index)?;
        match dt {
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
                let idx = Expr::Cast(Cast::new(Box::new(idx), DataType::Int64));
                Ok(udf_call(
                    datafusion::functions_nested::extract::array_element_udf(),
                    vec![base, idx],
                ))
            }
            DataType::Map(_, _) => match idx {
                Expr::Literal(..) => Ok(udf_call(
                    datafusion::functions::core::get_field(),
                    vec![base, idx],
                )),
                other => {
                    let extracted = udf_call(
                        datafusion::functions_nested::map_extract::map_extract_udf(),
                        vec![base, other],
                    );
                    Ok(udf_call(
                        datafusion::functions_nested::extract::array_element_udf(),
                        vec![extracted, lit(1i64)],
                    ))
                }
            },
            other => Err(SqlError::semantic(format!(
                "cannot subscript a {}: only ARRAY and MAP values can be indexed",
                display_arrow(&other)
            ))),
        }
    }

    fn plan_node(&mut self, e: &SqlExpr) -> Result<Expr> {
        Ok(match e {
            SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => self.resolve_column(e)?,
            SqlExpr::Nested(inner) => self.plan(inner)?,
            SqlExpr::Value(v) => self.plan_value(&v.value)?,
            SqlExpr::TypedString(ts) => {
                let text = match &ts.value.value {
                    Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                let target = match &ts.data_type {
                    sql::DataType::Date => DataType::Date32,
                    sql::DataType::Time(..) => DataType::Time32(TimeUnit::Millisecond),
                    _ => DataType::Timestamp(TimeUnit::Millisecond, None),
                };
                Expr::Cast(Cast::new(Box::new(lit(text)), target))
            }
            SqlExpr::UnaryOp { op, expr } => match op {
                UnaryOperator::Minus => {
                    let inner = self.plan(expr)?;
                    if let Expr::Literal(v, _) = &inner
                        && let Some(n) = negate_literal(v.clone())
                    {
                        return Ok(lit(n));
                    }
                    Expr::Negative(Box::new(inner))
                }
                UnaryOperator::Plus => self.plan(expr)?,
                UnaryOperator::Not => Expr::Not(Box::new(self.plan(expr)?)),
                other => return Err(SqlError::Unsupported(format!("unary operator {other}"))),
            },
            SqlExpr::BinaryOp { left, op, right } => self.plan_binary(left, op, right)?,
            SqlExpr::IsNull(e) => Expr::IsNull(Box::new(self.plan(e)?)),
            SqlExpr::IsNotNull(e) => Expr::IsNotNull(Box::new(self.plan(e)?)),
            SqlExpr::IsTrue(e) => Expr::IsTrue(Box::new(self.plan(e)?)),
            SqlExpr::IsFalse(e) => Expr::IsFalse(Box::new(self.plan(e)?)),
            SqlExpr::IsNotTrue(e) => Expr::IsNotTrue(Box::new(self.plan(e)?)),
            SqlExpr::IsNotFalse(e) => Expr::IsNotFalse(Box::new(self.plan(e)?)),
            SqlExpr::IsDistinctFrom(a, b) => {
                let (l, r) = self.plan_comparison_pair(a, b)?;
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(l),
                    Operator::IsDistinctFrom,
                    Box::new(r),
                ))
            }
            SqlExpr::IsNotDistinctFrom(a, b) => {
                let (l, r) = self.plan_comparison_pair(a, b)?;
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(l),
                    Operator::IsNotDistinctFrom,
                    Box::new(r),
                ))
            }
            SqlExpr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let e = self.plan(expr)?;
                let et = self.type_of(&e)?;
                let lo = self.plan(low)?;
                let hi = self.plan(high)?;
                let lo = self.convert_literal_for(lo, &et, &e)?;
                let hi = self.convert_literal_for(hi, &et, &e)?;
                Expr::IsTrue(Box::new(Expr::Between(Between::new(
                    Box::new(e),
                    *negated,
                    Box::new(lo),
                    Box::new(hi),
                ))))
            }
            SqlExpr::InList {
                expr,
                list,
                negated,
            } => {
                let e = self.plan(expr)?;
                let et = self.type_of(&e)?;
                let mut items = Vec::new();
                for item in list {
                    let p = self.plan(item)?;
                    items.push(self.convert_literal_for(p, &et, &e)?);
                }
                Expr::InList(InList::new(Box::new(e), items, *negated))
            }
            SqlExpr::Like {
                negated,
                expr,
                pattern,
                escape_char,
                any: false,
            } => {
                let escape = match escape_char {
                    Some(v) => match &v.value {
                        Value::SingleQuotedString(s) if s.chars().count() == 1 => s.chars().next(),
                        other => {
                            return Err(SqlError::semantic(format!(
                                "ESCAPE must be a single character, got {other}"
                            )));
                        }
                    },
                    None => None,
                };
                let value = self.plan(expr)?;
                let pattern = self.plan(pattern)?;
                match escape {
                    Some(c) if c != '\\' => {
                        let m = udf_call(
                            riffle_udfs::scalar::conditional::like_escape_udf(),
                            vec![value, pattern, lit(c.to_string())],
                        );
                        if *negated { Expr::Not(Box::new(m)) } else { m }
                    }
                    _ => Expr::Like(Like::new(
                        *negated,
                        Box::new(value),
                        Box::new(pattern),
                        escape,
                        false,
                    )),
                }
            }
            SqlExpr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let operand = operand.as_ref().map(|o| self.plan(o)).transpose()?;
                let mut when_then = Vec::new();
                for c in conditions {
                    when_then.push((
                        Box::new(self.plan(&c.condition)?),
                        Box::new(self.plan(&c.result)?),
                    ));
                }
                let else_expr = else_result.as_ref().map(|e| self.plan(e)).transpose()?;
                Expr::Case(Case::new(
                    operand.map(Box::new),
                    when_then,
                    else_expr.map(Box::new),
                ))
            }
            SqlExpr::Cast {
                expr, data_type, ..
            } => {
                let target = match data_type {
                    sql::DataType::Custom(name, args) if name.to_string() == RIFFLE_TYPE => {
                        SqlType::parse(args.first().map(String::as_str).unwrap_or(""))?.to_arrow()
                    }
                    other => {
                        return Err(SqlError::Unsupported(format!("cast to {other}")));
                    }
                };
                let inner = self.plan(expr)?;
                self.cast(inner, target)?
            }
            SqlExpr::Array(arr) => {
                let mut items = Vec::new();
                for el in &arr.elem {
                    items.push(self.plan(el)?);
                }
                let items = self.unify(items)?;
                datafusion::functions_nested::make_array::make_array(items)
            }
            SqlExpr::Function(f) => self.plan_function(f)?,
            SqlExpr::CompoundFieldAccess { root, access_chain } => {
                // A leading `a.b` path may be `source.column`: resolve it as a compound name.
                let mut path: Vec<sql::Ident> = match root.as_ref() {
                    SqlExpr::Identifier(id) => vec![id.clone()],
                    SqlExpr::CompoundIdentifier(ids) => ids.clone(),
                    _ => vec![],
                };
                let mut rest = access_chain.as_slice();
                if !path.is_empty() {
                    while let Some(AccessExpr::Dot(SqlExpr::Identifier(id))) = rest.first() {
                        path.push(id.clone());
                        rest = &rest[1..];
                    }
                }
                let mut base = if path.is_empty() {
                    self.plan(root)?
                } else if path.len() == 1 {
                    self.resolve_column(&SqlExpr::Identifier(path[0].clone()))?
                } else {
                    self.plan_compound(&path)?
                };
                for access in rest {
                    base = match access {
                        AccessExpr::Subscript(Subscript::Index { index }) => {
                            self.subscript(base, index)?
                        }
                        AccessExpr::Dot(SqlExpr::Identifier(id)) => {
                            self.field_access(base, &ident_name(id))?
                        }
                        other => return Err(SqlError::Unsupported(format!("access {other}"))),
                    };
                }
                base
            }
            SqlExpr::Tuple(_) => {
                return Err(SqlError::semantic(format!(
                    "unexpected list {e}: a single expression is needed"
                )));
            }
            other => return Err(SqlError::Unsupported(format!("expression {other}"))),
        })
    }

    fn plan_value(&self, v: &Value) -> Result<Expr> {
        Ok(match v {
            Value::Number(n, _) => lit(number_literal(n)?),
            Value::SingleQuotedString(s) => lit(s.clone()),
            Value::Boolean(b) => lit(*b),
            Value::Null => lit(ScalarValue::Null),
            other => return Err(SqlError::Unsupported(format!("literal {other}"))),
        })
    }

    /// A cast with ksqlDB's text forms for doubles and nested values.
    fn cast(&self, inner: Expr, target: DataType) -> Result<Expr> {
        let from = self.type_of(&inner)?;
        if is_string(&target) && !is_string(&from) && !matches!(from, DataType::Null) {
            return Ok(udf_call(
                riffle_udfs::scalar::cast::to_text_udf(),
                vec![inner],
            ));
        }
        if matches!(target, DataType::Boolean) && is_string(&from) {
            return Ok(udf_call(
                riffle_udfs::scalar::cast::to_boolean_udf(),
                vec![inner],
            ));
        }
        Ok(Expr::Cast(Cast::new(Box::new(inner), target)))
    }

    /// Brings expressions of compatible types to one type (array elements, map values).
    fn unify(&self, items: Vec<Expr>) -> Result<Vec<Expr>> {
        let types: Vec<DataType> = items
            .iter()
            .map(|i| self.type_of(i))
            .collect::<Result<_>>()?;
        let non_null: Vec<&DataType> = types
            .iter()
            .filter(|t| !matches!(t, DataType::Null))
            .collect();
        let Some(first) = non_null.first() else {
            return Ok(items);
        };
        // Prefer a non-string type when string literals are mixed with others (`ARRAY[1, '2']`).
        let target = non_null
            .iter()
            .filter(|t| !is_string(t))
            .try_fold(None::<DataType>, |acc, t| -> Result<Option<DataType>> {
                Ok(Some(match acc {
                    None => (*t).clone(),
                    Some(a) => wider(&a, t),
                }))
            })?
            .unwrap_or_else(|| (*first).clone());
        items
            .into_iter()
            .zip(types)
            .map(|(i, t)| {
                if t == target
                    || matches!(t, DataType::Null) && !matches!(target, DataType::Struct(_))
                {
                    Ok(i)
                } else if matches!(i, Expr::Literal(..)) || !is_string(&t) {
                    self.convert_for(i, &target)
                } else {
                    Ok(i)
                }
            })
            .collect()
    }

    fn convert_for(&self, e: Expr, target: &DataType) -> Result<Expr> {
        if let (Expr::Literal(v, _), _) = (&e, target)
            && is_string(&v.data_type())
        {
            return self.convert_literal_for(e, target, &lit(ScalarValue::Null));
        }
        match (self.type_of(&e)?, target) {
            (DataType::Struct(_), DataType::Struct(_)) => Ok(e),
            (DataType::Null, DataType::Struct(_)) => {
                Ok(Expr::Cast(Cast::new(Box::new(e), target.clone())))
            }
            _ => Ok(Expr::Cast(Cast::new(Box::new(e), target.clone()))),
        }
    }

    /// Converts a string literal compared with a non-string expression to that expression's type,
    /// as ksqlDB does (`ROWTIME > '2018-01-01'`, `flag IN ('true')`, `n IN ('4.000')`).
    fn convert_literal_for(&self, e: Expr, target: &DataType, other: &Expr) -> Result<Expr> {
        if is_string(target)
            && let Expr::Literal(v, _) = &e
            && !v.is_null()
            && !is_string(&v.data_type())
        {
            // `str_col IN (10, true)` compares with the literals' SQL text.
            let text = match v {
                ScalarValue::Float64(Some(f)) => riffle_udfs::value::java_double(*f),
                other => other.to_string(),
            };
            return Ok(lit(text));
        }
        let Expr::Literal(ScalarValue::Utf8(Some(s)), _) = &e else {
            return Ok(e);
        };
        if is_string(target) || matches!(target, DataType::Null) {
            return Ok(e);
        }
        let is_time_column = match other {
            Expr::Column(c) => ["ROWTIME", "WINDOWSTART", "WINDOWEND"].contains(&c.name.as_str()),
            _ => false,
        };
        if is_time_column || matches!(target, DataType::Timestamp(..)) {
            let ms = parse_partial_timestamp(s).ok_or_else(|| {
                SqlError::semantic(format!(
                    "'{s}' is not a timestamp (expected e.g. 2020-01-31T12:00:00)"
                ))
            })?;
            return Ok(match target {
                DataType::Timestamp(..) => lit(ScalarValue::TimestampMillisecond(Some(ms), None)),
                _ => lit(ms),
            });
        }
        if matches!(target, DataType::Boolean) {
            return Ok(lit(riffle_udfs::scalar::cast::parse_boolean(s)));
        }
        let v = ScalarValue::Utf8(Some(s.clone()));
        let converted = if matches!(target, DataType::Int32 | DataType::Int64) {
            // '4.000' compared with an integer compares numerically.
            match s.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 => ScalarValue::Int64(Some(f as i64)).cast_to(target),
                Ok(f) => Ok(ScalarValue::Float64(Some(f))),
                Err(_) => v.cast_to(target),
            }
        } else {
            v.cast_to(target)
        };
        converted.map(lit).map_err(|_| {
            SqlError::semantic(format!(
                "cannot compare '{s}' with a {}",
                display_arrow(target)
            ))
        })
    }

    fn plan_comparison_pair(&mut self, a: &SqlExpr, b: &SqlExpr) -> Result<(Expr, Expr)> {
        let l = self.plan(a)?;
        let r = self.plan(b)?;
        let lt = self.type_of(&l)?;
        let rt = self.type_of(&r)?;
        let r = self.convert_literal_for(r, &lt, &l)?;
        let l = self.convert_literal_for(l, &rt, &r)?;
        Ok((l, r))
    }

    /// `time ± INTERVAL '…' unit`: a TIMESTAMP stays a TIMESTAMP, a BIGINT (epoch milliseconds,
    /// as ksqlDB's ROWTIME) stays a BIGINT.
    fn shift_by_interval(
        &mut self,
        time: &SqlExpr,
        plus: bool,
        by: std::time::Duration,
    ) -> Result<Expr> {
        let base = self.plan(time)?;
        let op = if plus {
            Operator::Plus
        } else {
            Operator::Minus
        };
        let ms = lit(by.as_millis() as i64);
        match self.type_of(&base)? {
            DataType::Timestamp(unit, tz) => {
                let millis = Expr::Cast(Cast::new(
                    Box::new(Expr::Cast(Cast::new(
                        Box::new(base),
                        DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
                    ))),
                    DataType::Int64,
                ));
                let shifted = Expr::BinaryExpr(BinaryExpr::new(Box::new(millis), op, Box::new(ms)));
                Ok(Expr::Cast(Cast::new(
                    Box::new(Expr::Cast(Cast::new(
                        Box::new(shifted),
                        DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
                    ))),
                    DataType::Timestamp(unit, tz),
                )))
            }
            DataType::Int64 | DataType::Int32 => Ok(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(base),
                op,
                Box::new(ms),
            ))),
            other => Err(SqlError::semantic(format!(
                "an INTERVAL can be added to or subtracted from a TIMESTAMP or BIGINT time, not \
                 {other} ({time})"
            ))),
        }
    }

    fn plan_binary(
        &mut self,
        left: &SqlExpr,
        op: &BinaryOperator,
        right: &SqlExpr,
    ) -> Result<Expr> {
        if *op == BinaryOperator::Arrow {
            let base = self.plan(left)?;
            return match right {
                SqlExpr::Identifier(id) => self.field_access(base, &ident_name(id)),
                SqlExpr::CompoundFieldAccess { root, access_chain } => {
                    let SqlExpr::Identifier(id) = root.as_ref() else {
                        return Err(SqlError::semantic(format!(
                            "expected a field name after ->, found {root}"
                        )));
                    };
                    let mut e = self.field_access(base, &ident_name(id))?;
                    for access in access_chain {
                        e = match access {
                            AccessExpr::Subscript(Subscript::Index { index }) => {
                                self.subscript(e, index)?
                            }
                            AccessExpr::Dot(SqlExpr::Identifier(id)) => {
                                self.field_access(e, &ident_name(id))?
                            }
                            other => return Err(SqlError::Unsupported(format!("access {other}"))),
                        };
                    }
                    Ok(e)
                }
                other => Err(SqlError::semantic(format!(
                    "expected a field name after ->, found {other}"
                ))),
            };
        }
        if matches!(op, BinaryOperator::Plus | BinaryOperator::Minus)
            && let Some(d) = crate::parser::interval_duration(right)
        {
            return self.shift_by_interval(left, *op == BinaryOperator::Plus, d);
        }
        let operator = match op {
            BinaryOperator::Plus => Operator::Plus,
            BinaryOperator::Minus => Operator::Minus,
            BinaryOperator::Multiply => Operator::Multiply,
            BinaryOperator::Divide => Operator::Divide,
            BinaryOperator::Modulo => Operator::Modulo,
            BinaryOperator::Eq => Operator::Eq,
            BinaryOperator::NotEq => Operator::NotEq,
            BinaryOperator::Lt => Operator::Lt,
            BinaryOperator::LtEq => Operator::LtEq,
            BinaryOperator::Gt => Operator::Gt,
            BinaryOperator::GtEq => Operator::GtEq,
            BinaryOperator::And => Operator::And,
            BinaryOperator::Or => Operator::Or,
            BinaryOperator::StringConcat => Operator::StringConcat,
            other => return Err(SqlError::Unsupported(format!("operator {other}"))),
        };
        let (l, r) = if matches!(
            operator,
            Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
        ) {
            self.plan_comparison_pair(left, right)?
        } else {
            (self.plan(left)?, self.plan(right)?)
        };
        if matches!(
            operator,
            Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq
        ) {
            // ksqlDB comparisons with NULL are false, not NULL.
            return Ok(Expr::IsTrue(Box::new(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(l),
                operator,
                Box::new(r),
            )))));
        }
        if operator == Operator::Plus {
            let lt = self.type_of(&l)?;
            let rt = self.type_of(&r)?;
            if is_string(&lt) || is_string(&rt) {
                let concat = self
                    .registry
                    .scalar("CONCAT")
                    .ok_or_else(|| SqlError::Unknown("CONCAT is not registered".into()))?;
                return Ok(udf_call(concat, vec![l, r]));
            }
        }
        Ok(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(l),
            operator,
            Box::new(r),
        )))
    }

    fn plan_function(&mut self, f: &sql::Function) -> Result<Expr> {
        let name = f.name.to_string();
        let upper = name.to_uppercase();
        if self.registry.is_aggregate(&upper) {
            return self.plan_aggregate_call(f);
        }
        if upper == STRUCT_CONSTRUCTOR {
            return self.plan_struct(f);
        }
        let raw = function_args(f)?;
        if upper == MAP_CONSTRUCTOR {
            let mut keys = Vec::new();
            let mut values = Vec::new();
            for (i, a) in raw.iter().enumerate() {
                let p = self.plan(a)?;
                if i % 2 == 0 {
                    keys.push(p)
                } else {
                    values.push(p)
                }
            }
            if keys.is_empty() {
                return Err(SqlError::semantic(
                    "MAP() needs at least one key := value entry",
                ));
            }
            let keys = keys
                .into_iter()
                .map(|k| {
                    let t = self.type_of(&k)?;
                    if is_string(&t) {
                        Ok(k)
                    } else {
                        self.cast(k, DataType::Utf8)
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            let values = self.unify(values)?;
            return Ok(datafusion::functions_nested::map::map(keys, values));
        }
        let udf = self.registry.scalar(&upper).ok_or_else(|| {
            SqlError::Unknown(format!("unknown function {upper}: see SHOW FUNCTIONS"))
        })?;
        let mut args = Vec::new();
        for a in &raw {
            args.push(self.plan(a)?);
        }
        if let Some(simple) = udf.inner().downcast_ref::<riffle_udfs::udf::SimpleUdf>() {
            let (min, max) = simple.arity();
            if args.len() < min || args.len() > max {
                return Err(SqlError::semantic(format!(
                    "{upper} takes {} arguments, got {}",
                    if min == max {
                        min.to_string()
                    } else {
                        format!("{min} to {max}")
                    },
                    args.len()
                )));
            }
        }
        Ok(udf_call(udf, args))
    }

    fn plan_struct(&mut self, f: &sql::Function) -> Result<Expr> {
        let FunctionArguments::List(list) = &f.args else {
            return Err(SqlError::semantic("STRUCT(name := value, …) expected"));
        };
        if list.args.is_empty() {
            let empty = datafusion::arrow::array::StructArray::new_empty_fields(1, None);
            return Ok(lit(ScalarValue::Struct(Arc::new(empty))));
        }
        let mut args = Vec::new();
        for a in &list.args {
            let FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } = a
            else {
                return Err(SqlError::semantic(
                    "STRUCT fields are written name := value",
                ));
            };
            args.push(lit(ident_name(name)));
            let mut v = self.plan(e)?;
            if matches!(self.type_of(&v)?, DataType::Null) {
                v = Expr::Cast(Cast::new(Box::new(v), DataType::Utf8));
            }
            args.push(v);
        }
        Ok(udf_call(datafusion::functions::core::named_struct(), args))
    }
}

pub use riffle_udfs::value::wider;

fn is_column_ref(e: &SqlExpr) -> bool {
    matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_))
}

/// The arguments of a function call as expressions (`COUNT(*)` has none).
pub fn function_args(f: &sql::Function) -> Result<Vec<SqlExpr>> {
    match &f.args {
        FunctionArguments::None => Ok(vec![]),
        FunctionArguments::Subquery(_) => Err(SqlError::Unsupported("subqueries".into())),
        FunctionArguments::List(list) => {
            if list.duplicate_treatment.is_some() {
                return Err(SqlError::Unsupported(format!("DISTINCT inside {}", f.name)));
            }
            let mut out = Vec::new();
            for a in &list.args {
                match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => out.push(e.clone()),
                    FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => {}
                    other => {
                        return Err(SqlError::semantic(format!(
                            "unexpected argument {other} in {}",
                            f.name
                        )));
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Applies DataFusion's type coercion to an expression over a schema.
pub fn coerce(e: Expr, schema: &DFSchema) -> Result<Expr> {
    let mut rewriter = TypeCoercionRewriter::new(schema);
    Ok(e.rewrite(&mut rewriter)?.data)
}

/// Coerces and compiles an expression to a physical expression over `scope`.
pub fn compile(logical: Expr, scope: &Scope) -> Result<PlannedExpr> {
    let schema = scope.df_schema()?;
    let expr = coerce(logical, &schema)?;
    let mut data_type = expr.get_type(&schema)?;
    // riffle's temporal types are millisecond based; normalize what DataFusion widened.
    let expr = match &data_type {
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Millisecond || tz.is_some() => {
            data_type = DataType::Timestamp(TimeUnit::Millisecond, None);
            Expr::Cast(Cast::new(Box::new(expr), data_type.clone()))
        }
        DataType::Date64 => {
            data_type = DataType::Date32;
            Expr::Cast(Cast::new(Box::new(expr), data_type.clone()))
        }
        DataType::Time64(_) | DataType::Time32(TimeUnit::Second) => {
            data_type = DataType::Time32(TimeUnit::Millisecond);
            Expr::Cast(Cast::new(Box::new(expr), data_type.clone()))
        }
        _ => expr,
    };
    let physical = datafusion::physical_expr::create_physical_expr(
        &expr,
        &schema,
        &datafusion::execution::context::ExecutionProps::new(),
        &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default(),
    )?;
    let _ = TryCast::new;
    Ok(PlannedExpr {
        expr,
        physical,
        data_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_typed_like_ksql() {
        assert_eq!(
            number_literal("2.345").unwrap(),
            ScalarValue::Decimal128(Some(2345), 4, 3)
        );
        assert_eq!(
            number_literal("0.08").unwrap(),
            ScalarValue::Decimal128(Some(8), 2, 2)
        );
        assert_eq!(
            number_literal("1E0").unwrap(),
            ScalarValue::Float64(Some(1.0))
        );
        assert_eq!(
            number_literal("000002147483647").unwrap(),
            ScalarValue::Int32(Some(2147483647))
        );
        assert_eq!(
            number_literal("123456789000").unwrap(),
            ScalarValue::Int64(Some(123456789000))
        );
    }

    #[test]
    fn partial_timestamps_parse() {
        assert_eq!(
            parse_partial_timestamp("2018-01-01T00:00:00.001"),
            Some(1514764800001)
        );
        assert_eq!(parse_partial_timestamp("2018"), Some(1514764800000));
        assert_eq!(
            parse_partial_timestamp("2019-01-01T00:00:00+0445"),
            Some(1546300800000 - 17100 * 1000)
        );
    }
}
