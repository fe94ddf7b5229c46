-- The first schema. Conventions, kept by every later migration:
--
-- Times are Unix nanoseconds in bigint, NULL for "never". The Store's clock
-- is exact to the nanosecond and the contract hands times back that must
-- compare equal to what was written; timestamptz keeps microseconds.
--
-- Identifiers and record keys compare bytewise, whatever the database's
-- locale: ids are text COLLATE "C" and record keys are bytea, so that a
-- key the Store accepts (any bytes, NUL included) round-trips and lists in
-- the order SQLite lists it.

CREATE TABLE tenants (
	id          text COLLATE "C" PRIMARY KEY,
	key_url     text COLLATE "C" NOT NULL,
	key_version text NOT NULL DEFAULT '',
	state       text NOT NULL CHECK (state IN ('active', 'sealed')),
	seal_reason text NOT NULL DEFAULT '',
	sealed_at   bigint,
	created_at  bigint
);
CREATE INDEX tenants_key_url ON tenants (key_url, id);

-- Every put counts a use of its DEK, so a DEK row is rewritten often: room
-- on its page lets PostgreSQL keep the new version there (a HOT update,
-- no index touched), as uses is in no index.
CREATE TABLE deks (
	id                text COLLATE "C" PRIMARY KEY,
	tenant            text COLLATE "C" NOT NULL REFERENCES tenants (id),
	key_url           text COLLATE "C" NOT NULL,
	kid               text NOT NULL,
	version           text COLLATE "C" NOT NULL,
	alg               text NOT NULL,
	wrapped           bytea NOT NULL,
	prev_kid          text,
	prev_version      text,
	prev_alg          text,
	prev_wrapped      bytea,
	kcv               bytea NOT NULL,
	active            boolean NOT NULL DEFAULT false,
	created_at        bigint,
	uses              bigint NOT NULL DEFAULT 0,
	-- A DEK Key Vault cannot unwrap is set aside: kept, but left out of
	-- rewraps, probes and version counts.
	unreadable        boolean NOT NULL DEFAULT false,
	unreadable_reason text NOT NULL DEFAULT '',
	-- The target of records' foreign key: a record's DEK is its tenant's.
	UNIQUE (tenant, id),
	CHECK ((prev_kid IS NULL) = (prev_wrapped IS NULL))
) WITH (fillfactor = 80);
-- At most one DEK per tenant takes new writes.
CREATE UNIQUE INDEX deks_one_active ON deks (tenant) WHERE active;
-- A rewrap pages through a key's DEKs by id, skipping those already moved.
CREATE INDEX deks_key_id ON deks (key_url, id) WHERE NOT unreadable;
-- Probes and version counts look DEKs up by key and version.
CREATE INDEX deks_key_version ON deks (key_url, version, id) WHERE NOT unreadable;

-- A record's DEK can only be deleted with the record. The foreign key's
-- check on a DEK's deletion searches the tenant's records through the
-- primary key; an index of its own would cost every put more than it saves
-- the rare removal of a tenant.
CREATE TABLE records (
	tenant text COLLATE "C" NOT NULL,
	key    bytea NOT NULL,
	dek_id text COLLATE "C" NOT NULL,
	value  bytea NOT NULL,
	PRIMARY KEY (tenant, key),
	FOREIGN KEY (tenant, dek_id) REFERENCES deks (tenant, id)
);
-- Ciphertext does not compress: large values go out of line as they are.
ALTER TABLE records ALTER COLUMN value SET STORAGE EXTERNAL;

-- The status-event outbox. seq is the write order the relay publishes in.
-- data is json, not jsonb: it keeps the event's document as written, and
-- accepts every string Go's encoder writes (jsonb refuses \u0000).
CREATE TABLE outbox (
	seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id          text COLLATE "C" NOT NULL UNIQUE,
	tenant      text NOT NULL,
	kind        text NOT NULL,
	event_time  bigint,
	data        json NOT NULL,
	claimed_by  text NOT NULL DEFAULT '',
	-- 0 until the first claim.
	claim_until bigint NOT NULL DEFAULT 0,
	attempts    integer NOT NULL DEFAULT 0,
	sent_at     bigint
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;

-- Leases; a released one is deleted. Fencing tokens come from one
-- sequence, so that the next acquisition of a name whose row is gone still
-- gets a larger token than any before.
CREATE TABLE leases (
	name    text COLLATE "C" PRIMARY KEY,
	holder  text NOT NULL,
	token   bigint NOT NULL,
	expires bigint NOT NULL
);
CREATE SEQUENCE lease_tokens AS bigint;

-- What the worker last saw of each key, for `cmkd keys` and replicas.
CREATE TABLE key_status (
	key_url        text COLLATE "C" PRIMARY KEY,
	holder         text NOT NULL,
	checked_at     bigint,
	probed_at      bigint,
	outcome        text NOT NULL,
	interval_ns    bigint NOT NULL,
	rewrap_target  text NOT NULL DEFAULT '',
	rewrap_done    integer NOT NULL DEFAULT 0,
	rewrap_total   integer NOT NULL DEFAULT 0,
	rewrap_running boolean NOT NULL DEFAULT false
);
