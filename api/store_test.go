package api_test

import (
	"context"
	"errors"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/api"
	"github.com/cmkd-io/cmkd/store"
)

// storeAPI returns s as the API's Store, and whether it can destroy
// tenants. Until the store's DestroyTenant is merged, s is wrapped in
// partialStore, whose DestroyTenant fails, and the shredding tests are
// skipped; once merged, *store.Store is used directly and partialStore can
// go.
func storeAPI(s *store.Store) (api.Store, bool) {
	if full, ok := any(s).(api.Store); ok {
		return full, true
	}
	return partialStore{s}, false
}

// partialStore is *store.Store before DestroyTenant.
type partialStore struct{ *store.Store }

var errNotMerged = errors.New("store: DestroyTenant not merged yet")

func (partialStore) DestroyTenant(context.Context, string, cmkd.StatusEvent) error {
	return errNotMerged
}
