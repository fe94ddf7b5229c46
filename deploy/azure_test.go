package deploy_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"sigs.k8s.io/yaml"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/helmtest"
)

// No Bicep compiler runs offline (az bicep build and what-if are the real
// checks, see azure/README.md); these tests check what can be read from
// the text.

func readBicep(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("azure/main.bicep")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestDeployBicepAPIVersions: every resource's type and API version is one
// recorded in azure/api-versions.json from the Azure REST API specs, and
// every recorded one is used.
func TestDeployBicepAPIVersions(t *testing.T) {
	var rec struct {
		Source, Checked string
		Resources       []struct{ Type, APIVersion, Spec string }
	}
	readJSON(t, "azure/api-versions.json", &rec)
	if rec.Source == "" {
		t.Error("api-versions.json does not say where its versions come from")
	}
	known := map[string]bool{}
	for _, r := range rec.Resources {
		if !strings.Contains(r.Spec, "/stable/"+r.APIVersion+"/") {
			t.Errorf("%s@%s: spec %s is not that version's stable spec", r.Type, r.APIVersion, r.Spec)
		}
		known[r.Type+"@"+r.APIVersion] = true
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^resource \w+ '([^'@]+)@([^']+)'`).FindAllStringSubmatch(readBicep(t), -1) {
		used[m[1]+"@"+m[2]] = true
		if !known[m[1]+"@"+m[2]] {
			t.Errorf("main.bicep uses %s@%s, which api-versions.json does not record", m[1], m[2])
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %d resource types in main.bicep", len(used))
	}
	for k := range known {
		if !used[k] {
			t.Errorf("api-versions.json records %s, which main.bicep does not use", k)
		}
	}
}

// TestDeployBicepRoles: the role assignments grant exactly the roles of
// azure/roles.json, by their built-in GUIDs, each at the scope it names,
// and no GUID in main.bicep is a role not recorded there.
func TestDeployBicepRoles(t *testing.T) {
	var rec struct {
		Source string
		Roles  []struct{ Name, ID, To, Scope, Why string }
	}
	readJSON(t, "azure/roles.json", &rec)
	want := map[string]string{ // the GUIDs of deploy-time facts
		"Key Vault Crypto Service Encryption User": "e147488a-f6f5-4113-8e2d-b22465e65bf6",
		"EventGrid Data Receiver":                  "78cbd9e7-9798-4e2e-9b5a-547d9ebb31fb",
		"EventGrid Data Sender":                    "d5a91429-5739-47e2-a06b-3470a27159e7",
		"Storage Blob Data Contributor":            "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
	}
	ids := map[string]bool{}
	for _, r := range rec.Roles {
		if want[r.Name] != r.ID {
			t.Errorf("roles.json: %s is %s, the built-in role's id is %s", r.Name, r.ID, want[r.Name])
		}
		ids[r.ID] = true
	}
	bicep := readBicep(t)
	guids := regexp.MustCompile(`'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'`).FindAllStringSubmatch(bicep, -1)
	seen := map[string]bool{}
	for _, g := range guids {
		seen[g[1]] = true
		if !ids[g[1]] {
			t.Errorf("main.bicep names %s, not a role of roles.json", g[1])
		}
	}
	for id := range ids {
		if !seen[id] {
			t.Errorf("main.bicep does not grant role %s", id)
		}
	}
	// Each assignment: its scope, and the role by the name in the roles map.
	assign := regexp.MustCompile(`(?s)resource \w+ 'Microsoft.Authorization/roleAssignments@[^']+' = \{.*?scope: (\w+).*?roles\.(\w+)\).*?principalType: 'ServicePrincipal'`)
	got := map[string][]string{}
	for _, m := range assign.FindAllStringSubmatch(bicep, -1) {
		got[m[2]] = append(got[m[2]], m[1])
	}
	for role, scopes := range map[string][]string{
		// Each key, not the vault: the role carries control-plane actions.
		"keyVaultCryptoServiceEncryptionUser": {"key", "platformKey"},
		"eventGridDataReceiver":               {"queue"},
		"eventGridDataSender":                 {"topic", "statusTopic"},
		"storageBlobDataContributor":          {"deadLetterContainer"},
	} {
		if !slices.Equal(got[role], scopes) {
			t.Errorf("role %s is assigned at %q, want %q", role, got[role], scopes)
		}
	}
}

// TestDeployBicepSettings: what the Event Grid and Key Vault documentation
// require, and what cmkd relies on.
func TestDeployBicepSettings(t *testing.T) {
	b := readBicep(t)
	for _, s := range []string{
		"enableRbacAuthorization: true", "enableSoftDelete: true", "enablePurgeProtection: true",
		"'wrapKey'", "'unwrapKey'", "rotationPolicy:",
		"topicType: 'Microsoft.KeyVault.vaults'",
		"endpointType: 'NamespaceTopic'", "inputSchema: 'CloudEventSchemaV1_0'",
		"deliveryMode: 'Queue'", "endpointType: 'StorageBlob'",
		"'Microsoft.KeyVault.KeyNewVersionCreated'", "'Microsoft.KeyVault.KeyNearExpiry'", "'Microsoft.KeyVault.KeyExpired'",
		"audiences: [\n      'api://AzureADTokenExchange'",
		"subject: 'system:serviceaccount:${kubernetesNamespace}:${serviceAccountName}'",
		// The status topic: Entra ID only (cmkd's identity), the CloudEvents cmkd publishes.
		"resource statusTopic 'Microsoft.EventGrid/topics@", "disableLocalAuth: true",
	} {
		if !strings.Contains(b, s) {
			t.Errorf("main.bicep lacks %q", s)
		}
	}
	// cmkd publishes CloudEvents 1.0 (azeventgrid's PublishCloudEvents):
	// the status topic must take them, as the namespace topic does.
	if n := strings.Count(b, "inputSchema: 'CloudEventSchemaV1_0'"); n != 2 {
		t.Errorf("%d topics take CloudEvents 1.0, want the namespace topic and the status topic", n)
	}
	// A namespace topic takes CloudEvents 1.0 only: both subscriptions deliver it.
	if n := strings.Count(b, "eventDeliverySchema: 'CloudEventSchemaV1_0'"); n != 2 {
		t.Errorf("%d subscriptions deliver CloudEvents 1.0, want both", n)
	}
}

// TestDeployBicepOutputsAreChartValues: every output is named after the
// chart value it fills (azureClientId is azure.clientId), each such value
// exists in values.yaml, and every Azure value the chart needs has an
// output. The federated credential's defaults are the chart's
// ServiceAccount in the chart's namespace.
func TestDeployBicepOutputsAreChartValues(t *testing.T) {
	raw, err := os.ReadFile("helm/cmkd/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	b := readBicep(t)
	var outputs []string
	for _, m := range regexp.MustCompile(`(?m)^output (\w+) `).FindAllStringSubmatch(b, -1) {
		outputs = append(outputs, m[1])
		path := valuePath(m[1])
		if _, ok := lookup(values, path); !ok {
			t.Errorf("output %s fills %s, which values.yaml does not have", m[1], strings.Join(path, "."))
		}
	}
	slices.Sort(outputs)
	want := []string{"azureClientId", "azureTenantId", "eventgridEndpoint", "eventgridSubscription", "eventgridTopic", "keyvaultPlatformKey", "keyvaultVaults", "statusEventgridEndpoint"}
	if !slices.Equal(outputs, want) {
		t.Errorf("outputs %v, want the chart's Azure values %v", outputs, want)
	}
	// keyvaultPlatformKey joins vaultUri (with its trailing slash) and keys/<name>.
	if k, err := cmkd.ParseKeyID("https://cmkd-kv-example.vault.azure.net/keys/cmkd-platform"); err != nil || k.Version != "" {
		t.Errorf("keyvaultPlatformKey's form is refused by cmkd: %v", err)
	}
	// Azure returns vaultUri with a trailing slash; cmkd takes it as is.
	if _, err := cmkd.ParseVault("https://cmkd-kv-example.vault.azure.net/"); err != nil {
		t.Errorf("keyvaultVaults' form is refused by cmkd: %v", err)
	}

	objs := helmtest.Render(t, nil)
	var sa string
	for _, o := range objs {
		if o.Kind == "ServiceAccount" {
			sa = o.Name
		}
	}
	for param, want := range map[string]string{"kubernetesNamespace": helmtest.Namespace, "serviceAccountName": sa} {
		m := regexp.MustCompile(`param ` + param + ` string = '([^']*)'`).FindStringSubmatch(b)
		if m == nil || m[1] != want {
			t.Errorf("param %s defaults to %v, the chart's is %q", param, m, want)
		}
	}
	params, err := os.ReadFile("azure/main.bicepparam")
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^param (\w+) (\w+)( =)?`).FindAllStringSubmatch(b, -1) {
		declared[m[1]] = true
		if m[3] == "" && !strings.Contains(string(params), "param "+m[1]+" =") {
			t.Errorf("main.bicepparam does not set %s, which has no default", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^param (\w+) =`).FindAllStringSubmatch(string(params), -1) {
		if !declared[m[1]] {
			t.Errorf("main.bicepparam sets %s, which main.bicep does not declare", m[1])
		}
	}
}

// valuePath splits an output name at its first capital: azureClientId →
// azure, clientId.
func valuePath(name string) []string {
	for i, r := range name {
		if unicode.IsUpper(r) {
			rest := []rune(name[i:])
			rest[0] = unicode.ToLower(rest[0])
			return []string{name[:i], string(rest)}
		}
	}
	return []string{name}
}

func lookup(m map[string]any, path []string) (any, bool) {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = mm[p]; !ok {
			return nil, false
		}
	}
	return v, true
}
