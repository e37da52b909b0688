-- Buying committee: when four or more different people from one account look at the pricing
-- page within ten minutes and then someone from the account requests a demo, emit
-- buying.committee.detected. Other pages in between do not break the pattern; a demo request
-- after too few people (or after a slow trickle of views) does not fire.
--
--   riffle run examples/revops/buying_committee.sql --until-idle

CREATE STREAM web_activity (
    account_id STRING,
    user_id    STRING,
    page       STRING,
    viewed_at  TIMESTAMP
) WITH (
    connector = 'file',
    path = 'examples/revops/data/web_activity.jsonl',
    value_format = 'JSON',
    timestamp = 'viewed_at'
);

CREATE STREAM buying_committee WITH (connector = 'stdout') AS
    SELECT account_id,
           'buying.committee.detected' AS event,
           stakeholders,
           pricing_views,
           requested_by,
           FORMAT_TIMESTAMP(first_pricing_view, 'yyyy-MM-dd''T''HH:mm:ss''Z''') AS first_pricing_view,
           FORMAT_TIMESTAMP(demo_requested_at, 'yyyy-MM-dd''T''HH:mm:ss''Z''') AS demo_requested_at
    FROM web_activity
    MATCH_RECOGNIZE (
        PARTITION BY account_id
        ORDER BY viewed_at
        MEASURES
            COUNT(DISTINCT PRICING.user_id) AS stakeholders,
            COUNT(PRICING.*) AS pricing_views,
            DEMO.user_id AS requested_by,
            FIRST(PRICING.viewed_at) AS first_pricing_view,
            DEMO.viewed_at AS demo_requested_at
        ONE ROW PER MATCH
        AFTER MATCH SKIP PAST LAST ROW
        PATTERN (PRICING (PRICING | OTHER)*? DEMO)
        DEFINE
            PRICING AS PRICING.page = '/pricing',
            OTHER AS OTHER.page <> '/demo-request',
            DEMO AS DEMO.page = '/demo-request'
                AND COUNT(DISTINCT PRICING.user_id) >= 4
                AND LAST(PRICING.ROWTIME) - FIRST(PRICING.ROWTIME) <= 600000
    ) AS committees;
