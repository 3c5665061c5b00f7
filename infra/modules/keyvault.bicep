@description('Name of the Key Vault (3-24 letters, digits and hyphens).')
param name string

@description('Region of the vault.')
param location string

@description('Tags of the vault.')
param tags object = {}

@description('Log Analytics workspace that receives the vault audit logs.')
param logAnalyticsWorkspaceId string

@description('Private network on: the vault takes no traffic from public networks (its private endpoint serves the app).')
param privateNetwork bool = false

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: privateNetwork ? 'Disabled' : 'Enabled' // checkov:skip=CKV_AZURE_189: Enabled only without the private network (VNET_ENABLED, off by default), where Flex Consumption reaches the vault over its public endpoint; access is RBAC-only and audited
    networkAcls: {
      defaultAction: privateNetwork ? 'Deny' : 'Allow' // checkov:skip=CKV_AZURE_109: Allow only without the private network (VNET_ENABLED), where the app reaches the vault over its public endpoint; access is RBAC-only
      bypass: 'AzureServices'
    }
  }
}

resource audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [{ categoryGroup: 'audit', enabled: true }]
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
