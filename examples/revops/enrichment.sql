-- Enrichment: every click is joined with the company record of its account (a stream-table
-- join), so downstream consumers see the company name, industry and tier without a lookup.
-- Clicks from accounts with no company record keep their place with NULL company fields
-- (LEFT JOIN). The company table is loaded before the first click is joined, and a company that
-- appears twice keeps its latest record (Initech moved to enterprise).
--
--   riffle run examples/revops/enrichment.sql --until-idle

CREATE TABLE companies (
    company_id STRING PRIMARY KEY,
    name       STRING,
    industry   STRING,
    tier       STRING,
    arr        BIGINT
) WITH (
    connector = 'file',
    path = 'examples/revops/data/companies.jsonl',
    value_format = 'JSON'
);

CREATE STREAM clicks (
    click_id   STRING,
    account_id STRING,
    user_id    STRING,
    page       STRING,
    clicked_at TIMESTAMP
) WITH (
    connector = 'file',
    path = 'examples/revops/data/clicks.jsonl',
    value_format = 'JSON',
    timestamp = 'clicked_at'
);

CREATE STREAM enriched_clicks WITH (connector = 'stdout') AS
    SELECT c.account_id AS account_id,
           c.click_id,
           c.user_id,
           c.page,
           co.name AS company,
           co.industry,
           co.tier,
           co.arr
    FROM clicks c
    LEFT JOIN companies co ON c.account_id = co.company_id;
