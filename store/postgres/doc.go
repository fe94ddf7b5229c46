// Package postgres is the store.Backend on PostgreSQL (through pgx), the
// store several cmkd replicas share.
//
// Every read of a tenant's DEKs or records checks the tenant's state in the
// same statement, so a seal committed before it is always seen. Every
// write of a tenant's records, and every new DEK, runs in one statement
// (or one implicit transaction) that first locks the tenant's row — a
// share lock for record writes, so that they run together — and a seal's
// update of that row waits for those locks: a write in flight when a
// tenant is sealed commits before the seal does, and a write that starts
// while the seal is under way waits for it and then fails with it. So when
// a seal returns, no write of the tenant can land any more, in any
// process. Statements that lock several tenants lock them in id order, so
// that they queue rather than deadlock.
//
// The tables live in one PostgreSQL schema (Config.Schema), versioned in
// its schema_migrations table and migrated by Open or Migrate in one
// transaction under an advisory lock, so that replicas starting together
// migrate once.
//
// Statements are prepared once per connection (pgx's statement cache), so
// a pooler in front of the server must keep server connections per client
// session, or the DSN must ask for default_query_exec_mode=exec. The
// schema and statement timeout are sent as startup parameters
// (search_path, statement_timeout), which the pooler must pass on.
package postgres
