package deploy_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestDeployAlertStyle: every alert follows the monitoring-mixins style
// (Cmkd prefix, severity, summary, description) and links a runbook
// section of docs/operations.md that exists. Whether the metrics exist is
// checked against a running cmkd in cmd/cmkd (TestDeployChartRun).
func TestDeployAlertStyle(t *testing.T) {
	raw, err := os.ReadFile("monitoring/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
				Annotations      map[string]string
			}
		}
	}
	if err := yaml.UnmarshalStrict(raw, &rules); err != nil {
		t.Fatal(err)
	}
	runbook, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if !strings.HasPrefix(r.Alert, "Cmkd") {
				t.Errorf("alert %s: name does not start with Cmkd", r.Alert)
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("alert %s: severity %q is not critical, warning or info", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("alert %s: no %s", r.Alert, a)
				}
			}
			want := "docs/operations.md#" + strings.ToLower(r.Alert)
			if !strings.HasSuffix(r.Annotations["runbook_url"], want) {
				t.Errorf("alert %s: runbook_url %s, want …/%s", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !strings.Contains(string(runbook), "\n### "+r.Alert+"\n") {
				t.Errorf("alert %s: docs/operations.md has no section ### %s", r.Alert, r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert rules")
	}
}

// TestDeployDashboard: a stable uid, no id, and every panel and query on
// the $datasource variable, never a fixed data source.
func TestDeployDashboard(t *testing.T) {
	raw, err := os.ReadFile("monitoring/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		ID         *int   `json:"id"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct{ Name, Type string }
		}
		Panels []struct {
			Title      string
			Datasource struct{ UID string }
			Targets    []struct {
				Datasource struct{ UID string }
				Expr       string
			}
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.ID != nil || d.UID != "cmkd-overview" {
		t.Errorf("id %v uid %q; want no id and the stable uid cmkd-overview", d.ID, d.UID)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["namespace"] == "" || vars["job"] == "" {
		t.Errorf("variables %v; want datasource, namespace and job", vars)
	}
	for _, p := range d.Panels {
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q uses data source %q", p.Title, p.Datasource.UID)
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query uses data source %q", p.Title, tg.Datasource.UID)
			}
			if !strings.Contains(tg.Expr, `namespace=~"$namespace"`) {
				t.Errorf("panel %q: query ignores the namespace variable: %s", p.Title, tg.Expr)
			}
		}
	}
}
