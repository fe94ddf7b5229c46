package main

import (
	"net"
	"strings"
	"testing"
)

// TestCLINATSErrorHidesCredentials: a NATS URL may carry a user and
// password or a token; when the connection fails, the message says where
// cmkd tried to connect but not with what.
func TestCLINATSErrorHidesCredentials(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	e := newCLIEnv(t, false)
	for _, tc := range []struct {
		url     string
		secrets []string
	}{
		{"nats://admin:s3cretpw@" + addr, []string{"s3cretpw"}},
		{"nats://t0kenValue@" + addr, []string{"t0kenValue"}},
		{"nats://" + addr + ",nats://ops:an0therpw@" + addr, []string{"an0therpw"}},
		{"ops:bareListPw@" + addr, []string{"bareListPw"}},
		{"nats://admin:sp4ce pw9@" + addr, []string{"sp4ce", "pw9"}},
		{"nats://admin:p%40ss%2Fw0rd@" + addr, []string{"p%40ss%2Fw0rd", "p@ss/w0rd", "w0rd"}},
	} {
		e.cfg.NATS.URL = tc.url
		e.writeConfig()
		errs := e.wantExit(exitError, "audit", "tail")
		for _, s := range tc.secrets {
			if strings.Contains(errs, s) {
				t.Errorf("nats url %q: the error shows %q: %q", tc.url, s, errs)
			}
		}
		if !strings.Contains(errs, "nats") {
			t.Errorf("nats url %q: the error does not say it was NATS: %q", tc.url, errs)
		}
	}
}
