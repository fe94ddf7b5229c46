-- Layers: a DEK is wrapped once per key — the platform key's layer and the
-- customer's — each wrapping a share of it (store.DEK). The wrappings move
-- to a table of their own, the existing ones as the customer layer, which
-- they were; deks keeps the DEK's own check value. A tenant gains a
-- platform key and the key change under way (change_from NULL: none; ''
-- a change from the platform layer alone).

CREATE TABLE dek_wrappings (
	dek_id            text COLLATE "C" NOT NULL REFERENCES deks (id),
	tenant            text COLLATE "C" NOT NULL,
	layer             text NOT NULL CHECK (layer IN ('customer', 'platform')),
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
	-- A DEK Key Vault cannot unwrap is set aside: kept, but left out of
	-- rewraps, probes, version counts and key changes.
	unreadable        boolean NOT NULL DEFAULT false,
	unreadable_reason text NOT NULL DEFAULT '',
	PRIMARY KEY (dek_id, layer),
	CHECK ((prev_kid IS NULL) = (prev_wrapped IS NULL))
) WITH (fillfactor = 80);

INSERT INTO dek_wrappings (dek_id, tenant, layer, key_url, kid, version, alg, wrapped,
		prev_kid, prev_version, prev_alg, prev_wrapped, kcv, unreadable, unreadable_reason)
	SELECT id, tenant, 'customer', key_url, kid, version, alg, wrapped,
		prev_kid, prev_version, prev_alg, prev_wrapped, kcv, unreadable, unreadable_reason FROM deks;

ALTER TABLE deks
	DROP COLUMN key_url, DROP COLUMN kid, DROP COLUMN version, DROP COLUMN alg, DROP COLUMN wrapped,
	DROP COLUMN prev_kid, DROP COLUMN prev_version, DROP COLUMN prev_alg, DROP COLUMN prev_wrapped,
	DROP COLUMN unreadable, DROP COLUMN unreadable_reason;

-- A rewrap pages through a key's layers by DEK id, skipping those moved.
CREATE INDEX dek_wrappings_key_id ON dek_wrappings (key_url, dek_id) WHERE NOT unreadable;
-- Probes and version counts look layers up by key and version.
CREATE INDEX dek_wrappings_key_version ON dek_wrappings (key_url, version, dek_id) WHERE NOT unreadable;
-- A tenant's removal deletes its layers.
CREATE INDEX dek_wrappings_tenant ON dek_wrappings (tenant);

ALTER TABLE tenants
	ADD COLUMN platform_key_url text COLLATE "C" NOT NULL DEFAULT '',
	ADD COLUMN platform_key_version text NOT NULL DEFAULT '',
	ADD COLUMN change_from text COLLATE "C",
	ADD COLUMN change_from_version text NOT NULL DEFAULT '',
	ADD COLUMN change_since bigint;
CREATE INDEX tenants_platform_key_url ON tenants (platform_key_url, id);
CREATE INDEX tenants_change_from ON tenants (change_from, id) WHERE change_from IS NOT NULL;
