// SendGrid segment export: everything `azd up` provisions, at subscription scope.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds the resource token and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource: only the regions that offer Flex Consumption (infra/tests/flex_rules.py says where the list comes from), so azd offers no other.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the deploying user; given data access to storage and Key Vault so they can upload destinations.json and set the API key. Leave empty to grant nothing.')
param principalId string = ''

@description('Type of principalId: User for a person, ServicePrincipal for a pipeline (.github/workflows/azure-dev.yml sets AZURE_PRINCIPAL_TYPE).')
@allowed(['User', 'ServicePrincipal'])
param principalType string = 'User'

@description('E-mail address that receives an alert when an export run fails. Leave empty for no e-mail.')
param alertEmail string = ''

@description('Percentage of the rows a run read that it may reject (invalid, or refused by SendGrid) before an alert fires; a whole number, 1 to 100.')
@minValue(1)
@maxValue(100)
param rejectRatePercent int = 5

@description('Memory of each Flex Consumption instance, in MB. 2,048 holds a run of ten million profiles (about 0.3 to 0.5 GB on the bench) or several smaller runs at once; 4,096 for mirror destinations of many millions (README "Scaling").')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Most instances the Flex Consumption app may scale out to: 40 to 1000 (some regions refuse less than 40).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Private network: a virtual network the app joins (its subnet delegated to Microsoft.App/environments), private endpoints and DNS zones for blob, queue and Key Vault, and public network access off on storage and Key Vault. The app keeps its public HTTPS endpoint, which Event Grid delivers to.')
param vnetEnabled bool = false

@description('NCRONTAB schedule (UTC, six fields) of the scheduled export.')
param exportSchedule string = '0 0 3 * * *'

@description('Container the segment files land in.')
param segmentsContainerName string = 'segments'

@description('Container for destinations.json, run records, rejects, sync state and locks.')
param exportsContainerName string = 'sendgrid-exports'

@description('Queue of export jobs.')
param exportQueueName string = 'sendgrid-export-jobs'

@description('Override: resource group name.')
param resourceGroupName string = ''

@description('Override: function app name.')
param functionAppName string = ''

@description('Override: Flex Consumption plan name.')
param appServicePlanName string = ''

@description('Override: storage account name (3-24 lower-case letters and digits).')
param storageAccountName string = ''

@description('Override: Key Vault name.')
param keyVaultName string = ''

@description('Override: user-assigned managed identity name.')
param identityName string = ''

@description('Override: Log Analytics workspace name.')
param logAnalyticsName string = ''

@description('Override: Application Insights name.')
param applicationInsightsName string = ''

@description('Override: virtual network name (with vnetEnabled).')
param vnetName string = ''

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var appName = !empty(functionAppName) ? functionAppName : '${abbrs.webSitesFunctions}sendgrid-${resourceToken}'
var deploymentContainerName = 'app-package-${take(appName, 32)}-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: !empty(identityName) ? identityName : '${abbrs.managedIdentityUserAssignedIdentities}sendgrid-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
    actionGroupName: '${abbrs.insightsActionGroups}sendgrid-${resourceToken}'
    alertName: '${abbrs.insightsScheduledQueryRules}sendgrid-failed-runs-${resourceToken}'
    alertEmail: alertEmail
    rejectRateAlertName: '${abbrs.insightsScheduledQueryRules}sendgrid-reject-rate-${resourceToken}'
    rejectRatePercent: rejectRatePercent
    staleRunAlertName: '${abbrs.insightsScheduledQueryRules}sendgrid-no-success-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    segmentsContainerName: segmentsContainerName
    exportsContainerName: exportsContainerName
    exportQueueName: exportQueueName
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    privateNetwork: vnetEnabled
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    name: '${abbrs.eventGridSystemTopics}${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: !empty(keyVaultName) ? keyVaultName : '${abbrs.keyVaultVaults}${take(resourceToken, 18)}'
    location: location
    tags: tags
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsWorkspaceId
    privateNetwork: vnetEnabled
  }
}

// Only with vnetEnabled: the network, and private endpoints for the storage account and the vault.
module network 'modules/network.bicep' = if (vnetEnabled) {
  name: 'network'
  scope: rg
  params: {
    name: !empty(vnetName) ? vnetName : '${abbrs.networkVirtualNetworks}${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: appName
    planName: !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultUri: keyVault.outputs.uri
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    exportSchedule: exportSchedule
    segmentsContainerName: segmentsContainerName
    exportsContainerName: exportsContainerName
    exportQueueName: exportQueueName
    appSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    displayName: 'SendGrid exports (${environmentName})'
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output SEGMENTS_CONTAINER string = segmentsContainerName
output EXPORTS_CONTAINER string = exportsContainerName
output EVENT_GRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output KEY_VAULT_NAME string = keyVault.outputs.name
output KEY_VAULT_URL string = keyVault.outputs.uri
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
