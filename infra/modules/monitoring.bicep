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

// Every run logs one "SendGridExportRun {json}" trace (shared/telemetry.py).
resource failedRuns 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
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
          query: 'traces | where message startswith "SendGridExportRun " | extend run = parse_json(substring(message, 18)) | where tostring(run.status) == "failed" | project timestamp, destination = tostring(run.destination), run_id = tostring(run.run_id)'
          timeAggregation: 'Count'
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
