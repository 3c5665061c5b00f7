@description('Region of the workbook.')
param location string

@description('Tags of the workbook.')
param tags object = {}

@description('Application Insights component the workbook queries.')
param applicationInsightsId string

@description('Title shown for the workbook.')
param displayName string

// One row per run: the SendGridExportRun event (customEvents; shared/run/telemetry.py), dry runs left
// out (they send nothing), narrowed to the destinations picked in the Destination parameter.
var runs = 'customEvents | where name == "SendGridExportRun" | extend destination = tostring(customDimensions.destination), status = tostring(customDimensions.status), run_id = tostring(customDimensions.run_id) | where tostring(customDimensions.dry_run) == "false" | where "*" in ({Destination}) or destination in ({Destination})'
var kql = {
  version: 'KqlItem/1.0'
  queryType: 0
  resourceType: 'microsoft.insights/components'
  timeContextFromParameter: 'TimeRange'
}
var content = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      content: { json: '## SendGrid exports\nOne row per run (dry runs left out), from the SendGridExportRun event. Each run\'s record is the blob named under "record" in the exports container (EXPORTS_CONTAINER); rejected rows are in the blob under "rejects".' }
    }
    {
      type: 9
      name: 'parameters'
      content: {
        version: 'KqlParameterItem/1.0'
        style: 'pills'
        queryType: 0
        resourceType: 'microsoft.insights/components'
        parameters: [
          {
            id: 'time-range'
            version: 'KqlParameterItem/1.0'
            name: 'TimeRange'
            label: 'Time range'
            type: 4
            isRequired: true
            value: { durationMs: 604800000 }
            typeSettings: {
              selectableValues: [
                { durationMs: 86400000 }
                { durationMs: 604800000 }
                { durationMs: 2592000000 }
              ]
            }
          }
          {
            id: 'destination'
            version: 'KqlParameterItem/1.0'
            name: 'Destination'
            label: 'Destination'
            type: 2
            isRequired: true
            multiSelect: true
            quote: '\''
            delimiter: ','
            query: 'customEvents | where name == "SendGridExportRun" | distinct destination = tostring(customDimensions.destination) | order by destination asc'
            timeContextFromParameter: 'TimeRange'
            typeSettings: { additionalResourceOptions: ['value::all'], selectAllValue: '*', showDefault: false }
            defaultValue: 'value::all'
            queryType: 0
            resourceType: 'microsoft.insights/components'
          }
        ]
      }
    }
    {
      type: 3
      name: 'runs-by-status'
      content: union(kql, {
        title: 'Runs by status'
        query: '${runs} | summarize runs = count() by bin(timestamp, 1d), status'
        visualization: 'barchart'
      })
    }
    {
      type: 3
      name: 'rows'
      content: union(kql, {
        title: 'Rows sent and rejected'
        query: '${runs} | summarize sent = sum(toint(customDimensions.count_sent)), accepted = sum(toint(customDimensions.count_accepted)), rejected = sum(toint(customDimensions.rejected)) by bin(timestamp, 1d)'
        visualization: 'timechart'
      })
    }
    {
      type: 3
      name: 'duration'
      content: union(kql, {
        title: 'Run duration (seconds)'
        query: '${runs} | summarize seconds = max(todouble(customDimensions.duration_seconds)) by bin(timestamp, 1h), destination'
        visualization: 'timechart'
      })
    }
    {
      type: 3
      name: 'runs'
      content: union(kql, {
        title: 'Runs, newest first, and where each record is'
        query: '${runs} | project timestamp, destination, status, trigger = tostring(customDimensions.trigger), seconds = todouble(customDimensions.duration_seconds), read = toint(customDimensions.count_read), sent = toint(customDimensions.count_sent), rejected = toint(customDimensions.rejected), error = tostring(customDimensions.error), record = tostring(customDimensions.record_blob), rejects = tostring(customDimensions.rejects_blob), run_id | order by timestamp desc'
        visualization: 'table'
      })
    }
    {
      type: 3
      name: 'failed-runs'
      content: union(kql, {
        title: 'Failed runs and why'
        query: '${runs} | where status == "failed" | project timestamp, destination, error = tostring(customDimensions.error), errors = toint(customDimensions.error_count), record = tostring(customDimensions.record_blob), run_id | order by timestamp desc'
        visualization: 'table'
      })
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
