-- Sinks: each status-event sink other than NATS (store.NATSSink, whose
-- state stays in the outbox's columns, so nothing sent is sent again) keeps
-- its own delivery state, so one sink's outage does not hold up another.
-- A sink registers at its first claim; from then on the trigger gives every
-- new entry a delivery row per sink, in the statement that writes the entry.
-- tenant is the entry's, copied so that the per-tenant order check searches
-- an index, even while a long outage leaves many entries unsent.

CREATE TABLE outbox_sinks (
	name       text COLLATE "C" PRIMARY KEY,
	-- The last entry written before the sink registered; later ones are its.
	start_seq  bigint NOT NULL,
	created_at bigint
);

-- Every entry is rewritten twice (claim, then sent): room on its page lets
-- PostgreSQL keep the new version there.
CREATE TABLE outbox_delivery (
	sink        text COLLATE "C" NOT NULL,
	seq         bigint NOT NULL,
	tenant      text NOT NULL,
	claimed_by  text NOT NULL DEFAULT '',
	-- 0 until the first claim.
	claim_until bigint NOT NULL DEFAULT 0,
	attempts    integer NOT NULL DEFAULT 0,
	sent_at     bigint,
	-- Why the entry was given up rather than sent ('' when it was sent).
	gave_up     text NOT NULL DEFAULT '',
	PRIMARY KEY (sink, seq)
) WITH (fillfactor = 80);
CREATE INDEX outbox_delivery_unsent ON outbox_delivery (sink, seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_delivery_tenant ON outbox_delivery (sink, tenant, seq) WHERE sent_at IS NULL;

-- Once per statement, not per row: a seal of a key's thousand tenants
-- writes its events in one statement. The transition table holds only the
-- rows inserted (not those ON CONFLICT skipped). The search path is the
-- schema's, fixed here, whatever the caller's.
CREATE FUNCTION outbox_fan_out() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
	INSERT INTO outbox_delivery (sink, seq, tenant)
		SELECT s.name, n.seq, n.tenant FROM new_entries n CROSS JOIN outbox_sinks s;
	RETURN NULL;
END
$$;
CREATE TRIGGER outbox_fan_out AFTER INSERT ON outbox
	REFERENCING NEW TABLE AS new_entries
	FOR EACH STATEMENT EXECUTE FUNCTION outbox_fan_out();
