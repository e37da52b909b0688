//! Per-row function errors. ksqlDB semantics: when a function fails on one row, that value becomes
//! NULL and the failure goes to the query's error output; the query keeps running. Vectorised
//! functions report such rows here, and the operator evaluating the expression drains them after
//! each batch (evaluation is synchronous on one thread, so a thread-local is exact).

use std::cell::RefCell;

thread_local! {
    static ROW_ERRORS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Records that a function failed on a row (the row's value is returned as NULL).
pub fn report(message: impl Into<String>) {
    ROW_ERRORS.with(|e| {
        let mut e = e.borrow_mut();
        // Bounded so one bad batch cannot exhaust memory; the count still shows in the output.
        if e.len() < 10_000 {
            e.push(message.into());
        }
    });
}

/// Takes every error reported on this thread since the last call.
pub fn drain() -> Vec<String> {
    ROW_ERRORS.with(|e| std::mem::take(&mut *e.borrow_mut()))
}
