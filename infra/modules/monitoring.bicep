@description('Name of the Log Analytics workspace.')
param logAnalyticsName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Name of the action group that e-mails on failed runs.')
param actionGroupName string

@description('Name of the alert rule on failed runs.')
param alertName string

@description('E-mail address for failed-run alerts; empty for none.')
param alertEmail string = ''

@description('Name of the alert rule on runs that rejected too many rows.')
param rejectRateAlertName string

@description('Percentage of the rows a run read that it may reject (invalid, or refused by SendGrid) before the reject-rate alert fires.')
@minValue(1)
@maxValue(100)
param rejectRatePercent int = 5

@description('Name of the alert rule on scheduled destinations with no successful run in 26 hours.')
param staleRunAlertName string

@description('Region of the monitoring resources.')
param location string

@description('Tags of the monitoring resources.')
param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
    features: { disableLocalAuth: true }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'sgexport'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      { name: 'admins', emailAddress: alertEmail, useCommonAlertSchema: true }
    ]
  }
}

// Every run sends one "SendGridExportRun" event (customEvents; shared/run/telemetry.py), its dimensions
// in customDimensions, all strings: the alerts read those, never a log line's text.
var runs = 'customEvents | where name == "SendGridExportRun" | extend destination = tostring(customDimensions.destination), status = tostring(customDimensions.status), run_id = tostring(customDimensions.run_id)'
var realRuns = '${runs} | where tostring(customDimensions.dry_run) == "false"'

resource failedRuns 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: alertName
  location: location
  tags: tags
  properties: {
    displayName: 'SendGrid export run failed'
    description: 'An export run ended failed: read its run record (runs/{destination}/{run_id}.json) for why.'
    severity: 1
    enabled: true
    scopes: [appInsights.id]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '${runs} | where status == "failed" | project timestamp, destination, run_id, error = tostring(customDimensions.error), record = tostring(customDimensions.record_blob)'
          timeAggregation: 'Count'
          dimensions: [{ name: 'destination', operator: 'Include', values: ['*'] }]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: [actionGroup.id] }
  }
}

// A run that ends completed_with_errors is not a failure, but one that rejects much of what it read
// means bad data or a broken mapping. Dry runs are left out: they are how a mapping is tried.
resource rejectRate 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: rejectRateAlertName
  location: location
  tags: tags
  properties: {
    displayName: 'SendGrid export rejected over ${rejectRatePercent}% of its rows'
    description: 'A run rejected more than ${rejectRatePercent}% of the rows it read (invalid rows, or contacts SendGrid refused): its rejects file (runs/{destination}/{run_id}.rejects.csv) says why, row by row.'
    severity: 2
    enabled: true
    scopes: [appInsights.id]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '${realRuns} | extend rows_read = toint(customDimensions.count_read), rejected = toint(customDimensions.rejected) | where rows_read > 0 and 100.0 * rejected / rows_read > ${rejectRatePercent} | project timestamp, destination, run_id, rows_read, rejected, rejects = tostring(customDimensions.rejects_blob)'
          timeAggregation: 'Count'
          dimensions: [{ name: 'destination', operator: 'Include', values: ['*'] }]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: [actionGroup.id] }
  }
}

// Scheduled destinations are the ones whose latest event that says so has schedule_enabled "true"
// (every run the timer queues does). A destination that never ran in the window is not known here,
// so it is never alerted: the window is the longest a log alert may query (2 days), which also
// means a destination whose runs stop altogether is alerted from 26 h to 48 h after its last one.
var scheduled = '${realRuns} | where isnotempty(tostring(customDimensions.schedule_enabled)) | summarize arg_max(timestamp, schedule_enabled = tostring(customDimensions.schedule_enabled)) by destination | where schedule_enabled == "true"'
var succeeded = '${realRuns} | where timestamp > ago(26h) and status in ("succeeded", "completed_with_errors") | distinct destination'

resource staleRuns 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: staleRunAlertName
  location: location
  tags: tags
  properties: {
    displayName: 'SendGrid export: no successful run of a scheduled destination in 26 hours'
    description: 'A destination the timer exports has had no succeeded (or completed_with_errors) run in 26 hours: the schedule did not run, or every run failed. Dry runs do not count.'
    severity: 1
    enabled: true
    scopes: [appInsights.id]
    evaluationFrequency: 'PT1H'
    windowSize: 'P2D'
    // One e-mail a day while it lasts: resolving would only mean the last scheduled run left the window.
    autoMitigate: false
    muteActionsDuration: 'PT24H'
    criteria: {
      allOf: [
        {
          query: '${scheduled} | join kind=leftanti (${succeeded}) on destination | project destination, last_seen = timestamp'
          timeAggregation: 'Count'
          dimensions: [{ name: 'destination', operator: 'Include', values: ['*'] }]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    actions: { actionGroups: [actionGroup.id] }
  }
}

output logAnalyticsWorkspaceId string = workspace.id
output applicationInsightsId string = appInsights.id
output applicationInsightsName string = appInsights.name
