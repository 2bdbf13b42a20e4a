-- 0002_alerts.sql — the record of the alert notices (DESIGN §3.8), which
-- makes each one go out once across restarts, crashes and instances. The
-- alerting consumer's offsets live in oms_offsets under its own group
-- (alerts.group); a notice's record and its partition's next offset change
-- in one transaction.
--
-- A matching event gets a row when it is claimed: mode 'single' (notify on
-- its own; sent_at is set, with the offset, once every sink took it) or
-- 'folded' (more than alerts.max_per_minute: it waits for a digest, and its
-- offset moves on at once). A row of mode 'single' without sent_at after a
-- crash is sent again with the same Sentry event_id and Message-ID.
CREATE TABLE alert_notices (
    event_id    text COLLATE "C" PRIMARY KEY,
    event_type  text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    mode        text NOT NULL CONSTRAINT alert_notices_mode_check CHECK (mode IN ('single', 'folded')),
    summary     text NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    digest_id   uuid
);
COMMENT ON TABLE alert_notices IS 'One row per event that raised an alert notice (sent on its own or folded into a digest).';
-- the rate window counts the recent single notices
CREATE INDEX alert_notices_single_idx ON alert_notices (decided_at) WHERE mode = 'single';
-- folded notices not yet in a digest
CREATE INDEX alert_notices_unfolded_idx ON alert_notices (decided_at)
    WHERE mode = 'folded' AND digest_id IS NULL;
CREATE INDEX alert_notices_digest_idx ON alert_notices (digest_id) WHERE digest_id IS NOT NULL;

CREATE TABLE alert_digests (
    digest_id   uuid PRIMARY KEY,
    notices     integer NOT NULL CONSTRAINT alert_digests_notices_check CHECK (notices > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
COMMENT ON TABLE alert_digests IS 'Digests of folded alert notices: one e-mail and one Sentry event each.';
