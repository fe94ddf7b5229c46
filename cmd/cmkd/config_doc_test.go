package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"testing"

	"github.com/cmkd-io/cmkd/events/webhook"
)

// TestWebhookSecretHeaderDocumented keeps the header name operators read in
// config.go the one the webhook checks: Event Grid sends only the header
// named in its delivery attributes, so a wrong name in the docs means every
// delivery is refused.
func TestWebhookSecretHeaderDocumented(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../config/config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "WebhookSource" {
			return true
		}
		for _, fld := range ts.Type.(*ast.StructType).Fields.List {
			for _, name := range fld.Names {
				if name.Name == "SharedSecret" {
					doc = fld.Doc.Text()
				}
			}
		}
		return false
	})
	if doc == "" {
		t.Fatal("WebhookSource.SharedSecret has no doc comment in config.go")
	}
	names := regexp.MustCompile(`\bX-[A-Za-z0-9-]+`).FindAllString(doc, -1)
	if len(names) == 0 {
		t.Fatalf("WebhookSource.SharedSecret's comment names no header; want %s:\n%s", webhook.DefaultSecretHeader, doc)
	}
	for _, h := range names {
		if h != webhook.DefaultSecretHeader {
			t.Errorf("WebhookSource.SharedSecret's comment names header %s; the webhook reads %s", h, webhook.DefaultSecretHeader)
		}
	}
}
