// The private network (vnetEnabled, VNET_ENABLED): as Microsoft's Flex Consumption azd templates do,
// a virtual network with a subnet the function app joins (delegated to Microsoft.App/environments,
// which Flex Consumption requires) and one for private endpoints; a private endpoint and a private
// DNS zone, linked to the network, for each service the app reaches: blob and queue on the storage
// account, and the Key Vault. The app keeps its public HTTPS endpoint: Event Grid delivers to it
// there (README, "Deploying to Azure").

@description('Name of the virtual network.')
param name string

@description('Region of the network and the private endpoints.')
param location string

@description('Tags of every resource.')
param tags object = {}

@description('Address space of the network.')
param addressPrefix string = '10.0.0.0/16'

@description('Subnet the function app joins: Flex Consumption needs a /27 at least, one address per instance besides.')
param appSubnetPrefix string = '10.0.1.0/24'

@description('Subnet of the private endpoints.')
param endpointSubnetPrefix string = '10.0.2.0/24'

@description('Storage account reached through private endpoints (blob and queue).')
param storageAccountName string

@description('Key Vault reached through a private endpoint.')
param keyVaultName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: [addressPrefix] }
  }
}

resource appSubnet 'Microsoft.Network/virtualNetworks/subnets@2024-05-01' = {
  parent: vnet
  name: 'app'
  properties: {
    addressPrefix: appSubnetPrefix
    delegations: [
      { name: 'flex-consumption', properties: { serviceName: 'Microsoft.App/environments' } }
    ]
  }
}

resource endpointSubnet 'Microsoft.Network/virtualNetworks/subnets@2024-05-01' = {
  parent: vnet
  name: 'private-endpoints'
  properties: {
    addressPrefix: endpointSubnetPrefix
    privateEndpointNetworkPolicies: 'Disabled'
  }
  dependsOn: [appSubnet] // a network takes one subnet change at a time
}

// One private endpoint per service: the group id ARM knows it by, the resource, its DNS zone.
var endpoints = [
  { name: 'blob', groupId: 'blob', resourceId: storage.id, zone: 'privatelink.blob.${environment().suffixes.storage}' }
  { name: 'queue', groupId: 'queue', resourceId: storage.id, zone: 'privatelink.queue.${environment().suffixes.storage}' }
  { name: 'vault', groupId: 'vault', resourceId: vault.id, zone: 'privatelink.vaultcore.azure.net' }
]

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for endpoint in endpoints: {
  name: endpoint.zone
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (endpoint, i) in endpoints: {
  parent: zones[i]
  name: '${name}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: { id: vnet.id }
  }
}]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for endpoint in endpoints: {
  name: 'pe-${endpoint.name}-${name}'
  location: location
  tags: tags
  properties: {
    subnet: { id: endpointSubnet.id }
    privateLinkServiceConnections: [
      {
        name: endpoint.name
        properties: { privateLinkServiceId: endpoint.resourceId, groupIds: [endpoint.groupId] }
      }
    ]
  }
}]

resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (endpoint, i) in endpoints: {
  parent: privateEndpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      { name: endpoint.name, properties: { privateDnsZoneId: zones[i].id } }
    ]
  }
}]

output appSubnetId string = appSubnet.id
output name string = vnet.name
