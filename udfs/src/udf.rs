//! A compact way to define a scalar function: a name, a return-type rule and a vectorised body.
//! DataFusion's `ScalarUDFImpl` is implemented once here instead of per function.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// Computes a function's return type from its argument types and constant arguments.
pub type ReturnTypeFn = fn(&[DataType], &[Option<ScalarValue>]) -> Result<DataType>;
/// Evaluates a function over a batch: arguments, row count, return type.
pub type InvokeFn = fn(&[ColumnarValue], usize, &DataType) -> Result<ColumnarValue>;

/// A scalar function defined by plain functions.
pub struct SimpleUdf {
    name: &'static str,
    signature: Signature,
    return_type: ReturnTypeFn,
    invoke: InvokeFn,
    /// Minimum and maximum number of arguments.
    arity: (usize, usize),
}

impl std::fmt::Debug for SimpleUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)
    }
}

impl PartialEq for SimpleUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for SimpleUdf {}
impl Hash for SimpleUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl SimpleUdf {
    /// Builds a deterministic function taking between `min` and `max` arguments of any type.
    pub fn udf(
        name: &'static str,
        arity: (usize, usize),
        return_type: ReturnTypeFn,
        invoke: InvokeFn,
    ) -> ScalarUDF {
        Self::with_volatility(name, arity, return_type, invoke, Volatility::Immutable)
    }

    /// Like [`SimpleUdf::udf`] for functions whose result changes between calls (clock, random).
    pub fn volatile_udf(
        name: &'static str,
        arity: (usize, usize),
        return_type: ReturnTypeFn,
        invoke: InvokeFn,
    ) -> ScalarUDF {
        Self::with_volatility(name, arity, return_type, invoke, Volatility::Volatile)
    }

    fn with_volatility(
        name: &'static str,
        arity: (usize, usize),
        return_type: ReturnTypeFn,
        invoke: InvokeFn,
        volatility: Volatility,
    ) -> ScalarUDF {
        let mut sigs = Vec::new();
        if arity.0 == 0 {
            sigs.push(TypeSignature::Nullary);
        }
        for n in arity.0.max(1)..=arity.1 {
            sigs.push(TypeSignature::Any(n));
        }
        let signature = Signature::one_of(sigs, volatility);
        ScalarUDF::new_from_impl(SimpleUdf {
            name,
            signature,
            return_type,
            invoke,
            arity,
        })
    }

    /// The accepted number of arguments.
    pub fn arity(&self) -> (usize, usize) {
        self.arity
    }
}

impl ScalarUDFImpl for SimpleUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let none = vec![None; arg_types.len()];
        (self.return_type)(arg_types, &none)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let consts: Vec<Option<ScalarValue>> =
            args.scalar_arguments.iter().map(|s| s.cloned()).collect();
        let dt = (self.return_type)(&types, &consts)?;
        Ok(Arc::new(datafusion::arrow::datatypes::Field::new(
            self.name, dt, true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rt = args.return_type().clone();
        (self.invoke)(&args.args, args.number_rows, &rt)
    }
}
