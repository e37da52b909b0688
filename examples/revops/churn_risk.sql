-- Churn risk: alert when an account's daily active seats fall below 70% of its baseline (the
-- average of the three days before) for two days in a row. A single bad day is not an alert.
-- MATCH_RECOGNIZE runs per account in event-time order; each alert is one row.
--
--   riffle run examples/revops/churn_risk.sql --until-idle

CREATE STREAM daily_usage (
    account_id   STRING,
    active_seats INT,
    reported_at  TIMESTAMP
) WITH (
    connector = 'file',
    path = 'examples/revops/data/usage.jsonl',
    value_format = 'JSON',
    timestamp = 'reported_at'
);

CREATE STREAM churn_risk WITH (connector = 'stdout') AS
    SELECT account_id,
           'usage.drop.detected' AS event,
           baseline_seats,
           current_seats,
           pct_of_baseline,
           FORMAT_TIMESTAMP(drop_started, 'yyyy-MM-dd') AS drop_started,
           FORMAT_TIMESTAMP(detected_at, 'yyyy-MM-dd') AS detected_on
    FROM daily_usage
    MATCH_RECOGNIZE (
        PARTITION BY account_id
        ORDER BY reported_at
        MEASURES
            ROUND(AVG(BASELINE.active_seats), 1) AS baseline_seats,
            LAST(LOW.active_seats) AS current_seats,
            ROUND(100 * LAST(LOW.active_seats) / AVG(BASELINE.active_seats)) AS pct_of_baseline,
            FIRST(LOW.reported_at) AS drop_started,
            LAST(LOW.reported_at) AS detected_at
        ONE ROW PER MATCH
        AFTER MATCH SKIP PAST LAST ROW
        PATTERN (BASELINE{3} LOW{2})
        DEFINE
            LOW AS LOW.active_seats < 0.7 * AVG(BASELINE.active_seats)
    ) AS usage_drops;
