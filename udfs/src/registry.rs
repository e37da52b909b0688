//! The function registry: every scalar and aggregate function a query can call, by upper-case
//! SQL name. ksqlDB names that DataFusion already implements with the same semantics map to the
//! DataFusion function; the rest are riffle's own.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

use crate::aggregate::{self, AggregateFunction};
use crate::scalar;

/// Resolves function names for the planner.
#[derive(Debug, Clone)]
pub struct FunctionRegistry {
    scalars: BTreeMap<String, Arc<ScalarUDF>>,
    aggregates: BTreeMap<String, Arc<dyn AggregateFunction>>,
}

impl Default for FunctionRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl FunctionRegistry {
    /// A registry with every built-in function.
    pub fn builtin() -> Self {
        let mut r = FunctionRegistry {
            scalars: BTreeMap::new(),
            aggregates: BTreeMap::new(),
        };
        for f in scalar::functions() {
            r.register_scalar(f.name().to_string(), Arc::new(f));
        }
        use datafusion::functions as df;
        let reused: Vec<(&str, Arc<ScalarUDF>)> = vec![
            ("UCASE", df::string::upper()),
            ("LCASE", df::string::lower()),
            // Flink's names for the same functions.
            ("UPPER", df::string::upper()),
            ("LOWER", df::string::lower()),
            ("TRIM", df::string::btrim()),
            ("LTRIM", df::string::ltrim()),
            ("RTRIM", df::string::rtrim()),
            ("REPLACE", df::string::replace()),
            ("INITCAP", df::unicode::initcap()),
            ("ABS", df::math::abs()),
            ("NULLIF", df::core::nullif()),
            ("REGEXP_REPLACE", df::regex::regexp_replace()),
            ("REGEXP_LIKE", df::regex::regexp_like()),
            (
                "ARRAY_LENGTH",
                datafusion::functions_nested::length::array_length_udf(),
            ),
        ];
        for (name, f) in reused {
            r.register_scalar(name.to_string(), f);
        }
        // Flink's names for functions riffle has under ksqlDB's: same arguments, same results.
        for (flink, ksql) in [("DATE_FORMAT", "FORMAT_TIMESTAMP")] {
            if let Some(f) = r.scalars.get(ksql).cloned() {
                r.register_scalar(flink.to_string(), f);
            }
        }
        for a in aggregate::builtin() {
            r.aggregates.insert(a.name().to_string(), a);
        }
        r
    }

    /// Adds or replaces a scalar function (the user UDF API).
    pub fn register_scalar(&mut self, name: String, f: Arc<ScalarUDF>) {
        self.scalars.insert(name.to_uppercase(), f);
    }

    /// Adds or replaces an aggregate function.
    pub fn register_aggregate(&mut self, f: Arc<dyn AggregateFunction>) {
        self.aggregates.insert(f.name().to_uppercase(), f);
    }

    /// Looks up a scalar function by name (any case).
    pub fn scalar(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalars.get(&name.to_uppercase()).cloned()
    }

    /// Looks up an aggregate function by name (any case).
    pub fn aggregate(&self, name: &str) -> Option<Arc<dyn AggregateFunction>> {
        self.aggregates.get(&name.to_uppercase()).cloned()
    }

    /// Whether `name` is an aggregate function.
    pub fn is_aggregate(&self, name: &str) -> bool {
        self.aggregates.contains_key(&name.to_uppercase())
    }

    /// All function names with their kind, for `SHOW FUNCTIONS`.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        let mut out: Vec<(String, &'static str)> =
            self.scalars.keys().map(|k| (k.clone(), "SCALAR")).collect();
        out.extend(self.aggregates.keys().map(|k| (k.clone(), "AGGREGATE")));
        out.sort();
        out
    }

    /// A description of an aggregate function, when it is one.
    pub fn aggregate_description(&self, name: &str) -> Option<&'static str> {
        self.aggregates
            .get(&name.to_uppercase())
            .map(|a| a.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_case_insensitively() {
        let r = FunctionRegistry::builtin();
        assert!(r.scalar("substring").is_some());
        assert!(r.scalar("UCASE").is_some());
        assert!(r.is_aggregate("collect_list"));
        assert!(r.aggregate("latest_by_offset").is_some());
        assert!(r.scalar("NO_SUCH_FUNCTION").is_none());
    }
}
