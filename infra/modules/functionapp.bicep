@description('Name of the function app.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags of the plan and the app.')
param tags object = {}

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (picked by DefaultAzureCredential and the Functions host).')
param identityClientId string

@description('Storage account of the host, the job queue, the segments and the exports.')
param storageAccountName string

@description('Container the app package is deployed to.')
param deploymentContainerName string

@description('Application Insights component the app reports to.')
param applicationInsightsName string

@description('URI of the Key Vault that holds the SendGrid API key(s).')
param keyVaultUri string

@description('Memory of each instance, in MB: 2048 by default (main.parameters.json), which holds an export of ten million profiles (under 600 MB at its peak) beside the other runs an instance takes at once; 4096 for mirror destinations of millions, which keep every email in memory (README, Performance and Scaling).')
param instanceMemoryMB int

@description('Most instances the app may scale out to.')
param maximumInstanceCount int

@description('NCRONTAB schedule of the scheduled export (EXPORT_SCHEDULE).')
param exportSchedule string

@description('Container the segment files land in (SEGMENTS_CONTAINER).')
param segmentsContainerName string

@description('Container for destinations.json and run records (EXPORTS_CONTAINER).')
param exportsContainerName string

@description('Queue of export jobs (EXPORT_QUEUE).')
param exportQueueName string

@description('Subnet the app joins (delegated to Microsoft.App/environments); empty for none, the default.')
param appSubnetId string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  // checkov:skip=CKV_AZURE_225: zone redundancy of Flex Consumption depends on the region; exports are batch jobs that a later run repeats safely
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false // checkov:skip=CKV_AZURE_17: callers authenticate with function keys (auth level function) or App Service authentication, not client certificates
    publicNetworkAccess: 'Enabled' // checkov:skip=CKV_AZURE_222: the on-demand export API is called from outside; every route but the bare health probe needs a function key
    // With the private network, the app joins its subnet: storage and Key Vault are then reached through their private endpoints.
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    siteConfig: {
      // FTP is off on Flex Consumption and ARM refuses siteConfig.ftpsState there (infra/tests/flex_rules.py).
      // checkov:skip=CKV_AZURE_78: FTP does not exist on Flex Consumption, and ARM refuses ftpsState on it (error 51021)
      // checkov:skip=CKV_AZURE_213: App Service health checks do not apply to Flex Consumption; GET /api/health is the liveness probe
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero by design; a lost instance's job is retried from the queue
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: { name: 'python', version: '3.11' }
    }
  }

  // checkov reads this app settings resource as a site and runs the site checks on it again; none concerns a
  // setting (the site's own answers are on `app` above), so each is skipped on the resource, with its reason,
  // in groups of four: pycep (checkov's Bicep parser) refuses more comment lines in a row.
  resource settings 'config' = {
    // checkov:skip=CKV_AZURE_13: App Service authentication is a site property; the HTTP API uses function keys (auth level function)
    // checkov:skip=CKV_AZURE_63: HTTP logging is a site property; HTTP and app logs go to Application Insights
    // checkov:skip=CKV_AZURE_65: detailed error pages are a site property; errors are traced in Application Insights
    // checkov:skip=CKV_AZURE_66: failed request tracing is a site property; requests are traced in Application Insights
    name: 'appsettings'
    // checkov:skip=CKV_AZURE_80: the .NET version is a site property, and this is a Python 3.11 app
    // checkov:skip=CKV_AZURE_88: Azure Files is a site property; Flex Consumption uses no file share (package and host state are in blob storage, read by identity)
    // checkov:skip=CKV_AZURE_222: public network access is a site property, answered on `app` above
    properties: {
      // The Functions host's storage, and the job queue: by identity, no keys.
      AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
      AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      // The export's own storage (segments, exports): the same account, also by identity.
      EXPORT_STORAGE__blobServiceUri: storage.properties.primaryEndpoints.blob
      EXPORT_STORAGE__queueServiceUri: storage.properties.primaryEndpoints.queue
      EXPORT_STORAGE__clientId: identityClientId
      SEGMENTS_CONTAINER: segmentsContainerName
      EXPORTS_CONTAINER: exportsContainerName
      DESTINATIONS_BLOB: 'destinations.json'
      EXPORT_SCHEDULE: exportSchedule
      EXPORT_QUEUE: exportQueueName
      SECRETS_SOURCE: 'keyvault'
      KEY_VAULT_URL: keyVaultUri
      AZURE_CLIENT_ID: identityClientId
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      // host.json's telemetryMode is OpenTelemetry and function_app.py configures the Azure Monitor distro itself:
      // this lets the worker stream its OpenTelemetry logs and keeps the host from sending them a second time.
      PYTHON_ENABLE_OPENTELEMETRY: 'true'
    }
  }
}

output name string = app.name
output url string = 'https://${app.properties.defaultHostName}'
