package api_test

import (
	"github.com/cmkd-io/cmkd/api"
	"github.com/cmkd-io/cmkd/store"
)

// *store.Store is the API's store.
var _ api.Store = (*store.Store)(nil)
