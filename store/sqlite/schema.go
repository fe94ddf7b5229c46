package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cmkd-io/cmkd/store"
)

// migrations[i] takes the schema from version i to i+1 (PRAGMA
// user_version). Append only; never edit a released one.
var migrations = []string{
	`
CREATE TABLE tenants (
	id          TEXT PRIMARY KEY,
	key_url     TEXT NOT NULL,
	key_version TEXT NOT NULL DEFAULT '',
	state       TEXT NOT NULL CHECK (state IN ('active', 'sealed')),
	seal_reason TEXT NOT NULL DEFAULT '',
	sealed_at   INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL
);
CREATE INDEX tenants_key_url ON tenants (key_url, id);

CREATE TABLE deks (
	id           TEXT PRIMARY KEY,
	tenant       TEXT NOT NULL REFERENCES tenants (id),
	key_url      TEXT NOT NULL,
	kid          TEXT NOT NULL,
	version      TEXT NOT NULL,
	alg          TEXT NOT NULL,
	wrapped      BLOB NOT NULL,
	prev_kid     TEXT,
	prev_alg     TEXT,
	prev_wrapped BLOB,
	kcv          BLOB NOT NULL,
	active       INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,
	uses         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX deks_key_version ON deks (key_url, version, id);
CREATE INDEX deks_tenant ON deks (tenant, active);

CREATE TABLE records (
	tenant TEXT NOT NULL REFERENCES tenants (id),
	key    TEXT NOT NULL,
	dek_id TEXT NOT NULL REFERENCES deks (id),
	value  BLOB NOT NULL,
	PRIMARY KEY (tenant, key)
);

CREATE TABLE outbox (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          TEXT NOT NULL UNIQUE,
	tenant      TEXT NOT NULL,
	kind        TEXT NOT NULL,
	time        INTEGER NOT NULL,
	data        TEXT NOT NULL,
	claimed_by  TEXT NOT NULL DEFAULT '',
	claim_until INTEGER NOT NULL DEFAULT 0,
	attempts    INTEGER NOT NULL DEFAULT 0,
	sent_at     INTEGER
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;

CREATE TABLE leases (
	name    TEXT PRIMARY KEY,
	holder  TEXT NOT NULL,
	token   INTEGER NOT NULL,
	expires INTEGER NOT NULL
);
`,
	// Every record read checks its tenant's state in the same statement;
	// this covering index answers that check in one b-tree search instead
	// of the primary-key index plus the table row.
	`CREATE INDEX tenants_state ON tenants (id, state);`,
	// Key ids are stored in cmkd.ParseKeyID's canonical form: lower-case
	// host, name and version, no default port. Earlier versions kept the
	// name's case and a ":443", so two spellings of one key were two keys.
	`
UPDATE tenants SET key_url = lower(replace(key_url, ':443/', '/'));
UPDATE deks SET key_url = lower(replace(key_url, ':443/', '/')),
	kid = lower(replace(kid, ':443/', '/')),
	prev_kid = lower(replace(prev_kid, ':443/', '/')),
	version = lower(version);
`,
	// What the worker last saw of each key, for `cmkd keys` and replicas.
	`
CREATE TABLE key_status (
	key_url       TEXT PRIMARY KEY,
	holder        TEXT NOT NULL,
	checked_at    INTEGER NOT NULL,
	probed_at     INTEGER NOT NULL,
	outcome       TEXT NOT NULL,
	interval_ns   INTEGER NOT NULL,
	rewrap_target TEXT NOT NULL DEFAULT '',
	rewrap_done   INTEGER NOT NULL DEFAULT 0,
	rewrap_total  INTEGER NOT NULL DEFAULT 0,
	rewrap_running INTEGER NOT NULL DEFAULT 0
);
`,
	// A DEK Key Vault cannot unwrap is set aside (quarantined): kept, but
	// left out of rewraps, probes and version counts.
	`
ALTER TABLE deks ADD COLUMN unreadable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deks ADD COLUMN unreadable_reason TEXT NOT NULL DEFAULT '';
`,
	// Fencing tokens come from one sequence, so a released lease's row can
	// go (events for keys nobody uses left a row each for ever) and the
	// next acquisition still gets a larger token than any before.
	`
CREATE TABLE lease_tokens (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	last INTEGER NOT NULL
);
INSERT INTO lease_tokens (id, last) SELECT 1, coalesce(max(token), 0) FROM leases;
DELETE FROM leases WHERE holder = '';
`,
	// Layers: a DEK is wrapped once per key — the platform key's layer and
	// the customer's — each wrapping a share of it (store.DEK). The
	// wrappings move to a table of their own, the existing ones as the
	// customer layer, which they were; deks keeps the DEK's own check
	// value. A tenant gains a platform key and the key change under way.
	`
CREATE TABLE dek_wrappings (
	dek_id            TEXT NOT NULL REFERENCES deks (id),
	tenant            TEXT NOT NULL,
	layer             TEXT NOT NULL CHECK (layer IN ('customer', 'platform')),
	key_url           TEXT NOT NULL,
	kid               TEXT NOT NULL,
	version           TEXT NOT NULL,
	alg               TEXT NOT NULL,
	wrapped           BLOB NOT NULL,
	prev_kid          TEXT,
	prev_alg          TEXT,
	prev_wrapped      BLOB,
	kcv               BLOB NOT NULL,
	unreadable        INTEGER NOT NULL DEFAULT 0,
	unreadable_reason TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (dek_id, layer)
);
INSERT INTO dek_wrappings (dek_id, tenant, layer, key_url, kid, version, alg, wrapped,
		prev_kid, prev_alg, prev_wrapped, kcv, unreadable, unreadable_reason)
	SELECT id, tenant, 'customer', key_url, kid, version, alg, wrapped,
		prev_kid, prev_alg, prev_wrapped, kcv, unreadable, unreadable_reason FROM deks;
DROP INDEX deks_key_version;
ALTER TABLE deks DROP COLUMN key_url;
ALTER TABLE deks DROP COLUMN kid;
ALTER TABLE deks DROP COLUMN version;
ALTER TABLE deks DROP COLUMN alg;
ALTER TABLE deks DROP COLUMN wrapped;
ALTER TABLE deks DROP COLUMN prev_kid;
ALTER TABLE deks DROP COLUMN prev_alg;
ALTER TABLE deks DROP COLUMN prev_wrapped;
ALTER TABLE deks DROP COLUMN unreadable;
ALTER TABLE deks DROP COLUMN unreadable_reason;
CREATE INDEX dek_wrappings_key_version ON dek_wrappings (key_url, version, dek_id);
CREATE INDEX dek_wrappings_tenant ON dek_wrappings (tenant, dek_id);
ALTER TABLE tenants ADD COLUMN platform_key_url TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN platform_key_version TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN change_from TEXT;
ALTER TABLE tenants ADD COLUMN change_from_version TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN change_since INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tenants_platform_key_url ON tenants (platform_key_url, id);
CREATE INDEX tenants_change_from ON tenants (change_from, id) WHERE change_from IS NOT NULL;
`,
	// Sinks: each status-event sink other than NATS (store.NATSSink, whose
	// state stays in the outbox's columns, so nothing sent is sent again)
	// keeps its own delivery state, so one sink's outage does not hold up
	// another. A sink registers at its first claim; from then on the
	// trigger gives every new entry a delivery row per sink, in the
	// entry's own transaction. tenant is the entry's, copied so that the
	// per-tenant order check searches an index, even while a long outage
	// leaves many entries unsent.
	`
CREATE TABLE outbox_sinks (
	name       TEXT PRIMARY KEY,
	start_seq  INTEGER NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE TABLE outbox_delivery (
	sink        TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	tenant      TEXT NOT NULL,
	claimed_by  TEXT NOT NULL DEFAULT '',
	claim_until INTEGER NOT NULL DEFAULT 0,
	attempts    INTEGER NOT NULL DEFAULT 0,
	sent_at     INTEGER,
	gave_up     TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (sink, seq)
) WITHOUT ROWID;
CREATE INDEX outbox_delivery_unsent ON outbox_delivery (sink, seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_delivery_tenant ON outbox_delivery (sink, tenant, seq) WHERE sent_at IS NULL;
CREATE TRIGGER outbox_fan_out AFTER INSERT ON outbox BEGIN
	INSERT INTO outbox_delivery (sink, seq, tenant) SELECT name, NEW.seq, NEW.tenant FROM outbox_sinks;
END;
`,
}

// SchemaVersion is the schema version this package writes.
var SchemaVersion = len(migrations)

// migrate brings the schema to SchemaVersion in one transaction, so that
// two processes opening a new file at once do not both migrate it.
func (b *Backend) migrate(ctx context.Context) error {
	return b.tx(ctx, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
			return fmt.Errorf("schema version: %w", err)
		}
		if v > len(migrations) {
			return fmt.Errorf("%w: file has version %d, this binary knows %d", store.ErrSchemaTooNew, v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migrate to %d: %w", i+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
		return nil
	})
}
