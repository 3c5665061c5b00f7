@description('Name of the storage account (3-24 lower-case letters and digits).')
param name string

@description('Region of the account.')
param location string

@description('Tags of the account.')
param tags object = {}

@description('Container the Flex Consumption app package is deployed to.')
param deploymentContainerName string

@description('Container the segment files land in.')
param segmentsContainerName string

@description('Container for destinations.json, run records, rejects, sync state and locks.')
param exportsContainerName string

@description('Queue of export jobs.')
param exportQueueName string

@description('Log Analytics workspace that receives the queue service logs.')
param logAnalyticsWorkspaceId string

@description('Private network on: the account takes no traffic from public networks (its private endpoints serve the app).')
param privateNetwork bool = false

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS' // checkov:skip=CKV_AZURE_206: the data is a copy of segments landed elsewhere; LRS keeps the cost at rest low, choose ZRS/GRS by parameter if wanted
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateNetwork ? 'Disabled' : 'Enabled' // checkov:skip=CKV_AZURE_59: Enabled only without the private network (VNET_ENABLED, off by default), where Flex Consumption reaches storage over its public endpoint; access is by Entra ID only (shared keys are off)
    networkAcls: {
      defaultAction: privateNetwork ? 'Deny' : 'Allow' // checkov:skip=CKV_AZURE_35: Allow only without the private network (VNET_ENABLED), where the app reaches storage over the public endpoint
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource segmentsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: segmentsContainerName
  properties: { publicAccess: 'None' }
}

resource exportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: exportsContainerName
  properties: { publicAccess: 'None' }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    // checkov:skip=CKV_AZURE_33: classic Storage Analytics logging is not in the queueServices schema; queueLogs below sends writes and deletes to Log Analytics
  }
}

// Every job enqueued and every message deleted, in Log Analytics (StorageQueueLogs). Reads are left
// out: the queue trigger polls, and each poll would be a row.
resource queueLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'queue-writes-deletes'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

resource exportQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: exportQueueName
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${exportQueueName}-poison'
}

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
