@description('Region of the workbook.')
param location string

@description('Tags of the workbook.')
param tags object = {}

@description('Application Insights component the workbook queries.')
param applicationInsightsId string

@description('Title shown for the workbook.')
param displayName string

var runs = 'traces | where message startswith "SendGridExportRun " | extend run = parse_json(substring(message, 18))'
var content = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      content: { json: '## SendGrid exports\nOne row per run, from the SendGridExportRun event. Record details: runs/{destination}/{run_id}.json in the exports container.' }
    }
    {
      type: 3
      content: {
        version: 'KqlItem/1.0'
        title: 'Runs by status'
        query: '${runs} | summarize runs = count() by bin(timestamp, 1d), status = tostring(run.status)'
        visualization: 'barchart'
        queryType: 0
        resourceType: 'microsoft.insights/components'
      }
    }
    {
      type: 3
      content: {
        version: 'KqlItem/1.0'
        title: 'Rows sent and rejected'
        query: '${runs} | summarize sent = sum(toint(run.counts.sent)), accepted = sum(toint(run.counts.accepted)), rejected = sum(toint(run.rejected)) by bin(timestamp, 1d)'
        visualization: 'timechart'
        queryType: 0
        resourceType: 'microsoft.insights/components'
      }
    }
    {
      type: 3
      content: {
        version: 'KqlItem/1.0'
        title: 'Failed runs'
        query: '${runs} | where tostring(run.status) == "failed" | project timestamp, destination = tostring(run.destination), run_id = tostring(run.run_id), errors = toint(run.error_count) | order by timestamp desc'
        visualization: 'table'
        queryType: 0
        resourceType: 'microsoft.insights/components'
      }
    }
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(applicationInsightsId, 'sendgrid-exports-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: string(content)
  }
}
