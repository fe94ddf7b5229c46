package chaos

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// secretScanner finds any of a set of secrets, raw or in the encodings a
// log or a JSON document would carry them in (hex, base64, base64url),
// in one pass over the bytes: every form is indexed by its first eight
// bytes.
type secretScanner struct {
	forms map[uint64][][]byte
}

func newSecretScanner(secrets [][]byte) *secretScanner {
	s := &secretScanner{forms: map[uint64][][]byte{}}
	for _, sec := range secrets {
		for _, f := range [][]byte{
			sec,
			[]byte(hex.EncodeToString(sec)),
			[]byte(strings.ToUpper(hex.EncodeToString(sec))),
			[]byte(base64.StdEncoding.EncodeToString(sec)[:40]),
			[]byte(base64.URLEncoding.EncodeToString(sec)[:40]),
		} {
			if len(f) < 8 {
				continue
			}
			k := binary.LittleEndian.Uint64(f)
			s.forms[k] = append(s.forms[k], f)
		}
	}
	return s
}

// scan reports whether b holds a secret in any form.
func (s *secretScanner) scan(b []byte) bool {
	if len(s.forms) == 0 {
		return false
	}
	for i := 0; i+8 <= len(b); i++ {
		cands, ok := s.forms[binary.LittleEndian.Uint64(b[i:])]
		if !ok {
			continue
		}
		for _, f := range cands {
			if bytes.HasPrefix(b[i:], f) {
				return true
			}
		}
	}
	return false
}

// scanDir scans every regular file under dir, and returns the ones that
// hold a secret.
func (s *secretScanner) scanDir(dir string) ([]string, error) {
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsPermission(err) || os.IsNotExist(err) {
				return nil // a server's file that came and went
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path) // #nosec G304 -- files the run wrote, under its own directory
		if err != nil {
			return nil
		}
		if s.scan(b) {
			rel, _ := filepath.Rel(dir, path)
			hits = append(hits, rel)
		}
		return nil
	})
	return hits, err
}
