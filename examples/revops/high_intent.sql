-- High intent: when 4 or more different people from one account view the pricing page within
-- ten minutes, emit a high.intent.detected event for that account.
--
-- Runs on a fresh machine: page views come from riffle's data generator (deterministic: same
-- seed, same views), one view every 10 seconds of event time starting 2026-01-01T00:00:00Z.
--
--   riffle run examples/revops/high_intent.sql --until-idle

CREATE STREAM page_views (
    view_id    BIGINT,
    account_id STRING,
    user_id    STRING,
    page       STRING,
    viewed_at  BIGINT
) WITH (
    connector = 'datagen',
    rows = 1440,
    seed = 7,
    timestamp = 'viewed_at',
    'fields.view_id.kind' = 'sequence',
    'fields.viewed_at.kind' = 'sequence',
    'fields.viewed_at.start' = '1767225600000',
    'fields.viewed_at.step' = '10000',
    'fields.account_id.values' = 'acme,acme,acme,globex,globex,initech,umbrella,hooli',
    'fields.user_id.values' = 'u01,u02,u03,u04,u05,u06,u07,u08,u09,u10,u11,u12,u13,u14,u15,u16,u17,u18,u19,u20',
    'fields.page.values' = '/pricing,/docs,/blog,/features,/careers,/integrations,/about,/docs'
);

-- One row per account and 10-minute window, emitted once the window is complete.
CREATE TABLE high_intent_detected WITH (connector = 'stdout') AS
    SELECT account_id,
           'high.intent.detected' AS event,
           COUNT_DISTINCT(user_id) AS distinct_viewers,
           COUNT(*) AS pricing_views,
           TIMESTAMPTOSTRING(WINDOWSTART, 'yyyy-MM-dd''T''HH:mm:ss''Z''') AS window_start,
           TIMESTAMPTOSTRING(WINDOWEND, 'yyyy-MM-dd''T''HH:mm:ss''Z''') AS window_end
    FROM page_views
    WINDOW TUMBLING (SIZE 10 MINUTES, GRACE PERIOD 0 SECONDS)
    WHERE page = '/pricing'
    GROUP BY account_id
    HAVING COUNT_DISTINCT(user_id) >= 4
    EMIT FINAL;
