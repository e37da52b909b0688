//! Query planning: a parsed `SELECT` becomes a [`QueryPlan`] — source, filter, re-keying,
//! aggregation and projection nodes with ksqlDB's key rules (the key columns of the result are the
//! source key, the `PARTITION BY` or the `GROUP BY` expressions, and must be selected).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::logical_expr::Expr;
use crate::expr::column;
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
}

/// A select item after wildcard expansion.
struct Item {
    expr: SqlExpr,
    name: Option<String>,
}

/// Hands out `KSQL_COL_n` names, skipping names the sources already use.
struct NameGenerator {
    next: usize,
    taken: HashSet<String>,
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
        SqlExpr::BinaryOp { op: BinaryOperator::Arrow, right, .. } => match right.as_ref() {
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
        SqlExpr::BinaryOp { op: BinaryOperator::Arrow, .. } => true,
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
        Planner { catalog, registry }
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
                role: if c.key { ColumnRole::Key } else { ColumnRole::Value },
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
        let keys = def.key_columns().map(|c| field_of(&c.name, &c.data_type)).collect();
        let values = def.value_columns().map(|c| field_of(&c.name, &c.data_type)).collect();
        StreamSchema::new(keys, values, def.window.is_some(), def.kind)
    }

    /// Plans a query.
    pub fn plan_query(&self, q: &Query) -> Result<QueryPlan> {
        if !q.joins.is_empty() {
            return Err(SqlError::Unsupported(
                "joins are planned in a later riffle release (issue: joins and MATCH_RECOGNIZE)".into(),
            ));
        }
        let def = self.catalog.require(&q.from.name)?;
        let alias = q.from.qualifier().to_string();
        let scope = Self::source_scope(&def, &alias);
        let mut taken: HashSet<String> = def.columns.iter().map(|c| c.name.clone()).collect();
        taken.extend([ROWTIME, WINDOWSTART, WINDOWEND].iter().map(|s| s.to_string()));
        let mut names = NameGenerator { next: 0, taken };

        let is_aggregate = !q.group_by.is_empty()
            || q.projection.iter().any(|i| match i {
                SelectItem::Expr { expr, .. } => contains_aggregate(expr, self.registry),
                _ => false,
            })
            || q.having.as_ref().is_some_and(|h| contains_aggregate(h, self.registry));

        let source = PlanNode::Source(SourceNode {
            def: def.clone(),
            alias: alias.clone(),
            schema: Self::source_schema(&def),
            materialize: def.kind == SourceKind::Table && is_aggregate,
        });
        let mut node = source;
        if let Some(w) = &q.selection {
            if contains_aggregate(w, self.registry) {
                return Err(SqlError::semantic("aggregate functions are not allowed in WHERE; use HAVING"));
            }
            let mut p = ExprPlanner::new(scope.clone(), self.registry);
            let predicate = p.plan_physical(w)?;
            if predicate.data_type != DataType::Boolean && predicate.data_type != DataType::Null {
                return Err(SqlError::semantic(format!("WHERE must be a boolean expression, got {w}")));
            }
            node = PlanNode::Filter(FilterNode { input: Box::new(node), predicate, display: w.to_string() });
        }
        if q.window.is_some() && !is_aggregate {
            return Err(SqlError::semantic("a WINDOW clause needs a GROUP BY aggregation"));
        }
        if q.emit == Some(Emit::Final) && q.window.is_none() {
            return Err(SqlError::semantic("EMIT FINAL is only supported for windowed aggregations"));
        }
        let items = self.expand(&q.projection, &scope, is_aggregate)?;
        if is_aggregate {
            return self.plan_aggregate(q, node, scope, items, &mut names, def.kind, &alias);
        }
        let (node, scope) = if q.partition_by.is_empty() {
            (node, scope)
        } else {
            self.plan_partition_by(q, node, scope)?
        };
        let kind = def.kind;
        let window = def.window;
        let mut planner = ExprPlanner::new(scope.clone(), self.registry);
        let mut planned = Vec::new();
        for item in &items {
            let p = planner.plan_physical(&item.expr)?;
            planned.push(p);
        }
        let key_fields: Vec<&ScopeColumn> =
            scope.columns.iter().filter(|c| c.role == ColumnRole::Key).collect();
        self.finish_projection(node, items, planned, &key_fields, &mut names, kind, window, q)
    }

    /// Expands `*` and `alias.*` into column references.
    fn expand(&self, projection: &[SelectItem], scope: &Scope, is_aggregate: bool) -> Result<Vec<Item>> {
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
                                return Err(SqlError::Unknown(format!("{q}.* refers to an unknown source {q}")));
                            }
                            Some(q.as_str())
                        }
                        _ => None,
                    };
                    for c in &scope.columns {
                        if c.role == ColumnRole::System || (q.is_some() && c.qualifier.as_deref() != q) {
                            continue;
                        }
                        let ident = datafusion::sql::sqlparser::ast::Ident::with_quote('`', c.name.clone());
                        let expr = match &c.qualifier {
                            Some(q) => SqlExpr::CompoundIdentifier(vec![
                                datafusion::sql::sqlparser::ast::Ident::with_quote('`', q.clone()),
                                ident,
                            ]),
                            None => SqlExpr::Identifier(ident),
                        };
                        items.push(Item { expr, name: Some(c.name.clone()) });
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    if let Some(base) = struct_star_base(expr) {
                        let mut planner = ExprPlanner::new(scope.clone(), self.registry);
                        let planned = planner.plan(base)?;
                        let DataType::Struct(fields) = planner.type_of(&planned)? else {
                            return Err(SqlError::semantic(format!("{base}->* needs a STRUCT, and {base} is not one")));
                        };
                        for f in fields.iter() {
                            let field = datafusion::sql::sqlparser::ast::Ident::with_quote('`', f.name().clone());
                            let expr = SqlExpr::BinaryOp {
                                left: Box::new(base.clone()),
                                op: BinaryOperator::Arrow,
                                right: Box::new(SqlExpr::Identifier(field)),
                            };
                            items.push(Item { expr, name: Some(f.name().clone()) });
                        }
                        continue;
                    }
                    items.push(Item { expr: expr.clone(), name: alias.clone() })
                }
            }
        }
        Ok(items)
    }

    /// `PARTITION BY`: the new key is the partitioning expressions; the old key becomes values.
    fn plan_partition_by(&self, q: &Query, node: PlanNode, scope: Scope) -> Result<(PlanNode, Scope)> {
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
        for c in scope.columns.iter().filter(|c| c.role != ColumnRole::System) {
            let p = planner.compile(column(c.field.as_str()))?;
            values.push(field_of(&c.field, &c.data_type));
            // Old key columns stay addressable by name unless the new key shadows them.
            let shadowed = new_scope.columns.iter().any(|k| k.name == c.name);
            new_scope.columns.push(ScopeColumn {
                qualifier: c.qualifier.clone(),
                name: if shadowed { format!("__OLD_{}", c.name) } else { c.name.clone() },
                field: c.field.clone(),
                data_type: c.data_type.clone(),
                role: ColumnRole::Value,
            });
            exprs.push(p);
        }
        for c in scope.columns.iter().filter(|c| c.role == ColumnRole::System) {
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
        Ok((PlanNode::Exchange(ExchangeNode { input: Box::new(project) }), new_scope))
    }

    /// Builds the final projection: key items first (in key order), then values.
    #[allow(clippy::too_many_arguments)]
    fn finish_projection(
        &self,
        node: PlanNode,
        items: Vec<Item>,
        planned: Vec<PlannedExpr>,
        key_fields: &[&ScopeColumn],
        names: &mut NameGenerator,
        kind: SourceKind,
        window: Option<WindowInfo>,
        q: &Query,
    ) -> Result<QueryPlan> {
        let mut out_names: Vec<String> = Vec::new();
        for item in &items {
            let n = match &item.name {
                Some(n) => n.clone(),
                None => match derived_name(&item.expr) {
                    // A struct field's name is made unique against source columns and earlier
                    // items (`A->B` next to a column `B` becomes `B_1`).
                    Some(n) if is_dereference(&item.expr) => {
                        let taken = |c: &str| names.taken.contains(c) || out_names.iter().any(|o| o == c);
                        if taken(&n) {
                            (1..).map(|i| format!("{n}_{i}")).find(|c| !taken(c)).unwrap_or(n)
                        } else {
                            n
                        }
                    }
                    Some(n) => n,
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
        let mut key_items: Vec<Option<usize>> = vec![None; key_fields.len()];
        for (i, p) in planned.iter().enumerate() {
            if let Expr::Column(c) = &p.expr
                && let Some(k) = key_fields.iter().position(|k| k.field == c.name)
                && key_items[k].is_none()
            {
                key_items[k] = Some(i);
            }
        }
        for (k, slot) in key_items.iter().enumerate() {
            if slot.is_none() {
                return Err(SqlError::semantic(format!(
                    "Key missing from projection: the query must select the key column {} (it may be aliased)",
                    key_fields[k].name
                )));
            }
        }
        let key_set: HashSet<usize> = key_items.iter().flatten().copied().collect();
        let mut exprs = Vec::new();
        let mut keys = Vec::new();
        let mut values = Vec::new();
        let mut columns = Vec::new();
        let mut display = Vec::new();
        for &i in key_items.iter().flatten() {
            keys.push(field_of(&out_names[i], &planned[i].data_type));
            columns.push(Column {
                name: out_names[i].clone(),
                data_type: planned[i].data_type.clone(),
                key: true,
                header: None,
            });
            display.push(format!("{} AS {} KEY", items[i].expr, out_names[i]));
            exprs.push(planned[i].clone());
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

    fn plan_aggregate(
        &self,
        q: &Query,
        node: PlanNode,
        input_scope: Scope,
        items: Vec<Item>,
        names: &mut NameGenerator,
        source_kind: SourceKind,
        alias: &str,
    ) -> Result<QueryPlan> {
        if q.group_by.is_empty() {
            return Err(SqlError::semantic(
                "aggregate functions need a GROUP BY clause (e.g. GROUP BY a column or a constant)",
            ));
        }
        if !q.partition_by.is_empty() {
            return Err(SqlError::semantic("PARTITION BY cannot be combined with GROUP BY"));
        }
        let mut input_planner = ExprPlanner::new(input_scope.clone(), self.registry);
        let mut groups = Vec::new();
        let mut group_planned = Vec::new();
        for (i, g) in q.group_by.iter().enumerate() {
            if contains_aggregate(g, self.registry) {
                return Err(SqlError::semantic(format!("GROUP BY {g} cannot contain an aggregate function")));
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
            post.columns.push(system(&alias, WINDOWSTART, DataType::Int64));
            post.columns.push(system(&alias, WINDOWEND, DataType::Int64));
        }
        let uncoerced_groups: Vec<(Expr, String)> = q
            .group_by
            .iter()
            .zip(&groups)
            .map(|(g, (_, f))| Ok((input_planner.plan(g)?, f.clone())))
            .collect::<Result<_>>()?;
        let agg_mode = AggMode { input: input_scope.clone(), groups: uncoerced_groups, calls: vec![] };
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
        let exchanged = PlanNode::Exchange(ExchangeNode { input: Box::new(pre) });
        let agg_keys: Vec<Field> =
            groups.iter().zip(&group_planned).map(|((_, f), p)| field_of(f, &p.data_type)).collect();
        let agg_values: Vec<Field> =
            agg.calls.iter().map(|c| field_of(&c.field, &c.data_type)).collect();
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
        let window_cols: Vec<ScopeColumn> =
            post_scope.columns.iter().filter(|c| c.role == ColumnRole::System).cloned().collect();
        post_scope.columns.retain(|c| c.role != ColumnRole::System);
        post_scope.columns.extend(window_cols);
        post_scope.columns.push(system(&alias, ROWTIME, DataType::Int64));
        post_scope.columns.push(system(&alias, ROWPARTITION, DataType::Int32));
        post_scope.columns.push(system(&alias, ROWOFFSET, DataType::Int64));
        if let Some(h) = having {
            let predicate = compile(h, &post_scope)?;
            root = PlanNode::Filter(FilterNode {
                input: Box::new(root),
                predicate,
                display: q.having.as_ref().map(|h| h.to_string()).unwrap_or_default(),
            });
        }
        let planned: Vec<PlannedExpr> =
            logical_items.into_iter().map(|e| compile(e, &post_scope)).collect::<Result<_>>()?;
        let key_cols: Vec<ScopeColumn> = post_scope
            .columns
            .iter()
            .filter(|c| c.role == ColumnRole::Key)
            .cloned()
            .map(|mut c| {
                // Name the key after its GROUP BY expression in error messages.
                if let Some(idx) = c.field.strip_prefix("__K").and_then(|i| i.parse::<usize>().ok()) {
                    c.name = q.group_by[idx].to_string();
                }
                c
            })
            .collect();
        let key_refs: Vec<&ScopeColumn> = key_cols.iter().collect();
        let window = q.window.as_ref().map(|w| match &w.kind {
            WindowKind::Tumbling { size } => {
                WindowInfo { window_type: WindowType::Tumbling, size_ms: Some(size.as_millis() as i64) }
            }
            WindowKind::Hopping { size, .. } => {
                WindowInfo { window_type: WindowType::Hopping, size_ms: Some(size.as_millis() as i64) }
            }
            WindowKind::Session { .. } => WindowInfo { window_type: WindowType::Session, size_ms: None },
        });
        let _ = Arc::new(());
        self.finish_projection(root, items, planned, &key_refs, names, SourceKind::Table, window, q)
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
