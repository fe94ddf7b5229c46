// Example parameters: az deployment group create -g RG -f main.bicep -p main.bicepparam
using 'main.bicep'

param keyVaultName = 'cmkd-kv-example'
param namespaceName = 'cmkd-events-example'
param deadLetterStorageAccountName = 'cmkddlqexample'
param aksOidcIssuer = 'https://westeurope.oic.prod-aks.azure.com/00000000-0000-0000-0000-000000000000/00000000-0000-0000-0000-000000000000/'
param kubernetesNamespace = 'cmkd'
param serviceAccountName = 'cmkd'
