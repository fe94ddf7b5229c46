// Package helmtest renders deploy/helm/cmkd with the Helm library, as
// `helm template` would, and decodes every object strictly into its
// Kubernetes Go type, so that tests of the chart need no helm binary and
// no cluster.
package helmtest

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// Release and namespace every render uses.
const (
	Release   = "cmkd"
	Namespace = "cmkd"
)

// MonitoringAPIs are the API versions a cluster with the Prometheus
// operator's CRDs reports.
var MonitoringAPIs = []string{"monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule"}

// ChartDir is deploy/helm/cmkd in this repository.
func ChartDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "helm", "cmkd")
}

// Object is one rendered object, decoded into its Go type.
type Object struct {
	Template   string // the template that rendered it
	Kind, Name string
	YAML       []byte
	Obj        any // *appsv1.Deployment, *corev1.ConfigMap, ...
}

// kinds maps apiVersion/kind to a new value of its Go type; a rendered
// object of any other kind fails the render.
var kinds = map[string]func() any{
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"v1/PersistentVolumeClaim":                func() any { return new(corev1.PersistentVolumeClaim) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"networking.k8s.io/v1/Ingress":            func() any { return new(networkingv1.Ingress) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(monitoringv1.ServiceMonitor) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(monitoringv1.PrometheusRule) },
}

// Render renders the chart with values over its defaults, on a cluster
// that also serves apis, and decodes each object strictly: a field its
// type does not have fails the test.
func Render(tb testing.TB, values map[string]any, apis ...string) []Object {
	tb.Helper()
	objs, err := TryRender(values, apis...)
	if err != nil {
		tb.Fatal(err)
	}
	return objs
}

// Manifests renders like Render and returns the YAML stream `helm
// template` prints, in template order.
func Manifests(tb testing.TB, values map[string]any, apis ...string) []byte {
	tb.Helper()
	var b bytes.Buffer
	for _, o := range Render(tb, values, apis...) {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", o.Template, bytes.TrimSpace(o.YAML))
	}
	return b.Bytes()
}

// TryRender is Render returning the error, for values the chart must refuse.
func TryRender(values map[string]any, apis ...string) ([]Object, error) {
	ch, err := loader.Load(ChartDir())
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.APIVersions = append(caps.APIVersions, apis...)
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{
		Name: Release, Namespace: Namespace, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, err
	}
	out, err := engine.Engine{Strict: true}.Render(ch, vals)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	slices.Sort(names)
	var objs []Object
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(out[n], "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			o, err := decode(n, []byte(doc))
			if err != nil {
				return nil, err
			}
			objs = append(objs, o)
		}
	}
	return objs, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for l := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}

func decode(template string, doc []byte) (Object, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return Object{}, fmt.Errorf("%s: %w\n%s", template, err, doc)
	}
	mk, ok := kinds[meta.APIVersion+"/"+meta.Kind]
	if !ok {
		return Object{}, fmt.Errorf("%s: %s %s is not a kind this test knows", template, meta.APIVersion, meta.Kind)
	}
	obj := mk()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return Object{}, fmt.Errorf("%s: %s %s does not decode strictly: %w\n%s", template, meta.Kind, meta.Metadata.Name, err, doc)
	}
	return Object{Template: template, Kind: meta.Kind, Name: meta.Metadata.Name, YAML: doc, Obj: obj}, nil
}

// Get returns the only object of type T, and whether there was one; two
// fail the test.
func Get[T any](tb testing.TB, objs []Object) (*T, bool) {
	tb.Helper()
	all := All[T](objs)
	switch len(all) {
	case 0:
		return nil, false
	case 1:
		return all[0], true
	}
	tb.Fatalf("rendered %d objects of type %T, want at most one", len(all), new(T))
	return nil, false
}

// Must is Get for an object that must be there.
func Must[T any](tb testing.TB, objs []Object) *T {
	tb.Helper()
	o, ok := Get[T](tb, objs)
	if !ok {
		tb.Fatalf("rendered no %T", new(T))
	}
	return o
}

// All returns every object of type T.
func All[T any](objs []Object) []*T {
	var all []*T
	for _, o := range objs {
		if t, ok := o.Obj.(*T); ok {
			all = append(all, t)
		}
	}
	return all
}

// ConfigMap returns the ConfigMap named name.
func ConfigMap(tb testing.TB, objs []Object, name string) *corev1.ConfigMap {
	tb.Helper()
	for _, cm := range All[corev1.ConfigMap](objs) {
		if cm.Name == name {
			return cm
		}
	}
	tb.Fatalf("rendered no ConfigMap %s", name)
	return nil
}

// Scenario is one set of values the chart is tested with.
type Scenario struct {
	Name   string
	Values map[string]any
	APIs   []string
}

// StatusTopic is the status topic endpoint of the "everything" scenario.
const StatusTopic = "https://cmkd-kv-status.westeurope-1.eventgrid.azure.net/api/events"

// Scenarios are the installs an operator makes: the defaults (SQLite, pull
// mode), PostgreSQL with 3 replicas, webhook push mode, and everything
// optional turned on. Each call returns fresh maps.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "defaults", Values: map[string]any{}},
		{Name: "postgres-3", Values: map[string]any{
			"replicaCount": 3,
			"store":        map[string]any{"driver": "postgres", "postgres": map[string]any{"dsnSecret": map[string]any{"name": "cmkd-postgres"}}},
			"azure":        map[string]any{"clientId": "00000000-0000-0000-0000-000000000001"},
			"eventgrid": map[string]any{
				"endpoint": "https://cmkd-ns.westeurope-1.eventgrid.azure.net", "topic": "keyvault", "subscription": "cmkd",
			},
		}},
		{Name: "webhook", Values: map[string]any{
			"webhook": map[string]any{
				"enabled": true, "sharedSecret": map[string]any{"name": "cmkd-webhook"},
				"audience": "api://cmkd-webhook", "issuer": "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000002/v2.0",
				"jwksURL":             "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000002/discovery/v2.0/keys",
				"allowedApplications": []any{"4962773b-9cdb-44cf-a8bf-237846a00ab7"},
			},
			"ingress": map[string]any{"enabled": true, "className": "nginx", "host": "cmkd.example.com"},
		}},
		{Name: "everything", APIs: MonitoringAPIs, Values: map[string]any{
			"replicaCount": 2,
			"store":        map[string]any{"driver": "postgres", "postgres": map[string]any{"dsnSecret": map[string]any{"name": "cmkd-postgres"}}},
			"azure": map[string]any{
				"clientId": "00000000-0000-0000-0000-000000000001", "tenantId": "00000000-0000-0000-0000-000000000002",
				"tokenExpiration": "3600",
			},
			"keyvault": map[string]any{"vaults": []any{"https://cmkd-kv.vault.azure.net"}},
			"eventgrid": map[string]any{
				"endpoint": "https://cmkd-ns.westeurope-1.eventgrid.azure.net", "topic": "keyvault", "subscription": "cmkd",
			},
			"webhook":          map[string]any{"enabled": true, "sharedSecret": map[string]any{"name": "cmkd-webhook"}},
			"status":           map[string]any{"eventgridEndpoint": StatusTopic},
			"nats":             map[string]any{"queue": true, "credsSecret": map[string]any{"name": "cmkd-nats"}},
			"config":           map[string]any{"worker": map[string]any{"probe_interval": "5m"}},
			"serviceMonitor":   map[string]any{"enabled": true, "additionalLabels": map[string]any{"release": "kube-prometheus-stack"}},
			"prometheusRule":   map[string]any{"enabled": true, "additionalLabels": map[string]any{"release": "kube-prometheus-stack"}},
			"grafanaDashboard": map[string]any{"enabled": true},
			"networkPolicy":    map[string]any{"enabled": true},
			"ingress":          map[string]any{"enabled": true, "host": "cmkd.example.com"},
		}},
	}
}
