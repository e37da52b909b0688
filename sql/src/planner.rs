//! Query planning: a parsed `SELECT` becomes a [`QueryPlan`] — source, filter, re-keying,
//! aggregation and projection nodes with ksqlDB's key rules (the key columns of the result are the
//! source key, the `PARTITION BY` or the `GROUP BY` expressions, and must be selected).

use std::collections::HashSet;
use std::sync::Arc;

use crate::expr::column;
use crate::types::display_arrow;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::logical_expr::Expr;
use datafusion::sql::sqlparser::ast::{AccessExpr, BinaryOperator, Expr as SqlExpr};
use riffle_udfs::FunctionRegistry;

use crate::ast::{Emit, Query, SelectItem, SourceKind, WindowKind};
use crate::catalog::{Catalog, Column, SourceDef, WindowInfo, WindowType};
use crate::error::{Result, SqlError};
use crate::expr::{
    AggMode, ColumnRole, ExprPlanner, PlannedExpr, Scope, ScopeColumn, compile, contains_aggregate,
};
use crate::plan::*;

/// Plans queries against a catalog.
pub struct Planner<'a> {
    catalog: &'a Catalog,
    registry: &'a FunctionRegistry,
    transient: bool,
}

/// One key slot of a relation: any of `fields` may be selected as the key (a join key can be
/// selected through either side's column); `fields[0]` is the canonical physical column.
#[derive(Debug, Clone)]
struct KeyGroup {
    /// Physical field holding the key.
    canonical: String,
    /// Fields that may be selected as the key, in priority order.
    candidates: Vec<String>,
    /// Expressions over the relation known to equal the key (join keys propagate through
    /// n-way joins: `a.x = b.y` then `b.y = c.z` keeps `a.x` selectable).
    equivalents: Vec<Expr>,
    /// Name for messages.
    name: String,
}

impl KeyGroup {
    fn column(field: &str, name: &str) -> Self {
        KeyGroup {
            canonical: field.to_string(),
            candidates: vec![field.to_string()],
            equivalents: vec![column(field)],
            name: name.to_string(),
        }
    }
}

/// The join key of one side: its one key expression, or a struct of several (a join on more
/// than one equality), compared as a whole.
fn composite_key(mut keys: Vec<PlannedExpr>, scope: &Scope) -> Result<PlannedExpr> {
    if keys.len() == 1 {
        return Ok(keys.remove(0));
    }
    let mut args = Vec::with_capacity(keys.len() * 2);
    for (i, k) in keys.into_iter().enumerate() {
        args.push(datafusion::logical_expr::lit(format!("K{i}")));
        args.push(k.expr);
    }
    compile(
        Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
            datafusion::functions::core::named_struct(),
            args,
        )),
        scope,
    )
}

/// Renames column references (a side's fields as they appear after the join).
fn remap(e: &Expr, map: &std::collections::HashMap<String, String>) -> Expr {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    e.clone()
        .transform(|n| {
            Ok(match &n {
                Expr::Column(c) => match map.get(&c.name) {
                    Some(f) => Transformed::yes(column(f)),
                    None => Transformed::no(n),
                },
                _ => Transformed::no(n),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone())
}

/// A planned FROM clause: its node, the columns it exposes and its key.
struct Rel {
    node: PlanNode,
    scope: Scope,
    kind: SourceKind,
    keys: Vec<KeyGroup>,
    window: Option<WindowInfo>,
    joined: bool,
    /// The column holding event time, when not ROWTIME.
    time_attr: Option<String>,
    /// A view or derived table (Flink SQL constructs): its joins follow Flink's rules.
    view: bool,
}

/// The time bound of a regular (unbounded) join on each side: a thousand years.
const UNBOUNDED_MS: i64 = 1000 * 365 * 86_400_000;

/// Physical names of the system columns every layout carries.
const SYSTEM_FIELDS: &[&str] = &[ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND];

/// A select item after wildcard expansion.
struct Item {
    expr: SqlExpr,
    name: Option<String>,
}

/// Hands out `KSQL_COL_n` names, skipping names the sources already use.
struct NameGenerator {
    next: usize,
    taken: HashSet<String>,
    /// Column names present in more than one joined relation.
    ambiguous: HashSet<String>,
}

impl NameGenerator {
    fn next(&mut self) -> String {
        loop {
            let n = format!("KSQL_COL_{}", self.next);
            self.next += 1;
            if !self.taken.contains(&n) {
                return n;
            }
        }
    }
}

/// The base of a `base->*` select item.
fn struct_star_base(e: &SqlExpr) -> Option<&SqlExpr> {
    if let SqlExpr::Function(f) = e
        && f.name.to_string() == crate::dialect::STRUCT_STAR
        && let datafusion::sql::sqlparser::ast::FunctionArguments::List(l) = &f.args
        && let Some(datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
            datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(base),
        )) = l.args.first()
    {
        return Some(base);
    }
    None
}

/// The name ksqlDB derives for an unaliased select item, if any.
fn derived_name(e: &SqlExpr) -> Option<String> {
    match e {
        SqlExpr::Identifier(id) => Some(id.value.clone()),
        SqlExpr::CompoundIdentifier(ids) => ids.last().map(|i| i.value.clone()),
        SqlExpr::BinaryOp {
            op: BinaryOperator::Arrow,
            right,
            ..
        } => match right.as_ref() {
            SqlExpr::Identifier(id) => Some(id.value.clone()),
            SqlExpr::CompoundFieldAccess { access_chain, .. } => match access_chain.last() {
                Some(AccessExpr::Dot(SqlExpr::Identifier(id))) => Some(id.value.clone()),
                _ => None,
            },
            _ => None,
        },
        SqlExpr::CompoundFieldAccess { access_chain, .. } => match access_chain.last() {
            Some(AccessExpr::Dot(SqlExpr::Identifier(id))) => Some(id.value.clone()),
            _ => None,
        },
        SqlExpr::Nested(inner) => derived_name(inner),
        _ => None,
    }
}

fn is_dereference(e: &SqlExpr) -> bool {
    match e {
        SqlExpr::BinaryOp {
            op: BinaryOperator::Arrow,
            ..
        } => true,
        SqlExpr::CompoundFieldAccess { .. } => true,
        SqlExpr::Nested(inner) => is_dereference(inner),
        _ => false,
    }
}

fn field_of(name: &str, dt: &DataType) -> Field {
    Field::new(name, dt.clone(), true)
}

impl<'a> Planner<'a> {
    /// A planner over a catalog and function registry.
    pub fn new(catalog: &'a Catalog, registry: &'a FunctionRegistry) -> Self {
        Planner {
            catalog,
            registry,
            transient: false,
        }
    }

    /// Plans for a client (push or pull query) rather than a sink: the result has no key
    /// columns, every selected column is a value in select-list order, and the key need not be
    /// selected (as in ksqlDB).
    pub fn for_client(mut self) -> Self {
        self.transient = true;
        self
    }

    /// The scope of a relation read under `alias`.
    pub fn source_scope(def: &SourceDef, alias: &str) -> Scope {
        let mut columns = Vec::new();
        for c in def.key_columns().chain(def.value_columns()) {
            columns.push(ScopeColumn {
                qualifier: Some(alias.to_string()),
                name: c.name.clone(),
                field: c.name.clone(),
                data_type: c.data_type.clone(),
                role: if c.key {
                    ColumnRole::Key
                } else {
                    ColumnRole::Value
                },
            });
        }
        if def.window.is_some() {
            for n in [WINDOWSTART, WINDOWEND] {
                columns.push(system(alias, n, DataType::Int64));
            }
        }
        columns.push(system(alias, ROWTIME, DataType::Int64));
        columns.push(system(alias, ROWPARTITION, DataType::Int32));
        columns.push(system(alias, ROWOFFSET, DataType::Int64));
        Scope { columns }
    }

    /// The layout of a relation's batches.
    pub fn source_schema(def: &SourceDef) -> StreamSchema {
        let keys = def
            .key_columns()
            .map(|c| field_of(&c.name, &c.data_type))
            .collect();
        let values = def
            .value_columns()
            .map(|c| field_of(&c.name, &c.data_type))
            .collect();
        StreamSchema::new(keys, values, def.window.is_some(), def.kind)
    }

    /// Plans a query.
    pub fn plan_query(&self, q: &Query) -> Result<QueryPlan> {
        if let Some((catalog, rewritten)) = self.derived_tables(q)? {
            return Planner {
                catalog: &catalog,
                registry: self.registry,
                transient: self.transient,
            }
            .plan_query(&rewritten);
        }
        let desugared = crate::window_tvf::desugar(q, self.catalog)?;
        let q = &desugared;
        for j in &q.joins {
            if j.relation.tvf.is_some() || j.relation.match_recognize.is_some() {
                return Err(SqlError::semantic(format!(
                    "{} in a JOIN: window TVFs and MATCH_RECOGNIZE apply to the first relation of FROM only",
                    j.relation.name
                )));
            }
        }
        let mut taken: HashSet<String> = HashSet::new();
        let mut ambiguous: HashSet<String> = HashSet::new();
        for r in std::iter::once(&q.from).chain(q.joins.iter().map(|j| &j.relation)) {
            let def = self.catalog.require(&r.name)?;
            for c in &def.columns {
                if !taken.insert(c.name.clone()) {
                    ambiguous.insert(c.name.clone());
                }
            }
        }
        ambiguous.insert(ROWTIME.to_string());
        taken.extend(
            [ROWTIME, WINDOWSTART, WINDOWEND]
                .iter()
                .map(|s| s.to_string()),
        );
        let mut names = NameGenerator {
            next: 0,
            taken,
            ambiguous,
        };

        let is_aggregate = !q.group_by.is_empty()
            || q.projection.iter().any(|i| match i {
                SelectItem::Expr { expr, .. } => contains_aggregate(expr, self.registry),
                _ => false,
            })
            || q.having
                .as_ref()
                .is_some_and(|h| contains_aggregate(h, self.registry));
        let rel = self.plan_from(q, is_aggregate)?;
        let Rel {
            mut node,
            scope,
            kind,
            keys,
            window,
            joined,
            ..
        } = rel;
        let alias = q.from.qualifier().to_string();
        if let Some(w) = &q.selection {
            if contains_aggregate(w, self.registry) {
                return Err(SqlError::semantic(
                    "aggregate functions are not allowed in WHERE; use HAVING",
                ));
            }
            let mut p = ExprPlanner::new(scope.clone(), self.registry);
            let predicate = p.plan_physical(w)?;
            if predicate.data_type != DataType::Boolean && predicate.data_type != DataType::Null {
                return Err(SqlError::semantic(format!(
                    "WHERE must be a boolean expression, got {w}"
                )));
            }
            node = PlanNode::Filter(FilterNode {
                input: Box::new(node),
                predicate,
                display: w.to_string(),
            });
        }
        if q.window.is_some() && !is_aggregate {
            return Err(SqlError::semantic(
                "a WINDOW clause needs a GROUP BY aggregation",
            ));
        }
        if q.emit == Some(Emit::Final) && q.window.is_none() {
            return Err(SqlError::semantic(
                "EMIT FINAL is only supported for windowed aggregations",
            ));
        }
        let items = self.expand(&q.projection, &scope, is_aggregate)?;
        if is_aggregate {
            return self.plan_aggregate(q, node, scope, items, &mut names, kind, &alias, joined);
        }
        let (node, scope, keys) = if q.partition_by.is_empty() {
            (node, scope, keys)
        } else {
            self.plan_partition_by(q, node, scope)?
        };
        let mut planner = ExprPlanner::new(scope.clone(), self.registry);
        let mut planned = Vec::new();
        for item in &items {
            let p = planner.plan_physical(&item.expr)?;
            planned.push(p);
        }
        self.finish_projection(
            node, items, planned, &keys, &mut names, kind, window, q, joined,
        )
    }

    /// Plans the FROM clause: one relation, or a left-deep chain of joins.
    fn plan_from(&self, q: &Query, is_aggregate: bool) -> Result<Rel> {
        let def = self.catalog.require(&q.from.name)?;
        let alias = q.from.qualifier().to_string();
        if let Some(mr) = &q.from.match_recognize {
            let base = self.relation(&def, &def.name, false)?;
            let m = crate::match_recognize::plan(
                &def,
                base.node,
                base.scope,
                &alias,
                mr,
                self.registry,
            )?;
            let mut rel = Rel {
                node: m.node,
                scope: m.scope,
                kind: SourceKind::Stream,
                keys: m.keys.iter().map(|k| KeyGroup::column(k, k)).collect(),
                window: None,
                joined: false,
                time_attr: None,
                view: false,
            };
            for (i, j) in q.joins.iter().enumerate() {
                rel = self.plan_join(rel, j, i, &alias)?;
            }
            return Ok(rel);
        }
        let materialize = def.kind == SourceKind::Table && is_aggregate && q.joins.is_empty();
        let mut rel = self.relation(&def, &alias, materialize)?;
        for (i, j) in q.joins.iter().enumerate() {
            rel = self.plan_join(rel, j, i, &alias)?;
        }
        Ok(rel)
    }

    /// Shapes a client-style plan (values only, select order) into the columns of a connector
    /// sink, as Flink's `INSERT INTO`: columns match by position, are renamed to the sink's
    /// names and cast to its types.
    pub fn conform_to(plan: QueryPlan, target: &SourceDef) -> Result<QueryPlan> {
        if plan.columns.len() != target.columns.len() {
            return Err(SqlError::semantic(format!(
                "INSERT INTO {}: the query produces {} columns but the sink has {}",
                target.name,
                plan.columns.len(),
                target.columns.len()
            )));
        }
        let same = plan
            .columns
            .iter()
            .zip(&target.columns)
            .all(|(a, b)| a.name == b.name && a.data_type == b.data_type);
        if same {
            return Ok(plan);
        }
        let in_schema = plan.root.schema().clone();
        let mut scope = Scope::default();
        for f in in_schema.arrow.fields() {
            scope.columns.push(ScopeColumn {
                qualifier: None,
                name: f.name().clone(),
                field: f.name().clone(),
                data_type: f.data_type().clone(),
                role: ColumnRole::Value,
            });
        }
        let mut exprs = Vec::new();
        let mut fields = Vec::new();
        let mut display = Vec::new();
        for (field, target_col) in in_schema.value_fields().iter().zip(&target.columns) {
            let source = column(field.name());
            let e = if field.data_type() == &target_col.data_type {
                source
            } else if datafusion::arrow::compute::can_cast_types(
                field.data_type(),
                &target_col.data_type,
            ) {
                Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(source),
                    target_col.data_type.clone(),
                ))
            } else {
                return Err(SqlError::semantic(format!(
                    "INSERT INTO {}: column {} is {} and cannot be written to {} {}",
                    target.name,
                    field.name(),
                    display_arrow(field.data_type()),
                    target_col.name,
                    display_arrow(&target_col.data_type)
                )));
            };
            display.push(format!("{e} AS {}", target_col.name));
            exprs.push(compile(e, &scope)?);
            fields.push(field_of(&target_col.name, &target_col.data_type));
        }
        let schema = StreamSchema::new(Vec::new(), fields, in_schema.windowed, in_schema.kind);
        let columns = target
            .columns
            .iter()
            .map(|c| Column {
                key: false,
                ..c.clone()
            })
            .collect();
        Ok(QueryPlan {
            root: PlanNode::Project(ProjectNode {
                input: Box::new(plan.root),
                exprs,
                schema,
                drop_null_keys: false,
                display,
            }),
            columns,
            ..plan
        })
    }

    /// Derived tables (`FROM (SELECT …) AS t`, also in joins) become views over their queries,
    /// under names of their own in a copy of the catalog, and the query reads those views.
    /// `None` when the query has no derived table.
    fn derived_tables(&self, q: &Query) -> Result<Option<(Catalog, Query)>> {
        let mut relations = std::iter::once(&q.from).chain(q.joins.iter().map(|j| &j.relation));
        if !relations.any(|r| r.subquery.is_some()) {
            return Ok(None);
        }
        let mut catalog = self.catalog.clone();
        let mut out = q.clone();
        let relations =
            std::iter::once(&mut out.from).chain(out.joins.iter_mut().map(|j| &mut j.relation));
        for (i, r) in relations.enumerate() {
            let Some(sub) = r.subquery.take() else {
                continue;
            };
            // Planned as views are wherever they are read: as a transient query, whose result
            // need not select the source's key.
            let plan = Planner {
                catalog: self.catalog,
                registry: self.registry,
                transient: true,
            }
            .plan_query(&sub)?;
            let alias = r.qualifier().to_string();
            let name = format!("__DERIVED_{i}_{alias}");
            let timestamp = crate::catalog::view_time_attribute(self.catalog, &sub);
            let sql = format!("derived table {alias}");
            catalog.insert(crate::catalog::view_def(
                &name,
                *sub,
                plan.columns,
                timestamp,
                &sql,
            ));
            r.alias = Some(alias);
            r.name = name;
        }
        Ok(Some((catalog, out)))
    }

    /// A relation read under `alias`: a source, or a view planned in place.
    fn relation(&self, def: &Arc<SourceDef>, alias: &str, materialize: bool) -> Result<Rel> {
        if let Some(view) = &def.view {
            let plan = Planner {
                catalog: self.catalog,
                registry: self.registry,
                transient: true,
            }
            .plan_query(view)?;
            let schema = plan.root.schema().clone();
            let mut columns: Vec<ScopeColumn> = schema
                .value_fields()
                .iter()
                .map(|f| ScopeColumn {
                    qualifier: Some(alias.to_string()),
                    name: f.name().clone(),
                    field: f.name().clone(),
                    data_type: f.data_type().clone(),
                    role: ColumnRole::Value,
                })
                .collect();
            if schema.windowed {
                for n in [WINDOWSTART, WINDOWEND] {
                    columns.push(system(alias, n, DataType::Int64));
                }
            }
            columns.push(system(alias, ROWTIME, DataType::Int64));
            columns.push(system(alias, ROWPARTITION, DataType::Int32));
            columns.push(system(alias, ROWOFFSET, DataType::Int64));
            // A windowed aggregation emitting final results adds each window's rows once and
            // never changes them: read as a view, it is an append-only stream (Flink's window
            // TVF aggregations are insert-only).
            let kind = if plan.window.is_some() && plan.emit == Emit::Final {
                SourceKind::Stream
            } else {
                plan.kind
            };
            return Ok(Rel {
                node: plan.root,
                scope: Scope { columns },
                kind,
                keys: Vec::new(),
                window: plan.window,
                joined: false,
                time_attr: def.timestamp.clone(),
                view: true,
            });
        }
        Ok(Rel {
            node: PlanNode::Source(SourceNode {
                def: def.clone(),
                alias: alias.to_string(),
                schema: Self::source_schema(def),
                materialize,
            }),
            scope: Self::source_scope(def, alias),
            kind: def.kind,
            keys: def
                .key_columns()
                .map(|c| KeyGroup::column(&c.name, &c.name))
                .collect(),
            window: def.window,
            joined: false,
            time_attr: def.timestamp.clone(),
            view: false,
        })
    }

    /// The columns a relation carries into a join: every non-system column (prefixed with the
    /// source alias when it comes straight from a source), plus the source's event time as
    /// `<alias>_ROWTIME`. Returns (scope column in the join, expression over the input).
    fn join_side_columns(rel: &Rel, alias: &str) -> Vec<(ScopeColumn, Expr)> {
        let mut out = Vec::new();
        for c in &rel.scope.columns {
            if SYSTEM_FIELDS.contains(&c.field.as_str()) || c.field.starts_with("__JK") {
                continue;
            }
            let field = if rel.joined {
                c.field.clone()
            } else {
                format!("{alias}_{}", c.name)
            };
            let role = if c.role == ColumnRole::System {
                ColumnRole::System
            } else {
                ColumnRole::Value
            };
            out.push((
                ScopeColumn {
                    qualifier: c.qualifier.clone(),
                    name: c.name.clone(),
                    field,
                    data_type: c.data_type.clone(),
                    role,
                },
                column(&c.field),
            ));
        }
        if !rel.joined {
            out.push((
                ScopeColumn {
                    qualifier: Some(alias.to_string()),
                    name: ROWTIME.to_string(),
                    field: format!("{alias}_{ROWTIME}"),
                    data_type: DataType::Int64,
                    role: ColumnRole::System,
                },
                column(ROWTIME),
            ));
        }
        out
    }

    /// A projection of a join input: the given keys, then the side's columns.
    fn join_input(
        &self,
        rel: &Rel,
        keys: Vec<(String, PlannedExpr)>,
        values: &[(ScopeColumn, Expr)],
        extra: Option<(String, PlannedExpr)>,
    ) -> Result<PlanNode> {
        let mut exprs = Vec::new();
        let mut key_fields = Vec::new();
        let mut value_fields = Vec::new();
        let mut display = Vec::new();
        for (name, p) in keys {
            key_fields.push(field_of(&name, &p.data_type));
            display.push(format!("{} AS {name} KEY", p.expr));
            exprs.push(p);
        }
        for (c, e) in values {
            let p = compile(e.clone(), &rel.scope)?;
            value_fields.push(field_of(&c.field, &c.data_type));
            exprs.push(p);
        }
        if let Some((name, p)) = extra {
            value_fields.push(field_of(&name, &p.data_type));
            display.push(format!("{} AS {name}", p.expr));
            exprs.push(p);
        }
        let in_schema = rel.node.schema().clone();
        let schema =
            StreamSchema::new(key_fields, value_fields, in_schema.windowed, in_schema.kind);
        let project = PlanNode::Project(ProjectNode {
            input: Box::new(rel.node.clone()),
            exprs,
            schema,
            drop_null_keys: true,
            display,
        });
        Ok(PlanNode::Exchange(ExchangeNode {
            input: Box::new(project),
        }))
    }

    /// Plans one `JOIN` onto the relation built so far.
    fn plan_join(
        &self,
        left: Rel,
        j: &crate::ast::Join,
        index: usize,
        first_alias: &str,
    ) -> Result<Rel> {
        use crate::ast::JoinKind;
        let rdef = self.catalog.require(&j.relation.name)?;
        let ralias = j.relation.qualifier().to_string();
        let mut right = self.relation(&rdef, &ralias, false)?;
        right.window = None;
        let left_alias = if left.joined {
            String::new()
        } else {
            first_alias.to_string()
        };
        let interval = if left.kind == SourceKind::Stream
            && right.kind == SourceKind::Stream
            && j.within.is_none()
        {
            let side_of = |e: &SqlExpr| -> Option<crate::interval_join::Side> {
                use crate::interval_join::Side;
                if Self::is_time_attribute(&right, e) {
                    Some(Side::Right)
                } else if Self::is_time_attribute(&left, e) {
                    Some(Side::Left)
                } else {
                    None
                }
            };
            crate::interval_join::split(&j.on, &side_of)?
        } else {
            None
        };
        let on = interval.as_ref().map(|i| &i.equality).unwrap_or(&j.on);
        let plans = |e: &SqlExpr, scope: &Scope| {
            ExprPlanner::new(scope.clone(), self.registry)
                .plan(e)
                .is_ok()
        };
        // Equalities between the two sides make the join key; anything else is a condition
        // on the joined row (regular inner stream joins only).
        let mut parts = Vec::new();
        crate::interval_join::conjuncts(on, &mut parts);
        let mut pairs: Vec<(SqlExpr, SqlExpr)> = Vec::new();
        let mut residual: Vec<SqlExpr> = Vec::new();
        // An equality whose two expressions plan on the two sides, in either order.
        let key_pair = |part: &SqlExpr| -> Option<(SqlExpr, SqlExpr)> {
            let SqlExpr::BinaryOp {
                left: a,
                op: BinaryOperator::Eq,
                right: b,
            } = part
            else {
                return None;
            };
            [(a, b), (b, a)]
                .into_iter()
                .find(|(l, r)| plans(l, &left.scope) && plans(r, &right.scope))
                .map(|(l, r)| (l.as_ref().clone(), r.as_ref().clone()))
        };
        for part in parts {
            match key_pair(&part) {
                Some(pair) => pairs.push(pair),
                None => residual.push(part),
            }
        }
        let both_streams = left.kind == SourceKind::Stream && right.kind == SourceKind::Stream;
        if pairs.is_empty() || (!both_streams && (pairs.len() > 1 || !residual.is_empty())) {
            return Err(SqlError::semantic(format!(
                "join criteria must be an equality between the two sides, got {}",
                j.on
            )));
        }
        if !residual.is_empty() && j.kind != JoinKind::Inner {
            return Err(SqlError::semantic(format!(
                "only INNER joins take conditions other than equalities between the two sides, \
                 got {}",
                j.on
            )));
        }
        let mut lp = ExprPlanner::new(left.scope.clone(), self.registry);
        let mut rp = ExprPlanner::new(right.scope.clone(), self.registry);
        let mut lkeys = Vec::new();
        let mut rkeys = Vec::new();
        for (a, b) in &pairs {
            let mut lkey = lp.plan_physical(a)?;
            let mut rkey = rp.plan_physical(b)?;
            if lkey.data_type != rkey.data_type {
                let common = crate::expr::wider(&lkey.data_type, &rkey.data_type);
                let cast = |p: PlannedExpr, scope: &Scope| -> Result<PlannedExpr> {
                    compile(
                        Expr::Cast(datafusion::logical_expr::Cast::new(
                            Box::new(p.expr),
                            common.clone(),
                        )),
                        scope,
                    )
                };
                if lkey.data_type != common {
                    lkey = cast(lkey, &left.scope)?;
                }
                if rkey.data_type != common {
                    rkey = cast(rkey, &right.scope)?;
                }
            }
            lkeys.push(lkey);
            rkeys.push(rkey);
        }
        let lkey = composite_key(lkeys, &left.scope)?;
        let rkey = composite_key(rkeys, &right.scope)?;
        let is_column = |p: &PlannedExpr, rel: &Rel| -> Option<String> {
            match &p.expr {
                Expr::Column(c) => rel.scope.by_field(&c.name).map(|sc| sc.field.clone()),
                _ => None,
            }
        };
        let _lcol = is_column(&lkey, &left);
        let rcol = is_column(&rkey, &right);
        let join_type = match (left.kind, right.kind, &j.within) {
            (SourceKind::Stream, SourceKind::Stream, None) if interval.is_some() => {
                let i = interval.as_ref().expect("checked by the guard");
                JoinType::StreamStream {
                    before_ms: i.before_ms,
                    after_ms: i.after_ms,
                    grace_ms: Some(0),
                }
            }
            (SourceKind::Stream, SourceKind::Stream, Some(w)) => JoinType::StreamStream {
                before_ms: w.before.as_millis() as i64,
                after_ms: w.after.as_millis() as i64,
                grace_ms: w.grace.map(|g| g.as_millis() as i64),
            },
            (SourceKind::Stream, SourceKind::Stream, None)
                if (left.view || right.view) && j.kind == JoinKind::Inner =>
            {
                // Flink's regular join: every row joins every row of the other side with the
                // same key, whenever it arrived; both sides are kept for good.
                JoinType::StreamStream {
                    before_ms: UNBOUNDED_MS,
                    after_ms: UNBOUNDED_MS,
                    grace_ms: Some(0),
                }
            }
            (SourceKind::Stream, SourceKind::Stream, None) => {
                return Err(SqlError::semantic(format!(
                    "stream-stream joins need a WITHIN clause, e.g. JOIN {} WITHIN 10 SECONDS ON … \
                     (without one, only INNER joins of views or derived tables are planned, as \
                     Flink's regular joins with state kept for good)",
                    j.relation.name
                )));
            }
            (SourceKind::Stream, SourceKind::Table, None) => {
                if matches!(j.kind, JoinKind::Right | JoinKind::Full) {
                    return Err(SqlError::semantic(
                        "stream-table joins support only INNER and LEFT joins",
                    ));
                }
                JoinType::StreamTable
            }
            (SourceKind::Table, SourceKind::Table, None) => {
                let right_pk: Vec<&String> = right.keys.iter().map(|k| &k.canonical).collect();
                if right_pk.len() != 1 || rcol.as_ref() != Some(right_pk[0]) {
                    return Err(SqlError::semantic(format!(
                        "table-table joins must use the primary key of {}",
                        j.relation.name
                    )));
                }
                let left_pk = left.keys.iter().any(|k| k.equivalents.contains(&lkey.expr));
                if left_pk && left.keys.len() == 1 {
                    JoinType::TableTable
                } else {
                    if matches!(j.kind, JoinKind::Right | JoinKind::Full) {
                        return Err(SqlError::semantic(
                            "foreign-key joins support only INNER and LEFT joins",
                        ));
                    }
                    JoinType::ForeignKey
                }
            }
            (_, _, Some(_)) => {
                return Err(SqlError::semantic(
                    "WITHIN applies to stream-stream joins only",
                ));
            }
            (SourceKind::Table, SourceKind::Stream, _) => {
                return Err(SqlError::semantic(
                    "a table cannot be joined to a stream; put the stream on the left (FROM stream JOIN table)",
                ));
            }
        };
        let left_cols = Self::join_side_columns(&left, &left_alias);
        let right_cols = Self::join_side_columns(&right, &ralias);
        let jk = format!("__JK{index}");
        let kind = if left.kind == SourceKind::Table && right.kind == SourceKind::Table {
            SourceKind::Table
        } else {
            SourceKind::Stream
        };
        let mut scope = Scope::default();
        let (left_node, keys, key_fields) = if join_type == JoinType::ForeignKey {
            // Keyed by the left table's primary key; the foreign key travels as an extra column.
            let mut key_exprs = Vec::new();
            let mut key_fields = Vec::new();
            let mut groups = Vec::new();
            for k in &left.keys {
                let c = left
                    .scope
                    .by_field(&k.canonical)
                    .cloned()
                    .ok_or_else(|| SqlError::semantic("internal: left key column missing"))?;
                let field = if left.joined {
                    c.field.clone()
                } else {
                    format!("{left_alias}_{}", c.name)
                };
                key_exprs.push((field.clone(), compile(column(&c.field), &left.scope)?));
                key_fields.push(field_of(&field, &c.data_type));
                scope.columns.push(ScopeColumn {
                    role: ColumnRole::Key,
                    field: field.clone(),
                    ..c.clone()
                });
                groups.push(KeyGroup::column(&field, &field));
            }
            let values: Vec<(ScopeColumn, Expr)> = left_cols
                .iter()
                .filter(|(c, _)| !key_fields.iter().any(|f| f.name() == &c.field))
                .cloned()
                .collect();
            let node = self.join_input(
                &left,
                key_exprs,
                &values,
                Some(("__FK".to_string(), lkey.clone())),
            )?;
            for (c, _) in &values {
                scope.columns.push(c.clone());
            }
            (node, groups, key_fields)
        } else {
            let node =
                self.join_input(&left, vec![(jk.clone(), lkey.clone())], &left_cols, None)?;
            let side_map = |rel: &Rel, alias: &str| -> std::collections::HashMap<String, String> {
                rel.scope
                    .columns
                    .iter()
                    .map(|c| {
                        (
                            c.field.clone(),
                            if rel.joined {
                                c.field.clone()
                            } else {
                                format!("{alias}_{}", c.name)
                            },
                        )
                    })
                    .collect()
            };
            let lmap = side_map(&left, &left_alias);
            let rmap = side_map(&right, &ralias);
            let mut equivalents = vec![remap(&lkey.expr, &lmap), remap(&rkey.expr, &rmap)];
            let mut candidates: Vec<String> = Vec::new();
            if j.kind != JoinKind::Full {
                if let Some(g) = left
                    .keys
                    .iter()
                    .find(|g| g.equivalents.contains(&lkey.expr))
                {
                    for c in &g.candidates {
                        if let Some(f) = lmap.get(c) {
                            candidates.push(f.clone());
                        }
                    }
                    equivalents.extend(g.equivalents.iter().map(|e| remap(e, &lmap)));
                }
                for e in &equivalents[..2] {
                    if let Expr::Column(c) = e
                        && !candidates.contains(&c.name)
                    {
                        candidates.push(c.name.clone());
                    }
                }
            }
            let synthetic = candidates.is_empty();
            let taken: HashSet<String> = left
                .scope
                .columns
                .iter()
                .chain(right.scope.columns.iter())
                .filter(|c| !c.field.starts_with("__JK"))
                .map(|c| c.name.clone())
                .collect();
            let key_name = if taken.contains("ROWKEY") {
                (1..)
                    .map(|i| format!("ROWKEY_{i}"))
                    .find(|n| !taken.contains(n))
                    .unwrap_or_default()
            } else {
                "ROWKEY".to_string()
            };
            scope.columns.push(ScopeColumn {
                qualifier: None,
                name: key_name.clone(),
                field: jk.clone(),
                data_type: lkey.data_type.clone(),
                role: if synthetic {
                    ColumnRole::Key
                } else {
                    ColumnRole::System
                },
            });
            candidates.push(jk.clone());
            equivalents.push(column(&jk));
            let group = KeyGroup {
                canonical: jk.clone(),
                candidates,
                equivalents,
                name: key_name.clone(),
            };
            for (c, _) in &left_cols {
                scope.columns.push(c.clone());
            }
            let key_field = field_of(&jk, &lkey.data_type);
            (node, vec![group], vec![key_field])
        };
        let right_node =
            self.join_input(&right, vec![(jk.clone(), rkey.clone())], &right_cols, None)?;
        for (c, _) in &right_cols {
            scope.columns.push(c.clone());
        }
        let left_values: Vec<Field> = match &left_node {
            PlanNode::Exchange(e) => e.input.schema().value_fields(),
            _ => vec![],
        };
        let left_values: Vec<Field> = if join_type == JoinType::ForeignKey {
            left_values
                .into_iter()
                .filter(|f| f.name() != "__FK")
                .collect()
        } else {
            left_values
        };
        let right_values: Vec<Field> = right_cols
            .iter()
            .map(|(c, _)| field_of(&c.field, &c.data_type))
            .collect();
        let mut values = left_values;
        values.extend(right_values);
        let schema = StreamSchema::new(key_fields, values, false, kind);
        for (name, dt) in [
            (ROWTIME, DataType::Int64),
            (ROWPARTITION, DataType::Int32),
            (ROWOFFSET, DataType::Int64),
        ] {
            scope.columns.push(ScopeColumn {
                qualifier: None,
                name: name.to_string(),
                field: name.to_string(),
                data_type: dt,
                role: ColumnRole::System,
            });
        }
        let mut node = PlanNode::Join(JoinNode {
            left: Box::new(left_node),
            right: Box::new(right_node),
            kind: j.kind,
            join_type,
            schema,
            display: j.on.to_string(),
        });
        for condition in residual {
            let predicate =
                ExprPlanner::new(scope.clone(), self.registry).plan_physical(&condition)?;
            node = PlanNode::Filter(FilterNode {
                input: Box::new(node),
                predicate,
                display: condition.to_string(),
            });
        }
        Ok(Rel {
            node,
            scope,
            kind,
            keys,
            window: None,
            joined: true,
            time_attr: None,
            view: left.view || right.view,
        })
    }

    /// Whether `e` names the event-time attribute of `rel`: `ROWTIME`, or the column a source
    /// declares as its timestamp (`WATERMARK FOR ts …` / `TIMESTAMP='ts'`).
    fn is_time_attribute(rel: &Rel, e: &SqlExpr) -> bool {
        let resolved = match e {
            SqlExpr::Identifier(id) => rel.scope.resolve(None, &id.value),
            SqlExpr::CompoundIdentifier(ids) if ids.len() == 2 => {
                if !rel.scope.is_qualifier(&ids[0].value) {
                    return false;
                }
                rel.scope.resolve(Some(&ids[0].value), &ids[1].value)
            }
            _ => return false,
        };
        let Ok(c) = resolved else { return false };
        if c.name == ROWTIME {
            return true;
        }
        rel.time_attr.as_deref() == Some(c.name.as_str())
    }

    /// Expands `*` and `alias.*` into column references.
    fn expand(
        &self,
        projection: &[SelectItem],
        scope: &Scope,
        is_aggregate: bool,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        for p in projection {
            match p {
                SelectItem::Wildcard | SelectItem::QualifiedWildcard(_) => {
                    if is_aggregate {
                        return Err(SqlError::semantic("SELECT * is not allowed with GROUP BY"));
                    }
                    let q = match p {
                        SelectItem::QualifiedWildcard(q) => {
                            if !scope.is_qualifier(q) {
                                return Err(SqlError::Unknown(format!(
                                    "{q}.* refers to an unknown source {q}"
                                )));
                            }
                            Some(q.as_str())
                        }
                        _ => None,
                    };
                    for c in &scope.columns {
                        if c.role == ColumnRole::System
                            || (q.is_some() && c.qualifier.as_deref() != q)
                        {
                            continue;
                        }
                        let ident =
                            datafusion::sql::sqlparser::ast::Ident::with_quote('`', c.name.clone());
                        let expr = match &c.qualifier {
                            Some(q) => SqlExpr::CompoundIdentifier(vec![
                                datafusion::sql::sqlparser::ast::Ident::with_quote('`', q.clone()),
                                ident,
                            ]),
                            None => SqlExpr::Identifier(ident),
                        };
                        // Join columns are named `<alias>_<column>` (their physical field).
                        let name = if c.field.starts_with("__") {
                            c.name.clone()
                        } else {
                            c.field.clone()
                        };
                        items.push(Item {
                            expr,
                            name: Some(name),
                        });
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    if let Some(base) = struct_star_base(expr) {
                        let mut planner = ExprPlanner::new(scope.clone(), self.registry);
                        let planned = planner.plan(base)?;
                        let DataType::Struct(fields) = planner.type_of(&planned)? else {
                            return Err(SqlError::semantic(format!(
                                "{base}->* needs a STRUCT, and {base} is not one"
                            )));
                        };
                        for f in fields.iter() {
                            let field = datafusion::sql::sqlparser::ast::Ident::with_quote(
                                '`',
                                f.name().clone(),
                            );
                            let expr = SqlExpr::BinaryOp {
                                left: Box::new(base.clone()),
                                op: BinaryOperator::Arrow,
                                right: Box::new(SqlExpr::Identifier(field)),
                            };
                            items.push(Item {
                                expr,
                                name: Some(f.name().clone()),
                            });
                        }
                        continue;
                    }
                    items.push(Item {
                        expr: expr.clone(),
                        name: alias.clone(),
                    })
                }
            }
        }
        Ok(items)
    }

    /// `PARTITION BY`: the new key is the partitioning expressions; the old key becomes values.
    fn plan_partition_by(
        &self,
        q: &Query,
        node: PlanNode,
        scope: Scope,
    ) -> Result<(PlanNode, Scope, Vec<KeyGroup>)> {
        let mut planner = ExprPlanner::new(scope.clone(), self.registry);
        let in_schema = node.schema().clone();
        let mut exprs = Vec::new();
        let mut keys = Vec::new();
        let mut new_scope = Scope::default();
        let mut display = Vec::new();
        for (i, e) in q.partition_by.iter().enumerate() {
            let p = planner.plan_physical(e)?;
            let name = derived_name(e).unwrap_or_else(|| format!("KSQL_COL_{i}"));
            let field = format!("__P{i}");
            keys.push(field_of(&field, &p.data_type));
            new_scope.columns.push(ScopeColumn {
                qualifier: None,
                name,
                field,
                data_type: p.data_type.clone(),
                role: ColumnRole::Key,
            });
            display.push(format!("{e} AS KEY"));
            exprs.push(p);
        }
        let mut values = Vec::new();
        for c in scope
            .columns
            .iter()
            .filter(|c| c.role != ColumnRole::System)
        {
            let p = planner.compile(column(c.field.as_str()))?;
            values.push(field_of(&c.field, &c.data_type));
            // Old key columns stay addressable by name unless the new key shadows them.
            let shadowed = new_scope.columns.iter().any(|k| k.name == c.name);
            new_scope.columns.push(ScopeColumn {
                qualifier: c.qualifier.clone(),
                name: if shadowed {
                    format!("__OLD_{}", c.name)
                } else {
                    c.name.clone()
                },
                field: c.field.clone(),
                data_type: c.data_type.clone(),
                role: ColumnRole::Value,
            });
            exprs.push(p);
        }
        for c in scope
            .columns
            .iter()
            .filter(|c| c.role == ColumnRole::System)
        {
            new_scope.columns.push(c.clone());
        }
        let schema = StreamSchema::new(keys, values, in_schema.windowed, in_schema.kind);
        let project = PlanNode::Project(ProjectNode {
            input: Box::new(node),
            exprs,
            schema,
            drop_null_keys: false,
            display,
        });
        let keys = new_scope
            .columns
            .iter()
            .filter(|c| c.role == ColumnRole::Key)
            .map(|c| KeyGroup::column(&c.field, &c.name))
            .collect();
        Ok((
            PlanNode::Exchange(ExchangeNode {
                input: Box::new(project),
            }),
            new_scope,
            keys,
        ))
    }

    /// Builds the final projection: key items first (in key order), then values.
    #[allow(clippy::too_many_arguments)]
    fn finish_projection(
        &self,
        node: PlanNode,
        items: Vec<Item>,
        planned: Vec<PlannedExpr>,
        key_groups: &[KeyGroup],
        names: &mut NameGenerator,
        kind: SourceKind,
        window: Option<WindowInfo>,
        q: &Query,
        joined: bool,
    ) -> Result<QueryPlan> {
        let mut out_names: Vec<String> = Vec::new();
        for item in &items {
            let n = match &item.name {
                Some(n) => n.clone(),
                None => match derived_name(&item.expr) {
                    // A struct field's name is made unique against source columns and earlier
                    // items (`A->B` next to a column `B` becomes `B_1`).
                    Some(n) if is_dereference(&item.expr) => {
                        let taken =
                            |c: &str| names.taken.contains(c) || out_names.iter().any(|o| o == c);
                        if taken(&n) {
                            (1..)
                                .map(|i| format!("{n}_{i}"))
                                .find(|c| !taken(c))
                                .unwrap_or(n)
                        } else {
                            n
                        }
                    }
                    // In joins a qualified column is named `<alias>_<column>`.
                    Some(n) => match &item.expr {
                        SqlExpr::CompoundIdentifier(ids)
                            if joined
                                && ids.len() == 2
                                && names.ambiguous.contains(&ids[1].value) =>
                        {
                            format!("{}_{}", ids[0].value, ids[1].value)
                        }
                        _ => n,
                    },
                    None => names.next(),
                },
            };
            out_names.push(n);
        }
        let mut seen = HashSet::new();
        for n in &out_names {
            if !seen.insert(n.clone()) {
                return Err(SqlError::semantic(format!(
                    "the projection contains the column name {n} more than once; use AS to rename"
                )));
            }
        }
        // Each key slot is filled by the first item selecting its highest-priority candidate.
        let key_items: Vec<Option<usize>> = key_groups
            .iter()
            .map(|g| {
                g.candidates.iter().find_map(|cand| {
                    planned
                        .iter()
                        .position(|p| matches!(&p.expr, Expr::Column(c) if &c.name == cand))
                })
            })
            .collect();
        let key_items: Vec<Option<usize>> = if self.transient {
            vec![None; key_items.len()]
        } else {
            key_items
        };
        for (k, slot) in key_items.iter().enumerate() {
            if slot.is_none() && !self.transient {
                return Err(SqlError::semantic(format!(
                    "Key missing from projection: the query must select the key column {} (it may be aliased)",
                    key_groups[k].name
                )));
            }
        }
        let key_set: HashSet<usize> = key_items.iter().flatten().copied().collect();
        let mut exprs = Vec::new();
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut columns = Vec::new();
        let mut display = Vec::new();
        let canonical: Vec<Option<PlannedExpr>> = key_items
            .iter()
            .zip(key_groups)
            .map(|(slot, g)| {
                // The key is always read from the group's canonical column (the join key itself,
                // not a side's copy that an outer join may have left NULL).
                slot.and_then(|i| match &planned[i].expr {
                    Expr::Column(c) if c.name != g.canonical => {
                        let mut p = planned[i].clone();
                        p.expr = column(&g.canonical);
                        p.physical = Arc::new(datafusion::physical_expr::expressions::Column::new(
                            &g.canonical,
                            node.schema().arrow.index_of(&g.canonical).ok()?,
                        ));
                        Some(p)
                    }
                    _ => None,
                })
            })
            .collect();
        for (slot_idx, &i) in key_items.iter().flatten().enumerate() {
            let expr = canonical[slot_idx]
                .clone()
                .unwrap_or_else(|| planned[i].clone());
            keys.push(field_of(&out_names[i], &planned[i].data_type));
            columns.push(Column {
                name: out_names[i].clone(),
                data_type: planned[i].data_type.clone(),
                key: true,
                header: None,
            });
            display.push(format!("{} AS {} KEY", items[i].expr, out_names[i]));
            exprs.push(expr);
        }
        for (i, p) in planned.iter().enumerate() {
            if key_set.contains(&i) {
                continue;
            }
            values.push(field_of(&out_names[i], &p.data_type));
            columns.push(Column {
                name: out_names[i].clone(),
                data_type: p.data_type.clone(),
                key: false,
                header: None,
            });
            display.push(format!("{} AS {}", items[i].expr, out_names[i]));
            exprs.push(p.clone());
        }
        let in_schema = node.schema().clone();
        let schema = StreamSchema::new(keys, values, in_schema.windowed, kind);
        let root = PlanNode::Project(ProjectNode {
            input: Box::new(node),
            exprs,
            schema,
            drop_null_keys: false,
            display,
        });
        Ok(QueryPlan {
            root,
            kind,
            columns,
            window,
            emit: q.emit.unwrap_or(Emit::Changes),
            limit: q.limit,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_aggregate(
        &self,
        q: &Query,
        node: PlanNode,
        input_scope: Scope,
        items: Vec<Item>,
        names: &mut NameGenerator,
        source_kind: SourceKind,
        alias: &str,
        joined: bool,
    ) -> Result<QueryPlan> {
        if q.group_by.is_empty() {
            return Err(SqlError::semantic(
                "aggregate functions need a GROUP BY clause (e.g. GROUP BY a column or a constant)",
            ));
        }
        if !q.partition_by.is_empty() {
            return Err(SqlError::semantic(
                "PARTITION BY cannot be combined with GROUP BY",
            ));
        }
        let mut input_planner = ExprPlanner::new(input_scope.clone(), self.registry);
        let mut groups = Vec::new();
        let mut group_planned = Vec::new();
        for (i, g) in q.group_by.iter().enumerate() {
            if contains_aggregate(g, self.registry) {
                return Err(SqlError::semantic(format!(
                    "GROUP BY {g} cannot contain an aggregate function"
                )));
            }
            let e = input_planner.plan(g)?;
            let p = compile(e.clone(), &input_scope)?;
            groups.push((p.expr.clone(), format!("__K{i}")));
            group_planned.push(p);
        }
        // Scope after aggregation: group fields, then (added while planning) aggregate results.
        let windowed = q.window.is_some();
        let mut post = Scope::default();
        for ((_, field), p) in groups.iter().zip(&group_planned) {
            post.columns.push(ScopeColumn {
                qualifier: None,
                name: field.clone(),
                field: field.clone(),
                data_type: p.data_type.clone(),
                role: ColumnRole::Key,
            });
        }
        if windowed {
            post.columns
                .push(system(alias, WINDOWSTART, DataType::Int64));
            post.columns.push(system(alias, WINDOWEND, DataType::Int64));
        }
        let uncoerced_groups: Vec<(Expr, String)> = q
            .group_by
            .iter()
            .zip(&groups)
            .map(|(g, (_, f))| Ok((input_planner.plan(g)?, f.clone())))
            .collect::<Result<_>>()?;
        let agg_mode = AggMode {
            input: input_scope.clone(),
            groups: uncoerced_groups,
            calls: vec![],
        };
        let mut planner = ExprPlanner::for_aggregation(post.clone(), self.registry, agg_mode);
        let mut logical_items = Vec::new();
        for item in &items {
            logical_items.push(planner.plan(&item.expr)?);
        }
        let having = q.having.as_ref().map(|h| planner.plan(h)).transpose()?;
        let agg = planner.agg.take().expect("aggregation mode");
        if agg.calls.is_empty() && logical_items.is_empty() {
            return Err(SqlError::semantic("empty projection"));
        }
        for c in &agg.calls {
            if source_kind == SourceKind::Table && !c.func.supports_retract() {
                return Err(SqlError::semantic(format!(
                    "{} cannot aggregate a TABLE: it cannot undo rows when the table changes",
                    c.func.name()
                )));
            }
        }
        // Pre-aggregation projection: group keys, then every aggregate argument.
        let mut pre_exprs = group_planned.clone();
        let mut pre_keys = Vec::new();
        let mut pre_values = Vec::new();
        let mut pre_display = Vec::new();
        for ((_, field), p) in groups.iter().zip(&group_planned) {
            pre_keys.push(field_of(field, &p.data_type));
        }
        for (g, (_, field)) in q.group_by.iter().zip(&groups) {
            pre_display.push(format!("{g} AS {field} KEY"));
        }
        let mut specs = Vec::new();
        for c in &agg.calls {
            let mut arg_idx = Vec::new();
            let mut arg_types = Vec::new();
            for a in &c.args {
                let p = compile(a.clone(), &input_scope)?;
                arg_idx.push(pre_values.len());
                let name = format!("__ARG{}", pre_values.len());
                pre_values.push(field_of(&name, &p.data_type));
                pre_display.push(format!("{} AS {name}", p.expr));
                arg_types.push(p.data_type.clone());
                pre_exprs.push(p);
            }
            specs.push(AggSpec {
                func: c.func.clone(),
                args: arg_idx,
                params: c.params.clone(),
                arg_types,
                data_type: c.data_type.clone(),
                display: format!("{} AS {}", c.display, c.field),
            });
        }
        let in_kind = node.schema().kind;
        let pre_schema = StreamSchema::new(pre_keys, pre_values, false, in_kind);
        let pre = PlanNode::Project(ProjectNode {
            input: Box::new(node),
            exprs: pre_exprs,
            schema: pre_schema,
            drop_null_keys: true,
            display: pre_display,
        });
        let exchanged = PlanNode::Exchange(ExchangeNode {
            input: Box::new(pre),
        });
        let agg_keys: Vec<Field> = groups
            .iter()
            .zip(&group_planned)
            .map(|((_, f), p)| field_of(f, &p.data_type))
            .collect();
        let agg_values: Vec<Field> = agg
            .calls
            .iter()
            .map(|c| field_of(&c.field, &c.data_type))
            .collect();
        let agg_schema = StreamSchema::new(agg_keys, agg_values, windowed, SourceKind::Table);
        let emit = q.emit.unwrap_or(Emit::Changes);
        let mut root = PlanNode::Aggregate(AggregateNode {
            input: Box::new(exchanged),
            aggregates: specs,
            window: q.window.clone(),
            emit,
            schema: agg_schema,
        });
        // The post-aggregation scope, now complete, in physical order: keys, aggregates, window
        // bounds, then system columns.
        let mut post_scope = planner.scope.clone();
        let window_cols: Vec<ScopeColumn> = post_scope
            .columns
            .iter()
            .filter(|c| c.role == ColumnRole::System)
            .cloned()
            .collect();
        post_scope.columns.retain(|c| c.role != ColumnRole::System);
        post_scope.columns.extend(window_cols);
        post_scope
            .columns
            .push(system(alias, ROWTIME, DataType::Int64));
        post_scope
            .columns
            .push(system(alias, ROWPARTITION, DataType::Int32));
        post_scope
            .columns
            .push(system(alias, ROWOFFSET, DataType::Int64));
        if let Some(h) = having {
            let predicate = compile(h, &post_scope)?;
            root = PlanNode::Filter(FilterNode {
                input: Box::new(root),
                predicate,
                display: q.having.as_ref().map(|h| h.to_string()).unwrap_or_default(),
            });
        }
        let planned: Vec<PlannedExpr> = logical_items
            .into_iter()
            .map(|e| compile(e, &post_scope))
            .collect::<Result<_>>()?;
        let key_groups: Vec<KeyGroup> = groups
            .iter()
            .zip(&q.group_by)
            .map(|((_, field), g)| KeyGroup::column(field, &g.to_string()))
            .collect();
        let window = q.window.as_ref().map(|w| match &w.kind {
            WindowKind::Tumbling { size } => WindowInfo {
                window_type: WindowType::Tumbling,
                size_ms: Some(size.as_millis() as i64),
            },
            WindowKind::Hopping { size, .. } => WindowInfo {
                window_type: WindowType::Hopping,
                size_ms: Some(size.as_millis() as i64),
            },
            WindowKind::Cumulate { .. } => WindowInfo {
                window_type: WindowType::Cumulate,
                size_ms: None,
            },
            WindowKind::Session { .. } => WindowInfo {
                window_type: WindowType::Session,
                size_ms: None,
            },
        });
        self.finish_projection(
            root,
            items,
            planned,
            &key_groups,
            names,
            SourceKind::Table,
            window,
            q,
            joined,
        )
    }
}

fn system(alias: &str, name: &str, dt: DataType) -> ScopeColumn {
    ScopeColumn {
        qualifier: (!alias.is_empty()).then(|| alias.to_string()),
        name: name.to_string(),
        field: name.to_string(),
        data_type: dt,
        role: ColumnRole::System,
    }
}
