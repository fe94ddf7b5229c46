package store

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"slices"

	"github.com/cmkd-io/cmkd"
)

// A DEK of n layers is kept as n shares, each wrapped under its layer's key:
// the DEK is their XOR. Every share but one is random and independent of
// the DEK, so whoever holds all keys but one learns nothing about it — not
// a bit more than from no key at all — and a record stays unreadable. The
// cost of the second layer is one more unwrap when a DEK is first read;
// records are encrypted once, under the DEK, so a warm read costs what it
// did with one layer. A share moved to another DEK (or tenant) XORs to a
// key that fails the DEK's check value.

// splitShares splits dek into one share per layer.
func splitShares(dek []byte, n int) ([][]byte, error) {
	shares := make([][]byte, n)
	last := slices.Clone(dek)
	for i := range n - 1 {
		s, err := randomDEK()
		if err != nil {
			return nil, err
		}
		subtle.XORBytes(last, last, s)
		shares[i] = s
	}
	shares[n-1] = last
	return shares, nil
}

func clearAll(shares [][]byte) {
	for _, s := range shares {
		clear(s)
	}
}

// groupDEKs splits layers, ordered by DEK, into one slice per DEK.
func groupDEKs(layers []DEK) [][]DEK {
	var out [][]DEK
	for i := 0; i < len(layers); {
		j := i + 1
		for j < len(layers) && layers[j].ID == layers[i].ID {
			j++
		}
		out = append(out, layers[i:j])
		i = j
	}
	return out
}

// unwrapDEK unwraps every layer of one DEK, each checked against its
// share's key check value, and their XOR against the DEK's. The caller
// zeroes the returned key.
func (s *Store) unwrapDEK(ctx context.Context, layers []DEK) ([]byte, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("dek: %w: no layer", ErrIntegrity)
	}
	d := layers[0]
	k, err := s.unwrap(ctx, d, d.Current)
	if err != nil {
		return nil, err
	}
	for _, l := range layers[1:] {
		share, err := s.unwrap(ctx, l, l.Current)
		if err != nil {
			clear(k)
			return nil, err
		}
		subtle.XORBytes(k, k, share)
		clear(share)
	}
	if !checkKCV(k, d.FullKCV) {
		clear(k)
		s.log.Error("dek key check value mismatch across layers", slog.String("tenant", d.Tenant), slog.String("dek", d.ID))
		return nil, fmt.Errorf("unwrap dek %s: %w: its layers do not make its key", d.ID, ErrIntegrity)
	}
	return k, nil
}

// wrapLayers wraps dek for tenant t's layers: one share per layer, each
// wrapped under the version t's DEKs in that layer go under and unwrapped
// once remotely, before any data depends on it.
func (s *Store) wrapLayers(ctx context.Context, t Tenant, d DEK, dek []byte) ([]DEK, error) {
	tl := t.Layers()
	if len(tl) == 0 {
		return nil, fmt.Errorf("tenant %s: %w: it has no key", t.ID, ErrNoKey)
	}
	shares, err := splitShares(dek, len(tl))
	if err != nil {
		return nil, err
	}
	defer clearAll(shares)
	d.FullKCV = KeyCheckValue(dek)
	out := make([]DEK, len(tl))
	for i, l := range tl {
		out[i] = d
		out[i].Layer, out[i].Key, out[i].KCV = l.Layer, l.Key, KeyCheckValue(shares[i])
		if out[i].Current, err = s.kek.Wrap(ctx, wrapUnder(l), shares[i]); err != nil {
			return nil, fmt.Errorf("wrap dek %s for the %s layer under %s: %w", d.ID, l.Layer, l.Key, err)
		}
		if err := s.verify(ctx, out[i].Current, out[i].KCV, "dek "+d.ID+" "+l.Layer+" layer"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// wrapUnder is the key version a new DEK's layer goes under: the version
// the store records as the one the layer's DEKs are brought to, once a
// check or a rewrap has recorded one. Not "the latest" as this process's
// Key Vault client last saw it: after a rewrap announced version.retired,
// a process with a stale view would otherwise make new DEKs under the
// retired version. A layer with no version recorded yet takes the latest.
func wrapUnder(l TenantLayer) cmkd.KeyID {
	if l.Version == "" {
		return l.Key
	}
	return l.Key.At(l.Version)
}

// kids lists the wrapping key ids of a DEK's layers.
func kids(layers []DEK) []cmkd.KeyID {
	out := make([]cmkd.KeyID, len(layers))
	for i, l := range layers {
		out[i] = l.Current.KID
	}
	return out
}

// HasLayers reports whether a DEK, given as its layers, has exactly the
// tenant's layers, each under the layer's key: what a backend checks before
// it stores a new DEK.
func HasLayers(t Tenant, layers []DEK) bool {
	tl := t.Layers()
	if len(tl) != len(layers) {
		return false
	}
	for _, l := range tl {
		if !slices.ContainsFunc(layers, func(d DEK) bool { return d.Layer == l.Layer && d.Key == l.Key }) {
			return false
		}
	}
	return true
}

// OneLayer is d as the only layer of its DEK, for tools and tests that
// write DEKs themselves: the customer layer unless d names one, the share
// being the DEK itself.
func OneLayer(d DEK) []DEK {
	if d.Layer == "" {
		d.Layer = LayerCustomer
	}
	if d.FullKCV == nil {
		d.FullKCV = d.KCV
	}
	return []DEK{d}
}
