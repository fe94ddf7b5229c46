package kek

import "context"

type bulkKey struct{}

// Bulk marks the Key Vault calls made with the returned context as bulk
// work (a rewrap's unwraps and wraps): on each vault's limiter they wait
// while probes and seal decisions wait, and never take the last quarter of
// its concurrency slots. Calls are urgent unless marked.
func Bulk(ctx context.Context) context.Context { return context.WithValue(ctx, bulkKey{}, true) }

func isBulk(ctx context.Context) bool {
	b, _ := ctx.Value(bulkKey{}).(bool)
	return b
}
