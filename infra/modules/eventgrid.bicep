// Blob events of the storage account, for exports that follow their data (README, "Export when
// new data lands"). The subscription that delivers BlobCreated events of the segments container
// to the function is made after the code is deployed (azure.yaml's postdeploy hook,
// scripts/subscribe-events.sh): Event Grid validates a webhook when the subscription is made,
// and the function's endpoint and its eventgrid_extension key exist only once the code runs.

@description('Name of the Event Grid system topic.')
param name string

@description('Region of the topic: the storage account\'s.')
param location string

@description('Tags of the topic.')
param tags object = {}

@description('Name of the storage account whose blob events the topic publishes.')
param storageAccountName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output name string = topic.name
