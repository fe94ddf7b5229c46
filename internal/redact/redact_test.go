package redact

import (
	"errors"
	"io/fs"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://admin:s3cretpw@127.0.0.1:4222", "nats://REDACTED@127.0.0.1:4222"},
		{"nats://t0ken@127.0.0.1:4222", "nats://REDACTED@127.0.0.1:4222"},
		{"nats://a:b@h1:4222,nats://c:d@h2:4222", "nats://REDACTED@h2:4222"},
		{"nats://h1:4222,c:d@h2:4222", "nats://REDACTED@h2:4222"},
		{"admin:pw@127.0.0.1:4222", "REDACTED@127.0.0.1:4222"},
		{"nats://admin:sp ace@h", "nats://REDACTED@h"},
		{"nats://admin:p@ss@h", "nats://REDACTED@h"},
		{"nats://admin:pa/ss@h", "nats://REDACTED@h"},
		{"nats://admin:p%40ss@h", "nats://REDACTED@h"},
		{"postgres://cmkd:pw@db.example.com:5432/cmkd?sslmode=verify-full", "postgres://REDACTED@db.example.com:5432/cmkd?sslmode=verify-full"},
		{"postgres://db.example.com/cmkd?user=cmkd&password=pw&sslmode=require", "postgres://db.example.com/cmkd?user=cmkd&password=REDACTED&sslmode=require"},
		{"postgres://db/cmkd?sslpassword=k3y&PassWord=x", "postgres://db/cmkd?sslpassword=REDACTED&PassWord=REDACTED"},
		{"postgres://db/cmkd?pass%77ord=x", "postgres://db/cmkd?pass%77ord=REDACTED"},
		{"host=db user=cmkd password=s3cret dbname=cmkd", "host=db user=cmkd password=REDACTED dbname=cmkd"},
		{"host=db password='it\\'s a s3cret' user=cmkd", "host=db password=REDACTED user=cmkd"},
		{"host=db password = s3cret user=cmkd", "host=db password = REDACTED user=cmkd"},
		{"host=db password= user=cmkd", "host=db password= REDACTED"},
		{"host=db password='x&://y@z' user=cmkd", "host=db password=REDACTED user=cmkd"},
		{"host=db password=", "host=db password="},
		{"https://cmkd.example.com/api/events?code=c0de&x=1", "https://cmkd.example.com/api/events?code=REDACTED&x=1"},
		{"https://cmkd.example.com/api/events?x=1&code=c0de#frag", "https://cmkd.example.com/api/events?x=1&code=REDACTED"},
		{"https://acct.blob.core.windows.net/c?sv=2022&sig=AbC%2Bd", "https://acct.blob.core.windows.net/c?sv=2022&sig=REDACTED"},
		{"https://h/x?mode=code", "https://h/x?mode=code"},
		{"https://h/x?barcode=1", "https://h/x?barcode=1"},
		{"nats://REDACTED@h?token=REDACTED", "nats://REDACTED@h?token=REDACTED"},
	} {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"connection refused", "connection refused"},
		{"connect to nats at nats://admin:pw@127.0.0.1:1: dial tcp 127.0.0.1:1: connection refused",
			"connect to nats at nats://REDACTED@127.0.0.1:1: dial tcp 127.0.0.1:1: connection refused"},
		{`parse "nats://admin:sp ace@127.0.0.1:1": net/url: invalid userinfo`,
			`parse "nats://REDACTED@127.0.0.1:1": net/url: invalid userinfo`},
		{`parse "nats://admin:q\"uote@h": bad`, `parse "nats://REDACTED@h": bad`},
		{`Post "https://h/api/events?code=c0de": EOF`, `Post "https://h/api/events?code=REDACTED": EOF`},
		{"GET https://h/api/events?code=c0de&x=1 403", "GET https://h/api/events?code=REDACTED&x=1 403"},
		{"dial: host=db user=cmkd password=s3cret failed", "dial: host=db user=cmkd password=REDACTED failed"},
		{`dsn "host=db password='a b' user=u"`, `dsn "host=db password=REDACTED user=u"`},
		{"cannot parse `host=db password=s3cret`: bad", "cannot parse `host=db password=REDACTED`: bad"},
		{"url=postgres://u:p@db/x", "url=postgres://REDACTED@db/x"},
		{"(nats://u:p@h)", "(nats://REDACTED@h)"},
		{"mail ops@example.com", "mail REDACTED@example.com"},
		{"can't reach github.com/x", "can't reach github.com/x"},
		{"key=https://v.vault.azure.net/keys/k", "key=https://v.vault.azure.net/keys/k"},
	} {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	if Error(nil) != nil {
		t.Fatal("Error(nil) is not nil")
	}
	plain := errors.New("connection refused")
	if Error(plain) != plain {
		t.Fatal("an error without credentials is not returned as it is")
	}
	cause := &url.Error{Op: "parse", URL: "nats://admin:s3cret@h", Err: fs.ErrInvalid}
	err := Error(cause)
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "nats://REDACTED@h") {
		t.Fatalf("Error() = %q", err)
	}
	var ue *url.Error
	if !errors.As(err, &ue) || !errors.Is(err, fs.ErrInvalid) {
		t.Fatal("the cause is not reachable")
	}
}

// FuzzRedact: whatever the input, redaction is stable (redacting again
// changes nothing) and leaves text without '@' or '=' alone; and a secret
// planted where credentials go never survives, whatever its bytes.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"nats://admin:s3cretpw@127.0.0.1:4222", "host=db password='a b' user=u", "https://h/x?code=c0de",
		`parse "nats://a:b c@h": bad`, "a@b@c", "password=password=x", "'", `"`, "://@",
	} {
		f.Add(s, "s3cret", "db.example.com")
	}
	f.Fuzz(func(t *testing.T, s, secret, host string) {
		for name, fn := range map[string]func(string) string{"URL": URL, "Text": Text} {
			once := fn(s)
			if twice := fn(once); twice != once {
				t.Fatalf("%s not stable: %q → %q → %q", name, s, once, twice)
			}
			if !strings.ContainsAny(s, "@=") && once != s {
				t.Fatalf("%s(%q) = %q changed text without credentials", name, s, once)
			}
		}
		if len(secret) < 3 || strings.ContainsAny(host, "@?&#'\"` \t\n\r\v\f\\=") {
			return
		}
		raw := func(s string) string { return s }
		escaped := url.QueryEscape
		quoted := func(s string) string { q := strconv.Quote(s); return q[1 : len(q)-1] }
		libpq := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace
		for _, c := range []struct {
			render func(string) string // the secret as the text carries it
			build  func(string) string // the text around it
			fn     func(string) string
		}{
			{raw, func(x string) string { return "nats://" + x + "@" + host }, URL},
			{raw, func(x string) string { return "nats://cmkd:" + x + "@" + host + ":4222" }, URL},
			{raw, func(x string) string { return "nats://" + host + ",nats://cmkd:" + x + "@" + host }, URL},
			{raw, func(x string) string { return "postgres://cmkd:" + x + "@" + host + "/db?sslmode=require" }, URL},
			{escaped, func(x string) string { return "postgres://" + host + "/db?password=" + x + "&sslmode=require" }, URL},
			{escaped, func(x string) string { return "https://" + host + "/api/events?code=" + x }, URL},
			{libpq, func(x string) string { return "host=" + host + " password='" + x + "' user=cmkd" }, URL},
			{quoted, func(x string) string { return `connect: parse "nats://cmkd:` + x + "@" + host + `": invalid` }, Text},
			{escaped, func(x string) string { return `Post "https://` + host + "/api/events?code=" + x + `": EOF` }, Text},
			{libpq, func(x string) string { return "open store host=" + host + " password='" + x + "' user=cmkd: refused" }, Text},
		} {
			hide := c.render(secret)
			if strings.Contains(c.build(Mark), hide) {
				continue // the secret is also part of what may be shown
			}
			in := c.build(hide)
			if out := c.fn(in); strings.Contains(out, hide) {
				t.Fatalf("%q → %q shows %q", in, out, hide)
			}
		}
	})
}
