package handlers

import (
	"math/rand/v2"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// maxSample bounds the verification sample held in memory.
const maxSample = 10_000

type sampled struct {
	dek store.DEK
	w   cmkd.Wrapped
}

// reservoir keeps a uniform random sample of what it is shown (Algorithm R),
// so the sample costs the same memory whatever the number of DEKs.
type reservoir struct {
	size  int
	seen  int
	items []sampled
}

func newReservoir(size int) *reservoir { return &reservoir{size: size} }

func (r *reservoir) add(s sampled) {
	r.seen++
	if len(r.items) < r.size {
		r.items = append(r.items, s)
		return
	}
	if j := rand.IntN(r.seen); j < r.size { // #nosec G404 -- which DEKs are sampled needs no secrecy: every moved DEK was checked by its KCV
		r.items[j] = s
	}
}
