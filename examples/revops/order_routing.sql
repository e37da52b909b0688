-- Order routing: orders over $10,000 go to the CFO alert stream (printed), the rest to the
-- standard fulfilment stream (written to examples/revops/out/standard_orders.jsonl).
-- A malformed order (an amount that is not a number) goes to the processing log with its reason;
-- the pipeline keeps running.
--
--   riffle run examples/revops/order_routing.sql --until-idle

CREATE STREAM orders (
    order_id   STRING KEY,
    account_id STRING,
    amount     DECIMAL(12, 2),
    currency   STRING,
    placed_at  TIMESTAMP
) WITH (
    connector = 'file',
    path = 'examples/revops/data/orders.jsonl',
    value_format = 'JSON',
    timestamp = 'placed_at'
);

CREATE STREAM cfo_alerts WITH (connector = 'stdout') AS
    SELECT order_id, account_id, amount, currency, 'route.cfo' AS route
    FROM orders
    WHERE amount > 10000;

CREATE STREAM standard_orders WITH (connector = 'file', path = 'examples/revops/out/standard_orders.jsonl') AS
    SELECT order_id, account_id, amount, currency, 'route.standard' AS route
    FROM orders
    WHERE amount <= 10000;
