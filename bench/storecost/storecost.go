// Package storecost benchmarks what envelope encryption costs a record in
// the SQLite store, against a plain SQLite table in the same run.
package storecost

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/cmkd-io/cmkd/bench"
)

// Scenario is scenario 4: store overhead.
var Scenario = bench.Scenario{Name: name, Title: title, Run: run}

const (
	name    = "store"
	title   = "Store overhead (1 KiB records, SQLite)"
	size    = 1024
	tenant  = "t-00000"
	chunk   = 64 // operations of one side before the other's turn
	records = 1000
)

type env struct {
	*bench.Env
	plain *sql.DB
	get   *sql.Stmt
	value []byte
}

func run(ctx context.Context, o bench.Options) (*bench.Result, error) {
	be, err := bench.NewEnv(ctx, bench.EnvConfig{Dir: o.Dir, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	defer be.Close()
	e := &env{Env: be, value: make([]byte, size)}
	rand.Read(e.value)
	if err := e.open(ctx, filepath.Join(o.Dir, "plain.db")); err != nil {
		return nil, err
	}
	defer e.plain.Close()
	if _, err := be.Seed(ctx, 1, 1, nil); err != nil {
		return nil, err
	}
	n, rounds := bench.Pick(o, 20000, 500), bench.Pick(o, 5, 2)
	o.Say("writing %d records each side", records)
	for i := range records {
		if err := e.encPut(ctx, i); err != nil {
			return nil, err
		}
		if err := e.plainPut(ctx, i); err != nil {
			return nil, err
		}
	}
	res := &bench.Result{Scenario: name, Title: title, Setup: fmt.Sprintf(
		"One tenant, %d records of 1 KiB read and written round-robin; %d rounds of %d operations per side, "+
			"the two sides interleaved in chunks of %d so machine load lands on both; medians of the rounds. "+
			"Plain: table (tenant, key, value, PRIMARY KEY (tenant, key)) in its own file, same pragmas, "+
			"prepared SELECT, upserting INSERT. Cold: the tenant's cached DEKs dropped before every read "+
			"(one unwrap from the Key Vault emulator over HTTPS).", records, rounds, n, chunk)}
	return res, e.measure(ctx, o, res, n, rounds)
}

func (e *env) measure(ctx context.Context, o bench.Options, res *bench.Result, n, rounds int) error {
	o.Say("Get: encrypted (warm) vs plain")
	get, err := versus(ctx, n, rounds, e.plainGet, e.encGet)
	if err != nil {
		return err
	}
	o.Say("Put: encrypted vs plain")
	put, err := versus(ctx, n, rounds, e.plainPut, e.encPut)
	if err != nil {
		return err
	}
	o.Say("Get: cold vs warm")
	cold, err := versus(ctx, max(n/100, 20), rounds, e.encGet, e.coldGet)
	if err != nil {
		return err
	}
	res.Add("Get plain", get.base, "µs/op")
	res.Add("Get encrypted, warm DEK cache", get.op, "µs/op")
	g := res.Ratio("Get encrypted ÷ plain", get.ratio, 1)
	res.Add("Put plain", put.base, "µs/op")
	res.Add("Put encrypted", put.op, "µs/op")
	res.Ratio("Put encrypted ÷ plain", put.ratio, 1)
	res.Add("Get cold (one unwrap)", cold.op, "µs/op")
	res.Ratio("Get cold ÷ warm", cold.ratio, 1)
	res.Goal("warm Get ≤ 1.2× plain", g <= 1.2, fmt.Sprintf("%.2f×", g),
		"the seal check (the tenant's state read in the same statement as the record) and AES-GCM")
	res.Note("Put runs a transaction (BEGIN IMMEDIATE, the DEK use counter the rotation policy needs, the upsert, COMMIT) where plain is one autocommit upsert.")
	return nil
}

// comparison is the medians of rounds of versus: µs per operation of each
// side and the median of the rounds' ratios.
type comparison struct{ base, op, ratio float64 }

// versus runs rounds of n operations of base and op, interleaved in chunks.
func versus(ctx context.Context, n, rounds int, base, op func(context.Context, int) error) (comparison, error) {
	var bs, os, rs []float64
	for range rounds {
		var tb, to time.Duration
		for i := 0; i < n; i += chunk {
			k := min(chunk, n-i)
			d, err := timed(ctx, i, k, base)
			if err != nil {
				return comparison{}, err
			}
			tb += d
			if d, err = timed(ctx, i, k, op); err != nil {
				return comparison{}, err
			}
			to += d
		}
		bs = append(bs, tb.Seconds()*1e6/float64(n))
		os = append(os, to.Seconds()*1e6/float64(n))
		rs = append(rs, float64(to)/float64(tb))
	}
	return comparison{median(bs), median(os), median(rs)}, nil
}

func timed(ctx context.Context, from, n int, op func(context.Context, int) error) (time.Duration, error) {
	start := time.Now()
	for i := from; i < from+n; i++ {
		if err := op(ctx, i); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
