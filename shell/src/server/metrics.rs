//! `GET /metrics`: per-query counters in Prometheus text format — rows in and out, late rows,
//! processing-log errors by kind, watermark lag, state size and the last checkpoint (barrier)
//! duration.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    query: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    query: String,
    kind: String,
}

/// Handles `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut registry = Registry::with_prefix("riffle");
    let rows_in = Family::<QueryLabels, Counter>::default();
    let rows_out = Family::<QueryLabels, Counter>::default();
    let late = Family::<QueryLabels, Counter>::default();
    let errors = Family::<ErrorLabels, Counter>::default();
    let lag = Family::<QueryLabels, Gauge<i64, AtomicI64>>::default();
    let state_bytes = Family::<QueryLabels, Gauge<i64, AtomicI64>>::default();
    let checkpoint = Family::<QueryLabels, Gauge<f64, AtomicU64>>::default();
    registry.register(
        "query_rows_in",
        "Records read by the query's sources",
        rows_in.clone(),
    );
    registry.register(
        "query_rows_out",
        "Rows written by the query's sink",
        rows_out.clone(),
    );
    registry.register(
        "query_late_rows",
        "Rows that arrived after their window closed or behind the watermark",
        late.clone(),
    );
    registry.register(
        "query_errors",
        "Processing-log entries by kind (deserialization, serialization, function)",
        errors.clone(),
    );
    registry.register(
        "query_watermark_lag_milliseconds",
        "Wall clock minus the query's watermark",
        lag.clone(),
    );
    registry.register(
        "query_state_bytes",
        "Approximate bytes of operator state",
        state_bytes.clone(),
    );
    registry.register(
        "query_checkpoint_duration_seconds",
        "Duration of the last completed checkpoint (barrier, state snapshot and commit)",
        checkpoint.clone(),
    );
    let now = chrono::Utc::now().timestamp_millis();
    for q in state.engine.queries() {
        let l = QueryLabels {
            query: q.id.clone(),
        };
        let m = &q.metrics;
        rows_in
            .get_or_create(&l)
            .inc_by(m.rows_in.load(Ordering::Relaxed));
        rows_out
            .get_or_create(&l)
            .inc_by(m.rows_out.load(Ordering::Relaxed));
        late.get_or_create(&l)
            .inc_by(q.errors.late.load(Ordering::Relaxed));
        for (kind, counter) in [
            ("deserialization", &q.errors.deserialization),
            ("serialization", &q.errors.serialization),
            ("function", &q.errors.function),
            ("timestamp", &q.errors.timestamp),
        ] {
            errors
                .get_or_create(&ErrorLabels {
                    query: q.id.clone(),
                    kind: kind.to_string(),
                })
                .inc_by(counter.load(Ordering::Relaxed));
        }
        let wm = m.watermark.load(Ordering::Relaxed);
        if wm != i64::MIN && wm != i64::MAX {
            lag.get_or_create(&l).set(now - wm);
        }
        state_bytes
            .get_or_create(&l)
            .set(m.state_bytes.load(Ordering::Relaxed) as i64);
        let ms = m.last_checkpoint_ms.load(Ordering::Relaxed);
        checkpoint.get_or_create(&l).set(ms as f64 / 1000.0);
    }
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &registry) {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
