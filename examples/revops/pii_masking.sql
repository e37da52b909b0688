-- PII masking: lead events are republished with the email replaced by its SHA-256 hash (of the
-- trimmed, lower-cased address, so the same person always hashes alike), the name and phone
-- masked, and the business fields kept.
--
--   riffle run examples/revops/pii_masking.sql --until-idle

CREATE STREAM lead_events (
    lead_id    STRING KEY,
    email      STRING,
    full_name  STRING,
    phone      STRING,
    company    STRING,
    status     STRING,
    changed_at TIMESTAMP
) WITH (
    connector = 'file',
    path = 'examples/revops/data/leads.jsonl',
    value_format = 'JSON',
    timestamp = 'changed_at'
);

CREATE STREAM lead_events_masked WITH (connector = 'stdout') AS
    SELECT lead_id,
           SHA256(LCASE(TRIM(email))) AS email_sha256,
           MASK_KEEP_LEFT(full_name, 1) AS full_name,
           MASK_KEEP_RIGHT(phone, 4) AS phone,
           company,
           status,
           changed_at
    FROM lead_events;
