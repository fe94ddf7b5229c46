package deploy_test

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/cmkd-io/cmkd/internal/helmtest"
)

var update = flag.Bool("update", false, "rewrite kubernetes/cmkd.yaml from the chart's defaults")

// TestChartScenarios renders every scenario and asserts what an operator
// relies on in each: restricted pod security, the probes, the workload
// identity wiring, replicas and disruption budget, and the optional pieces.
func TestDeployChartScenarios(t *testing.T) {
	for _, sc := range helmtest.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			objs := helmtest.Render(t, sc.Values, sc.APIs...)
			d := helmtest.Must[appsv1.Deployment](t, objs)
			pod := d.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			assertRestricted(t, pod, c)
			assertProbes(t, c)
			assertVolumes(t, pod, c)

			sa := helmtest.Must[corev1.ServiceAccount](t, objs)
			if pod.ServiceAccountName != sa.Name {
				t.Errorf("pod runs as ServiceAccount %q, the chart made %q", pod.ServiceAccountName, sa.Name)
			}
			if got := d.Spec.Template.Labels["azure.workload.identity/use"]; got != "true" {
				t.Errorf(`pod label azure.workload.identity/use = %q, want "true" (a pod label, not a ServiceAccount one)`, got)
			}
			if _, ok := sa.Labels["azure.workload.identity/use"]; ok {
				t.Error("azure.workload.identity/use is on the ServiceAccount; the webhook reads it from the pod")
			}

			pdb, hasPDB := helmtest.Get[policyv1.PodDisruptionBudget](t, objs)
			pvc, hasPVC := helmtest.Get[corev1.PersistentVolumeClaim](t, objs)
			replicas := *d.Spec.Replicas
			switch replicas {
			case 1:
				if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
					t.Errorf("one SQLite replica updates with %s, want Recreate (a ReadWriteOnce volume has one writer)", d.Spec.Strategy.Type)
				}
				if !hasPVC || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
					t.Error("SQLite mode has no ReadWriteOnce PersistentVolumeClaim")
				}
				if hasPDB {
					t.Error("a PodDisruptionBudget on one replica blocks node drains")
				}
			default:
				if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
					t.Errorf("%d replicas update with %s, want RollingUpdate", replicas, d.Spec.Strategy.Type)
				}
				if hasPVC {
					t.Error("PostgreSQL mode made a PersistentVolumeClaim")
				}
				if !hasPDB || pdb.Spec.MinAvailable.IntValue() != 1 {
					t.Errorf("%d replicas without a PodDisruptionBudget of minAvailable 1", replicas)
				}
				if len(pod.TopologySpreadConstraints) == 0 {
					t.Errorf("%d replicas without topology spread constraints", replicas)
				}
				if !hasSecretEnv(c, "CMKD_STORE_DSN") {
					t.Error("PostgreSQL mode: CMKD_STORE_DSN does not come from a Secret")
				}
			}

			svc := helmtest.Must[corev1.Service](t, objs)
			assertServicePorts(t, svc, c)
		})
	}
}

func assertRestricted(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("no pod or container security context")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("runAsNonRoot is not set on pod and container")
	}
	if psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Error("pod does not run as 65532, the distroless nonroot user")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem is writable")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("privilege escalation is allowed")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v, want drop ALL and add none", sc.Capabilities)
	}
	for _, s := range []*corev1.SeccompProfile{psc.SeccompProfile, sc.SeccompProfile} {
		if s == nil || s.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("seccomp profile %+v, want RuntimeDefault", s)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("no CPU and memory requests")
	}
	if !c.Resources.Limits.Cpu().IsZero() {
		t.Error("a CPU limit throttles rewraps; the chart sets none by default")
	}
}

// assertProbes: liveness asks /healthz (the process only), readiness
// /readyz, both on the container's http port.
func assertProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s probe GETs %s, want %s", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if _, ok := containerPort(c, p.probe.HTTPGet.Port.String()); !ok {
			t.Errorf("%s probe port %s is not a port of the container", p.name, p.probe.HTTPGet.Port.String())
		}
	}
}

func containerPort(c corev1.Container, nameOrNumber string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == nameOrNumber || nameOrNumber == strconv.Itoa(int(p.ContainerPort)) {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// assertVolumes: with a read-only root, only /tmp and the data directory
// are writable, and the config comes from the ConfigMap.
func assertVolumes(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	var tmp bool
	for _, m := range c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			t.Errorf("mount %s has no volume", m.Name)
			continue
		}
		writable := !m.ReadOnly && v.ConfigMap == nil && v.Secret == nil
		switch {
		case m.MountPath == "/tmp":
			tmp = v.EmptyDir != nil
		case writable && v.PersistentVolumeClaim == nil:
			t.Errorf("%s is writable and not the database's volume", m.MountPath)
		}
	}
	if !tmp {
		t.Error("no emptyDir on /tmp")
	}
}

func hasSecretEnv(c corev1.Container, name string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != "" {
			return true
		}
	}
	return false
}

// assertServicePorts: every Service port targets a named container port.
func assertServicePorts(t *testing.T, svc *corev1.Service, c corev1.Container) {
	t.Helper()
	for _, p := range svc.Spec.Ports {
		cp, ok := containerPort(c, p.TargetPort.String())
		if !ok {
			t.Errorf("Service port %s targets %s, which the container does not have", p.Name, p.TargetPort.String())
		} else if cp != p.Port {
			t.Logf("Service port %s %d → container %d", p.Name, p.Port, cp)
		}
	}
}

// TestChartWebhook: push mode exposes the webhook port through the
// Service and routes only its path through the Ingress.
func TestDeployChartWebhook(t *testing.T) {
	sc := scenario(t, "webhook")
	objs := helmtest.Render(t, sc.Values, sc.APIs...)
	c := helmtest.Must[appsv1.Deployment](t, objs).Spec.Template.Spec.Containers[0]
	if _, ok := containerPort(c, "webhook"); !ok {
		t.Fatal("no webhook container port")
	}
	if !hasSecretEnv(c, "CMKD_SOURCES_WEBHOOK_SHARED_SECRET") {
		t.Error("the webhook's shared secret does not come from a Secret")
	}
	ing := helmtest.Must[networkingv1.Ingress](t, objs)
	paths := ing.Spec.Rules[0].HTTP.Paths
	if len(paths) != 1 || paths[0].Path != "/events" || paths[0].Backend.Service.Port.Name != "webhook" {
		t.Errorf("Ingress paths %+v, want only /events to the webhook port", paths)
	}
	if cm := helmtest.ConfigMap(t, objs, helmtest.Release); strings.Contains(cm.Data["cmkd.yaml"], "shared_secret") {
		t.Error("the webhook secret is in the ConfigMap")
	}
}

// TestChartEverything: the optional pieces, each behind its value.
func TestDeployChartEverything(t *testing.T) {
	sc := scenario(t, "everything")
	objs := helmtest.Render(t, sc.Values, sc.APIs...)

	sa := helmtest.Must[corev1.ServiceAccount](t, objs)
	if sa.Annotations["azure.workload.identity/client-id"] != "00000000-0000-0000-0000-000000000001" {
		t.Errorf("ServiceAccount annotations %v lack azure.workload.identity/client-id", sa.Annotations)
	}
	d := helmtest.Must[appsv1.Deployment](t, objs)
	if d.Spec.Template.Annotations["azure.workload.identity/service-account-token-expiration"] != "3600" {
		t.Error("token expiration annotation missing from the pod")
	}

	sm := helmtest.Must[monitoringv1.ServiceMonitor](t, objs)
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v, want the http port's /metrics", sm.Spec.Endpoints)
	}
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Error("ServiceMonitor lacks its additional labels")
	}

	rule := helmtest.Must[monitoringv1.PrometheusRule](t, objs)
	var file monitoringv1.PrometheusRuleSpec
	raw, err := os.ReadFile("monitoring/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, &file); err != nil {
		t.Fatalf("monitoring/alerts.yaml: %v", err)
	}
	if len(rule.Spec.Groups) == 0 || !equalJSON(t, rule.Spec, file) {
		t.Error("the chart's PrometheusRule is not monitoring/alerts.yaml")
	}

	dash := helmtest.ConfigMap(t, objs, helmtest.Release+"-dashboard")
	if dash.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", dash.Labels)
	}
	want, err := os.ReadFile("monitoring/dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(dash.Data["cmkd.json"]) != strings.TrimSpace(string(want)) {
		t.Error("the chart's dashboard is not monitoring/dashboard.json")
	}

	var ingressPorts, egressPorts []string
	for _, np := range helmtest.All[networkingv1.NetworkPolicy](objs) {
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				ingressPorts = append(ingressPorts, p.Port.String())
			}
		}
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				egressPorts = append(egressPorts, p.Port.String())
			}
		}
	}
	slices.Sort(ingressPorts)
	slices.Sort(egressPorts)
	if !slices.Equal(ingressPorts, []string{"http", "webhook"}) {
		t.Errorf("NetworkPolicy ingress ports %v, want only http (health, metrics) and webhook", ingressPorts)
	}
	if !slices.Equal(slices.Compact(egressPorts), []string{"4222", "443", "53", "5432"}) {
		t.Errorf("NetworkPolicy egress ports %v, want DNS, 443, NATS and PostgreSQL", egressPorts)
	}
}

// TestChartMonitoringCopies: the chart ships deploy/monitoring's files.
func TestDeployChartMonitoringCopies(t *testing.T) {
	for _, f := range []string{"alerts.yaml", "dashboard.json"} {
		a, err := os.ReadFile("monitoring/" + f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("helm/cmkd/files/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("helm/cmkd/files/%s differs from monitoring/%s: copy it over", f, f)
		}
	}
}

// TestChartSkipsMissingCRDs: a cluster without the Prometheus operator
// gets no ServiceMonitor or PrometheusRule, which it would refuse.
func TestDeployChartSkipsMissingCRDs(t *testing.T) {
	objs := helmtest.Render(t, map[string]any{
		"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true},
	})
	if _, ok := helmtest.Get[monitoringv1.ServiceMonitor](t, objs); ok {
		t.Error("ServiceMonitor rendered without its CRD")
	}
	if _, ok := helmtest.Get[monitoringv1.PrometheusRule](t, objs); ok {
		t.Error("PrometheusRule rendered without its CRD")
	}
}

// TestChartRefuses: values that cannot work fail at render, naming the value.
func TestDeployChartRefuses(t *testing.T) {
	for _, tc := range []struct {
		values map[string]any
		want   string
	}{
		{map[string]any{"replicaCount": 3}, "store.driver sqlite runs one replica"},
		{map[string]any{"store": map[string]any{"driver": "postgres"}}, "store.postgres.dsnSecret.name"},
		{map[string]any{"store": map[string]any{"driver": "mysql"}}, "store.driver"},
		{map[string]any{"nats": map[string]any{"createStreams": true}}, "nats.createStreams and nats.checkStreams"},
		{map[string]any{"webhook": map[string]any{"enabled": true}}, "webhook.sharedSecret.name or webhook.audience"},
	} {
		if _, err := helmtest.TryRender(tc.values); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("render %v: %v; want an error naming %q", tc.values, err, tc.want)
		}
	}
}

// TestRenderedManifests keeps kubernetes/cmkd.yaml, for those who apply
// plain YAML, the chart's defaults (go test ./deploy -run RenderedManifests -update
// rewrites it).
func TestDeployRenderedManifests(t *testing.T) {
	const path = "kubernetes/cmkd.yaml"
	header := []byte("# cmkd with the Helm chart's default values (release cmkd, namespace cmkd):\n" +
		"# helm template cmkd deploy/helm/cmkd --namespace cmkd. Generated; edit the chart.\n")
	got := append(header, helmtest.Manifests(t, nil)...)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil { // #nosec G306 -- a manifest, not a secret
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./deploy -run RenderedManifests -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not the chart's default render: go test ./deploy -run RenderedManifests -update", path)
	}
}

func scenario(t *testing.T, name string) helmtest.Scenario {
	t.Helper()
	for _, sc := range helmtest.Scenarios() {
		if sc.Name == name {
			return sc
		}
	}
	t.Fatalf("no scenario %s", name)
	return helmtest.Scenario{}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestDeployChartCredentials: managed identity and a client secret are the
// alternatives to workload identity; neither carries the workload
// identity label, which would make the webhook inject a token nobody
// federated.
func TestDeployChartCredentials(t *testing.T) {
	for _, tc := range []struct {
		name       string
		azure      map[string]any
		credential string
		envFrom    string
	}{
		{"managed", map[string]any{"credential": "managed", "clientId": "00000000-0000-0000-0000-000000000003"}, "managed", ""},
		{"secret", map[string]any{"credential": "default", "secretCredential": map[string]any{"name": "cmkd-azure"}}, "default", "cmkd-azure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := helmtest.Render(t, map[string]any{"azure": tc.azure})
			d := helmtest.Must[appsv1.Deployment](t, objs)
			if _, ok := d.Spec.Template.Labels["azure.workload.identity/use"]; ok {
				t.Error("pod carries the workload identity label")
			}
			if sa := helmtest.Must[corev1.ServiceAccount](t, objs); sa.Annotations["azure.workload.identity/client-id"] != "" {
				t.Error("ServiceAccount carries the workload identity client id")
			}
			var cfg struct {
				KeyVault struct {
					Credential string `json:"credential"`
					ClientID   string `json:"client_id"`
				} `json:"keyvault"`
			}
			if err := yaml.Unmarshal([]byte(helmtest.ConfigMap(t, objs, helmtest.Release).Data["cmkd.yaml"]), &cfg); err != nil {
				t.Fatal(err)
			}
			wantID, _ := tc.azure["clientId"].(string)
			if cfg.KeyVault.Credential != tc.credential || cfg.KeyVault.ClientID != wantID {
				t.Errorf("keyvault %+v, want credential %s client id %q", cfg.KeyVault, tc.credential, wantID)
			}
			c := d.Spec.Template.Spec.Containers[0]
			var from string
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					from = e.SecretRef.Name
				}
			}
			if from != tc.envFrom {
				t.Errorf("environment from Secret %q, want %q", from, tc.envFrom)
			}
		})
	}
}
