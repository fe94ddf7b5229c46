package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/helmtest"
	"github.com/cmkd-io/cmkd/internal/natstest"
)

// chartPod is what the chart's Deployment says about the one container.
type chartPod struct {
	objs []helmtest.Object
	c    corev1.Container
	spec corev1.PodSpec
	yaml string // the ConfigMap's cmkd.yaml
}

func renderChart(t *testing.T, values map[string]any, apis ...string) chartPod {
	t.Helper()
	objs := helmtest.Render(t, values, apis...)
	d := helmtest.Must[appsv1.Deployment](t, objs)
	cm := helmtest.ConfigMap(t, objs, helmtest.Release)
	return chartPod{objs: objs, c: d.Spec.Template.Spec.Containers[0], spec: d.Spec.Template.Spec, yaml: cm.Data["cmkd.yaml"]}
}

// port is the container port named name.
func (p chartPod) port(t *testing.T, name string) int {
	t.Helper()
	for _, cp := range p.c.Ports {
		if cp.Name == name || strconv.Itoa(int(cp.ContainerPort)) == name {
			return int(cp.ContainerPort)
		}
	}
	t.Fatalf("the container has no port %s", name)
	return 0
}

// mountPath is where the pod mounts the volume of the given kind.
func (p chartPod) mountPath(t *testing.T, is func(corev1.Volume) bool) string {
	t.Helper()
	for _, v := range p.spec.Volumes {
		if !is(v) {
			continue
		}
		for _, m := range p.c.VolumeMounts {
			if m.Name == v.Name {
				return m.MountPath
			}
		}
	}
	t.Fatal("no such volume mounted")
	return ""
}

// configArgs writes the ConfigMap's cmkd.yaml into dir, where the
// container's --config points inside the ConfigMap's mount, and returns
// the container's args with that path moved into dir.
func (p chartPod) configArgs(t *testing.T, dir string) []string {
	t.Helper()
	mount := p.mountPath(t, func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == helmtest.Release })
	args := slices.Clone(p.c.Args)
	i := slices.Index(args, "--config")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("container args %v have no --config", args)
	}
	rel, err := filepath.Rel(mount, args[i+1])
	if err != nil || strings.HasPrefix(rel, "..") || rel != "cmkd.yaml" {
		t.Fatalf("--config %s is not the ConfigMap's cmkd.yaml mounted at %s", args[i+1], mount)
	}
	local := filepath.Join(dir, rel)
	if err := os.WriteFile(local, []byte(p.yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	args[i+1] = local
	return args
}

// setSecretEnv sets, as the kubelet would from the Secrets, every variable
// the container takes from a Secret.
func (p chartPod) setSecretEnv(t *testing.T) {
	t.Helper()
	for _, e := range p.c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			v := "from-secret-" + e.ValueFrom.SecretKeyRef.Name
			if e.Name == "CMKD_STORE_DSN" { // the loader checks its syntax
				v = "postgres://" + v + "@postgres:5432/cmkd"
			}
			t.Setenv(e.Name, v)
		}
	}
}

// listenPort is the port of a ":PORT" listen address.
func listenPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// TestDeployChartConfigLoads: every scenario's cmkd.yaml loads with cmkd's
// own strict loader, with the Secrets' variables set as the Deployment
// sets them, and its ports, paths and files are the ones the pod has.
func TestDeployChartConfigLoads(t *testing.T) {
	for _, sc := range helmtest.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			p := renderChart(t, sc.Values, sc.APIs...)
			p.setSecretEnv(t)
			args := p.configArgs(t, t.TempDir())
			cfg, err := loadConfig(args[slices.Index(args, "--config")+1])
			if err != nil {
				t.Fatalf("cmkd's loader refuses the chart's config: %v\n%s", err, p.yaml)
			}
			if got, want := listenPort(t, cfg.HTTP.Listen), p.port(t, "http"); got != want {
				t.Errorf("http.listen port %d, the container's http port %d", got, want)
			}
			switch cfg.Store.Driver {
			case "sqlite":
				data := p.mountPath(t, func(v corev1.Volume) bool { return v.PersistentVolumeClaim != nil })
				if path.Dir(cfg.Store.DSN) != data {
					t.Errorf("SQLite file %s is not on the data volume at %s", cfg.Store.DSN, data)
				}
			case "postgres":
				if !strings.Contains(cfg.Store.DSN, "from-secret-") {
					t.Errorf("PostgreSQL DSN %q does not come from the Secret", cfg.Store.DSN)
				}
			}
			if cfg.Sources.Webhook.Listen != "" {
				if got, want := listenPort(t, cfg.Sources.Webhook.Listen), p.port(t, "webhook"); got != want {
					t.Errorf("webhook listen port %d, the container's webhook port %d", got, want)
				}
				if cfg.Sources.Webhook.SharedSecret == "" && cfg.Sources.Webhook.Audience == "" {
					t.Error("webhook without authentication")
				}
			}
			if f := cfg.NATS.CredsFile; f != "" {
				mount := p.mountPath(t, func(v corev1.Volume) bool { return v.Secret != nil })
				if path.Dir(f) != mount {
					t.Errorf("nats.creds_file %s is not in the Secret mounted at %s", f, mount)
				}
			}
			if !cfg.NATS.CheckStreams || cfg.NATS.CreateStreams {
				t.Error("the chart's default is to check the operator's streams, not create them")
			}
			// The status topic, when given, is published to with cmkd's
			// Azure identity: no key or SAS in the ConfigMap.
			var want string
			if sc.Name == "everything" {
				want = helmtest.StatusTopic
			}
			if eg := cfg.Status.EventGrid; eg.Endpoint != want || eg.Key != "" || eg.SAS != "" {
				t.Errorf("status.eventgrid %+v, want endpoint %q with cmkd's Azure identity", eg, want)
			}
		})
	}
	// Whatever is merged in through `config` is read strictly too.
	p := renderChart(t, map[string]any{"config": map[string]any{"worker": map[string]any{"probe_intervall": "5m"}}})
	if _, err := loadConfig(p.configArgs(t, t.TempDir())[2]); err == nil || !strings.Contains(err.Error(), "probe_intervall") {
		t.Errorf("a misspelt key in config: %v; want the loader to refuse it", err)
	}
}

// TestDeployChartRun starts `cmkd run` with the container's args and the
// ConfigMap of a chart with every event source on, against the Key Vault
// and Event Grid emulators and a NATS holding deploy/nats's streams (in
// check-only mode, the chart's default). Only what a test cannot have from
// a cluster is set through CMKD_* variables: the emulators' credentials
// and CAs, a writable database path and the NATS address. Then it GETs the
// probes on the ports the chart declares, makes Event Grid's OPTIONS
// handshake on the webhook port, and checks that every metric the alert
// rules and the dashboard name is one cmkd exports.
func TestDeployChartRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ep, _ := startEmulatorCommand(t, ctx)
	kv, err := azkeys.NewClient(ep.KeyVault, staticToken("dev"), &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: trusting(t, ep.KeyVaultCA)},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil); err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t, -1, "")
	applyStreamFiles(t, ctx, natstest.JetStream(t, ns.ClientURL()))

	httpPort, webhookPort := freePort(t), freePort(t)
	p := renderChart(t, map[string]any{
		"http": map[string]any{"port": httpPort},
		"webhook": map[string]any{
			"enabled": true, "port": webhookPort, "sharedSecret": map[string]any{"name": "cmkd-webhook"},
		},
		"eventgrid": map[string]any{"endpoint": ep.EventGrid, "topic": ep.Topic, "subscription": ep.Subscription},
		"nats":      map[string]any{"queue": true},
	})
	dir := t.TempDir()
	args := p.configArgs(t, dir)
	p.setSecretEnv(t)
	for k, v := range map[string]string{
		"CMKD_KEYVAULT_CREDENTIAL": "static", "CMKD_KEYVAULT_TOKEN": "dev", "CMKD_KEYVAULT_CA_FILE": ep.KeyVaultCA,
		"CMKD_KEYVAULT_EMULATOR": "true", "CMKD_KEYVAULT_VAULTS": ep.KeyVault,
		"CMKD_SOURCES_EVENTGRID_KEY": ep.EventGridKey, "CMKD_SOURCES_EVENTGRID_CA_FILE": ep.EventGridCA,
		"CMKD_STORE_DSN": filepath.Join(dir, "cmkd.db"), "CMKD_NATS_URL": ns.ClientURL(),
		"CMKD_WORKER_PROBE_INTERVAL": "1s",
	} {
		t.Setenv(k, v)
	}
	cfgPath := args[slices.Index(args, "--config")+1]
	var out, errOut syncBuffer
	if code := run(ctx, []string{"tenant", "add", "acme", "--key", ep.KeyVault + "/keys/cmk", "--config", cfgPath}, &out, &errOut); code != exitOK {
		t.Fatalf("tenant add exited %d: %s", code, errOut.String())
	}

	rctx, stop := context.WithCancel(ctx)
	done := make(chan runResult, 1)
	go func() {
		var stderr syncBuffer
		code := run(rctx, args, &syncBuffer{}, &stderr)
		done <- runResult{code, stderr.String()}
	}()
	defer func() {
		stop()
		if r := <-done; r.code != exitOK {
			t.Errorf("cmkd run exited %d:\n%s", r.code, r.stderr)
		}
	}()
	alive := func() {
		select {
		case r := <-done:
			t.Fatalf("cmkd run exited %d:\n%s", r.code, r.stderr)
		default:
		}
	}

	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
	}{{"liveness", p.c.LivenessProbe}, {"readiness", p.c.ReadinessProbe}} {
		url := fmt.Sprintf("http://127.0.0.1:%d%s", p.port(t, pr.probe.HTTPGet.Port.String()), pr.probe.HTTPGet.Path)
		eventually.NoError(t, 30*time.Second, pr.name+" probe "+url, func() (bool, error) {
			alive()
			return httpStatus(url) == http.StatusOK, nil
		})
	}

	// Event Grid's CloudEvents handshake on the port the Service and
	// Ingress send webhook traffic to.
	req, _ := http.NewRequestWithContext(ctx, http.MethodOptions,
		fmt.Sprintf("http://127.0.0.1:%d/events?code=from-secret-cmkd-webhook", p.port(t, "webhook")), nil)
	req.Header.Set("WebHook-Request-Origin", "eventgrid.azure.net")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("webhook OPTIONS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("WebHook-Allowed-Origin") == "" {
		t.Errorf("webhook OPTIONS answered %d with WebHook-Allowed-Origin %q", resp.StatusCode, resp.Header.Get("WebHook-Allowed-Origin"))
	}

	// The metrics, once the key has been probed, at the path the
	// ServiceMonitor scrapes.
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", p.port(t, "http"))
	// A series appears once there is something to count (a probed key, a
	// handled event): wait for all of them, then report what is missing.
	selected := monitoringNames(t)
	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		alive()
		exported := scrapeNames(t, metricsURL)
		missing = missing[:0]
		for where, names := range selected {
			for _, n := range names {
				if !exported[n] {
					missing = append(missing, fmt.Sprintf("%s selects %q", where, n))
				}
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("%s, which cmkd does not export", m)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// scrapeNames returns the series names /metrics exposes for each family
// that has at least one series (a histogram's _bucket, _sum and _count).
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url) // #nosec G107 -- a loopback test server
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.IndexAny(l, "{ "); i > 0 {
			names[l[:i]] = true
		}
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return names
}

// monitoringNames parses every PromQL expression of the alert rules and
// the dashboard with Prometheus' own parser and returns the metrics each
// selects, by where it is.
func monitoringNames(t *testing.T) map[string][]string {
	t.Helper()
	exprs := map[string]string{} // where → expression
	raw, err := os.ReadFile("../../deploy/monitoring/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs["alert "+r.Alert] = r.Expr
		}
	}
	raw, err = os.ReadFile("../../deploy/monitoring/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			exprs[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)
	for _, v := range dash.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			exprs["variable "+v.Name] = m[1]
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("found only %d expressions in the alert rules and dashboard", len(exprs))
	}
	// Grafana replaces its range variables before Prometheus sees a query.
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
	p := parser.NewParser(parser.Options{})
	selected := map[string][]string{}
	for where, e := range exprs {
		ast, err := p.ParseExpr(grafana.Replace(e))
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, e)
			continue
		}
		parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			selected[where] = append(selected[where], vs.Name)
			return nil
		})
		if len(selected[where]) == 0 {
			t.Errorf("%s selects no metric: %s", where, e)
		}
	}
	return selected
}

// TestDeployChartDefaultsRun starts `cmkd run` from the default values'
// ConfigMap with nothing overridden but what a cluster provides: the
// variables the workload identity webhook injects (AZURE_CLIENT_ID,
// AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST), the
// volume for the database, and a NATS holding deploy/nats's streams. Only
// the health port is chosen by the test, to be free. cmkd accepts the
// config, builds its workload identity credential, checks the streams and
// becomes ready.
func TestDeployChartDefaultsRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ns := natstest.Start(t, -1, "")
	applyStreamFiles(t, ctx, natstest.JetStream(t, ns.ClientURL()))

	p := renderChart(t, map[string]any{"http": map[string]any{"port": freePort(t)}})
	dir := t.TempDir()
	args := p.configArgs(t, dir)
	token := filepath.Join(dir, "azure-identity-token")
	if err := os.WriteFile(token, []byte("not-a-real-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001", "AZURE_TENANT_ID": "00000000-0000-0000-0000-000000000002",
		"AZURE_FEDERATED_TOKEN_FILE": token, "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/",
		"CMKD_STORE_DSN": filepath.Join(dir, "cmkd.db"), "CMKD_NATS_URL": ns.ClientURL(),
	} {
		t.Setenv(k, v)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan runResult, 1)
	go func() {
		var stderr syncBuffer
		code := run(rctx, args, &syncBuffer{}, &stderr)
		done <- runResult{code, stderr.String()}
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", p.port(t, p.c.ReadinessProbe.HTTPGet.Port.String()), p.c.ReadinessProbe.HTTPGet.Path)
	eventually.NoError(t, 30*time.Second, "cmkd run with the default values to be ready", func() (bool, error) {
		select {
		case r := <-done:
			t.Fatalf("cmkd run with the chart's defaults exited %d:\n%s", r.code, r.stderr)
		default:
		}
		return httpStatus(url) == http.StatusOK, nil
	})
	stop()
	if r := <-done; r.code != exitOK {
		t.Fatalf("cmkd run exited %d:\n%s", r.code, r.stderr)
	}
}
