// The Azure side of cmkd: a Key Vault with an RSA key, the Event Grid
// system topic of the vault delivering key events (CloudEvents 1.0) to a
// namespace topic, a queue subscription cmkd pulls from with dead letters
// to blob storage, and cmkd's user-assigned identity, federated with the
// AKS cluster's OIDC issuer for the chart's ServiceAccount, with the least
// roles it needs; and an Event Grid topic cmkd publishes its status events
// to, for auditors who subscribe with Event Grid rather than NATS. The
// outputs are the chart's values (see README.md).
//
// If the vault is ever soft-deleted and recovered, its role assignments
// and event subscriptions are gone: deploy this again.

targetScope = 'resourceGroup'

@description('Region of every resource; the system topic must be in the vault\'s region.')
param location string = resourceGroup().location

@description('Key Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param keyVaultName string

@description('Name of the RSA key that wraps DEKs.')
param keyName string = 'cmk'

@description('Name of the platform key: the operator\'s layer under every tenant\'s data (keyvault.platform_key).')
param platformKeyName string = 'cmkd-platform'

@description('Days a deleted vault or key can be recovered (7-90).')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

@description('Event Grid namespace name.')
param namespaceName string

@description('Namespace topic receiving the vault\'s events; the chart\'s eventgrid.topic.')
param topicName string = 'keyvault'

@description('Queue subscription cmkd pulls from; the chart\'s eventgrid.subscription.')
param subscriptionName string = 'cmkd'

@description('Days the namespace topic keeps an event (1-7).')
@minValue(1)
@maxValue(7)
param eventRetentionInDays int = 1

@description('Storage account for dead-lettered events (3-24 lowercase letters and digits).')
param deadLetterStorageAccountName string

@description('Event Grid topic cmkd publishes status events to (CloudEvents 1.0, Entra ID only); the chart\'s status.eventgridEndpoint. 3-50 characters, unique in the region.')
@minLength(3)
@maxLength(50)
param statusTopicName string = '${keyVaultName}-status'

@description('Name of cmkd\'s user-assigned managed identity.')
param identityName string = 'cmkd'

@description('The AKS cluster\'s OIDC issuer URL (az aks show --query oidcIssuerProfile.issuerUrl).')
param aksOidcIssuer string

@description('Namespace the chart is installed in.')
param kubernetesNamespace string = 'cmkd'

@description('The chart\'s ServiceAccount (the release\'s full name unless serviceAccount.name is set).')
param serviceAccountName string = 'cmkd'

// Built-in role definitions (see roles.json for the source of each GUID).
var roles = {
  keyVaultCryptoServiceEncryptionUser: 'e147488a-f6f5-4113-8e2d-b22465e65bf6'
  eventGridDataReceiver: '78cbd9e7-9798-4e2e-9b5a-547d9ebb31fb'
  eventGridDataSender: 'd5a91429-5739-47e2-a06b-3470a27159e7'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
}

// Key Vault sends no event on disable, delete or revoke: cmkd's probes find
// those. Events only make rotation and expiry faster to notice.
var keyEventTypes = [
  'Microsoft.KeyVault.KeyNewVersionCreated'
  'Microsoft.KeyVault.KeyNearExpiry'
  'Microsoft.KeyVault.KeyExpired'
  'Microsoft.KeyVault.VaultAccessPolicyChanged'
]

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
}

resource federation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: identity
  name: 'aks-${kubernetesNamespace}-${serviceAccountName}'
  properties: {
    issuer: aksOidcIssuer
    subject: 'system:serviceaccount:${kubernetesNamespace}:${serviceAccountName}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  name: keyVaultName
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'premium'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // Irreversible: a purged key would make every DEK under it unreadable.
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

resource key 'Microsoft.KeyVault/vaults/keys@2024-11-01' = {
  parent: vault
  name: keyName
  properties: {
    kty: 'RSA'
    keySize: 3072
    keyOps: [
      'wrapKey'
      'unwrapKey'
    ]
    rotationPolicy: {
      attributes: {
        expiryTime: 'P2Y'
      }
      lifetimeActions: [
        {
          trigger: {
            timeAfterCreate: 'P1Y'
          }
          action: {
            type: 'rotate'
          }
        }
        {
          trigger: {
            timeBeforeExpiry: 'P30D'
          }
          action: {
            type: 'notify'
          }
        }
      ]
    }
  }
}

// Least privilege for get, wrap and unwrap, at key scope: the role also
// carries Event Grid control-plane actions a vault scope would extend.
resource cmkdOnKey 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(key.id, identity.id, roles.keyVaultCryptoServiceEncryptionUser)
  scope: key
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCryptoServiceEncryptionUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The platform layer's key: the operator's, in the operator's vault, under
// every tenant's data whether or not the tenant brings a key of its own.
resource platformKey 'Microsoft.KeyVault/vaults/keys@2024-11-01' = {
  parent: vault
  name: platformKeyName
  properties: {
    kty: 'RSA'
    keySize: 3072
    keyOps: [
      'wrapKey'
      'unwrapKey'
    ]
    rotationPolicy: {
      attributes: {
        expiryTime: 'P2Y'
      }
      lifetimeActions: [
        {
          trigger: {
            timeAfterCreate: 'P1Y'
          }
          action: {
            type: 'rotate'
          }
        }
      ]
    }
  }
}

resource cmkdOnPlatformKey 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(platformKey.id, identity.id, roles.keyVaultCryptoServiceEncryptionUser)
  scope: platformKey
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCryptoServiceEncryptionUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource deadLetters 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: deadLetterStorageAccountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: deadLetters
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: 'cmkd-dead-letters'
}

resource eventNamespace 'Microsoft.EventGrid/namespaces@2025-02-15' = {
  name: namespaceName
  location: location
  sku: {
    name: 'Standard'
    capacity: 1
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    publicNetworkAccess: 'Enabled'
  }
}

resource topic 'Microsoft.EventGrid/namespaces/topics@2025-02-15' = {
  parent: eventNamespace
  name: topicName
  properties: {
    publisherType: 'Custom'
    inputSchema: 'CloudEventSchemaV1_0'
    eventRetentionInDays: eventRetentionInDays
  }
}

// Blob storage is the only dead-letter destination of a namespace
// subscription; the namespace writes there with its own identity.
resource namespaceOnDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, eventNamespace.id, roles.storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: eventNamespace.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queue 'Microsoft.EventGrid/namespaces/topics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: subscriptionName
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    deliveryConfiguration: {
      deliveryMode: 'Queue'
      queue: {
        // Longer than one event's handling, rewrap included (cmkd renews the lock).
        receiveLockDurationInSeconds: 300
        maxDeliveryCount: 10
        eventTimeToLive: 'P1D'
        deadLetterDestinationWithResourceIdentity: {
          identity: {
            type: 'SystemAssigned'
          }
          deadLetterDestination: {
            endpointType: 'StorageBlob'
            properties: {
              resourceId: deadLetters.id
              blobContainerName: deadLetterContainer.name
            }
          }
        }
      }
    }
  }
  dependsOn: [
    namespaceOnDeadLetters
  ]
}

resource cmkdOnQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, identity.id, roles.eventGridDataReceiver)
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataReceiver)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: '${keyVaultName}-events'
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource systemTopicOnTopic 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, systemTopic.id, roles.eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// A namespace topic accepts CloudEvents 1.0 only, delivered with the
// system topic's identity.
resource forward 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'to-${topicName}'
  properties: {
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'NamespaceTopic'
        properties: {
          resourceId: topic.id
        }
      }
    }
    filter: {
      includedEventTypes: keyEventTypes
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
  dependsOn: [
    systemTopicOnTopic
  ]
}

// Status events for Event Grid subscribers (Functions, Logic Apps, Event
// Hubs, Sentinel), the same CloudEvents as on NATS. Published with cmkd's
// identity only: no access keys or SAS tokens to keep.
resource statusTopic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: statusTopicName
  location: location
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    minimumTlsVersionAllowed: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource cmkdOnStatusTopic 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(statusTopic.id, identity.id, roles.eventGridDataSender)
  scope: statusTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.eventGridDataSender)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The chart's values, by name: azureClientId is azure.clientId, and so on.
output azureClientId string = identity.properties.clientId
output azureTenantId string = identity.properties.tenantId
output keyvaultVaults array = [
  vault.properties.vaultUri
]
output keyvaultPlatformKey string = '${vault.properties.vaultUri}keys/${platformKey.name}'
output eventgridEndpoint string = 'https://${eventNamespace.properties.topicsConfiguration.hostname}'
output eventgridTopic string = topic.name
output eventgridSubscription string = queue.name
// https://<topic>.<region>-1.eventgrid.azure.net/api/events, as azeventgrid takes it.
output statusEventgridEndpoint string = statusTopic.properties.endpoint
