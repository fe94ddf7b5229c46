package api_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cmkd-io/cmkd/api"
)

// The OpenAPI document describes exactly the routes the server serves,
// each answering its problems as problem details.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("../docs/api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI    string                    `yaml:"openapi"`
		Paths      map[string]map[string]any `yaml:"paths"`
		Components struct {
			SecuritySchemes map[string]map[string]any `yaml:"securitySchemes"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	var documented, served []string
	for path, item := range doc.Paths {
		for method, op := range item {
			if method == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			if _, ok := responses["401"]; !ok {
				t.Errorf("%s %s documents no 401", method, path)
			}
		}
	}
	for _, r := range api.Routes {
		served = append(served, r.Pattern())
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("documented routes\n%s\nserved routes\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
	if doc.Components.SecuritySchemes["entra"]["scheme"] != "bearer" || doc.Components.SecuritySchemes["mutualTLS"]["type"] != "mutualTLS" {
		t.Fatalf("security schemes %v", doc.Components.SecuritySchemes)
	}
}
